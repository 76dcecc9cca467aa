"""prune-cli: an experiment runner for neural-network pruning research."""

__version__ = "0.1.0"
