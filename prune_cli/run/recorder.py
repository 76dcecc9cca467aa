"""Row recording: evaluate the model at a phase, add the rows of every table with the run's
identity and provenance, keep the dense baseline values, and write the per-run CSVs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from ..core.atomic_io import atomic_torch_save, atomic_write_csv
from ..core.tables import TABLES, columns
from ..metrics import (
    BUILT_IN,
    METRICS,
    MetricContext,
    check_scalar_names,
    check_table_names,
    classification_metrics,
    layer_table,
    model_cost_metrics,
)
from ..core import predictions as saved_predictions  # per phase and split: each example's predicted class
from ..training import evaluate
from .checkpoint import cpu_state
from .data_selection import TABLE as DATA_PRUNING_TABLE

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
        predictions[split] = (ev.targets.numpy(), ev.predictions.numpy())
    saved_predictions.save_phase(exp.run_dir, phase, predictions, exp.data.num_classes)  # once per phase, merged at the end
    layers = layer_table(exp.model, exp.prunable, exp.data.input_shape)
    scalars += model_cost_metrics(exp.model, exp.prunable, layers)
    taken = {(r["split"], r["metric"]): BUILT_IN for r in scalars}  # a metric's rows may not take these names
    tables_taken: dict[str, str] = {}  # nor one table another metric returned at this phase
    for name in METRICS.names():
        node = cfg.metrics.get(name)
        if node is not None and node.get("enabled", False):
            out = METRICS.get(name)(metric_context(exp, name), phase, node)
            check_scalar_names(name, out.scalars, taken)
            check_table_names(name, out.tables, tables_taken)
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
    if cfg.metrics.per_class:  # off: no per_class.csv at all (README: `per_class` writes it)
        add(exp, "per_class.csv", phase, per_class)
    if cfg.metrics.layers:
        add(exp, "layers.csv", phase, layers)
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
        accel=exp.accel,
    )


def add(exp: Experiment, table: str, phase: str, rows: list[dict]) -> None:
    """Rows carry the run's identity; a metric's own keys never overwrite it: a metric table's
    key that is also an identity or provenance column is prefixed with the table's name
    (regions.csv: the counter's `seed` and `method` become `regions_seed`, `regions_method`)."""
    exp.tables.setdefault(table, []).extend(with_context(exp, table, phase, rows))


def with_context(exp: Experiment, table: str, phase: str, rows: list[dict]) -> list[dict]:
    """`rows` as `add` records them: the run context and phase first, provenance last."""
    reserved = set(exp.context) | set(exp.provenance) | {"phase"}
    prefix = "" if table in TABLES else table.removesuffix(".csv") + "_"
    out = []
    for r in rows:
        own = {(prefix + k if prefix and k in reserved else k): v for k, v in r.items()}
        out.append({**exp.context, "phase": phase, **own, **exp.provenance})
    return out


def frames(tables: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    return {t: pd.DataFrame(rows, columns=columns(t, rows)) for t, rows in tables.items()}


def write_run_files(exp: Experiment) -> None:
    """The run's tables and history. data_pruning.csv's rows (chosen before the run's context is
    complete: `dense_cache` is known after the dense step) get the context as it is when written, so
    they carry the same context as every other row of the run; every process recomputes them (or
    reads them from the dense cache) before its first step, so a checkpoint does not hold them."""
    tables = dict(exp.tables)
    if exp.data_selection_rows:
        tables[DATA_PRUNING_TABLE] = with_context(exp, DATA_PRUNING_TABLE, "data_pruning", exp.data_selection_rows)
    for table, df in frames(tables).items():
        atomic_write_csv(df, exp.run_dir / table)
    atomic_write_csv(pd.DataFrame(exp.history), exp.run_dir / "history.csv")


def finish_run_files(exp: Experiment) -> None:
    """The run's files once its plan is done: the tables, and predictions.npz written once from the
    phases' parts (prune_cli/core/predictions.py)."""
    write_run_files(exp)
    saved_predictions.merge_parts(exp.run_dir)
