"""The `membership` metric: a loss / confidence threshold membership-inference attack per phase.

The attack (scores, AUC, held-out threshold accuracy) is in prune_cli/analysis/membership.py; this
adapter samples members (training split) and non-members (test split) and writes the scalars.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig

from ..core.checks import seed_option
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric

log = logging.getLogger(__name__)


def sample(x: torch.Tensor, y: torch.Tensor, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randperm(len(y), generator=gen)[:n].to(x.device)
    return x[index], y[index]


@config_schema("metric", "membership")
@dataclass
class MembershipConfig:
    """Loss / confidence threshold membership-inference attack (metrics/membership.py)."""

    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    num_samples: int = 1000  # members (training split) and as many non-members (test split), at most
    sample_seed: int = 0  # which examples, and the calibration / evaluation halves for the threshold

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.membership
        if not (isinstance(node.num_samples, int) and node.num_samples >= 2):
            raise ConfigError("metrics.membership.num_samples", node.num_samples, "an integer >= 2")
        seed_option(cfg, "metrics.membership.sample_seed")


@register_metric("membership")
def membership(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """Attack scalars in metrics.csv (split "membership"); pruned rows carry the dense value."""
    data = ctx.data
    n = min(node.num_samples, len(data.train_y), len(data.test_y))
    if n < 2:  # an AUC needs a member and a non-member at least twice over
        log.warning(
            "membership: not computed in phase %s: %d training and %d test examples (the attack needs 2 of each)",
            phase,
            len(data.train_y),
            len(data.test_y),
        )
        return MetricResult()
    gen = torch.Generator().manual_seed(node.sample_seed)  # own generator: the run's RNG is untouched
    member, nonmember = sample(data.train_x, data.train_y, n, gen), sample(data.test_x, data.test_y, n, gen)
    from ..analysis.membership import membership_attack  # scipy: imported when the metric runs

    values = membership_attack(ctx.model, member, nonmember, node.sample_seed, ctx.eval_batch_size)
    return MetricResult(scalars=[{"split": "membership", "metric": k, "value": v} for k, v in values.items() if math.isfinite(v)])
