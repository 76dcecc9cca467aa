"""The one traced description of a model: its prunable layers in forward order, which layer feeds
which, and what follows each one.

`trace(model)` runs torch.fx's symbolic trace once and answers, per prunable Linear/Conv layer:
- its role (classifier or hidden) and its successor: the layer that alone consumes its output
  through element-wise, pooling and flatten ops (`next`, with `factor` input columns per unit after a
  flatten), or none when the output is shared (a residual add, a concatenation); `to_output` when it
  reaches the network's output;
- what follows it: its BatchNorm (`norm`), the nn.ReLU module after it or after its BatchNorm
  (`activation`), and how many operations read that activation (`consumers`, 1 for a plain hidden
  unit, more where a residual branch also reads it).

Users: channel pruning and the disconnected-path check (`next`, `factor`, `to_output`), the LAP score
(BatchNorm scales, ReLU firing rates; Park et al., ICLR 2020), greedy forward selection (gate sites;
Ye et al., ICML 2020), and region counting, which takes the roles of the modules from the tables
here (`is_affine`, `is_nonlinear`). The graph is pure structure: traced on the model built on the
meta device, it describes the real model too. A model fx cannot trace gets no links (`traced` is
False): channel pruning, the path check and the scores that need followers then say so.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from .base import PRUNABLE_TYPES

# Modules and ops that pass a unit's output on unchanged in its channel (element-wise, pooling, flatten).
PASS_THROUGH_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.ELU,
    nn.SiLU,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
)
PASS_THROUGH_FUNCTIONS = (
    F.relu,
    torch.relu,
    torch.flatten,
    torch.tanh,
    torch.sigmoid,
    F.max_pool1d,
    F.max_pool2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
)
PASS_THROUGH_METHODS = ("relu", "flatten", "view", "reshape", "contiguous")

# Roles for piecewise-linear analysis (region counting): affine maps and the nonlinearities that
# cut the input space. A module class may declare itself affine with `parameter_free_affine = True`
# (the ResNet option-A shortcut: identity, subsampling and zero padding).
AFFINE_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
)
NONLINEAR_MODULES = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d)


def is_affine(module: nn.Module) -> bool:
    return isinstance(module, AFFINE_MODULES) or bool(getattr(module, "parameter_free_affine", False))


def is_nonlinear(module: nn.Module) -> bool:
    return isinstance(module, NONLINEAR_MODULES)


@dataclass
class LayerInfo:
    """A prunable Linear/Conv layer: its role, its successor and its followers."""

    name: str  # parameter name, e.g. "net.1.weight"
    module: nn.Module
    is_classifier: bool
    next: Optional[str] = None  # parameter name of the layer that alone consumes this layer's output
    to_output: bool = False  # this layer's output is the network output (after pass-through ops)
    factor: int = 1  # input columns of `next` per output unit of this layer (>1 after a flatten)
    norm: Optional[nn.Module] = None  # the BatchNorm that reads this layer's output
    activation: Optional[nn.Module] = None  # the nn.ReLU after it (or after its BatchNorm)
    consumers: int = 0  # operations that read the activation's output
    unlinked: str = ""  # why the prunable layer reached from this one is not `next` (`reads_units_of`)

    @property
    def units(self) -> int:
        return self.module.weight.shape[0]

    @property
    def module_name(self) -> str:
        return self.name.removesuffix(".weight")


@dataclass
class LayerGraph:
    """Every prunable layer of a model in forward order (`prunable_layers()` order), keyed by parameter name."""

    layers: dict[str, LayerInfo] = field(default_factory=dict)
    traced: bool = False  # torch.fx traced the model: links and followers are known
    # the traced model, for structures that need more than the links (channel_group's channel_flow)
    root: Optional[nn.Module] = field(default=None, repr=False, compare=False)
    # torch.fx's graph of `root` (None when it could not be traced): channel_flow reads it, no second trace
    fx_graph: Optional[fx.Graph] = field(default=None, repr=False, compare=False)

    def __getitem__(self, name: str) -> LayerInfo:
        return self.layers[name]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __contains__(self, name: str) -> bool:
        return name in self.layers

    def values(self):
        return self.layers.values()

    def items(self):
        return self.layers.items()

    def followers(self, module_name: str) -> LayerInfo:
        """The layer of a module name ("net.1"), for code keyed by module names."""
        return self.layers[f"{module_name}.weight"]

    def channel_flow(self) -> "ChannelFlow":
        """The ChannelFlow of the traced model (`channel_flow` below) from this graph's own trace."""
        if self.root is None:
            raise ChannelFlowError("this layer graph has no model (LayerGraph() built by hand)")
        return channel_flow(self.root, self.fx_graph)

    def is_chain(self) -> bool:
        """The prunable layers form one path, first -> ... -> output, in forward order."""
        infos = list(self.layers.values())
        return bool(infos) and all(a.next == b.name for a, b in zip(infos, infos[1:])) and infos[-1].to_output


def _passes_through(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], PASS_THROUGH_MODULES)
    if node.op == "call_function":
        return node.target in PASS_THROUGH_FUNCTIONS
    if node.op == "call_method":
        return node.target in PASS_THROUGH_METHODS
    return False


def _link(info: LayerInfo, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """Follow the single-consumer chain of pass-through ops from `node` to the next prunable layer.

    The layer reached is `next` only when it reads this layer's units (`reads_units_of`): a Linear
    applied along the length of a Conv1d output whose in_features equals the channel count reads
    positions, not channels, and coupling them removed a channel with a position's column."""
    cur, layout = node, _own_layout(info.module)
    while True:
        users = [u for u in cur.users if not _shape_query(u)]  # x.size(0), x.shape in x.view(x.size(0), -1): not readers
        if len(users) != 1:
            return
        user = users[0]
        if user.op == "output":
            info.to_output = True
            return
        if not user.args or user.args[0] is not cur:
            return
        if user.op == "call_module" and isinstance(modules[user.target], PRUNABLE_TYPES):
            mod = modules[user.target]
            out_units, in_units = info.module.weight.shape[0], mod.weight.shape[1]
            factor = in_units // out_units
            why = reads_units_of(info.module, mod, layout, factor)
            if factor >= 1 and factor * out_units == in_units and not why:
                info.next, info.factor = f"{user.target}.weight", factor
            elif why:
                info.unlinked = f"{user.target} {why}"
            return
        if not _passes_through(user, modules):
            return
        layout = _layout_after(user, modules, layout)
        cur = user


def reads_units_of(producer: nn.Module, reader: nn.Module, layout: str, per: int) -> str:
    """Why `reader` does not read the output units of `producer` as its input channels ('' when it
    does), for a value passed on unchanged in its channels, in `layout` (`_layout_after`): "1" (units
    on axis 1: a convolution's output, or a value viewed as (batch, units, 1, ...)), "last" (a Linear's
    output: units on the last axis), "flat" (flattened from dimension 1 on) or "unknown" (a flatten
    from another dimension, a view keeping positions beside the channels).
    - A value reshaped so that where its channels lie is unknown is read by no layer as its channels.
    - A Linear reads the last axis: a value with its units on axis 1 that was not flattened (a
      convolution's output) has the Linear mix positions (its in_features equal to the channel count or not).
    - A convolution reads axis 1: a Linear's output has its units on the last axis unless viewed as
      (batch, units, 1, ...) (a 2-D (batch, units) output viewed for a 1x1 convolution).
    - Flattened, a convolution's output holds each channel's positions as consecutive columns (`per`
      per channel); a Linear's output of more than two dimensions holds its units interleaved (unit
      j at columns j, j + units, ...), so a reader with more than one column per unit is no reader.
    Only the output of a Linear on a vector (two dimensions) passes these rules after a flatten; its
    flatten is the identity."""
    convs = (nn.Conv1d, nn.Conv2d)
    if layout == "unknown":
        return (
            "reads a value reshaped so that where its channels lie is unknown (a flatten from a dimension other "
            "than 1, or a view or reshape keeping positions beside the channels)"
        )
    if isinstance(reader, nn.Linear) and layout == "1":
        return "applies a Linear along the last axis of a convolution's output, whose channels are on axis 1 (not flattened)"
    if isinstance(producer, nn.Linear) and isinstance(reader, convs) and layout != "1":
        return "applies a convolution to a Linear's output, whose units are on its last axis, not on axis 1"
    if per > 1 and isinstance(producer, nn.Linear):
        return f"reads {per} columns per unit of a flattened Linear output: its units' columns are interleaved, not consecutive"
    if per > 1 and not isinstance(reader, nn.Linear):
        return f"is a convolution reading {per} inputs per channel of a flattened value"
    return ""


def _own_layout(producer: Optional[nn.Module]) -> str:
    """Where a layer's output holds its units: axis 1 after a convolution, the last axis after a Linear."""
    return "last" if isinstance(producer, nn.Linear) else "1"


def _reshape_layout(node: fx.Node, modules: dict[str, nn.Module]) -> Optional[str]:
    """The layout (`reads_units_of`) a flatten, view or reshape gives a value that has its channels
    on axis 1 or the last axis, or None when `node` is none of those. "flat" only for a flatten from
    dimension 1 to the last (nn.Flatten's default; torch.flatten's default starts at 0, the batch) and a
    view or reshape to two dimensions; "1" for a view or reshape to (batch, channels, 1, ...), all
    further sizes the literal 1 (the channels stay on axis 1; a 2-D (batch, units) Linear output moves
    its units there); "unknown" for any other (torch.flatten(x, 2) or x.view(b, c, -1) keep positions
    beside the channels)."""
    if node.op == "call_module" and isinstance(modules[node.target], FLATTENS_MODULES):
        mod = modules[node.target]
        return "flat" if (mod.start_dim, mod.end_dim) == (1, -1) else "unknown"
    is_flatten = (node.op == "call_function" and node.target in FLATTENS) or (node.op == "call_method" and node.target == "flatten")
    if is_flatten:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return "flat" if (start, end) == (1, -1) else "unknown"
    if node.op == "call_method" and node.target in ("view", "reshape"):
        sizes = _view_sizes(node)
        if len(sizes) == 2:
            return "flat"
        if len(sizes) >= 3 and all(isinstance(d, int) and d == 1 for d in sizes[2:]):
            return "1"
        return "unknown"
    return None


def _literal_size(node: fx.Node) -> bool:
    """A view or reshape with a literal size other than -1 and 1 beside the batch (x.view(-1, 8, 1, 1)):
    a channel count written in forward, which a compact model with fewer channels would contradict."""
    if not (node.op == "call_method" and node.target in ("view", "reshape")):
        return False
    return any(isinstance(d, int) and d not in (-1, 1) for d in _view_sizes(node)[1:])


def _view_sizes(node: fx.Node) -> list:
    """The sizes a traced `x.view(...)` / `x.reshape(...)` asks for, given as arguments or as one tuple."""
    sizes = list(node.args[1:])
    return list(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes


def _layout_after(node: fx.Node, modules: dict[str, nn.Module], layout: str) -> str:
    """The layout of `node`'s output for an input in `layout` (unchanged by element-wise and pooling ops)."""
    new = _reshape_layout(node, modules)
    if new is None or layout == "unknown":
        return layout
    return new


def _shape_query(node: fx.Node) -> bool:
    """x.size(0), x.dim(), x.shape: numbers about a value, not a reader of its channels."""
    return (node.op == "call_method" and node.target in SHAPE_METHODS) or (node.op == "call_function" and node.target is getattr)


def _single_module_user(node: fx.Node, modules: dict[str, nn.Module], kind) -> Optional[fx.Node]:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and isinstance(modules[users[0].target], kind):
        return users[0]
    return None


def _followers(info: LayerInfo, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """BatchNorm reading the layer's output, the nn.ReLU reading that (or the output itself), and the
    number of operations reading the ReLU's output."""
    norm = _single_module_user(node, modules, nn.modules.batchnorm._BatchNorm)
    if norm is not None:
        info.norm = modules[norm.target]
    relu = _single_module_user(norm if norm is not None else node, modules, nn.ReLU)
    if relu is not None:
        info.activation = modules[relu.target]
        info.consumers = len(relu.users)


class _LayerTracer(fx.Tracer):
    """fx's tracer, keeping every prunable layer as one call (also subclasses such as NTKLinear, which
    fx would otherwise trace into) and every channel-moving module (`channel_index`, the ResNet
    option-A shortcut), whose channels `channel_flow` moves as a whole. Kept whole, such a module is
    one operation reading a layer's output where its body would be several; neither is a
    pass-through op, so the links and followers are the same (tests/test_graph.py)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, PRUNABLE_TYPES) or hasattr(m, "channel_index") or super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> LayerGraph:
    """The model's LayerGraph (one torch.fx trace; no forward pass, so any device including meta)."""
    classifier = getattr(model, "classifier", None)
    prunable = (
        model.prunable_layers()
        if hasattr(model, "prunable_layers")
        else [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    )
    graph = LayerGraph({f"{n}.weight": LayerInfo(f"{n}.weight", m, n == classifier) for n, m in prunable}, root=model)
    try:
        traced = _LayerTracer().trace(model)
    except Exception:  # noqa: BLE001 - an untraceable model only means "no links or followers"
        return graph
    graph.traced, graph.fx_graph = True, traced
    modules = dict(model.named_modules())
    for node in traced.nodes:
        if node.op == "call_module" and f"{node.target}.weight" in graph.layers:
            info = graph.layers[f"{node.target}.weight"]
            _link(info, node, modules)
            _followers(info, node, modules)
    return graph


# ----------------------------------------------------------------------------- channel flow
#
# Compaction (prune_cli/models/compact.py) removes a channel from every tensor it lives in. In a
# chain that is one layer's output and the next layer's input; through a residual addition it is
# every output added together and every layer reading the sum: the residual groups of
# Torch-Pruning's dependency graph (Fang et al., "DepGraph: Towards Any Structural Pruning",
# CVPR 2023). `channel_flow(model)` finds them by propagating channel identities through one fx
# trace: every output unit of a prunable layer is a channel id, an addition merges the ids of its
# operands position by position (union-find), and a module declaring `channel_index` (the ResNet
# option-A shortcut: output position of each input channel) moves ids between positions.

ADDITIONS = (operator.add, operator.iadd, torch.add)
FLATTENS_MODULES = (nn.Flatten,)
FLATTENS = (torch.flatten,)
SCALINGS = (operator.mul, operator.truediv, operator.sub, operator.neg)
SHAPE_METHODS = ("size", "dim")
# per-channel modules that compaction slices along with the channels they normalise
CHANNEL_MODULES = (nn.modules.batchnorm._BatchNorm,)


class ChannelFlowError(ValueError):
    """An operation moves channels in a way the channel flow cannot follow (the message names it)."""


@dataclass
class _Channels:
    """A traced value that carries channels: their ids and where they lie (`layout`, `reads_units_of`:
    flattened, a reader sees `in_features / len(ids)` consecutive columns per channel)."""

    ids: list[int]
    layout: str = "1"
    producer: Optional[nn.Module] = None  # the layer whose units these channels are (a Conv: axis 1; a Linear: the last axis)
    single: bool = False  # one position per channel (pooled to size 1): flattened, one column per channel

    @property
    def flat(self) -> bool:
        return self.layout == "flat"


@dataclass
class ChannelFlow:
    """Channel ids (canonical: one per set of channels tied together by additions) of every tensor
    position a compaction has to slice.

    produces: module name -> id of each output unit of a prunable layer;
    reads: module name -> (id of each input channel, columns per channel) of a prunable layer, or
      None when it reads the network input (never sliced);
    norms: module name -> id of each channel of a BatchNorm;
    remaps: module name -> (ids of its input channels, ids of its output channels) of a module
      with `channel_index`;
    pinned: ids that must stay (they reach the network output or an operation without channel
      structure);
    joined: ids to which a value the flow does not trace (the network input, a constant tensor) is
      added: the sum may carry the network input past every layer (compaction's connectivity check);
    fixed: ids of a value a view or reshape gives a literal size beside the batch (x.view(-1, 8, 1, 1),
      x.view(-1, 400)): the number is written in forward, so compaction keeps every one of them."""

    produces: dict[str, list[int]] = field(default_factory=dict)
    reads: dict[str, Optional[tuple[list[int], int]]] = field(default_factory=dict)
    norms: dict[str, list[int]] = field(default_factory=dict)
    remaps: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    pinned: set[int] = field(default_factory=set)
    joined: set[int] = field(default_factory=set)
    fixed: set[int] = field(default_factory=set)

    def groups(self) -> list[list[str]]:
        """Sets of prunable layers whose outputs are added together (residual groups), each in
        forward order; layers that share no channel with another are left out."""
        owner: dict[int, list[str]] = {}
        for name, ids in self.produces.items():
            for i in dict.fromkeys(ids):
                owner.setdefault(i, []).append(name)
        parent = {name: name for name in self.produces}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for names in owner.values():
            for other in names[1:]:
                parent[find(other)] = find(names[0])
        members: dict[str, list[str]] = {}
        for name in self.produces:
            members.setdefault(find(name), []).append(name)
        return [m for m in members.values() if len(m) > 1]


def channel_flow(model: nn.Module, traced: Optional[fx.Graph] = None) -> ChannelFlow:
    """The ChannelFlow of `model` (one torch.fx trace, no forward pass; `traced`: the graph `trace`
    already made of this model, so no second trace). Raises ChannelFlowError when the model cannot
    be traced or an operation on a layer's output is not understood (concatenation, a product of two
    layer outputs, ...), or for any grouped convolution, wherever it sits (also reading the network
    input): compaction then refuses with the reason. A prunable layer, BatchNorm or
    channel-moving module called more than once in forward (a shared module) is refused too: its
    weight rows, columns or entries are one set sliced once, but each call would have channels of
    its own, and recording one call (the last) sliced it for that call alone."""
    if traced is None:
        try:
            traced = _LayerTracer().trace(model)
        except Exception as err:  # noqa: BLE001 - reported as the reason compaction cannot run
            raise ChannelFlowError(f"torch.fx cannot trace this model ({type(err).__name__}: {err})") from err
    modules = dict(model.named_modules())
    parent: list[int] = []

    def new(n: int) -> list[int]:
        parent.extend(range(len(parent), len(parent) + n))
        return list(range(len(parent) - n, len(parent)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    flow, values = ChannelFlow(), {}
    pinned: list[int] = []
    joined: list[int] = []
    fixed: list[int] = []
    called: set[str] = set()  # modules whose channels the flow records, seen once already

    def tracked(args) -> list[_Channels]:
        return [values[a.name] for a in args if isinstance(a, fx.Node) and values.get(a.name) is not None]

    def refuse(node: fx.Node, why: str):
        raise ChannelFlowError(f"{node.op} {node.target!s} ({node.name}) {why}")

    for node in traced.nodes:
        args = list(node.args) + list(node.kwargs.values())
        inputs = tracked(_flatten_args(args))
        module = modules.get(node.target) if node.op == "call_module" else None
        result = None
        if module is not None and (isinstance(module, PRUNABLE_TYPES + CHANNEL_MODULES) or hasattr(module, "channel_index")):
            if node.target in called:
                shared = type(module).__name__
                refuse(node, f"is called more than once in forward (a shared {shared}): its channels would differ per call")
            called.add(node.target)
        if node.op == "output":
            for v in tracked(_flatten_args(node.args)):
                pinned.extend(v.ids)
        elif module is not None and isinstance(module, PRUNABLE_TYPES):
            # Any grouped convolution, also one reading the network input: its output channels are
            # split into groups of equal size, so removing some of them would slice across a group
            # boundary (the rebuilt layer computed something else, or nn.Conv2d refused its sizes).
            if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups != 1:
                refuse(node, f"is a grouped convolution (groups={module.groups}): its channels cannot be removed independently")
            source = values.get(node.args[0].name) if isinstance(node.args[0], fx.Node) else None
            if source is None:
                flow.reads[node.target] = None
            else:
                columns = module.weight.shape[1]
                per = columns // len(source.ids) if source.flat else 1
                if per * len(source.ids) != columns or (per > 1 and not isinstance(module, nn.Linear)):
                    refuse(node, f"reads {columns} inputs from a value of {len(source.ids)} channels")
                if why := reads_units_of(source.producer, module, source.layout, per):
                    refuse(node, f"{why}: it does not read the channels of the layer before it")
                flow.reads[node.target] = (source.ids, per)
            result = _Channels(new(module.weight.shape[0]), layout=_own_layout(module), producer=module)
            flow.produces[node.target] = result.ids
        elif not inputs:
            result = None  # derived from the network input or constants only: nothing to compact
        elif module is not None and hasattr(module, "channel_index"):
            (source,) = inputs
            index, out = module.channel_index, module.out_channels
            ids = new(out)
            for i, position in zip(source.ids, index):
                parent[find(ids[position])] = find(i)
            flow.remaps[node.target] = (source.ids, ids)
            result = _Channels(ids, producer=source.producer)  # a convolution's layout: channels on axis 1
        elif module is not None and isinstance(module, CHANNEL_MODULES):
            (source,) = inputs
            if source.flat:
                refuse(node, "normalises a flattened value")
            flow.norms[node.target] = source.ids
            result = source
        elif (layout := _reshape_layout(node, modules)) is not None:
            source = inputs[0]
            if layout == "unknown" or source.layout == "unknown":
                refuse(
                    node,
                    "reshapes a layer's output so that where its channels lie is unknown (a flatten from a "
                    "dimension other than 1, or a view or reshape keeping positions beside the channels)",
                )
            result = _Channels(source.ids, layout=layout, producer=source.producer, single=source.single and layout == "flat")
            if _literal_size(node):
                fixed.extend(source.ids)
        elif node.op == "call_function" and node.target in ADDITIONS:
            if len(inputs) == 2:
                a, b = inputs
                # both flattened with one column per channel ((batch, channels)), the axis they came from no longer matters
                one_column = a.flat and b.flat and (a.single or b.single)
                if (
                    len(a.ids) != len(b.ids)
                    or a.layout != b.layout
                    or (a.flat and _channel_axis(a) != _channel_axis(b) and not one_column)
                ):
                    refuse(node, "adds values of different channel layouts")
                for i, j in zip(a.ids, b.ids):
                    parent[find(j)] = find(i)
                result = a
            else:  # layer output + network input or a constant tensor: keep the layer's channels
                pinned.extend(inputs[0].ids)
                if any(isinstance(a, fx.Node) and values.get(a.name) is None for a in args):
                    joined.extend(inputs[0].ids)
                result = inputs[0]
        elif len(inputs) == 1 and _passes_through(node, modules):
            result = inputs[0]
            if _pools_to_one(node, modules) and result.layout == "1" and not isinstance(result.producer, nn.Linear):
                result = _Channels(result.ids, layout=result.layout, producer=result.producer, single=True)
        elif (node.op == "call_method" and node.target in SHAPE_METHODS) or (node.op == "call_function" and node.target is getattr):
            result = None  # x.size(0), x.shape: numbers, not channels
        elif node.op == "call_function" and node.target in SCALINGS and _one_node_and_numbers(args):
            result = inputs[0]  # a layer's output times a constant number keeps its channels
        else:
            refuse(node, "is applied to a layer's output and its effect on channels is unknown")
        values[node.name] = result

    def canonical(ids: list[int]) -> list[int]:
        return [find(i) for i in ids]

    flow.produces = {k: canonical(v) for k, v in flow.produces.items()}
    flow.reads = {k: (None if v is None else (canonical(v[0]), v[1])) for k, v in flow.reads.items()}
    flow.norms = {k: canonical(v) for k, v in flow.norms.items()}
    flow.remaps = {k: (canonical(a), canonical(b)) for k, (a, b) in flow.remaps.items()}
    flow.pinned = set(canonical(pinned))
    flow.joined = set(canonical(joined))
    flow.fixed = set(canonical(fixed))
    return flow


def _channel_axis(value: _Channels) -> str:
    """'last' for a Linear's units, '1' for a convolution's channels (the ResNet shortcut's output too)."""
    return "last" if isinstance(value.producer, nn.Linear) else "1"


def _pools_to_one(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """An adaptive average pooling to output size 1: one position per channel."""
    if node.op == "call_module" and isinstance(modules[node.target], (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = modules[node.target].output_size
    elif node.op == "call_function" and node.target in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d):
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
    else:
        return False
    return size == 1 or (isinstance(size, (tuple, list)) and all(d == 1 for d in size))


def _one_node_and_numbers(args) -> bool:
    nodes = [a for a in args if isinstance(a, fx.Node)]
    return len(nodes) == 1 and all(isinstance(a, (int, float)) for a in args if not isinstance(a, fx.Node))


def _flatten_args(args) -> list:
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_flatten_args(a))
        elif isinstance(a, dict):
            out.extend(_flatten_args(list(a.values())))
        else:
            out.append(a)
    return out
