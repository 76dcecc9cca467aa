"""Analysis math: empirical NTK, Hessian spectrum, pruning limit, representation similarity,
membership inference, recall distortion and linear-region counting (regions/).

The functions here work on plain models and tensors (no Experiment), so scripts and tests can
call them directly; the adapters in `prune_cli.metrics` (one module per metric, same name) wire
them into runs and turn their results into rows.
"""
