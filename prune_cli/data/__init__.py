"""Datasets: each source is a plugin module here that registers a loader (`@DATASETS.register`,
found by discovery, prune_cli/core/plugins.py, and imported when chosen); `build_splits` applies
the options common to all."""

from ..core.registry import Registry

DATASETS: Registry = Registry("dataset", "dataset.name")

from .splits import DataSplits, build_splits  # noqa: E402

__all__ = ["DATASETS", "DataSplits", "build_splits"]
