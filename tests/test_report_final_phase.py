"""The final phase of a comparison is chosen per condition, as the accuracy table's (summary.final_phase):
a run whose finetuned accuracy is missing (its value not a number, left out as documented) is a seed
without a value, not a run whose pruned accuracy is paired with the other method's finetuned one (the
verdict mixed phases, "mean diff -33.33", while the accuracy table said n=2 and the card counted 3
seeds; audit A3). Fabricated runs (write_run), no training."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report import build_report
from test_report_experiments import write_run
from test_report_missing_tables import _rows

ACC = {"magnitude": [0.80, 0.84, 0.82], "random": [0.70, 0.66, 0.71]}
PRUNED = 0.30  # every run's accuracy right after pruning, before fine-tuning


def test_a_run_without_its_final_phase_accuracy_is_a_seed_without_a_value(tmp_path):
    root = tmp_path / "res"
    runs = {(m, s): write_run(root, s, m, 0.5, 10, accs[s]) for m, accs in ACC.items() for s in range(3)}
    for (method, seed), run in runs.items():
        path = root / "runs" / run / "metrics.csv"
        table = pd.read_csv(path).astype({"value": object})
        pruned = table[(table["phase"] == "finetuned") & (table["metric"] == "accuracy")].assign(phase="pruned", value=PRUNED)
        table = pd.concat([table, pruned], ignore_index=True)
        if (method, seed) == ("magnitude", 1):
            table.loc[(table["phase"] == "finetuned") & (table["metric"] == "accuracy"), "value"] = "abc"
        table.to_csv(path, index=False)
    written = build_report(root, plots=False)
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    assert (row["method"], row["baseline"], row["n"], str(row["seeds"])) == ("random", "magnitude", 2, "0 2")
    assert row["mean_diff"] == pytest.approx(((0.70 - 0.80) + (0.71 - 0.82)) / 2)  # -0.105: finetuned only, by hand
    assert "magnitude has no value on seed 1 (of its 3 seeds)" in row["verdict"]
    md = written["summary.md"].read_text()
    accuracy = {r["method"]: r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    assert accuracy["magnitude"]["n"] == "2" and accuracy["magnitude"]["phase"] == "finetuned"
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    seeds = card.loc["every experiment repeated with at least 3 seeds"]
    assert "seeds with a value per experiment 2-3" in seeds["found"], seeds["found"]
    assert "magnitude/oneshot at 0.5: 2 seed(s) with a value (of 3 completed)" in written["standards.txt"].read_text()
