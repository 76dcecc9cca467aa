"""prune-report's summary table and standards check on hand-made results folders whose true
answers are known: the dense column over the seeds that have a value, and the seed counts of the
standards check per experiment (variants of one method apart)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from prune_cli.report import build_report
from prune_cli.report.summary import summarise
from test_report_experiments import write_run


def test_dense_mean_is_over_the_seeds_with_a_value(tmp_path):
    """Seed 1's accuracy is NaN (dense 0.99), seeds 0 and 2 have 0.80 and 0.84 (dense 0.90, 0.91).
    The mean and the change use seeds 0 and 2; the dense column averaged all three (0.9333), so the
    table's accuracy - dense (0.82 - 0.9333) was not its change (-0.085). Now dense is 0.905."""
    root = tmp_path / "res"
    for seed, (acc, dense) in enumerate([(0.80, 0.90), (math.nan, 0.99), (0.84, 0.91)]):
        write_run(root, seed, "magnitude", 0.5, 10, acc, dense_acc=dense)
    metrics = pd.concat(pd.read_csv(f) for f in sorted(root.glob("runs/*/metrics.csv")))
    row = summarise(metrics).query("phase == 'finetuned' and metric == 'accuracy'").iloc[0]
    assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(0.82)
    assert row["dense_mean"] == pytest.approx((0.90 + 0.91) / 2)
    assert row["delta_mean"] == pytest.approx(((0.80 - 0.90) + (0.84 - 0.91)) / 2)
    assert row["mean"] - row["dense_mean"] == pytest.approx(row["delta_mean"])


def test_standards_check_counts_seeds_per_experiment(tmp_path):
    """magnitude with allocation global on seeds 0-2 and with layerwise on seed 7: two experiments.
    The standards check grouped by (method, schedule, sparsity) and printed "magnitude/oneshot at 0.5:
    4 seed(s)" without a flag, while the report card flagged the 1-seed experiment. It now counts the
    seeds of each experiment, as the card does, and names the option that tells them apart."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8)
        write_run(root, seed, "random", 0.5, 10, 0.7)
    write_run(root, 7, "magnitude", 0.5, 10, 0.8, allocation="layerwise")
    written = build_report(root, plots=False)
    lines = written["standards.txt"].read_text().splitlines()
    seeds = sorted(line.strip() for line in lines if "seed(s)" in line)
    assert seeds == [
        "magnitude/oneshot at 0.5 [allocation=global]: 3 seed(s)",
        "magnitude/oneshot at 0.5 [allocation=layerwise]: 1 seed(s)  [fewer than 3 seeds]",
        "random/oneshot at 0.5: 3 seed(s)",
    ]
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    assert not card.loc["every experiment repeated with at least 3 seeds", "met"]


def test_markdown_table_escapes_pipes_and_line_breaks():
    """A cell holding `|` or a newline used to add a column or end the row: `|` is now `\\|` (the
    GitHub-flavoured markdown escape) and a line break `<br>`, so every row keeps its columns."""
    from prune_cli.report.summary import markdown_table

    table = pd.DataFrame({"key": ["/tmp/x/cache|a<b>&c", "/tmp/y\nz", "r\r\ns"], "n": [2, 3, 4], "v": [math.nan, 0.5, 1.0]})
    assert markdown_table(table) == (
        "| key | n | v |\n|---|---|---|\n| /tmp/x/cache\\|a<b>&c | 2 |  |\n| /tmp/y<br>z | 3 | 0.5 |\n| r<br>s | 4 | 1 |"
    )


def _with_cache_dirs(root, values):
    """Two seeds of magnitude at 0.5 per `dataset.cache_dir` value (one experiment each)."""
    import yaml

    for seed in range(2):
        for i, value in enumerate(values):
            run_id = write_run(root, seed, "magnitude", 0.5, 10, 0.8, name=f"c{i}")
            path = root / "runs" / run_id / "config.yaml"
            config = yaml.safe_load(path.read_text())
            config["dataset"]["cache_dir"] = value
            path.write_text(yaml.safe_dump(config))


CACHE_DIRS = ["/tmp/x/cache|a<b>&c", "/tmp/y\nz"]


def test_experiments_table_keeps_its_columns_with_pipes_and_newlines(tmp_path):
    """The experiments table of summary.md: 4 headers and 4 cells in every row, the value in its column."""
    import re

    root = tmp_path / "res"
    _with_cache_dirs(root, CACHE_DIRS)
    md = build_report(root, plots=False)["summary.md"].read_text()
    section = md.split("## Experiments", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0] == "| experiment | dataset.cache_dir | n_runs | seeds |"
    cells = sorted(re.split(r" (?<!\\)\| ", row[2:-2])[1:] for row in rows[2:])
    assert cells == [["/tmp/x/cache\\|a<b>&c", "2", "0 1"], ["/tmp/y<br>z", "2", "0 1"]]


def test_missing_values_are_blank_in_the_accuracy_and_ece_tables(tmp_path):
    """No dense value, no compression_ratio, and a condition whose accuracy is NaN on every seed:
    those cells are empty, as everywhere else in summary.md (they read `nan`, `+nan` and `x`)."""
    from prune_cli.report.disparate import disparate_markdown
    from prune_cli.report.summary import accuracy_markdown

    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8, dense=False, extra_rows=[("ece", 0.05)])
        write_run(root, seed, "random", 0.5, 10, math.nan, dense=False)
    summary = summarise(pd.concat(pd.read_csv(f) for f in sorted(root.glob("runs/*/metrics.csv"))))
    assert accuracy_markdown(summary, "test").splitlines()[2:] == [
        "| toy/mlp | magnitude | oneshot | 0.5 |  | finetuned | 3 | 0.8000 ± 0.0000 | [0.8000, 0.8000] |  |  |",
        "| toy/mlp | random | oneshot | 0.5 |  | finetuned | 0 |  |  |  |  |",
    ]
    ece = disparate_markdown(pd.DataFrame(), pd.DataFrame(), summary, "test")
    assert ece.splitlines()[-1] == "| toy/mlp | magnitude | 0.5 | finetuned | 3 | 0.0500 [0.0500, 0.0500] |  |  |"  # a level: no signs


def test_accuracy_table_names_the_level_of_its_intervals(tmp_path):
    """--confidence 0.5: the interval column was headed just "CI" (only 0.95 was named); now "50% CI", and its
    interval is mean ± t_{0.75, 2} sd / sqrt(3) of the planted accuracies, computed here with scipy."""
    import math

    from scipy import stats

    root = tmp_path / "res"
    accs = [0.70, 0.74, 0.75]
    for seed, acc in enumerate(accs):
        write_run(root, seed, "magnitude", 0.5, 10, acc)
    md = build_report(root, plots=False, confidence=0.5)["summary.md"].read_text()
    rows = [line for line in md.split("## Accuracy")[1].split("\n## ")[0].splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cells = dict(zip(header, [c.strip() for c in rows[2].strip("|").split("|")]))
    values = pd.Series(accs)
    half = stats.t.ppf(0.75, 2) * values.std(ddof=1) / math.sqrt(3)
    assert "50% CI" in header and "CI" not in header
    assert cells["50% CI"] == f"[{values.mean() - half:.4f}, {values.mean() + half:.4f}]"


def test_a_folder_without_metrics_says_what_it_holds(tmp_path):
    """A folder with only per_class.csv said "no completed runs with metrics.csv found", as if it were empty."""
    from prune_cli.report.load import load_results
    from prune_cli.report.summary import standards_check

    root = tmp_path / "res"
    write_run(root, 0, "magnitude", 0.5, 10, 0.8)
    shared = tmp_path / "shared"
    shared.mkdir()
    pd.read_csv(next(root.glob("runs/*/per_class.csv"))).to_csv(shared / "per_class.csv", index=False)
    lines = standards_check(load_results(shared), pd.DataFrame())
    assert "no completed runs with metrics.csv (shared: runs.csv) found (the folder holds per_class.csv only)" in lines[1], lines


def test_a_folder_of_failed_runs_only_does_not_claim_tables_it_lacks(tmp_path):
    """Every table the report asked for was cached as an empty frame and listed by Results.names, so a
    folder of failed runs said "(the folder holds hessian_density.csv, per_class.csv, ... only)": none
    of those files existed."""
    import json

    run = tmp_path / "res" / "runs" / "x"
    run.mkdir(parents=True)
    (run / "failed.json").write_text(json.dumps({"status": "failed", "error_type": "TrainingDiverged", "message": "loss nan"}))
    text = build_report(tmp_path / "res", plots=False)["standards.txt"].read_text()
    assert "no completed runs with metrics.csv (shared: runs.csv) found" in text
    assert "holds" not in text, text


@pytest.mark.parametrize("damage", ["", "[1, 2]", "{not json", "\udcff"])
def test_an_unreadable_failed_json_or_config_is_listed_not_a_traceback(tmp_path, damage):
    """An empty or hand-damaged failed.json (or config.yaml) of an unfinished run stopped prune-report
    with a JSONDecodeError/TypeError traceback instead of listing the run as failed."""
    root = tmp_path / "res"
    write_run(root, 0, "magnitude", 0.5, 10, 0.8)
    run = root / "runs" / "damaged"
    run.mkdir()
    (run / "failed.json").write_text(damage, errors="surrogateescape")
    (run / "config.yaml").write_text("method: [unclosed" if damage else damage, errors="surrogateescape")
    text = build_report(root, plots=False)["standards.txt"].read_text()
    assert "failed runs: 1 -> damaged (unreadable failed.json: " in text, text


def test_experiments_table_of_a_method_and_schedule_sweep_names_them(tmp_path):
    """The experiments table left out method.name, schedule.name and sparsity as "already a context
    column", but it has none: a method x schedule sweep was a list of bare hashes."""
    import yaml

    root = tmp_path / "res"
    for schedule in ("oneshot", "iterative"):
        for method in ("magnitude", "random"):
            run_id = write_run(root, 0, method, 0.5, 10, 0.6, name=schedule)
            path = root / "runs" / run_id / "config.yaml"
            config = yaml.safe_load(path.read_text())
            config["schedule"] = {"name": schedule}
            path.write_text(yaml.safe_dump(config))
    md = build_report(root, plots=False)["summary.md"].read_text()
    section = md.split("## Experiments", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0] == "| experiment | method.name | method.score | schedule.name | n_runs | seeds |", rows[0]
    cells = sorted(tuple(c.strip() for c in row.strip("|").split("|"))[1:4] for row in rows[2:])
    assert cells == sorted((m, m, s) for s in ("oneshot", "iterative") for m in ("magnitude", "random"))


@pytest.mark.parametrize("confidence, shown", [(0.999, "99.9%"), (0.975, "97.5%"), (0.95, "95%"), (0.9999999, "99.99999%")])
def test_a_level_that_is_not_a_whole_percent_is_named_as_it_is(tmp_path, confidence, shown):
    """--confidence 0.999 printed "100% Student-t intervals", "(100% t interval ...)" in every verdict and
    "t 100% (not adjusted)" over the comparisons table; 0.975 printed "98%". Every place names the level given."""
    root = tmp_path / "res"
    for seed, (a, b) in enumerate([(0.80, 0.70), (0.83, 0.71), (0.81, 0.75)]):
        write_run(root, seed, "magnitude", 0.5, 10, a)
        write_run(root, seed, "random", 0.5, 10, b)
    md = build_report(root, plots=False, confidence=confidence)["summary.md"].read_text()
    assert f"; {shown} Student-t intervals." in md
    verdicts = [line for line in md.split("## Paired comparisons")[1].split("\n## ")[0].splitlines() if line.startswith("- ")]
    assert len(verdicts) == 1 and f"({shown} t interval, not adjusted" in verdicts[0]
    assert f"| t {shown} (not adjusted) | bootstrap {shown} (not adjusted) |" in md
    assert f"| {shown} CI |" in md
    wrong = {0.999: "100%", 0.975: "98%", 0.95: None, 0.9999999: "100%"}[confidence]  # six digits (`:g`) said 100%
    assert wrong is None or wrong not in md


@pytest.mark.parametrize(
    "level, shown",
    [(0.95, "95%"), (0.9999999, "99.99999%"), (0.9999999999999998, "99.99999999999998%"), (0.123456789, "12.3456789%")],
)
def test_a_level_is_named_with_every_digit_it_has_and_no_float_artefact(level, shown):
    """`:g` kept six significant digits (0.9999999 -> "100%"); the float product 100 * 0.95 is 95.00000000000001,
    which a plain repr would show. The expected labels are the level's decimal digits moved two places by hand."""
    from prune_cli.report.levels import percent

    assert percent(level) == shown


def test_summary_rows_follow_the_order_a_run_records_its_phases():
    """summary.csv sorted phases as text: `finetuned` before `pruned` before `round_1`, and `step_10`
    before `step_2` (review); a run records dense, its rounds or steps in order, pruned, finetuned."""
    from prune_cli.report.summary import phase_order

    phases = ["finetuned", "step_10", "dense", "pruned", "step_2", "round_10", "round_1", "other"]
    assert sorted(phases, key=phase_order) == ["dense", "round_1", "round_10", "step_2", "step_10", "other", "pruned", "finetuned"]
    assert sorted(["step_10", "step_2", "step_1"], key=phase_order) == ["step_1", "step_2", "step_10"]


def test_summary_csv_lists_a_condition_s_phases_in_run_order(tmp_path):
    root = tmp_path / "res"
    for seed in range(2):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.8)
        path = root / "runs" / run / "metrics.csv"
        rows = pd.read_csv(path)
        extra = [rows.iloc[[0]].assign(phase=p, value=0.7) for p in ("round_10", "round_2", "pruned")]
        pd.concat([rows, *extra]).to_csv(path, index=False)
    summary = pd.read_csv(build_report(root, plots=False)["summary.csv"])
    phases = summary.loc[summary["metric"] == "accuracy", "phase"].tolist()
    assert phases == ["dense", "round_2", "round_10", "pruned", "finetuned"]
