"""`method.structure=block`: whole r x c blocks of each layer's 2-D weight view kept or removed
(block sparsity for real speedups, e.g. Gray et al. 2017 block-sparse kernels; docs/allocation.md)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ...core.checks import check
from ..structure import StructureContext, group_norm, register_structure


def check_block(cfg: DictConfig) -> None:
    shape = list(cfg.method.block_shape)
    check(
        len(shape) == 2 and all(isinstance(v, int) and v >= 1 for v in shape),
        "method.block_shape",
        shape,
        "two positive integers [rows, cols]",
    )


@register_structure(
    "block",
    check=check_block,
    inexact_hint="Block pruning keeps whole blocks; pick a sparsity whose per-layer counts are "
    "multiples of the block size, a smaller method.block_shape, or raise "
    "method.sparsity_tolerance.",
)
def block(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Whole r x c blocks of the 2-D view [out, in * kernel], ranked by the L1/L2 norm of their
    scores; edge blocks may be smaller. Each layer keeps its top blocks; the number per layer starts
    at the one closest to the allocated count, then single blocks are added or dropped where that
    brings the total closest to the allocated total (exact when it is a multiple of r * c)."""
    r, c = (int(v) for v in sctx.method.block_shape)
    norm = sctx.method.group_norm
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
