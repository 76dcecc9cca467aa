"""The per-example predictions of a run (prune_cli/core/predictions.py): written once per recorded
phase, not rewritten at every phase (which was quadratic in the number of gradual-pruning events),
stored once when the recall_distortion metric is on, and read back from run folders of the older
format (one predictions.npz rewritten per phase, plus the metric's own preds_<phase>_<split>.npz)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST
from prune_cli.analysis.recall_distortion import load_predictions
from prune_cli.core import predictions
from prune_cli.core.predictions import PARTS_DIR, PREDICTIONS_FILE, merge_parts, read_predictions, save_phase
from prune_cli.data.splits import DataSplits
from prune_cli.metrics import METRICS
from prune_cli.run.experiment import run
from tests.helpers import compose, metric_context

GRADUAL = [
    *FAST,
    "dataset.input_dim=6",
    "method.allocation=layerwise",
    "schedule=gradual",
    "train.epochs=2",
    "schedule.start_step=0",
    "schedule.frequency=1",
    "schedule.initial_sparsity=0.1",
    "sparsity=0.8",
    "metrics.regions.enabled=false",
    "metrics.recall_distortion.enabled=true",
    "metrics.splits=[val,test]",
]


def _count_serialised_arrays(monkeypatch) -> list[int]:
    """Every np.savez / np.savez_compressed call appends the number of arrays it writes."""
    counts: list[int] = []
    for name in ("savez", "savez_compressed"):
        real = getattr(np, name)

        def counting(file, *args, _real=real, **arrays):
            counts.append(len(args) + len(arrays))
            return _real(file, *args, **arrays)

        monkeypatch.setattr(np, name, counting)
    return counts


def test_gradual_run_writes_each_phase_once_and_stores_predictions_once(tmp_path, monkeypatch):
    counts = _count_serialised_arrays(monkeypatch)
    run_dir = tmp_path / "run"
    run(compose(GRADUAL, tmp_path / "results"), run_dir)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    phases = sorted(set(metrics["phase"]))
    events = [p for p in phases if p.startswith("step_")]
    assert len(events) >= 8, phases  # enough pruning events for a rewrite per phase to be quadratic
    # Linear: a part of two arrays (label, pred) per (phase, split), then one merge of 2 labels + one
    # pred per (phase, split). Rewriting the growing file at each phase serialised ~phases^2 / 2 arrays.
    n = len(phases) * 2
    assert sum(counts) <= 2 * n + n + 2, (sum(counts), len(phases))
    assert not list(run_dir.glob("preds_*.npz")), "the recall_distortion metric stored a second copy"
    assert not (run_dir / PARTS_DIR).exists()
    saved = read_predictions(run_dir)
    assert set(saved) == {"val", "test"}
    for split, kept in saved.items():
        assert set(kept["phases"]) == set(phases)
        for phase, pred in kept["phases"].items():  # the accuracy of metrics.csv, from the saved predictions
            row = metrics[(metrics.phase == phase) & (metrics.split == split) & (metrics.metric == "accuracy")]
            assert float(np.mean(pred == kept["label"])) == pytest.approx(row["value"].item(), abs=1e-12)
    only_val = read_predictions(run_dir, "val")  # the report reads one split
    assert list(only_val) == ["val"] and only_val["val"]["label"].tolist() == saved["val"]["label"].tolist()
    assert {p: a.tolist() for p, a in only_val["val"]["phases"].items()} == {p: a.tolist() for p, a in saved["val"]["phases"].items()}
    long = load_predictions([run_dir], split="test")  # the randomisation null's input, from the one copy
    assert set(long["model"]) == {"dense"} | {f"0.8/{p}" for p in phases if p != "dense"}
    assert len(long) == len(phases) * len(saved["test"]["label"])


def test_parts_of_an_interrupted_run_are_kept_and_merged_once(tmp_path):
    labels = np.array([0, 1, 2, 1])
    save_phase(tmp_path, "dense", {"test": (labels, np.array([0, 1, 2, 2]))}, 3)
    # the process dies here; the resumed run records the next phases and completes
    save_phase(tmp_path, "step_3", {"test": (labels, np.array([0, 1, 1, 1]))}, 3)
    save_phase(tmp_path, "finetuned", {"test": (torch.tensor(labels), torch.tensor([0, 0, 2, 1]))}, 3)
    assert read_predictions(tmp_path)["test"]["phases"]["step_3"].tolist() == [0, 1, 1, 1]  # readable before the merge
    assert merge_parts(tmp_path) == tmp_path / PREDICTIONS_FILE
    assert not (tmp_path / PARTS_DIR).exists()
    with np.load(tmp_path / PREDICTIONS_FILE) as z:
        assert sorted(z.files) == ["label_test", "pred_dense_test", "pred_finetuned_test", "pred_step_3_test"]
        assert z["pred_dense_test"].dtype == np.uint8 and z["label_test"].tolist() == labels.tolist()
        assert z["pred_finetuned_test"].tolist() == [0, 0, 2, 1]
    # a crash after the merge but before the parts were removed: merging again changes nothing
    save_phase(tmp_path, "finetuned", {"test": (labels, np.array([0, 0, 2, 1]))}, 3)
    before = read_predictions(tmp_path)
    merge_parts(tmp_path)
    after = read_predictions(tmp_path)
    assert {p: a.tolist() for p, a in after["test"]["phases"].items()} == {p: a.tolist() for p, a in before["test"]["phases"].items()}
    assert merge_parts(tmp_path / "nothing") is None


def _old_recorder_save(path, phase, preds_by_split, num_classes):
    """The writer of the previous version, kept here to make a run folder of the old format: the
    whole file read, extended and rewritten at every phase."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    arrays = {}
    if path.exists():
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
    for split, (targets, preds) in preds_by_split.items():
        arrays[f"label_{split}"] = np.asarray(targets).astype(dtype)
        arrays[f"pred_{phase}_{split}"] = np.asarray(preds).astype(dtype)
    np.savez_compressed(path, **arrays)


def test_run_folders_of_the_old_format_are_read(tmp_path):
    labels = np.array([2, 0, 1, 1, 0])
    by_phase = {"dense": np.array([2, 0, 1, 0, 0]), "pruned": np.array([2, 1, 1, 0, 0]), "finetuned": np.array([2, 0, 1, 1, 1])}
    both, metric_only = tmp_path / "both", tmp_path / "metric_only"
    for run_dir, sparsity in ((both, 0.5), (metric_only, 0.9)):
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml({"seed": 0, "sparsity": sparsity}))
        for phase, pred in by_phase.items():  # the old metric's copy: image_index, label, pred (int64)
            np.savez(run_dir / f"preds_{phase}_test.npz", image_index=np.arange(5), label=labels, pred=pred)
    for phase, pred in by_phase.items():
        _old_recorder_save(both / "predictions.npz", phase, {"test": (labels, pred)}, 3)
    saved = read_predictions(both)["test"]
    assert saved["label"].tolist() == labels.tolist()
    assert {p: a.tolist() for p, a in saved["phases"].items()} == {p: a.tolist() for p, a in by_phase.items()}
    assert read_predictions(metric_only) == {}
    finals = load_predictions([both, metric_only], phases=("dense", "finetuned"))  # Good et al.'s pool
    assert sorted(finals["model"].unique()) == ["0.5/finetuned", "0.9/finetuned", "dense"]
    assert finals.groupby("model")["pred"].apply(list).to_dict() == {
        "dense": by_phase["dense"].tolist(),
        "0.5/finetuned": by_phase["finetuned"].tolist(),
        "0.9/finetuned": by_phase["finetuned"].tolist(),
    }
    assert load_predictions([both], phases="dense")["model"].unique().tolist() == ["dense"]  # one phase, not its letters
    with pytest.raises(ValueError, match="phases finetune are in none of the 2 runs' predictions .*dense, finetuned, pruned"):
        load_predictions([both, metric_only], phases=("dense", "finetune"))  # a typo left out every model
    long = load_predictions([both, metric_only])
    expected = pd.DataFrame(
        [
            {
                "run_id": run_dir.name,
                "model": "dense" if p == "dense" else f"{s:g}/{p}",
                "image_index": i,
                "label": labels[i],
                "pred": pred[i],
            }
            for run_dir, s in ((both, 0.5), (metric_only, 0.9))
            for p, pred in by_phase.items()
            for i in range(5)
            if not (p == "dense" and run_dir == metric_only)  # one dense model per seed
        ]
    )
    got = long[["run_id", "model", "image_index", "label", "pred"]]
    key = ["run_id", "model", "image_index"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True), expected.sort_values(key).reset_index(drop=True), check_dtype=False
    )


def test_recall_distortion_saves_only_the_splits_the_run_does_not_record(tmp_path, monkeypatch):
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(4, 3))
    model = copy.deepcopy(dense)
    x = torch.randn(60, 4)
    y = torch.arange(60) % 3
    data = DataSplits(x[:20], y[:20], x[20:40], y[20:40], x[40:], y[40:], num_classes=3)
    ctx = metric_context(model, data, dense=dense, run_dir=tmp_path)
    save_phase(tmp_path, "pruned", {"test": (y[40:].numpy(), np.zeros(20, int))}, 3)  # what the recorder saved
    written = []
    monkeypatch.setattr(predictions, "save_phase", lambda *a, **k: written.append(a[1:3]) or save_phase(*a, **k))
    node = OmegaConf.create({"enabled": True, "splits": ["val", "test"], "save_predictions": True})
    METRICS.get("recall_distortion")(ctx, "pruned", node)
    assert [(phase, list(splits)) for phase, splits in written] == [("pruned", ["val"])]
    with torch.no_grad():
        expected = model(x[20:40]).argmax(1)
    saved = read_predictions(tmp_path)
    assert saved["val"]["phases"]["pruned"].tolist() == expected.tolist()
    assert saved["test"]["phases"]["pruned"].tolist() == [0] * 20  # the recorder's copy, not written again


def _run_with_predictions(run_dir, cfg: dict, by_phase: dict, labels) -> None:
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    for phase, pred in by_phase.items():
        _old_recorder_save(run_dir / "predictions.npz", phase, {"test": (labels, pred)}, 3)


def test_runs_of_two_methods_at_one_sparsity_are_both_read(tmp_path):
    """magnitude and random at 0.9, seed 0: both pruned models were named "0.9/finetuned" and the second
    run's rows were dropped without a word."""
    labels = np.array([2, 0, 1, 1, 0])
    dense, mag, rnd = np.array([2, 0, 1, 0, 0]), np.array([2, 1, 1, 0, 0]), np.array([0, 0, 0, 1, 1])
    for name, method, pred in (("mag", "magnitude", mag), ("rnd", "random", rnd)):
        cfg = {"seed": 0, "sparsity": 0.9, "method": {"name": method}, "train": {"epochs": 10}}
        _run_with_predictions(tmp_path / name, cfg, {"dense": dense, "finetuned": pred}, labels)
    long = load_predictions([tmp_path / "mag", tmp_path / "rnd"])
    got = {m: g.sort_values("image_index")["pred"].tolist() for m, g in long.groupby("model")}
    assert got == {"dense": dense.tolist(), "magnitude 0.9/finetuned": mag.tolist(), "random 0.9/finetuned": rnd.tolist()}


def test_runs_of_two_setups_are_refused_not_paired_with_another_run_s_dense_model(tmp_path):
    """A 30-epoch run loaded after a 10-epoch run of the same seed: its pruned model was paired with the
    10-epoch run's dense model (the randomisation null's alpha 0.50 instead of the run's own 1.15)."""
    labels = np.array([2, 0, 1, 1, 0])
    for name, epochs, sparsity in (("e10", 10, 0.5), ("e30", 30, 0.8)):
        cfg = {"seed": 0, "sparsity": sparsity, "method": {"name": "magnitude"}, "train": {"epochs": epochs}}
        _run_with_predictions(tmp_path / name, cfg, {"dense": labels, "finetuned": labels}, labels)
    with pytest.raises(ValueError, match=r"2 setups \(they differ in train\)"):
        load_predictions([tmp_path / "e10", tmp_path / "e30"])
