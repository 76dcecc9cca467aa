"""`prune-report --compare-by KEY`: "is iterative better than one-shot?", "does rewinding beat
reinitialisation?" are questions about a config key the comparison key holds, which the method
verdicts never answer (their runs differ in more than the method and the sparsity). The arms of one
method are paired seed by seed within the runs that agree on every other key. Folders are written by
hand in the real formats; the expected numbers are worked out here."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import yaml

from prune_cli.report import build_report, main
from prune_cli.report.compare import holm

from test_report_experiments import write_run

T_975_2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)


def _p_two_sided_df2(t: float) -> float:
    """Student's t with 2 degrees of freedom has the closed-form cdf 1/2 + t / (2 sqrt(2 + t^2))."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def _epochs_folder(root):
    """magnitude and random, each trained for 10 and for 20 epochs, seeds 0-2, at sparsity 0.99."""
    longer = {"magnitude": [0.07, 0.08, 0.09], "random": [0.01, -0.02, 0.02]}
    for seed in range(3):
        for method, base in (("magnitude", 0.5), ("random", 0.3)):
            write_run(root, seed, method, 0.99, 10, base + 0.01 * seed)
            write_run(root, seed, method, 0.99, 20, base + 0.01 * seed + longer[method][seed])
    return root


def _paired_t_p(d: list[float]) -> float:
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return _p_two_sided_df2(mean / (sd / math.sqrt(len(d))))


def test_compare_by_a_config_key_pairs_each_method_s_values_seed_by_seed(tmp_path):
    root = _epochs_folder(tmp_path / "res")
    written = build_report(root, plots=False, compare_by="train.epochs")
    by = pd.read_csv(written["comparisons_by.csv"]).sort_values("method").reset_index(drop=True)
    assert by["method"].tolist() == ["magnitude [train.epochs=10]", "random [train.epochs=10]"]
    assert by["baseline"].tolist() == ["magnitude [train.epochs=20]", "random [train.epochs=20]"]
    assert by["n"].tolist() == [3, 3] and (by["seeds"] == "0 1 2").all()
    assert by["mean_diff"].tolist() == pytest.approx([-0.08, -0.01 / 3])
    p = [_paired_t_p([-0.07, -0.08, -0.09]), _paired_t_p([-0.01, 0.02, -0.02])]
    assert by["p_t"].tolist() == pytest.approx(p)
    assert by["p_holm"].tolist() == pytest.approx(list(holm(p)))  # a family of its own: these 2 comparisons
    half = 100 * T_975_2 * 0.01 / math.sqrt(3)
    expected = (
        f"magnitude [train.epochs=10] < magnitude [train.epochs=20] at sparsity 0.99: -8.0 points "
        f"[{-8 - half:+.1f}, {-8 + half:+.1f}] (95% t interval, not adjusted for multiple comparisons), "
        f"p={holm(p)[0]:.2g} (Holm), 3 seeds"
    )
    assert by.loc[0, "verdict"] == expected
    summary = written["summary.md"].read_text()
    assert "## Paired comparisons by train.epochs" in summary and f"- {expected}" in summary
    # the method verdicts are those of a report without --compare-by
    plain = build_report(root, out=tmp_path / "plain", plots=False)
    assert pd.read_csv(written["comparisons.csv"]).equals(pd.read_csv(plain["comparisons.csv"]))
    assert "comparisons_by.csv" not in plain


def test_compare_by_a_group_takes_every_key_under_it(tmp_path):
    """`--compare-by schedule`: one-shot against iterative, whose runs differ in schedule.name and
    schedule.rounds; both are named in the arm."""
    root = tmp_path / "res"
    for seed, gain in enumerate([0.05, 0.06, 0.04]):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
        _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed + gain, name="imp"), ITERATIVE)
    by = pd.read_csv(build_report(root, plots=False, compare_by="schedule")["comparisons_by.csv"])
    assert len(by) == 1
    row = by.iloc[0]
    assert row["method"] == "magnitude [schedule.name=iterative, schedule.rounds=3]"
    assert row["baseline"] == "magnitude [schedule.name=oneshot, schedule.rounds=1]"
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(0.05)
    assert row["p_t"] == pytest.approx(_paired_t_p([0.05, 0.06, 0.04]))
    assert row["schedule"] == "iterative, oneshot"  # the comparison spans both, not its first row's


def test_a_method_that_ran_with_one_value_only_is_named(tmp_path):
    root = _epochs_folder(tmp_path / "res")
    write_run(root, 0, "random", 0.5, 10, 0.7)
    summary = build_report(root, plots=False, compare_by="train.epochs")["summary.md"].read_text()
    line = r"- random at sparsity 0\.5 \[train\.epochs=10\] \(experiment [0-9a-f]{8}\): not compared, no run of another "
    assert re.search(line + r"train\.epochs value agrees with it on every other key", summary), summary


@pytest.mark.parametrize(
    "key, why",
    [
        ("train.lr", "no config key of that name varies between this folder's experiments; allowed: train, train.epochs"),
        ("epochs", "no config key of that name varies between this folder's experiments; allowed: train, train.epochs"),
        ("method.allocation", "variants of a method are compared already, and each comparison holds the sparsity fixed"),
    ],
)
def test_a_key_that_does_not_vary_is_refused_before_anything_is_written(tmp_path, capsys, key, why):
    root = _epochs_folder(tmp_path / "res")
    with pytest.raises(SystemExit) as stop:
        main([str(root), "--compare-by", key])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--compare-by '{key}'" in err and why in err
    assert not (root / "report").exists()


def test_a_later_report_without_compare_by_removes_the_earlier_comparisons_by(tmp_path):
    root = _epochs_folder(tmp_path / "res")
    build_report(root, plots=False, compare_by="train.epochs")
    assert (root / "report" / "comparisons_by.csv").exists()
    build_report(root, plots=False)
    assert not (root / "report" / "comparisons_by.csv").exists()


def test_a_failed_seed_of_one_arm_is_named_in_its_verdict(tmp_path):
    from test_report_verdicts import _fail

    root = tmp_path / "res"
    ids = {}
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
        ids[seed] = write_run(root, seed, "magnitude", 0.9, 20, 0.65 + 0.01 * seed)
    _fail(root, ids[1], "LayerCollapse")
    written = build_report(root, plots=False, compare_by="train.epochs")
    (row,) = pd.read_csv(written["comparisons_by.csv"]).to_dict(orient="records")
    assert row["n"] == 2 and row["seeds"] == "0 2" and row["mean_diff"] == pytest.approx(-0.05)
    assert row["verdict"].endswith("; left out: seed 1 of magnitude [train.epochs=20] failed (LayerCollapse)"), row["verdict"]
    summary = written["summary.md"].read_text()
    assert "p (Holm) is adjusted over the comparisons of this section" in summary


ECE_MAGNITUDE, ECE_RANDOM = [0.020, 0.025, 0.030], [0.050, 0.052, 0.058]


def _ece_folder(root):
    """magnitude and random at 0.9, seeds 0-2, each run recording a finetuned ECE."""
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.8, extra_rows=[("ece", ECE_MAGNITUDE[seed])])
        write_run(root, seed, "random", 0.9, 10, 0.8 - 0.01 * seed, extra_rows=[("ece", ECE_RANDOM[seed])])
    return root, ECE_MAGNITUDE, ECE_RANDOM


def test_metric_chooses_what_the_verdicts_compare(tmp_path):
    """`--metric ece`: the verdicts compare the final model's calibration error instead of accuracy,
    in its own units, and say so."""
    root, mag, rnd = _ece_folder(tmp_path / "res")
    written = build_report(root, plots=False, metric="ece")
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    d = [r - m for r, m in zip(rnd, mag)]
    assert row["metric"] == "ece" and row["mean_diff"] == pytest.approx(sum(d) / 3)
    assert row["p_t"] == pytest.approx(_paired_t_p(d))
    assert row["verdict"].startswith(f"random > magnitude in test ece at sparsity 0.9: +{sum(d) / 3:.4g} ["), row["verdict"]
    assert "## Paired comparisons (test ece)" in written["summary.md"].read_text()


def test_a_metric_no_run_records_is_refused_before_anything_is_written(tmp_path, capsys):
    root = tmp_path / "res"
    for seed in range(2):
        write_run(root, seed, "magnitude", 0.9, 10, 0.8, extra_rows=[("ece", 0.02)])
    with pytest.raises(SystemExit) as stop:
        main([str(root), "--metric", "ecee"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--metric 'ecee': no completed run in this folder records it on the test split" in err and "allowed: accuracy, ece" in err
    assert not (root / "report").exists()


def _schedule(root, run_id: str, schedule: dict) -> None:
    """Give a written run another schedule, in its config and its rows' context column."""
    d = root / "runs" / run_id
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["schedule"] = schedule
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    for table in ("metrics.csv", "per_class.csv"):
        rows = pd.read_csv(d / table)
        rows["schedule"] = schedule["name"]
        rows.to_csv(d / table, index=False)


ITERATIVE = {"name": "iterative", "rounds": 3}


def test_variants_of_a_method_are_not_paired_across_the_compared_key(tmp_path):
    """A global one-shot run and a layerwise iterative one were both plain "magnitude" under their own
    comparison keys, so --compare-by schedule paired them and put the allocation's effect down to the
    schedule (review)."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
        _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.7 + 0.02 * seed, allocation="layerwise"), ITERATIVE)
    written = build_report(root, plots=False, compare_by="schedule")
    assert "comparisons_by.csv" not in written
    summary = written["summary.md"].read_text()
    assert "- magnitude [allocation=global] at sparsity 0.9 [schedule.name=oneshot, schedule.rounds=1]" in summary
    assert "- magnitude [allocation=layerwise] at sparsity 0.9 [schedule.name=iterative, schedule.rounds=3]" in summary


def test_the_variant_with_the_other_value_is_found_among_several(tmp_path):
    """One-shot global and layerwise, iterative global: iterative global pairs with one-shot global
    (it was labelled plain "magnitude" and paired with nothing)."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.9, 10, 0.5, allocation="layerwise")
        _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.65 + 0.01 * seed, name="imp"), ITERATIVE)
    (row,) = pd.read_csv(build_report(root, plots=False, compare_by="schedule")["comparisons_by.csv"]).to_dict(orient="records")
    assert row["method"] == "magnitude [allocation=global] [schedule.name=iterative, schedule.rounds=3]"
    assert row["baseline"] == "magnitude [allocation=global] [schedule.name=oneshot, schedule.rounds=1]"
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(0.05)


def test_a_failed_run_of_another_configuration_is_not_named_as_a_missing_seed(tmp_path):
    """A failed run whose config differs in a key no completed run varies (train.lr) belongs to no
    group of the comparison (review)."""
    from test_report_verdicts import _fail

    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
    for seed in range(2):
        _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.65 + 0.01 * seed, name="imp"), ITERATIVE)
    other = write_run(root, 2, "magnitude", 0.9, 10, 0.5, name="imp")
    _schedule(root, other, ITERATIVE)
    config = root / "runs" / other / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["train"]["lr"] = 0.1
    config.write_text(yaml.safe_dump(cfg))
    _fail(root, other, "LayerCollapse")
    (row,) = pd.read_csv(build_report(root, plots=False, compare_by="schedule")["comparisons_by.csv"]).to_dict(orient="records")
    assert row["n"] == 2 and "failed" not in row["verdict"], row["verdict"]


def test_a_metric_recorded_after_pruning_only_is_compared_there(tmp_path):
    """A plugin's metric recorded at `pruned` only: every verdict called its values all NaN, looking for
    them at `finetuned` (review)."""
    root = tmp_path / "res"
    mag, rnd = [0.020, 0.025, 0.030], [0.050, 0.052, 0.058]
    for seed in range(3):
        for method, values in (("magnitude", mag), ("random", rnd)):
            run = write_run(root, seed, method, 0.9, 10, 0.8)
            path = root / "runs" / run / "metrics.csv"
            rows = pd.read_csv(path)
            extra = rows.iloc[[0]].assign(phase="pruned", metric="mine", value=values[seed], dense_value=None)
            pd.concat([rows, extra]).to_csv(path, index=False)
    (row,) = pd.read_csv(build_report(root, plots=False, metric="mine")["comparisons.csv"]).to_dict(orient="records")
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx((0.03 + 0.027 + 0.028) / 3)


def test_a_baseline_without_the_metric_is_refused_before_anything_is_written(tmp_path, capsys):
    root = tmp_path / "res"
    for seed in range(2):
        write_run(root, seed, "magnitude", 0.9, 10, 0.8, extra_rows=[("ece", 0.02)])
        write_run(root, seed, "random", 0.9, 10, 0.7)
    with pytest.raises(SystemExit) as stop:
        main([str(root), "--metric", "ece", "--baseline", "random"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--baseline 'random' records no test ece for its final sparse model; allowed: magnitude" in err, err
    assert not (root / "report").exists()
    summary = build_report(root, plots=False, metric="ece")["summary.md"].read_text()
    assert "- random: no run records test ece for its final sparse model, not compared" in summary


def test_an_arm_whose_runs_all_failed_is_named_beside_the_lone_arm(tmp_path):
    """magnitude's iterative runs all failed (LayerCollapse) while random's completed: the line said that
    no run of another schedule value agreed with magnitude's oneshot runs, nothing about the failures
    (review)."""
    from test_report_verdicts import _fail

    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed)
        write_run(root, seed, "random", 0.9, 10, 0.5)
        _schedule(root, write_run(root, seed, "random", 0.9, 10, 0.55, name="imp"), ITERATIVE)
        failed = write_run(root, seed, "magnitude", 0.9, 10, 0.1, name="imp")
        _schedule(root, failed, ITERATIVE)
        _fail(root, failed, "LayerCollapse")
    summary = build_report(root, plots=False, compare_by="schedule")["summary.md"].read_text()
    line = next(x for x in summary.splitlines() if x.startswith("- magnitude at sparsity 0.9 [schedule.name=oneshot"))
    assert line.endswith("; 3 run(s) of another schedule value failed: LayerCollapse"), line


def test_a_verdict_missed_only_through_holm_says_so_even_when_more_seeds_are_needed():
    """p = 0.045 uncorrected, 0.18 after Holm, and about 4 seeds for 80 % power at n = 3: the hint said
    only "need about 4 seeds", as if the uncorrected test had not rejected (report-options audit)."""
    from prune_cli.report.compare import seeds_needed, verdict

    row = dict(
        method="random", baseline="magnitude", target_sparsity=0.5, n=3, seeds="0 1 2", mean_diff=-0.493, sd_diff=0.186,
        t_low=-0.956, t_high=-0.030, d_z=-2.65, p_t=0.045, p_holm=0.18, confidence=0.95, metric="accuracy", split="test",
    )  # fmt: skip
    assert seeds_needed(-2.65) == 4
    text = verdict(row)
    assert "not distinguishable with 3 seeds" in text and "need about 4 seeds for 80% power" in text
    assert text.endswith("; p=0.045 before Holm's correction over the report's comparisons"), text


def test_the_comparison_table_prints_another_metric_s_differences_and_p_values_as_its_verdicts(tmp_path):
    from prune_cli.report.summary import comparisons_markdown

    root, mag, rnd = _ece_folder(tmp_path / "res")
    written = build_report(root, plots=False, metric="ece")
    table = pd.read_csv(written["comparisons.csv"])
    mean = table["mean_diff"].iloc[0]
    assert f"| {mean:+.4g} |" in written["summary.md"].read_text()  # +0.02833, not +0.03 (2 decimals)
    shown = comparisons_markdown(table.assign(p_holm=0.0496), 0.95)
    assert "| 0.0496 |" in shown  # 2 digits read as the test level, "0.05"
    from prune_cli.report.compare import _p

    assert _p(0.0496, 1 - 0.95) == "0.0496"  # the verdicts too: 1 - 0.95 is 0.050000000000000044, never "0.05"


def test_compare_by_on_the_shared_csvs_alone_says_it_needs_run_directories(tmp_path, capsys):
    import shutil

    from prune_cli.run.results import main as rebuild

    root = _epochs_folder(tmp_path / "res")
    assert rebuild([str(root)]) in (0, None)  # the shared tables, from the run directories
    shared = tmp_path / "shared"
    shared.mkdir()
    for table in root.glob("*.csv"):
        shutil.copy(table, shared / table.name)
    with pytest.raises(SystemExit) as stop:
        main([str(shared), "--compare-by", "train.epochs"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "holds only the shared CSVs (no run directories)" in err, err


def test_a_metric_missing_at_some_sparsities_only_names_them(tmp_path):
    """magnitude records ece at 0.9 but not at 0.5 (a metric plugin enabled in one sweep only): the line
    named only methods without the metric anywhere, so the 0.5 pair left the ece verdicts without a word."""
    root = tmp_path / "res"
    for seed in range(2):
        for sparsity in (0.5, 0.9):
            extra = [("ece", 0.02 + seed / 100)] if sparsity == 0.9 else []
            write_run(root, seed, "magnitude", sparsity, 10, 0.8, extra_rows=extra)
            write_run(root, seed, "random", sparsity, 10, 0.7, extra_rows=extra)
    written = build_report(root, plots=False, metric="ece")
    assert pd.read_csv(written["comparisons.csv"])["target_sparsity"].tolist() == [0.9]
    (comparison,) = pd.read_csv(written["comparisons.csv"])["comparison"].astype(str)
    summary = written["summary.md"].read_text()
    for method in ("magnitude", "random"):
        assert (
            f"- {method} at sparsity 0.5 (comparison {comparison}): no run records test ece for its final sparse model, not compared"
            in summary
        )


def test_keys_a_setting_does_not_have_are_left_out_of_its_label_and_never_written_as_markup(tmp_path):
    """Runs without data pruning beside EL2N runs: the verdicts read `[data_pruning=none, ...,
    data_pruning.offset=<absent>, data_pruning.proxies=<absent>]`, a tag that Markdown viewers drop
    (`offset=, proxies=`), listing keys the none runs do not have (audit). Now a setting names only its own
    keys, and a missing key, where it must be named, reads "(absent)" as in the Experiments table."""
    from test_report_achieved_sparsity import _edit

    root = tmp_path / "res"
    for seed in range(2):
        for method, acc in (("magnitude", 0.8), ("random", 0.7)):
            _edit(root, write_run(root, seed, method, 0.9, 10, acc), data_pruning__name="none", data_pruning__keep=1.0)
            run = write_run(root, seed, method, 0.9, 10, acc - 0.1, name="el2n")
            _edit(root, run, data_pruning__name="el2n", data_pruning__keep=0.5, data_pruning__proxies=4, data_pruning__offset=0.0)
    summary = build_report(root, plots=False)["summary.md"].read_text()
    assert not re.search(r"<[a-z_]+>", summary), summary
    verdicts = [line for line in summary.splitlines() if line.startswith("- random vs magnitude")]
    assert len(verdicts) == 2, summary
    (none,) = [v for v in verdicts if "data_pruning=none" in v]
    (el2n,) = [v for v in verdicts if "data_pruning=el2n" in v]
    assert "[data_pruning=none, data_pruning.keep=1.0]" in none and "offset" not in none and "proxies" not in none, none
    assert "[data_pruning=el2n, data_pruning.keep=0.5, data_pruning.offset=0.0, data_pruning.proxies=4]" in el2n, el2n
