"""The contract between models and pruning: prunable layers in forward order, a classifier."""

from __future__ import annotations

import math

import torch
from torch import nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def own_forward(module: nn.Module) -> str:
    """Why a Linear/Conv layer is not the plain product of its weight ('' when it is): a subclass
    with its own forward (model=ntk_mlp's NTKLinear rescales by sigma_w / sqrt(fan_in) and the
    density) computes something a sparse kernel or a smaller plain layer would not reproduce."""
    for base in PRUNABLE_TYPES:
        if isinstance(module, base) and type(module).forward is not base.forward:
            return f"{type(module).__name__} has its own forward (not the plain {base.__name__} product of its weight)"
    return ""


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


def traced_forward(model: nn.Module, input_shape: tuple[int, ...], hooks: list, batch: int = 1) -> None:
    """One eval-mode, no-grad forward pass on zeros with forward `hooks` [(module, fn)] attached,
    for code that records shapes or data flow; the model's mode is restored and the hooks removed."""
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    was_training = model.training
    model.eval()
    try:
        like = next((t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()), None)
        options = {} if like is None else {"device": like.device, "dtype": like.dtype}  # a float64 model: float64 zeros
        with torch.no_grad():
            model(torch.zeros(batch, *input_shape, **options))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def output_positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """For each Linear/Conv layer (by module name), how many times per example its weight is applied:
    the output positions of every call (H_out x W_out for a convolution; 1 for a Linear on a vector, the
    sequence length for one applied at every position), summed over the calls of one forward pass (a
    layer used twice counts twice). The FLOPs convention of prune_cli/metrics/cost.py, shared with layer
    pruning's section costs."""
    positions: dict[str, int] = {}

    def record(mod, inputs, output, _name):
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            per_call = math.prod(output.shape[2:])
        else:  # a Linear: every output vector (all dimensions but the batch's and the features') is one application
            per_call = math.prod(output.shape[1:-1])
        positions[_name] = positions.get(_name, 0) + per_call

    hooks = [(m, lambda mod, i, o, _n=n: record(mod, i, o, _n)) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    traced_forward(model, input_shape, hooks)
    return positions


def replace_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at the dotted path `name` of `model` (compaction and sparse execution swap layers)."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
