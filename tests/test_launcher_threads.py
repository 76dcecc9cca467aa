"""Launchers and threads (the threads audit): `threads=auto` takes the per-job share of a local sweep's
CPUs under hydra/launcher=parallel and submitit_local (prune_cli/core/threads.py), the launcher options
that are refused say which launcher the user chose, and joblib's `timeout` is refused before the sweep."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
NEEDS = "the launcher plugins are optional: pip install 'prune-cli[cluster]' (the [test] extra has them)"


def _refused(args: list[str], results, key: str) -> str:
    """prune-run's one-line refusal of `args`: exit 2, naming `key`, nothing created."""
    proc = run_cli(["-m", *args, *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("prune-run: error:") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"'{key}'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not results.exists()
    return proc.stderr


# ----------------------------------------------------------------------------- messages name the chosen launcher


@pytest.mark.parametrize("launcher", ["parallel", "joblib"])
@pytest.mark.parametrize("option", ["prefer=threads", "backend=threading"])
def test_a_refused_joblib_option_names_the_launcher_the_user_chose(tmp_path, launcher, option):
    """`hydra/launcher=joblib hydra.launcher.prefer=threads` was refused as an option of
    "Hydra's joblib launcher (hydra/launcher=parallel)": a launcher the user had not chosen."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    err = _refused(
        [f"hydra/launcher={launcher}", f"hydra.launcher.{option}"], tmp_path / "results", f"hydra.launcher.{option.split('=')[0]}"
    )
    assert f"(hydra/launcher={launcher})" in err
    assert f"hydra/launcher={'joblib' if launcher == 'parallel' else 'parallel'})" not in err


@pytest.mark.parametrize(
    "launcher, key, value, says, not_says",
    [
        ("submitit_local", "timeout_min", "0", "submitit's local executor stops a job", "sbatch"),
        ("submitit_local", "tasks_per_node", "0", "submitit's local executor starts that many", "sbatch"),
        ("submitit_local", "gpus_per_node", "-1", "CUDA_VISIBLE_DEVICES", "sbatch"),
        ("submitit_local", "mem_gb", "0", "local executor ignores it", "sbatch"),
        ("submitit_local", "cpus_per_task", "0", "local executor ignores it", "sbatch"),
        ("submitit_slurm", "timeout_min", "0", "(sbatch --time)", "local executor"),
        ("slurm", "tasks_per_node", "0", "(sbatch --ntasks-per-node)", "local executor"),
    ],
)
def test_a_refused_submitit_value_says_what_the_option_means_for_the_chosen_executor(tmp_path, launcher, key, value, says, not_says):
    """`hydra/launcher=submitit_local hydra.launcher.timeout_min=0` was explained as "(sbatch --time)":
    submitit's local executor writes no sbatch script; it runs each job as a process here."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    own = ["hydra.launcher.submitit_folder=${results_dir}/.submitit/%j"] if launcher != "slurm" else []
    err = _refused(
        [f"hydra/launcher={launcher}", *own, f"hydra.launcher.{key}={value}"], tmp_path / "results", f"hydra.launcher.{key}"
    )
    assert says in err and not_says not in err, err


# ----------------------------------------------------------------------------- joblib's timeout


@pytest.mark.parametrize("launcher", ["parallel", "joblib"])
@pytest.mark.parametrize("value", ["1", "3600.5"])
def test_joblib_s_timeout_is_refused_before_the_sweep(tmp_path, launcher, value):
    """`hydra.launcher.timeout=1` was accepted; when a job reached it, joblib killed every worker of the
    sweep at once and prune-run reported "could not start the sweep ... TimeoutError:" (no reason, the
    option unnamed), or with a longer timeout "stopped the sweep: TimeoutError:" with each run listed
    as "killed: out of memory, a time limit, a lost node?" and exit 1 even with allow_failures=true."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    err = _refused(
        [f"hydra/launcher={launcher}", "hydra.launcher.n_jobs=2", f"hydra.launcher.timeout={value}"],
        tmp_path / "results",
        "hydra.launcher.timeout",
    )
    assert value in err and "kills every worker" in err and "timeout 2h prune-run -m" in err, err
