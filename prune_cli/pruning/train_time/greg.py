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

With whole filters (`method.structure=channel`) the implementation also stops raising once the
kept filters' mean |w| is `mag_ratio_limit` times the chosen filters' (a running average per layer;
GReg-1: once every layer reaches it, GReg-2: per layer): prune_cli/pruning/train_time/greg_mag_ratio.py.
A stopped layer keeps its last factors; the stabilization starts when the last layer stopped.

The regularization phase trains with the `finetune` config at its constant LR (the implementation
holds the LR fixed while regularizing) for as many iterations as the schedule needs: at most the
closed form's (`GRegSchedule.steps`), ending at the end of the epoch in which the stabilization
after an earlier magnitude-ratio stop is over.
"""

from __future__ import annotations

import copy
import logging
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
from .greg_mag_ratio import MagnitudeRatioStop, filter_magnitudes

log = logging.getLogger(__name__)

IMPLEMENTATION_MAG_RATIO_LIMIT = 1000.0  # the public implementation's default `mag_ratio_limit`
FILTER_STRUCTURE = "channel"  # the structure that removes whole filters, the only one the ratio applies to


@config_schema("schedule", "greg1")
@dataclass
class GReg1Config(TrainTimeScheduleConfig):
    name: str = "greg1"
    delta: float = 0.01  # penalty increment (the paper's delta-lambda; 1e-4 at ImageNet scale)
    interval: int = 5  # iterations between increments (the paper's K_u)
    ceiling: float = 1.0  # raised until the factor exceeds this (the paper's tau)
    stabilize_steps: int = 100  # iterations after the last raise before the chosen weights are removed (K_s)
    # filters only: stop raising once the kept/chosen filter-magnitude ratio (running average) reaches
    # this; null = the implementation's 1000 with method.structure=channel, no ratio stop otherwise
    mag_ratio_limit: Optional[float] = None

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        for name in ("delta", "ceiling"):
            check(finite(s[name]) and s[name] > 0, f"{key}.{name}", s[name], "a finite number > 0")
        check(s.ceiling >= s.delta, f"{key}.ceiling", s.ceiling, f"a number >= {key}.delta={s.delta}")
        positive_int(cfg, f"{key}.interval")
        positive_int(cfg, f"{key}.stabilize_steps", minimum=0)
        limit = s.mag_ratio_limit
        if limit is not None:
            check(
                isinstance(limit, (int, float)) and limit > 1,  # False for nan
                f"{key}.mag_ratio_limit",
                limit,
                "a number > 1 (inf: stop at the ceiling only) or null (the implementation's default)",
            )
            structure = OmegaConf.select(cfg, "method.structure")
            check(
                structure == FILTER_STRUCTURE,
                f"{key}.mag_ratio_limit",
                limit,
                f"null with method.structure={structure}: the magnitude-ratio stop compares whole filters "
                f"(method.structure={FILTER_STRUCTURE}); the paper's implementation does not use it for other weights",
            )


def mag_ratio_limit(cfg: DictConfig) -> Optional[float]:
    """The limit in force: the configured one, the implementation's 1000 for filters when null, and
    None (no ratio stop) for any other structure."""
    if cfg.method.structure != FILTER_STRUCTURE:
        return None
    limit = cfg.schedule.mag_ratio_limit
    return IMPLEMENTATION_MAG_RATIO_LIMIT if limit is None else float(limit)


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
        score = OmegaConf.select(cfg, "method.score")
        check(
            score == "magnitude",
            "method.score",
            score,
            f"magnitude with schedule={s.name}: GReg-2 chooses by magnitude on the weights its growing penalty "
            "has separated (schedule=greg1 chooses with any method)",
        )


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
    """The growing L2 penalty as an extra loss term; the choice of weights, the step count and, for
    filters, the magnitude-ratio stop (greg_mag_ratio.py) are its state. Before GReg-2's choice every
    prunable weight has the same factor."""

    def __init__(self, ctx: HookContext, greg2: bool):
        self.ctx = ctx
        self.greg2 = greg2
        self.schedule = GRegSchedule.from_options(ctx.config.schedule, greg2)
        self.t = 0  # optimizer steps of this phase so far
        self.keep: Optional[Masks] = None  # the method's masks (True = kept); None until chosen
        self.params: dict[str, torch.nn.Parameter] = {}
        limit = mag_ratio_limit(ctx.config)
        s = self.schedule
        self.ratio_stop: Optional[MagnitudeRatioStop] = None
        if limit is not None:
            pick_update = s.picks - 1 if greg2 else 0
            self.ratio_stop = MagnitudeRatioStop(tuple(ctx.prunable), limit, greg2, pick_update, s.picks + s.pushes - 1)

    def steps_needed(self) -> int:
        return self.schedule.steps()

    def end_step(self) -> Optional[int]:
        """Iterations of the phase: the last raise (of every layer), then `stabilize` more; None while
        a magnitude-ratio stop is still possible before the ceiling."""
        if self.ratio_stop is None:
            return self.schedule.steps()
        end = self.ratio_stop.end_update()
        return None if end is None else end * self.schedule.interval + self.schedule.stabilize + 1

    def factors(self, name: str, t: int) -> tuple[float, float]:
        """(chosen, kept) factors of layer `name` at iteration t: the closed forms, held from the
        update at which the layer stopped raising."""
        stop = self.ratio_stop.stop.get(name) if self.ratio_stop is not None else None
        if stop is not None:
            t = min(t, stop * self.schedule.interval)
        return self.schedule.chosen(t), self.schedule.kept(t)

    # -- hook points -------------------------------------------------------------------------

    def _bind(self, model) -> None:
        named = dict(model.named_parameters())
        self.params = {n: named[n] for n in self.ctx.prunable}

    def _choose(self, model) -> None:
        # on a copy: the pruner may change the weights it scores (method.rounds > 1 masks between
        # rounds, the reinit ablation), and GReg only chooses here; the weights shrink by the penalty
        masks = prune_to_density(copy.deepcopy(model), self.ctx.density, self.ctx.prune)
        self.keep = {n: m.to(self.params[n].device) for n, m in masks.items()}
        if all(bool(k.all()) for k in self.keep.values()):
            log.warning(
                "GReg: the method chooses no weight at sparsity %g: the growing penalty acts on no weight "
                "(GReg-2: on none after this iteration), so the regularize phase is plain training",
                1.0 - self.ctx.density,
            )
        if self.ratio_stop is not None:  # a filter is chosen when none of its weights is kept
            self.ratio_stop.choose({n: ~k.flatten(1).any(1) for n, k in self.keep.items()})

    def _update(self) -> None:
        """The implementation's per-update bookkeeping: magnitude ratios and stops (filters only)."""
        rule = self.ratio_stop
        if rule is None or self.t % self.schedule.interval or rule.end_update() is not None:
            return
        u = self.t // self.schedule.interval
        before = set(rule.stop)
        rule.update(u, {n: filter_magnitudes(self.params[n]) for n in rule.pending()})
        for name in [n for n in rule.stop if n not in before]:
            log.info(
                "GReg: %s stops raising at iteration %d (%s; kept/chosen filter magnitude ratio %s, limit %g)",
                name,
                self.t,
                rule.reason[name],
                f"{rule.ratio[name]:.4g}" if name in rule.ratio else "none",
                rule.limit,
            )
        if rule.end_update() is not None and before != set(rule.stop):
            end = self.end_step() - 1
            log.info("GReg: all layers stopped raising at iteration %d; the chosen weights go after iteration %d", self.t, end)

    def start(self, model) -> None:
        self._bind(model)
        self.t = 0
        if self.schedule.choice_step == 0:
            self._choose(model)
        self._update()

    def extra_loss(self, model, x, y, logits) -> torch.Tensor:
        if self.keep is None:  # GReg-2 before the choice: every prunable weight
            return 0.5 * self.schedule.chosen(self.t) * sum((w * w).sum() for w in self.params.values())
        groups: dict[tuple[float, float], list[str]] = {}  # layers with the same factors: one term
        for n in self.keep:
            groups.setdefault(self.factors(n, self.t), []).append(n)
        loss = None
        for (chosen, kept), names in groups.items():
            term = 0.5 * chosen * sum((self.params[n] * ~self.keep[n]).pow(2).sum() for n in names)
            if kept != 0.0:
                term = term + 0.5 * kept * sum((self.params[n] * self.keep[n]).pow(2).sum() for n in names)
            loss = term if loss is None else loss + term
        return loss

    def after_step(self, model, step) -> None:
        self.t += 1
        if self.keep is None and self.t >= self.schedule.choice_step:
            self._choose(model)
        self._update()

    def finished(self) -> bool:
        end = self.end_step()
        return end is not None and self.t >= end

    def epoch_row(self) -> dict:
        last = max(self.t - 1, 0)
        per_layer = [self.factors(n, last) for n in self.ctx.prunable]
        chosen = [c for (c, _), n in zip(per_layer, self.ctx.prunable) if self.keep is None or not bool(self.keep[n].all())]
        # the largest factor of the weights the penalty acts on: none chosen (sparsity 0), no level
        row = {"penalty": max(chosen) if chosen else math.nan, "penalty_step": self.t}
        if self.greg2:
            row["penalty_kept"] = max(k for _, k in per_layer)
        rule, interval = self.ratio_stop, self.schedule.interval
        end = self.schedule.picks + self.schedule.pushes - 1 if rule is None else rule.end_update()
        row["raise_end_step"] = math.nan if end is None else end * interval
        if rule is not None:
            row["mag_ratio_min"] = rule.smallest_ratio()
            row["ratio_stop_step"] = math.nan if rule.ratio_stop is None else rule.ratio_stop * interval
            for i, name in enumerate(self.ctx.prunable):
                row[f"mag_ratio_{i}"] = rule.ratio.get(name, math.nan)
                row[f"raise_stop_{i}"] = rule.stop[name] * interval if name in rule.stop else math.nan
        return row

    def final_masks(self) -> Optional[Masks]:
        return self.keep

    def state_dict(self) -> dict:
        state = {"t": self.t}
        if self.keep is not None:
            state["keep"] = {n: m.cpu().clone() for n, m in self.keep.items()}
        if self.ratio_stop is not None:
            state["mag_ratio"] = self.ratio_stop.state_dict()
        return state

    def resume(self, model, state: dict) -> None:
        self._bind(model)
        self.t = int(state["t"])
        self.keep = {n: m.to(self.params[n].device) for n, m in state["keep"].items()} if "keep" in state else None
        if self.ratio_stop is not None:
            self.ratio_stop.load_state_dict(state["mag_ratio"])


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
