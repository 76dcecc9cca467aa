"""A per-process memo of loaded datasets, so that the runs of a sweep share one load.

Hydra's basic launcher runs the jobs of `prune-run -m ...` one after another in one process; without
the memo every job reads (or generates) its dataset again: CIFAR-10's pickles are decoded and
standardised per run. `load_raw(node)` returns what the dataset's loader returns for `node`
(`DATASETS.get(node.name)(node)`), loading it once per process per dataset config:

- The key is the loader and the whole resolved dataset node (every option, also those only the
  splits read: a different value of any option is a different entry; a relative `root` as the folder it
  names from the working directory). The run's seed is not part of
  it because a loader never receives it; the only way a run's data can depend on the seed is through
  the global random streams, and a loader that draws from them is never memoised (below).
- Copy-on-use: every call returns fresh copies of the tensors, so a run that changes its data in place
  cannot change what a later run gets (a copy costs a memcpy; the load it replaces decodes files).
- A loader that draws from torch's, NumPy's or Python's global random streams is not memoised: its
  data could depend on the run's seed, and skipping it would shift every draw that follows (the model's
  initialisation). This is detected, not declared: the global states are compared before and after
  the load (the first MNIST-1D generation, which seeds NumPy, is such a load; later runs read the file).
- The memo keeps the most recently used datasets up to `PRUNE_CLI_DATA_MEMO_MB` megabytes of tensors
  (default 4096; `0` turns the memo off, for measuring it: scripts/bench_sweep.py --memo-off).

Measurements: docs/performance.md ("Sweeps").
"""

from __future__ import annotations

import math

import dataclasses
import json
import logging
import os
from collections import OrderedDict

import torch
from omegaconf import DictConfig, OmegaConf

from ..core import random_streams
from ..core.paths import with_located_data
from . import DATASETS
from .splits import RawData

log = logging.getLogger(__name__)

MEMO_ENV = "PRUNE_CLI_DATA_MEMO_MB"
DEFAULT_MEMO_MB = 4096

_MEMO: OrderedDict[tuple, RawData] = OrderedDict()  # most recently used last
STATS = {"hits": 0, "misses": 0, "not_memoised": 0}  # this process's counts (tests, benchmarks)


def memo_limit_bytes() -> int:
    """The memo's size limit from PRUNE_CLI_DATA_MEMO_MB (0 turns it off)."""
    value = os.environ.get(MEMO_ENV, "").strip()
    try:
        mb = float(value) if value else DEFAULT_MEMO_MB
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb) or mb < 0:  # not a number, nan or inf (int() of them raised), or negative
        log.warning(
            "%s=%r is not a size; allowed: a number of megabytes >= 0 (0 turns the dataset memo off); using %d",
            MEMO_ENV,
            value,
            DEFAULT_MEMO_MB,
        )
        mb = DEFAULT_MEMO_MB
    return int(mb * 2**20)


def clear() -> None:
    """Forget every memoised dataset (and the counts)."""
    _MEMO.clear()
    STATS.update(hits=0, misses=0, not_memoised=0)


def _tensors(raw: RawData) -> dict[str, torch.Tensor]:
    return {f.name: getattr(raw, f.name) for f in dataclasses.fields(raw) if isinstance(getattr(raw, f.name), torch.Tensor)}


def _nbytes(raw: RawData) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(raw).values())


def _copy(raw: RawData) -> RawData:
    return dataclasses.replace(raw, **{k: t.clone() for k, t in _tensors(raw).items()})


def memo_key(node: DictConfig) -> tuple:
    """The loader and the whole resolved dataset node, a relative data folder as the folder it names from here
    (prune_cli/core/paths.py `with_located_data`: `root=data` from two working directories is two datasets)."""
    loader = DATASETS.get(node.name)
    plain = with_located_data(node, OmegaConf.to_container(node, resolve=True))
    return loader, json.dumps(plain, sort_keys=True, default=str)


def load_raw(node: DictConfig) -> RawData:
    """The raw dataset for `node` (a copy of the memoised one when this process loaded it before)."""
    limit = memo_limit_bytes()
    key = memo_key(node)
    if limit and key in _MEMO:
        _MEMO.move_to_end(key)
        STATS["hits"] += 1
        log.info("dataset %s: reused from this process's memo (no load)", node.name)
        return _copy(_MEMO[key])
    before = random_streams.capture()
    raw = key[0](node)
    if not limit:
        return raw
    if not random_streams.same(before, random_streams.capture()):
        STATS["not_memoised"] += 1
        log.info("dataset %s: not memoised (its loader draws from the global random streams)", node.name)
        return raw
    STATS["misses"] += 1
    size = _nbytes(raw)
    if size <= limit:
        _MEMO[key] = _copy(raw)  # the run gets `raw`; the memo keeps its own copy
        while sum(_nbytes(r) for r in _MEMO.values()) > limit:
            _MEMO.popitem(last=False)
    return raw
