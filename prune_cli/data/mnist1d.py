"""MNIST-1D (Greydanus 2020), generated procedurally by the mnist1d package and cached on disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..core.checks import check, data_seed, positive_int
from ..core.config_base import DatasetConfig, config_schema
from ..core.writable import directory_problem
from . import DATASETS
from .splits import RawData

log = logging.getLogger(__name__)


@config_schema("dataset", "mnist1d")
@dataclass
class Mnist1dConfig(DatasetConfig):
    num_samples: int = 10000  # total; mnist1d keeps 80 % for training, 20 % for test
    data_seed: int = 42  # mnist1d's generation seed (42 = the published dataset)
    cache_dir: str = "~/.cache/prune-cli/mnist1d"

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, f"{key}.num_samples", minimum=100)
        data_seed(cfg, f"{key}.data_seed")
        _check_cache_dir(cfg, key)

    @classmethod
    def declared_input(cls, node):
        return (40,), 10  # the published MNIST-1D: 40-sample signals, 10 classes (Greydanus 2020)

    @classmethod
    def declared_train_examples(cls, node):
        return int(node.num_samples), None  # an upper bound: 80 % of them are training examples


def _cache_file(node: DictConfig) -> Path:
    """Where the arrays of this num_samples and data_seed are cached."""
    return Path(os.path.expanduser(node.cache_dir)) / f"mnist1d_n{node.num_samples}_seed{node.data_seed}.npz"


def _check_cache_dir(cfg: DictConfig, key: str) -> None:
    """`dataset.cache_dir` is a directory prune-run can write or create (prune_cli/core/writable.py), as
    results_dir is, checked before anything is created: a regular file there failed after the run
    directory existed, naming no key. A read-only folder is fine when it already holds this cache."""
    node = OmegaConf.select(cfg, key)
    value = node.cache_dir
    problem = directory_problem(value) if isinstance(value, str) and value.strip() else "it is empty"
    if problem and problem.endswith("is not writable") and _cache_file(node).is_file():
        problem = None  # a shared, read-only cache holding this dataset: read, never written
    check(
        problem is None,
        f"{key}.cache_dir",
        value,
        "a directory prune-run can write or create (the generated MNIST-1D is cached there)",
        f"Here {problem}." if problem else "",
    )


def _generate(num_samples: int, data_seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    data = make_dataset(args)
    return {k: data[k] for k in ("x", "y", "x_test", "y_test")}


def _read_cache(cache: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (generated again) when the file cannot be read as them: it is moved
    aside as <name>.corrupt-<time>-<pid> with a warning, as an unreadable dense-cache entry is."""
    try:
        with np.load(cache) as data:  # allow_pickle stays False: a cache never holds objects
            arrays = {k: data[k] for k in ("x", "y", "x_test", "y_test")}
    except Exception as err:  # noqa: BLE001 - any unreadable file: generate again, say so
        aside = cache.with_name(f"{cache.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        log.warning("unreadable MNIST-1D cache %s (%s: %s); moved to %s, generating again", cache, type(err).__name__, err, aside)
        os.replace(cache, aside)
        return None
    return arrays


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """A file lock beside the cache file (`<name>.lock`): two runs finding the cache missing or unreadable
    at once both generated it, and both set an unreadable file aside, the second failing on the file the
    first had moved. A cache folder where no lock file can be made (read-only, shared) is read unlocked."""
    from filelock import FileLock

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(cache) + ".lock")
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


@DATASETS.register("mnist1d")
def load_mnist1d(cfg: DictConfig) -> RawData:
    cache = _cache_file(cfg)
    with _cache_lock(cache):  # concurrent runs: one generates (or sets an unreadable file aside), the others read
        arrays = _read_cache(cache) if cache.exists() else None
        if arrays is None:
            log.info("generating MNIST-1D (%d samples); caching it at %s", cfg.num_samples, cache)
            arrays = _generate(cfg.num_samples, cfg.data_seed)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, cache)
    return RawData(
        train_x=torch.from_numpy(arrays["x"]).float(),
        train_y=torch.from_numpy(arrays["y"]).long(),
        test_x=torch.from_numpy(arrays["x_test"]).float(),
        test_y=torch.from_numpy(arrays["y_test"]).long(),
        num_classes=10,
    )
