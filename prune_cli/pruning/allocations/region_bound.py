"""`method.allocation=region_bound`: per-layer densities that maximise the expected region bound.

Cai et al. (CPAIOR 2023): at a fixed global density, choose the densities of the pruned fully
connected layers to maximise ln E[UB] (expected rank-aware bound, prune_cli.analysis.regions.bounds),
then keep each layer's top-scored weights at its density. Two pruned layers use the paper's
`lagrange3` procedure; more use a budget-preserving coordinate search. Unpruned layers keep
their current density (1 for a dense classifier). At a later pruning event or scoring round each
pruned layer's density is capped at the fraction of it still alive (masks only shrink; the bound's
optimum is not monotone in the target: docs/allocation.md). Plain fully connected chains only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig
from torch import nn

from ...core.checks import check
from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError
from ..allocation import counts_from_densities, register_allocation, round_half_even

log = logging.getLogger(__name__)

SEARCHES = ("auto", "lagrange3", "search")


@config_schema("method", "region_bound")
@dataclass
class RegionBoundMethodConfig(MethodConfig):
    bound_rank_model: str = "binomial"  # binomial (analytic) | montecarlo
    bound_objective_n0: str = "full"  # full (real input dimension) | plane (n0 = 2, count-oriented)
    bound_search: str = "auto"  # auto (two pruned layers: the better of lagrange3 and search; else search) | lagrange3 | search

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        m = cfg.method
        check(
            m.bound_rank_model in ("binomial", "montecarlo"),
            "method.bound_rank_model",
            m.bound_rank_model,
            "one of binomial, montecarlo",
        )
        check(m.bound_objective_n0 in ("full", "plane"), "method.bound_objective_n0", m.bound_objective_n0, "one of full, plane")
        check(m.bound_search in SEARCHES, "method.bound_search", m.bound_search, "one of " + ", ".join(SEARCHES))


def check_linear_only(model, selected: dict, method: DictConfig) -> None:
    """The bound covers fully connected layers: every pruned layer must be a Linear."""
    bad = [n for n, p in selected.items() if p.dim() != 2]
    if bad:
        raise ConfigError(
            "method.allocation",
            "region_bound",
            "a method that prunes only Linear layers with it",
            f"The bound covers the fully connected part; exclude {', '.join(bad)} with method.exclude=[...].",
        )


def check_region_bound_model(model, selected: dict, method: DictConfig) -> None:
    """Before any work (the pre-run pass runs it on the meta model; pruner.check_against_model): every
    pruned layer a Linear (`check_linear_only`); a plain chain, since the bound (Cai et al. 2023;
    docs/regions.md) counts the regions of a chain of rectified layers, and a residual section adds its
    input back (the regions metric's `bound_scope` says the bounds do not apply there); and
    `bound_search=lagrange3`, the paper's procedure for two pruned layers, only with two (it raised
    from inside the search, in the pre-run check or after dense training)."""
    check_linear_only(model, selected, method)
    if hasattr(model, "residual_sections"):
        raise ConfigError(
            "method.allocation",
            "region_bound",
            "a plain fully connected chain for it (a model without residual connections)",
            f"The expected region bound covers plain fully connected chains; {type(model).__name__} has residual connections "
            "(docs/allocation.md, region_bound): use another allocation.",
        )
    search = _options(method)("bound_search")
    pruned = [name for name, m in model.prunable_layers() if isinstance(m, nn.Linear) and f"{name}.weight" in selected]
    if search == "lagrange3" and len(pruned) != 2:
        raise ConfigError(
            "method.bound_search",
            search,
            f"auto or search here: lagrange3 needs exactly two pruned layers, and this run prunes {len(pruned)} ({', '.join(pruned)})",
            "Or prune exactly two fully connected layers (method.exclude=[...], method.exclude_classifier=true).",
        )


def layer_plan(model: nn.Module, names: list[str]) -> tuple[list[int], list[int], list[bool], list[float]]:
    """Widths n = [n0, n1, ...] of the fully connected part, weight counts, which are pruned, densities."""
    layers = [(name, m) for name, m in model.prunable_layers()]
    check_linear_only(model, {f"{n}.weight": m.weight for n, m in layers if f"{n}.weight" in names}, None)
    linear = [(name, m) for name, m in layers if isinstance(m, nn.Linear)]
    n = [linear[0][1].in_features] + [m.out_features for _, m in linear]
    dims = [m.weight.numel() for _, m in linear]
    pruned = [f"{name}.weight" in names for name, _ in linear]
    dens = [float(torch.count_nonzero(m.weight)) / m.weight.numel() for _, m in linear]
    return n, dims, pruned, dens


def _chosen_counts(
    n,
    dims,
    pruned,
    current,
    sizes: dict[str, int],
    linear: list[str],
    density: float,
    option,
    seed: int,
    alive: dict[str, int] | None = None,
):
    """({linear weight: chosen density}, the kept count of each weight in `sizes`, the pruned ones): the
    densities the bound search chooses for the fully connected part (widths `n`, weight counts `dims`, which are `pruned`, the others'
    `current` densities), rounded to exactly round(d N) in all, as every allocation keeps
    (largest-remainder rounding of the chosen densities).

    `alive`: the weights still unmasked in each pruned layer at a later pruning event or scoring round
    (default: all). Masks only shrink, so each layer's density is capped at alive / size, in the search
    and in the rounding: the bound's optimum is not monotone in the target, and an uncapped choice asked
    a layer for more than it had left, so an iterative run missed its target (docs/allocation.md)."""
    from ...analysis.regions.bounds import choose_layer_densities

    if option("bound_objective_n0") == "plane":
        n = [2] + n[1:]
    fixed = [1.0 if p else d for p, d in zip(pruned, current)]
    weights = [f"{name}.weight" for name in linear]
    caps = None
    if alive is not None and any(alive[w] < sizes[w] for w in sizes):
        caps = tuple(alive[w] / sizes[w] if w in sizes else 1.0 for w in weights)
    if option("bound_rank_model") == "binomial":
        chosen = _binomial_densities(tuple(n), density, tuple(dims), tuple(pruned), option("bound_search"), tuple(fixed), caps)
    else:
        chosen = choose_layer_densities(
            n,
            density,
            dims,
            pruned,
            method=option("bound_search"),
            rank_model=option("bound_rank_model"),
            fixed=fixed,
            seed=seed,
            caps=caps,
        )
    per_layer = dict(zip(weights, chosen))
    total = round_half_even(density * sum(sizes.values()))
    if alive is not None:  # a target above what is alive keeps all of it (the pruner's check names the miss)
        total = min(total, sum(alive.values()))
    return per_layer, counts_from_densities({name: per_layer[name] for name in sizes}, sizes, total, limits=alive)


@functools.lru_cache(maxsize=64)
def _binomial_densities(
    n: tuple, density: float, dims: tuple, pruned: tuple, search: str, fixed: tuple, caps: tuple | None = None
) -> tuple[float, ...]:
    """The binomial rank model's search, once per widths, target, options and caps: it draws nothing (the seed
    does not enter), so the pre-run check's answer (`region_bound_empties`, the collapse check) is the
    run's, and the run does not search again (1-3 s on the default res_mlp, measured before region_bound
    refused residual models). A tuple: the cached answer
    cannot be changed by a caller."""
    from ...analysis.regions.bounds import choose_layer_densities

    return tuple(choose_layer_densities(list(n), density, list(dims), list(pruned), search, "binomial", list(fixed), caps=caps))


def _options(method):
    def option(name: str):
        """method.allocation=region_bound also works under another method's config (the region_bound
        preset sweeps it against layerwise under method=magnitude): then the schema's defaults apply."""
        return getattr(method, name, getattr(RegionBoundMethodConfig, name))

    return option


def region_bound_empties(model, selected: dict, method: DictConfig, density: float, earlier: tuple | None = ()) -> Optional[set[str]]:
    """Before the run (the collapse check, prune_cli/run/prevalidate.py `_check_no_layer_emptied`; the block
    and bcr pre-run checks, prune_cli/pruning/structure.py `may_empty`): the weights region_bound leaves
    with no weight at `density`, or None where that is not known before the run. `earlier`: the densities
    of the run's allocations before this one (earlier pruning events and scoring rounds), () for one made
    on the dense model, None where they are not known (gradual's events, before the training split's
    size is).

    With the binomial rank model the chosen densities are a fact of the widths, the weight counts, which
    layers are pruned, the method's options, the target and what earlier allocations left alive (each
    layer's cap; unstructured masks keep exactly the counts, so the earlier allocations are replayed
    here): the search keeps every pruned layer's density above 0 where its cap is (coordinate_search
    moves only to densities in (0, cap]; lagrange3's points lie strictly inside the feasible segment, or
    at a cap), and a layer keeps 0 weights only where its d_l n_l < 1 and the largest-remainder rounding
    gives it no unit. The unpruned fully connected layers are dense at every pruning event (only the
    pruned weights are ever masked), which is what the run reads from their nonzero weights. The
    Monte-Carlo rank model draws with a seed of each pruning event (run/experiment.py), so its choice is
    left to the run: None."""
    option = _options(method)
    if option("bound_rank_model") != "binomial" or earlier is None:
        return None
    layers = [(name, m) for name, m in model.prunable_layers() if isinstance(m, nn.Linear)]
    shapes = tuple((f"{name}.weight", m.in_features, m.out_features) for name, m in layers)
    sizes = tuple((name, int(p.numel())) for name, p in selected.items())
    key = (option("bound_objective_n0"), option("bound_search"))
    return set(_planned_empties(shapes, sizes, float(density), key, tuple(float(d) for d in earlier)))


@functools.lru_cache(maxsize=64)
def _planned_empties(shapes: tuple, sizes: tuple, density: float, key: tuple, earlier: tuple = ()) -> tuple[str, ...]:
    """`region_bound_empties`'s answer, once per layers, targets and options (the search takes seconds on a
    wide model; the pre-run pass asks again once the data is loaded): the allocations at `earlier`, each
    capped by what the one before kept, then the one at `density`."""
    names = dict(sizes)
    n = [shapes[0][1]] + [out for _, _, out in shapes]
    dims = [i * o for _, i, o in shapes]
    pruned = [name in names for name, _, _ in shapes]
    options = {"bound_objective_n0": key[0], "bound_search": key[1], "bound_rank_model": "binomial"}
    linear = [name[: -len(".weight")] for name, _, _ in shapes]
    alive = None
    for d in (*earlier, density):
        _, alive = _chosen_counts(n, dims, pruned, [1.0] * len(shapes), names, linear, d, options.get, 0, alive)  # binomial: no seed
    return tuple(name for name, k in alive.items() if k == 0)


@register_allocation(
    "region_bound", check_model=check_region_bound_model, empties=region_bound_empties, counts_without_score_values=lambda method: True
)
def allocate_region_bound(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    n, dims, pruned, current = layer_plan(ctx.model, list(scores))
    linear = [name for name, m in ctx.model.prunable_layers() if isinstance(m, nn.Linear)]
    sizes = {name: s.numel() for name, s in scores.items()}
    masks = getattr(ctx, "masks", None) or {}
    alive = {name: int(masks[name].sum()) if name in masks else size for name, size in sizes.items()}
    seed = int(ctx.generator.initial_seed())
    per_layer, counts = _chosen_counts(n, dims, pruned, current, sizes, linear, density, _options(ctx.method), seed, alive)
    log.info("region_bound densities: %s", {k: round(v, 6) for k, v in per_layer.items() if k in scores})
    return counts
