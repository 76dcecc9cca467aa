"""The words of prune-report's verdicts (prune_cli/report/compare.py): what a wide interval cannot rule
out, which seeds each side has when too few are shared, and that the quoted interval is the
unadjusted one beside a Holm-adjusted p-value. The numbers are computed here with scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.report import build_report
from prune_cli.report.compare import MAX_SEEDS_SEARCHED, paired_statistics, verdict
from test_report_experiments import write_run


def _verdict(a, b, p_holm=None):
    row = paired_statistics(a, b)
    row.update(method="A", baseline="B", target_sparsity=0.85, p_holm=row["p_t"] if p_holm is None else p_holm)
    return row, verdict(row)


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


@pytest.mark.parametrize(
    "d",
    [
        [0.05, -0.0499, 0.0],  # d_z 0.00067: about 1.8e7 seeds for 80 % power, beyond the search
        [0.1, -0.1, 0.0],  # d_z exactly 0
    ],
)
def test_a_wide_interval_is_never_called_no_measurable_difference(d):
    """3 seeds with a t interval of about +-12 (and +-25) points: the verdict said "no measurable
    difference at the observed effect", which reads as "there is no difference". It now says what
    the interval cannot rule out, and (for a non-zero effect) that more seeds than the search limit
    would be needed."""
    b = np.array([0.7, 0.72, 0.71])
    a = b + np.array(d)
    row, text = _verdict(a, b)
    diff = a - b
    low, high = stats.t.interval(0.95, len(diff) - 1, diff.mean(), stats.sem(diff))
    assert (row["t_low"], row["t_high"]) == pytest.approx((low, high))
    assert "no measurable difference" not in text
    assert f"[{_points(low)}, {_points(high)}]" in text
    widest = 100 * max(abs(low), abs(high))
    assert f"cannot rule out a difference of up to {widest:.1f} points" in text
    if diff.mean() != 0 and abs(diff.mean()) > 1e-12:
        assert f"more than {MAX_SEEDS_SEARCHED:,} seeds would be needed for 80% power" in text
    else:
        assert "the observed mean difference is 0" in text


def test_a_mean_difference_of_0_up_to_rounding_is_0(tmp_path):
    """Accuracies are counts over the test set: differences -2/90, 0, +2/90 have mean 0, which floats
    give as -1.7e-15. The verdict said "-0.0 points ... more than 10,000 seeds would be needed (d_z=-1.7e-15)"
    and comparisons.csv stored that d_z; a mean within rounding of 0 (the tolerance the spread already
    has, SPREAD_TOL) is 0, and the verdict is the documented one for a mean difference of 0."""
    from fractions import Fraction

    a, b = [79 / 90, 79 / 90, 63 / 90], [81 / 90, 79 / 90, 61 / 90]
    assert np.mean(np.subtract(a, b)) != 0  # what floats make of it: the case under test
    exact = [Fraction(x) for x in (-2, 0, 2)]  # the differences in ninetieths, by hand
    sd = math.sqrt(sum(x * x for x in exact) / 2) / 90
    widest = 100 * stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    row, text = _verdict(a, b)
    assert row["mean_diff"] == 0 and row["d_z"] == 0 and row["t_stat"] == 0 and row["p_t"] == 1
    assert row["t_low"] == pytest.approx(-row["t_high"]) and row["t_high"] == pytest.approx(widest / 100)
    rule_out = f"the observed mean difference is 0, but the interval cannot rule out a difference of up to {widest:.1f} points"
    assert text.endswith(rule_out)
    assert "-0.0" not in text and "+0.0 points" in text
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, b[seed])
        write_run(root, seed, "random", 0.5, 10, a[seed])
    (row,) = pd.read_csv(build_report(root, plots=False)["comparisons.csv"]).to_dict(orient="records")
    assert row["mean_diff"] == 0 and row["d_z"] == 0
    assert "the observed mean difference is 0" in row["verdict"]


def _fail(root, run_id: str, error_type: str) -> None:
    """Make a completed run directory a failed one, as prune-run leaves it: config.yaml and failed.json,
    no COMPLETE and no metrics."""
    import json

    d = root / "runs" / run_id
    (d / "COMPLETE").unlink()
    (d / "metrics.csv").unlink()
    (d / "failed.json").write_text(json.dumps({"status": "failed", "error_type": error_type, "message": "..."}))


def test_a_failed_seed_is_named_in_its_verdict(tmp_path):
    """random's seed 1 at sparsity 0.9 failed (LayerCollapse): the verdict compared the 2 other seeds and
    said "2 seeds" without a word on the third, while a seed without a value (NaN) is named. It now ends
    with the failed seed and its error; where every run of a method failed at a sparsity, a line above
    the verdicts says so (there was none)."""
    root = tmp_path / "res"
    mag, rnd = [0.80, 0.84, 0.82], [0.70, 0.66, 0.71]
    ids = {}
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, mag[seed])
        ids["random", 0.9, seed] = write_run(root, seed, "random", 0.9, 10, rnd[seed])
        write_run(root, seed, "magnitude", 0.5, 10, mag[seed])
        ids["random", 0.5, seed] = write_run(root, seed, "random", 0.5, 10, rnd[seed])
    _fail(root, ids["random", 0.9, 1], "LayerCollapse")
    for seed in range(3):
        _fail(root, ids["random", 0.5, seed], "LayerCollapse" if seed else "DivergedError")
    written = build_report(root, plots=False)
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    assert row["target_sparsity"] == 0.9 and row["n"] == 2 and row["seeds"] == "0 2"
    diff = np.subtract(rnd, mag)[[0, 2]]
    assert row["mean_diff"] == pytest.approx(diff.mean())
    assert row["verdict"].endswith("; left out: seed 1 of random failed (LayerCollapse)"), row["verdict"]
    md = written["summary.md"].read_text()
    assert "- random at sparsity 0.5 (comparison " in md
    line = next(x for x in md.splitlines() if x.startswith("- random at sparsity 0.5"))
    assert line.endswith("not compared, every run failed: seed 0 (DivergedError), seed 1 (LayerCollapse), seed 2 (LayerCollapse)")


def test_disjoint_seeds_are_named_on_each_side(tmp_path):
    """magnitude ran on seeds 0, 1, 2 and random on 3, 4, 5 (sparsity 0.1); at 0.5 they share seed 0
    only. The verdicts said "0 paired seed(s)" / "1 paired seed(s), no test possible", which reads like
    missing data; they now name the seeds of each side."""
    root = tmp_path / "res"
    for seed in (0, 1, 2):
        write_run(root, seed, "magnitude", 0.1, 10, 0.8 + 0.01 * seed)
        write_run(root, seed + 3, "random", 0.1, 10, 0.7 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.5, 10, 0.8 + 0.01 * seed)
    for seed in (0, 4, 5):
        write_run(root, seed, "random", 0.5, 10, 0.6)
    written = build_report(root, plots=False)
    c = pd.read_csv(written["comparisons.csv"]).set_index("target_sparsity")
    assert c.loc[0.1, "verdict"] == (
        "random vs magnitude at sparsity 0.1: no seed in common, no test possible "
        "(random has seeds 3, 4, 5; magnitude has seeds 0, 1, 2)"
    )
    assert c.loc[0.5, "verdict"] == (
        "random vs magnitude at sparsity 0.5: only seed 0 in common, no test possible "
        "(random has seeds 0, 4, 5; magnitude has seeds 0, 1, 2)"
    )
    assert c.loc[0.1, "seeds_a"] == "3 4 5" and c.loc[0.1, "seeds_b"] == "0 1 2"
    md = written["summary.md"].read_text()
    assert "- random vs magnitude at sparsity 0.1: no seed in common" in md


def test_the_quoted_interval_is_said_to_be_unadjusted_beside_the_holm_p(tmp_path):
    """Holm adjusts the p-values for the report's comparisons, not the t intervals: a verdict that
    quoted "[lo, hi], p=... (Holm)" let the interval pass for a Holm-adjusted one. The verdict and
    the table's column say that the interval is not adjusted."""
    b = np.array([0.5, 0.51, 0.52])
    a = b + np.array([0.07, 0.08, 0.09])
    row, text = _verdict(a, b)
    assert text.startswith("A > B at sparsity 0.85: +8.0 points")
    assert f"[{_points(row['t_low'])}, {_points(row['t_high'])}] (95% t interval, not adjusted for multiple comparisons)" in text
    assert f"p={row['p_t']:.2g} (Holm)" in text
    _, weak = _verdict(b + np.array([0.01, -0.02, 0.02]), b, p_holm=0.9)
    assert "(95% t interval, not adjusted for multiple comparisons)" in weak
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, b[seed])
        write_run(root, seed, "random", 0.5, 10, a[seed])
    md = build_report(root, plots=False)["summary.md"].read_text()
    header = next(line for line in md.split("paired by seed")[1].splitlines() if line.startswith("|"))
    assert "| t 95% (not adjusted) |" in header and "| p (Holm) |" in header
    assert not math.isnan(row["p_t"])


def test_each_verdict_names_its_dataset_and_model_when_the_folder_holds_several(tmp_path):
    """random against magnitude at 0.9 on two datasets: the two verdicts read "random < magnitude at sparsity
    0.9: ..." with different numbers and nothing to say which data they were about. Each now names its
    dataset/model, and its mean difference is that dataset's (computed here from the planted accuracies);
    a folder of one dataset/model keeps the shorter verdict."""
    root = tmp_path / "res"
    planted = {"toy": ([0.80, 0.82, 0.81], [0.70, 0.71, 0.69]), "mnist1d": ([0.60, 0.64, 0.61], [0.50, 0.55, 0.52])}
    for dataset, (magnitude, random) in planted.items():
        for seed in range(3):
            write_run(root, seed, "magnitude", 0.9, 10, magnitude[seed], dataset=dataset)
            write_run(root, seed, "random", 0.9, 10, random[seed], dataset=dataset)
    comparisons = pd.read_csv(build_report(root, plots=False)["comparisons.csv"])
    assert len(comparisons) == 2
    for dataset, (magnitude, random) in planted.items():
        (text,) = [v for v in comparisons["verdict"] if f" on {dataset}/mlp at sparsity 0.9:" in v]
        diff = 100 * (np.mean(random) - np.mean(magnitude))
        assert text.startswith(f"random < magnitude on {dataset}/mlp at sparsity 0.9: {diff:+.1f} points")
        assert f"- {text}" in (root / "report" / "summary.md").read_text()

    alone = tmp_path / "alone"
    for seed in range(3):
        write_run(alone, seed, "magnitude", 0.9, 10, planted["toy"][0][seed])
        write_run(alone, seed, "random", 0.9, 10, planted["toy"][1][seed])
    (text,) = pd.read_csv(build_report(alone, plots=False)["comparisons.csv"])["verdict"]
    assert text.startswith("random < magnitude at sparsity 0.9: ")


def test_a_baseline_whose_runs_failed_is_named_so_not_as_never_run(tmp_path):
    """The README's tour sweep: magnitude's runs at 0.999 failed (LayerCollapse); the verdicts, the
    standards check and the card said "magnitude was not run at sparsity 0.999" / "missing baselines"
    while the next line said that its every run failed (front-door review)."""
    root = tmp_path / "res"
    ids = {}
    for seed in range(2):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8)
        write_run(root, seed, "random", 0.5, 10, 0.7)
        write_run(root, seed, "random", 0.999, 10, 0.1)
        ids[seed] = write_run(root, seed, "magnitude", 0.999, 10, 0.1)
    for seed in range(2):
        _fail(root, ids[seed], "LayerCollapse")
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    line = next(x for x in md.splitlines() if x.startswith("- random at sparsity 0.999"))
    assert line.endswith("not paired, magnitude has no completed run at sparsity 0.999 (2 run(s) failed: LayerCollapse)"), line
    standards = written["standards.txt"].read_text()
    assert "[R5] missing baselines at sparsity 0.999: magnitude (2 run(s) failed: LayerCollapse)" in standards
    card = pd.read_csv(written["report_card.csv"], keep_default_na=False)
    missing = card.loc[card["recommendation"].str.startswith("baselines present"), "missing"].iloc[0]
    assert "magnitude at 0.999 (2 run(s) failed: LayerCollapse)" in missing, missing
