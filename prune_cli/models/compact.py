"""Compaction: the physically smaller dense model of a channel-pruned chain network.

Channel pruning (`method.structure=channel`) removes whole output units of a layer and masks the
matching input columns of the layer it feeds, but the masked model keeps every unit in dense
storage. `compact(model)` returns a copy in which those units are gone: the layer's weight rows and
bias entries, its BatchNorm's parameters and running statistics, and the next layer's input
columns (all spatial positions of a channel after a flatten). Its parameter count and FLOPs are the
masked model's nonzero counts (when every kept unit's block of weights is dense, as channel
pruning leaves it), and it runs ordinary dense kernels: the speed channel pruning promises.

A unit is removed when it has no outgoing weight in the next layer: its output, whatever its
bias, is never read, so removal is exact (tests/test_compact.py compares outputs). A unit with
no incoming weight but some outgoing weight is kept: its constant output still reaches the next
layer (through zero padding, not a constant). Supported: chains, where each prunable layer feeds
exactly the next one through pass-through ops (ReLU, BatchNorm, pooling, flatten, dropout): MLPs,
plain CNNs, VGG. A residual join (ResNet) or a concatenation refuses with a message: removing a
channel there means removing it from every tensor added together, which the layer graph
(prune_cli/models/graph.py) does not link.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .graph import trace


class CompactionError(ValueError):
    """The model's structure does not allow compaction (the message says why)."""


@dataclass
class CompactReport:
    """Units kept per compacted layer (module name -> (kept, original))."""

    units: dict[str, tuple[int, int]] = field(default_factory=dict)


def _resized(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A new Linear/Conv like `module` with the given weight (out/in sizes taken from it)."""
    if isinstance(module, nn.Linear):
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        new = type(module)(
            weight.shape[1] * module.groups,
            weight.shape[0],
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=bias is not None,
            padding_mode=module.padding_mode,
        )
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _resized_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = copy.deepcopy(norm)
    new.num_features = int(keep.sum())
    with torch.no_grad():
        for name in ("weight", "bias"):
            p = getattr(norm, name, None)
            if p is not None:
                setattr(new, name, nn.Parameter(p.detach()[keep].clone(), requires_grad=p.requires_grad))
        for name in ("running_mean", "running_var"):
            b = getattr(norm, name, None)
            if b is not None:
                setattr(new, name, b[keep].clone())
    return new


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def compact(model: nn.Module) -> tuple[nn.Module, CompactReport]:
    """A physically smaller copy of a channel-pruned chain network (see the module docstring);
    its outputs equal the masked model's. Raises CompactionError for unsupported structures."""
    out = copy.deepcopy(model)
    graph = trace(out)
    infos = list(graph.values())
    if not graph.traced or not graph.is_chain():
        joins = [i.module_name for i in infos if i.next is None and not i.to_output]
        raise CompactionError(
            "compaction supports chain networks (MLP, plain CNN, VGG: each Linear/Conv layer feeds the next "
            "through ReLU, BatchNorm, pooling, flatten or dropout only); "
            + (
                f"these layers feed a residual join or several consumers: {', '.join(joins)}"
                if joins
                else "this model could not be traced as a chain"
            )
        )
    for info in infos:
        if isinstance(info.module, (nn.Conv1d, nn.Conv2d)) and info.module.groups != 1:
            raise CompactionError(f"compaction needs groups=1 convolutions; {info.module_name} has groups={info.module.groups}")
    modules = dict(out.named_modules())
    report = CompactReport()
    weights = {i.name: modules[i.module_name].weight.detach() for i in infos}
    biases = {i.name: (None if modules[i.module_name].bias is None else modules[i.module_name].bias.detach()) for i in infos}
    for info, nxt in zip(infos, infos[1:]):
        w_next = weights[nxt.name]
        # a unit is read by the next layer when any of its `factor` input columns has a nonzero weight
        used = w_next.transpose(0, 1).flatten(1).ne(0).any(1).view(-1, info.factor).any(1)
        if bool(used.all()):
            continue
        if not bool(used.any()):
            raise CompactionError(f"no unit of {info.module_name} is read by {nxt.module_name}: the network is disconnected")
        keep = used.to(weights[info.name].device)
        weights[info.name] = weights[info.name][keep]
        if biases[info.name] is not None:
            biases[info.name] = biases[info.name][keep]
        weights[nxt.name] = w_next[:, keep.repeat_interleave(info.factor)]
        if info.norm is not None:
            norm_name = next(n for n, m in modules.items() if m is info.norm)
            _set_module(out, norm_name, _resized_norm(modules[norm_name], keep))
        report.units[info.module_name] = (int(keep.sum()), len(keep))
    for info in infos:
        original = modules[info.module_name]
        if weights[info.name].shape != original.weight.shape:
            _set_module(out, info.module_name, _resized(original, weights[info.name], biases[info.name]))
    return out, report


def compact_spec(model: nn.Module) -> dict[str, list[int]]:
    """The sizes a compacted model needs to be rebuilt: {module name: weight shape} of every
    Linear/Conv layer and {module name: [num_features]} of every BatchNorm."""
    spec = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            spec[name] = list(m.weight.shape)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            spec[name] = [m.num_features]
    return spec


def rebuild_compact(model: nn.Module, spec: dict[str, list[int]], state_dict: dict) -> nn.Module:
    """The compacted model from a freshly built model of the original architecture, the saved
    `compact_spec` and state dict (what `model_compact.pt` holds): layers are resized, then loaded."""
    modules = dict(model.named_modules())
    for name, shape in spec.items():
        m = modules[name]
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.num_features != shape[0]:
                _set_module(model, name, _resized_norm(m, torch.arange(m.num_features) < shape[0]))
        elif list(m.weight.shape) != shape:
            w = torch.zeros(shape, dtype=m.weight.dtype, device=m.weight.device)
            _set_module(model, name, _resized(m, w, None if m.bias is None else torch.zeros(shape[0], dtype=w.dtype)))
    model.load_state_dict(state_dict)
    return model
