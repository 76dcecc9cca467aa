"""A dense model's training stopped under the dense cache's lock is resumed by whichever run next takes
the lock, not started again at epoch 1 (prune_cli/run/dense_cache.py `keep_partial`).

A sweep over two sparsities shares one dense key: run A trains the dense model, run B waits on the
entry's lock. Stopped, then started again, B could take the lock first and train the dense model from
epoch 1, and A, waiting, loaded B's model: A's checkpointed dense epochs were thrown away (audit). Here A
is killed (SIGKILL) after K of its dense epochs, B then runs to the end and must resume A's training at
epoch K+1, with every table and the stored dense model equal to an uninterrupted sweep's; A, resumed
afterwards, loads the entry.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import torch

from cli_runner import start_forked
from conftest import FAST, run_cli
from test_global_rng_streams import _patch_noisy
from tests.helpers import assert_same_tables, run_dir_of
from prune_cli.core import crashpoints
from prune_cli.run.dense_cache import PARTIAL

EPOCHS, K = 6, 2
BASE = [a for a in FAST if not a.startswith("train.epochs")] + [f"train.epochs={EPOCHS}", "method=magnitude"]
A, B = [*BASE, "sparsity=0.9"], [*BASE, "sparsity=0.5"]


def _entry(results: Path) -> Path:
    [entry] = [p for p in (results / "dense_cache").iterdir() if p.is_dir()]
    return entry


def _killed_after_dense_epochs(args: list[str], results: Path, epochs: int, monkeypatch) -> None:
    """`prune-run args` SIGKILLed right after its checkpoint of dense epoch `epochs` (the plan's first step is
    Dense, so its `epochs`-th checkpoint is that epoch's): a forked child runs the patched hold."""
    seen = []

    def kill_at(name: str) -> None:
        if name == "checkpoint-saved":
            seen.append(name)
            if len(seen) == epochs:
                os.kill(os.getpid(), signal.SIGKILL)

    real_hold = crashpoints.hold
    monkeypatch.setattr(crashpoints, "hold", kill_at)
    proc = start_forked(args, results)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    monkeypatch.setattr(crashpoints, "hold", real_hold)
    state = torch.load(run_dir_of(args, results) / "state.pt", map_location="cpu", weights_only=True)
    assert json.loads(state["json"])["progress_epoch"] == epochs


def test_a_run_resumes_the_dense_training_another_run_left_under_the_entry_s_lock(tmp_path, monkeypatch):
    _patch_noisy(monkeypatch)  # the model draws from the global random streams too: they must be resumed as well
    ref = tmp_path / "ref" / "results"  # uninterrupted: B trains and stores the dense model, A loads it
    ref.parent.mkdir()
    run_cli(B, ref)
    run_cli(A, ref)

    out = tmp_path / "out" / "results"
    out.parent.mkdir()
    _killed_after_dense_epochs(A, out, K, monkeypatch)
    assert (_entry(out) / PARTIAL).is_file()  # A's dense progress is findable in the entry
    a_id = run_dir_of(A, out).name

    run_cli(B, out)
    b_log = (run_dir_of(B, out) / "prune-run.log").read_text()
    assert f"resuming the dense training that run {a_id} left in" in b_log, b_log[-3000:]
    assert f"at epoch {K} of {EPOCHS} (this run's own checkpoint had 0): training from epoch {K + 1}" in b_log
    assert f"dense epoch {K + 1}/{EPOCHS}:" in b_log and "dense epoch 1/" not in b_log  # it trained only the rest
    assert "dense model trained and stored in the cache" in b_log
    assert not (_entry(out) / PARTIAL).exists()  # the finished entry no longer offers a partial training
    assert_same_tables(run_dir_of(B, out), run_dir_of(B, ref))  # dense_cache=miss in both: B stored the entry
    for name in ("dense.pt", "init.pt"):
        got = torch.load(_entry(out) / name, weights_only=True)
        want = torch.load(_entry(ref) / name, weights_only=True)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), name
    assert (_entry(out) / "history.json").read_text() == (_entry(ref) / "history.json").read_text()

    run_cli(A, out)
    a_log = (run_dir_of(A, out) / "prune-run.log").read_text()
    assert "dense model loaded from the cache" in a_log
    assert_same_tables(run_dir_of(A, out), run_dir_of(A, ref))  # dense_cache=hit in both
    assert set(pd.read_csv(out / "runs.csv").groupby("run_id").dense_cache.first()) == {"hit", "miss"}


def test_an_unusable_partial_training_is_ignored_with_a_warning(tmp_path):
    ref = tmp_path / "ref" / "results"
    ref.parent.mkdir()
    run_cli(B, ref)
    out = tmp_path / "out" / "results"
    out.parent.mkdir()
    key = _entry(ref).name
    (out / "dense_cache" / key).mkdir(parents=True)
    (out / "dense_cache" / key / PARTIAL).write_bytes(b"not a checkpoint")  # a stale or damaged one
    run_cli(B, out)
    log = (run_dir_of(B, out) / "prune-run.log").read_text()
    assert f"ignoring the partial dense training {out / 'dense_cache' / key / PARTIAL}: it is unreadable" in log, log[-3000:]
    assert not (out / "dense_cache" / key / PARTIAL).exists()
    assert_same_tables(run_dir_of(B, out), run_dir_of(B, ref))


def test_the_partial_training_is_a_hard_link_or_else_a_copy(tmp_path, monkeypatch):
    """`keep_partial` links the run's checkpoint into the entry (no copy); where the two folders are on
    different file systems (os.link fails) it copies it. Either way the run's next checkpoint, a new file
    renamed over state.pt, leaves the entry's partial training as it was."""
    from prune_cli.run.dense_cache import DenseCache

    state = tmp_path / "run" / "state.pt"
    state.parent.mkdir()
    for link_works in (True, False):
        state.write_bytes(b"epoch 1")
        cache = DenseCache(tmp_path / "cache", f"key-{link_works}", {})
        if not link_works:
            monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError(18, "Invalid cross-device link")))
        cache.keep_partial(state)
        assert cache.partial() == cache.path / PARTIAL and cache.partial().read_bytes() == b"epoch 1"
        assert (os.stat(state).st_ino == os.stat(cache.path / PARTIAL).st_ino) is link_works
        (tmp_path / "next").write_bytes(b"epoch 2")
        os.replace(tmp_path / "next", state)  # as atomic_torch_save writes the next checkpoint
        assert cache.partial().read_bytes() == b"epoch 1"
        assert [p.name for p in cache.path.iterdir()] == [PARTIAL]  # no temporary file left


def test_a_partial_training_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    """keep_partial is optional: a full or foreign cache file system (ENOSPC on the copy) stopped the run as an
    internal error (review). Now one warning, training goes on, and the results equal a run that had none."""
    from prune_cli.run.dense_cache import DenseCache

    ref = tmp_path / "ref" / "results"
    ref.parent.mkdir()
    run_cli(B, ref)
    calls = []

    def full(self, state_file):
        calls.append(state_file)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DenseCache, "keep_partial", full)
    out = tmp_path / "out" / "results"
    out.parent.mkdir()
    run_cli(B, out)
    log = (run_dir_of(B, out) / "prune-run.log").read_text()
    assert "could not keep this checkpoint as the entry's partial training (OSError" in log, log[-3000:]
    assert len(calls) == 1  # tried once, not at every epoch
    assert_same_tables(run_dir_of(B, out), run_dir_of(B, ref))


def test_storing_the_entry_removes_a_temporary_partial_a_kill_left(tmp_path):
    """A kill between keep_partial's link and its rename left `.partial.pt.<pid>.tmp` in the entry for good,
    the only copy of a checkpoint once its run finished (review)."""
    from prune_cli.run.dense_cache import DenseCache

    cache = DenseCache(tmp_path / "cache", "key", {})
    cache.path.mkdir(parents=True)
    (cache.path / f".{PARTIAL}.4242.tmp").write_bytes(b"a checkpoint")
    (cache.path / PARTIAL).write_bytes(b"a checkpoint")
    cache.store({}, {}, {}, [], "run-x")
    assert sorted(p.name for p in cache.path.iterdir() if "partial" in p.name) == []
