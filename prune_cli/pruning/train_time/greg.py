"""`schedule=greg1 | greg2`: Growing Regularization (Wang, Qin, Zhang and Fu, "Neural Pruning via
Growing Regularization", ICLR 2021), with the schedule of the authors' public implementation
(docs/training_time.md, "GReg-1 and GReg-2").

The penalty factors change only every `interval` iterations (the paper's K_u), at the iterations
t = 0, K_u, 2 K_u, ...; the factor set at update u applies to the iterations uK_u .. (u+1)K_u - 1.

GReg-1: choose the weights to remove from the trained dense model with the run's method (score x
allocation x structure: `method=magnitude` unstructured, or `method.structure=channel` for the
paper's L1-norm filters), then train with the L2 penalty (lambda / 2) * ||w_chosen||^2 whose factor
is `delta` * (u + 1) at update u, raised until it first *exceeds* `ceiling` (the paper's tau; the
last factor is the first multiple of delta above tau); `stabilize_steps` iterations after that last
raise (K_s) the chosen weights are removed and the network is fine-tuned.

GReg-2: first a penalty on *all* prunable weights, `pick_delta` * (u + 1), until it first reaches
`pick_ceiling`; at that update, before its iterations, the method chooses by magnitude on the
regularized weights (the growing penalty has separated them by their curvature: the paper's
argument). That update's factor still applies to all weights for one interval; from the next update
the chosen weights' factor continues by `delta` per update until it exceeds `ceiling`, and the kept
weights get the constant factor `recover` (negative by default: it offsets a weight decay of the same
size, so the kept weights are not shrunk while the others are pushed to zero); then `stabilize_steps`
iterations, removal and fine-tuning.

The regularization phase trains with the `finetune` config at its constant LR (the implementation
holds the LR fixed while regularizing) for as many iterations as the schedule needs.
"""

from __future__ import annotations

import copy
import math
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
from .common import TrainTimeScheduleConfig


@config_schema("schedule", "greg1")
@dataclass
class GReg1Config(TrainTimeScheduleConfig):
    name: str = "greg1"
    delta: float = 0.01  # penalty increment (the paper's delta-lambda; 1e-4 at ImageNet scale)
    interval: int = 5  # iterations between increments (the paper's K_u)
    ceiling: float = 1.0  # raised until the factor exceeds this (the paper's tau)
    stabilize_steps: int = 100  # iterations after the last raise before the chosen weights are removed (K_s)

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
    recover: float = -1e-4  # the kept weights' constant factor after the choice (negative: offsets weight decay)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        for name in ("pick_delta", "pick_ceiling"):
            check(finite(s[name]) and s[name] > 0, f"{key}.{name}", s[name], "a finite number > 0")
        check(finite(s.recover), f"{key}.recover", s.recover, "a finite number")
        check(s.pick_ceiling >= s.pick_delta, f"{key}.pick_ceiling", s.pick_ceiling, f"a number >= {key}.pick_delta={s.pick_delta}")
        check(s.ceiling > s.pick_ceiling, f"{key}.ceiling", s.ceiling, f"a number > {key}.pick_ceiling={s.pick_ceiling}")


def raises(start: float, delta: float, limit: float, exceed: bool) -> int:
    """How many raises by `delta` from `start` the factor needs to reach `limit` (`exceed`: to go
    above it), at least one; a relative 1e-9 absorbs the float noise of (limit - start) / delta."""
    q = (limit - start) / delta
    n = math.floor(q + 1e-9) + 1 if exceed else math.ceil(q - 1e-9)
    return max(1, n)


@dataclass(frozen=True)
class GRegSchedule:
    """The penalty factors of GReg-1 and GReg-2 as closed forms of the iteration t (0, 1, ...).

    Update u = t // interval. GReg-1 (`picks` = 0): chosen weights delta * min(u + 1, pushes), the
    others 0. GReg-2: all weights pick_delta * (u + 1) for u < picks (the choice is made at the first
    iteration of update picks - 1); then the chosen weights picks * pick_delta + delta * min(u - picks
    + 1, pushes) and the kept ones `recover`. The last raise is at update picks + pushes - 1; the
    weights are removed after the iteration `stabilize` iterations later."""

    delta: float
    interval: int
    pushes: int  # raises of the chosen weights' factor until it exceeds the ceiling
    stabilize: int
    picks: int = 0  # GReg-2: raises of the all-weights factor until it reaches pick_ceiling
    pick_delta: float = 0.0
    recover: float = 0.0

    @classmethod
    def from_options(cls, s: DictConfig, greg2: bool) -> "GRegSchedule":
        delta, interval, ceiling = float(s.delta), int(s.interval), float(s.ceiling)
        if not greg2:
            return cls(delta, interval, raises(0.0, delta, ceiling, exceed=True), int(s.stabilize_steps))
        pick_delta = float(s.pick_delta)
        picks = raises(0.0, pick_delta, float(s.pick_ceiling), exceed=False)
        pushes = raises(picks * pick_delta, delta, ceiling, exceed=True)
        return cls(delta, interval, pushes, int(s.stabilize_steps), picks, pick_delta, float(s.recover))

    @property
    def choice_step(self) -> int:
        """GReg-2 chooses before this iteration (after this many iterations); GReg-1 at the start (0)."""
        return (self.picks - 1) * self.interval if self.picks else 0

    def chosen(self, t: int) -> float:
        """The factor on the weights to remove (on all weights before GReg-2's choice) at iteration t."""
        u = t // self.interval
        if u < self.picks:
            return self.pick_delta * (u + 1)
        return self.picks * self.pick_delta + self.delta * min(u - self.picks + 1, self.pushes)

    def kept(self, t: int) -> float:
        """The factor on the kept weights at iteration t (GReg-2's all-weights factor up to its choice)."""
        if t // self.interval < self.picks:
            return self.chosen(t)
        return self.recover

    def steps(self) -> int:
        """Iterations of the regularization phase: up to the last raise, then `stabilize` more."""
        return (self.picks + self.pushes - 1) * self.interval + self.stabilize + 1


class GRegHook(TrainHook):
    """The growing L2 penalty as an extra loss term; the choice of weights and the step count are its
    state. Before GReg-2's choice every prunable weight has the same factor."""

    def __init__(self, ctx: HookContext, greg2: bool):
        self.ctx = ctx
        self.greg2 = greg2
        self.schedule = GRegSchedule.from_options(ctx.config.schedule, greg2)
        self.t = 0  # optimizer steps of this phase so far
        self.keep: Optional[Masks] = None  # the method's masks (True = kept); None until chosen
        self.params: dict[str, torch.nn.Parameter] = {}

    def steps_needed(self) -> int:
        return self.schedule.steps()

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
        if self.schedule.choice_step == 0:
            self._choose(model)

    def extra_loss(self, model, x, y, logits) -> torch.Tensor:
        chosen, kept = self.schedule.chosen(self.t), self.schedule.kept(self.t)
        if self.keep is None:  # GReg-2 before the choice: every prunable weight
            return 0.5 * chosen * sum((w * w).sum() for w in self.params.values())
        loss = 0.5 * chosen * sum((self.params[n] * ~k).pow(2).sum() for n, k in self.keep.items())
        if kept != 0.0:
            loss = loss + 0.5 * kept * sum((self.params[n] * k).pow(2).sum() for n, k in self.keep.items())
        return loss

    def after_step(self, model, step) -> None:
        self.t += 1
        if self.keep is None and self.t >= self.schedule.choice_step:
            self._choose(model)

    def epoch_row(self) -> dict:
        last = max(self.t - 1, 0)
        row = {"penalty": self.schedule.chosen(last), "penalty_step": self.t}
        if self.greg2:
            row["penalty_kept"] = self.schedule.kept(last)
        return row

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
