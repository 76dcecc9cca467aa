"""`method.structure=bcr`: Block-based Column-Row pruning (Niu et al., "GRIM: A General, Real-Time
Deep Learning Inference Framework for Mobile Devices based on Fine-Grained Structured Weight
Sparsity", 2021; docs/speedup.md).

The 2-D weight view [out, in * kernel] is cut into blocks of `method.block_shape` = [r, c]. Inside
every block whole rows and whole columns are removed, so what a block keeps is the product of a row
set and a column set: a small dense sub-matrix, which is what makes the pattern fast to execute
(GRIM's compiler packs each block's kept rows x columns densely). Different blocks keep different
rows and columns; every block of a layer keeps the same number of them (kr rows, kc columns; edge
blocks keep min(kr, rows) x min(kc, cols)): this project's choice, so that every block of a layer
does the same amount of work.

Per layer: the allocation's count is rounded to a reachable one near it, the layers together keeping
the total within method.sparsity_tolerance (`bcr` below). Rows versus columns: for a layer kept at count k, every shape (kr, kc) with
0 <= kr <= r, 0 <= kc <= c is considered; the shapes whose kept count comes closest to k are the
candidates, and among them the one keeping the largest total score (sum of |score| for
`group_norm=l1`, of score^2 for `l2`: the quantities whose sums the group norms rank; the signed sum
of the scores where they can be negative, GraSP's (H g) w: Wang, Zhang & Grosse, ICLR 2020, so that
rows and columns of strongly negative scores are removed first, `group_terms` in
prune_cli/pruning/structure.py) wins; ties go to more rows. Inside a block a greedy chooses the
lines: the kr rows with the largest group norms (signed sums), then the kc columns with the largest
sums over those rows, then rows over the kept columns, ... (each step is optimal given the other
side, also for signed sums), once starting from rows and once from columns, the better kept per
block. This is exact when the scores are a rank-one product |s_ij| = a_i b_j;
tests/test_bcr.py compares it with the enumerated optimum on small matrices (docs/speedup.md).
A layer allocated any weight keeps at least one row x column per block, so the sparsity cannot
exceed 1 - 1/(r * c) (checked before the run). Under a schedule that prunes more than once, a later
event counts only the rows and columns earlier events kept (`_shape_counts`), so fewer totals are
reachable; an intermediate target none reaches within method.sparsity_tolerance stops the run there.
A run that prunes once is checked before any work (`check_bcr_density`).
"""

from __future__ import annotations

import functools

import torch
from omegaconf import DictConfig

from ...core.checks import check
from ..structure import (
    BlockShapeOptions,
    StructureContext,
    balanced_choice,
    block_view,
    check_structure_reach,
    group_terms,
    reach_bits,
    register_structure,
)


def check_bcr(cfg: DictConfig) -> None:
    shape = list(cfg.method.block_shape)
    check(
        len(shape) == 2 and all(isinstance(v, int) and v >= 1 for v in shape) and shape[0] * shape[1] >= 2,
        "method.block_shape",
        shape,
        "two positive integers [rows, cols] with at least two entries per block (method.structure=bcr "
        "removes rows and columns inside each block)",
    )
    # every block of a layer allocated weights keeps at least one row x one column, so the density cannot go
    # below 1 / (r * c) unless a layer is left nothing: what method.allow_collapse=true permits an allocation
    # that ranks layers against each other (global), which the pruner then accepts
    from ..registries import ALLOCATIONS

    may_empty = cfg.method.allow_collapse and not ALLOCATIONS.get(cfg.method.allocation).counts_from_shapes(cfg.method)
    limit = 1.0 - 1.0 / (shape[0] * shape[1]) + float(cfg.method.sparsity_tolerance)
    check(
        may_empty or cfg.sparsity <= limit,
        "sparsity",
        cfg.sparsity,
        f"at most {1.0 - 1.0 / (shape[0] * shape[1]):g} (+ method.sparsity_tolerance) with method.structure=bcr "
        f"and method.block_shape={shape}: every block keeps at least one row and one column; use a larger block "
        "(or method.allow_collapse=true with an allocation that may leave a layer nothing, such as global)",
    )


# Scores per batched pass of `_block_choices` (shapes x layer size): every shape at once multiplied the peak
# memory by the number of tied shapes (256 for 16x16 blocks after a round that kept 1x1 per block: 2.1 GB
# for a 256x256x3x3 layer where one shape at a time needed 0.57 GB)
BATCH_ELEMENTS = 1 << 22


def _ranks(key: torch.Tensor, invert: bool) -> torch.Tensor:
    """Rank (0 = kept first) of every row/column of each block along the last dim; -inf (padding,
    pruned) last; ties by index."""
    if invert:
        key = torch.where(torch.isneginf(key), key, -key)
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices
    return torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1]).expand_as(order))


def _line_keys(value: torch.Tensor, live: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum of `value` over the kept lines of the other direction, per row (dim=-1) or column
    (dim=-2) of each block; lines that are padding or already fully pruned (`live` false) get -inf."""
    summed = (value * keep).sum(dim)
    return torch.where(live, summed, torch.full_like(summed, float("-inf")))


def _block_choices(value, real, live_rows, live_cols, kr, kc, invert: bool, rows_first: bool, rounds: int = 3):
    """Alternating greedy for every candidate shape at once (`kr`, `kc`: [n, 1, 1, 1] tensors of row
    and column counts; the result is [n, R, C, r, c]): rows by their block group norm (or columns
    first), then columns by their sums over the kept rows, then rows over the kept columns, ...: each
    step is the exact optimum given the other side's lines, so the kept score never gets worse. The
    candidates are stacked because a layer has many shapes at the same distance from its count (1x8,
    2x4, 4x2, 8x1 ...) and one pass per shape made SynFlow's 100 scoring rounds spend most of their time
    here."""
    rows = cols = None
    for step in range(2 * rounds + 1):
        if (step % 2 == 0) == rows_first:
            keys = _line_keys(value, live_rows, 1.0 if cols is None else cols[..., None, :].to(value.dtype), -1)
            rows = _ranks(keys, invert) < kr
        else:
            keys = _line_keys(value, live_cols, 1.0 if rows is None else rows[..., :, None].to(value.dtype), -2)
            cols = _ranks(keys, invert) < kc
    return rows[..., :, None] & cols[..., None, :] & real


def _shape_counts(blocks: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """[r + 1, c + 1]: the live weights a layer keeps when every block keeps kr rows x kc columns,
    from its blocks `block_view(scores)` (padding NaN, pruned -inf). A block keeps min(kr, live rows)
    x min(kc, live columns): in a dense layer its own size (edge blocks min(kr, rows) x min(kc, cols));
    after an earlier round of an iterative schedule, the rows and columns that round kept, so later
    rounds reach only sub-shapes of it."""
    live = torch.isfinite(blocks)
    live_rows = live.any(-1).sum(-1).flatten()  # [blocks]
    live_cols = live.any(-2).sum(-1).flatten()
    per_row = torch.minimum(torch.arange(0, r + 1).view(-1, 1), live_rows.view(1, -1))  # [r + 1, blocks]
    per_col = torch.minimum(torch.arange(0, c + 1).view(-1, 1), live_cols.view(1, -1))  # [c + 1, blocks]
    return per_row @ per_col.T


def bcr_layer(
    score: torch.Tensor, k: int, r: int, c: int, norm: str = "l1", invert: bool = False, signed: bool = False
) -> torch.Tensor:
    """The BCR mask of one layer keeping about k entries (see the module docstring); `signed`: the
    scores can be negative, and shapes, rows and columns are chosen by signed sums (`group_terms`)."""
    blocks = block_view(score, r, c)
    real = ~torch.isnan(blocks)
    alive = torch.isfinite(blocks)  # neither padding nor already pruned (-inf)
    value = group_terms(blocks, norm, signed)  # |s|, s^2 or the signed s; padding and pruned entries 0
    kept = _shape_counts(blocks, r, c)
    gap = (kept - k).abs()
    sign = -1.0 if invert else 1.0
    shapes = torch.nonzero(gap == gap.min())  # [n, 2]: (kr, kc), in row-major order
    live_rows, live_cols = alive.any(-1), alive.any(-2)
    best = None
    step = max(1, BATCH_ELEMENTS // max(value.numel(), 1))  # shapes per pass: a large layer goes one shape at a time
    for start in range(0, len(shapes), step):
        chunk = shapes[start : start + step]
        kr, kc = (chunk[:, i].view(-1, 1, 1, 1) for i in (0, 1))
        a, b = (_block_choices(value, real, live_rows, live_cols, kr, kc, invert, first) for first in (True, False))
        # per block, the better of the rows-first and columns-first greedy
        va, vb = (sign * (value * m).sum((-1, -2)) for m in (a, b))
        masks = torch.where((va >= vb)[..., None, None], a, b)
        for (i, _), mask in zip(chunk.tolist(), masks):
            key = (sign * float((value * mask).sum()), i)
            if best is None or key > best[0]:  # the largest kept score; ties: more rows, then the first shape
                best = (key, mask)
    mask = best[1]
    rows, cols = score.shape[0], score[0].numel()
    return mask.permute(0, 2, 1, 3).reshape(mask.shape[0] * r, mask.shape[1] * c)[:rows, :cols].reshape(score.shape)


def check_bcr_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """Before a run that prunes once: the counts BCR reaches in a dense layer are a fact of its shape
    (`_shape_counts`), so a target no choice of them meets within method.sparsity_tolerance is refused
    now (`check_reachable_sparsity`) rather than by the pruner after dense training. A layer keeps 0
    only where the pruner may empty it (`may_empty`: a score-based allocation with allow_collapse, or a
    residual layer); the pruner keeps one row x column per block of any layer allocated weights."""
    r, c = (int(v) for v in method.block_shape)
    shapes = tuple(tuple(p.shape) for p in selected.values())
    check_structure_reach("bcr", lambda empty: _bcr_reach(shapes, r, c, empty), model, selected, method, density)


@functools.lru_cache(maxsize=8)
def _bcr_reach(shapes: tuple[tuple[int, ...], ...], r: int, c: int, empty: tuple[bool, ...]):
    """`reach_bits` of the counts BCR reaches in these dense layers (0 only where `empty` allows it), once
    per shapes, block and emptiable layers (the pre-run pass checks it again once the data is loaded)."""
    options = [
        sorted(n for n in set(_shape_counts(block_view(torch.zeros(s), r, c), r, c).flatten().tolist()) if n > 0 or can)
        for s, can in zip(shapes, empty)
    ]
    return reach_bits(options) if options else None


@register_structure(
    "bcr",
    options=BlockShapeOptions,  # method.block_shape, method.group_norm
    check=check_bcr,
    check_density=check_bcr_density,
    inexact_hint="BCR keeps the same number of rows and columns in every block of a layer, so a "
    "layer's kept count is a product kr * kc per block; pick a sparsity whose per-layer density is "
    "(kr * kc) / (r * c) for method.block_shape=[r, c], a larger block, or raise "
    "method.sparsity_tolerance. After an earlier pruning event or scoring round a layer reaches only "
    "sub-shapes of the rows and columns it kept, so fewer totals are reachable: fewer events, "
    "method.rounds=1 or a larger tolerance help there.",
)
def bcr(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """The allocation decides each layer's density; BCR reaches only the counts of its kr x kc shapes
    per layer (densities in steps of 1/(r * c) in a dense layer), so each layer keeps a reachable count
    near its allocated one, chosen with the other layers' so that the total stays within
    method.sparsity_tolerance of the target and the largest per-layer density deviation is the smallest
    possible (`balance_to_total`, prune_cli/pruning/structure.py, as for `block`). Chasing the exact
    total instead (the earlier rule) moved single layers far from their allocation: layerwise, ERK and
    global gave the same masks on a 40-256-256-10 MLP at 0.9 (0.25/0.0625/0.45). Layers moved past their
    nearest reachable densities are named in a warning. A layer allocated any weight keeps at least one
    row x column per block. Where the balanced choice misses the target by more than the tolerance (by
    the pruner's comparison), it is redone within every total the pruner accepts (`balanced_choice`):
    the bounds it aims at first are about layerwise's own total, sum round(d n_l), which small layers'
    roundings put more than the tolerance from round(d N), so a target the pre-run check accepted was
    missed after dense training; a choice that meets the target is unchanged."""
    r, c = (int(v) for v in sctx.method.block_shape)
    scores = {n: s.detach().cpu() for n, s in scores.items()}  # the shape tables are CPU tensors (GPU runs too)
    # a layer allocated some weights never drops to zero (the pruner's collapse check is for allocations)
    options = {
        name: [n for n in torch.unique(_shape_counts(block_view(s, r, c), r, c)).tolist() if n > 0 or counts[name] == 0]
        for name, s in scores.items()
    }
    # where that choice misses the target, redone within every total the pruner accepts (same options)
    options, at = balanced_choice("bcr", options, counts, scores, sctx, lambda: options)
    return {
        name: bcr_layer(score, options[name][at[name]], r, c, sctx.method.group_norm, sctx.invert, sctx.signed).contiguous()
        for name, score in scores.items()
    }
