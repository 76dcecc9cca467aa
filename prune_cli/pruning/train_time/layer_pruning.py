"""`schedule=layer_pruning`: remove whole residual sections early in training.

After Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks" (2024):
linear residual connections surround nonlinear sections; the output of each section l is multiplied
by a Bernoulli random variable z_l ~ Bernoulli(theta_l) (an adaptive, layer-wise dropout); the
probabilities theta are learned together with the weights by projected stochastic gradient descent
(theta is projected onto [0, 1] after every step); the solutions are deterministic networks
(theta in {0, 1}); a section that is pruned is removed for good: its weights are masked (and, in a
model with BatchNorm, its normalisation's scale and shift), so it costs nothing in the rest of
training and at inference, and the residual connection passes its input through unchanged.

What is ours (only the paper's abstract was available to us: its penalty from Gaussian scale-mixture
priors with a "flattening" hyper-prior, its gradient estimator and its practical pruning conditions
are not reproduced; see docs/training_time.md, "Layer pruning during training"):

- the gradient of the expected loss with respect to theta_l is estimated by dL/dz_l at the sampled
  z (the derivative of the loss with respect to the section's scale, the usual single-sample
  estimator for Bernoulli gates), plus the penalty `penalty` x (the section's share of the
  network's multiply-accumulates), so a more expensive section needs more evidence to stay;
- theta starts at `theta_init` (1: the full network) and is updated with its own learning rate
  `theta_lr`;
- sections are removed only during the first `prune_epochs` epochs; at the end of that window the
  network is made deterministic: a section with theta < 1/2 is removed too (`how` = rounded in the
  table; `threshold` for the others), every other one keeps gate 1, and the network trains on as
  an ordinary residual network.

The model provides the sections: `residual_sections()` (the Linear/Conv weights of each, their
multiply-accumulates), `section_branches()` (the module whose output the gate scales) and optionally
`section_parameters()` (every parameter that removal zeroes; default the weights): res_mlp
(prune_cli/models/res_mlp.py) and the CIFAR ResNets, whose BasicBlocks are the sections
(prune_cli/models/resnet.py). The run writes `layer_pruning.csv` (one row per section: removed or
not, the epoch and step of removal, theta, the section's multiply-accumulates per example; each row
starts with the run context and the phase `layer_pruning` and ends with provenance, and the rows are
appended to the shared `layer_pruning.csv` like a metric's table: `LayerPruningHook.tables`) and
theta_<l> columns in history.csv; the masks it leaves zero the removed sections, so flops_sparse in
metrics.csv is the pruned network's cost, and `without_sections` builds the network without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ...core.checks import check, finite, positive_int
from ...core.config_base import ScheduleConfig, config_schema, declared_input
from ...core.errors import ConfigError
from ...core.tables import LAYER_PRUNING_TABLE
from ...models.base import PRUNABLE_TYPES, output_positions
from ...models.masks import Masks
from ...schedules import register_schedule
from ...schedules.steps import Dense, Record, Restart, Step, Train, TrainWithHook
from . import HookContext, TrainHook, register_train_hook
from .common import meta_model

TABLE = LAYER_PRUNING_TABLE
SECTION_MODELS = "res_mlp, resnet20, resnet32 or resnet56"  # the built-in models that declare residual sections


@config_schema("schedule", "layer_pruning")
@dataclass
class LayerPruningConfig(ScheduleConfig):
    name: str = "layer_pruning"
    theta_init: float = 1.0  # initial keep probability of every section
    theta_lr: float = 0.05  # step size of the projected SGD on theta
    penalty: float = 0.05  # sparsity pressure per unit of a section's share of the multiply-accumulates
    threshold: float = 0.05  # a section whose theta falls to this is removed
    prune_epochs: int = 5  # sections are learned and removed during these first epochs of training

    reads = ()  # its steps are fixed: from the initialisation, training that removes sections, fine-tuning

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        return {
            "sparsity": "with schedule=layer_pruning the training decides how many sections go (layer_pruning.csv)",
            "method": "schedule=layer_pruning removes whole residual sections by their learned keep probabilities; no method "
            "chooses weights",
        }

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
        require_sections(meta_model(cfg), cfg, key)


def require_sections(model: Optional[nn.Module], cfg: DictConfig, key: str) -> None:
    """Layer pruning needs a model that declares its residual sections (None: not known yet)."""
    if model is not None and not (hasattr(model, "residual_sections") and hasattr(model, "section_branches")):
        raise ConfigError(
            "model",
            cfg.model.name,
            f"a model with residual sections: {SECTION_MODELS}",
            f"{key}={cfg.schedule.name} removes whole residual sections.",
        )


def theta_step(theta: torch.Tensor, gate_grad: torch.Tensor, penalty: torch.Tensor, lr: float) -> torch.Tensor:
    """One projected SGD step: theta <- clip(theta - lr (dL/dz + penalty), 0, 1)."""
    return (theta - lr * (gate_grad + penalty)).clamp(0.0, 1.0)


def weight_positions(model: nn.Module, input_shape: Optional[tuple[int, ...]]) -> Optional[dict[str, int]]:
    """How often per example each Linear/Conv weight is applied (1 for Linear, H_out x W_out for a
    convolution), by parameter name: the convention of the FLOPs counter (prune_cli/metrics/cost.py).
    A model without convolutions needs no forward pass; one with convolutions and no `input_shape`: None."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
    if not any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in layers.values()):
        return {f"{n}.weight": 1 for n in layers}
    if input_shape is None:
        return None
    return {f"{name}.weight": count for name, count in output_positions(model, input_shape).items()}


def section_macs(model: nn.Module, sections: list[list[str]], positions: dict[str, int]) -> list[int]:
    """Multiply-accumulates per example of each section's Linear/Conv weights."""
    params = dict(model.named_parameters())
    return [sum(params[n].numel() * positions[n] for n in names) for names in sections]


class LayerPruningHook(TrainHook):
    def __init__(self, ctx: HookContext):
        self.ctx = ctx
        self.options = ctx.config.schedule
        self.model = ctx.model  # set again at start/forward; read by final_masks (also after a resume with no step left)
        self.seed = int(ctx.config.seed)

    # -- set-up and state ------------------------------------------------------------------
    def _bind(self, model: nn.Module) -> None:
        """Read the model's sections; their costs once the input shape is known (`_price`)."""
        require_sections(model, self.ctx.config, "schedule")
        self.sections = model.residual_sections()
        self.section_params = model.section_parameters() if hasattr(model, "section_parameters") else self.sections
        self.branches = model.section_branches()
        self.macs: Optional[list[int]] = None
        self.penalty: Optional[torch.Tensor] = None
        self.model = model
        self._price(model, getattr(self, "input_shape", None) or self._declared_shape())

    def _price(self, model: nn.Module, input_shape: Optional[tuple[int, ...]]) -> None:
        """Each section's multiply-accumulates and penalty; a convolutional model needs the input
        shape (the dataset's declared one, the checkpoint's, or the first batch's): until then, none."""
        if self.macs is not None:
            return
        positions = weight_positions(model, input_shape)
        if positions is None:
            return
        self.input_shape = input_shape
        self.macs = section_macs(model, self.sections, positions)
        total = sum(p.numel() * positions[n] for n, p in model.named_parameters() if n in positions)
        self.penalty = torch.tensor([self.options.penalty * m / total for m in self.macs])

    def _declared_shape(self) -> Optional[tuple[int, ...]]:
        dataset = OmegaConf.select(self.ctx.config, "dataset")
        declared = declared_input(self.ctx.config) if dataset is not None else None
        return tuple(declared[0]) if declared else None

    def start(self, model: nn.Module) -> None:
        self.input_shape: Optional[tuple[int, ...]] = None
        self._bind(model)
        n = len(self.sections)
        self.theta = torch.full((n,), float(self.options.theta_init))
        self.alive = torch.ones(n, dtype=torch.bool)
        self.removed: dict[int, dict] = {}
        self.epoch = 0
        self.gen = torch.Generator().manual_seed(self.seed)
        self.z: Optional[torch.Tensor] = None
        self.rounded = False
        self.last_step = -1  # the last optimizer step seen (a rounding at the phase's end is dated to it)

    def state_dict(self) -> dict:
        return {
            "theta": self.theta.clone(),
            "alive": self.alive.clone(),
            "removed": [{"section": k, **v} for k, v in self.removed.items()],
            "epoch": self.epoch,
            "rounded": self.rounded,
            "last_step": self.last_step,
            "generator": self.gen.get_state().clone(),
            "input_shape": list(self.input_shape) if self.input_shape else None,
        }

    def resume(self, model, state: dict) -> None:
        self.theta, self.alive, self.epoch = state["theta"].clone(), state["alive"].clone(), state["epoch"]
        self.rounded = bool(state["rounded"])
        self.last_step = int(state.get("last_step", -1))  # absent in checkpoints of earlier versions
        self.removed = {int(r["section"]): {k: v for k, v in r.items() if k != "section"} for r in state["removed"]}
        self.gen = torch.Generator()
        self.gen.set_state(state["generator"])
        self.input_shape = tuple(state["input_shape"]) if state.get("input_shape") else None  # absent before ResNets
        self.z = None
        self._bind(model)

    def _ensure_bound(self, model: nn.Module) -> None:
        if not hasattr(self, "sections"):
            self._bind(model)
        self.model = model

    def current_masks(self) -> Optional[Masks]:
        """The removed sections' masks, enforced again by a resumed phase (a BatchNorm shift would
        otherwise move again)."""
        return self.masks(self.model) if self.removed else None

    # -- the loop ----------------------------------------------------------------------------
    def learning(self) -> bool:
        return self.epoch < self.options.prune_epochs

    def forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Inside the window, each section's branch output is scaled by z_l ~ Bernoulli(theta_l)
        (0 for a removed section), through forward hooks on the branch modules for this pass."""
        self._ensure_bound(model)
        self._price(model, tuple(x.shape[1:]))
        if not self.learning():
            self.z = None
            return model(x)
        sample = torch.bernoulli(self.theta, generator=self.gen) * self.alive
        z = self.z = sample.to(x.device).requires_grad_(True)
        modules = dict(model.named_modules())
        handles = [
            modules[name].register_forward_hook(lambda mod, inputs, out, _l=l: out * z[_l].to(out.dtype))
            for l, name in enumerate(self.branches)
        ]
        try:
            return model(x)
        finally:
            for handle in handles:
                handle.remove()

    def before_step(self, model: nn.Module, step: int) -> None:
        if self.z is None or self.z.grad is None:
            return
        grad = self.z.grad.detach().cpu()
        self.theta = torch.where(self.alive, theta_step(self.theta, grad, self.penalty, self.options.theta_lr), self.theta)
        self.z = None

    def after_step(self, model: nn.Module, step: int) -> Optional[Masks]:
        self.last_step = int(step)
        if self.learning():
            return self.remove(model, step, self.options.threshold, inclusive=True, how="threshold")
        if not self.rounded:
            return self.round_to_deterministic(model, step)
        return None

    def round_to_deterministic(self, model: nn.Module, step: int, epoch: Optional[int] = None) -> Optional[Masks]:
        """At the end of the window the network becomes deterministic: a section with theta < 1/2
        (more likely off than on) is removed, every other one is kept with gate 1."""
        self.rounded = True
        return self.remove(model, step, 0.5, inclusive=False, how="rounded", epoch=epoch)

    def remove(
        self, model: nn.Module, step: int, level: float, inclusive: bool, how: str, epoch: Optional[int] = None
    ) -> Optional[Masks]:
        """Remove every live section whose theta is at (`inclusive`) or below `level`; the new masks, or
        None. `epoch`: the epoch to record (default: the one in progress)."""
        self._ensure_bound(model)
        bound = torch.tensor(level, dtype=self.theta.dtype)  # compared in theta's precision
        below = self.theta <= bound if inclusive else self.theta < bound
        newly = [i for i in range(len(self.sections)) if bool(self.alive[i] & below[i])]
        if not newly:
            return None
        for i in newly:
            self.alive[i] = False
            self.removed[i] = {
                "epoch": self.epoch + 1 if epoch is None else epoch,
                "step": int(step),
                "theta": float(self.theta[i]),
                "how": how,
            }
            if hasattr(model, "gates"):  # res_mlp's own gate buffer: 0 for a removed section
                with torch.no_grad():
                    model.gates[i] = 0.0
        return self.masks(model)

    def masks(self, model: nn.Module) -> Masks:
        """The run's masks with every parameter of a removed section zero (a section parameter that
        is not prunable, such as a BatchNorm scale, gets a mask of its own)."""
        params = dict(model.named_parameters())
        gone = [n for i, names in enumerate(self.section_params) if not bool(self.alive[i]) for n in names]
        current = self.ctx.prune.masks or {}
        out = {}
        for name in self.ctx.prunable:
            out[name] = current[name].clone() if name in current else torch.ones_like(params[name], dtype=torch.bool)
        for name in gone:
            out[name] = torch.zeros_like(params[name], dtype=torch.bool)
        return out

    def epoch_row(self) -> dict:
        self.epoch += 1
        row = {f"theta_{i}": float(t) for i, t in enumerate(self.theta)}
        row["sections_alive"] = int(self.alive.sum())
        return row

    def final_masks(self) -> Optional[Masks]:
        model = self.model
        self._ensure_bound(model)
        if not self.rounded:  # the window lasted the whole phase: rounded after its last epoch and step
            self.round_to_deterministic(model, self.last_step, epoch=self.epoch)
        if hasattr(model, "gates"):
            with torch.no_grad():
                model.gates.copy_(self.alive.to(model.gates.dtype))
        return self.masks(model)

    def tables(self) -> dict[str, list[dict]]:
        """layer_pruning.csv: the run adds its context and provenance to these rows (TrainHook.tables)."""
        return {TABLE: self.rows()}

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
                    "macs": self.macs[i] if self.macs is not None else None,
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
