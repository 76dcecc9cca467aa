"""Runs that a report key cannot tell apart are never averaged as repeated seeds: with only the shared
CSVs, random trained for 2 and for 6 epochs has one comparison key and one condition (the columns do
not record train.epochs), and each seed has two runs with different config_hash. The planted values
make any average visible: magnitude m_s, random at 2 epochs m_s - 0.20, at 6 epochs m_s + 0.20."""

from __future__ import annotations

import html
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.core.tables import shared_name
from prune_cli.report import build_report
from test_report_experiments import write_run

MAG = [0.70, 0.71, 0.72]


def _shared_only(tmp_path, copy_magnitude=False, per_class=False):
    """`per_class`: also the shared per_class.csv, class 0 at recall accuracy - 0.10 (dense: dense - 0.02)
    and class 1 at accuracy + 0.10 (dense + 0.02), so the worst class is 0 and rho is not zero."""
    root = tmp_path / "res"
    for seed, m in enumerate(MAG):
        write_run(root, seed, "magnitude", 0.5, 2, m)
        write_run(root, seed, "random", 0.5, 2, m - 0.20)
        write_run(root, seed, "random", 0.5, 6, m + 0.20, dense_acc=0.99)
    tables = ["metrics.csv"] + (["per_class.csv"] if per_class else [])
    for table in tables:
        rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob(f"*/{table}")))
        rows["config_hash"] = [f"h{abs(hash(r)) % 10**8:08d}" for r in rows["run_id"]]  # one hash per run, as prune-run writes
        if table == "per_class.csv":
            sign = rows["class"].map({0: -1.0, 1: 1.0})
            rows["recall"] += 0.10 * sign
            rows["dense_recall"] += 0.02 * sign
        if copy_magnitude:  # the same magnitude runs appended twice (shared CSVs rebuilt on top of themselves)
            rows = pd.concat([rows, rows[rows["method"] == "magnitude"]])
        rows.to_csv(root / shared_name(table), index=False)
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


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def test_per_class_tables_leave_out_a_condition_that_mixes_configurations(tmp_path):
    """Before: random's two runs per seed (2 epochs, dense 0.90; 6 epochs, dense 0.99) were averaged as a
    repeated run in worst_class.csv, intensification.csv and per_class_summary.csv (a recall change of
    m_s - 0.945 on class 0 of no experiment). Now that condition is left out of the three tables, and the
    Recall distortion and Disparate impact sections say why; magnitude (its runs copied twice: one
    configuration) keeps its rows, checked against the planted values computed here by hand."""
    written = build_report(_shared_only(tmp_path, copy_magnitude=True, per_class=True), plots=False)
    worst = pd.read_csv(written["worst_class.csv"])
    intens = pd.read_csv(written["intensification.csv"])
    classes = pd.read_csv(written["per_class_summary.csv"])
    for table in (worst, intens, classes):
        assert set(table["method"]) == {"magnitude"}, table[["method"]].drop_duplicates()

    # by hand: per seed, class c's recall is m_s -/+ 0.10 at accuracy m_s, its dense recall 0.90 -/+ 0.02
    hand = pd.DataFrame(
        [
            {"seed": s, "class": c, "recall": m + 0.10 * sign, "accuracy": m}
            | {"dense_recall": 0.90 + 0.02 * sign, "dense_accuracy": 0.90}
            for s, m in enumerate(MAG)
            for c, sign in ((0, -1.0), (1, 1.0))
        ]
    )
    hand["delta_recall"] = hand["recall"] - hand["dense_recall"]
    hand["rho"] = (hand["recall"] - hand["accuracy"]) / hand["accuracy"]
    hand["rho0"] = (hand["dense_recall"] - hand["dense_accuracy"]) / hand["dense_accuracy"]
    t = stats.t.ppf(0.975, 2)

    def interval(values: pd.Series) -> tuple[float, float, float]:
        half = t * values.std(ddof=1) / math.sqrt(len(values))
        return values.mean(), values.mean() - half, values.mean() + half

    (row,) = worst.to_dict(orient="records")
    class0 = hand[hand["class"] == 0].set_index("seed")["delta_recall"]
    assert row["worst_class"] == 0 and row["n_seeds"] == 3 and row["phase"] == "finetuned"
    assert (row["worst_class_change"], row["worst_class_ci_low"], row["worst_class_ci_high"]) == pytest.approx(interval(class0))
    per_model = hand.groupby("seed")["delta_recall"].min()
    assert (row["per_model_worst_change"], row["per_model_worst_ci_low"], row["per_model_worst_ci_high"]) == pytest.approx(
        interval(per_model)
    )

    by_seed = hand.groupby("seed")
    alpha = by_seed.apply(lambda g: (g["rho0"] * g["rho"]).sum() / (g["rho0"] ** 2).sum())
    i_t = by_seed.apply(lambda g: (np.sign(g["rho0"]) * (g["rho"] - g["rho0"])).mean())
    got = intens.set_index("statistic")
    assert got.loc["alpha_t_ours", "n_seeds"] == 3
    assert got.loc["alpha_t_ours", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(alpha))
    assert got.loc["I_t", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(i_t))

    got = classes[classes["quantity"] == "delta_recall"].set_index("class")
    for c in (0, 1):
        mine = hand[hand["class"] == c].set_index("seed")["delta_recall"]
        assert got.loc[c, "n_seeds"] == 3
        assert got.loc[c, ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(mine))

    note = (
        "toy/mlp random at sparsity 0.5: left out of intensification.csv, per_class_summary.csv and worst_class.csv, "
        "its 6 runs of 2 configurations (distinct config_hash; seeds 0, 1, 2 each have runs of several) that the "
        "condition does not tell apart are not averaged as repeated runs; keep the run directories"
    )
    md = written["summary.md"].read_text()
    for title in ("Recall distortion", "Disparate impact"):
        section = _section(md, title)
        (line,) = [x for x in section.splitlines() if "random" in x]
        assert line.startswith(f"- {note}") and line.endswith("or give the variants different `name`s"), line
    page = written["report.html"].read_text()
    assert page.count(html.escape(note.split(" (distinct")[0])) == 2
