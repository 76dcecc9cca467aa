"""Paired comparisons (prune_cli/report/compare.py) against hand-worked tables, closed forms and
scipy called directly; the verdict text on constructed folders; --baseline on the command line."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.report import build_report, main
from prune_cli.report.compare import bootstrap_interval, holm, paired_statistics, seeds_needed
from prune_cli.results import load
from test_report_experiments import write_run

T_975_2 = 4.302652729911275  # Student t quantile 0.975, 2 degrees of freedom (tables: 4.303)


def _p_two_sided_df2(t: float) -> float:
    """Closed form for 2 degrees of freedom: F(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def test_paired_statistics_hand_worked():
    a, b = [0.80, 0.85, 0.90], [0.70, 0.80, 0.81]  # differences 0.10, 0.05, 0.09
    r = paired_statistics(a, b)
    sd = math.sqrt((0.02**2 + 0.03**2 + 0.01**2) / 2)
    assert r["n"] == 3 and r["mean_diff"] == pytest.approx(0.08) and r["sd_diff"] == pytest.approx(sd)
    half = T_975_2 * sd / math.sqrt(3)
    assert (r["t_low"], r["t_high"]) == pytest.approx((0.08 - half, 0.08 + half))
    t = 0.08 / (sd / math.sqrt(3))
    assert r["t_stat"] == pytest.approx(t) and r["p_t"] == pytest.approx(_p_two_sided_df2(t))
    assert r["d_z"] == pytest.approx(0.08 / sd)
    # exact bootstrap by hand: the 27 resample means; 1/27 > 2.5 %, so the interval is [min, max] = [0.05, 0.10]
    assert (r["boot_low"], r["boot_high"]) == pytest.approx((0.05, 0.10)) and r["bootstrap"] == "exact"
    assert math.isnan(r["p_wilcoxon"])  # n < 6


def test_exact_bootstrap_against_brute_force_percentiles():
    d = np.array([0.3, -0.1, 0.2, 0.05, 0.0])
    means = sorted(np.mean(s) for s in itertools.product(d, repeat=5))  # 3125 equally likely resamples
    lo = means[math.ceil(0.025 * len(means)) - 1]  # smallest value whose CDF reaches 2.5 %
    hi = means[math.ceil(0.975 * len(means)) - 1]
    assert bootstrap_interval(d)[:2] == pytest.approx((lo, hi))
    assert bootstrap_interval([1.0, 3.0])[:2] == pytest.approx((1.0, 3.0))  # means 1, 2, 2, 3


def test_resampled_bootstrap_and_wilcoxon_for_larger_n():
    rng = np.random.default_rng(1)
    d = rng.normal(0.02, 0.01, size=12)
    lo, hi, how = bootstrap_interval(d)
    assert how == "resampled" and lo < d.mean() < hi
    normal_half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))  # the large-sample interval, within 25 %
    assert (hi - lo) / 2 == pytest.approx(normal_half, rel=0.25)
    # Wilcoxon by hand: 6 positive distinct differences -> W = 0, exact two-sided p = 2 / 2^6
    a, b = np.arange(6) + 1.0, np.zeros(6) + [0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    r = paired_statistics(a, b)
    assert r["wilcoxon_stat"] == 0 and r["p_wilcoxon"] == pytest.approx(2 / 64)
    assert r["p_t"] == pytest.approx(stats.ttest_1samp(a - b, 0).pvalue)


def test_holm_hand_worked():
    adj = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert adj[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(adj[4])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("d_z, n", [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_needed_matches_power_tables(d_z, n):
    # G*Power, "means: difference from constant (one sample / matched pairs)", alpha 0.05 two-sided, power 0.8
    assert seeds_needed(d_z) == n and seeds_needed(-d_z) == n
    assert seeds_needed(0.0) is None


def _folder(root, diffs, methods=("lookahead", "magnitude"), sparsity=0.99, base=0.5, epochs=10):
    for seed, d in enumerate(diffs):
        write_run(root, seed, methods[1], sparsity, epochs, base + 0.01 * seed)
        write_run(root, seed, methods[0], sparsity, epochs, base + 0.01 * seed + d)
    return root


def test_verdict_significant(tmp_path):
    root = _folder(tmp_path / "res", [0.07, 0.08, 0.09])
    written = build_report(root, plots=False)
    c = pd.read_csv(written["comparisons.csv"])
    assert len(c) == 1
    t = 0.08 / (0.01 / math.sqrt(3))
    p = _p_two_sided_df2(t)
    half = 100 * T_975_2 * 0.01 / math.sqrt(3)
    expected = f"lookahead > magnitude at sparsity 0.99: +8.0 points [{8 - half:+.1f}, {8 + half:+.1f}], p={p:.2g} (Holm), 3 seeds"
    assert c["verdict"].iloc[0] == expected
    assert f"- {expected}" in written["summary.md"].read_text()


def test_verdict_not_distinguishable_names_the_seeds_needed(tmp_path):
    diffs = [0.01, -0.02, 0.02]
    root = _folder(tmp_path / "res", diffs, methods=("random", "magnitude"))
    c = pd.read_csv(build_report(root, plots=False)["comparisons.csv"]).iloc[0]
    d_z = np.mean(diffs) / np.std(diffs, ddof=1)
    # Guenther's approximation of the paired-t sample size: ((z_.975 + z_.8) / d)^2 + z_.975^2 / 2
    approx = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / d_z) ** 2 + stats.norm.ppf(0.975) ** 2 / 2
    n = int(c["verdict"].split("need about ")[1].split(" ")[0])
    assert abs(n - approx) <= 2
    assert c["verdict"].startswith("random vs magnitude at sparsity 0.99: not distinguishable with 3 seeds (+0.3 points")


def test_pairs_only_same_comparison_and_seed_and_holm_over_the_report(tmp_path):
    root = tmp_path / "res"
    _folder(root, [0.07, 0.08, 0.09], epochs=10)
    _folder(root, [0.01, 0.03, 0.02], epochs=20, base=0.6)
    write_run(root, 9, "lookahead", 0.99, 10, 0.9)  # a seed without a magnitude partner: not paired
    c = pd.read_csv(build_report(root, plots=False)["comparisons.csv"])
    assert len(c) == 2 and c["n"].tolist() == [3, 3] and (c["seeds"] == "0 1 2").all()
    assert sorted(c["mean_diff"]) == pytest.approx([0.02, 0.08])
    assert c["p_holm"].to_numpy() == pytest.approx(holm(c["p_t"]))
    assert load(root).runs.groupby("comparison").size().sort_values().tolist() == [6, 7]


def test_baseline_option_and_bad_baseline(tmp_path, capsys):
    root = _folder(tmp_path / "res", [0.07, 0.08, 0.09])
    _folder(root, [-0.1, -0.1, -0.12], methods=("random", "magnitude"))  # magnitude runs exist already: skip
    c = pd.read_csv(build_report(root, plots=False, baseline="random")["comparisons.csv"])
    assert set(c["baseline"]) == {"random"} and set(c["method"]) == {"lookahead", "magnitude"}
    out = tmp_path / "out"
    # prune-report's entry point in this process (a new interpreter adds nothing to the message and exit code)
    with pytest.raises(SystemExit) as exit_:
        main([str(root), "--baseline", "lap", "--out", str(out), "--no-plots"])
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and "--baseline 'lap'" in stderr and "allowed: lookahead, magnitude, random" in stderr
    assert not out.exists()
