"""`method.structure=block`: whole r x c blocks of each layer's 2-D weight view kept or removed
(block sparsity for real speedups, e.g. Gray et al. 2017 block-sparse kernels; docs/allocation.md)."""

from __future__ import annotations

import torch

from ..structure import (
    BlockShapeOptions,
    StructureContext,
    balanced_options,
    block_view,
    group_norm,
    register_structure,
)


@register_structure(
    "block",
    options=BlockShapeOptions,  # method.block_shape, method.group_norm
    inexact_hint="Block pruning keeps whole blocks; pick a sparsity whose per-layer counts are "
    "multiples of the block size, a smaller method.block_shape, or raise "
    "method.sparsity_tolerance.",
)
def block(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Whole r x c blocks of the 2-D view [out, in * kernel], ranked by the L1/L2 norm of their
    scores; edge blocks may be smaller. Each layer keeps its top blocks, as many as bring it nearest
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
        gscore = group_norm(blocks, norm).flatten()  # padding (NaN) and pruned (-inf) entries count 0
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
