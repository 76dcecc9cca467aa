"""A metrics.csv with two rows of one (run, phase, split, metric) and different values (a hand edit, a
folder written before prune-run refused a plugin row named like a built-in metric): the report
averaged the two rows in the accuracy table and picked one of them at random for the verdict. Now
that metric of that run is left out of every table and verdict, and named (audit A1). Fabricated runs
(write_run), no training."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report import build_report
from test_report_experiments import write_run
from test_report_missing_tables import _rows

ACC = {"magnitude": [0.80, 0.84, 0.82], "random": [0.70, 0.66, 0.71]}


@pytest.mark.parametrize("phase", ["finetuned", "dense"])
def test_a_metric_recorded_twice_with_different_values_is_left_out_of_that_run_and_named(tmp_path, phase):
    root = tmp_path / "res"
    runs = {(m, s): write_run(root, s, m, 0.5, 10, accs[s], extra_rows=[("ece", 0.05)]) for m, accs in ACC.items() for s in range(3)}
    bad = runs["magnitude", 0]
    path = root / "runs" / bad / "metrics.csv"
    table = pd.read_csv(path)
    row = table[(table["phase"] == phase) & (table["metric"] == "accuracy")].assign(value=0.0)
    pd.concat([table, row], ignore_index=True).to_csv(path, index=False)
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    kept = 0.80 if phase == "finetuned" else 0.9  # write_run's dense accuracy is 0.9
    note = f"{bad} ({phase} test accuracy: values {kept:g}, 0)"
    assert note in md and note in written["standards.txt"].read_text(), md
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["magnitude"]["n"] == "2"
    assert accuracy["magnitude"]["test accuracy"].startswith("0.8300 ± ")  # (0.84 + 0.82) / 2, seeds 1 and 2
    (verdict,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    assert verdict["n"] == 2 and verdict["seeds"] == "1 2"
    assert (verdict["method"], verdict["baseline"]) == ("random", "magnitude")
    assert verdict["mean_diff"] == pytest.approx(((0.66 - 0.84) + (0.71 - 0.82)) / 2)  # -0.145, by hand
    summary = pd.read_csv(written["summary.csv"])
    ece = summary[(summary["method"] == "magnitude") & (summary["metric"] == "ece") & (summary["phase"] == "finetuned")]
    assert ece["n_seeds"].tolist() == [3]  # the run's other metrics still count
