"""`schedule=greg1 | greg2`: Growing Regularization (Wang, Qin, Zhang and Fu, "Neural Pruning via
Growing Regularization", ICLR 2021).

GReg-1: choose the weights to remove from the trained dense model with the run's method (score x
allocation x structure: `method=magnitude` unstructured, or `method.structure=channel` for the
paper's L1-norm filters), then train with an L2 penalty (lambda / 2) * ||w_chosen||^2 whose factor
lambda starts at `delta` and rises by `delta` every `interval` iterations up to `ceiling`; after
`stabilize_steps` more iterations at the ceiling, remove the chosen weights and fine-tune.

GReg-2: first a penalty on *all* prunable weights, rising by `pick_delta` every `interval` iterations
up to `pick_ceiling`; weights of different importance shrink at different rates under it (the
paper's argument: the growing penalty exposes the local curvature), so the method's magnitude-based
choice made at that point uses it. The chosen weights are then pushed as in GReg-1, their factor
continuing from `pick_ceiling` up to `ceiling` while the kept weights are not penalised, and removed
before fine-tuning.

The regularization phase trains with the `finetune` config at its constant LR (the paper holds the
LR fixed while regularizing) for as many epochs as the penalty schedule needs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from ...core.checks import check, finite, positive_int
from ...core.config_base import config_schema
from ...models.masks import Masks
from ...schedules import register_schedule
from ...schedules.steps import Dense, Record, Step, Train, TrainWithHook
from ...train_hooks import TrainHook
from ..pruner import prune_to_density
from . import HookContext, register_train_hook
from .common import TrainTimeScheduleConfig, growing_level, steps_to_ceiling


@config_schema("schedule", "greg1")
@dataclass
class GReg1Config(TrainTimeScheduleConfig):
    name: str = "greg1"
    delta: float = 0.01  # penalty increment (the paper's delta-lambda; 1e-4 at ImageNet scale)
    interval: int = 5  # iterations between increments (the paper's K_u)
    ceiling: float = 1.0  # the penalty factor's upper limit (the paper's tau)
    stabilize_steps: int = 100  # iterations at the ceiling before the chosen weights are removed (K_s)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        for name in ("delta", "ceiling"):
            check(finite(s[name]) and s[name] > 0, f"{key}.{name}", s[name], "a finite number > 0")
        check(s.ceiling >= s.delta, f"{key}.ceiling", s.ceiling, f"a number >= {key}.delta={s.delta}")
        positive_int(cfg, f"{key}.interval")
        positive_int(cfg, f"{key}.stabilize_steps", minimum=0)


@config_schema("schedule", "greg2")
@dataclass
class GReg2Config(GReg1Config):
    name: str = "greg2"
    pick_delta: float = 0.001  # increment of the penalty on all weights before the choice
    pick_ceiling: float = 0.1  # its upper limit: the weights are chosen when it is reached

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        for name in ("pick_delta", "pick_ceiling"):
            check(finite(s[name]) and s[name] > 0, f"{key}.{name}", s[name], "a finite number > 0")
        check(s.pick_ceiling >= s.pick_delta, f"{key}.pick_ceiling", s.pick_ceiling, f"a number >= {key}.pick_delta={s.pick_delta}")
        check(s.ceiling > s.pick_ceiling, f"{key}.ceiling", s.ceiling, f"a number > {key}.pick_ceiling={s.pick_ceiling}")


class GRegHook(TrainHook):
    """The growing L2 penalty as an extra loss term; the choice of weights and the step count are its
    state. `pick_steps` > 0 is GReg-2's phase of penalising every weight before choosing."""

    def __init__(self, ctx: HookContext, greg2: bool):
        s = ctx.config.schedule
        self.ctx = ctx
        self.delta, self.interval, self.ceiling, self.stabilize = (
            float(s.delta),
            int(s.interval),
            float(s.ceiling),
            int(s.stabilize_steps),
        )
        self.pick_delta = float(s.pick_delta) if greg2 else 0.0
        self.pick_ceiling = float(s.pick_ceiling) if greg2 else 0.0
        # GReg-2 chooses at the first step whose factor reaches pick_ceiling, after that step
        self.pick_steps = steps_to_ceiling(self.pick_delta, self.interval, self.pick_ceiling) + 1 if greg2 else 0
        self.t = 0  # optimizer steps of this phase so far
        self.keep: Optional[Masks] = None  # the method's masks (True = kept); None until chosen
        self.params: dict[str, torch.nn.Parameter] = {}

    # -- the schedule of the penalty factor --------------------------------------------------

    def level(self, t: int) -> float:
        """lambda at step t: GReg-2's factor on all weights while picking, then the chosen weights' factor."""
        if t < self.pick_steps:
            return growing_level(t, self.pick_delta, self.interval, self.pick_ceiling)
        return growing_level(t - self.pick_steps, self.delta, self.interval, self.ceiling, start=self.pick_ceiling)

    def steps_needed(self) -> int:
        return self.pick_steps + steps_to_ceiling(self.delta, self.interval, self.ceiling, start=self.pick_ceiling) + self.stabilize

    # -- hook points -------------------------------------------------------------------------

    def _bind(self, model) -> None:
        named = dict(model.named_parameters())
        self.params = {n: named[n] for n in self.ctx.prunable}

    def _choose(self, model) -> None:
        # on a copy: the pruner may change the weights it scores (method.rounds > 1 masks between
        # rounds, the reinit ablation), and GReg only chooses here; the weights shrink by the penalty
        masks = prune_to_density(copy.deepcopy(model), self.ctx.density, self.ctx.prune)
        self.keep = {n: m.to(self.params[n].device) for n, m in masks.items()}

    def start(self, model) -> None:
        self._bind(model)
        self.t = 0
        if self.pick_steps == 0:
            self._choose(model)

    def extra_loss(self, model, x, y, logits) -> torch.Tensor:
        lam = self.level(self.t)
        if self.keep is None:  # GReg-2 before the choice: every prunable weight
            return 0.5 * lam * sum((w * w).sum() for w in self.params.values())
        return 0.5 * lam * sum((self.params[n] * ~self.keep[n]).pow(2).sum() for n in self.keep)

    def after_step(self, model, step) -> None:
        self.t += 1
        if self.keep is None and self.t >= self.pick_steps:
            self._choose(model)

    def epoch_row(self) -> dict:
        return {"penalty": self.level(max(self.t - 1, 0)), "penalty_step": self.t}

    def final_masks(self) -> Optional[Masks]:
        return self.keep

    def state_dict(self) -> dict:
        state = {"t": self.t}
        if self.keep is not None:
            state["keep"] = {n: m.cpu().clone() for n, m in self.keep.items()}
        return state

    def resume(self, model, state: dict) -> None:
        self._bind(model)
        self.t = int(state["t"])
        self.keep = {n: m.to(self.params[n].device) for n, m in state["keep"].items()} if "keep" in state else None


@register_train_hook("greg1", "greg2")
def build(ctx: HookContext) -> GRegHook:
    return GRegHook(ctx, greg2=ctx.config.schedule.name == "greg2")


@register_schedule("greg1", "greg2")
def greg_plan(cfg: DictConfig) -> list[Step]:
    """dense -> regularize (growing penalty; the chosen weights are removed at its end) -> fine-tune."""
    name = cfg.schedule.name
    return [
        Dense(),
        Record("dense"),
        TrainWithHook(name, "finetune", "regularize", -1, True),
        Record("pruned"),
        Train("finetune"),
        Record("finetuned"),
    ]
