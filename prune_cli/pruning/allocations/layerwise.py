"""`method.allocation=layerwise`: the same density in every prunable layer (docs/allocation.md)."""

from __future__ import annotations

import torch

from ..allocation import ThresholdOptions, kept_count, register_allocation, threshold_impl


@register_allocation(
    "layerwise",
    counts_from_scores_only=True,
    options=ThresholdOptions,  # method.threshold_impl
    # round(d n) per layer; the quantile and strict-kth rules count ties among the scores
    counts_from_shapes=lambda method: method.threshold_impl in ("topk", "lap_round"),
)
def allocate_layerwise(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """The same density in every prunable layer."""
    return {name: kept_count(s, density, threshold_impl(ctx)) for name, s in scores.items()}
