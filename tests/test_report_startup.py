"""prune-report's start-up cuts (issue 15, item 6: "prune-report on 100 runs in a few seconds";
docs/report.md "Speed"): the statistics that do not need scipy.stats are computed without importing it
(about 1 s, a fifth of a report), and give exactly what scipy.stats gives; the figure worker is
forked before that import, so it does not wait for it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.report.compare import MIN_WILCOXON_N, paired_statistics, paired_t_power, paired_t_test, seeds_needed
from test_report_card import _run
from test_report_compare import _power_by_integration


def _folder(root, seeds: int):
    """Two methods x two sparsities x `seeds` seeds with accuracies that differ between seeds."""
    rng = np.random.default_rng(0)
    for score in ("magnitude", "random"):
        for s in (0.5, 0.9):
            for seed in range(seeds):
                _run(root, "synthetic", "mlp", score, s, seed)
    for path in (root / "runs").glob("*/metrics.csv"):
        df = pd.read_csv(path)
        df.loc[df["metric"] == "accuracy", "value"] = rng.uniform(0.4, 0.9, int((df["metric"] == "accuracy").sum()))
        df.to_csv(path, index=False)
    return root


def _modules_after_report(root, out) -> set[str]:
    code = (
        "import sys; from prune_cli.report import build_report; "
        f"build_report({str(root)!r}, {str(out)!r}, plots=False); print(' '.join(sorted(sys.modules)))"
    )
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())


def test_build_module_imports_neither_scipy_stats_nor_matplotlib():
    """The figure worker is forked by build_report, after build.py's imports: scipy.stats (and
    matplotlib, the worker's own import) must not be among them, or the worker waits for them."""
    code = "import sys, prune_cli.report.build; print(sorted(m for m in ('scipy.stats', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_few_seeds_need_no_scipy_stats_and_many_seeds_use_it(tmp_path):
    """With fewer than MIN_WILCOXON_N seeds the t-test, its interval and the power search come from
    scipy.special; with more, the Wilcoxon test and the resampled bootstrap need scipy.stats."""
    few = _modules_after_report(_folder(tmp_path / "few", seeds=3), tmp_path / "out_few")
    assert "scipy.special" in few and "scipy.stats" not in few
    table = pd.read_csv(tmp_path / "out_few" / "comparisons.csv")
    assert table["p_t"].notna().all() and table["p_wilcoxon"].isna().all()
    many = _modules_after_report(_folder(tmp_path / "many", seeds=MIN_WILCOXON_N + 1), tmp_path / "out_many")
    assert "scipy.stats" in many
    table = pd.read_csv(tmp_path / "out_many" / "comparisons.csv")
    assert table["p_wilcoxon"].notna().all() and set(table["bootstrap"]) == {"resampled"}


def test_paired_t_test_is_scipy_ttest_rel_bit_for_bit():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 12))
        a = rng.normal(size=n) * rng.choice([1e-3, 1.0, 100.0])
        b = a + rng.normal(size=n) * rng.choice([1e-3, 0.1, 1.0]) + rng.choice([0.0, 0.01, 1.0])
        ref = stats.ttest_rel(a, b)
        assert paired_t_test(a - b) == (float(ref.statistic), float(ref.pvalue))


def test_paired_statistics_match_scipy_stats():
    """The row's interval against scipy.stats.t.interval and its t-test against ttest_rel."""
    a = np.array([0.71, 0.74, 0.69, 0.77])
    b = np.array([0.70, 0.70, 0.66, 0.71])
    row = paired_statistics(a, b, 0.9)
    d = a - b
    low, high = stats.t.interval(0.9, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))
    assert row["t_low"] == pytest.approx(low, rel=1e-12) and row["t_high"] == pytest.approx(high, rel=1e-12)
    ref = stats.ttest_rel(a, b)
    assert (row["t_stat"], row["p_t"]) == (float(ref.statistic), float(ref.pvalue))


def test_power_is_scipy_noncentral_t():
    """Power of the two-sided paired t-test against scipy.stats.nct (sf + cdf at the critical values;
    where that is NaN, far in a tail, against numerical integration: tests/test_report_compare.py),
    and the G*Power sample sizes the verdicts quote (34 pairs for d_z = 0.5, 15 for 0.8)."""
    for d_z in (0.1, 0.5, 0.8, 1.3, 2.5):
        for n in (2, 3, 5, 10, 34, 100):
            crit = stats.t.ppf(0.975, n - 1)
            nc = d_z * np.sqrt(n)
            ref = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
            tol = 1e-14
            if not np.isfinite(ref):  # scipy's NaN far in a tail (d_z 2.5 at 34 seeds): the power by integration
                ref, tol = _power_by_integration(d_z, n), 1e-7
            assert paired_t_power(d_z, n) == pytest.approx(ref, abs=tol)
    assert seeds_needed(0.5) == 34 and seeds_needed(0.8) == 15


def test_scaling_families_reuse_the_flattened_configs(tmp_path):
    """`Results.items` (kept by prune_cli.results.load) is each config's `_result_items`, and the
    scaling-law points keyed from it are those keyed by flattening every config again."""
    from prune_cli.report.scaling import scaling_points
    from prune_cli.results import _result_items, load

    res = load(_folder(tmp_path / "r", seeds=2))
    assert res.items == {run: _result_items(cfg) for run, cfg in res.configs.items()}
    again = scaling_points(res.metrics, res.configs)
    reused = scaling_points(res.metrics, res.configs, items=res.items)
    assert len(again) and again["family"].nunique() == 2
    pd.testing.assert_frame_equal(reused, again)


def test_every_figure_is_handed_over_before_the_comparisons(tmp_path, monkeypatch):
    """The worker must not wait while this process imports scipy.stats and compares the methods:
    the data of every figure (regions, accuracy, recall change, scaling law) is submitted first."""
    from prune_cli.report import build
    from prune_cli.report.painter import Painter
    from test_report_parallel import _folder as figure_folder

    events: list[str] = []

    class Recording(Painter):
        def submit(self, module, function, *args, **kwargs):
            events.append(function)
            return super().submit(module, function, *args, **kwargs)

    compare = build.compare_methods

    def recording_compare(*args, **kwargs):
        events.append("compare_methods")
        return compare(*args, **kwargs)

    monkeypatch.setattr(build, "Painter", lambda parallel: Recording(False))
    monkeypatch.setattr(build, "compare_methods", recording_compare)
    written = build.build_report(figure_folder(tmp_path / "r", seeds=2), tmp_path / "out")
    figures = {"regions_vs_sparsity", "accuracy_vs_compression", "recall_change_vs_dense", "plot_fits"}
    assert figures <= set(events) and "comparisons.csv" in written
    assert events.index("compare_methods") > max(events.index(f) for f in figures), events
