"""MNIST-1D (Greydanus 2020), generated procedurally by the mnist1d package and cached on disk."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator

import logging
import os
import time
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..core.atomic_io import atomic_write_bytes
from ..core.checks import check, data_seed
from ..core.errors import DatasetFileUnreadable
from ..core.config_base import DatasetConfig, config_schema
from ..core.writable import directory_problem
from . import DATASETS
from .splits import RawData

log = logging.getLogger(__name__)


@config_schema("dataset", "mnist1d")
@dataclass
class Mnist1dConfig(DatasetConfig):
    # total, a multiple of 10 (num_samples // 10 of each class); mnist1d keeps 80 % for training, 20 % for
    # test. The published dataset (Greydanus 2020) is num_samples=5000 with data_seed=42 (4000 train / 1000
    # test); the default is twice as many examples.
    num_samples: int = 10000
    data_seed: int = 42  # mnist1d's generation seed (42, the published dataset's)
    cache_dir: str = "~/.cache/prune-cli/mnist1d"
    path_options: ClassVar[tuple[str, ...]] = ("cache_dir",)  # DatasetConfig.path_options
    declared_total_exact: ClassVar[bool] = True  # the package's 80 % of num_samples (`training_examples`)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        value = OmegaConf.select(cfg, f"{key}.num_samples")
        check(
            isinstance(value, int) and value >= 100 and value % CLASSES == 0,
            f"{key}.num_samples",
            value,
            "a multiple of 10 >= 100",
            "The mnist1d package makes num_samples // 10 examples of each of its 10 classes: any other value was "
            "rounded down, the same data under another run id.",
        )
        data_seed(cfg, f"{key}.data_seed")
        _check_cache_dir(cfg, key)

    @staticmethod
    def check_writes(cfg: DictConfig, key: str) -> None:
        _check_cache_dir(cfg, key, try_create=True)  # as root, /proc passed `check` (os.access says yes)

    @classmethod
    def declared_input(cls, node):
        return (40,), 10  # the published MNIST-1D: 40-sample signals, 10 classes (Greydanus 2020)

    @classmethod
    def declared_train_examples(cls, node):
        # exact (the class counts of the shuffled split are not): declaring num_samples accepted a
        # max_train_samples between the training split and num_samples, which did nothing
        return training_examples(int(node.num_samples)), None

    @classmethod
    def source_files(cls, node):
        """The cached arrays the loader reads (DatasetConfig.source_files): generated from num_samples and
        data_seed, but a file replaced there (another mnist1d version's arrays, a copy from elsewhere) is
        read as it is, so its bytes are recorded like an image dataset's files."""
        cache = _cache_file(node)
        return {cache.name: str(cache)} if cache.is_file() else {}

    @classmethod
    def declared_test_examples(cls, node):
        # the package's split: what its 80 % leaves of the num_samples // 10 examples of each class
        return (int(node.num_samples) // CLASSES) * CLASSES - training_examples(int(node.num_samples))


# the mnist1d package's split: num_samples // 10 examples of each class, shuffled, the first 80 % for training
TRAIN_SPLIT = 0.8


def training_examples(num_samples: int) -> int:
    """The training examples the mnist1d package makes of `num_samples` (its `int(len(ys) * train_split)`)."""
    return int((num_samples // CLASSES) * CLASSES * TRAIN_SPLIT)


def _cache_file(node: DictConfig) -> Path:
    """Where the arrays of this num_samples and data_seed are cached."""
    return Path(os.path.expanduser(node.cache_dir)) / f"mnist1d_n{node.num_samples}_seed{node.data_seed}.npz"


def _check_cache_dir(cfg: DictConfig, key: str, try_create: bool = False) -> None:
    """`dataset.cache_dir` is a directory prune-run can write or create (prune_cli/core/writable.py), as
    results_dir is, checked before anything is created: a regular file there failed after the run
    directory existed, naming no key. A read-only folder is fine when it already holds this cache; a
    cache file there that does not hold the dataset cannot be set aside and generated again (the run
    warned that it moved the file, then failed on the move, naming no key). `try_create`: tried by making
    and removing an empty directory there (`Mnist1dConfig.check_writes`, where a run is about to start)."""
    node = OmegaConf.select(cfg, key)
    value = node.cache_dir
    problem = directory_problem(value, try_create) if isinstance(value, str) and value.strip() else "it is empty"
    cache = _cache_file(node)
    if problem and problem.endswith("is not writable") and cache.is_file():
        # a shared, read-only cache: read, never written, so it must hold this dataset
        stat = cache.stat()
        unfit = _read_only_cache_problem(str(cache), stat.st_mtime_ns, stat.st_size, node.num_samples)
        problem = f"{problem}, and its {cache.name} does not hold the dataset ({unfit}): remove that file" if unfit else None
    check(
        problem is None,
        f"{key}.cache_dir",
        value,
        "a directory prune-run can write or create (the generated MNIST-1D is cached there)",
        f"Here {problem}." if problem else "",
    )


def _generate(num_samples: int, data_seed: int) -> dict[str, np.ndarray]:
    """The mnist1d package's dataset. Its `make_dataset` seeds and draws from numpy's and Python's global
    generators, which the run had seeded for itself (prune_cli/core/random_streams.py): a first run, which
    generates the data, left them elsewhere than a run that finds the cache (models audit of 2026-12-03: a
    plugin drawing from them got other numbers on the first run). Their states are put back."""
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {k: data[k] for k in ("x", "y", "x_test", "y_test")}


SIGNAL_LENGTH, CLASSES = 40, 10  # the published MNIST-1D (Greydanus 2020), as declared_input says


def _misfit(arrays: dict[str, np.ndarray], num_samples: int) -> str | None:
    """Why cached arrays are not MNIST-1D of `num_samples` examples, or None when they are: finite float
    signals of 40 samples, one integer label in 0..9 per signal, and the mnist1d package's count
    (num_samples // 10 examples of each of the 10 classes, 80 % of them for training). A NaN or inf
    signal was used: the run then diverged and blamed the learning rate."""
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        x, y = arrays[xs], arrays[ys]
        if x.ndim != 2 or x.shape[1] != SIGNAL_LENGTH or not np.issubdtype(x.dtype, np.floating):
            return f"{xs} is {x.dtype} of shape {x.shape}, not float signals of {SIGNAL_LENGTH} samples"
        bad_values = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad_values:
            return f"{xs} holds {bad_values} value(s) that are not finite (NaN or inf)"
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            return f"{ys} is {y.dtype} of shape {y.shape}, not one integer label for each of the {len(x)} signals of {xs}"
        bad = np.unique(y[(y < 0) | (y >= CLASSES)])
        if len(bad):
            return f"{ys} holds {', '.join(str(v) for v in bad[:10])}, not a class 0..{CLASSES - 1}"
    total, expected = len(arrays["x"]) + len(arrays["x_test"]), (num_samples // CLASSES) * CLASSES
    train = training_examples(num_samples)
    if total != expected or len(arrays["x"]) != train or not len(arrays["x_test"]):
        return (
            f"{len(arrays['x'])} training and {len(arrays['x_test'])} test examples, not {train} and {expected - train} "
            f"(num_samples={num_samples})"
        )
    return None


def _read_cache(cache: Path, num_samples: int) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None (generated again) when the file cannot be read as them or they do not
    fit (`_misfit`: a label outside the classes dropped examples or crashed the evaluation, a signal of
    another length changed the model's input): it is moved aside as <name>.corrupt-<time>-<pid> with a
    warning, as an unreadable dense-cache entry is."""
    arrays, problem = _cache_problem(cache, num_samples)
    if problem is None:
        return arrays
    aside = cache.with_name(f"{cache.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(cache, aside)
    except OSError as err:  # the folder became read-only after the pre-run check
        raise DatasetFileUnreadable(
            f"MNIST-1D cache {cache} (dataset.cache_dir) does not hold the dataset ({problem}) and cannot be set aside "
            f"({type(err).__name__}: {err}): remove that file, or choose another dataset.cache_dir"
        ) from None
    log.warning("MNIST-1D cache %s does not hold the dataset (%s); moved to %s, generating again", cache, problem, aside)
    return None


@functools.lru_cache(maxsize=8)
def _read_only_cache_problem(path: str, mtime_ns: int, size: int, num_samples: int) -> str | None:
    """`_cache_problem`'s answer for a file of a read-only cache, once per version of the file (its path,
    modification time and size): the pre-run pass checks every job of a sweep, and each would read it."""
    return _cache_problem(Path(path), num_samples)[1]


def _cache_problem(cache: Path, num_samples: int) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The cached arrays and None, or why the file does not hold MNIST-1D of `num_samples` examples."""
    try:
        with np.load(cache) as data:  # allow_pickle stays False: a cache never holds objects
            arrays = {k: data[k] for k in ("x", "y", "x_test", "y_test")}
    except Exception as err:  # noqa: BLE001 - any unreadable file: generate again, say so
        return None, f"unreadable: {type(err).__name__}: {err}"
    problem = _misfit(arrays, num_samples)
    return (arrays, None) if problem is None else (None, problem)


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


def _store(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    """Cache the generated arrays, written atomically (no temporary file left, docs/robustness.md "a full
    disk"). A cache that cannot be written (a full disk, a quota) is a warning naming the file and why: the
    arrays are in memory and the same whether cached or not (the run id does not depend on the cache), so
    the run goes on and the next run generates them again. Before, a full disk ended the run as a bug (an
    unnamed `OSError` from closing the zip file) and left its `<name>.<pid>.tmp.npz` for good."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)  # on a full disk a new folder needs a block too
        atomic_write_bytes(cache, buffer.getvalue())
    except OSError as err:
        log.warning(
            "MNIST-1D is not cached: cannot write %s (%s); the run goes on, and the next run generates the dataset again",
            cache,
            err.strerror or err,
        )


@DATASETS.register("mnist1d")
def load_mnist1d(cfg: DictConfig) -> RawData:
    cache = _cache_file(cfg)
    with _cache_lock(cache):  # concurrent runs: one generates (or sets an unreadable file aside), the others read
        arrays = _read_cache(cache, cfg.num_samples) if cache.exists() else None
        if arrays is None:
            log.info("generating MNIST-1D (%d samples); caching it at %s", cfg.num_samples, cache)
            arrays = _generate(cfg.num_samples, cfg.data_seed)
            _store(cache, arrays)
    return RawData(
        train_x=torch.from_numpy(arrays["x"]).float(),
        train_y=torch.from_numpy(arrays["y"]).long(),
        test_x=torch.from_numpy(arrays["x_test"]).float(),
        test_y=torch.from_numpy(arrays["y_test"]).long(),
        num_classes=10,
    )
