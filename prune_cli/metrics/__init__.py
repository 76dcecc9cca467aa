"""Metrics: each reads (model, masks, data, dense reference) and returns tidy rows.

Cheap metrics (accuracy, per-class, sparsity, FLOPs) run every phase. Optional metrics register
with `@register_metric("name")`, take their settings from `cfg.metrics.<name>` and run when that
node has `enabled: true`:

    @register_metric("regions")
    def regions(exp, phase, node) -> MetricResult: ...

`exp` is the running `prune_cli.run.experiment.Experiment` (model, masks, data, dense_model(), ...).
Scalar rows go to metrics.csv; `tables` become extra per-run (and shared) CSVs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..core.config_base import BaseMetricsConfig, config_schema
from ..core.registry import Registry

METRICS: Registry = Registry("metric", "metrics")


@dataclass
class MetricResult:
    scalars: list[dict] = field(default_factory=list)  # {"split", "metric", "value"} -> metrics.csv
    tables: dict[str, list[dict]] = field(default_factory=dict)  # {"regions.csv": [row, ...]}


def register_metric(name: str) -> Callable:
    return METRICS.register(name)


from .classification import classification_metrics  # noqa: E402
from .cost import layer_table, model_cost_metrics  # noqa: E402
from . import latency, membership, recall_distortion, similarity  # noqa: E402,F401  (optional metrics)
from . import hessian, ntk, pruning_limit  # noqa: E402,F401  (register the analysis metrics)
from . import regions  # noqa: E402,F401  (registers the `regions` metric)
from .hessian import HessianMetricConfig  # noqa: E402
from .latency import LatencyConfig  # noqa: E402
from .membership import MembershipConfig  # noqa: E402
from .ntk import NTKMetricConfig  # noqa: E402
from .pruning_limit import PruningLimitConfig  # noqa: E402
from .recall_distortion import RecallDistortionConfig  # noqa: E402
from .regions import RegionsConfig  # noqa: E402
from .similarity import SimilarityConfig  # noqa: E402


@config_schema("metrics", "base")
@dataclass
class MetricsConfig(BaseMetricsConfig):
    """`metrics.*`: the always-on metrics (BaseMetricsConfig) and one node per optional metric."""

    recall_distortion: RecallDistortionConfig = field(default_factory=RecallDistortionConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    ntk: NTKMetricConfig = field(default_factory=NTKMetricConfig)
    hessian: HessianMetricConfig = field(default_factory=HessianMetricConfig)
    pruning_limit: PruningLimitConfig = field(default_factory=PruningLimitConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)


__all__ = ["METRICS", "MetricResult", "MetricsConfig", "register_metric", "classification_metrics", "layer_table",
           "model_cost_metrics"]
