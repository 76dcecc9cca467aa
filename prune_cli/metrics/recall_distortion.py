"""The `recall_distortion` metric: per-class recall against the dense model of the same seed.

The formulas, the across-seed summaries and the randomisation null are in
prune_cli/analysis/recall_distortion.py (Good et al., NeurIPS 2022); this adapter evaluates the
models, writes recall_distortion.csv rows and the model-level statistics, and makes sure the
per-image predictions that `load_predictions` reads back are saved, once: the run's predictions
file (prune_cli/core/predictions.py) already holds those of the splits every run records
(`metrics.splits`); this metric adds only the phases and splits it lacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ..core import predictions
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric

log = logging.getLogger(__name__)


@config_schema("metric", "recall_distortion")
@dataclass
class RecallDistortionConfig:
    """Per-class recall distortion against the dense model of the same seed (metrics/recall_distortion.py)."""

    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated each phase (val | test)
    save_predictions: bool = True  # per-image predictions of these splits in predictions.npz, for the randomisation null

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        splits = list(cfg.metrics.recall_distortion.splits)
        if not splits or not set(splits) <= {"val", "test"} or len(set(splits)) != len(splits):
            raise ConfigError("metrics.recall_distortion.splits", splits, "a non-empty list of distinct splits drawn from [val, test]")

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """Every run saves the predictions of metrics.splits before any metric runs (run/recorder.py),
        so save_predictions decides only for a split outside them."""
        splits, recorded = list(OmegaConf.select(cfg, f"{key}.splits")), list(cfg.metrics.splits)
        if set(splits) <= set(recorded):
            return {
                f"{key}.save_predictions": f"every run saves the predictions of metrics.splits={recorded}, which holds all of "
                f"{key}.splits={splits}; it applies only to a split outside them"
            }
        return {}


@register_metric("recall_distortion")
def recall_distortion(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """Per-class rows (recall_distortion.csv) and alpha_t_ours / I_t / frac_intensified (metrics.csv)."""
    from ..analysis.recall_distortion import class_counts, intensification, per_class_rows  # pandas

    result = MetricResult(tables={"recall_distortion.csv": []})
    dense = None
    if phase != "dense":
        if not ctx.has_dense:
            log.warning("recall_distortion: no dense model recorded before phase %s; skipped", phase)
            return result
        dense = ctx.dense()
    from ..training import evaluate  # the training layer loads only when a config enables this metric

    batch = ctx.eval_batch_size
    C = ctx.data.num_classes
    for split in node.splits:
        x, y = ctx.data.split(split)
        if len(y) == 0:
            continue
        labels = y.cpu().numpy()
        # at the run's precision (ctx.accel), as the recorded evaluation: this metric's recall is per_class.csv's,
        # and the predictions it saves or finds saved are the ones the randomisation null reads (under bf16 an
        # fp32 evaluation here gave other recalls than per_class.csv for the same model)
        preds = evaluate(ctx.model, x, y, batch, ctx.accel).predictions.numpy()
        correct, support = class_counts(labels, preds, C)
        if dense is None:
            dense_correct = correct
        else:
            dense_correct = class_counts(labels, evaluate(dense, x, y, batch, ctx.accel).predictions.numpy(), C)[0]
        rows = per_class_rows(correct, support, dense_correct, is_dense=dense is None)
        result.tables["recall_distortion.csv"] += [{"split": split, **r} for r in rows]
        if node.save_predictions and not predictions.has_phase(ctx.run_dir, phase, split):  # stored once per run
            predictions.save_phase(ctx.run_dir, phase, {split: (labels, preds)}, C)
        if phase != "dense":
            rho = np.array([r["rho"] for r in rows])
            rho0 = np.array([r["dense_rho"] for r in rows])
            for name, value in intensification(rho0, rho).items():
                result.scalars.append({"split": split, "metric": name, "value": float(value)})
    return result
