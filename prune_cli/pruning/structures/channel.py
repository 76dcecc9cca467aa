"""`method.structure=channel`: whole output units (rows of a Linear, filters of a Conv) and the next
layer's matching input columns (filter pruning, Li et al., ICLR 2017)."""

from __future__ import annotations

import functools
import weakref

import torch
from omegaconf import DictConfig

from ...core.checks import check
from ...core.errors import ConfigError, PruneCliError
from ...models.graph import trace
from ..structure import GroupNormOptions, ReachRefusal, StructureContext, column_mask, group_norm, nearest_phrase, register_structure


def check_channel(cfg: DictConfig) -> None:
    check(
        cfg.method.allocation == "layerwise",
        "method.allocation",
        cfg.method.allocation,
        "layerwise with method.structure=channel (every hidden layer keeps the same fraction of units)",
    )


def check_channel_model(model, selected: dict, method: DictConfig) -> None:
    """Each pruned hidden layer feeds exactly one next layer (no residual add or concatenation)."""
    layers = trace(model)
    bad = [n for n in selected if not layers[n].is_classifier and layers[n].next is None]
    if bad:
        raise ConfigError(
            "method.structure",
            "channel",
            "layers that each feed exactly one next layer that reads their units (no residual add or concatenation); "
            f"exclude these by module name ({_exclude_hint(layers, bad)}): {_unlinked_list(layers, bad)}",
        )


def _unlinked_list(layers, names: list[str]) -> str:
    """The layers, each with the reason the layer it reaches does not read its units where the graph
    knows one (`LayerInfo.unlinked`: a Linear along a convolution's length, an unknown reshape, ...)."""
    return ", ".join(f"{n} ({layers[n].unlinked})" if layers[n].unlinked else n for n in names)


def _exclude_hint(layers, names: list[str]) -> str:
    """`method.exclude` takes module names ("conv"), not parameter names ("conv.weight")."""
    return f"method.exclude=[{','.join(layers[n].module_name for n in names)}]"


class _UnitCounts:
    """Channel pruning's kept weight count as a function of the layer shapes and the number of units each
    hidden layer keeps, not of which units: the rule the structure prunes by and the pre-run pass checks."""

    def __init__(self, layers, shapes: dict, allow_collapse: bool = False):
        self.layers, self.shapes, self.allow_collapse = layers, shapes, allow_collapse
        self.hidden = [n for n in shapes if not layers[n].is_classifier]  # the classifier keeps its rows
        self.prev_of = {layers[n].next: n for n in self.hidden}
        self.total = sum(int(torch.Size(s).numel()) for s in shapes.values())

    def kept(self, units: dict[str, int]) -> int:
        """Weights kept when each hidden layer keeps `units[n]` rows and the next layer their columns."""
        total = 0
        for n, shape in self.shapes.items():
            rows = units.get(n, self.layers[n].units)
            p = self.prev_of.get(n)
            cols = units[p] * self.layers[p].factor if p is not None else shape[1]
            total += rows * cols * int(torch.Size(shape[2:]).numel())
        return total

    def fractions(self) -> list[float]:
        """The fractions q of units every hidden layer can keep (j / units of some layer). One at which a
        hidden layer keeps no unit (q = 0, or a small q rounding to 0 units in a narrow layer) empties that
        layer and the next one's columns, a layer collapse: offered only with method.allow_collapse=true, so
        that the pre-run check names the highest sparsity reached with a unit in every hidden layer instead
        of accepting q = 0 where keeping nothing is within method.sparsity_tolerance of the target (0.998 on
        a 2-16-16-3 MLP), which the pruner then refused after dense training."""
        found = {j / self.layers[n].units for n in self.hidden for j in range(self.layers[n].units + 1)} | {0.0, 1.0}
        return sorted(q for q in found if self.allow_collapse or all(self.at(q).values()))

    def at(self, q: float) -> dict[str, int]:
        return {n: round(q * self.layers[n].units) for n in self.hidden}

    @functools.cached_property
    def kept_by_fraction(self) -> list[tuple[float, int]]:
        """(q, weights kept at q) for every fraction q, computed once (the pre-run pass checks every
        pruning event's target: gradual has hundreds)."""
        return [(q, self.kept(self.at(q))) for q in self.fractions()]

    def closest_to(self, density: float) -> dict[str, int]:
        """Units kept per hidden layer: the fraction q whose kept count is closest to round(density * N)
        (ties: the larger q)."""
        target = round(density * self.total)
        return self.at(min(self.kept_by_fraction, key=lambda qk: (abs(qk[1] - target), -qk[0]))[0])


_COUNTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {shapes: _UnitCounts or None}


def _counts_of(model, shapes: dict, allow_collapse: bool = False) -> "_UnitCounts | None":
    """The `_UnitCounts` of the pre-run pass's model, traced once per model, layer shapes and
    method.allow_collapse (every pruning event's target is checked with it); None where a pruned hidden
    layer does not feed one next layer."""
    key = (*shapes.items(), allow_collapse)
    per_model = _COUNTS.setdefault(model, {})
    if key not in per_model:
        layers = trace(model)
        broken = any(layers[n].next is None and not layers[n].is_classifier for n in shapes)
        per_model[key] = None if broken else _UnitCounts(layers, shapes, allow_collapse)
    return per_model[key]


def check_channel_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """Before the run: the sparsity channel pruning reaches is a fact of the layer shapes (one pruning
    event keeps `_UnitCounts.closest_to` units, whichever they are), so a target it misses by more than
    method.sparsity_tolerance is refused here, with the reachable sparsities on either side, instead
    of by the pruner after dense training."""
    shapes = {n: tuple(p.shape) for n, p in selected.items()}
    counts = _counts_of(model, shapes, bool(getattr(method, "allow_collapse", False)))
    if counts is None:
        return  # check_channel_model names those layers
    total = counts.total
    achieved, reachable = 1.0 - counts.kept(counts.closest_to(density)) / total, 1.0 - round(density * total) / total
    if abs(achieved - reachable) <= float(method.sparsity_tolerance):
        return
    options = sorted({1.0 - kept / total for _, kept in counts.kept_by_fraction})
    below = [s for s in options if s < 1.0 - density]
    above = [s for s in options if s > 1.0 - density]
    raise ReachRefusal(
        round(1.0 - density, 12),
        f"a sparsity that method.structure=channel reaches within method.sparsity_tolerance={method.sparsity_tolerance} "
        f"on these layers (every hidden layer keeps the same fraction of its units, and the next layer loses their "
        f"columns; here it would reach {achieved:.6f}): ",
        below[-1:] + above[:1],
        "; or raise method.sparsity_tolerance",
        nearest_phrase,
    )


@register_structure(
    "channel",
    options=GroupNormOptions,  # method.group_norm
    layer_local=False,
    check=check_channel,
    check_model=check_channel_model,
    check_density=check_channel_density,
    uses_counts=False,  # the unit fraction closest to the target (`_UnitCounts`); the allocation's counts are not read
    inexact_hint="Channel pruning removes whole units and their next-layer columns, so only some "
    "sparsities are reachable; pick a nearby sparsity or raise method.sparsity_tolerance.",
)
def channel(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Remove whole output units of every pruned hidden layer, ranked by the L1/L2 norm of their
    scores (with magnitude scores: the filter norm of Li et al. 2017), or by their signed sum where
    the scores can be negative (GraSP: `group_terms`, prune_cli/pruning/structure.py), over the input
    columns the previous layer left alive, and mask the next layer's input columns of each removed unit. The
    classifier keeps its rows (they are the classes).

    All hidden layers keep the same fraction q of their units; q is the value whose total kept
    weight count, after the next-layer columns are removed, is closest to round(density * N)."""
    layers = sctx.layers
    norm = sctx.method.group_norm
    names = list(scores)
    hidden = [n for n in names if not layers[n].is_classifier]
    broken = [n for n in hidden if layers[n].next is None]
    if broken:
        raise PruneCliError(
            "method.structure=channel needs each pruned hidden layer to feed exactly one next layer that reads its units "
            f"(no residual add or concatenation); these do not: {_unlinked_list(layers, broken)}. Exclude them "
            f"({_exclude_hint(layers, broken)}) or use another structure."
        )
    prev_of = {layers[n].next: n for n in hidden}
    allow_collapse = bool(getattr(sctx.method, "allow_collapse", False))
    units = _UnitCounts(layers, {n: s.shape for n, s in scores.items()}, allow_collapse).closest_to(sctx.density)
    unit_masks = {}
    for n in hidden:  # forward order: rank units on the columns the previous layer left alive
        w = scores[n]
        # a unit an earlier pruning event removed (its row all -inf) stays the lowest-ranked, also under
        # invert, once the columns below give it finite zeros
        removed = torch.isneginf(group_norm(w.flatten(1), norm, signed=sctx.signed))
        p = prev_of.get(n)
        if p is not None:
            w = w.masked_fill(~column_mask(unit_masks[p], w.shape, layers[p].factor).to(w.device), 0.0)
        g = group_norm(w.flatten(1), norm, signed=sctx.signed).masked_fill(removed, float("-inf"))
        key = torch.where(torch.isneginf(g), g, -g) if sctx.invert else g
        keep = torch.zeros(layers[n].units, dtype=torch.bool)
        keep[torch.sort(key, descending=True, stable=True).indices[: units[n]].cpu()] = True
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
