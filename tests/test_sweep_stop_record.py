"""A stop signal before a sweep's first run leaves the results folder as the sweep found it
(docs/robustness.md, the stop-signal rows of the fault table): no run directory, no sweep record, and an
earlier sweep's runs/multirun.yaml byte for byte. The audit of parallel launchers found the record of the
earlier sweep overwritten by the stopped one's."""

from __future__ import annotations

import signal
import time

import pytest

from conftest import FAST


def _stopped_before_its_first_run(results):
    from cli_runner import start_forked

    proc = start_forked(["-m", *FAST, "seed=0,1"], results, env={"PRUNE_CLI_HOLD_AT": "sweep-started"})
    deadline = time.monotonic() + 240
    while not ((results / ".sweeps").is_dir() and any((results / ".sweeps").iterdir())) and proc.poll() is None:
        assert time.monotonic() < deadline, "the sweep never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc, err


@pytest.mark.parametrize("earlier", [True, False], ids=["an_earlier_sweep_s_record", "a_new_folder"])
def test_a_sweep_stopped_before_its_first_run_leaves_the_folder_as_it_found_it(tmp_path, earlier):
    results = tmp_path / "results"
    record = results / "runs" / "multirun.yaml"
    if earlier:
        record.parent.mkdir(parents=True)
        record.write_bytes(b"# an earlier sweep record\nhydra: {}\n")
    before = record.read_bytes() if earlier else None
    proc, err = _stopped_before_its_first_run(results)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert "prune-run: sweep stopped by SIGTERM before any run had started" in err, err
    assert not (results / ".sweeps").exists()
    if earlier:
        assert record.read_bytes() == before
        assert [p.name for p in (results / "runs").iterdir()] == ["multirun.yaml"]
    else:
        assert not (results / "runs").exists()


@pytest.mark.parametrize("stopped", ["Interrupted", "StoppedWaiting", "StoppedWaitingForCache"])
def test_a_job_stopped_while_waiting_for_a_lock_names_its_signal_in_the_summary(stopped):
    """A job stopped while it waited for another run's lock records `StoppedWaiting: SIGINT` (or the dense
    cache's `StoppedWaitingForCache: SIGINT`); the summary read only `Interrupted: ...`, so it dropped the
    signal's name and took SIGTERM for the signal that stopped a lone worker."""
    from prune_cli.sweep_lifecycle import _how_it_ended, _signal_of

    outcome = {"run_dir": "/nonexistent/run-x", "status": "stopped", "reason": f"{stopped}: SIGINT"}
    assert _signal_of([outcome]) == signal.SIGINT
    assert _how_it_ended(outcome).startswith("SIGINT: ")
