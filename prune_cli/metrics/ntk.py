"""`metrics.ntk`: empirical NTK of the current model vs the dense model on a fixed seeded batch.

Rows (metrics.csv, split = metrics.ntk.split): ntk_rel_dist_dense = ||Theta - Theta_dense||_F /
||Theta_dense||_F, ntk_mean_ratio = mean(Theta / Theta_dense) elementwise, ntk_trace_ratio =
tr(Theta) / tr(Theta_dense), ntk_frobenius = ||Theta||_F. The dense phase compares the dense model
with itself (0, 1, 1). Cost per phase: two Jacobians of N x K x P floats (N = num_inputs, K = 1, or
the number of logits for output=trace, P = parameters) and two vectorised reverse passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf

from ..core.checks import seed_option
from ..core.config_base import config_schema, declared_input
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric


def fixed_batch(ctx, split: str, n: int, seed: int) -> torch.Tensor:
    """The same n inputs of `split` for every phase (drawn by a generator of its own)."""
    x, _ = ctx.data.split(split)
    if len(x) == 0:
        raise ConfigError("metrics.ntk.split", split, "a split with examples (this run's is empty)")
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx.to(x.device)]


# The outputs analysis.ntk accepts (its OUTPUTS), spelled out here so that checking a config does not
# load the analysis package (docs/performance.md, "Start-up"); tests/test_startup_imports.py checks
# that both lists agree.
OUTPUTS = ("sum", "index", "trace")


@config_schema("metric", "ntk")
@dataclass
class NTKMetricConfig:
    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    split: str = "test"  # train | val | test: where the fixed batch is drawn from
    num_inputs: int = 16  # inputs in the batch; kernel is num_inputs x num_inputs
    output: str = "sum"  # sum (f = sum of logits) | index (f = logit output_index) | trace (sum_k J_k J_k^T)
    output_index: int = 0  # logit used when output=index
    seed: int = 0  # draws the batch (the same inputs for every phase and model)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.ntk
        if node.split not in ("train", "val", "test"):
            raise ConfigError("metrics.ntk.split", node.split, "one of train, val, test")
        if node.output not in OUTPUTS:
            raise ConfigError("metrics.ntk.output", node.output, "one of " + ", ".join(OUTPUTS))
        seed_option(cfg, "metrics.ntk.seed")
        for name, minimum in (("num_inputs", 1), ("output_index", 0)):
            if not (isinstance(node[name], int) and node[name] >= minimum):
                raise ConfigError(f"metrics.ntk.{name}", node[name], f"an integer >= {minimum}")
        spec = declared_input(cfg)  # the dataset's declared classes: checked before training (else when the metric runs)
        if spec is not None and node.output == "index":
            check_output_index(node.output_index, spec[1])

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        node = OmegaConf.select(cfg, key)
        if node.output != "index":
            return {f"{key}.output_index": f"it applies only with {key}.output=index; here {key}.output={node.output}"}
        return {}


def check_output_index(index: int, num_classes: int) -> None:
    if index >= num_classes:
        raise ConfigError(
            "metrics.ntk.output_index", index, f"an integer in 0..{num_classes - 1} (the model has {num_classes} outputs)"
        )


@register_metric("ntk")
def ntk_metric(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    if node.output == "index":
        check_output_index(node.output_index, ctx.data.num_classes)
    from ..analysis.ntk import empirical_ntk, kernel_comparison

    x = fixed_batch(ctx, node.split, node.num_inputs, node.seed)
    kwargs = dict(output=node.output, output_index=node.output_index)
    theta = empirical_ntk(ctx.model, x, masks=ctx.masks or None, **kwargs)
    reference = theta if phase == "dense" else empirical_ntk(ctx.dense(), x, **kwargs)
    cmp = kernel_comparison(theta, reference)
    values = {
        "ntk_rel_dist_dense": cmp["rel_dist"],
        "ntk_mean_ratio": cmp["mean_ratio"],
        "ntk_trace_ratio": cmp["trace_ratio"],
        "ntk_frobenius": float(torch.linalg.matrix_norm(theta)),
        "ntk_num_inputs": int(x.shape[0]),  # num_inputs, or the split's size when smaller
    }
    return MetricResult(scalars=[{"split": node.split, "metric": k, "value": v} for k, v in values.items()])
