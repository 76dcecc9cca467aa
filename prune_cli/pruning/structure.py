"""Structures: which entries of a layer are removed together.

A structure is registered with `@register_structure("name")` on
`fn(scores, counts, selection, sctx) -> {param name: bool mask}`: it sees every prunable layer at
once (channel pruning must keep the next layer consistent). `scores` are the method's scores
(already-pruned entries are -inf), `counts` the allocation's kept counts per layer, `selection`
"exact" or "bernoulli", `sctx` a StructureContext (method config, layer roles and links, target
density, whether the ranking is inverted). The registry holds a `Structure`; the pruner calls
`.masks(...)`, and a layer-local structure can also be called on one layer as
`STRUCTURES.get(name)(score, k, selection, method)` (sequential scores such as LAP-forward do this).

- unstructured: single weights (top-k, or Bernoulli for i.i.d. U(0,1) scores).
- channel: whole output units (rows of a Linear, filters of a Conv) ranked by the L1/L2 norm of
  their scores; the next layer's input columns of a removed unit are masked too.
- nm: N of every M consecutive weights along the input dimension (NVIDIA 2:4 sparsity).
- block: r x c blocks of the 2-D weight view [out, in * kernel], whole blocks kept or removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import fx, nn

from ..core.errors import PruneCliError
from ..models.base import PRUNABLE_TYPES
from . import STRUCTURES

# ----------------------------------------------------------------------------- layer graph

PASS_THROUGH_MODULES = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.BatchNorm1d,
                        nn.BatchNorm2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
                        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity, nn.Flatten)
PASS_THROUGH_FUNCTIONS = (F.relu, torch.relu, torch.flatten, torch.tanh, torch.sigmoid, F.max_pool1d,
                          F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)
PASS_THROUGH_METHODS = ("relu", "flatten", "view", "reshape", "contiguous")


@dataclass
class LayerInfo:
    """A prunable Linear/Conv layer, its role and its direct successor in a chain network."""

    name: str  # parameter name, e.g. "net.1.weight"
    module: nn.Module
    is_classifier: bool
    next: Optional[str] = None  # parameter name of the layer that alone consumes this layer's output
    to_output: bool = False  # this layer's output is the network output (after pass-through ops)
    factor: int = 1  # input columns of `next` per output unit of this layer (>1 after a flatten)

    @property
    def units(self) -> int:
        return self.module.weight.shape[0]


@dataclass
class StructureContext:
    method: DictConfig
    layers: dict[str, LayerInfo]  # every Linear/Conv layer of the model, forward order
    density: float  # target density of the selected weights
    invert: bool = False  # rank lowest scores first (the invert ablation)


def _out_units(module: nn.Module) -> int:
    return module.weight.shape[0]


def _in_units(module: nn.Module) -> int:
    return module.weight.shape[1]


def layer_graph(model: nn.Module) -> dict[str, LayerInfo]:
    """Roles and chain links of every prunable layer, found by tracing the model with torch.fx.

    Layer A links to B when A's output reaches B only through element-wise / pooling / flatten
    ops and nothing else reads it (no residual add, no concatenation). Untraceable models get no
    links; then channel pruning and the path check are unavailable, the empty-layer check remains."""
    layers = {f"{n}.weight": LayerInfo(f"{n}.weight", m, n == getattr(model, "classifier", None))
              for n, m in model.prunable_layers()}
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure just means "no chain information"
        return layers
    modules = dict(model.named_modules())
    for node in graph.nodes:
        if node.op != "call_module" or f"{node.target}.weight" not in layers:
            continue
        info = layers[f"{node.target}.weight"]
        cur = node
        while True:
            users = list(cur.users)
            if len(users) != 1:
                break
            user = users[0]
            if user.op == "output":
                info.to_output = True
                break
            if not user.args or user.args[0] is not cur:
                break
            if user.op == "call_module":
                mod = modules[user.target]
                if isinstance(mod, PRUNABLE_TYPES):
                    factor = _in_units(mod) // _out_units(info.module)
                    ok = factor >= 1 and factor * _out_units(info.module) == _in_units(mod)
                    if ok and (factor == 1 or isinstance(mod, nn.Linear)):
                        info.next, info.factor = f"{user.target}.weight", factor
                    break
                if not isinstance(mod, PASS_THROUGH_MODULES):
                    break
            elif user.op == "call_function" and user.target not in PASS_THROUGH_FUNCTIONS:
                break
            elif user.op == "call_method" and user.target not in PASS_THROUGH_METHODS:
                break
            elif user.op not in ("call_module", "call_function", "call_method"):
                break
            cur = user
    return layers


def is_chain(layers: dict[str, LayerInfo]) -> bool:
    """The prunable layers form one path, first -> ... -> output, in forward order."""
    infos = list(layers.values())
    return bool(infos) and all(a.next == b.name for a, b in zip(infos, infos[1:])) and infos[-1].to_output


def column_mask(mask_units: torch.Tensor, next_weight_shape: torch.Size, factor: int) -> torch.Tensor:
    """Boolean mask of the next layer's weight that keeps only the columns fed by kept units."""
    cols = mask_units.repeat_interleave(factor)
    shape = [1, len(cols)] + [1] * (len(next_weight_shape) - 2)
    return cols.view(shape).expand(next_weight_shape)


def unit_alive(mask: torch.Tensor) -> torch.Tensor:
    """Output units of a layer that keep at least one incoming weight."""
    return mask.flatten(1).any(1)


def disconnected(masks: dict[str, torch.Tensor], layers: dict[str, LayerInfo]) -> list[str]:
    """Reasons the pruned network has no path from a layer's inputs to its successor's outputs.

    For every linked pair (A -> B), some unit of A must keep an incoming weight and an outgoing
    weight in B. For a chain network, some input must still reach some output through all layers."""
    def full(name):
        return masks[name] if name in masks else torch.ones_like(layers[name].module.weight, dtype=torch.bool)

    problems = []
    for info in layers.values():
        if info.next is None:
            continue
        nxt = full(info.next)
        outgoing = nxt.transpose(0, 1).flatten(1).any(1).view(-1, info.factor).any(1)
        if not (unit_alive(full(info.name).cpu()) & outgoing.cpu()).any():
            problems.append(f"no unit of {info.name} keeps both an incoming weight and an outgoing weight in "
                            f"{info.next}")
    if is_chain(layers) and not problems:
        alive = None
        for info in layers.values():
            m = full(info.name).cpu()
            if alive is not None:
                m = m & column_mask(alive, m.shape, 1)
            alive = unit_alive(m)
            if info.next is not None and info.factor > 1:
                alive = alive.repeat_interleave(info.factor)
        if not alive.any():
            problems.append("no path from the network input to its output survives")
    return problems


# ----------------------------------------------------------------------------- helpers


def top_k_mask(score: torch.Tensor, k: int, invert: bool = False) -> torch.Tensor:
    """Keep the k highest scores (lowest with invert; -inf = already pruned stays last); ties broken
    by flat index (stable sort), so masks are deterministic."""
    flat = score.flatten()
    if invert:
        flat = torch.where(torch.isneginf(flat), flat, -flat)
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    return mask.view_as(score)


def group_norm(values: torch.Tensor, norm: str, dim: int = -1) -> torch.Tensor:
    """L1 or L2 norm of the scores in each group; finite entries only, a fully pruned group = -inf."""
    finite = torch.isfinite(values)
    v = torch.where(finite, values, torch.zeros_like(values)).abs()
    out = v.sum(dim) if norm == "l1" else v.pow(2).sum(dim).sqrt()
    return torch.where(finite.any(dim), out, torch.full_like(out, float("-inf")))


# ----------------------------------------------------------------------------- structures


@dataclass(frozen=True)
class Structure:
    name: str
    masks: Callable  # (scores, counts, selection, sctx) -> {name: mask}, all layers at once
    layer_local: bool = True  # False when a layer's mask depends on its neighbours (channel)

    def __call__(self, score: torch.Tensor, k: int, selection: str, method: Optional[DictConfig] = None,
                 invert: bool = False) -> torch.Tensor:
        """The mask of a single layer keeping about k entries."""
        if not self.layer_local:
            raise PruneCliError(f"method.structure={self.name} decides all layers together (each layer's removed "
                                "units also remove the next layer's columns); it cannot prune one layer alone.")
        if method is None and self.name != "unstructured":
            raise PruneCliError(f"method.structure={self.name} needs the method config for its options: call it "
                                "as STRUCTURES.get(name)(score, k, selection, method).")
        sctx = StructureContext(method=method if method is not None else DictConfig({}), layers={},
                                density=k / max(score.numel(), 1), invert=invert)
        return self.masks({"layer": score}, {"layer": k}, selection, sctx)["layer"]


def register_structure(name: str, layer_local: bool = True):
    def decorator(fn: Callable) -> Callable:
        STRUCTURES.register(name)(Structure(name, fn, layer_local))
        return fn

    return decorator



@register_structure("unstructured")
def unstructured(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    out = {}
    for name, score in scores.items():
        k = counts[name]
        if selection == "bernoulli":
            # Scores are i.i.d. U(0,1): keeping u >= 1 - d keeps each weight with probability d = k/n.
            out[name] = score >= 1.0 - k / score.numel()
        else:
            out[name] = top_k_mask(score, k, sctx.invert)
    return out


@register_structure("nm")
def n_m(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Keep the N highest-scoring weights of every M consecutive ones along the input dimension
    (for a conv, along input channels at each kernel position). The density is exactly N/M."""
    n, m = int(sctx.method.nm_n), int(sctx.method.nm_m)
    out = {}
    for name, score in scores.items():
        if score.shape[1] % m:
            raise PruneCliError(f"method.structure=nm with method.nm_m={m}: layer {name} has {score.shape[1]} "
                                f"inputs, not a multiple of {m}. Exclude it (method.exclude=[...]) or pick "
                                "another M.")
        moved = score.movedim(1, -1)  # [out, *kernel, in]
        groups = moved.reshape(-1, m)
        key = torch.where(torch.isneginf(groups), groups, -groups) if sctx.invert else groups
        idx = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :n]
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True)
        out[name] = keep.view(moved.shape).movedim(-1, 1).contiguous()
    return out


@register_structure("block")
def block(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Whole r x c blocks of the 2-D view [out, in * kernel], ranked by the L1/L2 norm of their
    scores; edge blocks may be smaller. Each layer keeps its top blocks; the number per layer starts
    at the one closest to the allocated count, then single blocks are added or dropped where that
    brings the total closest to the allocated total (exact when it is a multiple of r * c)."""
    r, c = (int(v) for v in sctx.method.block_shape)
    norm = sctx.method.get("group_norm", "l1")
    plans = {}
    for name, score in scores.items():
        w2 = score.reshape(score.shape[0], -1)
        rows, cols = w2.shape
        padded = F.pad(w2, (0, -cols % c, 0, -rows % r), value=float("nan"))
        blocks = padded.view(math.ceil(rows / r), r, math.ceil(cols / c), c).permute(0, 2, 1, 3).flatten(2)
        sizes = (~torch.isnan(blocks)).sum(-1).flatten()
        gscore = group_norm(blocks, norm).flatten()  # padding (NaN) and pruned (-inf) entries count 0
        key = torch.where(torch.isneginf(gscore), gscore, -gscore) if sctx.invert else gscore
        order = torch.sort(key, descending=True, stable=True).indices
        cum = torch.cat([torch.zeros(1, dtype=torch.long), sizes[order].cumsum(0)]).tolist()
        b = min(range(len(cum)), key=lambda i: abs(cum[i] - counts[name]))
        plans[name] = [b, cum, order, blocks.shape[:2], (rows, cols)]
    target = sum(counts[n] for n in scores)
    while True:
        total = sum(p[1][p[0]] for p in plans.values())
        best = None
        for name, (b, cum, *_rest) in plans.items():
            for step in (1, -1):
                if 0 <= b + step < len(cum):
                    new_total = total + cum[b + step] - cum[b]
                    gain = abs(target - total) - abs(target - new_total)
                    # among equal gains, move the layer furthest from its own allocated count
                    lag = (counts[name] - cum[b]) * step
                    if gain > 0 and (best is None or (gain, lag) > best[0]):
                        best = ((gain, lag), name, step)
        if best is None:
            break
        plans[best[1]][0] += best[2]
    out = {}
    for name, (b, cum, order, grid, (rows, cols)) in plans.items():
        keep = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
        keep[order[:b]] = True
        full = keep.view(grid).repeat_interleave(r, 0).repeat_interleave(c, 1)[:rows, :cols]
        out[name] = full.reshape(scores[name].shape).contiguous()
    return out


@register_structure("channel", layer_local=False)
def channel(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Remove whole output units of every pruned hidden layer, ranked by the L1/L2 norm of their
    scores (with magnitude scores: the filter norm of Li et al. 2017) over the input columns the
    previous layer left alive, and mask the next layer's input columns of each removed unit. The
    classifier keeps its rows (they are the classes).

    All hidden layers keep the same fraction q of their units; q is the value whose total kept
    weight count, after the next-layer columns are removed, is closest to round(density * N)."""
    layers = sctx.layers
    norm = sctx.method.get("group_norm", "l1")
    names = list(scores)
    hidden = [n for n in names if not layers[n].is_classifier]
    broken = [n for n in hidden if layers[n].next is None]
    if broken:
        raise PruneCliError(
            "method.structure=channel needs each pruned hidden layer to feed exactly one next layer (no "
            f"residual add or concatenation); these do not: {', '.join(broken)}. Exclude them "
            "(method.exclude=[...]) or use another structure.")
    prev_of = {layers[n].next: n for n in hidden}

    def units_kept(q: float) -> dict[str, int]:
        return {n: round(q * layers[n].units) for n in hidden}

    def kept_weights(units: dict[str, int]) -> int:
        total = 0
        for n in names:
            rows = units.get(n, layers[n].units)
            w = scores[n]
            per_col = w[0, 0].numel() if w.dim() > 2 else 1
            p = prev_of.get(n)
            cols = units[p] * layers[p].factor if p is not None else w.shape[1]
            total += rows * cols * per_col
        return total

    target = round(sctx.density * sum(s.numel() for s in scores.values()))
    candidates = sorted({j / layers[n].units for n in hidden for j in range(layers[n].units + 1)} | {0.0, 1.0})
    best = min(candidates, key=lambda q: (abs(kept_weights(units_kept(q)) - target), -q))
    units = units_kept(best)
    unit_masks = {}
    for n in hidden:  # forward order: rank units on the columns the previous layer left alive
        w = scores[n]
        p = prev_of.get(n)
        if p is not None:
            w = w.masked_fill(~column_mask(unit_masks[p], w.shape, layers[p].factor).to(w.device), 0.0)
        g = group_norm(w.flatten(1), norm)
        key = torch.where(torch.isneginf(g), g, -g) if sctx.invert else g
        keep = torch.zeros(layers[n].units, dtype=torch.bool)
        keep[torch.sort(key, descending=True, stable=True).indices[:units[n]].cpu()] = True
        unit_masks[n] = keep
    out = {}
    for n in names:
        w = scores[n]
        mask = torch.ones(w.shape, dtype=torch.bool)
        if n in unit_masks:
            mask &= unit_masks[n].view([-1] + [1] * (w.dim() - 1))
        p = prev_of.get(n)
        if p is not None:
            mask &= column_mask(unit_masks[p], w.shape, layers[p].factor)
        out[n] = mask
    return out
