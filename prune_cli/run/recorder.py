"""Row recording: evaluate the model at a phase, add the rows of every table with the run's
identity and provenance, keep the dense baseline values, and write the per-run CSVs."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.atomic_io import atomic_torch_save, atomic_write_csv
from ..core.tables import TABLES, columns
from ..metrics import METRICS, MetricContext, classification_metrics, layer_table, model_cost_metrics
from ..results.predictions import PREDICTIONS_FILE  # per phase and split: each example's predicted class
from ..training import evaluate
from .checkpoint import cpu_state

if TYPE_CHECKING:
    from .experiment import Experiment

log = logging.getLogger(__name__)

SAVED_PHASES = ("dense", "pruned", "finetuned")  # phases whose model weights are kept as files


def record(exp: Experiment, phase: str) -> None:
    """Evaluate the current model and add its rows; the dense phase sets the baseline values."""
    cfg = exp.cfg
    scalars, per_class, predictions = [], [], {}
    for split in cfg.metrics.splits:
        x, y = exp.data.split(split)
        ev = evaluate(exp.model, x, y, cfg.train.eval_batch_size, exp.accel)
        s, pc = classification_metrics(ev, exp.data.num_classes, split)
        scalars += s
        per_class += pc
        predictions[split] = (ev.targets, ev.predictions)
    save_predictions(exp.run_dir / PREDICTIONS_FILE, phase, predictions, exp.data.num_classes)
    layers = layer_table(exp.model, exp.prunable, exp.data.input_shape)
    scalars += model_cost_metrics(exp.model, exp.prunable, layers)
    for name in METRICS.names():
        node = cfg.metrics.get(name)
        if node is not None and node.get("enabled", False):
            out = METRICS.get(name)(metric_context(exp, name), phase, node)
            scalars += out.scalars
            for table, rows in out.tables.items():
                add(exp, table, phase, rows)
    if phase == "dense":
        exp.dense_values = {(r["split"], r["metric"]): r["value"] for r in scalars}
        exp.dense_per_class = {(r["split"], r["class"]): (r["recall"], r["precision"]) for r in per_class}
    for r in scalars:
        r["dense_value"] = exp.dense_values.get((r["split"], r["metric"]))
    for r in per_class:
        r["dense_recall"], r["dense_precision"] = exp.dense_per_class.get((r["split"], r["class"]), (None, None))
    add(exp, "metrics.csv", phase, scalars)
    add(exp, "per_class.csv", phase, per_class if cfg.metrics.per_class else [])
    add(exp, "layers.csv", phase, layers if cfg.metrics.layers else [])
    if phase in SAVED_PHASES:
        atomic_torch_save(cpu_state(exp.model), exp.run_dir / f"model_{phase}.pt")
    write_run_files(exp)
    summary = {r["metric"]: r["value"] for r in scalars if r["split"] in ("test", "model")}
    log.info(
        "%s: test accuracy %.4f, sparsity %.4f (prunable) / %.4f (all), compression %.2fx",
        phase,
        summary.get("accuracy", float("nan")),
        summary["sparsity_prunable"],
        summary["sparsity_total"],
        summary["compression_ratio"],
    )


def save_predictions(path: Path, phase: str, predictions: dict, num_classes: int) -> None:
    """Add this phase's predicted classes to the run's predictions file (numpy .npz, compressed):
    `label_<split>` (the true classes, once) and `pred_<phase>_<split>`, in the smallest unsigned
    integer type that holds the classes (10,000 CIFAR test images: about 5 KB per phase). The
    pruning-identified exemplars of prune-report (Hooker et al. 2019) are computed from them. The
    file is read, extended and replaced atomically, so a resumed run keeps its earlier phases."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int64
    arrays = {}
    if path.exists():
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
    for split, (targets, preds) in predictions.items():
        arrays[f"label_{split}"] = targets.numpy().astype(dtype)
        arrays[f"pred_{phase}_{split}"] = preds.numpy().astype(dtype)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def metric_context(exp: Experiment, name: str) -> MetricContext:
    """What metric `name` sees of the run (prune_cli/metrics/__init__.py MetricContext); its `state`
    persists across the phases of this run."""
    return MetricContext(
        model=exp.model,
        data=exp.data,
        masks=exp.masks,
        prunable=tuple(exp.prunable),
        device=exp.device,
        train=exp.cfg.train,
        run_dir=exp.run_dir,
        dense=exp.dense_model if exp.dense_state else None,
        state=exp.metric_state.setdefault(name, {}),
    )


def add(exp: Experiment, table: str, phase: str, rows: list[dict]) -> None:
    """Rows carry the run's identity; a metric's own keys never overwrite it: a metric table's
    key that is also an identity or provenance column is prefixed with the table's name
    (regions.csv: the counter's `seed` and `method` become `regions_seed`, `regions_method`)."""
    target = exp.tables.setdefault(table, [])
    reserved = set(exp.context) | set(exp.provenance) | {"phase"}
    prefix = "" if table in TABLES else table.removesuffix(".csv") + "_"
    for r in rows:
        own = {(prefix + k if prefix and k in reserved else k): v for k, v in r.items()}
        target.append({**exp.context, "phase": phase, **own, **exp.provenance})


def frames(tables: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    return {t: pd.DataFrame(rows, columns=columns(t, rows)) for t, rows in tables.items()}


def write_run_files(exp: Experiment) -> None:
    for table, df in frames(exp.tables).items():
        atomic_write_csv(df, exp.run_dir / table)
    atomic_write_csv(pd.DataFrame(exp.history), exp.run_dir / "history.csv")
