"""What the training-time methods of this package share (docs/training_time.md): the schedule
options they fix, the run's model on the meta device for pre-run checks, and one global top-k
split back into per-tensor masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from ...core.checks import check
from ...core.config_base import ScheduleConfig, declared_input
from ..structure import top_k_mask


@dataclass
class TrainTimeScheduleConfig(ScheduleConfig):
    """A training-time method prunes once, from the trained dense model, then fine-tunes with the
    `finetune` config: the prune-and-retrain keys of ScheduleConfig keep their defaults (a value
    that would change nothing is an error, not ignored)."""

    reads = ()  # the check below pins them; an override of one is also reported as having no effect

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        fixed = {"rounds": 1, "score_weights": "trained", "restart_from": "trained", "retrain": "finetune"}
        check_defaults(cfg, key, fixed, "a training-time method")
        lr_rewind = OmegaConf.select(cfg, f"{key}.lr_rewind")  # null: its default, which means false here
        check(not lr_rewind, f"{key}.lr_rewind", lr_rewind, f"False with schedule={cfg.schedule.name} (a training-time method)")


def check_defaults(cfg: DictConfig, key: str, fixed: dict, why: str) -> None:
    """A training-time method ignores some options of the node `key` (the shared schedule options; the
    method's, where it chooses the weights itself): each of `fixed` must keep the value given (an error
    naming it, not a silently ignored choice)."""
    for name, value in fixed.items():
        got = OmegaConf.select(cfg, f"{key}.{name}")
        check(got == value, f"{key}.{name}", got, f"{value!r} with schedule={cfg.schedule.name} ({why})")


def meta_model(cfg: DictConfig):
    """The run's model for the dataset's declared input, as shapes on the meta device (built on the
    CPU without touching the run's random streams: `models.build_checked_shapes`), or None when the
    dataset declares no input shape (then the hook checks at its start)."""
    spec = declared_input(cfg)
    if spec is None:
        return None
    from ...models import build_checked_shapes

    shape, classes = spec
    try:
        return build_checked_shapes(cfg.model, shape, classes)
    except (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError):
        return None  # the pre-run pass reports a model that does not fit the data


def global_top_k(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Keep the k highest scores over all tensors together, ties broken by position
    (`structure.top_k_mask` on the concatenation), split back into one mask per tensor."""
    keep = top_k_mask(torch.cat([s.flatten() for s in scores.values()]), k)
    return {n: m.view_as(s) for (n, s), m in zip(scores.items(), keep.split([s.numel() for s in scores.values()]))}
