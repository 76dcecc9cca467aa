"""prune-report's per-class tables (per_class_summary.csv, intensification.csv, worst_class.csv) on
hand-made results folders whose true answers are known: a folder where only some runs wrote
recall_distortion.csv, and shared CSVs whose rows appear twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.report import build_report
from test_report import ACC, DENSE_ACC, _write_run

CONDITIONS = [("magnitude", 0.5), ("random", 0.5), ("magnitude", 0.9), ("random", 0.9)]


def _accuracy(method: str, sparsity: float, seed: int) -> float:
    """A different accuracy per condition and seed: 0.5 / 0.6 / 0.7, lower for random and at 0.9."""
    return ACC[seed] - 0.1 * (method == "random") - 0.05 * (sparsity == 0.9)


def _folder(root):
    for method, sparsity in CONDITIONS:
        for seed in ACC:
            _write_run(root, method, method, sparsity, seed, _accuracy(method, sparsity, seed))
    return root


def _class1_change(method: str, sparsity: float) -> np.ndarray:
    """_write_run's class 1 recall is 2 * accuracy - 1 (dense: 2 * 0.8 - 1): its change per seed."""
    return np.array([(2 * _accuracy(method, sparsity, s) - 1) - (2 * DENSE_ACC - 1) for s in ACC])


def test_runs_without_recall_distortion_csv_keep_their_conditions(tmp_path):
    """One run that also wrote recall_distortion.csv (metrics.recall_distortion.enabled=true) made
    the report read that file alone and drop every run's per_class.csv: 4 conditions -> 1 in
    per_class_summary.csv, intensification.csv and worst_class.csv. Each run's rows come from
    recall_distortion.csv where it has one, else from its per_class.csv."""
    root = _folder(tmp_path / "results")
    run = root / "runs" / "fx-magnitude-s0.5-seed0-w16"
    pc = pd.read_csv(run / "per_class.csv")
    acc = _accuracy("magnitude", 0.5, 0)
    rd = pc.drop(columns=["precision", "dense_precision"]).assign(
        correct=pc["recall"] * pc["support"], accuracy=acc, dense_accuracy=DENSE_ACC
    )
    rd.to_csv(run / "recall_distortion.csv", index=False)
    written = build_report(root, plots=False)
    per_class = pd.read_csv(written["per_class_summary.csv"])
    for name in ("per_class_summary.csv", "intensification.csv", "worst_class.csv"):
        table = pd.read_csv(written[name])
        assert set(zip(table["method"], table["target_sparsity"])) == set(CONDITIONS), name
    for method, sparsity in CONDITIONS:
        here = per_class[(per_class["method"] == method) & (per_class["target_sparsity"] == sparsity)]
        row = here.query("quantity == 'delta_recall' and `class` == 1")
        d = _class1_change(method, sparsity)
        low, high = stats.t.interval(0.95, len(d) - 1, d.mean(), stats.sem(d))
        assert row["n_seeds"].tolist() == [3]
        assert row[["mean", "ci_low", "ci_high"]].iloc[0].tolist() == pytest.approx([d.mean(), low, high])


def test_duplicated_rows_of_shared_csvs_count_once(tmp_path):
    """Shared CSVs whose rows appear twice (concatenated twice, or rebuilt on top of themselves)
    made each (run, class) row count as 4 seeds: n_seeds 12 instead of 3 and an interval half as
    wide, since per_class.csv and the accuracy rows were joined row by row and nothing averaged
    per seed. The interval is scipy's t interval over the 3 seeds."""
    from prune_cli.run.results import rebuild_shared

    runs = _folder(tmp_path / "results")
    rebuild_shared(runs)
    shared = tmp_path / "shared_twice"
    shared.mkdir()
    for p in runs.glob("*.csv"):
        table = pd.read_csv(p)
        pd.concat([table, table]).to_csv(shared / p.name, index=False)
    per_class = pd.read_csv(build_report(shared, plots=False)["per_class_summary.csv"])
    row = per_class.query("method == 'magnitude' and target_sparsity == 0.5 and quantity == 'delta_recall' and `class` == 1")
    d = _class1_change("magnitude", 0.5)
    low, high = stats.t.interval(0.95, 2, d.mean(), stats.sem(d))
    assert row["n_seeds"].tolist() == [3]
    assert row[["mean", "ci_low", "ci_high"]].iloc[0].tolist() == pytest.approx([d.mean(), low, high])
    intens = pd.read_csv(build_report(shared, out=tmp_path / "r2", plots=False)["intensification.csv"])
    assert set(intens["n_seeds"]) == {3}


def test_a_seed_run_twice_is_averaged_first():
    """Two runs of one seed (a repeated run) are one seed of per_class_summary, their mean."""
    from prune_cli.analysis.recall_distortion import summarise_classes_across_seeds

    rows = pd.DataFrame(
        {
            "method": "m",
            "run_id": ["a", "b", "c", "d"],
            "seed": [0, 0, 1, 2],
            "class": 0,
            "recall": [0.5, 0.7, 0.4, 0.9],
            "accuracy": 0.8,
            "dense_recall": 1.0,
            "dense_accuracy": 0.9,
        }
    )
    out = summarise_classes_across_seeds(rows, keys=["method"]).set_index("quantity")
    d = np.array([0.6, 0.4, 0.9]) - 1.0
    assert out.loc["delta_recall", "n_seeds"] == 3
    assert out.loc["delta_recall", ["mean", "ci_high"]].tolist() == pytest.approx(
        [d.mean(), stats.t.interval(0.95, 2, d.mean(), stats.sem(d))[1]]
    )
