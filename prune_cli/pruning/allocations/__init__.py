"""Allocation plugins: one module per rule for how many weights each layer keeps (prune_cli/pruning/allocation.py)."""
