"""Disparate impact in prune-report: expected calibration error (Guo et al. 2017), the worst class's
recall drop with its interval, and the pruning-identified exemplars of Hooker et al. (2019), each
checked against a hand computation or scipy directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import stats

from prune_cli.metrics.classification import classification_metrics, expected_calibration_error
from prune_cli.training import evaluate
from prune_cli.report.disparate import exemplar_table, pruning_identified_exemplars, worst_class_drops
from prune_cli.report.load import load_results
from prune_cli.results.predictions import read_predictions
from prune_cli.core.predictions import merge_parts, save_phase


# ----------------------------------------------------------------------------- ECE


def test_ece_matches_a_hand_computation():
    # 15 bins of width 1/15: 0.95 -> (14/15, 1], 0.9 -> (13/15, 14/15], 0.55 and 0.58 -> (8/15, 9/15], 0.3 -> (4/15, 5/15]
    conf = torch.tensor([0.95, 0.9, 0.55, 0.58, 0.3], dtype=torch.float64)
    correct = torch.tensor([True, False, True, True, False])
    # |acc - conf| weighted by bin size: 0.05, 0.9, 2 * |1 - 0.565|, 0.3 over 5 examples
    assert expected_calibration_error(conf, correct) == pytest.approx((0.05 + 0.9 + 0.87 + 0.3) / 5, abs=1e-12)


def test_ece_equals_a_brute_force_loop_over_bins():
    g = torch.Generator().manual_seed(0)
    conf = torch.rand(500, generator=g) * 0.9 + 0.1
    correct = torch.rand(500, generator=g) < conf
    edges = np.linspace(0, 1, 16)
    c, k = conf.double().numpy(), correct.numpy().astype(float)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (c > lo) & (c <= hi)
        if inside.any():
            ece += inside.mean() * abs(k[inside].mean() - c[inside].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(ece, abs=1e-12)


def test_calibrated_evaluation_keeps_max_softmax_and_adds_an_ece_row():
    model = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([0, 0, 2, 1])
    ev = evaluate(model, x, y, batch_size=3)
    conf = ev.confidence
    logits = x @ model.weight.detach().T
    probs = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    assert torch.allclose(conf, probs.max(1).values)
    assert ev.predictions.tolist() == logits.argmax(1).tolist()
    scalars, _ = classification_metrics(ev, 3, "test")
    values = {r["metric"]: r["value"] for r in scalars}
    assert values["ece"] == pytest.approx(expected_calibration_error(conf, ev.predictions == y))
    assert values["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-6)


# ----------------------------------------------------------------------------- worst class


def test_worst_class_drop_interval_against_scipy_t():
    recall = {0: [0.9, 0.8, 0.85], 1: [0.5, 0.7, 0.4], 2: [0.95, 0.9, 0.92]}
    dense = {0: [0.9, 0.9, 0.9], 1: [0.8, 0.8, 0.9], 2: [0.93, 0.95, 0.9]}
    rows = pd.DataFrame(
        [
            {
                "dataset": "d",
                "model": "m",
                "method": "magnitude",
                "target_sparsity": 0.9,
                "experiment": "e",
                "split": "test",
                "phase": "finetuned",
                "seed": s,
                "class": c,
                "recall": recall[c][s],
                "dense_recall": dense[c][s],
            }
            for s in range(3)
            for c in range(3)
        ]
    )
    [row] = worst_class_drops(rows, confidence=0.9).to_dict(orient="records")
    deltas = {c: np.array(recall[c]) - np.array(dense[c]) for c in recall}
    worst = min(deltas, key=lambda c: deltas[c].mean())
    assert row["worst_class"] == worst == 1
    d = deltas[worst]
    half = stats.t.ppf(0.95, 2) * d.std(ddof=1) / math.sqrt(3)
    assert row["worst_class_change"] == pytest.approx(d.mean())
    assert (row["worst_class_ci_low"], row["worst_class_ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    per_model = np.min(np.stack(list(deltas.values())), axis=0)  # each seed's own worst class
    half = stats.t.ppf(0.95, 2) * per_model.std(ddof=1) / math.sqrt(3)
    assert row["per_model_worst_change"] == pytest.approx(per_model.mean())
    assert row["per_model_worst_ci_low"] == pytest.approx(per_model.mean() - half)


# ----------------------------------------------------------------------------- exemplars

DENSE = np.array(
    [  # 3 dense seeds x 7 examples
        [0, 1, 0, 2, 3, 0, 0],
        [0, 1, 1, 2, 3, 1, 1],
        [0, 2, 2, 2, 1, 1, 1],
    ]
)
PRUNED = np.array(
    [
        [0, 2, 1, 0, 3, 1, 2],
        [0, 2, 1, 1, 1, 0, 2],
        [1, 1, 0, 3, 1, 1, 2],
    ]
)
LABELS = np.array([0, 1, 2, 2, 3, 1, 1])
# ex0 0 vs 0; ex1 1 vs 2: PIE; ex2 dense tie {0,1,2} contains pruned 1: not a PIE; ex3 2 vs tie {0,1,3}:
# PIE under every tie-break; ex4 3 vs 1: PIE; ex5 1 vs 1; ex6 1 vs 2: PIE
PIES = [1, 3, 4, 6]


def test_exemplars_of_a_hand_made_prediction_matrix():
    t = exemplar_table(DENSE, PRUNED, LABELS)
    assert t.index[t["pie"]].tolist() == PIES
    assert t["dense_modal"].tolist() == [0, 1, 0, 2, 3, 1, 1]  # ex2: smallest of the tied set
    assert t["pruned_modal"].tolist() == [0, 2, 1, 0, 1, 1, 2]
    assert t["dense_tied"].tolist() == [False, False, True, False, False, False, False]
    assert t["pruned_tied"].tolist() == [False, False, False, True, False, False, False]
    assert t["pruned_agreement"].tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])


def test_a_shared_label_in_two_tied_modes_is_not_an_exemplar():
    t = exemplar_table(np.array([[0], [1]]), np.array([[1], [2]]), np.array([0]))
    assert not t["pie"].item()  # modal sets {0, 1} and {1, 2} meet at 1
    t = exemplar_table(np.array([[0], [1]]), np.array([[2], [3]]), np.array([0]))
    assert t["pie"].item()


def _fake_run(root, run_id, method, sparsity, seed, dense_preds, final_preds):
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    cfg = {"name": "t", "seed": seed, "sparsity": sparsity, "method": {"name": method}, "dataset": {"name": "synthetic"}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [
        {
            "run_id": run_id,
            "seed": seed,
            "dataset": "synthetic",
            "model": "mlp",
            "score": method,
            "allocation": "global",
            "structure": "unstructured",
            "name": "t",
            "method": method,
            "schedule": "oneshot",
            "target_sparsity": sparsity,
            "phase": phase,
            "split": "test",
            "metric": "accuracy",
            "value": 0.5,
        }
        for phase in ("dense", "finetuned")
    ]
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    labels = torch.tensor(LABELS)
    save_phase(run, "dense", {"test": (labels, torch.tensor(dense_preds))}, 4)
    save_phase(run, "finetuned", {"test": (labels, torch.tensor(final_preds))}, 4)
    merge_parts(run)  # what a completed run leaves
    (run / "COMPLETE").write_text("")


def test_exemplars_of_a_results_folder_are_saved_with_indices_and_counted_per_class(tmp_path):
    for seed in range(3):
        _fake_run(tmp_path, f"mag-{seed}", "magnitude", 0.9, seed, DENSE[seed], PRUNED[seed])
        _fake_run(tmp_path, f"rnd-{seed}", "random", 0.9, seed, DENSE[seed], DENSE[seed])  # no change: no PIE
    saved = read_predictions(tmp_path / "runs" / "mag-0")
    assert saved["test"]["label"].tolist() == LABELS.tolist()
    assert saved["test"]["phases"]["finetuned"].tolist() == PRUNED[0].tolist()  # the second phase kept the first
    with np.load(tmp_path / "runs" / "mag-0" / "predictions.npz") as z:
        assert z["pred_dense_test"].dtype == np.uint8
    pie, per_class, notes = pruning_identified_exemplars(load_results(tmp_path), "test")
    assert notes == []
    mag = pie[pie["method"] == "magnitude"]
    assert mag["index"].tolist() == PIES and mag["label"].tolist() == LABELS[PIES].tolist()
    assert (pie["method"] == "random").sum() == 0
    counts = per_class[per_class["method"] == "magnitude"].set_index("class")
    assert counts["pie_count"].tolist() == [0, 2, 1, 1]  # labels of examples 1, 3, 4, 6: 1, 2, 3, 1
    assert counts["support"].tolist() == [1, 3, 2, 1]
    assert counts.loc[1, "pie_fraction"] == pytest.approx(2 / 3)
    assert set(per_class["n_dense_seeds"]) == {3} and set(per_class["n_pruned_seeds"]) == {3}


@pytest.mark.slow
def test_a_run_saves_its_predictions_and_an_ece_row(tmp_path):
    """A real prune-run: predictions.npz holds every recorded phase, agrees with per_class.csv's
    recall and support, and metrics.csv has an ece row per phase."""
    from conftest import FAST, run_cli

    results = tmp_path / "results"
    run_cli([*FAST, "sparsity=0.5"], results)
    (run,) = [p.parent for p in results.glob("runs/*/COMPLETE")]
    saved = read_predictions(run)["test"]
    assert set(saved["phases"]) == {"dense", "pruned", "finetuned"}
    per_class = pd.read_csv(run / "per_class.csv")
    for phase, preds in saved["phases"].items():
        rows = per_class[(per_class.phase == phase) & (per_class.split == "test")].set_index("class")
        for c, row in rows.iterrows():
            inside = saved["label"] == c
            assert inside.sum() == row["support"]
            assert (preds[inside] == c).mean() == pytest.approx(row["recall"])
    metrics = pd.read_csv(run / "metrics.csv")
    ece = metrics[(metrics.metric == "ece") & (metrics.split == "test")]
    assert sorted(ece.phase) == ["dense", "finetuned", "pruned"] and ece.value.between(0, 1).all()
