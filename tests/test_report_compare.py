"""prune-report's paired comparisons where scipy's noncentral t gives NaN, where a method has no
finite value at a sparsity, and at a confidence level other than 95 %: each checked against an
independent computation (scipy.stats called directly, numerical integration, a hand-made folder)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from prune_cli.report import build_report
from prune_cli.report.compare import paired_t_power, seeds_needed, verdict
from test_report_experiments import write_run


def _power_by_integration(d_z: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test: P(|T| > t_crit) for T noncentral t(n - 1, d_z sqrt(n)),
    as T = (Z + nc) / sqrt(V / df), integrating the normal cdf over the chi-square V (each piece
    bounded by 0 and 1, so no tail cancels to NaN)."""
    df, nc = n - 1, d_z * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)

    def given_v(v):
        s = math.sqrt(v / df)
        return stats.norm.sf(crit * s - nc) + stats.norm.cdf(-crit * s - nc)

    lo, hi = stats.chi2.ppf([1e-15, 1 - 1e-15], df)
    return integrate.quad(lambda v: given_v(v) * stats.chi2.pdf(v, df), lo, hi, limit=500, points=[df])[0]


@pytest.mark.parametrize("d_z", [0.5, 1.0, 2.0, 5.42, 6.0, 8.0])
def test_power_and_seeds_needed_against_numerical_integration(d_z):
    """scipy.special.nctdtr returns NaN for the far tail of a large noncentrality; NaN < 0.8 is
    False, so the search stopped at once: d_z 6 and 8 said 2 seeds (power 0.49, 0.63: 3 needed),
    5.42 said 4 (3 needed)."""
    for n in (2, 3, 4, 5, 8, 16, 40):
        assert paired_t_power(d_z, n) == pytest.approx(_power_by_integration(d_z, n), abs=1e-7)
    n = 2
    while _power_by_integration(d_z, n) < 0.8:
        n += 1
    assert seeds_needed(d_z) == n and seeds_needed(-d_z) == n


def test_power_is_finite_at_many_seeds():
    """The upper tail also comes back NaN from nctdtr for d_z 1.23 at 1,000 seeds: power is 1 there."""
    assert paired_t_power(1.2262711864406781, 1000) == pytest.approx(1.0, abs=1e-12)
    assert paired_t_power(20.0, 2) == pytest.approx(_power_by_integration(20.0, 2), abs=1e-7)


def test_not_significant_never_asks_for_fewer_seeds_than_used():
    """At 3 seeds, d_z 5: p = 0.013 before Holm's correction over 6 comparisons, 0.078 after it. The
    observed effect needs only 3 seeds for 80 % power (0.975), so "need about N seeds" with N <= 3
    would make no sense; the verdict says what made it not significant."""
    d = np.array([0.04, 0.06, 0.05])
    t = stats.ttest_1samp(d, 0)
    row = {
        "method": "A",
        "baseline": "B",
        "target_sparsity": 0.5,
        "n": 3,
        "mean_diff": d.mean(),
        "sd_diff": d.std(ddof=1),
        "t_low": 0.0,
        "t_high": 0.1,
        "d_z": d.mean() / d.std(ddof=1),
        "p_t": t.pvalue,
        "p_holm": min(1.0, 6 * t.pvalue),
    }
    text = verdict(row)
    assert "need about" not in text
    assert "not distinguishable with 3 seeds" in text and "Holm" in text and f"p={t.pvalue:.2g} before" in text


@pytest.mark.parametrize("lost", ["magnitude", "random"])
def test_a_method_without_a_finite_value_at_a_sparsity_is_named(tmp_path, lost):
    """The baseline (or the other method) diverged on every seed at sparsity 0.9: its accuracies are
    all NaN. pivot_table dropped its column, so the comparison at 0.9 vanished without a row, a verdict
    or a "not paired" line; now it has a row (n 0) whose verdict names the method with no value."""
    root = tmp_path / "res"
    for seed in range(3):
        for sparsity in (0.5, 0.9):
            nan = sparsity == 0.9
            write_run(root, seed, "magnitude", sparsity, 10, math.nan if nan and lost == "magnitude" else 0.8 + 0.01 * seed)
            write_run(root, seed, "random", sparsity, 10, math.nan if nan and lost == "random" else 0.7 + 0.02 * seed)
    written = build_report(root, plots=False)
    c = pd.read_csv(written["comparisons.csv"]).set_index("target_sparsity")
    assert sorted(c.index) == [0.5, 0.9]
    assert c.loc[0.5, "n"] == 3 and c.loc[0.5, "mean_diff"] == pytest.approx(-0.09)
    expected = f"random vs magnitude at sparsity 0.9: not compared, {lost}'s values are all NaN (n finite = 0 of 3 seeds)"
    assert c.loc[0.9, "n"] == 0 and c.loc[0.9, "verdict"] == expected
    assert f"- {expected}" in written["summary.md"].read_text()


def test_a_p_value_is_never_printed_as_the_test_level():
    """At --confidence 0.9 a Holm p of 0.1042 was printed "p=0.1 (Holm)" beside "not distinguishable"
    at alpha 0.1; it needs a third digit. 0.0499 at alpha 0.05 likewise ("p=0.05" beside a claim)."""
    from prune_cli.report.compare import verdict

    base = {"method": "A", "baseline": "B", "target_sparsity": 0.5, "n": 4, "mean_diff": 0.01, "sd_diff": 0.01}
    row = {**base, "t_low": -0.005, "t_high": 0.025, "d_z": 1.0, "p_t": 0.06, "p_holm": 0.1042, "confidence": 0.9}
    text = verdict(row, alpha=0.1)
    assert "not distinguishable" in text and "p=0.104 (Holm)" in text
    powered = verdict({**row, "d_z": 3.0, "p_t": 0.0996}, alpha=0.1)  # 4 seeds give 80 % power at d_z 3
    assert "p=0.0996 before Holm's correction" in powered
    claim = verdict({**row, "p_holm": 0.0499, "confidence": 0.95}, alpha=0.05)
    assert claim.startswith("A > B") and "p=0.0499 (Holm)" in claim
    assert "p=0.032 (Holm)" in verdict({**row, "p_holm": 0.032, "confidence": 0.95}, alpha=0.05)
    assert "p=0.10000000001 (Holm)" in verdict({**row, "p_holm": 0.10000000001}, alpha=0.1)  # 1e-11 above the level


def test_a_verdict_names_the_seeds_left_out_for_lack_of_a_value(tmp_path):
    """snip diverged (NaN) on 2 of its 5 seeds: the comparison uses the 3 seeds it survived, and the
    verdict said "snip > magnitude ..., 3 seeds" without a word that the method failed on the other 2
    (only standards.txt said so), overstating a method judged on its successes alone."""
    root = tmp_path / "res"
    snip = [0.80, 0.82, 0.81, math.nan, math.nan]
    for seed in range(5):
        write_run(root, seed, "magnitude", 0.5, 10, 0.70 + 0.01 * (seed % 3))
        write_run(root, seed, "snip", 0.5, 10, snip[seed])
    written = build_report(root, plots=False)
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    assert row["n"] == 3 and row["seeds"] == "0 1 2"
    assert row["verdict"].startswith("snip > magnitude at sparsity 0.5")
    assert row["verdict"].endswith("; left out: snip has no value on seeds 3, 4 (of its 5 seeds)")
    assert row["verdict"] in written["summary.md"].read_text()


def test_a_baseline_not_run_at_a_sparsity_is_said_so(tmp_path):
    """magnitude ran at 0.5 only, random at 0.5 and 0.9 (same data, model, training): the line says
    magnitude was not run at 0.9, not that no run shares random's data, model and training."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8 + 0.01 * seed)
        write_run(root, seed, "random", 0.5, 10, 0.7 + 0.02 * seed)
        write_run(root, seed, "random", 0.9, 10, 0.6 + 0.02 * seed)
    md = build_report(root, plots=False)["summary.md"].read_text()
    (note,) = [line for line in md.splitlines() if "not paired" in line]
    assert note.startswith("- random at sparsity 0.9") and "magnitude was not run at sparsity 0.9" in note


def test_the_verdict_tests_at_the_confidence_level_of_its_interval(tmp_path):
    """4 seeds, p = 0.023 (one comparison: Holm changes nothing). With --confidence 0.99 the verdict
    said "random < magnitude" (tested at 0.05) while quoting its own 99 % interval, which contains 0.
    The test level is 1 - confidence: at 0.99 not distinguishable, at 0.95 a difference."""
    magnitude, random = [0.80, 0.82, 0.81, 0.83], [0.78, 0.81, 0.775, 0.80]
    root = tmp_path / "res"
    for seed in range(4):
        write_run(root, seed, "magnitude", 0.5, 10, magnitude[seed])
        write_run(root, seed, "random", 0.5, 10, random[seed])
    d = np.subtract(random, magnitude)
    p = stats.ttest_rel(random, magnitude).pvalue
    low, high = stats.t.interval(0.99, 3, d.mean(), stats.sem(d))
    assert 0.01 < p < 0.05 and low < 0 < high
    at_99 = pd.read_csv(build_report(root, out=tmp_path / "r99", confidence=0.99, plots=False)["comparisons.csv"]).iloc[0]
    assert at_99["p_holm"] == pytest.approx(p)
    assert (at_99["t_low"], at_99["t_high"]) == pytest.approx((low, high))
    assert at_99["verdict"].startswith("random vs magnitude at sparsity 0.5: not distinguishable with 4 seeds")
    at_95 = pd.read_csv(build_report(root, out=tmp_path / "r95", confidence=0.95, plots=False)["comparisons.csv"]).iloc[0]
    assert at_95["verdict"].startswith("random < magnitude at sparsity 0.5: -2.4 points")


def test_comparisons_of_one_pair_at_one_sparsity_say_what_sets_them_apart(tmp_path):
    """A sweep over train.epochs (or schedules) gives one comparison of magnitude and random at 0.5 per
    setting: the verdicts read word for word alike ("random < magnitude at sparsity 0.5: ...") and only
    a hash that no other table shows told them apart. Each now names its setting, in the verdict and
    in comparisons.csv; a comparison alone at its sparsity has none."""
    root = tmp_path / "res"
    for seed in range(3):
        for epochs, gap in ((2, 0.10), (6, 0.02)):
            write_run(root, seed, "magnitude", 0.5, epochs, 0.6 + 0.01 * seed)
            write_run(root, seed, "random", 0.5, epochs, 0.6 - gap + 0.013 * seed)
        write_run(root, seed, "magnitude", 0.9, 2, 0.5 + 0.01 * seed)
        write_run(root, seed, "random", 0.9, 2, 0.4 + 0.013 * seed)
    out = build_report(root, plots=False)
    table = pd.read_csv(out["comparisons.csv"], keep_default_na=False).set_index(["target_sparsity", "setting"])
    assert sorted(table.index) == [(0.5, "train.epochs=2"), (0.5, "train.epochs=6"), (0.9, "")]
    # the gap each setting was written with, so the label is on the right row
    assert table.loc[(0.5, "train.epochs=2"), "mean_diff"] == pytest.approx(-0.1 + 0.003)
    assert table.loc[(0.5, "train.epochs=6"), "mean_diff"] == pytest.approx(-0.02 + 0.003)
    md = out["summary.md"].read_text()
    assert "random < magnitude at sparsity 0.5 [train.epochs=2]: -9.7 points" in md
    assert "random < magnitude at sparsity 0.5 [train.epochs=6]: -1.7 points" in md
    assert "random < magnitude at sparsity 0.9: " in md
