"""Score functions: score(model, params, ctx) -> {param name: tensor}; higher = more important.

Each score is a plugin module here declaring `@register_score("name", ...)` (and, if it has
options, `@config_schema("method", "name")` on its config dataclass); discovery
(prune_cli/core/plugins.py) imports it when a config chooses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from omegaconf import DictConfig

from ...core.config_base import MethodConfig


def exact_selection(method: DictConfig) -> str:
    return "exact"


def never_negative(method: DictConfig) -> bool:
    return False


def never_normalised(method: DictConfig) -> Optional[str]:
    return None


@dataclass(frozen=True)
class Score:
    fn: Callable
    # How the allocated counts turn into masks: "exact" top-k, or "bernoulli" for i.i.d. U(0,1) scores.
    selection: Callable[[DictConfig], str] = exact_selection
    # The config class holding the options the score reads (a DataScoreConfig, GraspConfig, ...); a method
    # config that selects the score must carry them (checked before the run by run/prevalidate.py).
    options: type = MethodConfig
    # Whether the survivors' scores are the same in every scoring round of one pruning event (|w|: the
    # weights do not change between rounds), so method.rounds > 1 ends with the one-round mask.
    same_every_round: bool = False
    # Whether the method's scores can be negative (GraSP's (H g) w; undecayed with score_abs=false). The
    # structures that rank groups of weights (channel, channel_group, block, bcr) then rank a group by
    # the signed sum of its scores (a first-order estimate of removing it is additive, and a strongly
    # negative group must rank low, not high as its |.| norm would), and method.group_norm=l2 is refused
    # before the run (prune_cli/pruning/structure.py GroupNormOptions). False: every score is >= 0 (or
    # -inf, already pruned), where the signed sum equals the l1 norm.
    signed: Callable[[DictConfig], bool] = never_negative
    # The key that asks for each layer's scores to be divided by their norm (mp_global_normalize's score,
    # LAP's method.normalize; Park et al., ICLR 2020, the global variants), or None: a per-layer factor that only
    # a ranking across layers sees, so the pre-run pass refuses it with an allocation whose per-layer counts
    # are fixed by the shapes (prune_cli/run/prevalidate.py `_validate_allocation_structure`).
    layer_normalised: Callable[[DictConfig], Optional[str]] = never_normalised


def register_score(
    *names: str,
    selection: Callable[[DictConfig], str] = exact_selection,
    options: type = MethodConfig,
    same_every_round: bool = False,
    signed: Callable[[DictConfig], bool] = never_negative,
    layer_normalised: Callable[[DictConfig], Optional[str]] = never_normalised,
):
    from ..registries import SCORES

    def decorator(fn: Callable) -> Callable:
        SCORES.register(*names)(Score(fn, selection, options, same_every_round, signed, layer_normalised))
        return fn

    return decorator
