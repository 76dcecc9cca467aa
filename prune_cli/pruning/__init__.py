"""Pruning = score x allocation x structure; a schedule (prune_cli.schedules) decides when.

Each is a plugin module, found by discovery (prune_cli/core/plugins.py) and imported when a config
chooses it: a score in `scores/` (`@register_score`), an allocation in `allocations/`
(`@register_allocation`), a structure in `structures/` (`@register_structure`).
"""

from .pruner import PruneContext, prune, prune_to_density, select_prunable
from .registries import ALLOCATIONS, SCORES, STRUCTURES

__all__ = ["SCORES", "ALLOCATIONS", "STRUCTURES", "PruneContext", "prune", "prune_to_density", "select_prunable"]
