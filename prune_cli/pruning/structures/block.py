"""`method.structure=block`: whole r x c blocks of each layer's 2-D weight view kept or removed
(block sparsity for real speedups, e.g. Gray et al. 2017 block-sparse kernels; docs/allocation.md)."""

from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from ..structure import (
    BITSET_SPAN,
    BlockShapeOptions,
    StructureContext,
    balanced_options,
    block_view,
    check_reachable_sparsity,
    may_empty,
    group_norm,
    register_structure,
)


def subset_sums(sizes: torch.Tensor, reach: int = 1) -> tuple[int, int]:
    """(0, bits): every total some subset of blocks of these sizes keeps, added to a total of `reach`
    (bits; 1: the empty total), is a set bit of `bits`. A bounded knapsack over the few distinct block
    sizes (r x c and the smaller edge blocks), each size's count split in powers of two, so it costs a few
    dozen shifts of an n-bit integer."""
    for size, many in zip(*(t.tolist() for t in torch.unique(sizes, return_counts=True))):
        piece = 1
        while many > 0:
            take = min(piece, many)
            reach |= reach << (size * take)
            many, piece = many - take, piece * 2
    return 0, reach


def layer_sums(layers: list[torch.Tensor], may_empty: list[bool]) -> tuple[int, int]:
    """(0, bits): the totals of one subset of blocks per layer (each entry of `layers`: its block sizes),
    a layer keeping at least one block unless `may_empty` says it may keep none. A non-empty subset holds
    one block of some size s, so its totals are s + the subset sums of the other blocks: one knapsack per
    distinct size (at most 4: r x c and the edge blocks), started from the totals of the earlier layers."""
    reach = 1
    for sizes, empty in zip(layers, may_empty):
        if empty:
            reach = subset_sums(sizes, reach)[1]
            continue
        combined = 0
        for size in torch.unique(sizes).tolist():
            rest = torch.cat([sizes[sizes != size], sizes[sizes == size][1:]])  # one block of this size taken
            combined |= subset_sums(rest, reach << size)[1]
        reach = combined
    return 0, reach


def check_block_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """Before a run that prunes once: a layer keeps whole blocks, so what all layers keep together is a
    sum of block sizes (r x c, smaller at the edges), a fact of the shapes; a target that no subset of
    the blocks meets within method.sparsity_tolerance is refused now (`check_reachable_sparsity`)
    rather than by the pruner after dense training. Every subset counts (the scores decide which blocks
    a layer keeps) but an empty one where the pruner keeps a block (`may_empty`), so only a target no
    choice meets is refused."""
    r, c = (int(v) for v in method.block_shape)
    n = sum(p.numel() for p in selected.values())
    if not n or n > BITSET_SPAN:
        return
    empty = may_empty(model, selected, method, density)
    check_reachable_sparsity("block", _block_reach(tuple(tuple(p.shape) for p in selected.values()), r, c, empty), n, density, method)


@functools.lru_cache(maxsize=8)
def _block_reach(shapes: tuple[tuple[int, ...], ...], r: int, c: int, empty: tuple[bool, ...]) -> tuple[int, int]:
    """`layer_sums` of these layers' blocks, once per shapes, block and emptiable layers: the pre-run
    pass checks every pruning event's target with it (gradual: hundreds)."""
    layers = [(~torch.isnan(block_view(torch.zeros(s), r, c))).flatten(2).sum(-1).flatten() for s in shapes]
    return layer_sums(layers, list(empty))


@register_structure(
    "block",
    options=BlockShapeOptions,  # method.block_shape, method.group_norm
    check_density=check_block_density,
    inexact_hint="Block pruning keeps whole blocks; pick a sparsity whose per-layer counts are "
    "multiples of the block size, a smaller method.block_shape, or raise "
    "method.sparsity_tolerance.",
)
def block(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Whole r x c blocks of the 2-D view [out, in * kernel], ranked by the L1/L2 norm of their
    scores, or by their signed sum where the scores can be negative (GraSP: `group_terms`,
    prune_cli/pruning/structure.py); edge blocks may be smaller. Each layer keeps its top blocks, as many as bring it nearest
    its allocated count, chosen with the other layers' so that the total stays within
    method.sparsity_tolerance of the target and the largest per-layer density deviation is the smallest
    possible (`balance_to_total`, prune_cli/pruning/structure.py, as for `bcr`): the allocation decides
    each layer's density, the blocks only round it. Layers moved past their nearest reachable counts
    are named in a warning."""
    r, c = (int(v) for v in sctx.method.block_shape)
    norm = sctx.method.group_norm
    plans, options = {}, {}
    for name, score in scores.items():
        blocks = block_view(score, r, c)
        grid = blocks.shape[:2]
        blocks = blocks.flatten(2)
        sizes = (~torch.isnan(blocks)).sum(-1).flatten()
        gscore = group_norm(blocks, norm, signed=sctx.signed).flatten()  # padding (NaN) and pruned (-inf) entries count 0
        key = torch.where(torch.isneginf(gscore), gscore, -gscore) if sctx.invert else gscore
        order = torch.sort(key, descending=True, stable=True).indices
        options[name] = torch.cat([torch.zeros(1, dtype=torch.long), sizes[order].cumsum(0)]).tolist()
        plans[name] = (order, grid)
    kept_blocks = balanced_options("block", options, counts, scores, sctx)  # the number of top blocks per layer
    out = {}
    for name, (order, grid) in plans.items():
        keep = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
        keep[order[: kept_blocks[name]]] = True
        rows, cols = scores[name].shape[0], scores[name][0].numel()
        full = keep.view(grid).repeat_interleave(r, 0).repeat_interleave(c, 1)[:rows, :cols]
        out[name] = full.reshape(scores[name].shape).contiguous()
    return out
