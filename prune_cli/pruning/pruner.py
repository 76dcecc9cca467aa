"""One pruning event: select prunable weights, score them, allocate counts, build masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from torch import nn

from ..errors import ConfigError, PruneCliError
from ..models.base import PrunableNet
from .masks import Masks

log = logging.getLogger(__name__)


@dataclass
class ScoreContext:
    """Everything a score may need beyond the model: data, loss, RNG, current masks."""

    method: DictConfig
    generator: torch.Generator
    model: Any = None  # the PrunableNet being pruned
    data: Any = None  # prune_cli.data.DataSplits
    loss_fn: Any = field(default_factory=lambda: nn.CrossEntropyLoss())
    device: torch.device = torch.device("cpu")
    masks: Optional[Masks] = None  # current masks (iterative pruning); pruned entries score -inf
    density: float = 1.0  # density this scoring round prunes to (sequential scores such as LAP-forward need it)


class LayerCollapse(PruneCliError):
    """A prunable layer would keep no weight at all, which disconnects the network."""


def select_prunable(model: PrunableNet, method: DictConfig) -> dict[str, nn.Parameter]:
    """Prunable weights in forward order, after the method's exclusions."""
    layers = model.prunable_layers()
    names = [name for name, _ in layers]
    excluded = set(method.get("exclude", []) or [])
    unknown = excluded - set(names)
    if unknown:
        raise ConfigError("method.exclude", sorted(unknown), "names of prunable layers: " + ", ".join(names))
    if method.get("exclude_classifier", False):
        excluded.add(model.classifier)
    if method.get("exclude_first", False):
        excluded.add(names[0])
    selected = {f"{name}.weight": module.weight for name, module in layers if name not in excluded}
    if not selected:
        raise ConfigError("method.exclude", sorted(excluded), "a set that leaves at least one prunable layer")
    return selected


def round_densities(start: float, target: float, rounds: int, schedule: str) -> list[float]:
    """Densities after each scoring round, ending exactly at `target`.

    exponential: start * (target/start)^(r/R), SynFlow's schedule; linear: evenly spaced."""
    if schedule == "linear":
        return [start + (target - start) * r / rounds for r in range(1, rounds + 1)]
    if target <= 0:
        return [0.0] * rounds
    return [start * (target / start) ** (r / rounds) for r in range(1, rounds + 1)]


def prune(model: PrunableNet, sparsity: float, ctx: ScoreContext) -> Masks:
    """Masks that keep a fraction 1 - sparsity of the prunable weights.

    With `method.rounds` > 1 the weights are re-scored after each round on the model with the
    previous round's mask applied (already-pruned weights score -inf), as SynFlow prescribes."""
    from .masks import apply_masks, count

    method = ctx.method
    ctx.model = model
    params = select_prunable(model, method)
    start = 1.0
    if ctx.masks:
        kept, total = count({n: m for n, m in ctx.masks.items() if n in params})
        start = kept / total
    rounds = method.get("rounds", 1)
    masks = ctx.masks
    for density in round_densities(start, 1.0 - sparsity, rounds, method.get("round_schedule", "exponential")):
        masks = _prune_once(model, params, 1.0 - density, ctx, masks)
        if rounds > 1:
            apply_masks(model, masks)
    collapsed = [name for name, m in masks.items() if not m.any()]
    if collapsed and not method.get("allow_collapse", False):
        raise LayerCollapse(
            f"Layer collapse: sparsity={sparsity} with method.allocation={method.allocation} leaves no "
            f"weight in {', '.join(collapsed)}, which disconnects the network. Lower the sparsity, use "
            f"method.allocation=layerwise, exclude the layer (method.exclude=[...]), or accept it with "
            f"method.allow_collapse=true."
        )
    return masks


def _prune_once(model, params, sparsity: float, ctx: ScoreContext, current: Optional[Masks]) -> Masks:
    from . import ALLOCATIONS, SCORES, STRUCTURES

    method = ctx.method
    ctx.masks = current
    ctx.density = 1.0 - sparsity
    score = SCORES.get(method.score)
    scores = {name: s.detach().float() for name, s in score.fn(model, params, ctx).items()}
    for name, s in scores.items():
        if torch.isnan(s).any():
            raise PruneCliError(f"method.score={method.score} produced NaN scores for {name}")
        if current is not None and name in current:
            s.masked_fill_(~current[name].to(s.device), float("-inf"))
    counts = ALLOCATIONS.get(method.allocation)(scores, 1.0 - sparsity, ctx)
    build = STRUCTURES.get(method.structure)
    selection = score.selection(method)
    return {name: build(scores[name], counts[name], selection).cpu() for name in params}
