"""The per-process dataset memo of sweeps (prune_cli/data/cache.py; issue 12, docs/performance.md "Sweeps").

What it must guarantee, each checked against an independent computation (the loader called directly,
a run with an empty memo, a fresh `prune-run` process):
- the same dataset config is loaded once per process, and the copy a run gets equals a direct load;
- a different dataset config (any option) is a different entry: the loader runs again;
- a run that changes its data in place does not change what later runs get (copy-on-use);
- a loader that draws from the global random streams is never memoised (its data may depend on the
  run's seed, and skipping it would shift the draws that initialise the model);
- a run that reuses the memo writes exactly the results of a run in a fresh process.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.data import DATASETS
from prune_cli.data import cache
from prune_cli.data.synthetic import SyntheticConfig
from prune_cli.run.experiment import run
from tests.conftest import FAST
from tests.helpers import compose

from bench_sweep import TIMING  # noqa: E402  (the pattern the benchmark parses; tests.helpers put scripts/ on the path)


def node(**options):
    return OmegaConf.structured(SyntheticConfig(name="synthetic", samples_per_class=20, test_samples_per_class=10, **options))


@pytest.fixture
def counted(monkeypatch):
    """The synthetic loader, counting its calls (a registry entry of its own, so a memo key of its own)."""
    cache.clear()
    monkeypatch.delenv(cache.MEMO_ENV, raising=False)
    original = DATASETS.get("synthetic")
    calls = []

    def loader(cfg):
        calls.append(cfg.data_seed)
        return original(cfg)

    monkeypatch.setitem(DATASETS._entries, "synthetic", loader)
    yield calls, original
    cache.clear()


def same(a, b) -> bool:
    return (
        all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("train_x", "train_y", "test_x", "test_y"))
        and a.num_classes == b.num_classes
    )


def test_same_config_is_loaded_once_and_equals_a_direct_load(counted):
    calls, original = counted
    first, second = cache.load_raw(node()), cache.load_raw(node())
    assert calls == [0]
    assert cache.STATS["hits"] == 1 and cache.STATS["misses"] == 1
    direct = original(node())
    assert same(first, direct) and same(second, direct)
    assert first.train_x.data_ptr() != second.train_x.data_ptr()  # each call gets its own tensors


def test_a_different_dataset_config_is_a_different_entry(counted):
    calls, _ = counted
    base = cache.load_raw(node())
    other_seed = cache.load_raw(node(data_seed=1))
    other_noise = cache.load_raw(node(noise=0.1))
    split_only = cache.load_raw(node(val_fraction=0.2))  # conservative: any option is part of the key
    assert calls == [0, 1, 0, 0]
    assert cache.STATS["hits"] == 0
    assert not torch.equal(other_seed.train_x, base.train_x)
    assert not torch.equal(other_noise.train_x, base.train_x)
    assert same(split_only, base)


def test_a_run_that_changes_its_data_in_place_does_not_change_the_next_runs(counted):
    _, original = counted
    got = cache.load_raw(node())
    got.train_x.mul_(0).add_(7)
    got.test_y.zero_()
    again = cache.load_raw(node())
    assert same(again, original(node()))


def test_a_loader_that_draws_from_the_global_random_streams_is_not_memoised(monkeypatch):
    cache.clear()
    calls = []
    original = DATASETS.get("synthetic")

    def noisy(cfg):  # e.g. a plugin that adds noise with torch.randn and no generator of its own
        calls.append(1)
        raw = original(cfg)
        raw.train_x = raw.train_x + 0.01 * torch.randn(raw.train_x.shape)
        return raw

    monkeypatch.setitem(DATASETS._entries, "synthetic", noisy)
    torch.manual_seed(3)
    a = cache.load_raw(node())
    after_a = torch.rand(1)
    torch.manual_seed(3)
    b = cache.load_raw(node())
    after_b = torch.rand(1)
    assert len(calls) == 2 and cache.STATS["not_memoised"] == 2 and cache.STATS["hits"] == 0
    assert torch.equal(a.train_x, b.train_x) and torch.equal(after_a, after_b)  # as without a memo
    for draw in (lambda: np.random.rand(), lambda: random.random()):  # NumPy's and Python's streams too
        cache.clear()
        calls.clear()
        monkeypatch.setitem(DATASETS._entries, "synthetic", lambda cfg, draw=draw: (calls.append(draw()), original(cfg))[1])
        cache.load_raw(node())
        cache.load_raw(node())
        assert len(calls) == 2


def test_memo_off_and_size_limit(counted, monkeypatch):
    calls, _ = counted
    monkeypatch.setenv(cache.MEMO_ENV, "0")
    cache.load_raw(node())
    cache.load_raw(node())
    assert calls == [0, 0]
    size_mb = (60 * 2 * 4 + 60 * 8 + 30 * 2 * 4 + 30 * 8) / 2**20  # 3 classes x (20 + 10) examples: 2 float32 features, int64 labels
    monkeypatch.setenv(cache.MEMO_ENV, str(1.5 * size_mb))  # room for one dataset of this size
    calls.clear()
    for seed in (0, 1, 0):  # the second evicts the first
        cache.load_raw(node(data_seed=seed))
    assert calls == [0, 1, 0]
    cache.load_raw(node(data_seed=0))
    assert calls == [0, 1, 0]


def _values(results) -> pd.DataFrame:
    (run_dir,) = (results / "runs").iterdir()
    frame = pd.read_csv(run_dir / "metrics.csv")
    return frame[["phase", "split", "metric", "value"]].sort_values(["phase", "split", "metric"]).reset_index(drop=True)


def test_a_run_reusing_the_memo_equals_a_run_with_an_empty_memo(tmp_path, caplog):
    """In one process: run seed 0, then seed 1 (a memo hit); then seed 1 again with the memo cleared.
    Each run logs where its time went (the line scripts/bench_sweep.py reads)."""
    caplog.set_level(logging.INFO, logger="prune_cli")
    cache.clear()
    run(compose([*FAST, "metrics.regions.enabled=false", "seed=0"], tmp_path / "a"), tmp_path / "a" / "runs" / "x")
    hits = cache.STATS["hits"]
    run(compose([*FAST, "metrics.regions.enabled=false", "seed=1"], tmp_path / "b"), tmp_path / "b" / "runs" / "x")
    assert cache.STATS["hits"] == hits + 1
    cache.clear()
    run(compose([*FAST, "metrics.regions.enabled=false", "seed=1"], tmp_path / "c"), tmp_path / "c" / "runs" / "x")
    assert cache.STATS["hits"] == 0
    pd.testing.assert_frame_equal(_values(tmp_path / "b"), _values(tmp_path / "c"))
    assert not _values(tmp_path / "a").equals(_values(tmp_path / "b"))  # the seed does reach the run
    timing = [r.getMessage() for r in caplog.records if " timing: " in r.getMessage()]
    assert len(timing) == 3 and all(TIMING.search(line) for line in timing), timing


@pytest.mark.slow
def test_second_run_of_a_sweep_equals_a_fresh_process(tmp_path):
    """`prune-run -m seed=0,1` (run 2 reuses the memo) against `prune-run seed=1` in a fresh process."""
    env_cmd = [sys.executable, "-m", "prune_cli.cli"]
    common = [*FAST, "metrics.regions.enabled=false"]
    sweep = subprocess.run(
        [*env_cmd, "-m", "seed=0,1", *common, f"results_dir={tmp_path / 'sweep'}"], capture_output=True, text=True, cwd=tmp_path
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    fresh = subprocess.run(
        [*env_cmd, "seed=1", *common, f"results_dir={tmp_path / 'fresh'}"], capture_output=True, text=True, cwd=tmp_path
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    logs = [p.read_text() for p in (tmp_path / "sweep" / "runs").glob("*/prune-run.log")]
    assert sum("reused from this process's memo" in text for text in logs) == 1
    ours = pd.read_csv(tmp_path / "sweep" / "runs.csv").query("seed == 1")
    theirs = pd.read_csv(tmp_path / "fresh" / "runs.csv")
    key = ["phase", "split", "metric"]
    pd.testing.assert_frame_equal(
        ours[[*key, "value"]].sort_values(key).reset_index(drop=True), theirs[[*key, "value"]].sort_values(key).reset_index(drop=True)
    )
