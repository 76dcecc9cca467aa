"""`method.structure=channel_group`: coupled channel pruning through residual joins (Fang et al.,
"DepGraph: Towards Any Structural Pruning", CVPR 2023; docs/speedup.md).

The unit of pruning is a channel group: one channel of `channel_flow` (prune_cli/models/graph.py),
with everything it lives in. A chain channel is one output unit of a layer (its weight row, its
BatchNorm entry) and the matching input columns of every layer reading it. A residual channel is a
channel that additions tie together: in a ResNet, channel c of the stem, of every conv2 of the
stage and of the sums between them, carried on by the option-A shortcuts into later stages; its
group is every producer's row, every BatchNorm entry and every reader's input columns, in all
stages. Removing a group zeroes all of its producers' rows and all of its readers' columns, so no
layer reads the channel afterwards and `compact()` (prune_cli/models/compact.py) removes it from
every tensor exactly: the compact model's parameters are the masked model's nonzero weights.

BatchNorm. Masks cover Linear/Conv weights only; a pruned channel's BatchNorm still adds its shift
(beta - gamma * mean / std) to the zero output, and that constant goes through the ReLU and the
joins. It changes nothing because every layer that could read it has its input columns zeroed;
compaction then slices the BatchNorm entry away with the channel (a channel is removed exactly
when no layer reads it).

Scores. A group's score aggregates the method's per-weight scores over every weight it touches
(its producers' rows and its readers' columns; a weight at the crossing of two groups counts in
both, one lying in the row and the column of the same group once): the sum of |score| for
`method.group_norm=l1`, of score^2 for `l2`; where the scores can be negative (GraSP's (H g) w,
Wang, Zhang & Grosse, ICLR 2020), the signed sum of the scores (`group_terms`,
prune_cli/pruning/structure.py: a group of strongly negative scores ranks low, not high as its
|.| norm would; l2 is refused). Already pruned weights (-inf) add nothing; a group
with no weight left ranks below every other.

Selection, by allocation (both end at the kept weight count closest to the allocation's total;
ties keep more):
- `layerwise`: every layer keeps the same fraction q of the channels it introduces (a chain
  layer's outputs; for a residual group, the stem its stage-1 channels and the first conv2 of each
  later stage that stage's new channels), the ones with the largest summed scores; q as for
  `method.structure=channel`. The channels of one such scope touch the same number of weights, so
  the largest sums keep the most score.
- `global`: all prunable groups in one ranking by their sum divided by the number of weights they
  touch (mean |score|, score^2 or signed score per weight): groups cost different numbers of weights (a
  residual channel spans ten layers of ResNet-20, a chain channel two), and removing the lowest
  score per weight first is the greedy that keeps the most score for the weight budget. Where that
  prefix's total misses every total the pruner accepts (within method.sparsity_tolerance) at a dense
  event of one scoring round, each scope keeps instead its best channels by the same key, in
  per-scope counts that meet the target where some do (`_reaching_keep`): the kept count of a dense
  event depends only on those counts (`scope_form`), so a target the pre-run check accepts is met
  there, but for the exceptions `_check_global_density` names (docs/allocation.md, Structures,
  "channel"; docs/speedup.md, "Channel groups").
Before the run, a target no choice meets within method.sparsity_tolerance is refused for both
(`check_channel_group_density`; for `global` at later events a necessary condition, docs/speedup.md).
Other allocations fix per-layer counts that coupled groups cannot follow: refused before the run.

What is never pruned: channels that reach the network output (the classifier's rows), channels
touching an excluded layer (`method.exclude`, `exclude_first`, `exclude_classifier`: its weights may
not be zeroed, so the channel could not go from the compact model), and input channels of the
network. Every selected layer keeps at least one of its output and one of its input channels (the
best-scored one), so the network stays connected. Models whose channels `channel_flow` cannot
follow (untraceable, concatenations, grouped convolutions) are refused before the run.
"""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch
from omegaconf import DictConfig

from ...core.checks import check
from ...core.errors import ConfigError, PruneCliError
from ...models.graph import ChannelFlow, ChannelFlowError, channel_flow
from ..structure import (
    GroupNormOptions,
    ReachRefusal,
    StructureContext,
    promises_total,
    accepted_window,
    group_terms,
    method_tolerance,
    nearest_phrase,
    register_structure,
)

log = logging.getLogger(__name__)

ALLOCATIONS = ("global", "layerwise")
CPU = torch.device("cpu")  # group tables stay on the CPU, also under the pre-run pass's meta-device default


@dataclass
class GroupLayer:
    """A selected layer in channel-group terms: the group (dense index) of each output row and of
    each input channel (None: it reads the network input, whose channels are never pruned)."""

    name: str  # parameter name
    shape: torch.Size
    rows: torch.Tensor  # [out] long
    cols: Optional[torch.Tensor]  # [input channels] long
    per: int  # input columns per channel (> 1 after a flatten)


@dataclass
class ChannelGroups:
    """The channel groups of a model for a set of selected layers."""

    ids: list[int]  # channel_flow's canonical id of each group (dense index)
    prunable: torch.Tensor  # [groups] bool
    scope: torch.Tensor  # [groups] long: index of the layer that introduces the channel (-1: none)
    layers: list[GroupLayer]

    def __len__(self) -> int:
        return len(self.ids)


def channel_groups(flow: ChannelFlow, shapes: dict[str, torch.Size]) -> ChannelGroups:
    """Channel groups of the layers `shapes` (parameter name -> weight shape) given the model's
    channel flow; the flow's other layers (excluded from pruning) fix the channels they touch."""
    index: dict[int, int] = {}
    scope: list[int] = []
    for s, ids in enumerate(flow.produces.values()):
        for i in ids:
            if i not in index:
                index[i] = len(index)
                scope.append(s)
    for source in flow.reads.values():
        for i in source[0] if source is not None else []:
            if i not in index:  # read but produced by no layer: never pruned
                index[i] = len(index)
                scope.append(-1)
    fixed = set(flow.pinned)
    layers = []
    for module in dict.fromkeys([*flow.produces, *flow.reads]):
        name = f"{module}.weight"
        produced = flow.produces.get(module, [])
        source = flow.reads.get(module)
        if name not in shapes:
            fixed.update(produced)
            fixed.update(source[0] if source is not None else [])
            continue
        rows = torch.tensor([index[i] for i in produced], dtype=torch.long, device=CPU)
        cols = None if source is None else torch.tensor([index[i] for i in source[0]], dtype=torch.long, device=CPU)
        layers.append(GroupLayer(name, shapes[name], rows, cols, 1 if source is None else source[1]))
    ids = list(index)
    scope_t = torch.tensor(scope, dtype=torch.long, device=CPU)
    prunable = torch.tensor([i not in fixed for i in ids], dtype=torch.bool, device=CPU) & (scope_t >= 0)
    return ChannelGroups(ids, prunable, scope_t, layers)


def _per_channel(t: torch.Tensor, layer: GroupLayer) -> torch.Tensor:
    """[out, input channels]: `t` (weight-shaped) summed over kernel positions and the columns of
    a flattened channel."""
    m = t.reshape(t.shape[0], t.shape[1], -1).sum(-1)
    if layer.cols is not None and layer.per > 1:
        m = m.reshape(t.shape[0], len(layer.cols), layer.per).sum(-1)
    return m


@dataclass
class _Scored:
    layer: GroupLayer
    value: torch.Tensor  # [out, input channels] float64: summed |score|, score^2 or the signed score
    alive: torch.Tensor  # [out, input channels] float64: weights not yet pruned


def group_sums(
    groups: ChannelGroups, scores: dict[str, torch.Tensor], norm: str, signed: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Per group: the sum of |score| (l1) or score^2 (l2) over every weight it touches, or of the
    score itself where scores can be negative (`signed`, `group_terms`), and the number of those
    weights still alive (finite score); and the per-layer tables for counting."""
    total = torch.zeros(len(groups), dtype=torch.float64)
    count = torch.zeros(len(groups), dtype=torch.float64)
    scored = []
    for layer in groups.layers:
        s = scores[layer.name].detach().double().cpu()
        finite = torch.isfinite(s)
        v = group_terms(s, norm, signed)
        entry = _Scored(layer, _per_channel(v, layer), _per_channel(finite.double(), layer))
        scored.append(entry)
        for acc, table in ((total, entry.value), (count, entry.alive)):
            acc.index_add_(0, layer.rows, table.sum(1))
            if layer.cols is not None:
                acc.index_add_(0, layer.cols, table.sum(0))
                same = layer.rows[:, None] == layer.cols[None, :]  # row and column of one group: once
                acc.index_add_(0, layer.rows, -(table * same).sum(1))
    return total, count, scored


def kept_weights(keep: torch.Tensor, scored: list) -> int:
    """Alive weights the masks of the kept groups `keep` ([groups] bool) leave."""
    total = 0.0
    for e in scored:
        r = keep[e.layer.rows].double()
        c = keep[e.layer.cols].double() if e.layer.cols is not None else torch.ones(e.alive.shape[1], dtype=torch.float64)
        total += float(r @ e.alive @ c)
    return round(total)


def group_masks(keep: torch.Tensor, groups: ChannelGroups) -> dict[str, torch.Tensor]:
    """Weight masks: the rows of removed output groups and the columns of removed input groups are zero."""
    out = {}
    for layer in groups.layers:
        extra = [1] * (len(layer.shape) - 2)
        rows = keep[layer.rows].view(-1, 1, *extra)
        if layer.cols is None:
            cols = torch.ones(layer.shape[1], dtype=torch.bool)
        else:
            cols = keep[layer.cols].repeat_interleave(layer.per)
        out[layer.name] = (rows & cols.view(1, -1, *extra)).expand(layer.shape).contiguous()
    return out


def _ranked(candidates: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Dense indices of `candidates` (bool) by decreasing key, ties by index (stable)."""
    idx = torch.nonzero(candidates).flatten()
    return idx[torch.sort(key[idx], descending=True, stable=True).indices]


def protected(groups: ChannelGroups, key: torch.Tensor) -> torch.Tensor:
    """[groups] bool: for every selected layer whose output (or input) channels are all prunable,
    the best-keyed one, so that no layer loses all its outputs or inputs."""
    keep = torch.zeros(len(groups), dtype=torch.bool)
    for layer in groups.layers:
        for side in (layer.rows, layer.cols):
            if side is None or len(side) == 0 or not bool(groups.prunable[side].all()):
                continue
            keep[_ranked(torch.zeros(len(groups), dtype=torch.bool).index_fill_(0, side, True), key)[0]] = True
    return keep


def closest_level(levels: int, kept_at: Callable[[int], int], target: int) -> int:
    """The level in 0..levels-1 whose kept count (non-decreasing in the level) is closest to
    `target`; ties go to the highest level (more kept). Binary search: O(log levels) counts."""
    cache: dict[int, int] = {}

    def f(i: int) -> int:
        if i not in cache:
            cache[i] = kept_at(i)
        return cache[i]

    def first_above(value: int, strict: bool) -> int:  # first level with f > value (>= unless strict)
        lo, hi = 0, levels
        while lo < hi:
            mid = (lo + hi) // 2
            if f(mid) > value or (not strict and f(mid) == value):
                hi = mid
            else:
                lo = mid + 1
        return lo

    at = first_above(target, strict=False)
    options = [i for i in (at - 1, at) if 0 <= i < levels]
    best = min(options, key=lambda i: (abs(f(i) - target), -i))
    return first_above(f(best), strict=True) - 1  # the highest level with the same count


def select(
    groups: ChannelGroups,
    total: torch.Tensor,
    count: torch.Tensor,
    scored: list,
    target: int,
    mode: str,
    invert: bool,
    window: Optional[tuple[int, int]] = None,
):
    """[groups] bool: the kept groups (see the module docstring for the two modes). `window` (`global`
    only; `_widening_window`): the kept totals the pruner accepts, where a prefix of the ranking missing
    them is to be replaced by per-scope counts that meet them (`_reaching_keep`)."""
    key = total / count.clamp(min=1) if mode == "global" else total.clone()
    key = torch.where(count > 0, key, torch.full_like(key, float("-inf")))
    if invert:
        key = torch.where(torch.isneginf(key), key, -key)
    base = ~groups.prunable | protected(groups, key)
    if mode == "global":
        order = _ranked(groups.prunable & ~base, key)

        def keep_at(level: int) -> torch.Tensor:
            keep = base.clone()
            keep[order[:level]] = True
            return keep

        keep = keep_at(closest_level(len(order) + 1, lambda i: kept_weights(keep_at(i), scored), target))
        if window is not None and not window[0] <= kept_weights(keep, scored) <= window[1]:
            keep = _reaching_keep(groups, key, base, keep, scored, window)
        return keep
    fractions, keep_q = layerwise_levels(groups, key, base)
    level = closest_level(len(fractions), lambda i: kept_weights(keep_q(fractions[i]), scored), target)
    return keep_q(fractions[level])


def layerwise_levels(groups: ChannelGroups, key: torch.Tensor, base: torch.Tensor) -> tuple[list[float], Callable]:
    """`layerwise`'s choices: the fractions q every scope can keep (j / its channels), and the kept
    groups at a fraction (`base` and each scope's round(q x channels) best-keyed channels)."""
    scopes = [_ranked(groups.prunable & (groups.scope == s), key) for s in torch.unique(groups.scope[groups.prunable]).tolist()]
    fractions = sorted({j / len(o) for o in scopes for j in range(len(o) + 1)} | {0.0, 1.0})

    def keep_q(q: float) -> torch.Tensor:
        keep = base.clone()
        for o in scopes:
            keep[o[: round(q * len(o))]] = True
        return keep

    return fractions, keep_q


# ----------------------------------------------------------------------------- the plugin


def check_channel_group(cfg: DictConfig) -> None:
    check(
        cfg.method.allocation in ALLOCATIONS,
        "method.allocation",
        cfg.method.allocation,
        "global or layerwise with method.structure=channel_group (a channel group spans several layers, "
        "so per-layer counts of other allocations cannot be followed)",
    )


def _flow_or_refuse(flow: Callable[[], ChannelFlow]) -> ChannelFlow:
    """`flow()`, the model's channel flow, or the refusal naming what torch.fx could not follow."""
    try:
        return flow()
    except ChannelFlowError as err:
        raise ConfigError(
            "method.structure",
            "channel_group",
            "models whose channels torch.fx can follow through every operation; use method.structure=block, bcr or "
            "unstructured for this model (or channel where its layers form a chain without residual joins)",
            f"Here: {err}.",
        ) from err


def check_channel_group_model(model, selected: dict, method) -> None:
    """The model's channels can be followed, and some channel can be pruned."""
    groups = channel_groups(_flow_or_refuse(lambda: channel_flow(model)), {n: p.shape for n, p in selected.items()})
    if not bool(groups.prunable.any()):
        raise ConfigError(
            "method.structure",
            "channel_group",
            "a model and exclusions that leave some channel prunable: every channel here reaches the "
            "network output or touches an excluded layer (method.exclude, method.exclude_first, "
            "method.exclude_classifier)",
        )


def check_channel_group_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """Before the run: a target no choice of channel groups meets within method.sparsity_tolerance is
    refused here, with the reachable sparsities on either side, instead of by the pruner after dense
    training. `layerwise` (`_check_layerwise_density`) and `global` (`_check_global_density`) differ in
    which choices they can make."""
    if method.allocation == "layerwise":
        _check_layerwise_density(model, selected, method, density)
    elif method.allocation == "global":
        _check_global_density(model, selected, method, density)


def _check_layerwise_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """`layerwise`: with one pruning event on a dense model the kept weight count
    of each fraction q is a fact of the layer shapes (the channels of one scope touch the same number
    of weights; the keep-one rule keeps a scope's best channel, which q > 0 keeps anyway)."""
    from types import SimpleNamespace

    from ..registries import ALLOCATIONS

    groups = channel_groups(_flow_or_refuse(lambda: channel_flow(model)), {n: p.shape for n, p in selected.items()})
    ones = {n: torch.ones(p.shape, device=CPU) for n, p in selected.items()}  # equal scores: ties by index
    total, count, scored = group_sums(groups, ones, method.group_norm)
    meta = {n: torch.empty(p.shape, device="meta") for n, p in selected.items()}
    target = sum(ALLOCATIONS.get("layerwise")(meta, density, SimpleNamespace(model=model, method=method)).values())
    n = sum(int(p.numel()) for p in selected.values())
    keep = select(groups, total, count, scored, target, "layerwise", invert=False)
    achieved, reachable = 1.0 - kept_weights(keep, scored) / n, 1.0 - round(density * n) / n
    if abs(achieved - reachable) <= float(method.sparsity_tolerance):
        return
    fractions, keep_q = layerwise_levels(groups, total, ~groups.prunable | protected(groups, total))
    options = sorted({1.0 - kept_weights(keep_q(q), scored) / n for q in fractions})
    below = [s for s in options if s < 1.0 - density]
    above = [s for s in options if s > 1.0 - density]
    raise ReachRefusal(
        round(1.0 - density, 12),
        f"a sparsity that method.structure=channel_group with method.allocation=layerwise reaches within "
        f"method.sparsity_tolerance={method.sparsity_tolerance} on these layers (every scope keeps the same fraction "
        f"of its channels, with every row and column they touch, and every layer at least one; here it would reach "
        f"{achieved:.6f}): ",
        below[-1:] + above[:1],
        "; or raise method.sparsity_tolerance",
        nearest_phrase,
    )


# Work, in 64-bit words of shifted bitsets (states x choices x totals / 64), up to which `scope_count_reach`
# enumerates the totals of per-scope channel counts, and words of bitsets held at once (16 M: 128 MB);
# beyond either, `global`'s reach is left to the pruner. An MLP of widths [256, 256] on 784 inputs takes
# 2.8e8 (256 x 257 shifts of 268,800-bit sets, 0.2 s); ResNet-20, whose stream scopes stay in the state
# while its inner scopes are added, 7.4e9 words and 1.1e8 held: not checked.
GLOBAL_REACH_WORDS = 1_000_000_000
GLOBAL_REACH_HELD = 16_000_000


@dataclass
class ScopeForm:
    """The kept weight count of a dense pruning event as a function of k_s, the number of channels each
    scope keeps: const + sum_s linear[s] k_s + sum_{s <= t} quad[s, t] k_s k_t (`scope_form`)."""

    sizes: list[int]  # prunable channels of each scope (scope order)
    least: list[int]  # the fewest each scope keeps (1 where the keep-one rule applies to it alone)
    const: int
    linear: list[int]
    quad: dict[tuple[int, int], int]  # (s, t), s <= t, nonzero


def scope_form(groups: ChannelGroups, selected: dict) -> Optional[ScopeForm]:
    """`ScopeForm` of the selected layers, or None where the kept count is not a function of the per-scope
    counts alone. At a dense event every entry of a layer's [out, input channels] table (`_per_channel`)
    stands for the same number w of weights (kernel positions x columns per channel), and `kept_weights` is
    sum over layers of w x (kept rows) x (kept input channels); a side's kept count is its fixed channels
    plus, per scope, the multiplicity with which the side holds that scope's channels times k_s, provided
    every prunable channel of the scope appears there equally often (so which ones are kept does not
    matter). That is checked here for every layer and side, not assumed: where one side holds some of a
    scope's channels and not others, None. The keep-one rule (`protected`) keeps one channel of a side
    whose channels are all prunable: where those are one scope's, that scope keeps at least one; a side
    spanning several scopes (a ResNet's stage-2 stream: stage-1 and stage-2 channels) needs one among them,
    which is not enforced (a superset of the choices)."""
    prunable = groups.prunable
    scopes = torch.unique(groups.scope[prunable]).tolist()
    position = {s: i for i, s in enumerate(scopes)}
    sizes = [int((prunable & (groups.scope == s)).sum()) for s in scopes]
    least = [0] * len(scopes)
    const, linear, quad = 0, [0] * len(scopes), {}

    def side(ids: torch.Tensor):  # (fixed channels, {scope position: multiplicity}) or None
        fixed = int((~prunable[ids]).sum())
        mult = torch.bincount(ids[prunable[ids]], minlength=len(groups))
        coef = {}
        for s in scopes:
            m = mult[prunable & (groups.scope == s)]
            if bool((m != m[0]).any()):
                return None
            if int(m[0]):
                coef[position[s]] = int(m[0])
        if len(ids) and fixed == 0 and len(coef) == 1:
            (only,) = coef
            least[only] = 1
        return fixed, coef

    for layer in groups.layers:
        shape = tuple(layer.shape)
        if len(shape) < 2 or len(layer.rows) != shape[0] or (layer.cols is not None and len(layer.cols) * layer.per != shape[1]):
            return None
        weight = math.prod(shape[2:]) * layer.per  # weights per [row, input channel] entry (`_per_channel`)
        rows = side(layer.rows)
        cols = (shape[1], {}) if layer.cols is None else side(layer.cols)
        if rows is None or cols is None:
            return None
        (r0, rc), (c0, cc) = rows, cols
        const += weight * r0 * c0
        for s, m in rc.items():
            linear[s] += weight * m * c0
        for t, m in cc.items():
            linear[t] += weight * m * r0
        for s, m in rc.items():
            for t, q in cc.items():
                key = (min(s, t), max(s, t))
                quad[key] = quad.get(key, 0) + weight * m * q
    form = ScopeForm(sizes, least, const, linear, quad)
    n = sum(int(p.numel()) for p in selected.values())
    return form if form_total(form, sizes) == n else None  # every channel kept keeps every weight


def form_total(form: ScopeForm, k: list[int]) -> int:
    """The kept count `form` gives for the per-scope counts k."""
    total = form.const + sum(a * x for a, x in zip(form.linear, k))
    return total + sum(q * k[s] * k[t] for (s, t), q in form.quad.items())


def scope_count_reach(form: ScopeForm, words: int = GLOBAL_REACH_WORDS) -> Optional[tuple[int, int]]:
    """(low, bits) as `reach_bits` (prune_cli/pruning/structure.py): the totals `form` reaches over every
    choice of per-scope counts least[s] <= k_s <= sizes[s], as the set bits of an integer; None where the
    enumeration would take more than `words` word operations (`GLOBAL_REACH_WORDS`).

    Dynamic programming over the scopes in order: a state is the counts of the scopes already chosen
    that still share a product term with a later one (the frontier), holding the bitset of partial totals;
    a chain of layers keeps one scope in the frontier (a path), so the work is the sum of products of
    neighbouring scope sizes."""
    if not form.sizes:
        return form.const, 1
    work, held, frontiers = reach_work(form, _neighbours(form))
    if work > words or held > GLOBAL_REACH_HELD:
        return None
    for reach in _reach_steps(form, frontiers):
        pass
    bits = 0
    for b in reach.values():
        bits |= b
    return form.const, bits


def _neighbours(form: ScopeForm) -> list[set]:
    """Per scope, the other scopes it shares a product term with."""
    neighbours: list[set] = [set() for _ in form.sizes]
    for s, t in form.quad:
        if s != t:
            neighbours[s].add(t)
            neighbours[t].add(s)
    return neighbours


def _per_channel_of(form: ScopeForm, j: int, values: dict) -> int:
    """What each channel scope j keeps adds to the kept count, but for its square term, given the counts
    `values` of the scopes before it that share a product term with it (its frontier): scope j keeping k
    channels adds k x this + quad[j, j] x k^2."""
    return form.linear[j] + sum(form.quad[(t, j)] * v for t, v in values.items() if t < j and (t, j) in form.quad)


def _reach_steps(form: ScopeForm, frontiers: list[list[int]]):
    """`scope_count_reach`'s dynamic programming, one scope at a time: after scope j, {the counts of
    frontiers[j]: the bitset of partial totals (terms among scopes 0..j) some choice of their counts reaches}."""
    reach: dict[tuple, int] = {(): 1}
    before: list[int] = []
    for j in range(len(form.sizes)):
        after = frontiers[j]
        out: dict[tuple, int] = {}
        for key, bits in reach.items():
            values = dict(zip(before, key))
            per, square = _per_channel_of(form, j, values), form.quad.get((j, j), 0)
            for k in range(form.least[j], form.sizes[j] + 1):
                add = per * k + square * k * k
                new = tuple(k if t == j else values[t] for t in after)
                out[new] = out.get(new, 0) | (bits << add)
        reach, before = out, after
        yield reach


def _has_bit(bits: int, lo: int, hi: int) -> bool:
    """Whether `bits` has a set bit at a position in [lo, hi]."""
    lo = max(lo, 0)
    if hi < lo:
        return False
    rest = bits >> lo
    return bool(rest) and (rest & -rest).bit_length() - 1 <= hi - lo


def scope_counts_within(form: ScopeForm, lo: int, hi: int, prefer: list[int], words: int = GLOBAL_REACH_WORDS) -> Optional[list[int]]:
    """Per-scope counts least[s] <= k_s <= sizes[s] whose `form_total` lies in [lo, hi], near `prefer` (the
    counts the ranking's prefix keeps); None where none does, or where finding them would take more than
    `words` word operations or hold more than GLOBAL_REACH_HELD words (`scope_count_reach`'s budget, with
    every step's bitsets held for the way back).

    `scope_count_reach`'s dynamic programming forwards, then a greedy walk back: from the last scope to the
    first, each takes the count nearest its preferred one (ties: more) among those from which the rest of
    the window is still reached (each step's bitsets say which), and where a scope leaves the frontier
    there, its count too (nearest preferred, then more). Every step keeps the window reachable, so the walk
    always ends with counts meeting it. Not the minimum of sum |k_s - prefer_s| over all choices: that
    needs a cost per total instead of a bit, many times the work and memory; the greedy moves the last scopes
    least."""
    m = len(form.sizes)
    if m == 0:
        return [] if lo <= form.const <= hi else None
    work, _, frontiers = reach_work(form, _neighbours(form))
    span = (form_total(form, form.sizes) - form.const) // 64 + 1
    stored = 0
    for frontier in frontiers:
        states = 1
        for t in frontier:
            states *= form.sizes[t] - form.least[t] + 1
        stored += states * span
    # the pre-run check's own work budget (the walk back tests each state's choices once more, about the forward
    # pass's cost): where the check enumerated the totals and accepted a target, the walk finds its counts
    if work > words or stored > GLOBAL_REACH_HELD:
        return None
    steps = [{(): 1}, *_reach_steps(form, frontiers)]  # steps[j]: before scope j
    lo, hi = lo - form.const, hi - form.const  # the window of the partial totals still to reach
    if not _has_bit(steps[m][()], lo, hi):
        return None
    counts: list[Optional[int]] = [None] * m
    state: dict[int, int] = {}  # counts fixed by the steps after this one (frontiers[j])
    for j in reversed(range(m)):
        before = frontiers[j - 1] if j else []
        best = None
        for key, bits in steps[j].items():
            values = dict(zip(before, key))
            if any(state[t] != v for t, v in values.items() if t in state):
                continue
            freed = [t for t in before if t not in state]  # leaving the frontier at scope j
            per, square = _per_channel_of(form, j, values), form.quad.get((j, j), 0)
            for k in range(form.least[j], form.sizes[j] + 1):
                if j in state and state[j] != k:
                    continue
                add = per * k + square * k * k
                if not _has_bit(bits, lo - add, hi - add):
                    continue
                rank = (abs(k - prefer[j]), -k, [(abs(values[t] - prefer[t]), -values[t]) for t in freed])
                if best is None or rank < best[0]:
                    best = (rank, k, values, add)
        assert best is not None  # the bitsets say some choice reaches the window
        _, k, values, add = best
        counts[j] = k
        state = values
        for t, v in values.items():
            counts[t] = v
        lo, hi = lo - add, hi - add
    return [int(c) for c in counts]  # type: ignore[arg-type]


def reach_work(form: ScopeForm, neighbours: list[set]) -> tuple[int, int, list[list[int]]]:
    """(the word operations `scope_count_reach` takes: per scope, states x its choices x the totals' span
    / 64; the most words its states hold at once; the frontier after each scope)."""
    words = (form_total(form, form.sizes) - form.const) // 64 + 1
    frontiers, states, work, held = [], 1, 0, 0
    frontier: list[int] = []
    for j in range(len(form.sizes)):
        work += states * (form.sizes[j] - form.least[j] + 1) * words
        frontier = [t for t in [*frontier, j] if any(u > j for u in neighbours[t])]
        frontiers.append(frontier)
        following = 1
        for t in frontier:
            following *= form.sizes[t] - form.least[t] + 1
        held, states = max(held, (states + following) * words), following
    return work, held, frontiers


def _reaching_keep(
    groups: ChannelGroups, key: torch.Tensor, base: torch.Tensor, prefix: torch.Tensor, scored: list, window: tuple[int, int]
) -> torch.Tensor:
    """`global` where the ranking's prefix `prefix` keeps a total outside `window` (the pruner's accepted
    totals): the protected channels `base` and, in each scope, its top k_s channels by `key` (score per
    weight), for per-scope counts whose total lies in the window, the nearest the prefix's own that
    `scope_counts_within` finds. This is the choice the pre-run check (`_check_global_density`) counts on:
    it accepts a target when some per-scope counts reach the window. Only at a dense event, where the kept
    count is a function of the per-scope counts (`scope_form`); `prefix` where that does not hold, no counts
    reach the window, or the search is over budget: the pruner then refuses as before.

    A scope's protected channel is its best-keyed one (scope_form: a layer side holds every channel of a
    scope it holds, and `protected` keeps the side's best), so a scope holding one keeps at least one, and
    its top k_s include it; the result is checked (per-scope counts and kept weights) all the same."""
    n = sum(e.layer.shape.numel() for e in scored)
    if round(sum(float(e.alive.sum()) for e in scored)) != n:  # a later event: earlier masks decide the count too
        return prefix
    form = scope_form(groups, {e.layer.name: e.layer.shape for e in scored})
    if form is None:
        return prefix
    scopes = torch.unique(groups.scope[groups.prunable]).tolist()
    ranked = [_ranked(groups.prunable & (groups.scope == s), key) for s in scopes]
    least = [max(low, int(bool(base[o].any()))) for low, o in zip(form.least, ranked)]
    counts = scope_counts_within(replace(form, least=least), *window, [int(prefix[o].sum()) for o in ranked])
    if counts is None:
        return prefix
    keep = base.clone()
    for o, k in zip(ranked, counts):
        keep[o[:k]] = True
    if [int(keep[o].sum()) for o in ranked] != counts or not window[0] <= kept_weights(keep, scored) <= window[1]:
        return prefix
    log.info(
        "channel_group: the ranking's prefix keeps %d weights, outside the accepted %d to %d; each scope keeps its "
        "best channels by score per weight instead, %s of %s (was %s)",
        kept_weights(prefix, scored),
        *window,
        counts,
        form.sizes,
        [int(prefix[o].sum()) for o in ranked],
    )
    return keep


def _widening_window(method, selection: str, density: float, n: int) -> Optional[tuple[int, int]]:
    """The kept totals the pruner accepts (`accepted_window`, its own comparison) where `global`'s prefix
    missing them is to be widened (`_reaching_keep`): only where the pruner would refuse the miss (the
    allocation promises round(d N), `promises_total`, and selection is not Bernoulli: pruner.check_masks
    only warns otherwise) and the event is one scoring round (method.rounds = 1: a first round of several
    targets an intermediate density the pruner does not check, whose masks are kept as they were); None
    elsewhere."""
    rounds = method.get("rounds", 1) if isinstance(method, DictConfig) else getattr(method, "rounds", 1)
    if method.allocation != "global" or selection == "bernoulli" or rounds != 1 or not n or not promises_total(method):
        return None
    return accepted_window(n, density, method_tolerance(method))


_GLOBAL_REACH: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {selected shapes: reach}


def _global_reach(model, selected: dict) -> Optional[tuple[int, int]]:
    """`scope_count_reach` of the model's selected layers (None where not decided), once per model and
    selection: it does not depend on the target, and the pre-run pass checks every pruning event's (gradual:
    hundreds) and the candidates of its suggestions with it."""
    key = tuple((name, tuple(p.shape)) for name, p in selected.items())
    held = _GLOBAL_REACH.setdefault(model, {})
    if key not in held:
        groups = channel_groups(_flow_or_refuse(lambda: channel_flow(model)), {n: p.shape for n, p in selected.items()})
        form = scope_form(groups, selected)
        held[key] = None if form is None else scope_count_reach(form)
    return held[key]


def _check_global_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """`global`: the pruner keeps the protected channels and a prefix of its ranking by score per weight,
    whose order depends on the scores, but at a first pruning event, made in one scoring round on the
    dense model, the kept count depends only on how many channels each scope keeps (`scope_form`, checked
    for the model's layers). So the totals of every choice of per-scope counts (`scope_count_reach`) are a
    superset of what the pruner can keep, and a target none of them meets within the tolerance (the
    pruner's comparison, `accepted_window`) is refused, naming the nearest of those totals. At later
    events and scoring rounds (gradual, iterative, method.rounds > 1) the kept channels are a subset of
    those kept before, whose totals the dense layers reach too: a necessary condition only, as for
    layerwise (docs/allocation.md). Not decided here, and left to the pruner as before: models whose kept
    count is not a function of the per-scope counts, enumerations over `GLOBAL_REACH_WORDS` (ResNet-20),
    and runs whose miss the pruner only warns about (Bernoulli selection, an allocation without the exact
    total).

    What the pruner then meets: at a first event in one scoring round (method.rounds = 1), where its
    ranking's prefix misses the accepted totals, it keeps per-scope counts that meet them
    (`_reaching_keep`, `scope_counts_within`), so a target accepted here is met there, unless the walk's
    held bitsets exceed GLOBAL_REACH_HELD or a layer side shared by several scopes makes this a superset
    (`scope_form`). At later events and rounds the prefix is kept as it is and may still miss."""
    from ..registries import SCORES
    from ..structure import bits_beside, missed_window

    if SCORES.get(method.score).selection(method) == "bernoulli":  # pruner.check_masks then only warns
        return
    reach = _global_reach(model, selected)
    n = sum(int(p.numel()) for p in selected.values())
    window = missed_window(reach, n, density, method)
    if window is None:
        return
    raise ReachRefusal(
        round(1.0 - density, 12),
        f"a sparsity that method.structure=channel_group with method.allocation=global reaches within "
        f"method.sparsity_tolerance={method.sparsity_tolerance} on these layers (whole channels go, with every row "
        f"and column they touch, and every layer keeps at least one; the kept count of the dense layers depends "
        f"only on how many channels each scope keeps, known from the shapes): ",
        [1.0 - t / n for t in bits_beside(*reach, *window) if t is not None],
        "; or raise method.sparsity_tolerance (the sparsities named are totals some choice of per-scope channel counts "
        "reaches; at a first pruning event in one scoring round the pruner keeps such counts where its ranking by score "
        "per weight misses the target, while at later events and with method.rounds > 1 the ranking may still miss one, "
        "and the pruner then stops there)",
        nearest_phrase,
    )


@register_structure(
    "channel_group",
    options=GroupNormOptions,  # method.group_norm
    layer_local=False,
    check=check_channel_group,
    check_model=check_channel_group_model,
    check_density=check_channel_group_density,
    inexact_hint="Channel-group pruning removes whole channels with every row and column they touch "
    "(every layer that produces or reads it; through a ResNet's residual joins, many layers), so only some "
    "sparsities are reachable; pick a "
    "nearby sparsity or raise method.sparsity_tolerance.",
)
def channel_group(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Masks that remove whole channel groups (module docstring), to the kept weight count closest to
    the allocation's total."""
    if sctx.layers.root is None:
        raise PruneCliError("method.structure=channel_group needs the model's layer graph with its model (models/graph.py trace)")
    method = sctx.method
    # from the pruner's trace of the model (its LayerGraph), not a second one
    groups = channel_groups(_flow_or_refuse(sctx.layers.channel_flow), {n: s.shape for n, s in scores.items()})
    total, count, scored = group_sums(groups, scores, method.group_norm, sctx.signed)
    window = _widening_window(method, selection, sctx.density, sum(s.numel() for s in scores.values()))
    keep = select(groups, total, count, scored, sum(counts.values()), method.allocation, sctx.invert, window)
    log.info(
        "channel_group: %d of %d prunable channels kept (%d channels fixed: reach the output or touch an excluded layer)",
        int((keep & groups.prunable).sum()),
        int(groups.prunable.sum()),
        int((~groups.prunable).sum()),
    )
    return group_masks(keep, groups)
