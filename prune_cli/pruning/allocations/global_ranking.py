"""`method.allocation=global`: one ranking of all prunable weights, cut at the global density
(magnitude pruning as in Han et al. 2015 and ShrinkBench's global baselines; docs/allocation.md)."""

from __future__ import annotations

import torch

from ..allocation import ThresholdOptions, kept_count, register_allocation, threshold_impl


@register_allocation("global", counts_from_scores_only=True, options=ThresholdOptions)  # method.threshold_impl
def allocate_global(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """One ranking over all prunable weights; ties broken by flat index (lower index kept)."""
    flat = torch.cat([s.flatten().cpu() for s in scores.values()])
    keep = kept_count(flat, density, threshold_impl(ctx))
    order = torch.sort(flat, descending=True, stable=True).indices[:keep]
    sizes = torch.tensor([s.numel() for s in scores.values()])
    layer_of = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    per_layer = torch.bincount(layer_of[order], minlength=len(sizes)).tolist()
    return dict(zip(scores, per_layer))
