"""Undecayed Pruning UP (Good et al., NeurIPS 2022): score |-w * g + lam * w^2|.

`-w*g` is the first-order change of the *undecayed* data loss when w is zeroed; `lam * w^2` adds
back the part the weight decay explains. lam defaults to the training weight decay
(`${train.weight_decay}` in configs/method/undecayed.yaml; docs/scores.md); the gradient is that of
the cross-entropy alone (PyTorch applies decay inside the optimizer), model in train mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from ...core.config_base import config_schema
from ...core.errors import ConfigError
from . import register_score
from .common import DataScoreConfig
from .gp import weight_gradients


@config_schema("method", "undecayed")
@dataclass
class UndecayedConfig(DataScoreConfig):
    lam: float = 5e-4  # the reference code's hard-coded value; the YAML ties it to train.weight_decay
    score_abs: bool = True  # rank by |s| (the paper); false ranks by the signed s (keep the largest)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        lam = cfg.method.lam
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise ConfigError("method.lam", lam, "a finite number >= 0 (usually equal to train.weight_decay)")


def undecayed_signed(method) -> bool:
    """-w * g + lam * w^2 takes either sign; the paper ranks by its absolute value (score_abs=true, >= 0),
    score_abs=false ranks by the signed value."""
    return not getattr(method, "score_abs", True)


@register_score("undecayed", options=UndecayedConfig, signed=undecayed_signed)
def undecayed_scores(model, params, ctx):
    lam = float(ctx.method.lam)
    grads = weight_gradients(model, params, ctx, "undecayed")
    scores = {}
    for n, p in params.items():
        w = p.detach()
        s = -w * grads[n] + lam * w**2
        scores[n] = s.abs() if ctx.method.score_abs else s
    return scores
