"""Training and evaluation loops, optimizers and learning-rate schedules.

The loop is kept as lean as a hand-written PyTorch loop (see scripts/bench_training_loop.py):
batches come from device-resident tensors, losses are accumulated on the device and read
once per epoch, masks are re-applied in place after each step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from .core.accel import FP32, Accel
from .core.checks import check, choice, finite, positive_int
from .core.config_base import config_schema
from .core.errors import TrainingDiverged
from .core.interrupts import check as check_interrupt
from .data.batches import iterate_batches, shuffled_batches
from .data.splits import DataSplits
from .models.masks import Masks, MaskEnforcer
from .train_hooks import TrainHook

log = logging.getLogger(__name__)


@config_schema("train", "base")
@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | multistep | cosine
    milestones: list[int] = field(default_factory=list)  # epochs, for multistep
    gamma: float = 0.1  # multistep decay factor
    warmup_epochs: int = 0  # linear warm-up before the schedule
    l1: float = 0.0  # coefficient of the L1 norm of the prunable layers' weights added to the loss

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        """`key` is train or finetune (both use this schema)."""
        node = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.epochs", minimum=0)
        positive_int(cfg, f"{key}.batch_size")
        positive_int(cfg, f"{key}.eval_batch_size")
        choice(cfg, f"{key}.optimizer", {"sgd", "adam"})
        choice(cfg, f"{key}.lr_schedule", {"constant", "multistep", "cosine"})
        for name in ("lr", "momentum", "weight_decay", "gamma", "l1"):
            value = node[name]
            check(finite(value) and value >= 0, f"{key}.{name}", value, "a finite number >= 0")
        # lr=0 is allowed: the weights stay, but a BatchNorm model's running statistics are recomputed on the
        # training data (BN recalibration after pruning), which epochs=0 does not do
        check(node.momentum < 1, f"{key}.momentum", node.momentum, "a number in [0, 1)")
        positive_int(cfg, f"{key}.warmup_epochs", minimum=0)
        milestones = list(node.milestones)
        check(
            all(m > 0 for m in milestones) and all(a < b for a, b in zip(milestones, milestones[1:])),
            f"{key}.milestones",
            milestones,
            "strictly increasing positive epoch numbers (a repeated one would apply gamma twice)",
        )
        check(  # gamma ** 0 at every step: the constant schedule under a run id of its own
            node.lr_schedule != "multistep" or bool(milestones),
            f"{key}.lr_schedule",
            node.lr_schedule,
            f"multistep only with {key}.milestones, the epochs at which it multiplies the LR by {key}.gamma (without any it is "
            f"{key}.lr_schedule=constant under a run id of its own); or constant or cosine",
        )
        if key == "train" and node.epochs > 0:  # dense training runs exactly train.epochs (finetune serves other lengths too)
            check(
                node.warmup_epochs <= node.epochs,
                f"{key}.warmup_epochs",
                node.warmup_epochs,
                f"at most {key}.epochs={node.epochs} (a longer warm-up never reaches {key}.lr and the schedule never runs)",
            )
        if node.optimizer == "adam":
            check(not node.nesterov, f"{key}.nesterov", True, "false with optimizer=adam")
        elif node.nesterov:  # Nesterov's look-ahead needs a velocity (Sutskever et al., ICML 2013); torch's SGD refuses it too
            check(node.momentum > 0, f"{key}.nesterov", True, f"true only with {key}.momentum > 0 (here {node.momentum})")

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        from .data.pruning import train_config_epochs

        node = OmegaConf.select(cfg, key)
        found = {}
        if node.optimizer != "sgd":
            found[f"{key}.momentum"] = f"it applies only with {key}.optimizer=sgd; here {key}.optimizer={node.optimizer}"
        proxies = train_config_epochs(cfg) if key == "train" else None
        longest = max(node.epochs, proxies) if proxies is not None else 0
        if key == "train" and longest > 0 and node.warmup_epochs >= longest and node.lr_schedule != "constant":
            # lr_factor returns the warm-up ratio at every step of dense training and of a data pruning rule's
            # models, whose warm-up is min(train.warmup_epochs, their epochs) (prune_cli/run/data_selection.py)
            also = f" and of data_pruning={cfg.data_pruning.name}'s models ({proxies})" if proxies else ""
            why = (
                f"{key}.warmup_epochs={node.warmup_epochs} covers all {node.epochs} epochs of dense training{also}, "
                "so the schedule never starts"
            )
            found[f"{key}.lr_schedule"] = why
            if node.lr_schedule == "multistep":
                found.update({f"{key}.milestones": why, f"{key}.gamma": why})
                return found
        if node.lr_schedule != "multistep":
            why = f"it applies only with {key}.lr_schedule=multistep; here {key}.lr_schedule={node.lr_schedule}"
            found.update({f"{key}.milestones": why, f"{key}.gamma": why})
        elif key == "train" and proxies is not None and all(m >= max(node.epochs, proxies) for m in node.milestones):
            # dense training's epochs are [0, train.epochs), a data pruning rule's proxy or query models
            # train [0, their epochs) with this config: no decay is reached in either (None: a rule
            # that does not say how long its models train)
            also = f" nor the {proxies} epochs of data_pruning={cfg.data_pruning.name}'s models" if proxies else ""
            milestones = list(node.milestones)
            why = f"no milestone falls inside the {node.epochs} epochs of dense training{also} ({key}.milestones={milestones})"
            found.update({f"{key}.milestones": why, f"{key}.gamma": why})
        return found


def make_optimizer(model: nn.Module, cfg: DictConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)


def lr_factor(cfg: DictConfig, epoch: float) -> float:
    """Multiplier of the base LR at a (fractional) epoch: linear warm-up, then the schedule."""
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        return (epoch + 1e-12) / cfg.warmup_epochs
    if cfg.lr_schedule == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.lr_schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-12)
        progress = min(max(epoch - cfg.warmup_epochs, 0.0) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


@dataclass
class Evaluation:
    predictions: torch.Tensor  # (N,) predicted class, on CPU
    targets: torch.Tensor  # (N,)
    top5_correct: Optional[torch.Tensor]  # (N,) bool, when there are at least 10 classes
    loss: float  # mean cross-entropy
    confidence: Optional[torch.Tensor] = None  # (N,) max softmax probability, on CPU (calibration error)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, accel: Accel = FP32) -> Evaluation:
    """Predictions and mean loss; `accel` gives the precision and memory format (prune_cli/core/accel.py)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    preds, top5, conf = [], [], []
    for xb, yb in iterate_batches(x, y, batch_size, gen=None):
        with accel.autocast():
            out = model(accel.inputs(xb))
            loss_sum += nn.functional.cross_entropy(out, yb, reduction="sum").float()
        preds.append(out.argmax(1))
        conf.append(out.float().softmax(1).amax(1))
        if out.shape[1] >= 10:
            top5.append((out.topk(5, dim=1).indices == yb[:, None]).any(1))
    model.train(was_training)
    return Evaluation(
        torch.cat(preds).cpu(),
        y.cpu(),
        torch.cat(top5).cpu() if top5 else None,
        float(loss_sum) / max(len(y), 1),
        torch.cat(conf).cpu(),
    )


def show_progress() -> bool:
    """Progress bars only for a person at a terminal; logs stay one line per epoch otherwise."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return False
    except Exception:  # noqa: BLE001 - no Hydra context (library use, tests)
        pass
    return sys.stderr.isatty()


@dataclass
class TrainProgress:
    """What a checkpoint needs to continue a training phase exactly where it stopped."""

    epoch: int  # epochs completed (the LR follows from it: it is a function of the step)
    optimizer: dict
    generator: torch.Tensor  # batch-order RNG state
    hook: dict = field(default_factory=dict)  # the TrainHook's state_dict() (prune_cli/train_hooks.py)


def train(
    model: nn.Module,
    data: DataSplits,
    cfg: DictConfig,
    gen: torch.Generator,
    phase: str,
    masks: Optional[Masks] = None,
    *,
    start_epoch: int = 0,
    resume: Optional[TrainProgress] = None,
    on_epoch_end: Optional[Callable[[dict, TrainProgress], None]] = None,
    on_step: Optional[Callable[[int], Optional[Masks]]] = None,
    accel: Accel = FP32,
    hook: Optional[TrainHook] = None,
    config_key: str = "",
) -> list[dict]:
    """Train from epoch `start_epoch` (or a checkpoint) to cfg.epochs; one history row per epoch.
    `config_key` (train | finetune) names the config `cfg` came from in a divergence message.

    Masks stay enforced throughout. `start_epoch` > 0 trains epochs start_epoch+1..cfg.epochs at the
    LR schedule's rates for those epochs (Renda et al. 2020, "Comparing Rewinding and Fine-tuning in Neural
    Network Pruning": from weights rewound to epoch start_epoch that is weight rewinding; from the final
    trained weights it is learning-rate rewinding).
    `on_step(global_step)` may return new masks (gradual pruning); `on_epoch_end` receives what a
    checkpoint needs. `accel`: precision, memory format and compiled forward (prune_cli/core/accel.py).
    `hook` shapes the weights during training (prune_cli/train_hooks.py: penalty, gradient edits,
    auxiliary parameters, forward override; its state is part of TrainProgress)."""
    model.train()
    forward = accel.training_forward(model)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(data.train_y) / cfg.batch_size)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    scheduled = cfg.lr_schedule != "constant" or cfg.warmup_epochs > 0
    first_epoch = start_epoch
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)  # replaces optimizer.param_groups
        gen.set_state(resume.generator)
        first_epoch = resume.epoch
    if hook is not None and resume is not None:
        hook.resume(model, resume.hook)
        current = hook.current_masks()  # the masks the hook had set before the checkpoint
        if current is not None:
            masks = current
    elif hook is not None:
        hook.start(model)
    # a hook that keeps TrainHook.forward trains through the (compiled) forward; one with its own runs that
    own_forward = hook.forward if hook is not None and type(hook).forward is not TrainHook.forward else None
    if own_forward is not None and forward is not model:
        log.warning(
            "accel.compile: phase %s trains through %s's own forward (it gates or reparametrises the weights), "
            "which is not compiled; the other training phases are",
            phase,
            type(hook).__name__,
        )
    groups = optimizer.param_groups
    enforce = MaskEnforcer(model, masks, optimizer) if masks else None
    if enforce:
        enforce()
    loss_fn = nn.CrossEntropyLoss()
    l1 = cfg.get("l1", 0.0)  # L1 on the prunable layers' weights (fundamental-limit paper's LOMP training)
    l1_weights = [m.weight for _, m in model.prunable_layers()] if l1 else []
    history = []
    step = first_epoch * steps_per_epoch
    epochs = tqdm(range(first_epoch, cfg.epochs), desc=phase, disable=not show_progress(), leave=False)
    for epoch in epochs:
        if hook is not None and hook.finished():
            break
        losses = []
        for idx, xb, yb in shuffled_batches(data.train_x, data.train_y, cfg.batch_size, gen, data.augment):
            check_interrupt()  # a stop signal: leave at this batch; the last epoch's checkpoint is intact
            if on_step is not None:
                new_masks = on_step(step)
                if new_masks is not None:
                    enforce = MaskEnforcer(model, new_masks, optimizer)
                    enforce()
            with accel.autocast():
                if hook is None:
                    loss = loss_fn(forward(accel.inputs(xb)), yb)
                else:
                    xb = accel.inputs(xb)
                    logits = forward(xb) if own_forward is None else own_forward(model, xb)
                    hook.presented(idx, logits, yb)
                    loss = loss_fn(logits, yb)
                    extra = hook.extra_loss(model, xb, yb, logits)
                    if extra is not None:
                        loss = loss + extra
            if l1_weights:
                loss = loss + l1 * sum(w.abs().sum() for w in l1_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hook is not None:
                hook.before_step(model, step)
            if scheduled:  # the LR is a pure function of the step: nothing to checkpoint
                factor = lr_factor(cfg, step / steps_per_epoch)  # step counts from epoch 0, also from start_epoch
                for group, base in zip(groups, base_lrs):
                    group["lr"] = base * factor
            optimizer.step()
            if enforce:
                enforce()
            if hook is not None:
                new_masks = hook.after_step(model, step)
                if new_masks is not None:
                    enforce = MaskEnforcer(model, new_masks, optimizer)
                    enforce()
            losses.append(loss.detach())
            step += 1
        sizes = torch.full((len(losses),), float(cfg.batch_size), device=data.train_x.device)
        sizes[-1] = len(data.train_y) - cfg.batch_size * (len(losses) - 1)
        train_loss = float((torch.stack(losses) * sizes).sum()) / len(data.train_y)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"Training diverged in phase '{phase}', epoch {epoch + 1}: the training loss is {train_loss}. "
                f"Lower the learning rate ({config_key or ('train' if phase == 'dense' else 'finetune')}.lr="
                f"{cfg.lr}) or add warm-up. Nothing was written to the shared results."
            )
        row = {"phase": phase, "epoch": epoch + 1, "train_loss": train_loss, "lr": groups[0]["lr"]}
        if hook is not None:
            row.update(hook.epoch_row())
        if len(data.val_y):
            with hook.evaluation(model) if hook is not None else contextlib.nullcontext():
                val = evaluate(model, data.val_x, data.val_y, cfg.eval_batch_size, accel)
            row.update(val_loss=val.loss, val_accuracy=float((val.predictions == val.targets).float().mean()))
        history.append(row)
        epochs.set_postfix({k: round(v, 4) for k, v in row.items() if k not in ("phase", "epoch")})
        log.log(
            logging.DEBUG if show_progress() else logging.INFO,
            "%s epoch %d/%d: %s",
            phase,
            epoch + 1,
            cfg.epochs,
            ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("phase", "epoch")),
        )
        if on_epoch_end:
            hook_state = hook.state_dict() if hook is not None else {}
            on_epoch_end(row, TrainProgress(epoch + 1, optimizer.state_dict(), gen.get_state(), hook_state))
    return history
