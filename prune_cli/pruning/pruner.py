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
    """Method options that depend on the model's layers, checked when the model is built (the
    experiment selects the prunable weights before training), so a bad value fails before any work."""
    allocation, structure = method.get("allocation"), method.get("structure", "unstructured")
    names = list(selected)
    if allocation == "explicit":
        given = list(method.get("layer_densities") or [])
        if len(given) != len(names):
            raise ConfigError("method.layer_densities", given,
                              f"a list of {len(names)} densities in [0, 1], one per prunable layer in forward "
                              f"order: {', '.join(names)}")
    if allocation == "matched" and method.get("match_masks"):
        from ..models.masks import read_masks_file

        path = method.match_masks
        other = read_masks_file(path)
        bad = [n for n in names if n not in other or tuple(other[n].shape) != tuple(selected[n].shape)]
        if bad:
            raise ConfigError("method.match_masks", path, "masks with the shapes of this run's prunable weights; "
                              "missing or mis-shaped: " + ", ".join(bad))
    if structure == "nm":
        m = int(method.nm_m)
        bad = [f"{n} ({p.shape[1]} inputs)" for n, p in selected.items() if p.shape[1] % m]
        if bad:
            raise ConfigError("method.structure", "nm", f"layers whose input count is a multiple of "
                              f"method.nm_m={m}; exclude these (method.exclude=[...]) or pick another M: "
                              + ", ".join(bad))
    if structure == "channel":
        from .structure import layer_graph

        layers = layer_graph(model)
        bad = [n for n in names if not layers[n].is_classifier and layers[n].next is None]
        if bad:
            raise ConfigError("method.structure", "channel", "layers that each feed exactly one next layer (no "
                              "residual add or concatenation); exclude these with method.exclude=[...]: "
                              + ", ".join(bad))


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
    from . import SCORES

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
    faithful = method.allocation == "uniform_plus" and method.get("faithful_uniform_plus", False)
    tolerance = float(method.get("sparsity_tolerance", 0.005))
    if abs(achieved - reachable) > tolerance:
        message = (f"achieved sparsity {achieved:.5f} differs from the target sparsity={sparsity} (reachable: "
                   f"{reachable:.5f}, round((1 - sparsity) N) kept of N = {total}) by more than "
                   f"method.sparsity_tolerance={tolerance} (method.allocation={method.allocation}, "
                   f"method.structure={method.get('structure', 'unstructured')}). " + _why_inexact(method))
        if bernoulli or faithful:
            log.warning("%s (expected: %s)", message, "Bernoulli sampling" if bernoulli else "faithful uniform_plus")
        else:
            raise PruneCliError(message)


def _why_inexact(method) -> str:
    structure = method.get("structure", "unstructured")
    if structure == "channel":
        return ("Channel pruning removes whole units and their next-layer columns, so only some sparsities "
                "are reachable; pick a nearby sparsity or raise method.sparsity_tolerance.")
    if structure == "block":
        return ("Block pruning keeps whole blocks; pick a sparsity whose per-layer counts are multiples of the "
                "block size, a smaller method.block_shape, or raise method.sparsity_tolerance.")
    if method.allocation == "explicit":
        return "The densities in method.layer_densities imply a different total; make them agree with sparsity."
    if method.allocation == "matched":
        return "The matched masks have a different sparsity; use the sparsity of the run they come from."
    return "Raise method.sparsity_tolerance to accept it."


def _prune_once(model, params, sparsity: float, ctx: ScoreContext, current: Optional[Masks], layers) -> Masks:
    from . import ALLOCATIONS, SCORES, STRUCTURES
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
