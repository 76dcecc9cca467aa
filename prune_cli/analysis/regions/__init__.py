"""Linear-region counting (line / plane / sample / exact) and the expected region bounds (docs/regions.md).

Plain models and tensors in, counts out; the `regions` metric (prune_cli/metrics/regions.py) turns
them into rows, and `method.allocation=region_bound` uses the bounds."""
