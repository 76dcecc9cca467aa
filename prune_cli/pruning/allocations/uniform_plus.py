"""`method.allocation=uniform_plus`: the first layer dense, the classifier at 0.2 where it would
get less, the rest uniform (Gale et al. 2019, as used by Liu et al., ICLR 2022; docs/allocation.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

from ...core.errors import ConfigError, PruneCliError
from ..allocation import counts_from_densities, layer_roles, register_allocation, round_half_even, total_kept


@dataclass
class UniformPlusOptions:
    faithful_uniform_plus: bool = False  # uniform_plus as coded in Random_Pruning (total != target)

    in_every_run_id: ClassVar[bool] = True  # a MethodConfig field before allocations declared their options


def _fixed_and_rest(sizes: dict[str, int], first, fc, density: float, faithful: bool = False) -> tuple[dict[str, float], float]:
    """The fixed layers' densities (first layer 1; classifier 0.2 where it would get less) and the
    density the other layers get so that the total is `density` (Gale et al.'s rule, re-balanced).
    The classifier is held at 0.2 whenever the re-balanced density of the layers it shares would fall
    below 0.2: the dense first layer pushes that below `density`, so "below density 0.2" (the
    reference code's test, kept with `faithful`) let it reach 0.137 at density 0.25."""
    fixed: dict[str, float] = {}
    if first is not None:
        fixed[first] = 1.0

    def rest_density() -> float:
        n_rest = sum(n for name, n in sizes.items() if name not in fixed)
        missing = density * sum(sizes.values()) - sum(fixed[n] * sizes[n] for n in fixed)
        if n_rest:
            return missing / n_rest
        # no other layer (a first layer and a classifier only): the fixed layers must hold the target
        # themselves, to within rounding; otherwise no density of the others reaches it (+-inf, refused)
        return 0.0 if abs(missing) <= 0.5 else math.copysign(math.inf, missing)

    if fc is not None and fc != first and (density < 0.2 if faithful else rest_density() < 0.2):
        fixed[fc] = 0.2
    d_rest = rest_density()
    # an exact 0 (the fixed layers hold the whole target) can come out as -3e-14 in floats
    return fixed, 0.0 if -1e-12 <= d_rest < 0.0 else d_rest


def _unreachable(sizes: dict[str, int], fixed: dict[str, float], first, fc, density: float, d_rest: float) -> str:
    kept_fixed = sum(fixed[n] * sizes[n] for n in fixed)
    rest = "and there is no other layer to make up the difference"
    if math.isfinite(d_rest):
        rest = f"leaving the other layers density {d_rest:.4f}"
    named = [what for what, held in (("the dense first layer", first in fixed), ("the 0.2-density classifier", fc in fixed)) if held]
    return (
        f"uniform_plus at density {density:.12g}: {' and '.join(named)} hold{'s' if len(named) == 1 else ''} {kept_fixed:.0f} "
        f"of the {density * sum(sizes.values()):.0f} weights the target allows, {rest}."
    )


def check_uniform_plus_density(model, selected, method, density: float) -> None:
    """Before any data: the default (re-balanced) rule needs the other layers' density in [0, 1] at the
    run's final density; found after dense training before (docs/robustness.md)."""
    if method.faithful_uniform_plus:
        return
    sizes = {n: p.numel() for n, p in selected.items()}
    first, fc = layer_roles(selected, SimpleNamespace(model=model))
    fixed, d_rest = _fixed_and_rest(sizes, first, fc, density)
    if not 0.0 <= d_rest <= 1.0 + 1e-12:
        raise ConfigError(
            "sparsity",
            round(1.0 - density, 12),
            "a sparsity this model's uniform_plus allocation can reach; or method.allocation=layerwise"
            + ("" if method.get("exclude_first") else ", or method.exclude_first=true"),
            _unreachable(sizes, fixed, first, fc, density, d_rest),
        )


@register_allocation(
    "uniform_plus",
    options=UniformPlusOptions,
    exact_total=lambda method: not method.faithful_uniform_plus,
    check_density=check_uniform_plus_density,
    counts_from_shapes=lambda method: True,
)
def allocate_uniform_plus(scores, density: float, ctx) -> dict[str, int]:
    """First layer dense; classifier at 0.2 where it would get less; the rest uniform (Random_Pruning CIFAR).

    Default: the rest is re-balanced so the total equals the target,
    d' = (d N_all - N_first - 0.2 N_fc) / (N_all - N_first - N_fc) (fc term only where the classifier
    among the others would get less than 0.2: (d N_all - N_first) / (N_all - N_first) < 0.2).
    `method.faithful_uniform_plus=true` reproduces the reference code: d' = (d N_all - N_first
    - 0.2 N_fc) / N_all when d < 0.2, else plain d (the realised density then differs from d)."""
    first, fc = layer_roles(scores, ctx)
    sizes = {n: s.numel() for n, s in scores.items()}
    n_all = sum(sizes.values())
    fixed, d_rest = _fixed_and_rest(sizes, first, fc, density, faithful=bool(ctx.method.faithful_uniform_plus))
    rest = [n for n in sizes if n not in fixed]
    if ctx.method.faithful_uniform_plus:
        if density < 0.2:
            d_rest = (density * n_all - sum(fixed[n] * sizes[n] for n in fixed)) / n_all
        else:
            d_rest = density
        dens = {**{n: d_rest for n in rest}, **fixed}
        return {n: round_half_even(min(max(dens[n], 0.0), 1.0) * sizes[n]) for n in sizes}
    if not 0.0 <= d_rest <= 1.0 + 1e-12:
        raise PruneCliError(
            _unreachable(sizes, fixed, first, fc, density, d_rest)
            + " Use a higher density, method.allocation=layerwise, or exclude the first layer."
        )
    dens = {**{n: d_rest for n in rest}, **fixed}
    return counts_from_densities(dens, sizes, total_kept(scores, density), frozen=tuple(fixed))
