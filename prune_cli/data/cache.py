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
- Each load records its data files (`DatasetConfig.source_files`: size, modification time, sha256) as it reads
  them, and the memo keeps that record with the tensors (`load_raw_recorded`): a dense-cache entry or score file
  stores the record of the bytes its run actually trained on, not of the files as they are when it is stored
  (files replaced during a long dense training, or between the jobs of a sweep the memo serves, were recorded
  with their new bytes beside a model trained on the old ones). A memoised dataset whose files changed since
  (`changed_file`: their size and time, their bytes where the time differs) is read again, not reused.
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
from ..core.file_digest import changed_file, files_record
from ..core.paths import with_located_data
from . import DATASETS
from .splits import RawData

log = logging.getLogger(__name__)

MEMO_ENV = "PRUNE_CLI_DATA_MEMO_MB"
DEFAULT_MEMO_MB = 4096

_MEMO: OrderedDict[tuple, tuple[RawData, dict]] = OrderedDict()  # (data, its files' record), most recently used last
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
    return load_raw_recorded(node)[0]


def load_raw_recorded(node: DictConfig) -> tuple[RawData, dict]:
    """(the raw dataset for `node`, the `files_record` of the data files it was read from, taken at that read): a
    memoised dataset comes with the record of the read that loaded it, whatever the files hold now."""
    limit = memo_limit_bytes()
    key = memo_key(node)
    if limit and key in _MEMO:
        raw, record = _MEMO[key]
        # the files as they are now (a stat each; read only where the time differs): files replaced since the memo's
        # read, or an absolute dataset.root whose link now leads elsewhere (the key keeps its spelling), are read again
        changed, refreshed = changed_file(record, source_files(node))
        if changed is None:
            _MEMO[key] = (raw, refreshed)
            _MEMO.move_to_end(key)
            STATS["hits"] += 1
            log.info("dataset %s: reused from this process's memo (no load)", node.name)
            return _copy(raw), refreshed
        log.info("dataset %s: its files changed since this process read them (%s); reading them again", node.name, changed)
        del _MEMO[key]
    before = random_streams.capture()
    raw, record = _read_recorded(node, key[0])
    if not limit:
        return raw, record
    if not random_streams.same(before, random_streams.capture()):
        STATS["not_memoised"] += 1
        log.info("dataset %s: not memoised (its loader draws from the global random streams)", node.name)
        return raw, record
    STATS["misses"] += 1
    size = _nbytes(raw)
    if size <= limit:
        _MEMO[key] = (_copy(raw), record)  # the run gets `raw`; the memo keeps its own copy
        while sum(_nbytes(r) for r, _ in _MEMO.values()) > limit:
            _MEMO.popitem(last=False)
    return raw, record


def source_files(node: DictConfig) -> dict[str, str]:
    """{name: path} of the files a dataset node's data is read from (DatasetConfig.source_files; {} for a
    dataset without files, or a plugin's schema that declares none): what the memo, the dense cache and the
    score files record and check."""
    declared = getattr(OmegaConf.get_type(node), "source_files", None)
    return declared(node) if declared is not None else {}


def _stats(files: dict[str, str]) -> dict[str, tuple]:
    seen = {}
    for name, path in files.items():
        try:
            st = os.stat(path)
        except OSError:
            continue
        seen[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return seen


# a record that no file matches (prune_cli/core/file_digest.py `changed_file` compares size, then sha256)
CHANGED_WHILE_READ = {"size": -1, "mtime_ns": -1, "sha256": "changed while the dataset was read"}


def _read_recorded(node: DictConfig, loader) -> tuple[RawData, dict]:
    """The loader's data and the record of its files, hashed right after the read and checked against their size,
    modification time and inode seen before it (a file the loader itself creates, a download or MNIST-1D's first
    generation, counts as read as recorded). Files that changed during the read are read once more, the global
    random streams restored around that second read (the first read's draws stand, as without the check): a loader
    that replaced its own file (MNIST-1D moving an unreadable cache file aside and writing the dataset again) or a
    replacement finished by then gives a stable second read, whose data and record are returned; the check took
    the rebuilt file for an outside change, and the next process threw away the dense model trained on it. Files
    still changing: which bytes were read is unknown, so each gets a record no file matches (the entries stored
    from these data are never reused), with a warning."""
    raw, record, changed = _read_once(node, loader)
    if changed:
        streams = random_streams.capture()
        try:
            again, again_record, again_changed = _read_once(node, loader)
        finally:
            random_streams.restore(streams)
        if not again_changed:
            log.info("dataset %s: %s changed while it was read; read again, unchanged", node.name, ", ".join(changed))
            return again, again_record
        log.warning(
            "dataset %s: %s changed while it was read; a dense model or scores computed from these data are stored "
            "but never reused (their record matches no file)",
            node.name,
            ", ".join(again_changed),
        )
        record = {n: dict(CHANGED_WHILE_READ) for n in sorted(set(record) | set(again_record) | set(changed))}
    return raw, record


def _read_once(node: DictConfig, loader) -> tuple[RawData, dict, list[str]]:
    """(the loader's data, the record of its files hashed right after, the files whose size, time or inode differ
    from before the read or that could not be hashed)."""
    before = _stats(source_files(node))
    raw = loader(node)
    files = source_files(node)
    try:
        record = files_record(files)
    except OSError:  # removed between listing and reading
        record, after = {}, {}
    else:
        after = _stats(files)
    changed = sorted(n for n in set(before) | set(after) if (n in before and before[n] != after.get(n)) or n not in record)
    return raw, record, changed
