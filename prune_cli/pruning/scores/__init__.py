"""Score functions: score(model, params, ctx) -> {param name: tensor}; higher = more important."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from omegaconf import DictConfig

from ...core.config_base import MethodConfig


def exact_selection(method: DictConfig) -> str:
    return "exact"


@dataclass(frozen=True)
class Score:
    fn: Callable
    # How the allocated counts turn into masks: "exact" top-k, or "bernoulli" for i.i.d. U(0,1) scores.
    selection: Callable[[DictConfig], str] = exact_selection
    # The config class holding the options the score reads (a DataScoreConfig, GraspConfig, ...); a method
    # config that selects the score must carry them (checked before the run by run/prevalidate.py).
    options: type = MethodConfig


def register_score(*names: str, selection: Callable[[DictConfig], str] = exact_selection,
                   options: type = MethodConfig):
    from .. import SCORES

    def decorator(fn: Callable) -> Callable:
        SCORES.register(*names)(Score(fn, selection, options))
        return fn

    return decorator


# Register the scores that live in their own modules (each declares its config schema too).
from . import (  # noqa: E402,F401
    gp, grasp, greedy_forward, lookahead, mp_global_normalize, snip, synflow, undecayed,
)
