"""Launchers and threads (the threads audit): `threads=auto` takes the per-job share of a local sweep's
CPUs under hydra/launcher=parallel and submitit_local (prune_cli/core/threads.py), the launcher options
that are refused say which launcher the user chose, and joblib's `timeout` is refused before the sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, run_cli
from prune_cli.core import threads

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


# A model for which threads=auto wants more than one thread: (2*512 + 512*512 + 512*3) MACs per example
# times a batch of 512 is about 1.4e8, above threads.SMALL_MODEL_MACS (1e8); one batch per epoch.
LARGE = [a for a in FAST if not a.startswith(("model.widths=", "train.batch_size="))] + [
    "model.widths=[512,512]",
    "train.batch_size=512",
]
CPUS = threads.usable_cpus(os.environ)[0]  # what a job started from this process may use


def _sweep_threads(tmp_path: Path, args: list[str], env: dict | None = None) -> list[str]:
    """Run the sweep `args` in a new process (without the tests' OMP_NUM_THREADS=1 unless `env` sets one;
    not forked: a forked child of a process whose OpenMP pool has run can hang on more than one thread)
    and return the thread line of each run's log."""
    results = tmp_path / "results"
    drop = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", threads.SWEEP_OMP, threads.SWEEP_BATCH)
    full_env = {**{k: v for k, v in os.environ.items() if k not in drop}, "HYDRA_FULL_ERROR": "0", **(env or {})}
    cmd = [sys.executable, "-m", "prune_cli.cli", "-m", *args, f"results_dir={results}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=full_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = []
    for log in sorted(results.glob("runs/*/prune-run.log")):
        lines += [line.split("] - ", 1)[1] for line in log.read_text().splitlines() if "torch intra-op threads:" in line]
    return lines


def _share(jobs: int) -> str:
    return f"torch intra-op threads: {max(1, CPUS // jobs)} (threads=auto: "


# ----------------------------------------------------------------------------- threads=auto in a local sweep


def test_a_job_tells_loky_s_omp_num_threads_from_the_user_s():
    """loky sets OMP_NUM_THREADS (cpu_count // n_jobs) in its workers unless the sweep's process had one:
    that value is not the user's. One the user had, or set per job with hydra.job.env_set, is."""
    parent: dict = {}
    threads.note_sweep_batch(parent, 3, first=True)
    assert parent == {threads.SWEEP_BATCH: "3", threads.SWEEP_OMP: ""}
    worker = {**parent, "OMP_NUM_THREADS": "2"}  # loky's, in a worker of the sweep
    assert "OMP_NUM_THREADS" not in threads.users_env(worker, {})
    assert threads.users_env(worker, {"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"  # hydra.job.env_set
    users = {"OMP_NUM_THREADS": "4"}
    threads.note_sweep_batch(users, 2, first=True)
    threads.note_sweep_batch(users, 1, first=False)  # a later batch: the sweep's first record stays
    assert users[threads.SWEEP_OMP] == "4" and users[threads.SWEEP_BATCH] == "1"
    assert threads.users_env(users, {})["OMP_NUM_THREADS"] == "4"  # loky passes the user's on unchanged
    assert threads.users_env({"OMP_NUM_THREADS": "2"}, {}) == {"OMP_NUM_THREADS": "2"}  # not in a sweep


def test_a_slurm_job_s_own_omp_num_threads_is_kept():
    """A SLURM job inherits the submit host's record of OMP_NUM_THREADS, and its own (8, from the
    launcher's setup lines, `export=` or a prolog) differs: it was dropped as if loky had set it, and
    threads=auto picked another number (review). Only a joblib worker's is told apart."""
    job = {threads.SWEEP_OMP: "", threads.SWEEP_BATCH: "2", "OMP_NUM_THREADS": "8", "SLURM_CPUS_PER_TASK": "16"}
    slurm = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    assert threads.users_env(job, {}, slurm)["OMP_NUM_THREADS"] == "8"
    assert "OMP_NUM_THREADS" not in threads.users_env(job, {}, joblib)


def test_the_runs_at_once_of_each_local_launcher():
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 4}
    local = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}
    slurm = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
    batch = {threads.SWEEP_BATCH: "3"}
    assert threads.local_sweep_jobs(joblib, batch) == (4, 3)
    assert threads.local_sweep_jobs(local, batch) == (3, None)  # submitit's local executor runs the whole batch
    assert threads.local_sweep_jobs(slurm, batch) == (None, None)  # each job on its own allocation
    kw = dict(affinity=8, cgroup=Path("/no-such-cgroup"), proc_cgroup=Path("/no-such-proc"))
    assert threads.usable_cpus({}, 4, 3, **kw) == (2, "CPU affinity 8 shared by 3 parallel jobs")  # 3 jobs: 3 at once
    assert threads.usable_cpus({}, 2, 3, **kw) == (4, "CPU affinity 8 shared by 2 parallel jobs")


@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])  # n_jobs=2: 7.5 s, slow
def test_threads_auto_in_a_parallel_sweep_takes_the_per_job_share(tmp_path, n_jobs):
    """README and docs/performance.md promise the per-job share of a local parallel sweep; parallel.yaml
    set OMP_NUM_THREADS=1 for every job (and loky sets its own in its workers), so every job ran on one
    thread ("1 (OMP_NUM_THREADS)"), also with n_jobs=1 on two CPUs."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    lines = _sweep_threads(tmp_path, ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}", *LARGE, "sparsity=0.5,0.8"])
    assert len(lines) == 2 and all(line.startswith(_share(n_jobs)) for line in lines), lines
    if n_jobs > 1:
        assert all(f"shared by {n_jobs} parallel jobs" in line for line in lines), lines


@pytest.mark.slow  # a sweep in new interpreters, 7-12 s; the rule itself is tested above without one
def test_the_last_smaller_batch_of_a_parallel_sweep_gets_its_own_share(tmp_path):
    """hydra.sweeper.max_batch_size=2 over 3 runs: the third runs alone in the second batch, yet loky reused
    the first batch's workers, whose environment still said 2 jobs ("shared by 2 parallel jobs": half the
    CPUs idle) (review). A batch of another size starts fresh workers."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    args = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.sweeper.max_batch_size=2", *LARGE]
    lines = _sweep_threads(tmp_path, [*args, "sparsity=0.5,0.6,0.8"])
    assert len(lines) == 3, lines
    assert sum(line.startswith(_share(2)) and "shared by 2 parallel jobs" in line for line in lines) == 2, lines
    assert sum(line.startswith(_share(1)) and "shared by" not in line for line in lines) == 1, lines


@pytest.mark.slow  # a sweep in new interpreters, 7-12 s; the rule itself is tested above without one
def test_threads_auto_in_a_submitit_local_sweep_takes_the_per_job_share(tmp_path):
    """submitit's local executor starts every job of the sweep at once; each took every usable CPU
    (three jobs x two threads on two cores)."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    own = "hydra.launcher.submitit_folder=${results_dir}/.submitit/%j"
    lines = _sweep_threads(tmp_path, ["hydra/launcher=submitit_local", own, *LARGE, "sparsity=0.5,0.8"])
    assert len(lines) == 2 and all(line.startswith(_share(2)) and "shared by 2 parallel jobs" in line for line in lines), lines


def test_omp_num_threads_beyond_the_per_job_share_is_noted_as_threads_n_is():
    """`threads=2` with n_jobs=2 on two CPUs logged "more than the 1 usable CPUs (...)"; the same count
    from OMP_NUM_THREADS was logged without a word (4 threads on 2 cores)."""
    usable = (1, "CPU affinity 2 shared by 2 parallel jobs")
    note = "more than the 1 usable CPUs (CPU affinity 2 shared by 2 parallel jobs)"
    assert threads.choose_threads(2, {}, usable, None).reason == f"threads=2; {note}"
    assert threads.choose_threads("auto", {"OMP_NUM_THREADS": "2"}, usable, None).reason == f"OMP_NUM_THREADS; {note}"
    assert threads.choose_threads("auto", {"OMP_NUM_THREADS": "1"}, usable, None).reason == "OMP_NUM_THREADS"


@pytest.mark.slow  # a sweep in new interpreters, 7-12 s; the rule itself is tested above without one
def test_the_user_s_omp_num_threads_still_wins_in_a_parallel_sweep_with_a_note_beyond_the_share(tmp_path):
    """The shell's OMP_NUM_THREADS is the user's (loky passes it on to its workers unchanged): honoured,
    and noted when it is more than the per-job share."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    wanted = CPUS + 1
    lines = _sweep_threads(
        tmp_path, ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *LARGE, "sparsity=0.5,0.8"], {"OMP_NUM_THREADS": str(wanted)}
    )
    said = f"torch intra-op threads: {wanted} (OMP_NUM_THREADS; more than the {max(1, CPUS // 2)} usable CPUs ("
    assert len(lines) == 2 and all(line.startswith(said) and line.endswith(" shared by 2 parallel jobs))") for line in lines), lines


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
        ("submitit_local", "timeout_min", "0", "local executor sends the job SIGUSR2 30 s before it and requeues it", "sbatch"),
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


# ----------------------------------------------------------------------------- deleting a launcher's variable


@pytest.mark.parametrize("launcher", ["parallel", "joblib"])
def test_deleting_omp_num_threads_a_local_launcher_does_not_set_says_so(tmp_path, launcher):
    """`~hydra.job.env_set.OMP_NUM_THREADS` was refused as a value that is not text ("Hydra reads  as
    NoneType"); a deletion has no value. The parallel launcher config sets no OMP_NUM_THREADS (threads=auto
    takes the per-job share), so there is nothing to delete: the message says that and what to use."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    key = "hydra.job.env_set.OMP_NUM_THREADS"
    err = _refused([f"hydra/launcher={launcher}", f"~{key}"], tmp_path / "results", key)
    assert "NoneType" not in err and "nothing to delete" in err and "threads=N" in err, err


def test_deleting_the_slurm_launcher_s_omp_num_threads_is_accepted(tmp_path):
    """hydra/launcher=slurm sets OMP_NUM_THREADS per job; deleting it leaves the choice to threads=auto."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from prune_cli.run.override_checks import check_overrides

    check_overrides(["-m", "hydra/launcher=slurm", "~hydra.job.env_set.OMP_NUM_THREADS", "seed=0,1"])  # no ConfigError
    proc = run_cli(["--cfg", "hydra", "hydra/launcher=slurm", "~hydra.job.env_set.OMP_NUM_THREADS", *FAST], tmp_path / "results")
    assert "env_set: {}" in proc.stdout, proc.stdout
