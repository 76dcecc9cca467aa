"""How a local sweep ends: fail_fast under every local launcher (the same summary and exit codes),
the help text's groups, and sweep records left by a killed sweep (docs/robustness.md)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
NEEDS = "the launcher plugins are optional: pip install 'prune-cli[cluster]' (the [test] extra has them)"


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
    import subprocess
    import sys
    import time

    results = tmp_path / "results"
    command = [sys.executable, "-m", "prune_cli.cli", "-m", *FAST, "seed=0,1", f"results_dir={results}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "PRUNE_CLI_HOLD_AT": "checkpoint-saved"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(results.glob("runs/*/state.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    [stale] = (results / ".sweeps").iterdir()
    assert '"started"' in stale.read_text()
    alive = results / ".sweeps" / f"20261202T000000-{os.getpid()}@{socket.gethostname()}.jsonl"  # this test's process
    alive.write_text("")
    slurm = results / ".sweeps" / "20261202T000000-1.jsonl"  # a SLURM sweep's: no host in its name
    slurm.write_text("")
    env.pop("PRUNE_CLI_HOLD_AT")
    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"removed the record of an earlier sweep whose process ({proc.pid}) is gone: {stale}" in rerun.stderr, rerun.stderr
    assert sorted((results / ".sweeps").iterdir()) == sorted([alive, slurm])
    assert len(list(results.glob("runs/*/COMPLETE"))) == 2
