"""`schedule=autoprune`: AutoPrune (Xiao, Wang and Rajasekaran, "AutoPrune: Automatic Network Pruning
by Regularizing Auxiliary Parameters", NeurIPS 2019).

Every prunable weight w gets a trainable auxiliary parameter m; the network computes with
T = w * h(m), h the step function 1[m > 0], so a weight is pruned exactly when its m is not positive.
The weights are trained as usual (dL/dw = dL/dT * h(m): no penalty on them); the auxiliary
parameters are trained by their own optimizer with the paper's gradient rule, in which the
non-existent derivative of the step is replaced by a surrogate and the weight by its sign, so that
the update of m does not scale with the weight's magnitude:

    dL/dm = dL/dT * sgn(w) * h'(m) + reg * h'(m),
    h'(m) = 1 for m > 0 and `leak` otherwise (`surrogate=leaky_relu`), or 1 everywhere (`identity`),

the second term being the gradient of the regulariser reg * sum(h(m)) (the number of open gates)
through the same surrogate: it pushes every gate towards closing, and the data term keeps open the
gates whose weights lower the loss. A closed gate still receives a (leak-scaled) gradient, so a
pruned weight can come back (the paper's recoverability). Sparsity emerges; with
`stop_at_target=true` the gates are frozen at the first step where the fraction of closed gates
reaches `sparsity`: the mask keeps the round((1 - sparsity) N) largest m (ties by index; this is
1[m > 0] unless that step closed more gates than needed), the phase ends at that epoch's end and
fine-tuning follows. If the target is not reached within `prune_epochs`, the same top-k mask is
taken at the end and a warning gives the sparsity that had emerged (`gate_sparsity` in
history.csv); with `stop_at_target=false` the mask is 1[m > 0] after `prune_epochs`, whatever its
sparsity (reported in every row, next to the unused target).

Choices of this implementation, where the paper leaves room or could not be checked offline: the
auxiliary parameters start positive (all gates open), at `aux_init` times |w| / mean |w| of the
layer (`aux_init_mode=magnitude`, the default: from a trained model the mean data gradient is near
zero, so with a constant start every gate would close at the same step and the order would be
noise) or at `aux_init` (`constant`); they are trained by plain SGD at `aux_lr`; the run starts from
the trained dense model (the gating phase uses the `finetune` config).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch.func import functional_call

from ...core.checks import check, choice, finite, positive_int
from ...core.config_base import config_schema
from ...models.masks import Masks
from ...schedules import register_schedule
from ...schedules.steps import Dense, Record, Step, Train, TrainWithHook
from ...train_hooks import TrainHook
from . import HookContext, register_train_hook
from .common import TrainTimeScheduleConfig, check_defaults, global_top_k

log = logging.getLogger(__name__)


@config_schema("schedule", "autoprune")
@dataclass
class AutoPruneConfig(TrainTimeScheduleConfig):
    name: str = "autoprune"
    prune_epochs: int = 10  # epochs of the gating phase (at most, with stop_at_target)
    aux_lr: float = 1.0  # SGD learning rate of the auxiliary parameters
    aux_init: float = 0.2  # initial value of the auxiliary parameters (all gates open) ...
    aux_init_mode: str = "magnitude"  # ... constant, or times |w| / mean |w| of the layer (magnitude)
    reg: float = 0.001  # coefficient of the regulariser sum(h(m)) on the auxiliary parameters
    surrogate: str = "leaky_relu"  # leaky_relu | identity: the step function's derivative in backward
    leak: float = 0.1  # leaky_relu's slope where m <= 0
    stop_at_target: bool = True  # freeze the gates at `sparsity`, then fine-tune

    # at sparsity 0 with stop_at_target the gates freeze after the first step keeping every weight: the method's
    # options do nothing (prune_cli/run/unused_options.py `_nothing_pruned`)
    method_unread_unpruned = True

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        s = OmegaConf.select(cfg, key)
        found = {}
        if s.stop_at_target and cfg.sparsity == 0 and OmegaConf.select(cfg, "method.threshold_impl") != "strict_kth":
            # the target prunes N - round(N) = 0 weights: after_step freezes the gates at the first step with the
            # top-N mask (all kept). That step's forward and the weights' gradients used the initial gates (open for
            # every nonzero weight whatever aux_init > 0; aux_init_mode closes the gate of a weight that is exactly 0,
            # which changes its first gradient, so it is not listed). The gates' update (aux_lr, reg, surrogate, leak)
            # moves only the closed-gate count: history.csv's gate_sparsity and the freeze's log line
            why = (
                f"with sparsity=0 and {key}.stop_at_target=true the gates freeze after the first step of the gating phase "
                "keeping every weight, so the model is the same whatever the gates' update; only gate_sparsity in "
                "history.csv (and the log line at the freeze) moves"
            )
            found.update({f"{key}.{name}": why for name in ("aux_lr", "reg", "surrogate", "leak")})
        if not s.stop_at_target:
            found["sparsity"] = (
                f"with {key}.stop_at_target=false the gates decide the sparsity (gate_sparsity in history.csv); "
                "the target is only recorded (target_sparsity)"
            )
        if s.surrogate != "leaky_relu":
            found[f"{key}.leak"] = f"it applies only with {key}.surrogate=leaky_relu; here {key}.surrogate={s.surrogate}"
        found["method.sparsity_tolerance"] = (
            "AutoPrune's gates keep exactly the target's top k (or decide the sparsity themselves): no achieved sparsity "
            "is held to a tolerance"
        )
        return found

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.prune_epochs")
        for name in ("aux_lr", "aux_init"):
            check(finite(s[name]) and s[name] > 0, f"{key}.{name}", s[name], "a finite number > 0")
        check(finite(s.reg) and s.reg >= 0, f"{key}.reg", s.reg, "a finite number >= 0")
        choice(cfg, f"{key}.surrogate", {"leaky_relu", "identity"})
        choice(cfg, f"{key}.aux_init_mode", {"constant", "magnitude"})
        check(finite(s.leak) and 0 <= s.leak <= 1, f"{key}.leak", s.leak, "a number in [0, 1]")
        # AutoPrune chooses the weights itself: the method's other choices would be ignored, so they must keep their defaults
        fixed = {"structure": "unstructured", "score": "magnitude", "allocation": "global", "rounds": 1, "invert": False}
        fixed.update(shuffle=False, reinit=False, threshold_impl="topk")
        check_defaults(cfg, "method", fixed, "the gates choose the weights; one gate per weight")


def surrogate_grad(m: torch.Tensor, surrogate: str, leak: float) -> torch.Tensor:
    """h'(m) in the backward pass: 1 where m > 0; `leak` (leaky_relu) or 1 (identity) elsewhere."""
    if surrogate == "identity":
        return torch.ones_like(m)
    return torch.where(m > 0, torch.ones_like(m), torch.full_like(m, leak))


class GatedWeight(torch.autograd.Function):
    """T = w * 1[m > 0]; backward: dL/dw = g * 1[m > 0], dL/dm = g * sgn(w) * h'(m)."""

    @staticmethod
    def forward(ctx, w, m, surrogate: str, leak: float):
        ctx.save_for_backward(w, m)
        ctx.surrogate, ctx.leak = surrogate, leak
        return w * (m > 0).to(w.dtype)

    @staticmethod
    def backward(ctx, g):
        w, m = ctx.saved_tensors
        return g * (m > 0).to(g.dtype), g * torch.sign(w) * surrogate_grad(m, ctx.surrogate, ctx.leak), None, None


class AutoPruneHook(TrainHook):
    def __init__(self, ctx: HookContext):
        s = ctx.config.schedule
        self.names = ctx.prunable
        self.density = ctx.density
        self.method = ctx.config.method
        self.aux_lr, self.aux_init, self.reg = float(s.aux_lr), float(s.aux_init), float(s.reg)
        self.aux_init_mode = str(s.aux_init_mode)
        self.surrogate, self.leak, self.stop_at_target = str(s.surrogate), float(s.leak), bool(s.stop_at_target)
        self.aux: dict[str, torch.Tensor] = {}
        self.params: dict[str, torch.nn.Parameter] = {}  # the gated weights, bound once per phase
        self.keep: Optional[Masks] = None  # set when the gates are frozen
        self.steps = 0

    # -- state ------------------------------------------------------------------------------

    def _bind(self, model) -> None:
        named = dict(model.named_parameters())
        self.params = {n: named[n] for n in self.names}
        self.model = model

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(list(self.aux.values()), lr=self.aux_lr)

    def initial_aux(self, w: torch.Tensor) -> torch.Tensor:
        """aux_init everywhere, or aux_init * |w| / mean |w| of the layer (the gates of small weights
        close first under the regulariser's uniform push; a zero layer falls back to the constant)."""
        w = w.detach()
        if self.aux_init_mode == "magnitude" and float(w.abs().mean()) > 0:
            return (self.aux_init * w.abs() / w.abs().mean()).clone()
        return torch.full_like(w, self.aux_init)

    def start(self, model) -> None:
        self._bind(model)
        self.aux = {n: self.initial_aux(p).requires_grad_(True) for n, p in self.params.items()}
        self.opt = self._optimizer()
        self.keep, self.steps = None, 0

    def state_dict(self) -> dict:
        state = {"aux": {n: m.detach().cpu().clone() for n, m in self.aux.items()}, "steps": self.steps}
        state["optimizer"] = self.opt.state_dict()
        if self.keep is not None:
            state["keep"] = {n: k.cpu().clone() for n, k in self.keep.items()}
        return state

    def resume(self, model, state: dict) -> None:
        self._bind(model)
        params = self.params
        self.aux = {n: state["aux"][n].to(params[n].device).requires_grad_(True) for n in self.names}
        self.opt = self._optimizer()
        self.opt.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        self.keep = {n: k.to(params[n].device) for n, k in state["keep"].items()} if "keep" in state else None

    # -- the gates --------------------------------------------------------------------------

    def gates(self) -> dict[str, torch.Tensor]:
        """The current mask 1[m > 0] of every prunable weight."""
        return {n: m.detach() > 0 for n, m in self.aux.items()}

    def closed_gates(self) -> int:
        return sum(int((m <= 0).sum()) for m in self.aux.values())

    def gate_count(self) -> int:
        """N: one gate per prunable weight."""
        return sum(m.numel() for m in self.aux.values())

    def gate_sparsity(self) -> float:
        return self.closed_gates() / self.gate_count()

    def pruned_at_target(self) -> int:
        """The weights the target's mask prunes, N - round(density N) (`top_k_masks`): the gates freeze
        once as many are closed. A fraction compared with 1 - density missed it by rounding (1 of 136
        weights is less than 0.01) or by float noise (1.0 - 0.7 > 0.3)."""
        total = self.gate_count()
        return total - round(self.density * total)

    def top_k_masks(self) -> Masks:
        """Keep the round(density N) largest auxiliary parameters over all layers (ties by index)."""
        total = self.gate_count()
        return global_top_k({n: m.detach() for n, m in self.aux.items()}, round(self.density * total))

    # -- hook points ------------------------------------------------------------------------

    def forward(self, model, x):
        if self.keep is not None:  # frozen: the weights themselves are masked by the loop
            return model(x)
        gated = {n: GatedWeight.apply(self.params[n], m, self.surrogate, self.leak) for n, m in self.aux.items()}
        return functional_call(model, gated, (x,))

    def before_step(self, model, step) -> None:
        if self.keep is not None:
            return
        with torch.no_grad():
            for m in self.aux.values():
                regulariser = self.reg * surrogate_grad(m, self.surrogate, self.leak)
                m.grad = regulariser if m.grad is None else m.grad + regulariser
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def after_step(self, model, step) -> Optional[Masks]:
        self.steps += 1
        closed_count = self.closed_gates() if self.keep is None and self.stop_at_target else 0
        if self.keep is None and self.stop_at_target and closed_count >= self.pruned_at_target():
            closed = closed_count / self.gate_count()
            self.keep = self.checked(self.top_k_masks())
            # the step may close more gates than the target: the top-k mask then reopens some (history's
            # gate_sparsity records the gates, the mask the target)
            reopened = sum(int((k & (self.aux[n] <= 0)).sum()) for n, k in self.keep.items())
            kept = sum(int(k.sum()) for k in self.keep.values())
            log.info(
                "autoprune: target sparsity %.4f reached at step %d of the gating phase (gates closed: %.4f); gates "
                "frozen, the mask keeps the %d largest auxiliary parameters (%d of them with a closed gate)",
                1 - self.density,
                self.steps,
                closed,
                kept,
                reopened,
            )
            return self.keep
        return None

    def current_masks(self) -> Optional[Masks]:
        return self.keep

    @contextlib.contextmanager
    def evaluation(self, model):
        if self.keep is not None:
            yield
            return
        params = self.params
        saved = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, gate in self.gates().items():
                params[n].mul_(gate)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(saved[n])

    def epoch_row(self) -> dict:
        return {"gate_sparsity": self.gate_sparsity(), "gates_frozen": float(self.keep is not None)}

    def finished(self) -> bool:
        return self.keep is not None

    def final_masks(self) -> Masks:
        if self.keep is not None:
            return self.keep
        if self.stop_at_target:
            log.warning(
                "autoprune: the gates reached sparsity %.4f, not the target %.4f, within schedule.prune_epochs; "
                "keeping the largest auxiliary parameters to reach the target (raise schedule.reg or schedule.prune_epochs)",
                self.gate_sparsity(),
                1 - self.density,
            )
            masks = self.top_k_masks()
        else:
            masks = self.gates()
        return self.checked(masks)

    def checked(self, masks: Masks) -> Masks:
        """The final or frozen mask, held to the pruner's collapse checks (an emptied layer or a cut path
        is a LayerCollapse unless method.allow_collapse, then a warning)."""
        from ...models.graph import trace
        from ..pruner import check_collapse

        kept = sum(int(k.sum()) for k in masks.values()) / sum(k.numel() for k in masks.values())
        advice = "autoprune's gates closed them: lower schedule.reg or schedule.aux_lr, or"
        check_collapse(masks, trace(self.model), kept, self.method, advice)
        return masks


@register_train_hook("autoprune")
def build(ctx: HookContext) -> AutoPruneHook:
    return AutoPruneHook(ctx)


@register_schedule("autoprune")
def autoprune_plan(cfg: DictConfig) -> list[Step]:
    """dense -> gating phase (auxiliary parameters, stops at the target) -> fine-tune with the mask."""
    return [
        Dense(),
        Record("dense"),
        TrainWithHook("autoprune", "finetune", "autoprune", cfg.schedule.prune_epochs),
        Record("pruned"),
        Train("finetune"),
        Record("finetuned"),
    ]
