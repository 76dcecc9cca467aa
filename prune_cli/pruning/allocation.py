"""Allocations: how many weights each layer keeps, given scores and a global density."""

from __future__ import annotations

import torch

from . import ALLOCATIONS


def round_half_even(x: float) -> int:
    return int(round(x))  # Python's round is half-to-even, as in the LAP reference code


@ALLOCATIONS.register("global")
def allocate_global(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """One ranking over all prunable weights; ties broken by flat index (lower index kept)."""
    flat = torch.cat([s.flatten().cpu() for s in scores.values()])
    keep = round_half_even(density * flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices[:keep]
    sizes = torch.tensor([s.numel() for s in scores.values()])
    layer_of = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    per_layer = torch.bincount(layer_of[order], minlength=len(sizes)).tolist()
    return dict(zip(scores, per_layer))


@ALLOCATIONS.register("layerwise")
def allocate_layerwise(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """The same density in every prunable layer."""
    return {name: round_half_even(density * s.numel()) for name, s in scores.items()}
