"""A run waiting on a cache entry's lock while another run computes the entry (a dense model, data-pruning
scores) stops at a stop signal, with one line saying what it waited for (prune_cli/run/dense_cache.py
`waiting_lock`), and the dense cache's `dense_cache` column says whether this run trained its dense model.

Before, the wait had no safe point: a SIGTERM to the waiting run was logged and then ignored until the other
run finished its dense training (hours on a real model; SLURM then kills), the wait printed nothing, and a
second Ctrl-C said the run "has no checkpoint yet (stopped before the end of its first epoch)" (audit).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from filelock import FileLock

from cli_runner import start_forked
from conftest import FAST, run_cli
from tests.helpers import assert_same_tables, compose, lock_freed_after_the_signal, run_dir_of
from prune_cli.core import crashpoints, interrupts
from prune_cli.run.dense_cache import dense_key

EPOCHS = 3
BASE = [a for a in FAST if not a.startswith("train.epochs")] + [f"train.epochs={EPOCHS}"]
A, B = [*BASE, "method=magnitude"], [*BASE, "method=random"]  # one dense key, two runs
HANG_S = 120  # a hang guard, never reached when the code works


def _wait_for(text: str, log_file: Path, proc) -> None:
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline and proc.poll() is None:
        if log_file.is_file() and text in log_file.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never reached {log_file} (exit {proc.poll()})")


def test_a_sigterm_while_waiting_for_another_run_s_dense_model_stops_the_wait_and_says_so(tmp_path):
    ref = tmp_path / "ref" / "results"  # uninterrupted: A trains and stores the dense model, B loads it
    ref.parent.mkdir()
    run_cli(A, ref)
    run_cli(B, ref)

    out = tmp_path / "out" / "results"
    out.parent.mkdir()
    release = tmp_path / "release"
    # A holds after its first dense epoch's checkpoint, inside the entry's lock
    a = start_forked(A, out, env={crashpoints.HOLD_ENV: "checkpoint-saved", crashpoints.RELEASE_ENV: str(release)})
    a_dir, b_dir = run_dir_of(A, out), run_dir_of(B, out)
    _wait_for("dense epoch 1/", a_dir / "prune-run.log", a)  # A trains inside the entry's lock
    key = dense_key(compose(A, out), "cpu")  # its folder may not be there yet (the suite once looked too early)
    b = start_forked(B, out)
    _wait_for(f"dense model {key} is being trained by another run", b_dir / "prune-run.log", b)
    b.send_signal(signal.SIGTERM)
    _, err = b.communicate(timeout=HANG_S)
    assert b.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert a.poll() is None  # B stopped while A still holds the entry
    assert "Traceback" not in err, err[-3000:]
    said = [line for line in err.splitlines() if line.startswith("prune-run:")]
    assert said == [
        f"prune-run: dense model {key} is being trained by another run ({out / 'dense_cache' / key}.lock); waiting for it",
        f"prune-run: stopped by SIGTERM while waiting for dense model {key}, which another run is training (it goes on "
        f"unless the signal reached it too); run {b_dir} has no checkpoint yet; run the same command again to start it",
    ], err[-3000:]
    assert not (b_dir / "state.pt").exists() and not (b_dir / "COMPLETE").exists()

    release.touch()
    _, err_a = a.communicate(timeout=HANG_S * 3)
    assert a.returncode == 0, err_a[-3000:]
    assert_same_tables(a_dir, run_dir_of(A, ref))  # dense_cache=miss in both
    run_cli(B, out)
    assert "dense model loaded from the cache" in (b_dir / "prune-run.log").read_text()
    assert_same_tables(b_dir, run_dir_of(B, ref))  # dense_cache=hit in both


def test_a_stop_while_waiting_for_data_pruning_scores_stops_the_wait_and_computes_nothing(tmp_path, caplog):
    """The data-pruning score cache's lock (prune_cli/run/data_selection.py) waited the same way. Here the test
    holds a score file's lock as another run computing it would; the stop request ends the wait with
    StoppedWaitingForCache while the lock is still held, and nothing is computed or written."""
    from prune_cli.run.data_selection import _disk_cache

    cfg = compose([*FAST, "data_pruning=random"], tmp_path / "results")
    cached = _disk_cache(cfg, torch.device("cpu"))
    cached("el2n", {"proxy_epochs": 1}, lambda: torch.zeros(3))  # makes the file, to learn its name
    [scores] = (tmp_path / "results" / "dense_cache" / "data_pruning").glob("el2n-*.pt")
    scores.unlink()
    computed, raised = [], []

    def waiter():
        try:
            cached("el2n", {"proxy_epochs": 1}, lambda: computed.append(1) or torch.zeros(3))
        except BaseException as err:  # noqa: BLE001 - the test looks at it
            raised.append(err)

    holder = FileLock(f"{scores}.lock")
    holder.acquire()
    thread = threading.Thread(target=waiter, daemon=True)
    try:
        with caplog.at_level(logging.INFO):
            thread.start()
            deadline = time.monotonic() + HANG_S
            while "being computed by another run" not in caplog.text and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert f"data-pruning scores {scores.name} are being computed by another run ({scores}.lock)" in caplog.text
            interrupts.request(signal.SIGTERM)
            thread.join(HANG_S)
            assert not thread.is_alive() and holder.is_locked  # it ended while the other still held the lock
    finally:
        interrupts.reset()
        holder.release()
    from prune_cli.run.dense_cache import StoppedWaitingForCache

    [stop] = raised
    assert isinstance(stop, StoppedWaitingForCache) and stop.signum == signal.SIGTERM and not stop.other_stopped
    assert stop.what == f"data-pruning scores {scores.name}" and computed == [] and not scores.exists()


def test_a_run_started_over_after_an_unreadable_checkpoint_is_a_miss_for_the_dense_model_it_trained(tmp_path):
    """Killed once it stored its dense model, its state.pt then unreadable (a node reboot): the run starts over
    and loads the entry it stored itself. Every number equalled the uninterrupted run's, but dense_cache said
    hit on every row (audit): only a run resumed from its checkpoint counted the entry as its own."""
    ref = tmp_path / "ref" / "results"
    ref.parent.mkdir()
    run_cli(A, ref)
    out = tmp_path / "out" / "results"
    out.parent.mkdir()
    killed = start_forked(A, out, env={crashpoints.ENV: "cache-stored"})
    _, err = killed.communicate(timeout=HANG_S * 3)
    assert killed.returncode == -signal.SIGKILL, err[-3000:]
    run_dir = run_dir_of(A, out)
    with open(run_dir / "state.pt", "r+b") as f:
        f.truncate(5000)
    run_cli(A, out)
    assert list(run_dir.glob("state.pt.corrupt-*"))  # it did start over
    assert "dense model loaded from the cache" in (run_dir / "prune-run.log").read_text()
    assert_same_tables(run_dir, run_dir_of(A, ref))
    assert set(pd.read_csv(out / "runs.csv").dense_cache) == {"miss"}


def test_the_same_run_in_another_results_dir_sharing_the_dense_cache_is_a_hit(tmp_path):
    """The run id leaves results_dir out, so the same config run into a second results_dir whose dense_cache.dir
    is the first's finds an entry that names its own run id: it trained nothing, and stays a hit."""
    shared = tmp_path / "shared_cache"
    first, second = tmp_path / "first" / "results", tmp_path / "second" / "results"
    first.parent.mkdir()
    second.parent.mkdir()
    run_cli([*A, f"dense_cache.dir={shared}"], first)
    run_cli([*A, f"dense_cache.dir={shared}"], second)
    assert set(pd.read_csv(first / "runs.csv").dense_cache) == {"miss"}
    assert set(pd.read_csv(second / "runs.csv").dense_cache) == {"hit"}


def test_a_wait_whose_lock_comes_free_after_the_stop_signal_frees_it_again_and_stops(tmp_path, monkeypatch):
    """A Ctrl-C to the process group reaches both runs: the training one stops and frees the entry's lock, and
    the waiting one must not then train the model it was told to stop for. The lock is a stand-in whose wait
    ends as the signal arrives (as in tests/test_robustness.py for the run lock)."""

    from prune_cli.run import dense_cache

    events = []

    monkeypatch.setattr(dense_cache, "FileLock", lock_freed_after_the_signal(events))
    try:
        try:
            with dense_cache.waiting_lock(tmp_path / "k.lock", "dense model k", "training", "is being trained"):
                events.append("ran")
        except dense_cache.StoppedWaitingForCache as err:
            stop = err
    finally:
        interrupts.reset()
    assert stop.other_stopped and stop.signum == signal.SIGINT
    assert events == ["acquired", "released"]  # freed again, nothing done under it


def test_the_stop_line_of_a_run_with_a_checkpoint_says_it_keeps_it(tmp_path, capsys):
    """A run whose own dense training was stopped, resumed while another run holds the entry's lock (it had
    taken the lock first): stopped while waiting, it keeps its checkpoint, and the line says so; the other
    run freed the lock after the signal: said to have freed it (stopped too, or finished: this run cannot tell)."""
    from prune_cli import cli
    from prune_cli.run.dense_cache import StoppedWaitingForCache

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "state.pt").write_bytes(b"kept")
    with pytest.raises(SystemExit) as code:
        cli._stopped(StoppedWaitingForCache(signal.SIGINT, "dense model k", "training", other_stopped=True), run_dir)
    assert code.value.code == 128 + signal.SIGINT
    assert capsys.readouterr().err.splitlines()[-1] == (
        "prune-run: stopped by SIGINT while waiting for dense model k, which another run was training and has freed it "
        f"(stopped too, or finished); run {run_dir} keeps its last checkpoint (state.pt); run the same command again to resume it"
    )
    assert (run_dir / "state.pt").read_bytes() == b"kept"
