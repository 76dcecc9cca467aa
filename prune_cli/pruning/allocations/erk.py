"""`method.allocation=er | erk | erk_plus`: Erdos-Renyi layer densities (Mocanu et al. 2018; ERK from
RigL, Evci et al., ICML 2020; erk_plus from Liu et al., "The Unreasonable Effectiveness of Random
Pruning", ICLR 2022). Sparse layers get densities proportional to (fan-in + fan-out) / size, so
small layers stay denser (docs/allocation.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf

from ...core.checks import check, finite, fraction
from ...core.errors import ConfigError, PruneCliError
from ..allocation import counts_from_densities, layer_roles, register_allocation, round_half_even, total_kept


@dataclass
class ErkOptions:
    """The option of er and erk."""

    erk_power: float = 1.0  # raw densities raised to this power (RigL's erk_power_scale)

    in_every_run_id: ClassVar[bool] = True  # a MethodConfig field before allocations declared their options

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        power = OmegaConf.select(cfg, f"{key}.erk_power")
        check(finite(power) and power > 0, f"{key}.erk_power", power, "a number > 0")


@dataclass
class ErkPlusOptions(ErkOptions):
    """The options of erk_plus: ERK's, and the classifier's density."""

    fc_density: float = 1.0  # density of the classifier (1.0 = dense)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        fraction(cfg, f"{key}.fc_density", 0.0, 1.0, hi_open=False)


def raw_erk(shape: torch.Size, kernel: bool, power: float = 1.0) -> float:
    """ER: (n_in + n_out) / (n_in n_out); ERK: sum(shape) / prod(shape) (equal for linear layers)."""
    dims = list(shape) if kernel else list(shape[:2])
    return (sum(dims) / math.prod(dims)) ** power


def erk_densities(shapes: dict[str, torch.Size], density: float, kernel: bool = True, power: float = 1.0) -> dict[str, float]:
    """The epsilon loop of RigL's get_sparsities_erdos_renyi (Evci et al., ICML 2020; docs/allocation.md), in floats.

    d_l = eps * raw_l with eps chosen so that sum d_l N_l = density * sum N_l; a layer whose d_l
    would exceed 1 becomes dense (all layers tied at the largest raw density at once) and eps is
    recomputed over the others."""
    if density >= 1.0:
        return {n: 1.0 for n in shapes}
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: raw_erk(shapes[n], kernel, power) for n in shapes}
    dense: set[str] = set()
    while True:
        live = [n for n in shapes if n not in dense]
        if not live:
            raise PruneCliError(
                f"ERK at density {density:.12g}: every layer would have to be dense, so this "
                "density cannot be reached; use a lower density (higher sparsity)."
            )
        rhs = sum(density * sizes[n] for n in live) - sum((1 - density) * sizes[n] for n in dense)
        eps = rhs / sum(raw[n] * sizes[n] for n in live)
        top = max(raw[n] for n in live)
        if eps * top > 1 + 1e-12:  # the margin only absorbs float error at exactly 1
            dense |= {n for n in live if raw[n] == top}
            continue
        break
    if eps < 0:
        raise PruneCliError(f"ERK at density {density:.12g}: the dense layers hold more weights than the budget.")
    return {n: (1.0 if n in dense else eps * raw[n]) for n in shapes}


def _erk_counts(scores, density: float, ctx, kernel: bool) -> dict[str, int]:
    shapes = {n: s.shape for n, s in scores.items()}
    dens = erk_densities(shapes, density, kernel, float(ctx.method.erk_power))
    return counts_from_densities(dens, {n: s.numel() for n, s in scores.items()}, total_kept(scores, density))


@register_allocation("er", counts_from_scores_only=True, counts_from_shapes=lambda method: True, options=ErkOptions)
def allocate_er(scores, density: float, ctx) -> dict[str, int]:
    """Erdos-Renyi: d_l proportional to (n_in + n_out) / (n_in n_out), kernel size ignored."""
    return _erk_counts(scores, density, ctx, kernel=False)


@register_allocation("erk", counts_from_scores_only=True, counts_from_shapes=lambda method: True, options=ErkOptions)
def allocate_erk(scores, density: float, ctx) -> dict[str, int]:
    """Erdos-Renyi-Kernel: d_l proportional to sum(shape) / prod(shape) (RigL, Liu et al. 2022)."""
    return _erk_counts(scores, density, ctx, kernel=True)


def _rest_density(sizes: dict[str, int], fc: str, fc_density: float, density: float, fill: bool = False) -> float:
    """The density erk_plus gives the layers other than the classifier `fc`; a ConfigError when it
    leaves [0, 1] (the classifier's fixed count exceeds or falls short of the total). `fill`: above 1 the
    others are dense (1.0) instead, and the classifier keeps the rest (`allocate_erk_plus`)."""
    n_fc, n_all = sizes[fc], sum(sizes.values())
    rest = (density * n_all - fc_density * n_fc) / (n_all - n_fc) if n_all > n_fc else 0.0
    if fill and rest > 1.0:
        return 1.0
    if not 0.0 <= rest <= 1.0:
        raise ConfigError(
            "method.fc_density",
            fc_density,
            f"a classifier density that leaves the other layers a density in [0, 1] at density {density:.12g} "
            f"(they would get {rest:.4f})",
        )
    return rest


def check_erk_plus_density(model, selected: dict, method, density: float) -> None:
    """Before any data (the pre-run pass): the classifier's density leaves the others one in [0, 1];
    and `fc_density`, which sets the classifier's, is left at its default when the classifier is not
    pruned (excluded), where it did nothing."""
    _, fc = layer_roles(selected, SimpleNamespace(model=model))
    if fc is None:
        if float(method.fc_density) != 1.0:
            raise ConfigError(
                "method.fc_density",
                method.fc_density,
                "1.0 (its default) when the classifier is not pruned (method.exclude_classifier or method.exclude): "
                "it sets the classifier's density",
            )
        return
    _rest_density({n: p.numel() for n, p in selected.items()}, fc, float(method.fc_density), density)


@register_allocation("erk_plus", options=ErkPlusOptions, check_density=check_erk_plus_density, counts_from_shapes=lambda method: True)
def allocate_erk_plus(scores, density: float, ctx) -> dict[str, int]:
    """ERK over all layers but the classifier, which gets `method.fc_density` (Random_Pruning ImageNet).

    `fc_density` is the classifier's density at the target (checked before the run: `check_erk_plus_density`).
    A schedule's earlier events and scoring rounds are at higher densities, where the other layers would
    need more than all their weights beside a classifier at fc_density (gradual's first event, at sparsity 0,
    for any fc_density < 1): there the others stay dense and the classifier keeps the rest, more than
    fc_density, on its way down to it. Every gradual run with fc_density < 1 failed at that event."""
    _, fc = layer_roles(scores, ctx)
    if fc is None:
        return _erk_counts(scores, density, ctx, kernel=True)
    fc_density = float(ctx.method.fc_density)
    n_fc = scores[fc].numel()
    rest = _rest_density({n: s.numel() for n, s in scores.items()}, fc, fc_density, density, fill=True)
    others = {n: s for n, s in scores.items() if n != fc}
    counts = _erk_counts(others, rest, ctx, kernel=True) if others else {}
    k_fc = round_half_even(fc_density * n_fc)
    if rest == 1.0:  # the others dense: the classifier keeps what the total leaves
        k_fc = min(n_fc, total_kept(scores, density) - sum(s.numel() for s in others.values()))
    # the others absorb the rounding so the total is exactly round(density * N)
    counts = counts_from_densities(
        {n: counts[n] / others[n].numel() for n in others}, {n: others[n].numel() for n in others}, total_kept(scores, density) - k_fc
    )
    return {n: (k_fc if n == fc else counts[n]) for n in scores}
