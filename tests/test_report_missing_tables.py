"""A completed run without one of the files it writes (deleted or damaged by hand, a partial copy): the
report names the run and the file, and a count shown beside a table is the number of seeds that table
used. Before, a run without metrics.csv left its condition at n=2 under "Completed runs: 6" without a
word and was counted among the runs "without saved test predictions"; a run without per_class.csv
left the disparate-impact table at n=2 beside an ECE table at n=3; and the PIE count of a condition
whose seed had no predictions.npz was computed on 2 seeds in a row that said n=3. Fabricated runs
(write_run), no training."""

from __future__ import annotations

import numpy as np
import pytest

from prune_cli.core.predictions import merge_parts, save_phase
from prune_cli.report import build_report
from test_report_experiments import write_run

LABELS = np.array([0, 1, 2, 3, 0, 1])
# magnitude's final predictions per seed; the dense models (every seed) predict the labels. Seed 0 is wrong
# on examples 1 and 2, seed 1 on example 1, seed 2 nowhere: over the three seeds example 1's mode is the wrong
# class (2 of 3 votes) and example 2's the right one, so 1 PIE; over seeds 1 and 2 alone example 1 is a tie
# of the right and the wrong class, which is no PIE (disparate.py): 0 PIEs.
WRONG = {0: [1, 2], 1: [1], 2: []}
ACC = {"magnitude": [0.80, 0.84, 0.82], "random": [0.70, 0.66, 0.71]}


def _preds(seed: int, method: str) -> np.ndarray:
    out = LABELS.copy()
    for i in WRONG[seed] if method == "magnitude" else []:
        out[i] = (LABELS[i] + 1) % 4
    return out


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "res"
    runs = {}
    for seed in range(3):
        for method, accs in ACC.items():
            run = write_run(root, seed, method, 0.5, 10, accs[seed], extra_rows=[("ece", 0.05 + 0.01 * seed)])
            d = root / "runs" / run
            save_phase(d, "dense", {"test": (LABELS, LABELS)}, 4)
            save_phase(d, "finetuned", {"test": (LABELS, _preds(seed, method))}, 4)
            merge_parts(d)
            runs[method, seed] = run
    return root, runs


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def _rows(md: str, title: str, first_header: str) -> list[dict]:
    """The rows of the table in section `title` whose header starts with `first_header`, as dicts."""
    lines = _section(md, title).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip().strip("|").split("|")])
    return [dict(zip(table[0], row)) for row in table[2:]]


def test_the_whole_folder_has_every_pie_on_three_seeds(folder):
    root, _ = folder
    md = build_report(root, plots=False)["summary.md"].read_text()
    rows = {r["method"]: r for r in _rows(md, "Disparate impact", "dataset/model")}
    assert rows["magnitude"]["n"] == "3" and rows["magnitude"]["PIEs"] == "1"  # by hand, above
    assert "Completed runs without a table" not in md and "without saved" not in md


def test_a_run_without_metrics_csv_is_named_with_that_file(folder):
    root, runs = folder
    lost = runs["random", 2]
    (root / "runs" / lost / "metrics.csv").unlink()
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    assert (
        f"Completed runs without a table they write, left out of what reads it: metrics.csv (every table, verdict and figure): {lost}."
        in md
    )
    assert "predictions" not in _section(md, "Disparate impact")  # it has predictions.npz: not blamed on that file
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["random"]["n"] == "2"
    assert accuracy["random"]["test accuracy"].startswith(f"{np.mean(ACC['random'][:2]):.4f} ± ")
    assert f"completed runs without metrics.csv, left out of every table, verdict and figure: 1 -> {lost}" in (
        written["standards.txt"].read_text()
    )


def test_a_run_without_per_class_csv_is_named_beside_the_smaller_n(folder):
    root, runs = folder
    lost = runs["magnitude", 1]
    (root / "runs" / lost / "per_class.csv").unlink()
    md = build_report(root, plots=False)["summary.md"].read_text()
    assert f"per_class.csv (the recall-distortion and disparate-impact tables): {lost}." in md
    rows = {r["method"]: r for r in _rows(md, "Disparate impact", "dataset/model")}
    assert rows["magnitude"]["n"] == "2" and rows["random"]["n"] == "3"
    # the PIEs used all three seeds' predictions, the worst class two seeds' per_class.csv
    assert rows["magnitude"]["PIEs"] == "1 (from 3 seeds)"


def test_a_run_without_predictions_is_named_and_the_pie_count_says_its_seeds(folder):
    root, runs = folder
    lost = runs["magnitude", 0]
    (root / "runs" / lost / "predictions.npz").unlink()
    md = build_report(root, plots=False)["summary.md"].read_text()
    section = _section(md, "Disparate impact")
    assert f"1 run(s) without saved test predictions (predictions.npz) are left out of the exemplars: {lost}" in section
    assert "Completed runs without a table" not in md  # metrics.csv and per_class.csv are all there
    rows = {r["method"]: r for r in _rows(md, "Disparate impact", "dataset/model")}
    assert rows["magnitude"]["n"] == "3"  # the worst class: three seeds' per_class.csv
    assert rows["magnitude"]["PIEs"] == "0 (from 2 seeds)"  # seeds 1 and 2: a tie on example 1, by hand above


@pytest.mark.parametrize("damage", ["zero-byte", "truncated", "not a zip"])
def test_a_run_whose_predictions_cannot_be_read_is_named_with_the_reason_and_the_report_goes_on(folder, damage):
    """A zero-byte or truncated predictions.npz (a copy cut short, a full disk) ended prune-report in
    zipfile.BadZipFile's traceback, exit 1. Like a missing one, the run is left out of the exemplars and
    named, with the reason; every other table of the report is made."""
    root, runs = folder
    lost = runs["magnitude", 0]
    path = root / "runs" / lost / "predictions.npz"
    data = path.read_bytes()
    path.write_bytes({"zero-byte": b"", "truncated": data[: len(data) // 2], "not a zip": b"label,pred\n0,1\n"}[damage])
    md = build_report(root, plots=False)["summary.md"].read_text()
    section = _section(md, "Disparate impact")
    assert f"1 run(s) whose test predictions cannot be read are left out of the exemplars: {lost} ({path}: " in section, section
    rows = {r["method"]: r for r in _rows(md, "Disparate impact", "dataset/model")}
    assert rows["magnitude"]["n"] == "3" and rows["magnitude"]["PIEs"] == "0 (from 2 seeds)"  # as without the file
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["magnitude"]["n"] == "3"  # what does not need the predictions keeps the run


def test_runs_whose_complete_names_another_run_id_do_not_crash_the_exemplars(folder):
    """Every COMPLETE names one run id that none of the rows carry (what scripts/bench_report.py's copies of
    one template's COMPLETE made): one directory is read, and its metrics rows match no run. The exemplars'
    join of runs and rows came back empty and `runs[[]]` raised KeyError 'comparison'; now there are none."""
    from prune_cli.report.disparate import pruning_identified_exemplars
    from prune_cli.report.load import load_results

    root, _ = folder
    for d in (root / "runs").iterdir():
        (d / "COMPLETE").write_text("elsewhere\n")
    with pytest.warns(UserWarning, match="not read, a second directory of run elsewhere"):
        loaded = load_results(root)
    assert loaded.runs["run_id"].tolist() == ["elsewhere"] and len(loaded.table("metrics.csv"))
    pie, per_class, notes = pruning_identified_exemplars(loaded, "test")
    assert not len(pie) and not len(per_class) and notes == []


# ----------------------------------------------------------------------------- files that cannot be read


@pytest.mark.parametrize(
    "text, why",
    [
        ("a: [\n", "ParserError"),  # not YAML: the report stopped with a traceback, exit 1
        ("", "empty"),  # an experiment of its own: the card counted 0 seeds for it, the standards check 1
        ("- 1\n- 2\n", "not a mapping"),
        # truncated after its first keys: prune-report stopped with KeyError: 'method' in the exemplars
        ("seed: 1\nmethod:\n", "method not a mapping"),
    ],
)
def test_a_run_whose_config_cannot_be_read_is_named_and_left_out(folder, capsys, text, why):
    from prune_cli.report import main

    root, runs = folder
    lost = runs["random", 2]
    (root / "runs" / lost / "config.yaml").write_text(text)
    main([str(root), "--no-plots"])  # no SystemExit: the report is written
    out = capsys.readouterr().out
    md = (root / "report" / "summary.md").read_text()
    assert "Completed runs: 5 (and 1 left out: config.yaml unreadable)" in md
    named = next(line for line in md.splitlines() if line.startswith("Left out, completed but with a config.yaml"))
    assert lost in named and why in named
    assert f"completed runs whose config.yaml cannot be read, left out: 1 -> {lost} (" in out
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["random"]["n"] == "2"
    assert accuracy["random"]["test accuracy"].startswith(f"{np.mean(ACC['random'][:2]):.4f} ± ")
    assert len(_rows(md, "Experiments", "experiment")) == 2  # magnitude and random, no phantom third


@pytest.mark.parametrize("content", ["", "header"])
def test_a_run_whose_metrics_csv_holds_no_rows_is_named(folder, content):
    """A metrics.csv truncated to nothing or to its header left the run out of every table without a
    word (the report said "Completed runs: 6" and n=2)."""
    root, runs = folder
    lost = runs["random", 1]
    path = root / "runs" / lost / "metrics.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n" if content == "header" else "")
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    assert f"metrics.csv (every table, verdict and figure): {lost} (no rows)." in md
    assert f"completed runs without metrics.csv, left out of every table, verdict and figure: 1 -> {lost} (no rows)" in (
        written["standards.txt"].read_text()
    )
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["random"]["n"] == "2"


def test_a_value_that_is_not_a_number_is_named_and_its_row_left_out(folder):
    """'abc' in the value column of one run's metrics.csv crashed the report with a TypeError after part
    of it had been written. The row is left out and named; the other rows of the run still count."""
    import pandas as pd

    root, runs = folder
    bad = runs["magnitude", 0]
    path = root / "runs" / bad / "metrics.csv"
    table = pd.read_csv(path).astype({"value": object})
    row = table.index[(table["phase"] == "finetuned") & (table["metric"] == "accuracy")][0]
    table.loc[row, "value"] = "abc"
    table.to_csv(path, index=False)
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    note = f"metrics.csv rows whose value is not a number, left out: {bad} (finetuned test accuracy: value 'abc')"
    assert note in md and note in written["standards.txt"].read_text()
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["magnitude"]["n"] == "2"
    assert accuracy["magnitude"]["test accuracy"].startswith(f"{np.mean(ACC['magnitude'][1:]):.4f} ± ")
    assert "ece" in (root / "report" / "summary.csv").read_text()  # its other rows are read


def test_a_run_without_metrics_csv_is_left_out_of_the_regions_and_hessian_figures(folder, monkeypatch):
    """summary.md says a run without metrics.csv is left out of "every table, verdict and figure", but
    regions_vs_sparsity.png and hessian_density.png were drawn from every run's regions.csv and
    hessian_density.csv, so the lost seed still moved their curves (audit: 1.5287, the 3-seed value,
    where seeds 0 and 2 give 1.8201)."""
    import pandas as pd

    import prune_cli.report.plots as plots

    root, runs = folder
    for (method, seed), run in runs.items():
        d = root / "runs" / run
        common = {"run_id": run, "seed": seed, "method": method, "target_sparsity": 0.5, "phase": "finetuned"}
        pd.DataFrame([{**common, "lr_count": 10 + seed}]).to_csv(d / "regions.csv", index=False)
        pd.DataFrame([{**common, "grid": 0.0, "density": 1.0}]).to_csv(d / "hessian_density.csv", index=False)
    lost = runs["random", 2]
    (root / "runs" / lost / "metrics.csv").unlink()
    drawn = {}

    def recorder(name):
        def record(df, *args):
            drawn[name] = df  # and no figure drawn (None)

        return record

    monkeypatch.setattr(plots, "regions_vs_sparsity", recorder("regions"))
    monkeypatch.setattr(plots, "hessian_density", recorder("hessian"))
    build_report(root, plots=True, parallel=False)
    for name in ("regions", "hessian"):
        ids = set(drawn[name]["run_id"].astype(str))
        assert ids == set(runs.values()) - {lost}, name  # the five other runs, not the lost one


def test_a_run_without_metrics_csv_is_left_out_of_the_recall_distortion_rows_too(folder, monkeypatch):
    """A run that wrote recall_distortion.csv (the metric ran) but lost metrics.csv still fed the
    recall-distortion table and recall_change_vs_dense.png (review): its rows are left out like its
    per_class.csv rows, which the join with metrics.csv's accuracy drops."""
    import pandas as pd

    import prune_cli.report.build as build

    root, runs = folder
    lost = runs["random", 2]
    d = root / "runs" / lost
    pc = pd.read_csv(d / "per_class.csv")
    pc.assign(accuracy=0.5, dense_accuracy=0.9, dense_recall=1.0).to_csv(d / "recall_distortion.csv", index=False)
    (d / "metrics.csv").unlink()
    seen = set()
    real = build.summarise_classes_across_seeds

    def record(rows, *args, **kwargs):
        seen.update(rows["run_id"].astype(str))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(build, "summarise_classes_across_seeds", record)
    build_report(root, plots=True, parallel=False)
    assert seen and lost not in seen
