"""Hydra's joblib launcher options (hydra/launcher=parallel or joblib) beyond n_jobs and timeout (sweeps
audit of 2026-12-03): a bad `batch_size`, `pre_dispatch` or `require` was joblib's own ValueError at the
sweep's start (exit 1, no key named); the memmapping options (`mmap_mode`, `max_nbytes`, `temp_folder`),
which the jobs' arguments never reach, were accepted and ignored; and `n_jobs` above the number of jobs
started that many loky worker processes for nothing (joblib starts them all at the first job)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
pytestmark = pytest.mark.xdist_group("joblib_launcher")


def _refused(args: list[str], results, key: str) -> str:
    """prune-run's one-line refusal of a 2-job parallel sweep with `args`: exit 2, naming `key`, nothing created."""
    pytest.importorskip(JOBLIB, reason="the launcher plugins are optional: pip install 'prune-cli[cluster]'")
    proc = run_cli(["-m", "hydra/launcher=parallel", *args, *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("prune-run: error:") and "Traceback" not in proc.stderr, proc.stderr
    assert f"'{key}'" in proc.stderr, proc.stderr
    assert not results.exists()
    return proc.stderr


@pytest.mark.parametrize(
    "option, allowed",
    [
        ("batch_size=0", "'auto' or an integer >= 1"),
        ("batch_size=many", "'auto' or an integer >= 1"),
        ("pre_dispatch=abc", "'all', an integer >= 1, or an arithmetic expression of n_jobs"),
        ("pre_dispatch=0", "'all', an integer >= 1, or an arithmetic expression of n_jobs"),
        ("pre_dispatch='__import__(\"os\")'", "'all', an integer >= 1, or an arithmetic expression of n_jobs"),
        ("require=sharedmem", "null"),
    ],
)
def test_a_bad_joblib_option_is_refused_naming_its_key(tmp_path, option, allowed):
    key = f"hydra.launcher.{option.split('=')[0]}"
    err = _refused([f"hydra.launcher.{option}"], tmp_path / "results", key)
    assert allowed in err, err


@pytest.mark.parametrize("option", ["mmap_mode=xyz", "mmap_mode=r+", "max_nbytes=10M", "temp_folder=/tmp"])
def test_joblib_s_memmapping_options_have_no_effect_and_are_refused(tmp_path, option):
    """joblib memory-maps large numpy arrays among a task's arguments; a sweep's jobs get configs only."""
    key = f"hydra.launcher.{option.split('=')[0]}"
    err = _refused([f"hydra.launcher.{option}"], tmp_path / "results", key)
    assert "has no effect" in err and "numpy arrays" in err, err


@pytest.mark.parametrize(
    "options",
    [
        ["hydra.launcher.batch_size=1", "hydra.launcher.pre_dispatch=3*n_jobs"],
        ["hydra.launcher.pre_dispatch=all"],
        # review of 847995a: 1 at the n_jobs=2 asked for (it was refused: 0 at n_jobs=1, where the lowering could take it)
        ["hydra.launcher.pre_dispatch='n_jobs//2'"],
    ],
)
def test_legitimate_joblib_options_run(tmp_path, options):
    pytest.importorskip(JOBLIB, reason="the launcher plugins are optional: pip install 'prune-cli[cluster]'")
    proc = run_cli(["-m", "hydra/launcher=parallel", *options, *FAST, "seed=0,1"], tmp_path / "results", check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "results" / "runs").glob("*/COMPLETE"))) == 2


@pytest.mark.parametrize("n_jobs", ["64", "-1"])
def test_n_jobs_above_the_sweep_s_job_count_starts_one_worker_per_job(tmp_path, n_jobs):
    """Hydra logs the joblib.Parallel call it makes: with 2 jobs, n_jobs=64 is made 2 (64 idle loky workers
    started before, each a Python process); -1 (one per CPU) at most 2 as well."""
    pytest.importorskip(JOBLIB, reason="the launcher plugins are optional: pip install 'prune-cli[cluster]'")
    from joblib import cpu_count

    results = tmp_path / "results"
    proc = run_cli(["-m", "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}", *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 0, proc.stderr
    launched = [line for line in (proc.stdout + proc.stderr).splitlines() if "Joblib.Parallel(" in line]
    expected = 2 if n_jobs == "64" else min(2, cpu_count())
    assert launched and all(f"n_jobs={expected}," in line for line in launched), launched
    # pre_dispatch (2*n_jobs) is what joblib made of it at the n_jobs asked for
    asked = 64 if n_jobs == "64" else cpu_count()
    assert all(f"pre_dispatch={2 * asked}," in line for line in launched), launched


def test_a_one_job_sweep_keeps_a_worker_process(tmp_path):
    """Review of 847995a: at n_jobs=1 joblib runs the job in the sweep's own process (a hard crash of the job
    would end the sweep); a sweep that asked for 2 or more keeps 2 workers for a single job."""
    pytest.importorskip(JOBLIB, reason="the launcher plugins are optional: pip install 'prune-cli[cluster]'")
    proc = run_cli(["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=8", *FAST, "seed=0"], tmp_path / "results", check=False)
    assert proc.returncode == 0, proc.stderr
    launched = [line for line in (proc.stdout + proc.stderr).splitlines() if "Joblib.Parallel(" in line]
    assert launched and all("n_jobs=2," in line for line in launched), launched
