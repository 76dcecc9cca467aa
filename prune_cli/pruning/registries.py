"""The registries of the three parts of a pruning method; they fill lazily (prune_cli/core/registry.py)."""

from ..core.errors import PruneCliError
from ..core.registry import Registry

SCORES: Registry = Registry("score", "method.score")
ALLOCATIONS: Registry = Registry("allocation", "method.allocation")
STRUCTURES: Registry = Registry("structure", "method.structure")


class PluginResultError(PruneCliError):
    """A score's or allocation's function returned something outside its contract (named, with what
    came back, instead of a crash further on that reads as a bug in prune-cli)."""

    def __init__(self, label: str, what: str, contract: str):
        super().__init__(f"{label} returned {what}; {contract}")


def check_per_weight(result, names, label: str, entry: str, contract: str) -> None:
    """`result` must be a dict with an entry for every name in `names` (the prunable weights)."""
    if not isinstance(result, dict):
        raise PluginResultError(label, f"a {type(result).__name__}, not a dict", contract)
    missing = [n for n in names if n not in result]
    if missing:
        raise PluginResultError(label, f"no {entry} for {', '.join(missing)}", contract)
