"""Paired comparisons (prune_cli/report/compare.py) against hand-worked tables, closed forms and
scipy called directly; the verdict text on constructed folders; --baseline on the command line."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
import yaml

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


def test_wilcoxon_sees_differences_equal_up_to_rounding_as_ties():
    """Accuracies are counts out of 90: 63/90 - 62/90 and 78/90 - 77/90 are both 1/90 but differ in the
    last bits, so the signed-rank test ranked five tied |d| as 1..5 (W = 4, p = 0.0547) instead of giving
    them their midrank 3 (W = 3, p = 0.0469, across 0.05). Expected by enumerating the 2^8 sign flips
    with midranks, by hand."""
    a = np.array([63, 78, 57, 63, 78, 75, 67, 51]) / 90
    b = np.array([62, 76, 58, 62, 77, 74, 65, 48]) / 90
    d = [1, 2, -1, 1, 1, 1, 2, 3]
    ranks = stats.rankdata(np.abs(d))  # midranks: |d| = 1 five times -> 3
    observed = sum(r for r, x in zip(ranks, d) if x < 0)  # W = the smaller rank sum: 3
    flips = [sum(r for r, s in zip(ranks, signs) if s < 0) for signs in itertools.product((1, -1), repeat=8)]
    total = sum(ranks)
    p = sum(min(w, total - w) <= observed for w in flips) / len(flips)
    r = paired_statistics(a, b)
    assert r["wilcoxon_stat"] == observed == 3 and r["p_wilcoxon"] == pytest.approx(p) == pytest.approx(0.046875)


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
    interval = f"[{8 - half:+.1f}, {8 + half:+.1f}] (95% t interval, not adjusted for multiple comparisons)"
    expected = f"lookahead > magnitude at sparsity 0.99: +8.0 points {interval}, p={p:.2g} (Holm), 3 seeds"
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


def test_variants_of_one_method_are_compared_apart_never_averaged(tmp_path):
    """magnitude with two allocations and random, seeds 0-2: each magnitude variant is a method of
    its own, labelled by the option that tells them apart, compared with random and with the other
    variant. Before, the two were averaged seed by seed into one "magnitude" (mean_b 0.865)."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.90 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.5, 10, 0.80 + 0.02 * seed, allocation="layerwise")
        write_run(root, seed, "random", 0.5, 10, 0.60 + 0.01 * seed)
    written = build_report(root, plots=False)
    c = pd.read_csv(written["comparisons.csv"]).set_index(["method", "baseline"])
    g, lw = "magnitude [allocation=global]", "magnitude [allocation=layerwise]"
    assert set(c.index) == {("random", g), ("random", lw), (g, lw)}
    assert c.loc[("random", g), "mean_b"] == pytest.approx(0.91) and c.loc[("random", g), "mean_diff"] == pytest.approx(-0.30)
    assert c.loc[("random", lw), "mean_b"] == pytest.approx(0.82)
    assert c.loc[(g, lw), "mean_diff"] == pytest.approx(0.09)  # per seed 0.10, 0.09, 0.08
    md = written["summary.md"].read_text()
    assert f"{g} > {lw} at sparsity 0.5" in md
    experiments = md.split("## Experiments")[1].split("##")[0]
    assert "method.allocation" in experiments and "layerwise" in experiments  # the key that tells them apart is shown
    for section in ("## Recall distortion", "## Disparate impact"):  # each row names its experiment
        header = next(line for line in md.split(section)[1].splitlines() if line.startswith("|"))
        assert "| experiment |" in header, section


def test_variants_apart_from_the_shared_csvs_alone(tmp_path):
    """Without run directories the variants are told apart by the context columns (allocation)."""
    from prune_cli.core.tables import shared_name

    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.90 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.5, 10, 0.80 + 0.02 * seed, allocation="layerwise")
    rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob("*/metrics.csv")))
    rows.to_csv(root / shared_name("metrics.csv"), index=False)
    import shutil

    shutil.rmtree(root / "runs")
    c = pd.read_csv(build_report(root, plots=False)["comparisons.csv"])
    assert c[["method", "baseline"]].values.tolist() == [["magnitude [allocation=global]", "magnitude [allocation=layerwise]"]]
    assert c["mean_diff"].iloc[0] == pytest.approx(0.09)


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.75, 0.875, 1.0], [0.5, 0.625, 0.75]),  # exact binary fractions: the differences are exactly 0.25
        ([83 / 90, 90 / 90, 85 / 90], [53 / 90, 60 / 90, 55 / 90]),  # ninetieths: 1/3 up to the last bit
    ],
)
def test_the_same_difference_on_every_seed_gets_one_verdict_whatever_the_rounding(a, b):
    """No spread between seeds: the t statistic is mean / 0 (scipy.stats.ttest_rel says t = inf,
    p = 0 for the first, and p ~ 1e-32 for the second only through rounding). Both get the same
    statement, without a t-test; before, the first was "no measurable difference" and the second
    "A > B" at p = 3e-32."""
    from prune_cli.report.compare import verdict

    r = paired_statistics(a, b)
    assert r["sd_diff"] == 0 and math.isnan(r["p_t"]) and math.isnan(r["d_z"])
    assert math.isnan(r["t_low"]) and math.isnan(r["t_high"])  # no t interval either (it was [mean, mean])
    text = verdict({**r, "method": "A", "baseline": "B", "target_sparsity": 0.5, "p_holm": math.nan})
    points = f"{100 * (a[0] - b[0]):+.1f}"
    assert text == f"A vs B at sparsity 0.5: {points} points on every one of the 3 seeds (no spread between seeds, so no t-test)"
    same = paired_statistics([0.5, 0.6], [0.5, 0.6])
    assert (
        verdict({**same, "method": "A", "baseline": "B", "target_sparsity": 0.5}) == "A vs B at sparsity 0.5: identical on all 2 seeds"
    )


def test_runs_that_never_completed_are_not_read_from_the_shared_csvs(tmp_path):
    """A run killed after its rows reached the shared CSVs, before COMPLETE: unfinished, and its rows
    are not results (they are only read when the folder has no run directories at all). Before, the
    report counted it as completed and unfinished at once and said there were no run directories."""
    from prune_cli.core.tables import shared_name

    root = tmp_path / "res"
    run = write_run(root, 0, "magnitude", 0.5, 10, 0.9)
    (root / "runs" / run / "metrics.csv").rename(root / shared_name("metrics.csv"))
    (root / "runs" / run / "COMPLETE").unlink()
    res = load(root)
    assert len(res.runs) == 0 and len(res.metrics) == 0 and res.key_source == "config"
    md = build_report(root, plots=False)["summary.md"].read_text()
    assert "Completed runs: 0; failed: 0; unfinished: 1" in md and "Only the shared CSVs" not in md


def test_split_and_baseline_are_checked_against_what_the_folder_holds(tmp_path, capsys):
    """--split names a split no completed run records: exit 2 naming the splits there are (before:
    "--baseline 'random' is not a method of this folder; allowed: " with an empty list). --baseline is
    checked against the methods of every run directory, also when no run completed (before: any
    name passed then); a method whose runs all failed is allowed only when no run completed."""
    root = _folder(tmp_path / "res", [0.07, 0.08, 0.09], methods=("random", "magnitude"))

    def report(*args):
        with pytest.raises(SystemExit) as exit_:
            main([str(root), *args, "--out", str(tmp_path / "out"), "--no-plots"])
        return exit_.value.code, capsys.readouterr().err

    code, err = report("--split", "val", "--baseline", "random")
    assert code == 2 and "--split 'val'" in err and "test" in err and not (tmp_path / "out").exists()
    failed_only = tmp_path / "failed"
    (failed_only / "runs" / "r1").mkdir(parents=True)
    (failed_only / "runs" / "r1" / "config.yaml").write_text("method:\n  name: magnitude\nseed: 0\n")
    (failed_only / "runs" / "r1" / "failed.json").write_text('{"status": "failed", "error_type": "LayerCollapse"}')
    root = failed_only
    code, err = report("--baseline", "foo")
    assert code == 2 and "--baseline 'foo'" in err and "magnitude" in err and not (tmp_path / "out").exists()
    assert build_report(failed_only, plots=False, baseline="magnitude")["summary.md"].exists()


def test_a_method_without_a_baseline_run_of_its_comparison_key_is_named(tmp_path):
    """lookahead trained 20 epochs, magnitude and random 10: lookahead shares no comparison key with
    magnitude, so it is never paired; the report says so instead of leaving it out without a word."""
    root = _folder(tmp_path / "res", [-0.1, -0.1, -0.12], methods=("random", "magnitude"))
    for seed in range(3):
        write_run(root, seed, "lookahead", 0.99, 20, 0.7)
    md = build_report(root, plots=False)["summary.md"].read_text()
    section = md.split("## Paired comparisons")[1].split("\n## ")[0]
    assert "random < magnitude at sparsity 0.99" in section
    (note,) = [line for line in section.splitlines() if "not paired" in line]
    assert note.startswith("- lookahead at sparsity 0.99") and "no magnitude run" in note and "Experiments" in note


def test_an_unpaired_method_s_line_names_the_keys_that_differ_from_the_baseline(tmp_path):
    """random ran with a measurement-only metric plugin enabled (metrics.clash.enabled: true), magnitude
    without: `metrics.*` is part of the comparison key (documented), so they are not paired, but the
    line said "no magnitude run with the same data, model, schedule and training", which is false: the
    data, model, schedule and training are the same. It names the keys that differ (audit C1)."""
    root = tmp_path / "res"
    for seed in range(3):
        for method, enabled in (("magnitude", False), ("random", True)):
            run = write_run(root, seed, method, 0.5, 10, 0.7)
            path = root / "runs" / run / "config.yaml"
            config = yaml.safe_load(path.read_text())
            config["metrics"] = {"clash": {"enabled": enabled}}
            path.write_text(yaml.safe_dump(config))
    md = build_report(root, plots=False)["summary.md"].read_text()
    (note,) = [line for line in md.splitlines() if "not paired" in line]
    assert note.startswith("- random at sparsity 0.5"), note
    # a disabled metric computes nothing and is no part of the key (prune_cli/results): magnitude's is absent
    assert "differ in metrics.clash.enabled (random: true; magnitude: (absent)) (the Experiments" in note, note
    assert "data, model, schedule and training" not in note and "train.epochs" not in note, note


def test_a_comparison_without_values_on_the_split_is_named_not_dropped(tmp_path):
    """`--split val` over a folder where one experiment kept a validation split and another did not
    (`dataset.val_fraction=0`, or `metrics.splits=[test]`): the second's methods recorded their final
    accuracy on test only. Before, they left the paired comparisons without a line; now each method is
    named with the sparsities and comparison key that have no value on the split (audit)."""

    root = tmp_path / "res"
    val = {"magnitude": [0.50, 0.52, 0.53], "random": [0.40, 0.41, 0.45]}
    for seed in range(3):
        for method in ("magnitude", "random"):
            run = write_run(root, seed, method, 0.9, 10, 0.5)
            path = root / "runs" / run / "metrics.csv"
            rows = pd.read_csv(path)
            extra = rows[rows["phase"] == "finetuned"].assign(split="val", value=val[method][seed])
            pd.concat([rows, extra]).to_csv(path, index=False)
            write_run(root, seed, method, 0.9, 20, 0.7)  # test rows only
    written = build_report(root, plots=False, split="val")
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(-(0.10 + 0.11 + 0.08) / 3)
    keys = load(root).runs
    other = keys.loc[keys["run_id"].str.contains("-e20-"), "comparison"].unique()
    assert len(other) == 1
    summary = written["summary.md"].read_text()
    for method in ("magnitude", "random"):
        line = (
            f"- {method} at sparsity 0.9 (comparison {other[0]}): no run records val accuracy for its final sparse model, not compared"
        )
        assert line in summary, summary
    # a split every run records names nothing
    assert "no run records" not in build_report(root, out=tmp_path / "test", plots=False)["summary.md"].read_text()
