"""`method.structure=unstructured`: single weights, the top-k scores of each layer's allocated count
(or, for i.i.d. U(0,1) scores, Bernoulli sampling with the layer's density)."""

from __future__ import annotations

import torch

from ..structure import StructureContext, register_structure, top_k_mask


@register_structure("unstructured", single_weights=True)
def unstructured(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    out = {}
    for name, score in scores.items():
        k = counts[name]
        if selection == "bernoulli":
            # Scores are i.i.d. U(0,1) on the weights still alive (pruned ones score -inf): keeping
            # u >= 1 - k/alive keeps each of them with probability k/alive, k on average. Over all n
            # weights (k/n) the rounds' densities multiplied: 0.9 in 3 rounds ended at 0.99.
            alive = int(torch.isfinite(score).sum())
            out[name] = score >= 1.0 - k / alive if alive else torch.zeros_like(score, dtype=torch.bool)
        else:
            out[name] = top_k_mask(score, k, sctx.invert)
    return out
