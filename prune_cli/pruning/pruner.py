"""One pruning event: select prunable weights, score them, allocate counts, build masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from torch import nn

from ..core.errors import ConfigError, PruneCliError
from ..models.base import PrunableNet
from ..models.masks import Masks

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
    check_against_model(model, selected, method)
    return selected


def check_against_model(model: PrunableNet, selected: dict[str, nn.Parameter], method: DictConfig) -> None:
    """Method options that depend on the model's layers: the chosen allocation's and structure's
    `check_model` hooks (explicit densities per layer, masks of the right shapes, N:M input counts,
    channel links). The pre-run pass runs them on the model built on the meta device."""
    from .registries import ALLOCATIONS, STRUCTURES

    for plugin in (ALLOCATIONS.get(method.allocation), STRUCTURES.get(method.get("structure", "unstructured"))):
        if plugin.check_model is not None:
            plugin.check_model(model, selected, method)


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
    previous round's mask applied (already-pruned weights score -inf), as SynFlow prescribes.
    Afterwards the ablations (shuffle, reinit) run, then the safety checks: layer collapse,
    disconnected paths, and achieved vs target sparsity."""
    from .ablations import reinit_weights, shuffle_masks
    from ..models.masks import apply_masks, count
    from .structure import layer_graph

    method = ctx.method
    ctx.model = model
    params = select_prunable(model, method)
    layers = layer_graph(model)
    start = 1.0
    if ctx.masks:
        kept, total = count({n: m for n, m in ctx.masks.items() if n in params})
        start = kept / total
    rounds = method.get("rounds", 1)
    masks = ctx.masks
    for density in round_densities(start, 1.0 - sparsity, rounds, method.get("round_schedule", "exponential")):
        masks = _prune_once(model, params, 1.0 - density, ctx, masks, layers)
        if rounds > 1:
            apply_masks(model, masks)
    if method.get("shuffle", False):
        masks = shuffle_masks(masks, ctx.generator)
    if method.get("reinit", False):
        reinit_weights(model, masks, ctx.generator)
    check_masks(masks, layers, sparsity, ctx)
    return masks


def check_masks(masks: Masks, layers: dict, sparsity: float, ctx: ScoreContext) -> None:
    """Raise LayerCollapse for an empty layer or a cut path (unless method.allow_collapse), and
    PruneCliError when the achieved sparsity misses the target by more than method.sparsity_tolerance."""
    from ..models.masks import count
    from .structure import disconnected
    from .registries import ALLOCATIONS, SCORES

    method = ctx.method
    collapsed = [name for name, m in masks.items() if not m.any()]
    problems = [f"no weight left in {', '.join(collapsed)}"] if collapsed else []
    problems += disconnected(masks, layers)
    if problems:
        message = (f"Layer collapse at sparsity={sparsity} with method.allocation={method.allocation}, "
                   f"method.structure={method.get('structure', 'unstructured')}: " + "; ".join(problems) +
                   ". The network is disconnected. Lower the sparsity, use an allocation that spares small layers "
                   "(e.g. method.allocation=erk or layerwise), exclude the layer (method.exclude=[...]), or accept it "
                   "with method.allow_collapse=true.")
        if not method.get("allow_collapse", False):
            raise LayerCollapse(message)
        log.warning("%s", message)
    kept, total = count(masks)
    achieved = 1.0 - kept / total
    # measured against the nearest reachable count, round(d N), so tiny layers are not flagged for rounding
    reachable = 1.0 - round(total * (1.0 - sparsity)) / total
    bernoulli = SCORES.get(method.score).selection(method) == "bernoulli"
    faithful = not ALLOCATIONS.get(method.allocation).exact_total(method)
    tolerance = float(method.get("sparsity_tolerance", 0.005))
    if abs(achieved - reachable) > tolerance:
        message = (f"achieved sparsity {achieved:.5f} differs from the target sparsity={sparsity} (reachable: "
                   f"{reachable:.5f}, round((1 - sparsity) N) kept of N = {total}) by more than "
                   f"method.sparsity_tolerance={tolerance} (method.allocation={method.allocation}, "
                   f"method.structure={method.get('structure', 'unstructured')}). " + _why_inexact(method))
        if bernoulli or faithful:
            log.warning("%s (expected: %s)", message, "Bernoulli sampling" if bernoulli else
                        f"method.allocation={method.allocation} does not promise the exact total")
        else:
            raise PruneCliError(message)


def _why_inexact(method) -> str:
    from .registries import ALLOCATIONS, STRUCTURES

    structure = STRUCTURES.get(method.get("structure", "unstructured"))
    hint = structure.inexact_hint or ALLOCATIONS.get(method.allocation).inexact_hint
    return hint or "Raise method.sparsity_tolerance to accept it."


def _prune_once(model, params, sparsity: float, ctx: ScoreContext, current: Optional[Masks], layers) -> Masks:
    from .registries import ALLOCATIONS, SCORES, STRUCTURES
    from .ablations import invert_scores
    from .structure import StructureContext

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
    invert = bool(method.get("invert", False))
    counts = ALLOCATIONS.get(method.allocation)(invert_scores(scores) if invert else scores, 1.0 - sparsity, ctx)
    sctx = StructureContext(method=method, layers=layers, density=1.0 - sparsity, invert=invert)
    structure = STRUCTURES.get(method.get("structure", "unstructured"))
    structured = structure.masks(scores, counts, score.selection(method), sctx)
    masks = {}
    for name in params:
        m = structured[name].cpu()
        if current is not None and name in current:
            m = m & current[name].cpu()
        masks[name] = m
    return masks
