"""A score may return a tensor that shares storage with the weights (`p.detach()`: "a tensor shaped like the
weight", the plugin contract, docs/scores.md). The pruner marked the already-pruned weights of a later round with
-inf in place (`masked_fill_`), which wrote -inf into the model's weights; the mask then made them -inf x 0 = NaN
(scores audit of 2026-12-03, sixth session: a plugin score `rawweight` with method.rounds=2 ended in NaN outputs).
The reference here is the same score on a copy of the weights, which cannot reach the model. The same audit found
the README's "exactly round(density x N)" overstated for explicit densities (last test)."""

from __future__ import annotations

import dataclasses

import torch

from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.pruning import PruneContext, prune_to_density
from prune_cli.pruning.registries import SCORES
from tests.helpers import method_options


def _pruned(monkeypatch, score, densities) -> tuple[dict, dict]:
    """The masks and the weights after pruning a seeded MLP to each density in turn with `score`."""
    monkeypatch.setitem(SCORES._entries, "magnitude", dataclasses.replace(SCORES.get("magnitude"), fn=score))
    torch.manual_seed(0)
    model = MLP(2, [16, 16], 3)
    method = method_options(rounds=2, sparsity_tolerance=1.0)
    masks = None
    for density in densities:
        masks = prune_to_density(model, density, PruneContext(method=method, generator=torch.Generator().manual_seed(0), masks=masks))
        apply_masks(model, masks)
    return masks, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_a_score_sharing_the_weights_storage_leaves_the_weights_alone(monkeypatch):
    def shared(model, params, ctx):
        return {n: p.detach() for n, p in params.items()}  # the weights themselves (signed, as a plugin may)

    def copied(model, params, ctx):
        return {n: p.detach().clone() for n, p in params.items()}

    masks, weights = _pruned(monkeypatch, shared, [0.5, 0.25])
    ref_masks, ref_weights = _pruned(monkeypatch, copied, [0.5, 0.25])
    assert all(torch.isfinite(w).all() for w in weights.values()), "the score's -inf reached the weights"
    assert all(torch.equal(masks[n], ref_masks[n]) for n in ref_masks)
    assert all(torch.equal(weights[n], ref_weights[n]) for n in ref_weights)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.25 * 336)  # the FAST MLP's N = 336


def test_explicit_densities_keep_each_layers_rounded_count_not_round_d_n():
    """README ("Allocations"): explicit's per-layer densities are each rounded alone, so the total may differ from
    round(d N): [1.0, 0.434, 0.5] on the 2-16-16-3 MLP keeps 32 + round(111.104) + 24 = 167 of 336, not 168."""
    from prune_cli.pruning import prune

    torch.manual_seed(0)
    model = MLP(2, [16, 16], 3)
    method = method_options(allocation="explicit", layer_densities=[1.0, 0.434, 0.5])
    masks = prune(model, 0.5, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
    by_hand = [32, round(256 * 0.434), 24]
    assert [int(m.sum()) for m in masks.values()] == by_hand and sum(by_hand) == 167 != round(0.5 * 336)
    assert abs((1 - 167 / 336) - 0.5030) < 5e-5  # the achieved sparsity the README quotes


def test_matched_allocations_other_score_sharing_the_weights_leaves_them_alone(monkeypatch):
    """method.allocation=matched scores with another method (`match_method`) and marks the pruned weights -inf in
    place too (prune_cli/pruning/allocations/matched.py)."""

    def shared(model, params, ctx):
        return {n: p.detach() for n, p in params.items()}

    monkeypatch.setitem(SCORES._entries, "magnitude", dataclasses.replace(SCORES.get("magnitude"), fn=shared))
    torch.manual_seed(0)
    model = MLP(2, [16, 16], 3)
    masks = prune_to_density(model, 0.5, PruneContext(method=method_options(), generator=torch.Generator().manual_seed(0)))
    apply_masks(model, masks)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = method_options(allocation="matched", match_method="magnitude", sparsity_tolerance=1.0)
    prune_to_density(model, 0.25, PruneContext(method=method, generator=torch.Generator().manual_seed(0), masks=masks))
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters()), "scoring changed the weights"
