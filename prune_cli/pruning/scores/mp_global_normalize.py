"""Global normalised magnitude pruning (LAP code's `MP_Global(normalize=True)`; docs/scores.md).

Each layer's |w| tensor is divided by its own L2 norm before the one global ranking, so layers
compete on relative rather than absolute magnitude.
"""

from __future__ import annotations

from . import register_score


@register_score("mp_global_normalize", layer_normalised=lambda method: "method.score")
def mp_global_normalize_scores(model, params, ctx):
    scores = {}
    for name, p in params.items():
        s = p.detach().abs()
        norm = s.norm()
        scores[name] = s / norm if float(norm) > 0 else s
    return scores
