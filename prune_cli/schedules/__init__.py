"""Schedules decide WHEN to prune. A schedule turns the config into a plan: a list of typed steps
(prune_cli/schedules/steps.py: dense, prune, restart, train, gradual, record) that the Experiment
executes with a checkpoint after each one.

Each schedule is a plugin module here, declared with `@register_schedule("name")` on
`plan(cfg) -> list[Step]` and found by discovery (prune_cli/core/plugins.py). Three settings make
one-shot pruning, pruning at initialisation, iterative pruning and lottery tickets with rewinding
the same code path (prune_and_retrain.py): which weights are scored (`score_weights`), which
weights training restarts from (`restart_from`, `rewind_epoch`), and where the LR schedule
resumes (`retrain`, `lr_rewind`).
"""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from ..core.registry import Registry

SCHEDULES: Registry[Callable[[DictConfig], list]] = Registry("schedule", "schedule.name")


def register_schedule(*names: str) -> Callable:
    """Register `plan(cfg) -> list[Step]` under `names`."""
    return SCHEDULES.register(*names)


__all__ = ["SCHEDULES", "register_schedule"]
