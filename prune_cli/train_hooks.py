"""`TrainHook`: how a method shapes the weights *during* training (docs/training_time.md).

Training-time pruning methods need more from the loop than a mask: Growing Regularization (Wang et
al., ICLR 2021) adds a penalty that rises every K iterations; AutoPrune (Xiao, Wang and Rajasekaran,
NeurIPS 2019) trains auxiliary gate parameters with their own update rule and gates the weights in
the forward pass; layer pruning during training removes whole sections after a step; the min-max
defence against membership inference trains an attack model beside the classifier. `train()`
(prune_cli/training.py) calls one object at each point of an optimizer step, and every method is
one subclass. The base class does nothing at every point, so a hook overrides only what it needs.

One optimizer step of `train(..., hook=h)`:

    logits = h.forward(model, x)                 # default model(x); e.g. weights gated by functional_call
    h.presented(indices, logits, y)              # the batch's training-split indices (observation only)
    loss = CE(logits, y) + h.extra_loss(model, x, y, logits)   # None = no extra term
    loss.backward()
    h.before_step(model, step)                   # edit gradients; update the hook's own parameters
    optimizer.step(); masks re-applied
    new_masks = h.after_step(model, step)        # may raise a penalty, change masks (returned) ...

At the end of every epoch `h.epoch_row()` adds columns to the history row, validation runs inside
`h.evaluation(model)` (a context in which the model computes what the hook's forward computes), the
checkpoint stores `h.state_dict()` in `TrainProgress.hook`, and training stops early once
`h.finished()`. A fresh phase calls `h.start(model)` before the first step; a resumed one calls
`h.resume(model, state)` instead, so everything the hook decides at its start (which weights to
penalise, the initial auxiliary parameters) must be in its state for a bit-exact resume.

This module is at the training layer: it imports no pruning code, so methods (prune_cli/pruning/
train_time/) build on it and the loop knows nothing about them.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch
from torch import nn

from .models.masks import Masks


class TrainHook:
    """No-op defaults for every point of the training loop; subclass and override what you need."""

    def start(self, model: nn.Module) -> None:
        """A fresh phase begins (not called on resume: `resume` is)."""

    def steps_needed(self) -> Optional[int]:
        """Optimizer steps this hook needs when its phase length is its own: required (a number >= 1) by a
        TrainWithHook step with epochs=-1; None: the step must give its epochs."""
        return None

    def forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass; override to gate or reparametrise the weights."""
        return model(x)

    def presented(self, indices: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """The step's batch as the training forward saw it, before the update: the examples' indices
        into the training split, their logits and labels. For per-presentation statistics (forgetting
        events, Toneva et al., ICLR 2019) without a second forward pass; must not change anything."""

    def extra_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> Optional[torch.Tensor]:
        """A term added to the cross-entropy before backward (a penalty, a regulariser, an adversarial gain)."""
        return None

    def before_step(self, model: nn.Module, step: int) -> None:
        """Between backward and the optimizer step: edit `.grad`, step the hook's own optimizer."""

    def after_step(self, model: nn.Module, step: int) -> Optional[Masks]:
        """After the optimizer step (masks already re-applied). Return new masks to enforce from now on."""
        return None

    def current_masks(self) -> Optional[Masks]:
        """The masks this hook has made the loop enforce (after_step's last non-None return); a
        resumed phase enforces them again before its first step."""
        return None

    def evaluation(self, model: nn.Module) -> ContextManager:
        """A context in which `model(x)` computes what `forward` computes (used for validation)."""
        return contextlib.nullcontext()

    def epoch_row(self) -> dict:
        """Extra columns for this epoch's history row (numbers)."""
        return {}

    def finished(self) -> bool:
        """True: stop training at the end of this epoch (checked after the checkpoint of the epoch)."""
        return False

    def final_masks(self) -> Optional[Masks]:
        """The masks the phase leaves (pruned weights are zeroed and stay zero afterwards); None: none,
        allowed only where the run has masks already or a later step of the plan prunes."""
        return None

    def tables(self) -> dict[str, list[dict]]:
        """The hook's own result tables, {per-run file name: rows}, read once after `final_masks()`.
        The run adds its context, the step's phase and provenance to every row and writes them like
        a metric's table (prune_cli/run/recorder.py `add`), so they reach the shared tables and every
        row says which run it came from (README "CSV columns"); a hook never writes a CSV itself."""
        return {}

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: tensors, numbers, strings, lists and dicts of them
        (the checkpoint is read with `torch.load(weights_only=True)`)."""
        return {}

    def resume(self, model: nn.Module, state: dict) -> None:
        """A resumed phase begins, instead of `start`: restore `state_dict()`'s output (the model's
        weights are already restored by the checkpoint). Its tensors come back on the CPU (the checkpoint
        is read with map_location="cpu"): move them to the model's device (ADMM's Z and U crashed a resumed
        GPU run)."""
