"""Training-time pruning: methods that shape the weights while the network trains (docs/training_time.md).

Each method is one plugin module here: its schedule config (`@config_schema("schedule", name)`,
options under `schedule.*`), its `TrainHook` subclass (prune_cli/train_hooks.py) built by a factory
declared with `@register_train_hook(name)`, and its plan (`@register_schedule(name)`), which puts a
`TrainWithHook(name, ...)` step (prune_cli/schedules/steps.py) between the dense model and the
fine-tuning. The experiment builds the hook from a `HookContext` when it reaches that step, and
checkpoints the hook's state with every epoch. Adding a method edits no existing file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from omegaconf import DictConfig

from ...core.registry import Registry
from ...train_hooks import TrainHook
from ..pruner import PruneContext


@dataclass(frozen=True)
class HookContext:
    """What a hook factory receives: the run's whole config (the method's options are in
    `config.schedule`, the score/structure/allocation in `config.method`), a PruneContext for
    choosing weights with the run's method (`prune_to_density(model, density, prune)`), the names of
    the prunable weights and the target density (1 - sparsity); the phase's training config is the
    one `train()` runs with (the step's `which`), so a hook does not need it."""

    config: DictConfig
    prune: PruneContext
    prunable: tuple[str, ...]
    density: float
    device: torch.device = torch.device("cpu")
    run_dir: Optional[Path] = None  # the run directory (None: none); tables go through TrainHook.tables(), not files here
    model: Optional[torch.nn.Module] = None  # the model the phase trains (final_masks() after a resume that had no step left)


TRAIN_HOOKS: Registry[Callable[[HookContext], TrainHook]] = Registry("train_hook", "schedule.name")


def register_train_hook(*names: str) -> Callable:
    """Register a factory `build(ctx: HookContext) -> TrainHook` under `names`."""
    return TRAIN_HOOKS.register(*names)


__all__ = ["HookContext", "TRAIN_HOOKS", "TrainHook", "register_train_hook"]
