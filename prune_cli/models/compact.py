"""Compaction: the physically smaller dense model of a channel-pruned network.

Channel pruning (`method.structure=channel`) removes whole output units of a layer and masks the
matching input columns of the layers it feeds, but the masked model keeps every unit in dense
storage. `compact(model)` returns a copy in which those units are gone: the layer's weight rows and
bias entries, its BatchNorm's parameters and running statistics, and the reading layers' input
columns (all spatial positions of a channel after a flatten). Its parameter count and FLOPs are the
masked model's nonzero counts (when every kept unit's block of weights is dense, as channel
pruning leaves it), and it runs ordinary dense kernels: the speed channel pruning promises.

A channel is removed when no layer reads it (every reading layer's weights on it are zero) and it
does not reach the network output: its value, whatever its bias or BatchNorm shift, is then never
used, so removal is exact (tests/test_compact.py, tests/test_compact_residual.py compare outputs).
A unit with no incoming weight but some outgoing weight is kept: its constant output still reaches
the next layer (through zero padding, not a constant).

Residual joins (ResNet). The channels of tensors that are added together are one channel: the
residual groups of DepGraph (Fang et al., CVPR 2023), found by `channel_flow` in
prune_cli/models/graph.py, which follows them through the option-A shortcuts into the next stage.
Such a channel is removed from every member of the group (the stem, every block's conv2 and bn2,
the shortcuts' index) when no layer anywhere reads it: the kept set is the union of what the
readers keep. When the members share one channel mask (coupled masks, as DepGraph prunes) this
removes exactly what was pruned; when their masks differ, a channel some reader still uses stays in
every member, and the members that pruned it keep an all-zero row in dense storage: the report and
the log count them (`GroupReport.dense_zero_rows`), and the compact model still equals the masked
one. The inner convolution of a block (conv1 -> bn1 -> conv2) is a chain and always compacts.

An emptied residual branch (docs/speedup.md, "Residual networks"). When no unit of a layer is read
(a block whose conv2 lost every weight, as global unstructured magnitude pruning at high sparsity
leaves some blocks, or a branch zeroed whole by `schedule=layer_pruning`), the block still computes
its shortcut plus bn2 of an all-zero conv2 output: bn2's shift beta - gamma * mean / sqrt(var + eps),
generally not zero. Decision: the layer keeps one unit (its first), which its readers read with
their zero weights, so the branch keeps its modules and computes exactly what the masked model
computes (conv2 outputs 0, bn2 adds its shift) at the cost of one unit; replacing the branch by its
constant would need surgery specific to each model. `CompactReport.emptied` and the report's
description name such layers. This is refused only when the network is disconnected: no path from
the network input to its output keeps a nonzero weight (an MLP with a layer emptied), found by
following nonzero weights through `channel_flow`'s channels, residual sums included.

Refused with the reason: grouped convolutions wherever they sit (one reading the network input too:
its output channels form equal groups, and removing some of them would cut across a group boundary,
so the rebuilt layer computed something else or nn.Conv2d refused its sizes), concatenations, any other operation on a layer's
output whose effect on channels is unknown, a layer or BatchNorm called more than once in
forward (a shared module: it would have different channels per call), and a layer that does not
read the channels of the one before it although its size matches (`reads_units_of` in graph.py: a
Linear along the length of a convolution's output that was not flattened, a convolution on a
Linear's output that was not viewed as (batch, units, 1, ...), a flattened Linear output of more than
two dimensions, whose units are interleaved), and a flatten, view or reshape after which it is unknown
where the channels lie (torch.flatten(x, 2), x.view(b, c, -1): positions stay beside the channels).
A view or reshape with a literal size beside the batch (x.view(-1, 8, 1, 1), x.view(-1, 400)) writes
the channel count in forward: the channels of that value all stay (`ChannelFlow.fixed`), zero or not.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import own_forward, replace_submodule

from .graph import ChannelFlowError, channel_flow

log = logging.getLogger(__name__)


class CompactionError(ValueError):
    """The model's structure does not allow compaction (the message says why)."""


@dataclass
class GroupReport:
    """A residual group: layers whose outputs are added together, so they share one channel set."""

    members: list[str]
    channels: int  # distinct channels of the group (its tensors, over all stages)
    kept: int
    dense_zero_rows: int  # kept channels that some member computes with an all-zero row

    def describe(self) -> str:
        text = f"residual group {', '.join(self.members)}: {self.kept} of {self.channels} channels kept"
        if self.dense_zero_rows:
            text += (
                f"; {self.dense_zero_rows} kept output rows are all-zero in some member and stay dense "
                "(the members' channel masks differ: a channel is removed only when no layer reads it)"
            )
        return text


@dataclass
class CompactReport:
    """Units kept per compacted layer (module name -> (kept, original)), the residual groups, and
    the zero rows/columns a compacted layer still holds because its group keeps those channels."""

    units: dict[str, tuple[int, int]] = field(default_factory=dict)
    groups: list[GroupReport] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)  # layers none of whose units is read: one unit kept

    def describe(self) -> str:
        kept = ", ".join(f"{n} {k}/{t}" for n, (k, t) in self.units.items())
        emptied = [
            f"no unit of {n} is read (every reader's weights on it are zero): one unit kept, read with zero weights, "
            "so its branch computes what the masked model computes"
            for n in self.emptied
        ]
        return "; ".join([f"units kept: {kept}" if kept else "nothing removed"] + emptied + [g.describe() for g in self.groups])

    @property
    def dense_zero_rows(self) -> int:
        return sum(g.dense_zero_rows for g in self.groups)


def _memory_format(weight: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-D weight stored NHWC (accel.channels_last=true converts the model so), else
    the default. A weight that is contiguous in both (a 1x1 kernel) gets the default: the same layout."""
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _resized(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A new Linear/Conv like `module` with the given weight (out/in sizes taken from it), in the
    memory format of `module`'s weight: with accel.channels_last=true the rebuilt convolutions were
    NCHW beside untouched NHWC ones, so the compact model was timed in a mixed layout against an NHWC
    dense reference (the speedup metric; docs/performance.md)."""
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
    new = new.to(device=weight.device, dtype=weight.dtype, memory_format=_memory_format(module.weight))
    with torch.no_grad():
        new.weight.copy_(weight)  # copy_ keeps the destination's layout
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


def _remapped(module: nn.Module, keep_in: list[bool], keep_out: list[bool]) -> nn.Module:
    """A channel-moving module (`channel_index`, e.g. the ResNet shortcut) on the kept channels:
    each kept input goes to its output channel's position among the kept outputs."""
    position = {old: new for new, old in enumerate(i for i, k in enumerate(keep_out) if k)}
    index = [position[out] for out, k in zip(module.channel_index, keep_in) if k]
    args = {**module.constructor_args, "in_planes": len(index), "planes": len(position), "index": index}
    return type(module)(**args)


def _reads_per_channel(weight: torch.Tensor, channels: int, per: int) -> torch.Tensor:
    """[channels] bool: the layer has a nonzero weight on some input column of the channel."""
    return weight.transpose(0, 1).reshape(channels, per, -1).ne(0).flatten(1).any(1)


def _input_reaches_output(flow, modules: dict[str, nn.Module]) -> bool:
    """Some channel reaching the network output depends on its input through nonzero weights: the
    channels live from the input (rows with a nonzero weight of layers reading the input, channels
    an untraced value such as the input is added to), then every row with a nonzero weight on a live
    channel, to a fixed point. Channels merged by residual sums are one, so this over-approximates
    (a channel live in one stage counts as live in all): it only decides whether to refuse."""
    live = set(flow.joined)
    changed = True
    while changed:
        changed = False
        for name, ids in flow.produces.items():
            weight = modules[name].weight.detach()
            nonzero = weight.ne(0).flatten(2).any(2) if weight.dim() > 2 else weight.ne(0)  # [out, in]
            source = flow.reads.get(name)
            if source is None:
                rows = nonzero.any(1)
            else:
                read_ids, per = source
                columns = torch.tensor([i in live for i in read_ids], device=weight.device).repeat_interleave(per)
                rows = (nonzero & columns).any(1)
            for i, row in zip(ids, rows.tolist()):
                if row and i not in live:
                    live.add(i)
                    changed = True
    return bool(live & flow.pinned)


def compact(model: nn.Module) -> tuple[nn.Module, CompactReport]:
    """A physically smaller copy of a channel-pruned network (see the module docstring); its outputs
    equal the masked model's. Raises CompactionError for unsupported structures."""
    for name, module in model.named_modules():
        if why := own_forward(module):
            raise CompactionError(f"compaction rebuilds layers as plain ones, and {name}: {why}")
    out = copy.deepcopy(model)
    try:
        flow = channel_flow(out)
    except ChannelFlowError as err:
        raise CompactionError(f"compaction cannot follow the channels of this model: {err}") from err
    modules = dict(out.named_modules())
    read = set(flow.pinned) | flow.fixed  # a channel count written in forward (x.view(-1, 8, 1, 1)) stays
    for name, source in flow.reads.items():
        if source is None:
            continue
        ids, per = source
        uses = _reads_per_channel(modules[name].weight.detach(), len(ids), per)
        read.update(i for i, used in zip(ids, uses.tolist()) if used)

    report = CompactReport()
    emptied = [name for name, ids in flow.produces.items() if not any(i in read for i in ids)]
    if emptied and not _input_reaches_output(flow, modules):
        raise CompactionError(
            f"no unit of {emptied[0]} is read by any later layer and no path from the network input to its output "
            "keeps a nonzero weight: the network is disconnected"
        )
    for name in emptied:  # an emptied branch beside a residual path: one unit, read with zero weights
        ids = flow.produces[name]
        if not any(i in read for i in ids):  # a residual group member may be served by another already
            read.add(ids[0])
            report.emptied.append(name)

    def keep_of(ids: list[int]) -> torch.Tensor:
        return torch.tensor([i in read for i in ids], dtype=torch.bool)

    weights = {n: modules[n].weight.detach() for n in flow.produces}
    biases = {n: (None if modules[n].bias is None else modules[n].bias.detach()) for n in flow.produces}
    for name, ids in flow.produces.items():
        keep = keep_of(ids)
        if not bool(keep.all()):
            dev = weights[name].device
            weights[name] = weights[name][keep.to(dev)]
            if biases[name] is not None:
                biases[name] = biases[name][keep.to(dev)]
            report.units[name] = (int(keep.sum()), len(keep))
    for name, source in flow.reads.items():
        if source is None:
            continue
        ids, per = source
        keep = keep_of(ids)
        if not bool(keep.all()):
            w = weights[name]
            weights[name] = w[:, keep.repeat_interleave(per).to(w.device)]
    for name, ids in flow.norms.items():
        keep = keep_of(ids)
        if not bool(keep.all()):
            tensors = [*modules[name].parameters(), *modules[name].buffers()]
            replace_submodule(out, name, _resized_norm(modules[name], keep.to(tensors[0].device) if tensors else keep))
    for name, (ids_in, ids_out) in flow.remaps.items():
        keep_in, keep_out = keep_of(ids_in), keep_of(ids_out)
        if not (bool(keep_in.all()) and bool(keep_out.all())):
            replace_submodule(out, name, _remapped(modules[name], keep_in.tolist(), keep_out.tolist()))
    for name in flow.produces:
        original = modules[name]
        if weights[name].shape != original.weight.shape:
            replace_submodule(out, name, _resized(original, weights[name], biases[name]))
    for members in flow.groups():
        channels = {i for n in members for i in flow.produces[n]}
        kept = channels & read
        zero_rows = 0
        for n in members:
            rows = weights[n].flatten(1).ne(0).any(1).tolist()
            zero_rows += sum(not r for r in rows)
        report.groups.append(GroupReport(members, len(channels), len(kept), zero_rows))
        if zero_rows:
            log.warning("compaction: %s", report.groups[-1].describe())
    return out, report


def compact_spec(model: nn.Module) -> dict[str, list[int] | dict]:
    """The sizes a compacted model needs to be rebuilt: {module name: weight shape} of every
    Linear/Conv layer, {module name: [num_features]} of every BatchNorm, and {module name:
    constructor arguments} of every channel-moving module (the ResNet shortcut's kept index)."""
    spec: dict[str, list[int] | dict] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            spec[name] = list(m.weight.shape)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            spec[name] = [m.num_features]
        elif hasattr(m, "channel_index") and hasattr(m, "constructor_args"):
            spec[name] = dict(m.constructor_args)
    return spec


def rebuild_compact(model: nn.Module, spec: dict[str, list[int] | dict], state_dict: dict) -> nn.Module:
    """The compacted model from a freshly built model of the original architecture, the saved
    `compact_spec` and state dict (what `model_compact.pt` holds): layers are resized, then loaded."""
    modules = dict(model.named_modules())
    for name, shape in spec.items():
        m = modules[name]
        if isinstance(shape, dict):
            replace_submodule(model, name, type(m)(**shape))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.num_features != shape[0]:
                replace_submodule(model, name, _resized_norm(m, torch.arange(m.num_features) < shape[0]))
        elif list(m.weight.shape) != shape:
            w = torch.zeros(shape, dtype=m.weight.dtype, device=m.weight.device)
            replace_submodule(model, name, _resized(m, w, None if m.bias is None else torch.zeros(shape[0], dtype=w.dtype)))
    model.load_state_dict(state_dict)
    return model
