"""`method.allocation=global`: one ranking of all prunable weights, cut at the global density
(magnitude pruning as in Han et al. 2015 and ShrinkBench's global baselines; docs/allocation.md)."""

from __future__ import annotations

import torch

from ..allocation import ThresholdOptions, kept_count, register_allocation, strict_kth_kept_at_most, threshold_impl


def global_kept_at_most(sizes: dict[str, int], method, density: float) -> int | None:
    """With threshold_impl=strict_kth, the most its one ranking keeps: N - max(1, ceil((1 - d) N)) of all N, what it
    keeps without ties (ties prune more; docs/allocation.md). None for the other rules (topk and lap_round keep
    round(d N) exactly; shrinkbench_quantile keeps ties, so they can keep more)."""
    if method.threshold_impl != "strict_kth":
        return None
    return strict_kth_kept_at_most(sum(sizes.values()), density)


@register_allocation(
    "global", counts_from_scores_only=True, options=ThresholdOptions, kept_at_most=global_kept_at_most
)  # method.threshold_impl
def allocate_global(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """One ranking over all prunable weights; ties broken by flat index (lower index kept)."""
    flat = torch.cat([s.flatten().cpu() for s in scores.values()])
    keep = kept_count(flat, density, threshold_impl(ctx))
    order = torch.sort(flat, descending=True, stable=True).indices[:keep]
    sizes = torch.tensor([s.numel() for s in scores.values()])
    layer_of = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    per_layer = torch.bincount(layer_of[order], minlength=len(sizes)).tolist()
    return dict(zip(scores, per_layer))
