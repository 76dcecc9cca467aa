"""`method.allocation=explicit`: the user gives one density per prunable layer (docs/allocation.md),
e.g. densities found by another study, to reproduce a published per-layer profile exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from omegaconf import DictConfig

from ...core.checks import check, finite
from ...core.errors import ConfigError
from ..allocation import check_implied_sparsity, register_allocation, round_half_even


@dataclass
class ExplicitOptions:
    layer_densities: Optional[list[float]] = None  # one density per prunable layer, forward order

    exclusive: ClassVar[tuple] = ("layer_densities",)  # a list without allocation=explicit is a mistake
    in_every_run_id: ClassVar[bool] = True  # a MethodConfig field before allocations declared their options


def _length_error(given: list, names: list[str]) -> ConfigError:
    return ConfigError(
        "method.layer_densities",
        given,
        f"a list of {len(names)} densities in [0, 1], one per prunable layer in forward order: {', '.join(names)}",
    )


def check_explicit(cfg: DictConfig) -> None:
    dens = None if cfg.method.layer_densities is None else list(cfg.method.layer_densities)
    check(
        bool(dens) and all(finite(d) and 0 <= d <= 1 for d in dens),
        "method.layer_densities",
        dens,
        "a list of densities in [0, 1], one per prunable layer in forward order, with method.allocation=explicit",
    )


def check_explicit_model(model, selected: dict, method: DictConfig) -> None:
    given = list(method.layer_densities or [])
    if len(given) != len(selected):
        raise _length_error(given, list(selected))


def check_explicit_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """The counts the densities give, sum of round(d_l N_l), against the target's round(d N), as the
    pruner holds them (within method.sparsity_tolerance): a fact of the layer shapes, found before
    dense training."""
    given = list(method.layer_densities or [])
    if len(given) != len(selected):
        return  # check_explicit_model names the length
    kept = sum(round_half_even(float(d) * p.numel()) for d, p in zip(given, selected.values()))
    check_implied_sparsity(kept, sum(p.numel() for p in selected.values()), density, method, "method.layer_densities imply")


@register_allocation(
    "explicit",
    options=ExplicitOptions,
    check=check_explicit,
    check_model=check_explicit_model,
    check_density=check_explicit_density,
    fixes_final_densities=lambda method: True,
    counts_from_shapes=lambda method: True,
    inexact_hint="The densities in method.layer_densities imply a different total; make them agree with sparsity.",
)
def allocate_explicit(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """`method.layer_densities`: one density per prunable layer in forward order (k_l = round(d_l N_l))."""
    given = list(ctx.method.layer_densities or [])
    names = list(scores)
    if len(given) != len(names):
        raise _length_error(given, names)
    return {n: round_half_even(float(d) * scores[n].numel()) for n, d in zip(names, given)}
