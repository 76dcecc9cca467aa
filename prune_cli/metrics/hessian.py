"""`metrics.hessian`: top eigenvalues (Lanczos), trace (Hutchinson, SLQ) and spectral density (SLQ)
of the training-loss Hessian of the current model, over `samples` seeded training examples.

Rows (metrics.csv, split=train): hessian_dim (free coordinates D), hessian_top_eig_<i>,
hessian_trace_hutchinson (+ _se), hessian_trace_slq, hessian_trace_abs_slq, hessian_lanczos_iter.
Tables: hessian_density.csv (grid, density: Gaussian-smoothed SLQ density, integrates to 1) and
hessian_slq_nodes.csv (probe, eigenvalue, weight: the raw quadrature).
Cost: lanczos_num x min(lanczos_iter, D) + hutchinson_probes HVPs over `samples` examples; memory
lanczos_iter x D floats plus, with hvp=reuse_graph, the gradient graphs of all samples.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig

from ..core import interrupts
from ..core.checks import seed_option
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric


# The values analysis.hessian accepts (its HVP_MODES), spelled out here so that checking a config does
# not load the analysis package (docs/performance.md, "Start-up"); tests/test_startup_imports.py
# checks that both lists agree.
HVP_MODES = ("reuse_graph", "recompute")


@config_schema("metric", "hessian")
@dataclass
class HessianMetricConfig:
    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    samples: int = 512  # training examples the loss (and so the Hessian) averages over
    batch_size: int = 256  # examples per HVP chunk (bounds activation memory)
    hvp: str = "reuse_graph"  # reuse_graph (keep each chunk's gradient graph) | recompute (double backward per HVP)
    lanczos_iter: int = 64  # Lanczos steps per probe (capped at the number of parameters)
    lanczos_num: int = 1  # SLQ probes (Rademacher)
    hutchinson_probes: int = 32  # Rademacher probes for the trace
    top_k: int = 3  # largest Ritz values reported as top eigenvalues
    density_points: int = 500  # grid points of hessian_density.csv
    density_bandwidth: float = 0.01  # Gaussian kernel std as a fraction of the Ritz-value range
    seed: int = 0  # probes and the training subset

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.hessian
        check_positive_ints(
            node,
            "metrics.hessian",
            {
                "samples": 1,
                "batch_size": 1,
                "lanczos_iter": 1,
                "lanczos_num": 1,
                "hutchinson_probes": 1,
                "top_k": 1,
                "density_points": 2,
            },
        )
        seed_option(cfg, "metrics.hessian.seed")
        if node.top_k > node.lanczos_iter:  # m Lanczos steps give m Ritz values
            raise ConfigError(
                "metrics.hessian.top_k",
                node.top_k,
                f"at most metrics.hessian.lanczos_iter={node.lanczos_iter} (each probe's Lanczos run has that many Ritz values)",
            )
        if node.hvp not in HVP_MODES:
            raise ConfigError("metrics.hessian.hvp", node.hvp, "one of " + ", ".join(HVP_MODES))
        if not (math.isfinite(node.density_bandwidth) and node.density_bandwidth > 0):  # inf: every density NaN
            raise ConfigError("metrics.hessian.density_bandwidth", node.density_bandwidth, "a finite number > 0")


@register_metric("hessian")
def hessian_metric(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    from ..analysis.hessian import HessianOperator, spectrum, training_subset

    x, y = training_subset(ctx.data.train_x, ctx.data.train_y, node.samples, node.seed)
    was_training = ctx.model.training
    op = AtSafePoints(HessianOperator(ctx.model, x, y, node.batch_size, masks=ctx.masks or None, hvp=node.hvp))
    try:
        spec = spectrum(op, node.lanczos_iter, node.lanczos_num, node.hutchinson_probes, torch.Generator().manual_seed(node.seed))
    finally:  # also when a stop signal ends it at an HVP
        del op
        ctx.model.train(was_training)
    values = {"hessian_dim": spec.dim, "hessian_lanczos_iter": min(node.lanczos_iter, spec.dim), "hessian_samples": len(y)}
    for i, ev in enumerate(spec.top_eigenvalues(node.top_k), start=1):
        values[f"hessian_top_eig_{i}"] = ev
    values.update(
        hessian_trace_hutchinson=spec.trace_hutchinson,
        hessian_trace_hutchinson_se=spec.trace_hutchinson_se,
        hessian_trace_slq=spec.quadrature(lambda t: t) * spec.dim,
        hessian_trace_abs_slq=spec.quadrature(torch.abs) * spec.dim,
    )
    grid, density = spec.density(node.density_points, node.density_bandwidth)
    nodes = [
        {"probe": p, "eigenvalue": float(t), "weight": float(w)}
        for p, (ts, ws) in enumerate(zip(spec.nodes, spec.weights))
        for t, w in zip(ts, ws)
    ]
    return MetricResult(
        scalars=[{"split": "train", "metric": k, "value": float(v)} for k, v in values.items()],
        tables={
            "hessian_density.csv": [{"grid": float(g), "density": float(d)} for g, d in zip(grid, density)],
            "hessian_slq_nodes.csv": nodes,
        },
    )


class AtSafePoints:
    """A Hessian operator (prune_cli/analysis/hessian.py HessianOperator) whose every HVP starts at a
    safe point (prune_cli/core/interrupts.py): Lanczos, Hutchinson and SLQ spend their time in HVPs,
    so a stop signal during a long spectrum stops the run within one HVP instead of after the whole
    metric. Nothing a metric computes is kept until the phase's rows are recorded, so stopping here
    loses only this phase's metrics; the run resumes from its last checkpoint."""

    def __init__(self, op):
        self.op = op

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        interrupts.check()
        return self.op(v)

    def __getattr__(self, name: str):
        return getattr(self.op, name)


def check_positive_ints(node: DictConfig, prefix: str, keys: dict[str, int]) -> None:
    for key, minimum in keys.items():
        value = node[key]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
            raise ConfigError(f"{prefix}.{key}", value, f"an integer >= {minimum}")
