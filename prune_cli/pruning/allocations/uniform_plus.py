"""`method.allocation=uniform_plus`: the first layer dense, the classifier at 0.2 below 20 %
density, the rest uniform (Gale et al. 2019, as used by Liu et al., ICLR 2022; docs/allocation.md)."""

from __future__ import annotations

from ...core.errors import PruneCliError
from ..allocation import counts_from_densities, layer_roles, register_allocation, round_half_even, total_kept


@register_allocation("uniform_plus", exact_total=lambda method: not method.faithful_uniform_plus)
def allocate_uniform_plus(scores, density: float, ctx) -> dict[str, int]:
    """First layer dense; classifier at 0.2 when density < 0.2; the rest uniform (Random_Pruning CIFAR).

    Default: the rest is re-balanced so the total equals the target,
    d' = (d N_all - N_first - 0.2 N_fc) / (N_all - N_first - N_fc) (fc term only when d < 0.2).
    `method.faithful_uniform_plus=true` reproduces the reference code: d' = (d N_all - N_first
    - 0.2 N_fc) / N_all when d < 0.2, else plain d (the realised density then differs from d)."""
    first, fc = layer_roles(scores, ctx)
    sizes = {n: s.numel() for n, s in scores.items()}
    n_all = sum(sizes.values())
    fixed: dict[str, float] = {}
    if first is not None:
        fixed[first] = 1.0
    if fc is not None and fc != first and density < 0.2:
        fixed[fc] = 0.2
    rest = [n for n in sizes if n not in fixed]
    n_rest = sum(sizes[n] for n in rest)
    if ctx.method.faithful_uniform_plus:
        if density < 0.2:
            d_rest = (density * n_all - sum(fixed[n] * sizes[n] for n in fixed)) / n_all
        else:
            d_rest = density
        dens = {**{n: d_rest for n in rest}, **fixed}
        return {n: round_half_even(min(max(dens[n], 0.0), 1.0) * sizes[n]) for n in sizes}
    kept_fixed = sum(fixed[n] * sizes[n] for n in fixed)
    d_rest = (density * n_all - kept_fixed) / n_rest if n_rest else 0.0
    if not 0.0 <= d_rest <= 1.0 + 1e-12:
        raise PruneCliError(
            f"uniform_plus at density {density}: the dense first layer{' and the 0.2-density classifier' if fc in fixed else ''} "
            f"hold {kept_fixed:.0f} of the {density * n_all:.0f} weights the target allows, leaving the other layers "
            f"density {d_rest:.4f}. Use a higher density, method.allocation=layerwise, or exclude the first layer."
        )
    dens = {**{n: d_rest for n in rest}, **fixed}
    return counts_from_densities(dens, sizes, total_kept(scores, density), frozen=tuple(fixed))
