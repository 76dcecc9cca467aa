"""Pruning = score x allocation x structure; a schedule (prune_cli.schedules) decides when.

Add a score with `@SCORES.register("name")` in `scores/`, an allocation with
`@ALLOCATIONS.register(...)` in `allocation.py`, a structure with `@STRUCTURES.register(...)`.
"""

from ..core.registry import Registry

SCORES: Registry = Registry("score", "method.score")
ALLOCATIONS: Registry = Registry("allocation", "method.allocation")
STRUCTURES: Registry = Registry("structure", "method.structure")

from . import allocation, structure  # noqa: E402,F401  (register the built-ins)
from .scores import magnitude, random  # noqa: E402,F401
from .pruner import ScoreContext, prune, select_prunable  # noqa: E402
from . import region_bound  # noqa: E402,F401  (registers allocation=region_bound)

__all__ = ["SCORES", "ALLOCATIONS", "STRUCTURES", "ScoreContext", "prune", "select_prunable"]
