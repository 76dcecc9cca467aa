"""One pruning event: select prunable weights, score them, allocate counts, build masks."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..core.errors import ConfigError, PruneCliError
from ..models.base import PrunableNet
from ..models.masks import Masks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneContext:
    """Everything a score, allocation or structure may read beyond the scores: the method's options
    (its config dataclass, converted once here), data, loss, RNG, current masks, the density this
    round prunes to. Frozen: the pruner derives each round's context with `dataclasses.replace`."""

    method: Any  # the method's config dataclass (a DictConfig or dict is converted: as_method_config)
    generator: torch.Generator
    model: Any = None  # the PrunableNet being pruned
    data: Any = None  # prune_cli.data.DataSplits
    loss_fn: Any = field(default_factory=lambda: nn.CrossEntropyLoss())
    device: torch.device = torch.device("cpu")
    masks: Optional[Masks] = None  # current masks (iterative pruning); pruned entries score -inf
    density: float = 1.0  # density this scoring round prunes to (sequential scores such as LAP-forward need it)
    config: Optional[DictConfig] = None  # the run's whole config (resolves another method's interpolations)
    graph: Any = None  # the model's LayerGraph (prune_cli/models/graph.py), traced once per pruning event

    def layer_graph(self, model) -> Any:
        """The model's layer graph: the one the pruner traced, or a trace now (a score called directly)."""
        if self.graph is not None:
            return self.graph
        from ..models.graph import trace

        return trace(model)

    def __post_init__(self) -> None:
        if self.config is None and isinstance(self.method, DictConfig) and self.method._get_root() is not self.method:
            object.__setattr__(self, "config", self.method._get_root())  # the node's own run config
        object.__setattr__(self, "method", as_method_config(self.method))


def as_method_config(method: Any) -> Any:
    """The method's options as its config dataclass (prune_cli/core/config_base.py MethodConfig or a
    score's subclass), so code reads `method.rounds`, never `.get("rounds", 1)` repeating a default.

    A composed config node is typed by its schema; a plain dict (tests, scripts) gets the smallest
    method schema that declares all of its keys, with that schema's defaults for the rest."""
    import dataclasses

    from ..core import plugins

    options = {o for decl in plugins.plugin_options().values() for o in decl.names()}
    if dataclasses.is_dataclass(method) and not isinstance(method, type):
        if options <= {f.name for f in dataclasses.fields(method)}:
            return method
        method = OmegaConf.structured(method)  # a score's bare schema: add the allocations' and structures' options
    node = method if isinstance(method, DictConfig) else OmegaConf.create(method)
    typed = OmegaConf.get_type(node)
    if isinstance(typed, type) and dataclasses.is_dataclass(typed) and not options <= {f.name for f in dataclasses.fields(typed)}:
        node = OmegaConf.merge(OmegaConf.structured(plugins.with_plugin_options(typed)), OmegaConf.to_container(node))
    elif not (isinstance(typed, type) and dataclasses.is_dataclass(typed)):
        keys = set(node.keys())
        fits = [c for c in plugins.schemas("method").values() if keys <= {f.name for f in dataclasses.fields(c)}]
        if not fits:
            raise ConfigError(
                "method", sorted(keys), "keys of one method schema (prune_cli/core/config_base.py MethodConfig or a score's config)"
            )
        typed = min(fits, key=lambda c: len(dataclasses.fields(c)))
        node = OmegaConf.merge(OmegaConf.structured(typed), node)
    return OmegaConf.to_object(node)


class LayerCollapse(PruneCliError):
    """A prunable layer would keep no weight at all, which disconnects the network."""


def select_prunable(model: PrunableNet, method: DictConfig) -> dict[str, nn.Parameter]:
    """Prunable weights in forward order, after the method's exclusions."""
    layers = model.prunable_layers()
    names = [name for name, _ in layers]
    method = as_method_config(method)
    excluded = set(method.exclude or [])
    unknown = excluded - set(names)
    if unknown:
        raise ConfigError("method.exclude", sorted(unknown), "names of prunable layers: " + ", ".join(names))
    given = {"method.exclude": ", ".join(sorted(excluded))} if excluded else {}  # what each option typed excludes
    if method.exclude_first:
        excluded.add(names[0])
        given["method.exclude_first"] = names[0]
    if method.exclude_classifier:
        excluded.add(model.classifier)
        given["method.exclude_classifier"] = model.classifier
    selected = {f"{name}.weight": module.weight for name, module in layers if name not in excluded}
    if not selected:
        which = "; ".join(f"{key.removeprefix('method.')} excludes {layers_}" for key, layers_ in given.items())
        raise ConfigError(
            ", ".join(given), sorted(excluded), f"a set that leaves at least one prunable layer (of {', '.join(names)}: {which})"
        )
    check_against_model(model, selected, method)
    return selected


def check_against_model(model: PrunableNet, selected: dict[str, nn.Parameter], method: DictConfig) -> None:
    """Method options that depend on the model's layers: the chosen allocation's and structure's
    `check_model` hooks (explicit densities per layer, masks of the right shapes, N:M input counts,
    channel links). The pre-run pass runs them on the model built on the meta device."""
    from .registries import ALLOCATIONS, STRUCTURES

    for plugin in (ALLOCATIONS.get(method.allocation), STRUCTURES.get(method.structure)):
        if plugin.check_model is not None:
            plugin.check_model(model, selected, method)


def round_densities(start: float, target: float, rounds: int, schedule: str) -> list[float]:
    """Densities after each scoring round, ending exactly at `target`.

    exponential: start * (target/start)^(r/R), SynFlow's schedule; linear: evenly spaced. The last round
    is `target` itself, not the formula's value at r = R: that can be one floating-point step off
    (1.0 + (0.1 - 1.0) = 0.09999999999999998), and round(d N) then keeps one weight fewer than the
    pruner's check of the target expects where d N falls on a half (15 weights at 0.1)."""
    if schedule == "linear":
        return [start + (target - start) * r / rounds for r in range(1, rounds)] + [target]
    if target <= 0:
        return [0.0] * rounds
    return [start * (target / start) ** (r / rounds) for r in range(1, rounds)] + [target]


def prune(model: PrunableNet, sparsity: float, ctx: PruneContext) -> Masks:
    """Masks that keep a fraction 1 - sparsity of the prunable weights: the user-facing edge, which
    converts `sparsity` to the density (fraction kept) that everything below works in."""
    return prune_to_density(model, 1.0 - sparsity, ctx)


def prune_to_density(model: PrunableNet, target: float, ctx: PruneContext) -> Masks:
    """Masks that keep a fraction `target` of the prunable weights.

    With `method.rounds` > 1 the weights are re-scored after each round on the model
    with the previous round's mask applied (already-pruned weights score -inf), as SynFlow
    prescribes. Afterwards the ablations (shuffle, reinit) run, then the safety checks: layer
    collapse, disconnected paths, and achieved vs target density.

    The process-wide random streams (a model's dropout during scoring) are left as they were: with
    the pruning's own draws on `ctx.generator`, runs that differ only in their method train the same
    afterwards, so a paired comparison seed by seed measures the pruning (docs/robustness.md)."""
    from ..core import random_streams

    streams = random_streams.capture()
    try:
        return _prune_to_density(model, target, ctx)
    finally:
        random_streams.restore(streams)


def _prune_to_density(model: PrunableNet, target: float, ctx: PruneContext) -> Masks:
    from ..models.masks import apply_masks, count
    from .ablations import reinit_weights, shuffle_masks
    from ..models.graph import trace

    layers = trace(model)
    ctx = dataclasses.replace(ctx, model=model, graph=layers)
    method = ctx.method
    params = select_prunable(model, method)
    start = 1.0
    if ctx.masks:
        kept, total = count({n: m for n, m in ctx.masks.items() if n in params})
        start = kept / total
    masks = ctx.masks
    # the rounds zero each round's removed weights before re-scoring; a shuffled mask may keep them, with
    # their values from before the event (Synaptic-Flow masks without zeroing the parameters)
    before = {n: p.detach().clone() for n, p in params.items()} if method.shuffle and method.rounds > 1 else {}
    for density in round_densities(start, target, method.rounds, method.round_schedule):
        masks = _prune_once(model, params, dataclasses.replace(ctx, masks=masks, density=density), layers)
        if method.rounds > 1:
            apply_masks(model, masks)
    if method.shuffle:
        masks = shuffle_masks(masks, ctx.generator, alive=ctx.masks)
        with torch.no_grad():
            for name, value in before.items():
                params[name].copy_(value)
    if method.reinit:
        reinit_weights(model, masks, ctx.generator)
    check_masks(masks, layers, target, method)
    return masks


def sparing_allocations(current: str) -> str:
    """The allocations that spare small layers, to suggest after a layer collapse: not the one in use."""
    return " or ".join(a for a in ("erk", "layerwise") if a != current)


def check_collapse(masks: Masks, layers: dict, density: float, method, advice: str = "") -> None:
    """Raise LayerCollapse for an empty layer or a cut path, or log a warning with
    method.allow_collapse. `advice` replaces the remedies for the one-shot pruner (lower the sparsity,
    another allocation, ...) where they do not apply (a training-time method's own knobs)."""
    from .structure import disconnected, residual_layers

    residual = residual_layers(getattr(layers, "root", None))
    collapsed = [name for name, m in masks.items() if not m.any() and name not in residual]
    problems = [f"no weight left in {', '.join(collapsed)}"] if collapsed else []
    problems += disconnected(masks, layers, skip=residual)
    cut = sorted(name for name, m in masks.items() if not m.any() and name in residual)
    if cut and not problems:
        log.info(
            "%s: no weight left; the residual section's output no longer depends on its input (0, or its "
            "normalisation's shift) and its skip carries the stream on",
            ", ".join(cut),
        )
    if not problems:
        return
    sparing = sparing_allocations(method.allocation)
    advice = advice or (
        f"Lower the sparsity, use an allocation that spares small layers (e.g. method.allocation={sparing}), "
        "exclude the layer (method.exclude=[...]), or"
    )
    message = (
        f"Layer collapse at sparsity={1.0 - density:g} with method.allocation={method.allocation}, "
        f"method.structure={method.structure}: " + "; ".join(problems) + ". The network is disconnected."
    )
    if not method.allow_collapse:
        raise LayerCollapse(f"{message} {advice} accept it with method.allow_collapse=true.")
    log.warning("%s Kept: method.allow_collapse=true accepts it.", message)  # not advice to set what is set


def check_masks(masks: Masks, layers: dict, density: float, method) -> None:
    """Raise LayerCollapse for an empty layer or a cut path (unless method.allow_collapse), and
    PruneCliError when the achieved density misses the target by more than method.sparsity_tolerance.
    Messages speak the user's unit, sparsity = 1 - density."""
    from ..models.masks import count
    from .registries import ALLOCATIONS, SCORES

    check_collapse(masks, layers, density, method)
    sparsity = 1.0 - density
    kept, total = count(masks)
    achieved = 1.0 - kept / total
    # measured against the target in whole weights, round(d N), so tiny layers are not flagged for rounding (a
    # structure may reach neither: its warning, report_balance, names the sparsities it does reach)
    reachable = 1.0 - round(total * density) / total
    bernoulli = SCORES.get(method.score).selection(method) == "bernoulli"
    inexact = not ALLOCATIONS.get(method.allocation).exact_total(method)
    tolerance = float(method.sparsity_tolerance)
    if abs(achieved - reachable) > tolerance:
        message = (
            f"achieved sparsity {achieved:.5f} differs from the target sparsity={sparsity:g} (in whole weights: "
            f"{reachable:.5f}, round((1 - sparsity) N) kept of N = {total}) by more than "
            f"method.sparsity_tolerance={tolerance} (method.allocation={method.allocation}, "
            f"method.structure={method.structure}). " + _why_inexact(method)
        )
        if bernoulli or inexact:
            log.warning(
                "%s (expected: %s)",
                message,
                "Bernoulli sampling" if bernoulli else f"method.allocation={method.allocation} does not promise the exact total",
            )
        else:
            raise PruneCliError(message)


def _why_inexact(method) -> str:
    from .registries import ALLOCATIONS, STRUCTURES

    hint = STRUCTURES.get(method.structure).inexact_hint or ALLOCATIONS.get(method.allocation).inexact_hint
    return hint or "Raise method.sparsity_tolerance to accept it."


def checked_scores(scores, params: dict, name: str) -> dict:
    """A score function's result, held to the contract every score (also a plugin's) keeps: a dict
    with a tensor shaped like each prunable weight. Anything else crashed deep inside the allocation
    or the structure, reported as a bug in prune-cli; now the message names the score and the miss."""
    from .registries import PluginResultError, check_per_weight

    label, contract = f"method.score={name}", "a score returns {weight name: tensor shaped like the weight} for every prunable weight"
    check_per_weight(scores, params, label, "score", contract)
    for n, p in params.items():
        s = scores[n]
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != tuple(p.shape):
            got = f"a tensor of shape {tuple(s.shape)}" if isinstance(s, torch.Tensor) else f"a {type(s).__name__}"
            raise PluginResultError(label, f"{n}: {got}, not {tuple(p.shape)}", contract)
    return {n: scores[n] for n in params}


def _prune_once(model, params, ctx: PruneContext, layers) -> Masks:
    """One scoring round to `ctx.density`: score, allocate counts, build structured masks."""
    from .ablations import invert_scores
    from .registries import ALLOCATIONS, SCORES, STRUCTURES
    from .structure import StructureContext

    method, current = ctx.method, ctx.masks
    score = SCORES.get(method.score)
    # a copy: a score may share storage with the weights (`p.detach()`), and the -inf below is written in place
    returned = checked_scores(score.fn(model, params, ctx), params, method.score)
    scores = {name: s.detach().float().clone() for name, s in returned.items()}
    for name, s in scores.items():
        if torch.isnan(s).any():
            raise PruneCliError(f"method.score={method.score} produced NaN scores for {name}")
        if current is not None and name in current:
            s.masked_fill_(~current[name].to(s.device), float("-inf"))
    counts = ALLOCATIONS.get(method.allocation)(invert_scores(scores) if method.invert else scores, ctx.density, ctx)
    sctx = StructureContext(method=method, layers=layers, density=ctx.density, invert=method.invert, signed=score.signed(method))
    structured = STRUCTURES.get(method.structure).masks(scores, counts, score.selection(method), sctx)
    masks = {}
    for name in params:
        m = structured[name].cpu()
        if current is not None and name in current:
            m = m & current[name].cpu()
        masks[name] = m
    return masks
