"""`method.structure=channel`: whole output units (rows of a Linear, filters of a Conv) and the next
layer's matching input columns (filter pruning, Li et al., ICLR 2017)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from ...core.checks import check
from ...core.errors import ConfigError, PruneCliError
from ...models.graph import trace
from ..structure import StructureContext, column_mask, group_norm, register_structure


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
            "layers that each feed exactly one next layer (no "
            "residual add or concatenation); exclude these with method.exclude=[...]: " + ", ".join(bad),
        )


@register_structure(
    "channel",
    options=("group_norm",),
    layer_local=False,
    check=check_channel,
    check_model=check_channel_model,
    inexact_hint="Channel pruning removes whole units and their next-layer columns, so only some "
    "sparsities are reachable; pick a nearby sparsity or raise method.sparsity_tolerance.",
)
def channel(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Remove whole output units of every pruned hidden layer, ranked by the L1/L2 norm of their
    scores (with magnitude scores: the filter norm of Li et al. 2017) over the input columns the
    previous layer left alive, and mask the next layer's input columns of each removed unit. The
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
            "method.structure=channel needs each pruned hidden layer to feed exactly one next layer (no "
            f"residual add or concatenation); these do not: {', '.join(broken)}. Exclude them "
            "(method.exclude=[...]) or use another structure."
        )
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
