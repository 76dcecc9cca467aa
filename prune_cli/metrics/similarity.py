"""The `similarity` metric: linear CKA and SVCCA per prunable layer, dense vs the current model.

The math (Gram matrices, CKA, SVCCA, the layer outputs) is in prune_cli/analysis/similarity.py;
this adapter picks the fixed input batch and turns the per-layer values into rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from omegaconf import DictConfig

from ..core.checks import seed_option
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric


@config_schema("metric", "similarity")
@dataclass
class SimilarityConfig:
    """SVCCA and linear CKA per prunable layer, dense vs current model (metrics/similarity.py)."""

    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    split: str = "test"  # where the fixed batch of inputs comes from (test | val | train)
    num_samples: int = 256  # inputs in the fixed batch (capped by the split size)
    batch_seed: int = 0  # which inputs; the same batch is used in every phase
    svcca_variance: float = 0.99  # SVCCA keeps the top singular directions explaining this variance ...
    svcca_max_dims: int = 32  # ... but at most this many (CCA needs samples >> dimensions)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.similarity
        if node.split not in ("train", "val", "test"):  # train: the representations on the inputs the model was fit to
            raise ConfigError("metrics.similarity.split", node.split, "one of test, train, val")
        if not (isinstance(node.num_samples, int) and node.num_samples >= 3):
            raise ConfigError("metrics.similarity.num_samples", node.num_samples, "an integer >= 3")
        seed_option(cfg, "metrics.similarity.batch_seed")
        if not (0 < node.svcca_variance <= 1):
            raise ConfigError("metrics.similarity.svcca_variance", node.svcca_variance, "a number in (0, 1]")
        if not (isinstance(node.svcca_max_dims, int) and node.svcca_max_dims >= 1):
            raise ConfigError("metrics.similarity.svcca_max_dims", node.svcca_max_dims, "an integer >= 1")


@register_metric("similarity")
def similarity(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """similarity.csv (per layer) and the layer means in metrics.csv; nothing for the dense phase itself."""
    if phase == "dense" or not ctx.has_dense:
        return MetricResult()
    from ..analysis.similarity import compare, fixed_batch

    x, _ = ctx.data.split(node.split)
    batch = fixed_batch(x, node.num_samples, node.batch_seed)
    rows = compare(ctx.dense(), ctx.model, batch, node.svcca_variance, node.svcca_max_dims)
    rows = [{"split": node.split, **r} for r in rows]
    scalars = []
    for key in ("cka_linear", "svcca"):
        values = [r[key] for r in rows if math.isfinite(r[key])]
        scalars.append({"split": node.split, "metric": f"{key}_mean", "value": sum(values) / len(values) if values else math.nan})
    return MetricResult(scalars=scalars, tables={"similarity.csv": rows})
