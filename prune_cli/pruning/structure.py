"""Structures: which entries of a layer are removed together. `unstructured` = single weights."""

from __future__ import annotations

import torch

from . import STRUCTURES


def top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores; ties broken by flat index (stable sort), so masks are deterministic."""
    flat = score.flatten()
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    return mask.view_as(score)


@STRUCTURES.register("unstructured")
def unstructured(score: torch.Tensor, k: int, selection: str) -> torch.Tensor:
    if selection == "bernoulli":
        # Scores are i.i.d. U(0,1): keeping u >= 1 - d keeps each weight with probability d = k/n.
        return score >= 1.0 - k / score.numel()
    return top_k_mask(score, k)
