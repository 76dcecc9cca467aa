"""`method.allocation=region_bound`: per-layer densities that maximise the expected region bound.

Cai et al. (CPAIOR 2023): at a fixed global density, choose the densities of the pruned fully
connected layers to maximise ln E[UB] (expected rank-aware bound, prune_cli.analysis.regions.bounds),
then keep each layer's top-scored weights at its density. Two pruned layers use the paper's
`lagrange3` procedure; more use a budget-preserving coordinate search. Unpruned layers keep
their current density (1 for a dense classifier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from ...core.checks import check
from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError
from ..allocation import counts_from_densities, register_allocation, total_kept

log = logging.getLogger(__name__)

SEARCHES = ("auto", "lagrange3", "search")


@config_schema("method", "region_bound")
@dataclass
class RegionBoundMethodConfig(MethodConfig):
    bound_rank_model: str = "binomial"  # binomial (analytic) | montecarlo
    bound_objective_n0: str = "full"  # full (real input dimension) | plane (n0 = 2, count-oriented)
    bound_search: str = "auto"  # auto (lagrange3 for two pruned layers, else search) | lagrange3 | search

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


@register_allocation("region_bound", check_model=check_linear_only)
def allocate_region_bound(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    from ...analysis.regions.bounds import choose_layer_densities

    method = ctx.method

    def option(name: str):
        """method.allocation=region_bound also works under another method's config (the region_bound
        preset sweeps it against layerwise under method=magnitude): then the schema's defaults apply."""
        return getattr(method, name, getattr(RegionBoundMethodConfig, name))

    n, dims, pruned, current = layer_plan(ctx.model, list(scores))
    if option("bound_objective_n0") == "plane":
        n = [2] + n[1:]
    fixed = [1.0 if p else d for p, d in zip(pruned, current)]
    chosen = choose_layer_densities(
        n,
        density,
        dims,
        pruned,
        method=option("bound_search"),
        rank_model=option("bound_rank_model"),
        fixed=fixed,
        seed=int(ctx.generator.initial_seed()),
    )
    linear = [name for name, m in ctx.model.prunable_layers() if isinstance(m, nn.Linear)]
    per_layer = dict(zip([f"{name}.weight" for name in linear], chosen))
    log.info("region_bound densities: %s", {k: round(v, 6) for k, v in per_layer.items() if k in scores})
    # exactly round(d N) in all, as every allocation keeps (largest-remainder rounding of the chosen densities)
    return counts_from_densities(
        {name: per_layer[name] for name in scores}, {n: s.numel() for n, s in scores.items()}, total_kept(scores, density)
    )
