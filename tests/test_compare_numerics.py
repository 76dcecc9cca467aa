"""Numerical corner cases of prune-report's paired comparisons, each checked against scipy.stats or a
count worked by hand: float32-rounded count ratios, infinite values, a single huge outlier, the seed
search near its limit, small significant differences, and zero differences in the Wilcoxon test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from prune_cli.metrics.classification import classification_metrics
from prune_cli.report import build_report
from prune_cli.report.compare import MIN_WILCOXON_N, paired_statistics, seeds_needed, verdict
from prune_cli.training import Evaluation
from test_report_experiments import write_run


def test_top5_accuracy_is_the_exact_ratio_of_counts():
    """218 of 300 top-5 hits is 218/300 as a double: the float32 mean (0.7266666889...) made a constant
    difference of 3 hits per 1,000 differ between seeds by 6e-8, and the report then gave a t-test on
    that rounding noise (t = 225,089, p = 3e-26) instead of "on every one of the seeds"."""
    hits = torch.zeros(300, dtype=torch.bool)
    hits[:218] = True
    ev = Evaluation(torch.zeros(300, dtype=torch.long), torch.zeros(300, dtype=torch.long), hits, 0.5)
    scalars, _ = classification_metrics(ev, 10, "test")
    (top5,) = [r["value"] for r in scalars if r["metric"] == "top5_accuracy"]
    assert top5 == 218 / 300


def test_a_constant_count_difference_of_top5_hits_is_no_spread(tmp_path):
    root = tmp_path / "res"
    for seed in range(6):
        base = 700 + 17 * seed  # a different number of hits per seed, 3 more for random on each
        for method, hits in (("magnitude", base), ("random", base + 3)):
            ev = Evaluation(torch.zeros(1000, dtype=torch.long), torch.zeros(1000, dtype=torch.long), torch.arange(1000) < hits, 0.5)
            value = next(r["value"] for r in classification_metrics(ev, 10, "test")[0] if r["metric"] == "top5_accuracy")
            write_run(root, seed, method, 0.5, 10, 0.8, extra_rows=[("top5_accuracy", value)])
    (row,) = pd.read_csv(build_report(root, plots=False, metric="top5_accuracy")["comparisons.csv"]).to_dict(orient="records")
    assert row["sd_diff"] == 0 and math.isnan(row["p_t"])
    assert "on every one of the 6 seeds (no spread between seeds, so no t-test)" in row["verdict"]


def test_an_infinite_value_is_left_out_of_the_pairs(tmp_path):
    """An overflowed loss (inf) was paired: the mean difference became inf - inf and the comparison said
    "identical on all 4 seeds" while naming seed 1 as left out."""
    root = tmp_path / "res"
    magnitude = [0.50, 0.60, 0.55, 0.52]
    random = [0.70, math.inf, 0.75, 0.71]
    for seed in range(4):
        for method, losses in (("magnitude", magnitude), ("random", random)):
            write_run(root, seed, method, 0.5, 10, 0.8, extra_rows=[("loss", losses[seed])])
    (row,) = pd.read_csv(build_report(root, plots=False, metric="loss")["comparisons.csv"]).to_dict(orient="records")
    a, b = np.array([0.70, 0.75, 0.71]), np.array([0.50, 0.55, 0.52])
    assert row["n"] == 3 and row["seeds"] == "0 2 3"
    assert row["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    low, high = stats.t.interval(0.95, 2, loc=(a - b).mean(), scale=stats.sem(a - b))
    assert (row["t_low"], row["t_high"]) == (pytest.approx(low), pytest.approx(high))
    assert "identical" not in row["verdict"] and row["verdict"].endswith("left out: random has no value on seed 1 (of its 4 seeds)")


def test_one_huge_outlier_does_not_erase_the_other_differences_in_the_wilcoxon_test():
    """The tie tolerance was 1e-12 times the largest |difference|: one exploded run (1e15) made it 1,000,
    every other difference became 0 and was dropped, and p came out 1.0 where scipy gives 1/64."""
    d = np.array([0.2, 0.25, 0.18, 0.22, 0.3, 0.21, 1e15])
    row = paired_statistics(d, np.zeros_like(d))
    w = stats.wilcoxon(d)
    assert (row["wilcoxon_stat"], row["p_wilcoxon"]) == (w.statistic, pytest.approx(w.pvalue)) and w.pvalue == 1 / 64


def _seeds_by_noncentral_t(d_z: float, alpha: float = 0.05, power: float = 0.8) -> int:
    def power_at(n: int) -> float:
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = d_z * math.sqrt(n)
        return stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)

    lo, hi = 2, 20_000
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid + 1, hi)
    return lo


@pytest.mark.parametrize("d_z, alpha", [(0.03, 0.05), (0.0296, 0.05), (0.035, 0.01)])
def test_seeds_needed_between_the_last_doubling_and_the_search_limit(d_z, alpha):
    """The doubling search jumped from 8,192 to 16,384, past the 10,000 it searches, and said "more than
    10,000 seeds" without trying the seeds in between."""
    assert seeds_needed(d_z, alpha=alpha) == _seeds_by_noncentral_t(d_z, alpha) <= 10_000


def test_a_small_significant_difference_is_not_printed_as_zero():
    """Differences of 1-3 test examples of 10,000 on six seeds: p = 0.002, and the verdict read
    "A > B: +0.0 points [+0.0, +0.0]"."""
    b = np.array([0.8000, 0.8100, 0.7900, 0.8050, 0.7950, 0.8020])
    a = b + np.array([2, 1, 3, 2, 2, 1]) / 10_000
    row = {**paired_statistics(a, b), "method": "A", "baseline": "B", "target_sparsity": 0.5}
    row["p_holm"] = row["p_t"]
    text = verdict(row)
    assert text.startswith("A > B at sparsity 0.5: +0.02 points [+0.01, +0.03]"), text  # 0.0183 [0.0100, 0.0267]


def test_zero_differences_do_not_count_towards_the_wilcoxon_minimum():
    """scipy's default (zero_method="wilcox", Wilcoxon 1945) drops zero differences: 6 seeds of which 2
    tie are a 4-pair test whose smallest p is 0.125, so it is not reported; 8 seeds with 2 ties are 6
    pairs, and p is scipy's."""
    six = np.array([0.01, 0.02, 0.0, 0.03, 0.0, 0.015])
    row = paired_statistics(six, np.zeros(6))
    assert math.isnan(row["p_wilcoxon"]) and MIN_WILCOXON_N == 6
    eight = np.array([0.01, 0.02, 0.0, 0.03, 0.0, 0.015, 0.025, -0.005])
    row = paired_statistics(eight, np.zeros(8))
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(eight).pvalue)
