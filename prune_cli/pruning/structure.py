"""Structures: which entries of a layer are removed together.

A structure is registered with `@register_structure("name")` on
`fn(scores, counts, selection, sctx) -> {param name: bool mask}`: it sees every prunable layer at
once (channel pruning must keep the next layer consistent). `scores` are the method's scores
(already-pruned entries are -inf), `counts` the allocation's kept counts per layer, `selection`
"exact" or "bernoulli", `sctx` a StructureContext (method config, layer roles and links, target
density, whether the ranking is inverted). The registry holds a `Structure`; the pruner calls
`.masks(...)`, and a layer-local structure can also be called on one layer as
`STRUCTURES.get(name)(score, k, selection, method)` (sequential scores such as LAP-forward do this).

Each structure is a plugin module in prune_cli/pruning/structures/ (unstructured, channel,
channel_group, nm, block, bcr); this module holds what they share: the context (with the model's layer graph,
prune_cli/models/graph.py), column masks, the path check, top-k, group norms, the block view
and the balancing of reachable per-layer counts to the allocated total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Collection, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from ..core.errors import PruneCliError
from ..models.graph import LayerGraph
from .registries import STRUCTURES

# ----------------------------------------------------------------------------- context and masks


@dataclass(frozen=True)
class StructureContext:
    method: Any  # the method's config dataclass (or a DictConfig when a score calls a structure on one layer)
    layers: LayerGraph  # every prunable layer of the model, forward order (prune_cli/models/graph.py)
    density: float  # target density of the selected weights
    invert: bool = False  # rank lowest scores first (the invert ablation)


def column_mask(mask_units: torch.Tensor, next_weight_shape: torch.Size, factor: int) -> torch.Tensor:
    """Boolean mask of the next layer's weight that keeps only the columns fed by kept units."""
    cols = mask_units.repeat_interleave(factor)
    shape = [1, len(cols)] + [1] * (len(next_weight_shape) - 2)
    return cols.view(shape).expand(next_weight_shape)


def unit_alive(mask: torch.Tensor) -> torch.Tensor:
    """Output units of a layer that keep at least one incoming weight."""
    return mask.flatten(1).any(1)


def disconnected(masks: dict[str, torch.Tensor], layers: LayerGraph, skip: Collection[str] = ()) -> list[str]:
    """Reasons the pruned network has no path from a layer's inputs to its successor's outputs.

    For every linked pair (A -> B), some unit of A must keep an incoming weight and an outgoing
    weight in B (pairs touching a layer of `skip`, a residual section's, are not needed: the stream
    passes the section by). For a chain network, some input must still reach some output through all layers."""

    def full(name):
        return masks[name] if name in masks else torch.ones_like(layers[name].module.weight, dtype=torch.bool)

    problems = []
    for info in layers.values():
        if info.next is None or info.name in skip or info.next in skip:
            continue
        nxt = full(info.next)
        outgoing = nxt.transpose(0, 1).flatten(1).any(1).view(-1, info.factor).any(1)
        if not (unit_alive(full(info.name).cpu()) & outgoing.cpu()).any():
            problems.append(f"no unit of {info.name} keeps both an incoming weight and an outgoing weight in {info.next}")
    if layers.is_chain() and not problems:
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


def block_view(values: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """[R, C, r, c]: the r x c blocks of a layer's 2-D view [out, in * kernel] (block and bcr
    structures); edge blocks are padded with NaN, which `group_norm` counts as zero."""
    w2 = values.reshape(values.shape[0], -1)
    rows, cols = w2.shape
    padded = F.pad(w2, (0, -cols % c, 0, -rows % r), value=float("nan"))
    return padded.view(math.ceil(rows / r), r, math.ceil(cols / c), c).permute(0, 2, 1, 3)


def balance_to_total(options: dict[str, list[int]], counts: dict[str, int]) -> dict[str, int]:
    """Per layer, the index into `options[name]` (the kept counts the structure can reach in that
    layer, ascending) of the count it keeps, so that the total comes close to the allocated total.

    Each layer starts at the option closest to its allocated count `counts[name]` (the first of
    equals); then single layers move one option up or down, each time the move that brings the total
    closest to sum(counts), among equal gains the layer furthest from its own count, until no single
    move brings the total closer. Where none does, two layers move together (one down, another up:
    coarse options such as BCR's row x column shapes often reach the total only so), the pair that
    comes closest and, among equals, stays nearest the allocated counts; then single moves again.
    No move empties a layer that was allocated weights. Structures that reach only some counts per
    layer (whole blocks, BCR's row x column shapes) thereby keep the total of global and ERK
    allocations."""
    at = {name: min(range(len(opts)), key=lambda i: abs(opts[i] - counts[name])) for name, opts in options.items()}
    target = sum(counts[name] for name in options)
    while True:
        _single_moves(options, counts, at, target)
        total = sum(options[name][i] for name, i in at.items())
        pair = _best_pair_move(options, counts, at, target, total) if total != target else None
        if pair is None:
            return at
        (a, ja), (b, jb) = pair
        at[a], at[b] = ja, jb


def _allowed(counts: dict[str, int], name: str, value: int) -> bool:
    """Whether a move may bring layer `name` to `value` kept weights: never to 0 when it was allocated some."""
    return value > 0 or counts[name] == 0


def _single_moves(options: dict[str, list[int]], counts: dict[str, int], at: dict[str, int], target: int) -> None:
    """Move single layers one option at a time while that brings the total closer (in place)."""
    while True:
        total = sum(options[name][i] for name, i in at.items())
        best = None
        for name, i in at.items():
            opts = options[name]
            for step in (1, -1):
                if 0 <= i + step < len(opts) and _allowed(counts, name, opts[i + step]):
                    gain = abs(target - total) - abs(target - (total + opts[i + step] - opts[i]))
                    lag = (counts[name] - opts[i]) * step  # among equal gains, the layer furthest from its count
                    if gain > 0 and (best is None or (gain, lag) > best[0]):
                        best = ((gain, lag), name, step)
        if best is None:
            return
        at[best[1]] += best[2]


PAIR_WINDOW = 32  # options of the first layer of a pair tried on either side of its current one


def _best_pair_move(options, counts, at, target: int, total: int):
    """((layer a, new index), (layer b, new index)) that brings the total strictly closer to `target`
    with the least drift from the allocated counts, or None. For each option of `a` near its current
    one, `b`'s best option is found by bisection."""
    from bisect import bisect_left

    gap = abs(target - total)
    best = None
    for a, ia in at.items():
        oa = options[a]
        for ja in range(max(0, ia - PAIR_WINDOW), min(len(oa), ia + PAIR_WINDOW + 1)):
            if ja == ia or not _allowed(counts, a, oa[ja]):
                continue
            rest = total - oa[ia] + oa[ja]
            for b, ib in at.items():
                if b == a:
                    continue
                ob = options[b]
                k = bisect_left(ob, target - (rest - ob[ib]))
                for jb in (k - 1, k):
                    if not (0 <= jb < len(ob)) or jb == ib or not _allowed(counts, b, ob[jb]):
                        continue
                    new_gap = abs(target - (rest - ob[ib] + ob[jb]))
                    drift = abs(oa[ja] - counts[a]) + abs(ob[jb] - counts[b])
                    if new_gap < gap and (best is None or (new_gap, drift) < best[0]):
                        best = ((new_gap, drift), (a, ja), (b, jb))
    return None if best is None else best[1:]


# ----------------------------------------------------------------------------- structures


def _never(method: DictConfig) -> bool:
    return False


@dataclass(frozen=True)
class Structure:
    """A registered structure and what the pre-run pass asks of it (prune_cli/run/prevalidate.py)."""

    name: str
    masks: Callable  # (scores, counts, selection, sctx) -> {name: mask}, all layers at once
    # Its own method.* options: a dataclass (fields with defaults, optional check/unused hooks), added to
    # every method schema; setting one while another structure is chosen is rejected
    # (prune_cli/run/unused_options.py). None: it has none.
    options: Optional[type] = None
    layer_local: bool = True  # False when a layer's mask depends on its neighbours (channel)
    single_weights: bool = False  # removes single weights (Bernoulli sampling and the shuffle ablation apply)
    check: Optional[Callable[[DictConfig], None]] = None  # config-only checks when chosen: check(cfg)
    # Checks against the model (meta device, before any data): check_model(model, selected, method).
    check_model: Optional[Callable] = None
    # Checks that also need the target: check_density(model, selected, method, density), run by the
    # pre-run pass at the run's final density when the run prunes once (the kept count of a structure
    # such as channel is then a fact of the layer shapes).
    check_density: Optional[Callable] = None
    fixes_final_densities: Callable[[DictConfig], bool] = _never  # then only a single pruning event fits
    uses_counts: bool = True  # False: the masks ignore the allocation's per-layer counts (N:M)
    inexact_hint: str = ""  # why the achieved sparsity may differ from the target

    def __call__(
        self, score: torch.Tensor, k: int, selection: str, method: Optional[DictConfig] = None, invert: bool = False
    ) -> torch.Tensor:
        """The mask of a single layer keeping about k entries."""
        if not self.layer_local:
            raise PruneCliError(
                f"method.structure={self.name} decides all layers together (each layer's removed "
                "units also remove the next layer's columns); it cannot prune one layer alone."
            )
        if method is None and self.name != "unstructured":
            raise PruneCliError(
                f"method.structure={self.name} needs the method config for its options: call it "
                "as STRUCTURES.get(name)(score, k, selection, method)."
            )
        sctx = StructureContext(
            method=method if method is not None else DictConfig({}),
            layers=LayerGraph(),
            density=k / max(score.numel(), 1),
            invert=invert,
        )
        return self.masks({"layer": score}, {"layer": k}, selection, sctx)["layer"]


def register_structure(name: str, **hooks):
    """Register `fn` as structure `name`; `hooks` are Structure fields (options, layer_local, check, ...)."""
    from .allocation import checked_options

    def decorator(fn: Callable) -> Callable:
        checked_options("structure", name, hooks.get("options"))
        STRUCTURES.register(name)(Structure(name, fn, **hooks))
        return fn

    return decorator


@dataclass
class GroupNormOptions:
    """The option of the structures that rank groups of weights (channel, channel_group, block, bcr)."""

    group_norm: str = "l1"  # norm of the scores in a unit/group/block: l1 | l2

    in_every_run_id: ClassVar[bool] = True  # a MethodConfig field before structures declared their options

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        from ..core.checks import choice

        choice(cfg, f"{key}.group_norm", {"l1", "l2"})


@dataclass
class BlockShapeOptions(GroupNormOptions):
    """The options of the block structures (block, bcr): the block and the norm that ranks it."""

    block_shape: list[int] = field(default_factory=lambda: [4, 4])  # [rows, cols] of a block

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        from ..core.checks import check

        shape = list(OmegaConf.select(cfg, f"{key}.block_shape"))
        check(
            len(shape) == 2 and all(isinstance(v, int) and v >= 1 for v in shape),
            f"{key}.block_shape",
            shape,
            "two positive integers [rows, cols]",
        )
