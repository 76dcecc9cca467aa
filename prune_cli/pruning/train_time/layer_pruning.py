"""`schedule=layer_pruning`: remove whole residual sections early in training.

After Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks" (2024):
each nonlinear section l of a residual network is multiplied by a Bernoulli random variable
z_l ~ Bernoulli(theta_l) (an adaptive, layer-wise dropout); the probabilities theta are learned
together with the weights by projected stochastic gradient descent (theta is projected onto [0, 1]
after every step), a penalty drives the theta of sections the loss does not need to 0, and a section
whose theta falls to `threshold` is removed for good: its gate is set to 0 and its weights are
masked, so it costs nothing in the rest of training and at inference, and the residual connection
passes its input through unchanged.

What is ours (the paper's derivation of the penalty from Gaussian scale-mixture priors with a
"flattening" hyper-prior and its practical pruning conditions were not available to us; see
docs/training_time.md, "Layer pruning during training"):

- the gradient of the expected loss with respect to theta_l is estimated by dL/dz_l at the sampled
  z (the derivative of the loss with respect to the section's scale, the usual single-sample
  estimator for Bernoulli gates), plus the penalty `penalty` x (the section's share of the
  network's multiply-accumulates), so a more expensive section needs more evidence to stay;
- theta starts at `theta_init` (1: the full network) and is updated with its own learning rate
  `theta_lr`;
- sections are removed only during the first `prune_epochs` epochs; at the end of that window the
  network is made deterministic, as the paper's solutions are (theta in {0, 1}): a section with
  theta < 1/2 is removed too (`how` = rounded in the table; `threshold` for the others), every
  other one keeps gate 1, and the network trains on as an ordinary residual MLP.

The model provides the sections (`residual_sections()`, prune_cli/models/res_mlp.py). The run writes
`layer_pruning.csv` (one row per section: removed or not, the epoch and step of removal, theta,
the section's multiply-accumulates) and theta_<l> columns in history.csv; the masks it leaves zero
the removed sections' weights, so flops_sparse in metrics.csv is the pruned network's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.func import functional_call

from ...core.atomic_io import atomic_write_csv
from ...core.checks import check, finite, positive_int
from ...core.config_base import ScheduleConfig, config_schema
from ...core.errors import ConfigError
from ...models.masks import Masks
from ...schedules import register_schedule
from ...schedules.steps import Dense, Record, Restart, Step, Train, TrainWithHook
from . import HookContext, TrainHook, register_train_hook
from .common import meta_model, require_residual_sections

TABLE = "layer_pruning.csv"


@config_schema("schedule", "layer_pruning")
@dataclass
class LayerPruningConfig(ScheduleConfig):
    name: str = "layer_pruning"
    theta_init: float = 1.0  # initial keep probability of every section
    theta_lr: float = 0.05  # step size of the projected SGD on theta
    penalty: float = 0.05  # sparsity pressure per unit of a section's share of the multiply-accumulates
    threshold: float = 0.05  # a section whose theta falls to this is removed
    prune_epochs: int = 5  # sections are learned and removed during these first epochs of training

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        check(finite(s.theta_init) and 0 < s.theta_init <= 1, f"{key}.theta_init", s.theta_init, "a number in (0, 1]")
        check(finite(s.theta_lr) and s.theta_lr > 0, f"{key}.theta_lr", s.theta_lr, "a positive number")
        check(finite(s.penalty) and s.penalty >= 0, f"{key}.penalty", s.penalty, "a number >= 0")
        check(
            finite(s.threshold) and 0 <= s.threshold < s.theta_init,
            f"{key}.threshold",
            s.threshold,
            f"a number in [0, schedule.theta_init={s.theta_init})",
        )
        positive_int(cfg, f"{key}.prune_epochs")
        check(
            s.prune_epochs <= cfg.train.epochs,
            f"{key}.prune_epochs",
            s.prune_epochs,
            f"at most train.epochs={cfg.train.epochs} (sections are removed during training)",
        )
        require_residual_sections(meta_model(cfg), cfg, key)


def theta_step(theta: torch.Tensor, gate_grad: torch.Tensor, penalty: torch.Tensor, lr: float) -> torch.Tensor:
    """One projected SGD step: theta <- clip(theta - lr (dL/dz + penalty), 0, 1)."""
    return (theta - lr * (gate_grad + penalty)).clamp(0.0, 1.0)


def section_macs(model: nn.Module, sections: list[list[str]]) -> list[int]:
    """Multiply-accumulates per example of each section's Linear weights (the cost counter's convention)."""
    params = dict(model.named_parameters())
    return [sum(params[n].numel() for n in names) for names in sections]


class LayerPruningHook(TrainHook):
    def __init__(self, ctx: HookContext):
        self.ctx = ctx
        self.options = ctx.config.schedule
        self.model = ctx.model  # set again at start/forward; read by final_masks (also after a resume with no step left)
        self.seed = int(ctx.config.seed)

    # -- set-up and state ------------------------------------------------------------------
    def _bind(self, model: nn.Module) -> None:
        require_residual_sections(model, self.ctx.config, "schedule")
        self.sections = model.residual_sections()
        self.macs = section_macs(model, self.sections)
        total = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
        self.penalty = torch.tensor([self.options.penalty * m / total for m in self.macs])

    def start(self, model: nn.Module) -> None:
        self._bind(model)
        n = len(self.sections)
        self.theta = torch.full((n,), float(self.options.theta_init))
        self.alive = torch.ones(n, dtype=torch.bool)
        self.removed: dict[int, dict] = {}
        self.epoch = 0
        self.gen = torch.Generator().manual_seed(self.seed)
        self.z: Optional[torch.Tensor] = None
        self.rounded = False
        self.model = model

    def state_dict(self) -> dict:
        return {
            "theta": self.theta.clone(),
            "alive": self.alive.clone(),
            "removed": [{"section": k, **v} for k, v in self.removed.items()],
            "epoch": self.epoch,
            "rounded": self.rounded,
            "generator": self.gen.get_state().clone(),
        }

    def resume(self, model, state: dict) -> None:
        self.theta, self.alive, self.epoch = state["theta"].clone(), state["alive"].clone(), state["epoch"]
        self.rounded = bool(state["rounded"])
        self.removed = {int(r["section"]): {k: v for k, v in r.items() if k != "section"} for r in state["removed"]}
        self.gen = torch.Generator()
        self.gen.set_state(state["generator"])
        self.z = None

    def _ensure_bound(self, model: nn.Module) -> None:
        if not hasattr(self, "sections"):
            self._bind(model)
        self.model = model

    # -- the loop ----------------------------------------------------------------------------
    def learning(self) -> bool:
        return self.epoch < self.options.prune_epochs

    def forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self._ensure_bound(model)
        if not self.learning():
            self.z = None
            return model(x)
        sample = torch.bernoulli(self.theta, generator=self.gen) * self.alive
        self.z = sample.to(model.gates.device).requires_grad_(True)
        return functional_call(model, {"gates": self.z}, (x,))

    def before_step(self, model: nn.Module, step: int) -> None:
        if self.z is None or self.z.grad is None:
            return
        grad = self.z.grad.detach().cpu()
        self.theta = torch.where(self.alive, theta_step(self.theta, grad, self.penalty, self.options.theta_lr), self.theta)
        self.z = None

    def after_step(self, model: nn.Module, step: int) -> Optional[Masks]:
        if self.learning():
            return self.remove(model, step, self.options.threshold, inclusive=True, how="threshold")
        if not self.rounded:
            return self.round_to_deterministic(model, step)
        return None

    def round_to_deterministic(self, model: nn.Module, step: int) -> Optional[Masks]:
        """At the end of the window the network becomes deterministic: a section with theta < 1/2
        (more likely off than on) is removed, every other one is kept with gate 1."""
        self.rounded = True
        return self.remove(model, step, 0.5, inclusive=False, how="rounded")

    def remove(self, model: nn.Module, step: int, level: float, inclusive: bool, how: str) -> Optional[Masks]:
        """Remove every live section whose theta is at (`inclusive`) or below `level`; the new masks, or None."""
        self._ensure_bound(model)
        bound = torch.tensor(level, dtype=self.theta.dtype)  # compared in theta's precision
        below = self.theta <= bound if inclusive else self.theta < bound
        newly = [i for i in range(len(self.sections)) if bool(self.alive[i] & below[i])]
        if not newly:
            return None
        for i in newly:
            self.alive[i] = False
            self.removed[i] = {"epoch": self.epoch + 1, "step": int(step), "theta": float(self.theta[i]), "how": how}
            with torch.no_grad():
                model.gates[i] = 0.0
        return self.masks(model)

    def masks(self, model: nn.Module) -> Masks:
        params = dict(model.named_parameters())
        gone = {n for i, names in enumerate(self.sections) if not bool(self.alive[i]) for n in names}
        current = self.ctx.prune.masks or {}
        out = {}
        for name in self.ctx.prunable:
            keep = current[name].clone() if name in current else torch.ones_like(params[name], dtype=torch.bool)
            if name in gone:
                keep.zero_()
            out[name] = keep
        return out

    def epoch_row(self) -> dict:
        self.epoch += 1
        row = {f"theta_{i}": float(t) for i, t in enumerate(self.theta)}
        row["sections_alive"] = int(self.alive.sum())
        return row

    def final_masks(self) -> Optional[Masks]:
        model = self.model
        self._ensure_bound(model)
        if not self.rounded:  # the window lasted the whole phase
            self.round_to_deterministic(model, -1)
        with torch.no_grad():
            model.gates.copy_(self.alive.to(model.gates.dtype))
        if self.ctx.run_dir is not None:
            atomic_write_csv(pd.DataFrame(self.rows()), self.ctx.run_dir / TABLE)
        return self.masks(model)

    def rows(self) -> list[dict]:
        """One row per section: removed or not, when, theta, its multiply-accumulates per example."""
        out = []
        for i, names in enumerate(self.sections):
            gone = self.removed.get(i)
            out.append(
                {
                    "section": i,
                    "layers": " ".join(n.removesuffix(".weight") for n in names),
                    "removed": gone is not None,
                    "epoch_removed": gone["epoch"] if gone else None,
                    "step_removed": gone["step"] if gone else None,
                    "how": gone["how"] if gone else "",
                    "theta": gone["theta"] if gone else float(self.theta[i]),
                    "macs": self.macs[i],
                }
            )
        return out


@register_train_hook("layer_pruning")
def build(ctx: HookContext) -> TrainHook:
    return LayerPruningHook(ctx)


@register_schedule("layer_pruning")
def plan(cfg: DictConfig) -> list[Step]:
    """dense baseline -> from the same initialisation, train while removing sections (`train`
    config, its full length) -> fine-tune the pruned network."""
    if cfg.schedule.prune_epochs > cfg.train.epochs:  # the pre-run pass reports it; a backstop for direct calls
        raise ConfigError("schedule.prune_epochs", cfg.schedule.prune_epochs, f"at most train.epochs={cfg.train.epochs}")
    return [
        Dense(),
        Record("dense"),
        Restart("init"),
        TrainWithHook("layer_pruning", "train", "layer_pruning", int(cfg.train.epochs)),
        Record("pruned"),
        Train("finetune"),
        Record("finetuned"),
    ]
