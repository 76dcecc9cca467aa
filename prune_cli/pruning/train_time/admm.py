"""`schedule=admm`: ADMM pruning, the pruning algorithm of Wang et al., "Against Membership Inference
Attack: Pruning is All You Need" (IJCAI 2021), which finds a sparse subnetwork that leaks less
membership information than the dense model at competitive accuracy.

The problem is  min_W loss(W)  subject to  W in S = {at most k nonzero weights}  (per layer with
`method.allocation=layerwise`, k_l = round(density x n_l); over all prunable weights with `global`).
ADMM splits it with an auxiliary copy Z in S and a scaled dual U (Zhang et al., "A Systematic DNN
Weight Pruning Framework using ADMM", ECCV 2018, the framework the authors' group builds on):

    W-step: SGD on  loss(W) + rho/2 * sum_l ||W_l - Z_l + U_l||^2     (every optimizer step)
    Z-step: Z = Pi_S(W + U)         (Euclidean projection: keep the k largest |W + U|)
    U-step: U = U + W - Z
    rho <- min(rho * rho_growth, rho_max)           (Z, U and rho every `update_every` steps)

After `epochs` epochs the weights are hard-pruned to Pi_S(W)'s support and the masked network is
retrained (the `finetune` config). The membership metric (`metrics.membership.enabled=true`)
evaluates the attack on every phase. The paper's text was not available to us beyond its abstract;
this is the ADMM formulation its authors' pruning work uses (docs/training_time.md, "Pruning
against membership inference").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ...core.checks import check, finite, positive_int
from ...core.config_base import ScheduleConfig, config_schema
from ...models.masks import Masks
from ...schedules import register_schedule
from ...schedules.steps import Dense, Record, Step, Train, TrainWithHook
from ..structure import top_k_mask
from . import HookContext, TrainHook, register_train_hook
from .common import check_defaults, global_top_k

ALLOCATIONS = ("layerwise", "global")


@config_schema("schedule", "admm")
@dataclass
class AdmmConfig(ScheduleConfig):
    name: str = "admm"
    epochs: int = 10  # ADMM epochs (the `finetune` config's optimizer and LR, held constant)
    rho: float = 1e-3  # initial penalty parameter
    rho_growth: float = 1.3  # rho is multiplied by this at every Z/U update ...
    rho_max: float = 1.0  # ... up to this
    update_every: int = 20  # optimizer steps between Z/U updates

    reads = ()  # its steps are fixed: from the trained dense model, ADMM, hard pruning, retraining with `finetune`
    # at sparsity 0 (density 1) the projection keeps every weight whatever method.allocation: the method's options
    # do nothing (prune_cli/run/unused_options.py `_nothing_pruned`); the penalty still acts (rho moves W toward Z)
    method_unread_unpruned = True

    @staticmethod
    def check_training_examples(cfg: DictConfig, examples: int, exact: bool) -> None:
        """From the number of training examples (prune_cli/run/prevalidate.py check_data_sizes: as
        declared, `exact=False` for an upper bound, so a failure is certain either way; and once
        loaded, before any training): at least one Z/U update in the ADMM phase, whose
        schedule.epochs epochs take finetune.batch_size batches. Otherwise ADMM is plain training
        followed by one-shot magnitude pruning."""
        steps = cfg.schedule.epochs * -(-examples // cfg.finetune.batch_size)
        check(
            cfg.schedule.update_every <= steps,
            "schedule.update_every",
            cfg.schedule.update_every,
            f"at most {steps}, the optimizer steps of the ADMM phase ({'' if exact else 'at most '}{examples} training examples, "
            f"finetune.batch_size={cfg.finetune.batch_size}, schedule.epochs={cfg.schedule.epochs}): no Z/U update would happen",
        )

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        s = OmegaConf.select(cfg, key)
        if s.rho_growth != 1:
            return {}
        return {f"{key}.rho_max": f"with {key}.rho_growth=1 rho stays at {key}.rho={s.rho} and never reaches a ceiling"}

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.epochs")
        positive_int(cfg, f"{key}.update_every")
        check(finite(s.rho) and s.rho > 0, f"{key}.rho", s.rho, "a positive number")
        check(finite(s.rho_growth) and s.rho_growth >= 1, f"{key}.rho_growth", s.rho_growth, "a number >= 1")
        check(finite(s.rho_max) and s.rho_max >= s.rho, f"{key}.rho_max", s.rho_max, f"a number >= schedule.rho={s.rho}")
        m = cfg.method
        check(
            m.score == "magnitude",
            "method.score",
            m.score,
            "magnitude with schedule=admm (the Z-step is the Euclidean projection: keep the largest |W + U|)",
        )
        check(
            m.allocation in ALLOCATIONS,
            "method.allocation",
            m.allocation,
            "layerwise (k per layer) or global (k over all prunable weights) with schedule=admm",
        )
        check(m.structure == "unstructured", "method.structure", m.structure, "unstructured with schedule=admm")
        # the Z-step is the projection itself: no scoring rounds, no threshold rule, no ablations of a pruner's mask
        fixed = {"rounds": 1, "threshold_impl": "topk", "invert": False, "shuffle": False, "reinit": False}
        check_defaults(cfg, "method", fixed, "the Z-step keeps the k largest |W + U|, ties by position")


def project(weights: dict[str, torch.Tensor], density: float, allocation: str) -> Masks:
    """The support of the Euclidean projection onto {at most k nonzeros}: the k largest magnitudes,
    ties broken by position (per tensor for `layerwise`, over all tensors for `global`)."""
    if allocation == "layerwise":
        return {n: top_k_mask(w.abs(), round(density * w.numel())) for n, w in weights.items()}
    return global_top_k({n: w.abs() for n, w in weights.items()}, round(density * sum(w.numel() for w in weights.values())))


def dual_update(w: torch.Tensor, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The scaled dual ascent step U <- U + W - Z."""
    return u + w - z


class AdmmHook(TrainHook):
    def __init__(self, ctx: HookContext):
        self.ctx = ctx
        self.options = ctx.config.schedule
        self.allocation = ctx.config.method.allocation
        # the prunable weights, bound once per phase (at start/resume; from ctx.model for final_masks
        # after a resume that had no step left)
        self.weights: dict[str, torch.nn.Parameter] = {}
        if ctx.model is not None:
            self._bind(ctx.model)

    def _bind(self, model: nn.Module) -> None:
        self.model = model
        params = dict(model.named_parameters())
        self.weights = {n: params[n] for n in self.ctx.prunable}

    def start(self, model: nn.Module) -> None:
        self._bind(model)
        w = {n: p.detach().clone() for n, p in self.weights.items()}
        masks = project(w, self.ctx.density, self.allocation)
        self.z = {n: w[n] * masks[n] for n in w}
        self.u = {n: torch.zeros_like(w[n]) for n in w}
        self.rho = float(self.options.rho)
        self.updates = 0
        self.residual = float("nan")  # ||W - Z|| / ||W|| at the last Z-step

    def extra_loss(self, model, x, y, logits) -> torch.Tensor:
        w = self.weights
        return self.rho / 2 * sum(((w[n] - self.z[n] + self.u[n]) ** 2).sum() for n in w)

    def after_step(self, model: nn.Module, step: int) -> Optional[Masks]:
        if (step + 1) % self.options.update_every == 0:
            self.update(model)
        return None

    def update(self, model: nn.Module) -> None:
        """Z-step, U-step and the rho schedule."""
        w = {n: p.detach() for n, p in self.weights.items()}
        shifted = {n: w[n] + self.u[n] for n in w}
        masks = project(shifted, self.ctx.density, self.allocation)
        self.z = {n: shifted[n] * masks[n] for n in w}
        self.u = {n: dual_update(w[n], self.z[n], self.u[n]) for n in w}
        self.rho = min(self.rho * self.options.rho_growth, self.options.rho_max)
        self.updates += 1
        norm = torch.sqrt(sum((w[n] ** 2).sum() for n in w))
        self.residual = float(torch.sqrt(sum(((w[n] - self.z[n]) ** 2).sum() for n in w)) / norm.clamp_min(1e-12))

    def epoch_row(self) -> dict:
        return {"admm_rho": self.rho, "admm_residual": self.residual}

    def final_masks(self) -> Optional[Masks]:
        """Hard pruning: the support of Pi_S(W), held to the pruner's safety checks (an emptied layer or
        a cut path is a LayerCollapse unless method.allow_collapse; the achieved sparsity)."""
        from ...models.graph import trace
        from ..pruner import check_masks

        w = {n: p.detach() for n, p in self.weights.items()}
        masks = project(w, self.ctx.density, self.allocation)
        check_masks(masks, trace(self.model), self.ctx.density, self.ctx.prune.method)
        return masks

    def state_dict(self) -> dict:
        z, u = ({n: t.detach().cpu() for n, t in d.items()} for d in (self.z, self.u))
        return {"z": z, "u": u, "rho": self.rho, "updates": self.updates, "residual": self.residual}

    def resume(self, model, state: dict) -> None:
        """The checkpoint is read onto the CPU (run/checkpoint.py): Z and U go back to their weights' device."""
        self._bind(model)
        self.z, self.u = ({n: t.to(self.weights[n].device) for n, t in state[k].items()} for k in ("z", "u"))
        self.rho, self.updates, self.residual = float(state["rho"]), int(state["updates"]), float(state["residual"])


@register_train_hook("admm")
def build(ctx: HookContext) -> TrainHook:
    return AdmmHook(ctx)


@register_schedule("admm")
def plan(cfg: DictConfig) -> list[Step]:
    """dense -> ADMM regularisation toward `sparsity` (constant LR) -> hard prune -> masked retraining."""
    return [
        Dense(),
        Record("dense"),
        TrainWithHook("admm", "finetune", "admm", int(cfg.schedule.epochs), True),
        Record("pruned"),
        Train("finetune"),
        Record("finetuned"),
    ]
