"""SynFlow (Tanaka et al., NeurIPS 2020): data-free, iterative synaptic-flow conservation.

One call scores one round: on a copy of the (already masked) model with every parameter and
buffer replaced by its absolute value, in eval mode (BatchNorm linearised with its running
statistics) and in float64 by default, R = 1^T f(1) for an all-ones input of the data's shape;
score = |dR/dtheta * theta|. The pruner runs `method.rounds` rounds with the exponential density
schedule (configs/method/synflow.yaml: 100), re-scoring the masked model each round.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ...core.config_base import MethodConfig, config_schema
from . import register_score
from .common import named_weights, require_data


@config_schema("method", "synflow")
@dataclass
class SynflowConfig(MethodConfig):
    double: bool = True  # float64 forward/backward: products of many layers under/overflow in float32


@register_score("synflow")
def synflow_scores(model, params, ctx):
    data = require_data(ctx, "synflow")  # only for the input shape: no example is read
    dtype = torch.float64 if ctx.method.double else torch.float32
    net = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    weights = named_weights(net, list(params))
    device = weights[0].device
    x = torch.ones(1, *data.input_shape, dtype=dtype, device=device)
    grads = torch.autograd.grad(net(x).sum(), weights)
    raw = {n: (g * w).detach().abs() for n, g, w in zip(params, grads, weights)}
    # The pruner ranks float32 scores: scale by the largest score so huge/tiny float64 values fit.
    top = max(float(s.max()) for s in raw.values())
    scale = top if top > 0 else 1.0
    return {n: (s / scale).to(params[n].dtype) for n, s in raw.items()}
