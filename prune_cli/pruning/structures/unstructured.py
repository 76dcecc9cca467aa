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
            # Scores are i.i.d. U(0,1): keeping u >= 1 - d keeps each weight with probability d = k/n.
            out[name] = score >= 1.0 - k / score.numel()
        else:
            out[name] = top_k_mask(score, k, sctx.invert)
    return out
