"""`method.allocation=layerwise`: the same density in every prunable layer (docs/allocation.md)."""

from __future__ import annotations

import torch

from ..allocation import ThresholdOptions, kept_count, register_allocation, strict_kth_kept_at_most, threshold_impl


def layerwise_empties(model, selected: dict, method, density: float, earlier: tuple | None = ()):
    """The layers layerwise leaves no weight, where the pre-run pass knows it without the scores (the block and
    bcr checks, prune_cli/pruning/structure.py `may_empty`): none with threshold_impl=shrinkbench_quantile,
    which keeps every score >= np.quantile(s, 1 - d), a value no larger than the layer's largest score, so
    at least that one (docs/allocation.md); strict_kth keeps the scores above its n_prune-th smallest, so
    how many depends on their ties: None, the run decides (topk and lap_round are `counts_from_shapes`).
    `earlier` (the densities of the run's earlier allocations) does not enter: neither rule reads the masks."""
    return set() if method.threshold_impl == "shrinkbench_quantile" else None


def layerwise_kept_at_most(sizes: dict[str, int], method, density: float) -> int | None:
    """With threshold_impl=strict_kth, the most it keeps in all: each layer's n - max(1, ceil((1 - d) n)), what it
    keeps without ties (ties prune more; docs/allocation.md). None for the other rules (topk and lap_round are
    `counts_from_shapes`; shrinkbench_quantile keeps ties, so they can keep more)."""
    if method.threshold_impl != "strict_kth":
        return None
    return sum(strict_kth_kept_at_most(n, density) for n in sizes.values())


@register_allocation(
    "layerwise",
    counts_from_scores_only=True,
    options=ThresholdOptions,  # method.threshold_impl
    # round(d n) per layer; the quantile and strict-kth rules count ties among the scores
    counts_from_shapes=lambda method: method.threshold_impl in ("topk", "lap_round"),
    empties=layerwise_empties,
    kept_at_most=layerwise_kept_at_most,
)
def allocate_layerwise(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """The same density in every prunable layer."""
    return {name: kept_count(s, density, threshold_impl(ctx)) for name, s in scores.items()}
