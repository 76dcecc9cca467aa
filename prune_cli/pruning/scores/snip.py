"""SNIP (Lee et al., ICLR 2019): connection sensitivity |g * w| / sum |g * w| on one minibatch.

dL/dc_j for mask variables c = 1 equals w_j * g_j. The normalisation does not change the
ranking; it makes scores comparable across runs. Meant for pruning at initialisation, but it
scores whatever weights the model holds when the pruning event happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.config_base import config_schema
from . import register_score
from .common import DataScoreConfig
from .gp import weight_gradients


@config_schema("method", "snip")
@dataclass
class SnipConfig(DataScoreConfig):
    pass


@register_score("snip", options=SnipConfig)
def snip_scores(model, params, ctx):
    grads = weight_gradients(model, params, ctx, "snip")
    raw = {n: (params[n].detach() * grads[n]).abs() for n in params}
    total = sum(s.sum() for s in raw.values())
    total = total if float(total) > 0 else torch.ones(())
    return {n: s / total for n, s in raw.items()}
