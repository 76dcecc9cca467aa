"""The `membership` metric: a loss / confidence threshold membership-inference attack per phase.

The attack (scores, AUC, held-out threshold accuracy) is in prune_cli/analysis/membership.py; this
adapter samples members (training split) and non-members (test split) with the same number of each
class, and writes the scalars. Class-matched: where the training split's class mix differs from the
test split's (`dataset.imbalance`, or data pruning that keeps some classes more than others), members
drawn from the one and non-members from the other differ in class before they differ in membership,
and an attack on the loss measures the class mix: models that were never trained scored dense-phase
loss AUCs of 0.51, 0.55 and 0.61 on seeds 0-2 of 4 long-tailed synthetic classes before the classes
were matched (0.51, 0.50, 0.50 after; the command and the data-pruning case are in docs/analysis.md,
`membership`). Membership inference compares members and non-members drawn from the same
distribution (Shokri et al. 2017; Yeom et al. 2018), which matching the classes restores as far as
the class goes.
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


def class_matched_counts(train_counts: list[int], test_counts: list[int], total: int) -> list[int]:
    """Members (and as many non-members) per class: in proportion to the training split's classes (the
    population the members represent), each at most what both splits hold of it, `total` at most
    (`water_fill`: a class that cannot fill its share gives the rest to the others)."""
    from ..data.pruning import water_fill

    sizes = [min(a, b) for a, b in zip(train_counts, test_counts)]
    return water_fill(sizes, [a if size else 0 for a, size in zip(train_counts, sizes)], total)


def sample(x: torch.Tensor, y: torch.Tensor, counts: list[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """counts[c] examples of each class c, drawn without replacement in a seeded random order."""
    order = torch.randperm(len(y), generator=gen)
    labels = y.cpu()[order]  # once, not once per class
    index = torch.cat([order[labels == c][:k] for c, k in enumerate(counts)]).to(x.device)
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
    train_counts, test_counts = (torch.bincount(y.cpu(), minlength=data.num_classes).tolist() for y in (data.train_y, data.test_y))
    counts = class_matched_counts(train_counts, test_counts, node.num_samples)
    if sum(counts) < 2:  # an AUC needs a member and a non-member at least twice over
        log.warning(
            "membership: not computed in phase %s: %d training and %d test examples, %d pairs of the same class "
            "(the attack needs 2 members and 2 non-members of matching classes)",
            phase,
            len(data.train_y),
            len(data.test_y),
            sum(counts),
        )
        return MetricResult()
    unmatched = [c for c, (a, b) in enumerate(zip(train_counts, test_counts)) if a and not b]
    if unmatched and not ctx.state.get("membership_unmatched_said"):
        ctx.state["membership_unmatched_said"] = True
        log.warning("membership: classes %s have training examples but no test example: the attack leaves them out", unmatched)
    gen = torch.Generator().manual_seed(node.sample_seed)  # own generator: the run's RNG is untouched
    member, nonmember = sample(data.train_x, data.train_y, counts, gen), sample(data.test_x, data.test_y, counts, gen)
    from ..analysis.membership import membership_attack  # scipy: imported when the metric runs

    values = membership_attack(ctx.model, member, nonmember, node.sample_seed, ctx.eval_batch_size)
    return MetricResult(scalars=[{"split": "membership", "metric": k, "value": v} for k, v in values.items() if math.isfinite(v)])
