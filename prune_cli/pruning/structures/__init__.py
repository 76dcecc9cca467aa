"""Structure plugins: one module per way of removing weights together (prune_cli/pruning/structure.py)."""
