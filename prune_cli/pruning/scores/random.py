"""Random pruning: i.i.d. U(0,1) scores from the pruning event's generator (docs/robustness.md).

With `method.sampling=exact` the top-k of these scores is a uniformly random subset of exactly
k weights (the RigL / LAP convention); with `bernoulli` each weight is kept independently with
probability equal to its layer's density (the Random_Pruning and NTK-theory convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import choice
from ...core.config_base import MethodConfig, config_schema
from . import register_score


@config_schema("method", "random")
@dataclass
class RandomMethodConfig(MethodConfig):
    sampling: str = "exact"  # exact (achieved = target) | bernoulli (i.i.d. keep with p = density)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        choice(cfg, f"{key}.sampling", {"exact", "bernoulli"})


@register_score("random", selection=lambda method: getattr(method, "sampling", RandomMethodConfig.sampling))
def random_scores(model, params, ctx):
    return {name: torch.rand(p.shape, generator=ctx.generator) for name, p in params.items()}
