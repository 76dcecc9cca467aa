"""Masks: one boolean tensor per pruned weight, keyed by parameter name ("net.1.weight").

Masks are enforced by in-place multiplication after each optimizer step (and on the
optimizer's momentum buffers), never by forward hooks: that keeps training at dense speed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.atomic_io import atomic_torch_save

Masks = dict[str, torch.Tensor]


def parameters_by_name(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    named = dict(model.named_parameters())
    return {name: named[name] for name in masks}


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights."""
    MaskEnforcer(model, masks, optimizer=None)()


class MaskEnforcer:
    """Re-applies masks after every optimizer step, and to the optimizer's momentum and Adam
    moments so that they cannot revive a pruned weight. Pairs parameters with masks once."""

    def __init__(self, model: nn.Module, masks: Masks, optimizer: torch.optim.Optimizer | None):
        params = parameters_by_name(model, masks)
        self.pairs = [(params[n], masks[n].to(device=params[n].device, dtype=params[n].dtype)) for n in masks]
        self.optimizer = optimizer

    @torch.no_grad()
    def __call__(self) -> None:
        for param, mask in self.pairs:
            param.mul_(mask)
            if self.optimizer is not None:
                state = self.optimizer.state.get(param, {})
                for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key].mul_(mask)


def count(masks: Masks) -> tuple[int, int]:
    """(kept, total) over all masked tensors."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept, total


def save_masks(masks: Masks, path: str | Path) -> None:
    atomic_torch_save({name: m.cpu() for name, m in masks.items()}, path)


def load_masks(path: str | Path) -> Masks:
    return {name: m.bool() for name, m in torch.load(path, map_location="cpu", weights_only=True).items()}


def read_masks_file(path: str | Path, key: str = "method.match_masks") -> Masks:
    """Masks from a file the user named; a missing, truncated or foreign file is a config error.

    Only tensors are ever loaded (weights_only=True): a masks.pt holding anything else is refused,
    never unpickled."""
    from ..core.errors import ConfigError

    allowed = "the path of a masks.pt written by prune-run (a dict of boolean tensors)"
    if not Path(path).is_file():
        raise ConfigError(key, str(path), allowed, "No such file.")
    try:
        masks = load_masks(path)
    except Exception as err:  # noqa: BLE001 - torch's own message suggests unsafe loading: do not repeat it
        raise ConfigError(
            key,
            str(path),
            allowed,
            f"The file could not be read as tensors ({type(err).__name__}); it is truncated, corrupt or not a masks file.",
        ) from None
    return masks
