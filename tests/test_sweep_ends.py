"""How a local sweep ends: fail_fast under every local launcher (the same summary and exit codes),
the help text's groups, and sweep records left by a killed sweep (docs/robustness.md)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli
from test_launchers import JOBLIB, NEEDS, assert_gone, wait_for_checkpoints


@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=parallel", "hydra.launcher.n_jobs=1"]], ids=["basic", "joblib"])
def test_fail_fast_ends_with_the_same_summary_under_every_local_launcher(tmp_path, launcher, allow):
    """With the basic launcher a fail_fast failure used to exit 1 from inside the job: no end summary,
    no list of the runs not started, and allow_failures=true ignored (the parallel launcher had all
    three). Now both go through the sweep's summary, with the same exit codes."""
    if launcher:
        pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    args = ["-m", *launcher, *FAST, "train.lr=1e30,0.05", "fail_fast=true", f"allow_failures={str(allow).lower()}"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == (0 if allow else 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "prune-run: 1 of 2 runs failed:" in proc.stderr, proc.stderr
    assert "prune-run: 1 run not started after the failure (fail_fast=true):" in proc.stderr, proc.stderr
    assert not list(results.glob("runs/*/COMPLETE"))  # the second run never ran
    assert not (results / ".sweeps").exists()


def test_a_killed_sweep_s_record_is_removed_by_the_next_local_sweep(tmp_path):
    """A sweep's process SIGKILLed (the OOM killer, `kill -9`) left results_dir/.sweeps/<sweep>.jsonl
    behind for good: the same command run again completed and kept it (README: `.sweeps/` "is removed
    at its end"). Now a local sweep's start removes the record of a local sweep of this host whose
    process and jobs are gone, and says so; a record whose process is alive stays, as does a record
    of a SLURM sweep (its jobs outlive the submit host and write to it)."""
    import os
    import signal
    import socket

    from cli_runner import start_forked

    results = tmp_path / "results"
    args = ["-m", *FAST, "seed=0,1"]
    # the sweep in a process of its own (its pid, its SIGKILL), forked from this one: a new interpreter's start-up is not the point
    proc = start_forked(args, results, cwd=tmp_path, env={"PRUNE_CLI_HOLD_AT": "checkpoint-saved"})
    wait_for_checkpoints(proc, results, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    [stale] = (results / ".sweeps").iterdir()
    assert '"started"' in stale.read_text()
    from prune_cli.core.processes import here

    # a live process of this host other than the sweep run below (which runs in this test's process): this one's parent
    alive = results / ".sweeps" / f"20261202T000000-{os.getppid()}@{here()}.jsonl"
    alive.write_text("")
    # a dead pid here, but a sweep of another pid namespace on a host of the same name (a container with
    # the host's network): that pid means nothing here, and its sweep may be running (review)
    elsewhere = results / ".sweeps" / f"20261202T000000-{proc.pid}@{socket.gethostname()}~1.jsonl"
    elsewhere.write_text("")
    slurm = results / ".sweeps" / "20261202T000000-1.jsonl"  # a SLURM sweep's: no host in its name
    slurm.write_text("")
    rerun = run_cli(args, results, check=False)  # the same command, in this process
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"removed the record of an earlier sweep whose process ({proc.pid}) is gone: {stale}" in rerun.stderr, rerun.stderr
    assert sorted((results / ".sweeps").iterdir()) == sorted([alive, elsewhere, slurm])
    assert len(list(results.glob("runs/*/COMPLETE"))) == 2


SUBMITIT = "hydra_plugins.hydra_submitit_launcher"


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux's /proc)."""
    from pathlib import Path

    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, up in parent.items() if up in frontier} - found
        found |= frontier
    return found


def test_a_sigterm_to_a_submitit_local_sweep_stops_its_jobs_at_a_safe_point(tmp_path):
    """`kill <pid>` of a `hydra/launcher=submitit_local` sweep: exit 143 without a word, its jobs (submitit
    starts them in processes of their own) went on as orphans, completed their runs and appended rows
    afterwards, and the sweep's record stayed. Now the signal is passed on to the jobs, which stop at
    their next safe point with their checkpoint, and the sweep ends with the usual summary."""
    import signal
    from pathlib import Path

    pytest.importorskip(SUBMITIT, reason=NEEDS)
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the process tree from /proc")
    from cli_runner import start_forked

    results = tmp_path / "results"
    local = ["hydra/launcher=submitit_local", "hydra.launcher.submitit_folder=${results_dir}/.submitit/%j"]
    args = ["-m", *local, *FAST, "seed=0,1"]
    # the sweep in a process of its own (its pid, its SIGTERM, its exit status), forked from this one: a new interpreter's
    # start-up is not the point (submitit starts each job in a new interpreter anyway); its jobs held at their first checkpoint
    proc = start_forked(args, results, cwd=tmp_path, env={"PRUNE_CLI_HOLD_AT": "checkpoint-saved"})
    wait_for_checkpoints(proc, results, 2)
    below = _descendants(proc.pid)
    assert below and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert "prune-run: sweep stopped by SIGTERM: 0 of the 2 runs that started completed" in err, err
    runs = sorted(p for p in (results / "runs").iterdir() if p.is_dir())
    assert len(runs) == 2, runs
    for run in runs:
        assert f"  {run}: stopped at a safe point; its checkpoint (state.pt) is kept" in err, err
        assert (run / "state.pt").exists() and not (run / "COMPLETE").exists()
    assert not (results / ".sweeps").exists()
    assert_gone(below, "the sweep's job processes outlived it")
    assert not (results / "runs.csv").exists()  # no job went on to append its rows

    resumed = run_cli(args, results, check=False)  # the same command, in this process (submitit's jobs are processes of their own)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert all("resuming run" in (run / "prune-run.log").read_text() for run in runs)


def test_a_worker_that_got_a_ctrl_c_keeps_stopping_at_its_safe_point_when_the_sweep_passes_it_on(monkeypatch):
    """A Ctrl-C reaches the whole process group; the sweep's process then passes it on to its joblib
    workers as SIGTERM (a `kill -INT` to the sweep's process alone reached no worker before). For a worker
    the SIGTERM after its SIGINT changes nothing: it stops at its next safe point, named by the Ctrl-C;
    only a second SIGINT stops it at once."""
    import signal

    from prune_cli.core import interrupts

    monkeypatch.setattr(interrupts, "_requested", None)
    interrupts._handler(signal.SIGINT, None)  # noqa: SLF001
    interrupts._handler(signal.SIGTERM, None)  # noqa: SLF001
    assert interrupts.requested() == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        interrupts._handler(signal.SIGINT, None)  # noqa: SLF001
