"""Runs that a report key cannot tell apart are never averaged as repeated seeds: with only the shared
CSVs, random trained for 2 and for 6 epochs has one comparison key and one condition (the columns do
not record train.epochs), and each seed has two runs with different config_hash. The planted values
make any average visible: magnitude m_s, random at 2 epochs m_s - 0.20, at 6 epochs m_s + 0.20."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest

from prune_cli.core.tables import shared_name
from prune_cli.report import build_report
from test_report_experiments import write_run

MAG = [0.70, 0.71, 0.72]


def _shared_only(tmp_path, copy_magnitude=False):
    root = tmp_path / "res"
    for seed, m in enumerate(MAG):
        write_run(root, seed, "magnitude", 0.5, 2, m)
        write_run(root, seed, "random", 0.5, 2, m - 0.20)
        write_run(root, seed, "random", 0.5, 6, m + 0.20, dense_acc=0.99)
    rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob("*/metrics.csv")))
    rows["config_hash"] = [f"h{abs(hash(r)) % 10**8:08d}" for r in rows["run_id"]]  # one hash per run, as prune-run writes
    if copy_magnitude:  # the same magnitude runs appended twice (shared CSVs rebuilt on top of themselves)
        rows = pd.concat([rows, rows[rows["method"] == "magnitude"]])
    rows.to_csv(root / shared_name("metrics.csv"), index=False)
    shutil.rmtree(root / "runs")
    return root


def test_a_key_that_mixes_configurations_is_not_compared_and_says_so(tmp_path):
    """Before: random's two runs per seed were averaged as a repeated run (m_s exactly), so the report
    said "random vs magnitude at sparsity 0.5: identical on all 3 seeds", while the epoch-matched runs
    are 20 points below magnitude on every seed and the 6-epoch ones 20 above. The magnitude runs
    copied twice (identical config_hash) are one run each: averaging a copy with itself is harmless."""
    written = build_report(_shared_only(tmp_path, copy_magnitude=True), plots=False)
    c = pd.read_csv(written["comparisons.csv"])
    assert len(c) == 1
    row = c.iloc[0]
    assert math.isnan(row["p_t"]) and math.isnan(row["p_holm"]) and math.isnan(row["mean_diff"]) and row["n"] == 0
    expected = (
        "random vs magnitude at sparsity 0.5: not compared, random's 6 runs mix 2 configurations (distinct config_hash; "
        "seeds 0, 1, 2 each have runs of several) that the comparison key does not tell apart"
    )
    assert row["verdict"].startswith(expected), row["verdict"]
    assert "keep the run directories" in row["verdict"]
    md = written["summary.md"].read_text()
    assert f"- {row['verdict']}" in md
    s = pd.read_csv(written["summary.csv"])
    final = s[(s["phase"] == "finetuned") & (s["split"] == "test") & (s["metric"] == "accuracy")].set_index("method")
    assert final.loc["magnitude", "mean"] == pytest.approx(sum(MAG) / 3) and final.loc["magnitude", "n_seeds"] == 3
    assert isinstance(final.loc["magnitude", "mixed"], float)  # empty: not mixed
    assert math.isnan(final.loc["random", "mean"]) and math.isnan(final.loc["random", "dense_mean"])
    assert final.loc["random", "mixed"].startswith("6 runs of 2 configurations (distinct config_hash")
    accuracy = md.split("## Accuracy")[1].split("\n## ")[0]
    (line,) = [x for x in accuracy.splitlines() if "| random |" in x]
    assert "not averaged: 6 runs of 2 configurations" in line and "give the variants different `name`s" in line


def test_different_names_separate_the_variants_in_the_summary(tmp_path):
    """The summary's condition includes the run name: the same folder with the 6-epoch runs named
    `long` gives each its own row and mean (no mixing, so no note)."""
    root = tmp_path / "res"
    for seed, m in enumerate(MAG):
        write_run(root, seed, "random", 0.5, 2, m - 0.20)
        write_run(root, seed, "random", 0.5, 6, m + 0.20, name="long")
    rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob("*/metrics.csv")))
    rows["config_hash"] = rows["run_id"]
    rows.to_csv(root / shared_name("metrics.csv"), index=False)
    shutil.rmtree(root / "runs")
    s = pd.read_csv(build_report(root, plots=False)["summary.csv"])
    final = s[(s["phase"] == "finetuned") & (s["metric"] == "accuracy")].set_index("name")
    assert final.loc["run", "mean"] == pytest.approx(sum(MAG) / 3 - 0.20)
    assert final.loc["long", "mean"] == pytest.approx(sum(MAG) / 3 + 0.20)
    assert final["mixed"].isna().all()
