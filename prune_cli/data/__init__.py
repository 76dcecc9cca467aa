"""Datasets: each source registers a loader; `build_splits` applies the options common to all."""

from ..core.registry import Registry

DATASETS: Registry = Registry("dataset", "dataset.name")

from . import mnist1d, synthetic, vision  # noqa: E402,F401  (register the sources)
from .splits import DataSplits, build_splits  # noqa: E402

__all__ = ["DATASETS", "DataSplits", "build_splits"]
