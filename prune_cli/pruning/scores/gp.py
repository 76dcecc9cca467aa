"""Gradient-magnitude pruning GP: score |w * g| (ShrinkBench `GlobalMagGrad`, the UP paper's GP).

g is the gradient of the training cross-entropy (no weight-decay term) over `method.batches`
minibatches of `method.batch_size`, with the model in `method.bn_mode` (train by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.config_base import config_schema
from . import register_score
from .common import DataScoreConfig, draw_batches, loss_gradients, scoring_mode


@config_schema("method", "gp")
@dataclass
class GPConfig(DataScoreConfig):
    pass


def weight_gradients(model, params, ctx, score: str) -> dict[str, torch.Tensor]:
    """d loss / d w for the prunable weights, on the method's training batches."""
    m = ctx.method
    batches = draw_batches(ctx, m.batches, m.batch_size, m.batch_seed, score)
    names = list(params)
    with scoring_mode(model, train=m.bn_mode == "train"):
        grads = loss_gradients(model, [params[n] for n in names], batches, ctx.loss_fn)
    return dict(zip(names, grads))


@register_score("gp", "gradient_magnitude", options=DataScoreConfig)
def gp_scores(model, params, ctx):
    grads = weight_gradients(model, params, ctx, "gp")
    return {n: (params[n].detach() * grads[n]).abs() for n in params}
