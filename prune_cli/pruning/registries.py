"""The registries of the three parts of a pruning method; they fill lazily (prune_cli/core/registry.py)."""

from ..core.registry import Registry

SCORES: Registry = Registry("score", "method.score")
ALLOCATIONS: Registry = Registry("allocation", "method.allocation")
STRUCTURES: Registry = Registry("structure", "method.structure")
