"""Generic ablations that apply to any method (docs/allocation.md; Synaptic-Flow's
--shuffle / --reinitialize / --invert, the "Missing the Mark" OpenLTH fork).

- invert (method.invert): rank by the lowest scores; applied by the pruner before allocation
  and structure (see `invert_scores` and StructureContext.invert).
- shuffle (method.shuffle): permute each layer's mask at random; keeps per-layer counts only.
- reinit (method.reinit): re-draw the surviving weights with the layer's default initialisation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.masks import Masks


def invert_scores(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Negate the scores so that "keep the highest" keeps the lowest; -inf (already pruned) stays -inf."""
    return {n: torch.where(torch.isneginf(s), s, -s) for n, s in scores.items()}


def shuffle_masks(masks: Masks, generator: torch.Generator, alive: Masks | None = None) -> Masks:
    """A uniformly random permutation of each layer's kept positions (same count per layer) over the
    positions the pruning event started from (`alive`, the run's masks before it; every position when
    none): a weight an earlier event removed stays removed, as in every other pruning event (masks only
    shrink). Over all positions, iterative pruning kept zeroed weights again."""
    out = {}
    for name, m in masks.items():
        flat = m.flatten()
        if alive is None or name not in alive:
            perm = torch.randperm(flat.numel(), generator=generator)
            out[name] = flat[perm].view_as(m)
            continue
        where = alive[name].flatten().to(flat.device).nonzero().squeeze(1)
        perm = torch.randperm(where.numel(), generator=generator).to(flat.device)
        shuffled = torch.zeros_like(flat)
        shuffled[where] = flat[where][perm]
        out[name] = shuffled.view_as(m)
    return out


@torch.no_grad()
def reinit_weights(model: nn.Module, masks: Masks, generator: torch.Generator) -> None:
    """Replace every masked weight by a fresh draw of its layer's default initialisation
    (`reset_parameters` on a CPU copy, seeded from the pruning event's generator), then apply the mask."""
    named = dict(model.named_modules())
    for name, mask in masks.items():
        module_name, _, param = name.rpartition(".")
        module = named[module_name]
        fresh = copy.deepcopy(module).cpu()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
        target = getattr(module, param)
        target.copy_(getattr(fresh, param).to(target.device, target.dtype) * mask.to(target.device, target.dtype))
