"""The contract between models and pruning: prunable layers in forward order, a classifier."""

from __future__ import annotations

import torch
from torch import nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


class PrunableNet(nn.Module):
    """Base class: by default every Linear/Conv layer is prunable, in registration order.

    Subclasses register modules in forward order (so registration order is forward order) and
    set `classifier` to the name of the final layer.
    """

    classifier: str = ""

    def prunable_layers(self) -> list[tuple[str, nn.Module]]:
        return [(name, m) for name, m in self.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def flat_features(body: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Number of features `body` produces for one input (found by a dry run, so any input size works)."""
    with torch.no_grad():
        return int(body(torch.zeros(1, *input_shape)).flatten(1).shape[1])
