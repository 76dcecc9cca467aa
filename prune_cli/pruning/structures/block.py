"""`method.structure=block`: whole r x c blocks of each layer's 2-D weight view kept or removed
(block sparsity for real speedups, e.g. Gray et al. 2017 block-sparse kernels; docs/allocation.md)."""

from __future__ import annotations

import functools
import itertools

import torch
from omegaconf import DictConfig

from ...core.errors import ConfigError
from ..structure import (
    BITSET_SPAN,
    BlockShapeOptions,
    ReachRefusal,
    StructureContext,
    balanced_choice,
    block_view,
    check_structure_reach,
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
    rather than by the pruner after dense training. Every subset counts but an empty one where the
    pruner keeps a block (`may_empty`): where the top blocks of the score order miss the target, the
    pruner (`block`) reaches the count of every subset of the blocks still live, all of them at a first
    event, so there a target this accepts is met (docs/allocation.md); later, a necessary condition."""
    r, c = (int(v) for v in method.block_shape)
    n = sum(p.numel() for p in selected.values())
    if not n or n > BITSET_SPAN:
        return
    shapes = tuple(tuple(p.shape) for p in selected.values())
    try:
        check_structure_reach("block", lambda empty: _block_reach(shapes, r, c, empty), model, selected, method, density)
    except ReachRefusal as refusal:
        whole = _single_block_layers(selected, r, c)
        if len(whole) < len(selected):
            raise
        smaller = _smaller_shape(model, selected, method, density, r, c)
        raise ConfigError(
            "method.block_shape",
            [r, c],
            "a block shape smaller than some prunable layer's 2-D weight view [out, in x kernel]: with "
            f"method.block_shape=[{r},{c}] every prunable layer is a single block ({', '.join(whole)}), so a layer keeps "
            "all its weights or none and no sparsity but 0 keeps every layer (raising method.sparsity_tolerance does not "
            "help); a smaller one"
            + (f", e.g. method.block_shape=[{','.join(map(str, smaller))}], which reaches this sparsity" if smaller else ""),
        ) from refusal


def _single_block_layers(selected: dict, r: int, c: int) -> list[str]:
    """The prunable layers that r x c covers whole ('name (rows x columns)' of the 2-D view block pruning
    uses, [out, in x kernel]): each is one block, kept or removed entirely."""
    return [
        f"{n.removesuffix('.weight')} ({p.shape[0]}x{(p.numel() // p.shape[0])})"
        for n, p in selected.items()
        if p.shape[0] <= r and (p.numel() // p.shape[0]) <= c
    ]


def _smaller_shape(model, selected: dict, method: DictConfig, density: float, r: int, c: int) -> list[int] | None:
    """The given shape halved (each side, at least 1) until some layer has more than one block and the
    target passes this reach check with it; None where no halving short of [1, 1] (unstructured pruning,
    not a block shape worth suggesting) does."""
    from omegaconf import OmegaConf

    while (r, c) != (1, 1):
        r, c = max(1, r // 2), max(1, c // 2)
        if (r, c) == (1, 1) or len(_single_block_layers(selected, r, c)) == len(selected):
            continue
        try:
            check_structure_reach(
                "block",
                lambda empty, r=r, c=c: _block_reach(tuple(tuple(p.shape) for p in selected.values()), r, c, empty),
                model,
                selected,
                OmegaConf.merge(method, {"block_shape": [r, c]}),
                density,
            )
        except ConfigError:
            continue
        return [r, c]
    return None


@functools.lru_cache(maxsize=8)
def _block_reach(shapes: tuple[tuple[int, ...], ...], r: int, c: int, empty: tuple[bool, ...]) -> tuple[int, int]:
    """`layer_sums` of these layers' blocks, once per shapes, block and emptiable layers: the pre-run
    pass checks every pruning event's target with it (gradual: hundreds)."""
    layers = [(~torch.isnan(block_view(torch.zeros(s), r, c))).flatten(2).sum(-1).flatten() for s in shapes]
    return layer_sums(layers, list(empty))


def size_classes(key: torch.Tensor, order: torch.Tensor, sizes: torch.Tensor) -> list[tuple[int, torch.Tensor, list[float]]]:
    """Per distinct size of a layer's live blocks (at most 4: r x c and the edge blocks), largest first:
    (size, its blocks best first, the running sums of their keys from 0 in float64). `order` is every
    block best first (`key` descending, ties by index); blocks already pruned (key -inf) are left out,
    since the pruner keeps none of their weights."""
    live = order[torch.isfinite(key[order])]
    out = []
    for size in sorted(torch.unique(sizes[live]).tolist(), reverse=True):
        blocks = live[sizes[live] == size]
        sums = torch.cat([torch.zeros(1, dtype=torch.float64), key[blocks].double().cumsum(0)]).tolist()
        out.append((int(size), blocks, sums))
    return out


def class_options(classes) -> list[int]:
    """Every count a layer keeps with the top b_s blocks of each block size s (`size_classes`): the subset
    sums of its live blocks, since only how many blocks of each size a subset holds decides its count."""
    sizes = torch.tensor([size for size, blocks, _ in classes for _ in range(len(blocks))], dtype=torch.long)
    bits = subset_sums(sizes)[1]
    return [i for i, bit in enumerate(reversed(bin(bits)[2:])) if bit == "1"]


def class_pick(classes, kept: int) -> torch.Tensor:
    """The blocks a layer keeps for the count `kept` (one of `class_options`): the top b_s blocks of each
    size s with sum_s b_s s = kept whose keys sum highest (the largest total score among those choices);
    ties go to more blocks of the larger sizes. Every choice is enumerated: the counts of the smaller
    sizes (edge blocks, a row and a column of them and a corner) as a grid, the largest-size count
    following from `kept`, so it costs about one entry per block."""
    if not classes:
        return torch.zeros(0, dtype=torch.long)
    (size0, blocks0, sums0), rest = classes[0], classes[1:]
    best = None
    for many in itertools.product(*(range(len(blocks) + 1) for _, blocks, _ in rest)):
        left = kept - sum(m * size for m, (size, _, _) in zip(many, rest))
        if left < 0 or left % size0 or left // size0 > len(blocks0):
            continue
        counts = (left // size0, *many)
        score = sums0[counts[0]] + sum(sums[m] for m, (_, _, sums) in zip(many, rest))
        if best is None or (score, counts) > best:
            best = (score, counts)
    return torch.cat([blocks[:m] for m, (_, blocks, _) in zip(best[1], classes)])


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
    are named in a warning.

    Top blocks of the overall order reach only some of the counts a layer's blocks reach when its
    edge blocks are smaller (a 5x5 layer in 2x2 blocks: its top block is most often a full one, so 1 is
    out of reach though its 1x1 corner block keeps 1), while the pre-run check (`check_block_density`)
    accepts every total some subset of blocks reaches. So where the balancing over those prefixes
    misses the target by more than method.sparsity_tolerance (the pruner's own comparison), and only
    there, every layer is offered every count its live blocks reach (`class_options`: the top b_s
    blocks of each block size s, ranked by score among the blocks of their size; at most 4 sizes) and
    the balancing is redone over those (`balanced_choice`, prune_cli/pruning/structure.py: within
    `total_bounds`, else within every total the pruner accepts). For its chosen count each layer then
    keeps the choice of the largest total score (`class_pick`): the count is decided as before, by the
    allocation and the total, the blocks by the scores. Where the prefixes meet the target the masks
    are the prefixes', exactly as before this widening. With every block live (a first pruning event,
    one scoring round) the counts offered are those the pre-run check counts, so a target it accepts
    is met; after an earlier event only the blocks it kept are live, so fewer totals are reachable
    (docs/allocation.md says exactly what holds)."""
    r, c = (int(v) for v in sctx.method.block_shape)
    scores = {n: s.detach().cpu() for n, s in scores.items()}  # the block tables are CPU tensors (GPU runs too)
    norm = sctx.method.group_norm
    plans, options, kept = {}, {}, {}
    for name, score in scores.items():
        blocks = block_view(score, r, c)
        grid = blocks.shape[:2]
        blocks = blocks.flatten(2)
        sizes = (~torch.isnan(blocks)).sum(-1).flatten()
        gscore = group_norm(blocks, norm, signed=sctx.signed).flatten()  # padding (NaN) and pruned (-inf) entries count 0
        key = torch.where(torch.isneginf(gscore), gscore, -gscore) if sctx.invert else gscore
        order = torch.sort(key, descending=True, stable=True).indices
        options[name] = torch.cat([torch.zeros(1, dtype=torch.long), sizes[order].cumsum(0)]).tolist()
        live = torch.where(torch.isfinite(key), sizes, torch.zeros_like(sizes))  # an already pruned block keeps nothing
        kept[name] = torch.cat([torch.zeros(1, dtype=torch.long), live[order].cumsum(0)]).tolist()
        plans[name] = (order, grid, key, sizes)

    classes = {}

    def wider() -> dict[str, list[int]]:
        for name, (order, _, key, sizes) in plans.items():
            classes[name] = size_classes(key, order, sizes)
        return {name: class_options(classes[name]) for name in plans}

    options, at = balanced_choice("block", options, counts, scores, sctx, wider, kept)
    out = {}
    for name, (order, grid, _, _) in plans.items():
        keep = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
        keep[class_pick(classes[name], options[name][at[name]]) if classes else order[: at[name]]] = True
        rows, cols = scores[name].shape[0], scores[name][0].numel()
        full = keep.view(grid).repeat_interleave(r, 0).repeat_interleave(c, 1)[:rows, :cols]
        out[name] = full.reshape(scores[name].shape).contiguous()
    return out
