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
and the balancing of reachable per-layer counts: each near its allocated count, the total within
method.sparsity_tolerance.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Collection, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from ..core.errors import ConfigError, PruneCliError
from ..models.graph import LayerGraph
from .registries import STRUCTURES

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- context and masks


@dataclass(frozen=True)
class StructureContext:
    method: Any  # the method's config dataclass (or a DictConfig when a score calls a structure on one layer)
    layers: LayerGraph  # every prunable layer of the model, forward order (prune_cli/models/graph.py)
    density: float  # target density of the selected weights
    invert: bool = False  # rank lowest scores first (the invert ablation)
    signed: bool = False  # the scores can be negative (Score.signed): groups rank by their signed sum


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


class ReachRefusal(ConfigError):
    """A target a structure's pre-run check (`check_density`) refuses at one pruning event, with the
    sparsities it reaches nearest that event's target (`nearest`), shown by `phrase` (their texts to 6
    digits -> the words) between `before` and `after`. Those are nearest for that event alone: the pre-run
    pass (prune_cli/run/prevalidate.py `check_event_reach`) names instead the sparsities whose every pruning
    event passes, and walks from one refused candidate to the next reachable one with them."""

    def __init__(self, value, before: str, nearest: list[float], after: str, phrase: Callable[[list[str]], str]):
        self.before, self.nearest, self.after, self.phrase = before, sorted(nearest), after, phrase
        super().__init__("sparsity", value, before + phrase([f"{v:.6f}" for v in self.nearest]) + after)


def nearest_phrase(shown: list[str], joiner: str = " and ") -> str:
    """The words naming the nearest sparsities a refusal suggests: "the nearest is X" for one value (a
    target beyond the last reachable total has only one neighbour), "the nearest are X and Y" for more,
    "(none)" where nothing is left to name."""
    if not shown:
        return "the nearest are (none)"
    return f"the nearest {'is' if len(shown) == 1 else 'are'} {joiner.join(shown)}"


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


def group_terms(values: torch.Tensor, norm: str, signed: bool = False) -> torch.Tensor:
    """What a group's score sums per entry: the score itself for signed scores (`Score.signed`), else
    |score| (l1) or score^2 (l2, whose sum's root is the norm); padding (NaN) and already pruned (-inf)
    entries give 0.

    Signed scores (GraSP's (H g) w, Wang, Zhang & Grosse, ICLR 2020; undecayed with score_abs=false)
    are first-order estimates of what removing a weight does, and such estimates add up: a group's
    signed sum is its estimated effect, so a group of strongly negative scores (the weights GraSP removes
    first) ranks lowest, where its |.| norm would rank it high and keep it. For scores >= 0 the signed
    sum is the l1 norm, so nothing changes for them. An l2 norm has no signed counterpart: refused
    before the run (`GroupNormOptions.check`)."""
    finite = torch.where(torch.isfinite(values), values, torch.zeros_like(values))
    if signed:
        if norm != "l1":
            raise PruneCliError(f"method.group_norm={norm} cannot rank signed scores; l1 ranks them by their signed sum")
        return finite
    return finite.abs() if norm == "l1" else finite.pow(2)


def group_norm(values: torch.Tensor, norm: str, dim: int = -1, signed: bool = False) -> torch.Tensor:
    """L1 or L2 norm of the scores in each group, or their signed sum for signed scores (`group_terms`);
    finite entries only, a fully pruned group = -inf."""
    v = group_terms(values, norm, signed).sum(dim)
    out = v if signed or norm == "l1" else v.sqrt()
    return torch.where(torch.isfinite(values).any(dim), out, torch.full_like(out, float("-inf")))


def block_view(values: torch.Tensor, r: int, c: int) -> torch.Tensor:
    """[R, C, r, c]: the r x c blocks of a layer's 2-D view [out, in * kernel] (block and bcr
    structures); edge blocks are padded with NaN, which `group_norm` and `group_terms` count as zero."""
    w2 = values.reshape(values.shape[0], -1)
    rows, cols = w2.shape
    padded = F.pad(w2, (0, -cols % c, 0, -rows % r), value=float("nan"))
    return padded.view(math.ceil(rows / r), r, math.ceil(cols / c), c).permute(0, 2, 1, 3)


def total_bounds(sizes: dict[str, int], counts: dict[str, int], density: float, tolerance: float) -> tuple[int, int]:
    """[lo, hi]: the kept totals the pruner accepts (pruner.check_masks: |achieved - reachable sparsity|
    <= method.sparsity_tolerance, reachable = 1 - round(d N) / N) that are also within the tolerance
    of the allocated total sum(counts); when those two windows do not meet (an allocation that does not
    promise the exact total), the window around the allocated total."""
    n = sum(sizes.values())
    reachable, allocated = round(n * density), sum(counts[name] for name in sizes)
    slack = math.floor(tolerance * n) if n else 0

    def refused(kept: int) -> bool:  # the pruner compares sparsities in floating point
        return abs((1.0 - kept / n) - (1.0 - reachable / n)) > tolerance

    while slack > 0 and (refused(reachable + slack) or refused(reachable - slack)):  # no slack it would refuse, either side
        slack -= 1
    lo, hi = max(allocated, reachable) - slack, min(allocated, reachable) + slack
    return (lo, hi) if lo <= hi else (allocated - slack, allocated + slack)


def method_tolerance(method: Any) -> float:
    """method.sparsity_tolerance, 0 where the config has none (a structure called on one layer)."""
    value = method.get("sparsity_tolerance") if isinstance(method, DictConfig) else getattr(method, "sparsity_tolerance", None)
    return float(value or 0.0)


FULL_WINDOW = 5_000  # options in all, up to which a window missing the total's bounds is widened to all at once
BITSET_SPAN = 4_000_000  # totals a window spans, up to which feasibility is decided by enumerating them (a bitset)
MAX_WINDOW = 200_000  # binaries beyond which a window that still misses the total's bounds is not grown further


def first_option(opts: list[int], count: int) -> int:
    """Index of the first option a layer may keep: not 0 when it was allocated weights (unless 0 is all it has)."""
    from bisect import bisect_right

    return min(bisect_right(opts, 0), len(opts) - 1) if count > 0 else 0


def balance_to_total(
    options: dict[str, list[int]],
    counts: dict[str, int],
    sizes: Optional[dict[str, int]] = None,
    bounds: Optional[tuple[int, int]] = None,
) -> dict[str, int]:
    """Per layer, the index into `options[name]` (the kept counts the structure can reach in that
    layer, ascending) of the count it keeps: the allocation decides each layer's density, the
    structure only rounds it to a reachable count, and the total stays within `bounds`.

    Structures that keep whole groups (whole blocks; BCR's kr rows x kc columns in every block, GRIM:
    Niu et al. 2021) reach only some counts per layer, so each layer's allocated count
    `counts[name]` (of `sizes[name]` weights; default: its largest option) is rounded to a reachable
    one, and these roundings may add up to a total the pruner refuses. Among the choices of one
    reachable count per layer whose total lies in `bounds` = [lo, hi] (default: exactly
    sum(counts); the structures pass `total_bounds`, the window method.sparsity_tolerance allows),
    the one chosen has (1) the smallest largest per-layer density deviation
    max_l |kept_l - counts_l| / sizes_l, then (2) the smallest sum of those deviations: every layer
    stays as near its allocated density as the total allows, instead of a few layers absorbing the
    whole difference. No layer allocated weights is emptied (its option 0 is not offered unless it
    has no other). Where no choice reaches the bounds, the total comes as close to them as it can
    (then the same two criteria), and the pruner's tolerance check refuses the run with the achieved
    sparsity.

    Solved exactly as a small mixed-integer program (scipy.optimize.milp, HiGHS: one binary per
    layer and option, one option per layer, the total's bounds, a variable t >= every layer's
    deviation; minimise t, then the sum with t fixed). Each layer offers only its options within a
    density radius rho of its allocation (and its nearest ones on either side), rho starting at the
    largest deviation any layer must take: the optimum over that window is the global one whenever it
    reaches the bounds with t <= rho (every option left out deviates more than rho); otherwise rho
    grows and the program is solved again (where no choice meets the bounds, until every option is
    offered or the window passes MAX_WINDOW options). HiGHS is deterministic: the same inputs give
    the same choice."""
    from bisect import bisect_left, bisect_right

    names = list(options)
    sizes = sizes or {name: max(max(options[name]), 1) for name in names}
    allocated = sum(counts[name] for name in names)
    lo, hi = bounds if bounds is not None else (allocated, allocated)
    first = {name: first_option(options[name], counts[name]) for name in names}

    def dev(name: str, j: int) -> float:
        return abs(options[name][j] - counts[name]) / sizes[name]

    def nearest(name: str) -> int:  # the option closest to the allocated count, the smaller of equals
        j = bisect_left(options[name], counts[name])
        return min((i for i in (j - 1, j) if first[name] <= i < len(options[name])), key=lambda i: dev(name, i), default=first[name])

    closest = {name: nearest(name) for name in names}
    if lo <= sum(options[name][closest[name]] for name in names) <= hi:
        return closest  # every layer at its nearest reachable count already meets the bounds: nothing deviates less
    rho = max((dev(name, closest[name]) for name in names), default=0.0)  # no choice deviates less
    while True:
        window = {}
        for name in names:
            opts, count, size = options[name], counts[name], sizes[name]
            a = bisect_left(opts, count - rho * size - 1e-9 * size)
            b = bisect_right(opts, count + rho * size + 1e-9 * size)
            c = closest[name]
            window[name] = range(max(first[name], min(a, c - 1)), min(len(opts), max(b, c + 2)))
        complete = all(len(window[name]) == len(options[name]) - first[name] for name in names)
        solved = _solve_window(options, counts, sizes, window, closest, lo, hi, dev)
        if solved is None and (complete or sum(len(w) for w in window.values()) > MAX_WINDOW):
            return _closest_total(options, counts, sizes, first, closest, lo, hi)
        excess, t, at = (1, math.inf, closest) if solved is None else (0, *solved)
        if excess == 0 and (complete or t <= rho * (1 + 1e-9) + 1e-12):
            return at
        if excess > 0 and sum(len(options[name]) for name in names) <= FULL_WINDOW:
            rho = math.inf  # the bounds are out of the window's reach: offer every option at once
            continue
        edges = [(name, j) for name in names for j in (window[name].start - 1, window[name].stop)]
        left_out = [dev(name, j) for name, j in edges if first[name] <= j < len(options[name])]
        rho = max(2 * rho, t, min(left_out, default=1.0))


def _closest_total(options, counts, sizes, first, closest, lo: int, hi: int) -> dict[str, int]:
    """The choice for bounds no choice meets: the reachable totals nearest them (the largest below lo,
    the smallest above hi, enumerated as the set bits of an integer, `reachable_totals`), and at the
    nearer one (either, when equally near) the choice `balance_to_total` makes for that exact total.
    Where the totals are too many to enumerate (a span over BITSET_SPAN), each layer keeps its nearest
    count. Minimising the excess as a mixed-integer program instead stalled HiGHS for minutes on a
    ResNet-20 with method.sparsity_tolerance=0 (an exact total 16x16 blocks cannot reach); the pruner
    refuses such a run anyway."""
    below, above = reachable_totals(options, first, lo, hi)
    if below is None and above is None:
        return closest
    near = [t for t in (below, above) if t is not None]
    gap = min(max(lo - t, t - hi) for t in near)
    best = None
    for total in (t for t in near if max(lo - t, t - hi) == gap):
        at = balance_to_total(options, counts, sizes, (total, total))
        devs = sorted((abs(options[n][at[n]] - counts[n]) / sizes[n] for n in options), reverse=True)
        key = (devs[0] if devs else 0.0, sum(devs))
        if best is None or key < best[0]:
            best = (key, at)
    return best[1]


def reachable_totals(options, first, lo: int, hi: int) -> tuple[Optional[int], Optional[int]]:
    """The largest total one option per layer (from `first[name]` on) reaches below lo and the smallest
    above hi (None where there is none), from the set of reachable totals kept as the bits of an
    integer; (None, None) where those totals span more than BITSET_SPAN."""
    found = reach_bits([options[name][first[name] :] for name in options])
    return (None, None) if found is None else bits_beside(*found, lo, hi)


def reach_bits(layer_options: list[list[int]]) -> Optional[tuple[int, int]]:
    """(low, bits): the totals one option per layer reaches are low + i for each set bit i of `bits`
    (options ascending); None where they span more than BITSET_SPAN."""
    low = sum(opts[0] for opts in layer_options)
    if sum(opts[-1] - opts[0] for opts in layer_options) > BITSET_SPAN:
        return None
    reach = 1
    for opts in layer_options:
        step = 0
        for v in opts:
            step |= reach << (v - opts[0])
        reach = step
    return low, reach


def bits_beside(low: int, reach: int, lo: int, hi: int) -> tuple[Optional[int], Optional[int]]:
    """Of the totals low + i (set bits i of `reach`): the largest below lo and the smallest above hi."""
    a = lo - low
    under = reach & ((1 << a) - 1) if a > 0 else 0
    b = max(hi - low + 1, 0)
    over = reach >> b
    below = low + under.bit_length() - 1 if under else None
    above = low + b + (over & -over).bit_length() - 1 if over else None
    return below, above


def residual_layers(model) -> set[str]:
    """The weights inside the model's residual sections: such a layer left empty makes its section add
    a constant to the stream (0, or a BatchNorm's shift), which the section's skip carries on, so the
    network stays connected: not a layer collapse."""
    return {n for section in model.residual_sections() for n in section} if hasattr(model, "residual_sections") else set()


def may_empty(model, selected: dict, method: DictConfig, density: float) -> tuple[bool, ...]:
    """Per selected layer, whether the pruner may leave it nothing at `density`: where the allocation gives
    it no weight (a score-based one such as global may give any layer none; one whose counts are a fact of
    the shapes, such as layerwise or ERK, gives a layer round(d n) = 0 only at an extreme sparsity; one whose
    `empties` hook names the layers it leaves none, such as region_bound, only those), and
    then only if that is no layer collapse (method.allow_collapse, or a layer inside a residual section,
    whose skip carries the stream on: pruner.check_collapse). A layer allocated weights keeps at least one
    block (bcr: one row x one column per block). Counting an empty layer as reachable let the pre-run pass
    (block and bcr `check_density`) accept targets only an emptied layer meets, which the pruner then
    refused after dense training (block, layerwise at 0.98 on a 16-32-32-3 MLP; block 4x4, region_bound at
    0.92 on a res_mlp of width 8, whose residual layers it counted as emptiable though region_bound gives each
    a weight there), and name such totals as the nearest ones (docs/allocation.md, "Before any work")."""
    from types import SimpleNamespace

    from .registries import ALLOCATIONS

    residual = residual_layers(model)
    accepted = [bool(method.allow_collapse) or name in residual for name in selected]
    allocation = ALLOCATIONS.get(method.allocation)
    if not any(accepted):
        return tuple(accepted)
    if not allocation.counts_from_shapes(method):
        emptied = allocation.empties(model, selected, method, density) if allocation.empties is not None else None
        return tuple(accepted) if emptied is None else tuple(ok and name in emptied for ok, name in zip(accepted, selected))
    meta = {n: torch.empty(p.shape, device="meta") for n, p in selected.items()}
    try:
        counts = allocation(meta, density, SimpleNamespace(model=model, method=method))
    except (PruneCliError, ConfigError):  # the allocation's own pre-run check names that problem
        return tuple(accepted)
    return tuple(ok and counts.get(name, 1) == 0 for ok, name in zip(accepted, selected))


def accepted_window(n: int, density: float, tolerance: float) -> tuple[int, int]:
    """[lo, hi]: the kept totals of n weights the pruner accepts at `density` (pruner.check_masks:
    |(1 - kept/n) - (1 - round(d n)/n)| <= method.sparsity_tolerance, in floating point, which may accept
    a count on one side of round(d n) and refuse the one as far on the other)."""
    target = round(n * density)

    def accepted(kept: int) -> bool:  # exactly the pruner's comparison, in floating point
        return abs((1.0 - kept / n) - (1.0 - target / n)) <= tolerance

    # the accepted counts are those within about tolerance * n of the target: start just outside that
    # span and step in (floating point decides the last count or two), not one count at a time from it
    slack = math.floor(tolerance * n) + 2
    lo, hi = max(target - slack, 0), min(target + slack, n)
    while lo < target and not accepted(lo):
        lo += 1
    while hi > target and not accepted(hi):
        hi -= 1
    return lo, hi


def check_reachable_sparsity(structure: str, reach: Optional[tuple[int, int]], n: int, density: float, method: Any) -> None:
    """Before the run (a structure's `check_density`): refuse a target that no kept total the structure
    reaches meets within method.sparsity_tolerance, by the pruner's own comparison (pruner.check_masks),
    naming the nearest reachable sparsities, instead of the pruner refusing it after dense training.
    `reach` = (low, bits) (`reach_bits`): the totals reachable on these n weights, a superset where the
    scores decide (a score-based allocation may empty a layer; at a later event, the blocks or shapes
    earlier events kept), so a target is refused only when no choice at all meets it. Not decided here,
    and left to the pruner, where the allocation does not promise the exact total (the pruner then only
    warns) or `reach` is None (totals spanning more than BITSET_SPAN)."""
    window = missed_window(reach, n, density, method)
    if window is None:
        return
    lo, hi = window
    low, bits = reach
    raise ReachRefusal(
        round(1.0 - density, 12),
        f"a sparsity that method.structure={structure} reaches within method.sparsity_tolerance={method.sparsity_tolerance} "
        f"with method.block_shape={list(method.block_shape)} on these layers (known from their shapes before training): ",
        [1.0 - t / n for t in bits_beside(low, bits, lo, hi) if t is not None],
        "; or raise method.sparsity_tolerance",
        nearest_phrase,
    )


def missed_window(reach: Optional[tuple[int, int]], n: int, density: float, method: Any) -> Optional[tuple[int, int]]:
    """[lo, hi], the kept totals the pruner accepts at `density` (`accepted_window`), where no total of
    `reach` lies in it (`check_reachable_sparsity` refuses the target); None where one does or it is not
    decided here."""
    from .registries import ALLOCATIONS

    if reach is None or not n or not ALLOCATIONS.get(method.allocation).exact_total(method):
        return None
    lo, hi = accepted_window(n, density, float(method.sparsity_tolerance))
    low, bits = reach
    first = max(lo, low)
    if hi >= first and (bits >> (first - low)) & ((1 << (hi - first + 1)) - 1):
        return None
    return lo, hi


_KEPT_ONLY = contextvars.ContextVar("kept_only", default=False)


@contextlib.contextmanager
def every_layer_kept():
    """Within it, `check_structure_reach` does not ask an allocation's `empties` hook and counts only the
    totals met with every layer keeping something: those are met whatever the hook would say (emptiable
    layers only add totals), so a target passing so passes the full check. The pre-run pass's search for
    suggestions (prune_cli/run/prevalidate.py `_passing_neighbours`) checks dozens of targets, each of
    which cost region_bound's density search (about 5 s on the default res_mlp: a refused gradual run took
    83 s before the search used this, 57 s of it there); it may miss a target only an emptied layer meets."""
    token = _KEPT_ONLY.set(True)
    try:
        yield
    finally:
        _KEPT_ONLY.reset(token)


def check_structure_reach(structure: str, reach_of: Callable, model, selected: dict, method: Any, density: float) -> None:
    """`check_reachable_sparsity` of `reach_of(empty)`, the totals a block structure reaches on the selected
    layers when those `empty` says may keep nothing (`may_empty`). An allocation's `empties` hook can take
    seconds (region_bound's density search on a wide model, at every pruning event of a schedule), so it is
    asked only where its answer decides: a target met with every layer keeping something is met whatever
    it empties (emptiable layers only add totals)."""
    from .registries import ALLOCATIONS

    n = sum(p.numel() for p in selected.values())
    allocation = ALLOCATIONS.get(method.allocation)
    if allocation.empties is not None and not allocation.counts_from_shapes(method):
        kept = reach_of((False,) * len(selected))
        if missed_window(kept, n, density, method) is None:
            return
        if _KEPT_ONLY.get():
            check_reachable_sparsity(structure, kept, n, density, method)
            return
    check_reachable_sparsity(structure, reach_of(may_empty(model, selected, method, density)), n, density, method)


def _solve_window(options, counts, sizes, window, closest, lo: int, hi: int, dev):
    """(largest deviation, {layer: option index}) of the best choice among the options in `window`
    whose total meets the bounds, in lexicographic stages: the smallest largest deviation t (bisection
    over the deviations on offer, each a feasibility question), then the smallest sum of deviations
    with every layer within t (one mixed-integer program); None where no choice in the window meets
    the bounds (balance_to_total then widens the window, or takes `_closest_total`)."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    names = list(window)
    layer, index, value, devs = [], [], [], []
    base = sum(options[name][closest[name]] for name in names)  # totals relative to the closest choice: small coefficients
    for li, name in enumerate(names):
        for j in window[name]:
            layer.append(li)
            index.append(j)
            value.append(options[name][j] - options[name][closest[name]])
            devs.append(dev(name, j))
    nx, nl = len(index), len(names)
    t_col, e_col = nx, nx + 1
    cols = np.arange(nx)
    rows = [np.array(layer), np.full(nx, nl), np.full(nx, nl + 1), nl + 2 + np.array(layer)]
    rows += [np.array([nl, nl + 1]), nl + 2 + np.arange(nl)]
    data = [np.ones(nx), np.array(value, float), np.array(value, float), np.array(devs)]
    data += [np.array([1.0, -1.0]), -np.ones(nl)]
    colidx = [cols, cols, cols, cols, np.array([e_col, e_col]), np.full(nl, t_col)]
    a = coo_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(colidx))), shape=(2 * nl + 2, nx + 2)).tocsr()
    lower = np.concatenate([np.ones(nl), [lo - base, -np.inf], np.full(nl, -np.inf)])
    upper = np.concatenate([np.ones(nl), [np.inf, hi - base], np.zeros(nl)])
    constraints = LinearConstraint(a, lower, upper)
    integrality = np.concatenate([np.ones(nx), [0, 0]])
    opts = {"disp": False, "mip_rel_gap": 0.0}

    def solve(objective, t_max: float, e_max: float, allowed=None):
        c = np.zeros(nx + 2)
        for col, w in objective:
            c[col] += w
        x_max = np.ones(nx) if allowed is None else allowed.astype(float)
        bounds = Bounds(np.zeros(nx + 2), np.concatenate([x_max, [t_max, e_max]]))
        return milp(c, integrality=integrality, bounds=bounds, constraints=constraints, options=opts)

    dev_array, value_array = np.array(devs), np.array(value, float)
    starts = np.cumsum([0] + [len(window[name]) for name in names])

    def within(t: float):
        """The options deviating at most t, where some choice of them meets the bounds; else None. A
        layer's options within t of its count are consecutive, so the reachable totals run from the sum
        of the smallest to the sum of the largest in steps no larger than the largest gap between
        neighbours: when that gap fits in the bounds, some total meets them. Otherwise every reachable
        total is enumerated (a bitset) where they span at most BITSET_SPAN, else a program decides."""
        allowed = dev_array <= t
        low = high = gap = 0.0
        for i in range(nl):
            v = value_array[starts[i] : starts[i + 1]][allowed[starts[i] : starts[i + 1]]]
            if not len(v):
                return None
            low, high, gap = low + v[0], high + v[-1], max(gap, float(np.diff(v).max(initial=0.0)))
        if high < lo - base or low > hi - base:
            return None
        if gap <= hi - lo + 1:
            return allowed
        if high - low <= BITSET_SPAN:  # every reachable total, as the set bits of an integer
            reach = 1
            for i in range(nl):
                v = value_array[starts[i] : starts[i + 1]][allowed[starts[i] : starts[i + 1]]]
                step = 0
                for shift in (v - v[0]).astype(np.int64).tolist():
                    step |= reach << shift
                reach = step
            a, b = max(int(lo - base - low), 0), int(hi - base - low)
            return allowed if reach >> a & ((1 << (b - a + 1)) - 1) else None
        return allowed if solve([], np.inf, 0.0, allowed).success else None

    levels = np.unique(dev_array)
    levels = levels[levels >= max(dev_array[starts[i] : starts[i + 1]].min() for i in range(nl))]
    if within(levels[-1]) is None:
        return None
    a, b = 0, len(levels) - 1  # the smallest largest deviation, by bisection over the deviations on offer
    while a < b:
        m = (a + b) // 2
        a, b = (a, m) if within(levels[m]) is not None else (m + 1, b)
    t = float(levels[a])
    res = solve([(k, d) for k, d in enumerate(devs)], t * (1 + 1e-9) + 1e-12, 0.5)
    x = res.x[:nx]
    at, start = {}, 0
    for name in names:  # the window's options are laid out layer by layer
        stop = start + len(window[name])
        at[name] = index[start + int(np.argmax(x[start:stop]))]
        start = stop
    return max(dev(name, at[name]) for name in names), at


def balanced_choice(structure: str, options, counts, scores, sctx, wider: Optional[Callable[[], dict]] = None, kept=None):
    """(options, {layer: index into options[layer]}): `balance_to_total` within the bounds
    method.sparsity_tolerance allows (`total_bounds`), and `report_balance`'s warnings where there is
    more than one layer to balance.

    `wider` (block: every count of the top blocks of each block size, docs/allocation.md): where the
    allocation promises round(d N) (`promises_total`) and the
    choice among `options` misses the target by more than method.sparsity_tolerance (the pruner's own
    comparison, `accepted_window`), and only there, the options it returns (each layer's a superset of
    its own) are balanced instead and returned: within `total_bounds` first, and where that choice
    misses the target too, within every total the pruner accepts (`accepted_window`; `total_bounds`
    aims at the allocated total where it is more than the tolerance from round(d N), layerwise's
    per-layer roundings, or drops a count the floating-point comparison accepts on one side only). A
    choice that meets the target is kept as it is, so what met it before is unchanged. `kept`: what
    each of `options` really keeps where that differs (block's top blocks of the overall order count
    the blocks an earlier event pruned, which keep nothing), so that the target is judged by it."""
    sizes = {name: s.numel() for name, s in scores.items()}
    tolerance = method_tolerance(sctx.method)
    bounds = total_bounds(sizes, counts, sctx.density, tolerance)
    at = balance_to_total(options, counts, sizes, bounds)
    n = sum(sizes.values())
    if wider is not None and n and promises_total(sctx.method):
        window = accepted_window(n, sctx.density, tolerance)

        def missed(opts, at) -> bool:
            return not window[0] <= sum(opts[name][at[name]] for name in opts) <= window[1]

        if missed(kept or options, at):
            options = wider()
            at = balance_to_total(options, counts, sizes, bounds)
            if missed(options, at):
                bounds = window  # what the choice aims at now, and what the warnings speak of
                at = balance_to_total(options, counts, sizes, bounds)
    if len(scores) > 1:
        report_balance(structure, options, at, counts, sizes, bounds, tolerance)
    return options, at


def promises_total(method) -> bool:
    """Whether the run's allocation promises round(d N) in all (`exact_total`), so that a choice missing it is
    one the pruner refuses: `balanced_choice` widens only then. uniform_plus with faithful_uniform_plus=true
    keeps its own total (its pruner only warns), and the widened choice would move its layers to round(d N)."""
    from .registries import ALLOCATIONS

    name = method.get("allocation") if isinstance(method, DictConfig) else getattr(method, "allocation", None)
    return name is None or name not in ALLOCATIONS.names() or bool(ALLOCATIONS.get(name).exact_total(method))


def report_balance(structure: str, options, at, counts, sizes, bounds: tuple[int, int], tolerance: float) -> None:
    """Log once (a warning) the layers `balance_to_total` moved past their nearest reachable counts
    (the two that bracket the allocated count) and more than method.sparsity_tolerance from their
    allocated density; and, where no choice puts the total within the tolerance (the pruner then
    refuses the run), the nearest sparsities the structure reaches on either side. Rounding a layer to
    a neighbouring reachable count is what the structure cannot avoid (BCR 4x4 reaches densities in
    steps of 1/16) and is not reported; moving further is a choice made for the total."""
    from bisect import bisect_left, bisect_right

    lo, hi = bounds
    total = sum(options[name][at[name]] for name in options)
    within = lo <= total <= hi
    far = []
    for name, opts in options.items():
        kept, count = opts[at[name]], counts[name]
        below, above = opts[max(bisect_right(opts, count) - 1, 0)], opts[min(bisect_left(opts, count), len(opts) - 1)]
        if not below <= kept <= above and abs(kept - count) / sizes[name] > tolerance:
            far.append(f"{name} allocated {count / sizes[name]:.4f}, kept {kept / sizes[name]:.4f}")
    if far:
        log.warning(
            "method.structure=%s moves %d layer(s) past their nearest reachable densities and more than "
            "method.sparsity_tolerance=%g from their allocation, %s: %s. A sparsity whose per-layer densities the "
            "structure reaches, another method.block_shape or a larger method.sparsity_tolerance keeps the layers "
            "nearer their allocation.",
            structure,
            len(far),
            tolerance,
            "to keep the total within the tolerance" if within else "to bring the total as close to the target as it gets",
            "; ".join(far),
        )
    if not within:
        n = sum(sizes.values())
        near = [1.0 - t / n for t in reachable_totals_beside(options, counts, bounds) if t is not None]
        log.warning(
            "method.structure=%s reaches no total within method.sparsity_tolerance=%g of the target (%d to %d kept "
            "weights of %d); the nearest sparsities it reaches with the layers' reachable counts: %s",
            structure,
            tolerance,
            lo,
            hi,
            n,
            " and ".join(f"{v:.6f}" for v in sorted(near)) or "(too many options to search)",
        )


def reachable_totals_beside(options, counts, bounds: tuple[int, int]) -> tuple[Optional[int], Optional[int]]:
    """The largest reachable total below bounds[0] and the smallest above bounds[1] (one option per
    layer, no layer allocated weights emptied; None where there is none or the totals are too many to
    enumerate: `reachable_totals`)."""
    first = {name: first_option(options[name], counts[name]) for name in options}
    return reachable_totals(options, first, bounds[0], bounds[1])


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
    # pre-run pass at the pruning events' targets (prune_cli/run/prevalidate.py check_event_reach): the
    # kept count of a structure such as channel is a fact of the layer shapes; at a later event of block, bcr
    # or channel_group, which keeps subsets or sub-shapes of earlier choices, a necessary condition.
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
        """One of l1, l2; and l1 where the method's scores can be negative (`Score.signed`, `group_terms`):
        an l2 norm would rank a group of strongly negative scores (GraSP's first removals) high."""
        from ..core.checks import check, choice
        from .registries import SCORES

        choice(cfg, f"{key}.group_norm", {"l1", "l2"})
        method = OmegaConf.select(cfg, key)
        if method.group_norm == "l2" and method.score in SCORES and SCORES.get(method.score).signed(method):
            check(
                False,
                f"{key}.group_norm",
                "l2",
                f"l1 with method.score={method.score}, whose scores can be negative: l1 ranks each unit, group or "
                "block by the signed sum of its scores (its estimated effect), while an l2 norm would rank a group "
                "of strongly negative scores high and keep it",
            )


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
