"""The `similarity` metric: linear CKA and SVCCA per prunable layer, dense vs the current model.

The math (Gram matrices, CKA, SVCCA, the layer outputs) is in prune_cli/analysis/similarity.py;
this adapter picks the fixed input batch and turns the per-layer values into rows.

A split of fewer than 3 examples is refused before the run (`check_split_examples`): with 2 the centred
representations are rank 1 and linear CKA (and SVCCA) read 1.0 for any two models. Should a smaller batch
reach the metric all the same, its rows are NaN and the log says why. SVCCA dimensions that sum to more
than the batch separates (num_samples - 1) force canonical correlations to 1: such rows are flagged in
`svcca_dims_exceed_samples` and the log names the keys that fix it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from omegaconf import DictConfig, OmegaConf

from ..core.checks import check, seed_option
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric

log = logging.getLogger(__name__)


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
    def check_split_examples(cfg: DictConfig, key: str, sizes: dict[str, Optional[tuple[int, bool]]]) -> None:
        """The chosen split holds the 3 examples the measures need: the batch is cut to the split's size,
        and on 2 examples every layer read CKA = SVCCA = 1.0 (prune_cli/run/prevalidate.py
        `_check_metric_splits`, from the declared sizes and once the data is loaded). `sizes`: split ->
        (examples, exact) or None when unknown; an inexact size is an upper bound, so a refusal is certain."""
        from ..analysis.similarity import MIN_SAMPLES

        node = OmegaConf.select(cfg, key)
        size = sizes.get(node.split)
        if size is None:
            return
        examples, exact = size
        check(
            examples >= MIN_SAMPLES,
            f"{key}.split",
            node.split,
            f"a split of at least {MIN_SAMPLES} examples: the {node.split} split holds {'' if exact else 'at most '}{examples}, "
            "and on 2 examples the centred representations of any two models have linear CKA 1 (on 1, none is defined); "
            "another split, or more examples in this one",
        )

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
    from ..analysis.similarity import MIN_SAMPLES, compare, fixed_batch

    x, _ = ctx.data.split(node.split)
    batch = fixed_batch(x, node.num_samples, node.batch_seed)
    if len(batch) < MIN_SAMPLES:  # refused before the run where the split's size is known; never a misleading 1.0
        log.warning(
            "similarity (%s): the %s split holds %d examples, fewer than the %d CKA and SVCCA need "
            "(on 2 any two models score 1.0): NaN rows (metrics.similarity.split)",
            phase,
            node.split,
            len(batch),
            MIN_SAMPLES,
        )
    rows = compare(ctx.dense(), ctx.model, batch, node.svcca_variance, node.svcca_max_dims)
    rows = [{"split": node.split, **r} for r in rows]
    exceeding = [r for r in rows if r["svcca_dims_exceed_samples"]]
    if exceeding:
        log.warning(
            "similarity (%s): SVCCA keeps more dimensions than %d inputs separate on %d layer(s) (%s): dense + current "
            "> num_samples - 1 = %d, so at least that excess of canonical correlations is 1 whatever the models and svcca "
            "reads high (flagged in similarity.csv, svcca_dims_exceed_samples); raise metrics.similarity.num_samples "
            "or lower metrics.similarity.svcca_max_dims (now %d)",
            phase,
            len(batch),
            len(exceeding),
            ", ".join(f"{r['layer']}: {r['svcca_dims_dense']} + {r['svcca_dims']}" for r in exceeding),
            len(batch) - 1,
            node.svcca_max_dims,
        )
    scalars = []
    for key in ("cka_linear", "svcca"):
        values = [r[key] for r in rows if math.isfinite(r[key])]
        scalars.append({"split": node.split, "metric": f"{key}_mean", "value": sum(values) / len(values) if values else math.nan})
    return MetricResult(scalars=scalars, tables={"similarity.csv": rows})
