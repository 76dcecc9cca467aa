"""Analysis math used by the optional metrics: empirical NTK, Hessian spectrum, pruning limit.

The functions here work on plain models and tensors (no Experiment), so scripts and tests can
call them directly; `prune_cli.metrics.{ntk,hessian,pruning_limit}` wire them into runs.
"""
