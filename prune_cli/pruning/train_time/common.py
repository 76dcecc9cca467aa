"""What the training-time methods share: the schedule options they fix, and the growing penalty level."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ...core.checks import check
from ...core.config_base import ScheduleConfig


@dataclass
class TrainTimeScheduleConfig(ScheduleConfig):
    """A training-time method prunes once, from the trained dense model, then fine-tunes with the
    `finetune` config: the prune-and-retrain keys of ScheduleConfig keep their defaults (a value
    that would change nothing is an error, not ignored)."""

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        fixed = {"rounds": 1, "score_weights": "trained", "restart_from": "trained", "retrain": "finetune", "lr_rewind": False}
        for name, value in fixed.items():
            check(s[name] == value, f"{key}.{name}", s[name], f"{value!r} with schedule={s.name} (a training-time method)")


def growing_level(t: int, delta: float, interval: int, ceiling: float, start: float = 0.0) -> float:
    """The penalty factor used at the t-th step (t = 0, 1, ...) of Growing Regularization (Wang et
    al., ICLR 2021): raised by `delta` every `interval` steps, beginning with the first step, up to
    `ceiling`: min(ceiling, start + delta * (floor(t / interval) + 1))."""
    return min(ceiling, start + delta * (t // interval + 1))


def steps_to_ceiling(delta: float, interval: int, ceiling: float, start: float = 0.0) -> int:
    """The first step t at which `growing_level` equals the ceiling (the number of steps before it)."""
    raises = max(1, math.ceil((ceiling - start) / delta - 1e-9))
    return interval * (raises - 1)
