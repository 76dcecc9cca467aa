"""Magnitude pruning: score |w| (Han et al. 2015; global MP of ShrinkBench and the UP paper)."""

from __future__ import annotations

from . import register_score


@register_score("magnitude", same_every_round=True)
def magnitude_scores(model, params, ctx):
    return {name: p.detach().abs() for name, p in params.items()}
