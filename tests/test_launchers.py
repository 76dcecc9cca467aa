"""Launchers: local parallel sweeps (joblib), SLURM through submitit (tested with submitit's local
executor and with the plugin's own parameter mapping), requeue + resume, and failing runs that do
not stop a sweep unless fail_fast is set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import FAST, REPO, _unchanged, made_once, run_cli

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
NEEDS = "the launcher plugins are optional: pip install 'prune-cli[cluster]' (the [test] extra has them)"


def _hydra_cfg(overrides: list[str], results_dir: Path):
    """The composed config including the hydra node, as prune-run would see it."""
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (schemas, run_id resolver)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=[*overrides, f"results_dir={results_dir}"], return_hydra_config=True)


def _complete_runs(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("runs/*/COMPLETE"))


def _check_shared_rows(results: Path, n_runs: int) -> None:
    """Each run's rows are in the shared CSV exactly once: equal to the concatenated per-run files."""
    shared = pd.read_csv(results / "runs.csv")
    per_run = pd.concat([pd.read_csv(d / "metrics.csv") for d in _complete_runs(results)], ignore_index=True)
    assert shared.run_id.nunique() == n_runs
    key = ["run_id", "phase", "split", "metric"]
    assert not shared.duplicated(key).any()
    merged = shared.merge(per_run, on=key, suffixes=("", "_run"))
    assert len(merged) == len(shared) == len(per_run)
    assert (merged.value == merged.value_run).all()


def test_parallel_launcher_config(tmp_path):
    pytest.importorskip(JOBLIB, reason=NEEDS)
    cfg = _hydra_cfg(["hydra/launcher=parallel", "hydra.launcher.n_jobs=3"], tmp_path)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 3
    assert "OMP_NUM_THREADS" not in cfg.hydra.job.env_set  # threads=auto takes the per-job share (tests/test_launcher_threads.py)


def test_slurm_launcher_maps_config_to_sbatch(tmp_path, monkeypatch):
    """The plugin's own launch() turns hydra/launcher=slurm into the submitit SLURM executor settings
    (a fake `srun` on PATH lets submitit build the executor; map_array is intercepted, nothing is submitted)."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import submitit
    from hydra.utils import instantiate

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    cfg = _hydra_cfg(
        [
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=2",
            "hydra.launcher.cpus_per_task=6",
            "hydra.launcher.mem_gb=32",
            "hydra.launcher.timeout_min=90",
            "hydra.launcher.array_parallelism=8",
        ],
        results,
    )
    from omegaconf import OmegaConf

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")  # what SLURM sets inside the job
    assert OmegaConf.to_container(cfg.hydra.job.env_set, resolve=True) == {"OMP_NUM_THREADS": "6"}
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    captured = {}

    def fake_map_array(self, fn, *args):
        captured["executor"], captured["args"] = self, args
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    launcher.launch([["sparsity=0.5"], ["sparsity=0.8"]], initial_job_idx=0)
    slurm = captured["executor"]._executor
    assert isinstance(slurm, submitit.SlurmExecutor)
    assert slurm.max_num_timeout == 20  # timed-out jobs are requeued (the plugin's default is 0)
    assert slurm.parameters["array_parallelism"] == 8
    assert str(slurm.folder).startswith(str(results / ".submitit"))
    text = slurm._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=90",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in text, text
    assert captured["args"][0] == (["sparsity=0.5"], ["sparsity=0.8"])  # one array task per run


def test_submitit_local_sweep_of_two_runs(tmp_path):
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    results = tmp_path / "results"
    run_cli(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.submitit_folder=${results_dir}/.submitit/%j",
            *FAST,
            "method=magnitude,random",
        ],
        results,
        # in this process: submitit's jobs are new processes anyway
    )
    runs = _complete_runs(results)
    assert len(runs) == 2
    assert {pd.read_csv(d / "metrics.csv").method.iloc[0] for d in runs} == {"magnitude", "random"}
    assert len(list((results / ".submitit").glob("*/*_result.pkl"))) == 2  # really ran as submitit jobs
    _check_shared_rows(results, 2)


@pytest.fixture(scope="session")
def sweep_with_failures(tmp_path_factory):
    """One sweep of four runs: the two with lr 1e12 diverge, the two with lr 0.05 complete. (A value the
    pre-run pass rejects stops the whole sweep before its first run: tests/test_rejected_overrides.py.)
    Made once per test session (`made_once`: one xdist worker makes it, the others read it); read only,
    like conftest's `shared_run` (copy it to change it): a test that writes into it fails the teardown."""
    sweep = ["-m", *FAST, "train.lr=1e12,0.05", "sparsity=0.5,0.6"]
    folder, proc = made_once(tmp_path_factory, "sweep_with_failures", lambda f: run_cli(sweep, f / "results", check=False))
    results = folder / "results"
    failed = {json.loads(p.read_text())["error_type"]: json.loads(p.read_text()) for p in results.glob("runs/*/failed.json")}
    with _unchanged(results, "failing sweep"):
        yield results, proc, failed


def test_failed_run_is_recorded_and_the_sweep_goes_on(sweep_with_failures):
    results, proc, failed = sweep_with_failures
    assert proc.returncode == 1  # cluster scripts that check the exit code see the failures
    assert "prune-run: 2 of 4 runs failed:" in proc.stderr
    for path in results.glob("runs/*/failed.json"):  # each failed run is listed with its reason
        assert f"  {path.parent}: {json.loads(path.read_text())['error_type']}: " in proc.stderr
    assert len(_complete_runs(results)) == 2
    assert len(list(results.glob("runs/*/failed.json"))) == 2
    assert not any((p.parent / "COMPLETE").exists() for p in results.glob("runs/*/failed.json"))
    record = failed["TrainingDiverged"]
    assert record["status"] == "failed" and record["config_error"] is False
    assert "diverged" in record["message"] and "train.lr=1000000000000.0" in record["overrides"]
    assert "Traceback" in record["traceback"]
    for run_dir in [p.parent for p in results.glob("runs/*/failed.json")]:
        assert f"prune-run: error in {run_dir.name}: " in proc.stderr
        assert "failed (TrainingDiverged" in (run_dir / "prune-run.log").read_text()  # the log file keeps the error's type
    assert proc.stderr.count("(the sweep goes on; fail_fast=true stops it)") == 2
    _check_shared_rows(results, 2)


def test_allow_failures_keeps_exit_code_zero(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "train.lr=1e12,0.05", "allow_failures=true"], results)
    assert proc.returncode == 0 and "prune-run: 1 of 2 runs failed:" in proc.stderr
    assert not (results / ".sweeps").exists()  # the sweep's record of outcomes is removed at the end


def test_a_completed_rerun_removes_failed_json(sweep_with_failures, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(sweep_with_failures[0], results)  # results_dir is not part of the run id
    [run_dir] = [d for d in _complete_runs(results) if "-s0.5-" in d.name]
    (run_dir / "COMPLETE").unlink()  # as if an earlier attempt had failed at the very end
    (run_dir / "failed.json").write_text("{}")
    run_cli([*FAST, "train.lr=0.05", "sparsity=0.5"], results)
    assert (run_dir / "COMPLETE").exists() and not (run_dir / "failed.json").exists()
    shared = pd.read_csv(results / "runs.csv")  # SHARED_APPENDED kept the rows from being appended twice
    assert shared.run_id.nunique() == 2 and not shared.duplicated(["run_id", "phase", "split", "metric"]).any()


def test_fail_fast_stops_the_sweep(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "train.lr=1e12,0.05", "fail_fast=true"], results, check=False)
    assert proc.returncode != 0
    assert "fail_fast" in proc.stderr
    assert _complete_runs(results) == []  # the second run never started
    assert len(list(results.glob("runs/*/failed.json"))) == 1
    assert not (results / "runs.csv").exists()


def test_single_run_failure_still_exits_non_zero(tmp_path):
    results = tmp_path / "results"
    proc = run_cli([*FAST, "train.lr=1e12"], results, check=False)
    assert proc.returncode == 2 and "diverged" in proc.stderr
    assert len(list(results.glob("runs/*/failed.json"))) == 1


@pytest.mark.slow
def test_preempted_submitit_job_is_requeued_and_resumes(tmp_path):
    """SIGUSR2 (what SLURM sends on preemption or before the time limit) to a running submitit job:
    submitit checkpoints the launcher call and requeues it; the requeued job lands in the same run
    directory, resumes from state.pt and writes each row once."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    results = tmp_path / "results"
    args = [a for a in FAST if not a.startswith("train.epochs")] + ["train.epochs=300"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prune_cli.cli",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.submitit_folder=${results_dir}/.submitit/%j",
            *args,
            "sparsity=0.5",
            f"results_dir={results}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.time() + 120
    while not list(results.glob("runs/*/state.pt")) and time.time() < deadline:
        time.sleep(0.05)
    controller = next(d.name for d in (results / ".submitit").iterdir() if d.name.isdigit())
    task = int(Path(f"/proc/{controller}/task/{controller}/children").read_text().split()[0])
    os.kill(task, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    [run_dir] = [d for d in _complete_runs(results) if "-s0.5-" in d.name]
    err = "".join(p.read_text() for p in (results / ".submitit").glob("*/*_log.err"))
    assert "preempted" in err
    assert "resuming run" in (run_dir / "prune-run.log").read_text()
    history = pd.read_csv(run_dir / "history.csv")
    dense = history[history.phase == "dense"]
    assert sorted(dense.epoch) == list(range(1, 301))  # every epoch once, none lost or repeated
    _check_shared_rows(results, 1)


@pytest.mark.slow
def test_installed_wheel_finds_launcher_and_experiment_configs(tmp_path):
    """Installed non-editable from a wheel into a fresh virtualenv and run from an unrelated directory:
    prune-run composes hydra/launcher=slurm and +experiment=... from the package prune_cli.configs
    (pkg://), and the prune-report console script works."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import shutil
    import sysconfig

    src = tmp_path / "src"  # a copy: building a wheel writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("prune_cli", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this env's dependencies, no network
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--ignore-installed",
            "-q",
            *map(str, (tmp_path / "dist").glob("prune_cli-*.whl")),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [str(venv / "bin" / "prune-run"), "--cfg", "all", "hydra/launcher=slurm", "+experiment=ntk_random"],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SlurmLauncher" in proc.stdout and "max_num_timeout: 20" in proc.stdout
    assert "name: ntk_random" in proc.stdout
    results = elsewhere / "results"  # a minimal finished run for the installed prune-report to read
    run = results / "runs" / "r1"
    run.mkdir(parents=True)
    pd.DataFrame(
        {
            "run_id": ["r1"],
            "seed": [0],
            "dataset": ["toy"],
            "model": ["mlp"],
            "method": ["magnitude"],
            "score": ["magnitude"],
            "schedule": ["oneshot"],
            "target_sparsity": [0.5],
            "phase": ["finetuned"],
            "split": ["test"],
            "metric": ["accuracy"],
            "value": [0.75],
            "dense_value": [0.8],
        }
    ).to_csv(run / "metrics.csv", index=False)
    (run / "COMPLETE").write_text("r1\n")
    proc = subprocess.run(
        [str(venv / "bin" / "prune-report"), "results"], capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "missing baselines at sparsity 0.5: random" in proc.stdout
    assert (results / "report" / "accuracy_vs_compression.png").stat().st_size > 0


def test_the_tour_sweep_lists_the_runs_that_disconnect_the_default_mlp_at_999_permille(tmp_path):
    """README's tour: at sparsity 0.999 global magnitude disconnects the default MLP on both seeds, and
    layerwise random pruning on seed 0 but not on seed 1 (about 13 weights are left; whether a random
    draw keeps a path depends on the seed's mask, not on training), so those 3 runs stop with
    LayerCollapse in failed.json and the sweep lists them and exits 1. The README said 4: random's
    masks changed when pruning events got generators of their own, and the test ran seed 0 alone."""
    results = tmp_path / "results"
    short = ["train.epochs=1", "finetune.epochs=1", "dataset.num_samples=1000"]
    proc = run_cli(["-m", "method=magnitude,random", "sparsity=0.999", "seed=0,1", *short], results, check=False)
    assert proc.returncode == 1 and "prune-run: 3 of 4 runs failed:" in proc.stderr, proc.stderr[-2000:]
    failed = {p.parent.name.rsplit("-", 1)[0] for p in results.glob("runs/*/failed.json")}  # without the hash
    assert failed == {"run-magnitude-oneshot-s0.999-seed0", "run-magnitude-oneshot-s0.999-seed1", "run-random-oneshot-s0.999-seed0"}
    records = [json.loads(p.read_text()) for p in results.glob("runs/*/failed.json")]
    assert [r["error_type"] for r in records] == ["LayerCollapse"] * 3
    assert all("The network is disconnected" in r["message"] for r in records)
    assert list(results.glob("runs/run-random-oneshot-s0.999-seed1-*/COMPLETE"))


def test_fail_fast_stops_a_parallel_sweep_after_the_jobs_already_running(tmp_path):
    """Two workers, six jobs, the first diverges at once. The queued jobs used to start and complete
    anyway (the whole sweep is one batch for Hydra), and the failure ended in Hydra's traceback
    without a summary. Now each job that starts after the failure is not run (its directory is not
    left behind), the summary names the failure and the jobs not started, and the exit code is 1."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    lrs = "1e12,0.05,0.04,0.03,0.02,0.01"
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST, f"train.lr={lrs}", "fail_fast=true"]
    proc = run_cli(args, results, check=False)
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "prune-run: 1 of 6 runs failed:" in proc.stderr and "TrainingDiverged" in proc.stderr
    skipped = int(proc.stderr.split("prune-run: ")[-1].split(" ")[0])
    # how many start before the failure is recorded depends on the workers' start-up: at least the last
    assert "not started after the failure (fail_fast=true)" in proc.stderr and skipped >= 1
    runs = sorted(p.name for p in (results / "runs").iterdir() if p.is_dir())
    assert len(runs) == 6 - skipped and len(_complete_runs(results)) == 5 - skipped
    assert not (results / ".sweeps").exists()


@pytest.mark.parametrize("option, plugin", [("slurm", "submitit_slurm"), ("parallel", "joblib")])
def test_a_missing_launcher_plugin_says_which_extra_installs_it(option, plugin):
    """Without the [cluster] extra, Hydra cannot load the launcher config our option builds on
    (the exception below is Hydra's, as raised in a virtualenv without hydra-submitit-launcher): the
    message named only Hydra's search path, not what to install."""
    from hydra.errors import MissingConfigException

    from prune_cli.run.composition_errors import as_config_error

    err = MissingConfigException(
        f"In 'hydra/launcher/{option}': Could not load 'hydra/launcher/{plugin}'.\nConfig search path: ...",
        missing_cfg_file=f"hydra/launcher/{plugin}",
    )
    found = str(as_config_error(err, ["-m", f"hydra/launcher={option}", "seed=0,1"]))
    assert f"'hydra/launcher': '{option}'" in found and 'pip install "prune-cli[cluster]"' in found


def _fake_slurm(tmp_path: Path, sbatch_error: str | None, calls: Path | None = None) -> Path:
    """A folder for PATH with SLURM's `srun`, and an `sbatch` that refuses every job with `sbatch_error`
    (None: no sbatch at all), after appending its arguments to `calls` if given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    if sbatch_error is not None:
        record = f'echo "$@" >> "{calls}"\n' if calls is not None else ""
        (bin_dir / "sbatch").write_text(f"#!/bin/sh\n{record}echo '{sbatch_error}' >&2\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("cluster", ["no srun", "sbatch refuses"])
def test_a_launcher_that_cannot_start_the_sweep_leaves_nothing(tmp_path, monkeypatch, cluster):
    """hydra/launcher=slurm where SLURM is missing (a laptop), or where sbatch refuses the array job
    (a partition that does not exist): the launcher fails before any job ran. It printed submitit's
    traceback and left results_dir/runs/multirun.yaml (and the pickled jobs in .submitit/): a folder
    that looked like a sweep with no runs. Now one line with the launcher's reason, exit 1, and the
    results folder as it was (here: absent)."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import shutil

    if cluster == "no srun":
        if shutil.which("srun"):
            pytest.skip("this machine has SLURM")
    else:
        fake = _fake_slurm(tmp_path, "sbatch: error: invalid partition specified: nope")
        monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    reason = "srun" if cluster == "no srun" else "sbatch: error: invalid partition specified: nope"
    assert "hydra/launcher=slurm could not start the sweep" in proc.stderr and reason in proc.stderr, proc.stderr
    # one line: sbatch's error is in it, not printed before it as well (submitit's echo of sbatch's stderr)
    assert proc.stderr.count(reason) == 1 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not results.exists(), sorted(str(p) for p in results.rglob("*"))


def test_a_launcher_failure_keeps_an_earlier_sweep_s_record(tmp_path, monkeypatch):
    """The results folder of an earlier sweep keeps its runs, its multirun.yaml and its .submitit/ files
    byte for byte when a later sweep's launcher fails."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from conftest import snapshot

    results = tmp_path / "results"
    local = ["hydra/launcher=submitit_local", "hydra.launcher.submitit_folder=${results_dir}/.submitit/%j"]
    run_cli(["-m", *local, *FAST, "seed=0"], results)
    before = snapshot(results)
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: invalid account')}{os.pathsep}{os.environ['PATH']}")
    proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, "seed=1,2"], results, check=False)
    assert proc.returncode == 1 and "sbatch: error: invalid account" in proc.stderr, proc.stderr
    assert snapshot(results) == before


def test_a_parallel_sweep_whose_workers_are_killed_names_the_unfinished_runs_and_keeps_them(tmp_path, monkeypatch):
    """The OOM killer takes a joblib worker (here: every run SIGKILLs itself just before COMPLETE): joblib
    stops the whole sweep. The jobs had started, so their directories and multirun.yaml stay (the
    launcher-failure clean-up must not treat them as a sweep that never ran); one message says the
    launcher stopped the sweep, names each run that did not finish and how to resume; running them again
    finishes them, each run's rows once (with the basic launcher in this process: what is checked here is
    what the killed workers left; a parallel resume is test_a_stop_signal_to_a_parallel_sweep...'s)."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST, "seed=0,1"]
    monkeypatch.setenv("PRUNE_CLI_CRASH_AT", "before-complete")
    proc = run_cli(args, results, check=False)
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "hydra/launcher=parallel stopped the sweep" in err and "no job ran" not in err, err
    runs = sorted(p for p in (results / "runs").iterdir() if p.is_dir())
    assert len(runs) == 2 and all(f"  {run}" in err for run in runs), err
    assert "run the same command again" in err
    assert (results / "runs" / "multirun.yaml").is_file() and not (results / ".sweeps").exists()
    monkeypatch.delenv("PRUNE_CLI_CRASH_AT")
    run_cli(["-m", *FAST, "seed=0,1"], results)
    _check_shared_rows(results, 2)


def test_a_parallel_sweep_over_an_outside_plugin_s_options(tmp_path, monkeypatch):
    """A joblib sweep with two workers: both runs complete, each one's rows once in the shared tables, and the
    per-job thread setting (hydra.job.env_set) reaches torch inside each worker.

    `-m hydra/launcher=parallel plugins=[lab.taylor] method=taylor,magnitude`: the joblib workers compose
    their job before prune-run's task function runs, and only the launching process had indexed the
    command line's plugin modules, so every job was rejected ('method': 'taylor' is not one of ...)
    and the sweep ran nothing; the default launcher worked. The workers now index them at start.
    (One sweep for both: the joblib sweep with two workers was a test of its own, which cost a second sweep.)"""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    from test_plugins import _write_lab

    root = _write_lab(tmp_path / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    results = tmp_path / "results"
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "plugins=[lab.taylor]"]
    args += ["+hydra.job.env_set.OMP_NUM_THREADS='2'", *FAST, "method=taylor,magnitude"]  # parallel.yaml sets none
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "n_jobs': 2" in proc.stdout + proc.stderr or "n_jobs=2" in proc.stdout + proc.stderr
    runs = _complete_runs(results)
    assert len(runs) == 2
    assert {pd.read_csv(d / "metrics.csv").method.iloc[0] for d in runs} == {"taylor", "magnitude"}
    for run_dir in runs:  # the per-job thread setting reached torch inside each worker (run_cli exports 1)
        assert "torch intra-op threads: 2 (OMP_NUM_THREADS" in (run_dir / "prune-run.log").read_text()  # a note beyond the share
    _check_shared_rows(results, 2)


def test_a_skipped_job_leaves_a_run_another_process_is_working_on(tmp_path):
    """A fail-fast sweep's job skipped after a failure removed its run directory when it held only
    scaffolding, without the run's lock: the same run, started by another command and still in its
    first minutes (data pruning's proxies, a dense cache wait), lost its directory and died (the race
    audit, 3 of 3). The directory is removed only when no process holds the run's lock."""
    from filelock import FileLock

    from prune_cli.run_directories import _remove_if_scaffolding

    run_dir = tmp_path / "runs" / "run-x"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "prune-run.log").write_text("")
    lock = FileLock(str(run_dir / ".run.lock"))
    lock.acquire()  # the other process's run
    try:
        _remove_if_scaffolding(run_dir)
        assert run_dir.is_dir() and (run_dir / ".run.lock").exists()
    finally:
        lock.release()
    _remove_if_scaffolding(run_dir)  # nobody runs it: only scaffolding, removed
    assert not run_dir.exists()


def test_a_sweep_starting_while_another_ends_keeps_its_record(tmp_path, monkeypatch):
    """A sweep ending removes results_dir/.sweeps when it is empty; between another sweep's mkdir of that
    folder and the creation of its record there, the starting sweep failed with FileNotFoundError (61 of
    3000 in the race audit's harness). Here the folder is removed at exactly that instant."""
    from pathlib import Path as P

    touch, removed = P.touch, []

    def touch_after_the_other_sweep_ended(self, *args, **kwargs):
        if self.parent.name == ".sweeps" and not removed:
            removed.append(self.parent)
            self.parent.rmdir()  # what the other sweep's end does to the empty folder
        return touch(self, *args, **kwargs)

    monkeypatch.setattr(P, "touch", touch_after_the_other_sweep_ended)
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "seed=0"], results, check=False)
    assert removed and proc.returncode == 0, proc.stderr[-2000:]
    assert "all 1 runs of the sweep completed" in proc.stderr


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has not been reaped by its parent yet: it is gone
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_held_sweep(
    command: list[str], cwd: Path, env: dict, results: Path, held: int = 2, output=subprocess.PIPE, **more_env
) -> subprocess.Popen:
    """The sweep `command` in its own process group, its jobs held at their first checkpoint
    (PRUNE_CLI_HOLD_AT) until a signal or a release file comes; returns once `held` runs have
    checkpointed (or the sweep ended, or a hang guard passed). `output=subprocess.DEVNULL` for a
    sweep whose output nobody reads (killed: its orphans must not block on a full pipe)."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**env, "PRUNE_CLI_HOLD_AT": "checkpoint-saved", **more_env},
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        text=True,
        start_new_session=True,  # its own process group, no terminal
    )
    wait_for_checkpoints(proc, results, held)
    return proc


def wait_for_checkpoints(proc: subprocess.Popen, results: Path, count: int) -> None:
    """Until `count` runs under `results` have their first checkpoint (state.pt), or `proc` ended, or a
    hang guard of 240 s passed (not a time limit on the code)."""
    deadline = time.monotonic() + 240
    while len(list(results.glob("runs/*/state.pt"))) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def assert_gone(pids, what: str = "the sweep's worker processes outlived it") -> None:
    """Every process of `pids` ends (a hang guard of 120 s, not a time limit on the code)."""
    deadline = time.monotonic() + 120
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], what


STOPS = [
    ("parent", signal.SIGTERM),
    ("group", signal.SIGINT),  # a Ctrl-C without a terminal: `timeout -s INT`, a pty with stdin redirected
    ("parent", signal.SIGINT),  # `kill -INT <pid>`: the workers' jobs used to train to the end
    pytest.param("parent", signal.SIGUSR2, marks=pytest.mark.slow),
]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize(
    "to, sig", STOPS, ids=["SIGTERM-to-the-sweep", "SIGINT-to-the-group", "SIGINT-to-the-sweep", "SIGUSR2-to-the-sweep"]
)
def test_a_stop_signal_to_a_parallel_sweep_stops_its_running_jobs_at_a_safe_point(tmp_path, to, sig):
    """`kill <pid of prune-run -m hydra/launcher=parallel ...>` (SLURM's SIGTERM or SIGUSR2 to a batch job
    running a local parallel sweep): the sweep's process died at once (exit 143, not one line), its
    joblib workers kept running their jobs as orphans and lingered, and the queued jobs were lost
    without a word. Now the signal reaches the workers, each running job stops at its next safe point,
    no queued job starts, and the sweep says which runs stopped and how to resume them, then exits
    128 + signal; the same command then completes every run, each one's rows once (after a SIGINT the runs
    it left are resumed by the basic launcher in this process: one parallel resume is enough). A SIGINT to the
    whole group used to reach the workers twice (KeyboardInterrupt, a traceback); a run already
    complete before the sweep was counted as stopped (a reused worker kept the signal's flag)."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    # the run complete before the sweep: in this process (from tmp_path, same environment and run id); the sweep stays a process
    done = run_cli([*FAST, "seed=3"], results, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [complete] = [p for p in (results / "runs").iterdir() if p.is_dir()]
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST, "seed=0,1,2,3", f"results_dir={results}"]
    command = [sys.executable, "-m", "prune_cli.cli", *args]
    proc = start_held_sweep(command, tmp_path, env, results)
    workers = _children(proc.pid)
    if to == "group":
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err and "leaked" not in err, err
    runs = sorted(p for p in (results / "runs").iterdir() if p.is_dir() and p != complete)
    assert len(runs) == 2, runs  # the queued job never started
    name = signal.Signals(sig).name
    assert f"prune-run: sweep stopped by {name}: 1 of the 3 runs that started completed" in err, err
    for run in runs:
        assert f"  {run}: stopped at a safe point; its checkpoint (state.pt) is kept" in err, err
        assert (run / "state.pt").exists() and not (run / "COMPLETE").exists()
    assert f"  {complete}:" not in err, err
    assert "1 queued run was not started" in err and "run the same command again" in err, err
    assert not (results / ".sweeps").exists()
    assert_gone(workers, "the sweep's worker processes outlived it")

    if sig != signal.SIGINT:  # the same command, a parallel sweep, completes every run: in this process, as the SIGKILL
        # test's resume (its joblib workers are processes of their own either way; a new interpreter only added its start-up)
        resumed = run_cli(args, results, check=False)
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # joblib keeps its workers for reuse; this test is done with them
    else:  # what a SIGINT stop left is resumable: the basic launcher in this process (the parallel resume: SIGTERM's case)
        resumed = run_cli(["-m", *FAST, "seed=0,1,2,3"], results, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert all("resuming run" in (run / "prune-run.log").read_text() for run in runs)
    _check_shared_rows(results, 4)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_a_parallel_sweep_killed_with_sigkill_stops_its_workers_jobs_at_a_safe_point(tmp_path):
    """`kill -9` (or the OOM killer) on a parallel sweep's process cannot be caught, so nothing reached
    its joblib workers: they ran their jobs to the end as orphans, using the CPUs of a machine the
    person believed free, then idled for loky's 300 s. Now each worker sees its parent gone, stops its
    job at the next safe point as on SIGTERM (checkpoint kept) and exits; the same command resumes."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST, "seed=0,1"]
    command = [sys.executable, "-m", "prune_cli.cli", *args, f"results_dir={results}"]
    proc = start_held_sweep(command, tmp_path, env, results, output=subprocess.DEVNULL)
    workers = _children(proc.pid)
    assert workers and proc.poll() is None
    proc.kill()
    proc.wait()
    assert_gone(workers, "the killed sweep's workers went on as orphans")
    runs = sorted(p for p in (results / "runs").iterdir() if p.is_dir())
    assert len(runs) == 2, runs
    for run in runs:
        assert (run / "state.pt").exists() and not (run / "COMPLETE").exists()
        assert "stopped" in (run / "prune-run.log").read_text()

    # the same command, in this process (its joblib workers are processes of their own either way)
    resumed = run_cli(args, results, check=False)
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # joblib keeps its workers for reuse; this test is done with them
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert all("resuming run" in (run / "prune-run.log").read_text() for run in runs)
    _check_shared_rows(results, 2)


@pytest.mark.slow  # 35-44 s on two cores: two interpreters and the joblib workers; `pytest -m slow` runs it
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_a_sigterm_to_one_worker_of_a_parallel_sweep_stops_its_job_and_the_queue_but_not_the_other_job(tmp_path):
    """`kill <pid of one joblib worker>` (a person stopping one job, a tool signalling one process):
    that worker's job stops at its next safe point and keeps its checkpoint, no queued job starts (none
    leaves a directory), the other running job finishes; the sweep says which run stopped and how many
    queued runs did not start, exit 128 + SIGTERM, and the same command completes every run, each one's
    rows once. Both jobs hold at their first checkpoint; the other one is let go (PRUNE_CLI_HOLD_RELEASE)
    once the stopped job has marked the sweep as stopping, so it finishes with no signal of its own."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    args = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST, "seed=0,1,2,3", f"results_dir={results}"]
    command = [sys.executable, "-m", "prune_cli.cli", *args]
    release = tmp_path / "release"
    proc = start_held_sweep(command, tmp_path, env, results, PRUNE_CLI_HOLD_RELEASE=str(release))
    from prune_cli.run import sweep_record

    [record] = results.glob(".sweeps/*.jsonl")
    running = sweep_record.running(record)
    assert len(running) == 2 and set(running.values()) <= _children(proc.pid), (running, _children(proc.pid))
    workers = _children(proc.pid)
    stopped, other = (Path(d) for d in sorted(running))
    os.kill(running[str(stopped)], signal.SIGTERM)
    deadline = time.monotonic() + 120
    while not sweep_record.stopping(str(record)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sweep_record.stopping(str(record)), "the signalled worker's job did not mark the sweep as stopping"
    release.touch()  # the other job goes on
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "leaked" not in err, err[-3000:]
    assert sorted(p for p in (results / "runs").iterdir() if p.is_dir()) == [stopped, other]  # no queued job started
    assert (stopped / "state.pt").exists() and not (stopped / "COMPLETE").exists()
    assert (other / "COMPLETE").exists()
    assert "prune-run: sweep stopped by SIGTERM: 1 of the 2 runs that started completed" in err, err
    assert f"  {stopped}: stopped at a safe point; its checkpoint (state.pt) is kept" in err, err
    assert f"  {other}:" not in err, err
    assert "2 queued runs were not started" in err and "run the same command again" in err, err
    assert not (results / ".sweeps").exists()
    assert_gone(workers, "the sweep's worker processes outlived it")

    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run" in (stopped / "prune-run.log").read_text()
    assert (other / "prune-run.log").read_text().count("dense epoch 1/") == 1  # the finished run was not redone
    _check_shared_rows(results, 4)


def test_a_one_job_parallel_sweep_outlives_the_script_that_started_it(tmp_path):
    """With one job at a time (`hydra.launcher.n_jobs=1`) joblib runs the jobs in the sweep's own
    process, whose parent is the shell or a driver script: a driver that starts the sweep and exits
    (or a `nohup` sweep after a logout) made that process stop its own sweep as if it had been
    orphaned (review of the SIGKILL watch). Every run must complete."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    # still training when the driver exits (no dense-cache hit to make it quick)
    longer = [a for a in FAST if not a.startswith("train.epochs=")] + ["train.epochs=60", "dense_cache.enabled=false"]
    command = [sys.executable, "-m", "prune_cli.cli", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=1", *longer]
    command += ["seed=0,1", f"results_dir={results}"]
    driver = (  # starts the sweep, waits until its first job has started, exits
        "import pathlib, subprocess, time\n"
        f"subprocess.Popen({command!r}, start_new_session=True, stdin=subprocess.DEVNULL, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "deadline = time.monotonic() + 120\n"
        f"while not list(pathlib.Path({str(results)!r}).glob('runs/*/prune-run.log')) and time.monotonic() < deadline:\n"
        "    time.sleep(0.1)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=env, check=True, timeout=60)  # exits at once
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        logs = [p.read_text() for p in results.glob("runs/*/prune-run.log")]
        done = len(list(results.glob("runs/*/COMPLETE")))
        if done == 2 or any("prune-run: stopped by" in log for log in logs):
            break
        time.sleep(0.5)
    logs = "\n".join(p.read_text() for p in results.glob("runs/*/prune-run.log"))
    assert len(list(results.glob("runs/*/COMPLETE"))) == 2, logs[-3000:]
    assert "prune-run: stopped by" not in logs


def _sequential_sweep(tmp_path, hold: str, started: int, extra: tuple = ()):
    """A basic-launcher sweep of three runs held at `hold` until SIGTERM, sent once `started` run
    directories have a checkpoint (0: once the sweep's record exists): (process, stderr, results, its arguments)."""
    from cli_runner import start_forked

    results = tmp_path / "results"
    command = ["-m", *FAST, "seed=0,1,2", *extra]
    # a process of its own to signal, forked from this one (no interpreter start-up), from tmp_path
    proc = start_forked(command, results, env={"PRUNE_CLI_HOLD_AT": hold})

    def ready() -> bool:
        if started == 0:
            return (results / ".sweeps").is_dir() and any((results / ".sweeps").iterdir())
        return len(list(results.glob("runs/*/state.pt"))) >= started

    deadline = time.monotonic() + 240
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    _sequential_sweep.stdout = out
    return proc, err, results, command


@pytest.mark.parametrize("batches", [(), ("hydra.sweeper.max_batch_size=1",)], ids=["one_batch", "batches_of_one"])
def test_a_sigterm_during_a_sequential_sweep_s_run_names_the_queued_runs_too(tmp_path, batches):
    """Hydra's basic launcher: the stopped run said its one line and the sweep ended there, not naming the
    jobs that never ran. Now the summary of a stopped sweep follows, like a parallel sweep's, and the
    same command resumes the sweep. With batches (max_batch_size) the later batches are not launched
    and are counted (the diff audit: 2 said where 3 had not started)."""
    proc, err, results, command = _sequential_sweep(tmp_path, "checkpoint-saved", started=1, extra=batches)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    [run] = [p for p in (results / "runs").iterdir() if p.is_dir()]
    assert "prune-run: sweep stopped by SIGTERM: 0 of the 1 runs that started completed" in err, err
    assert f"  {run}: stopped at a safe point; its checkpoint (state.pt) is kept" in err, err
    assert "2 queued runs were not started" in err, err
    assert not (results / ".sweeps").exists()
    resumed = run_cli(command, results, check=False)  # in this process: PRUNE_CLI_HOLD_AT is only the forked child's
    assert resumed.returncode == 0 and "resuming run" in (run / "prune-run.log").read_text(), resumed.stderr[-3000:]
    _check_shared_rows(results, 3)


def test_a_sigterm_before_a_sequential_sweep_s_first_run_leaves_nothing_behind(tmp_path):
    """A SIGTERM while a sweep checks its jobs (216 jobs of a preset: 15 s) killed it without a word and
    left results_dir/.sweeps and runs/multirun.yaml behind (sweep audit). Now no run starts, no run
    directory is left, and the summary says the queued runs were not started."""
    proc, err, results, _ = _sequential_sweep(tmp_path, "sweep-started", started=0)
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert "Launching" not in _sequential_sweep.stdout + err  # no job was handed to the launcher at all
    assert "prune-run: sweep stopped by SIGTERM before any run had started" in err, err  # not "0 of the 0 runs"
    assert "3 queued runs were not started" in err, err
    assert not (results / ".sweeps").exists()
    assert not (results / "runs").exists()  # nor the sweep's multirun.yaml (tests/test_sweep_stop_record.py)


def test_a_local_sweep_keeps_a_handler_someone_else_installed_and_puts_its_own_back(tmp_path):
    """A program calling prune-cli's main with its own SIGTERM handler lost it to the sweep's and found
    SIG_DFL afterwards (diff audit); interrupts.install has always kept such a handler."""
    from omegaconf import OmegaConf

    from prune_cli.run import sweep_stop

    def own(signum, frame):
        pass

    before_usr2 = signal.getsignal(signal.SIGUSR2)
    previous = signal.signal(signal.SIGTERM, own)
    try:
        basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
        sweep_stop.install(str(tmp_path / "record.jsonl"), basic)
        assert signal.getsignal(signal.SIGTERM) is own and signal.getsignal(signal.SIGUSR2) is sweep_stop._on_signal  # noqa: SLF001
        sweep_stop.restore_signals()
        assert signal.getsignal(signal.SIGTERM) is own and signal.getsignal(signal.SIGUSR2) is before_usr2
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_after_a_sigint_to_a_parallel_sweep_s_process_reaches_the_workers(tmp_path, monkeypatch):
    """SIGINT to the sweep's process alone reaches the workers as SIGTERM (a worker that got the same Ctrl-C
    from the terminal keeps stopping at its safe point: tests/test_sweep_ends.py); a SIGTERM after it was
    dropped as a repeat, so the running jobs trained on to the end (diff audit)."""
    from prune_cli.run import sweep_record, sweep_stop

    sent = []
    monkeypatch.setattr(sweep_stop, "_joblib_workers", lambda: {4242})
    monkeypatch.setattr(sweep_record, "running", lambda record: {"run-a": 4242})
    monkeypatch.setattr(sweep_stop.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(sweep_stop, "_record", str(tmp_path / "record.jsonl"))
    monkeypatch.setattr(sweep_stop, "_forward", True)
    monkeypatch.setattr(sweep_stop, "_stopping", None)
    monkeypatch.setattr(sweep_stop.interrupts, "request", lambda signum: None)
    sweep_stop._on_signal(signal.SIGINT, None)  # noqa: SLF001
    assert sent == [(4242, signal.SIGTERM)]
    sweep_stop._on_signal(signal.SIGTERM, None)  # noqa: SLF001
    assert sent == [(4242, signal.SIGTERM)] * 2


@pytest.mark.slow
def test_a_second_parallel_sweep_in_one_process_gets_workers_that_know_its_record(tmp_path):
    """Two `hydra/launcher=parallel` sweeps in one Python process (prune_cli.cli.main called twice: a
    notebook, a driver script): joblib reuses its loky workers for 300 s, and they kept the environment
    of their start, the first sweep's record, which the first sweep had removed. The second sweep's jobs
    then failed writing to it and the sweep ended with a FileNotFoundError traceback (exit 1). Now a
    sweep starts with fresh workers: each sweep's summary counts its own runs."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    from cli_runner import run_in_process

    sweep = ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *FAST]  # 1 would run in this process
    first = run_in_process([*sweep, "seed=0,1", f"results_dir={tmp_path / 'a'}"], tmp_path, {})
    assert first.returncode == 0 and "all 2 runs of the sweep completed" in first.stderr, first.stderr[-2000:]
    second = run_in_process([*sweep, "seed=2,3", f"results_dir={tmp_path / 'b'}"], tmp_path, {})
    assert second.returncode == 0, second.stderr[-2000:]
    assert "all 2 runs of the sweep completed" in second.stderr, second.stderr[-2000:]
    assert len(_complete_runs(tmp_path / "b")) == 2 and not (tmp_path / "a" / ".sweeps").exists()


def test_a_sweep_s_stop_handlers_are_installed_before_its_record_appears(tmp_path, monkeypatch):
    """The record in results_dir/.sweeps is what says a sweep has started (the stop tests wait for it); it
    was created before the stop handlers were installed, so a SIGTERM in between killed the sweep with
    the default action (exit -15, no summary: a CI run of test_a_sigterm_before_a_sequential_sweep_s_first
    _run_leaves_nothing_behind). The handlers now come first."""
    from omegaconf import OmegaConf

    import prune_cli.sweep_lifecycle as lifecycle
    from prune_cli.run import sweep_record, sweep_stop

    seen = {}

    def install(record, launcher):
        seen["record existed at install"] = Path(record).exists()

    monkeypatch.setattr(sweep_stop, "install", install)
    monkeypatch.setattr(sweep_stop, "handles", lambda launcher: True)
    monkeypatch.delenv(sweep_record.SWEEP_RECORD_ENV, raising=False)
    results = tmp_path / "results"
    cfg = OmegaConf.create(
        {
            "results_dir": str(results),
            "hydra": {
                "sweep": {"dir": str(results / "runs")},
                "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
                "runtime": {"choices": {"hydra/launcher": "basic"}},
            },
        }
    )
    try:
        lifecycle.SweepSummary().on_multirun_start(cfg)
        record = Path(os.environ[sweep_record.SWEEP_RECORD_ENV])
        assert seen == {"record existed at install": False} and record.is_file()
    finally:
        sweep_record.remove(os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None))
        lifecycle._MULTIRUN_YAML.clear()
        lifecycle._LAUNCHER.clear()
        lifecycle._SWEEP_CREATED.clear()


@pytest.mark.parametrize("setting", [["device=cuda"], ["device=cuda", "accel.precision=bf16"]])
def test_a_slurm_sweep_leaves_the_device_checks_to_the_gpu_nodes(tmp_path, monkeypatch, setting):
    """`-m hydra/launcher=slurm device=cuda` from a submit host without a GPU was refused before
    submission ("device: cuda. Allowed: auto or cpu on this machine"): the check ran on the machine
    that submits, not on the nodes the jobs run on. The sweep now reaches the launcher (here a fake
    sbatch that refuses the array, so nothing runs); each job checks its device where it runs."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check would pass anyway")
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: invalid partition')}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, *setting, "seed=0,1"], results, check=False)
    assert proc.returncode == 1 and "hydra/launcher=slurm could not start the sweep" in proc.stderr, proc.stderr
    assert "Allowed: auto or cpu on this machine" not in proc.stderr
    local = run_cli(["-m", *FAST, "device=cuda", "seed=0,1"], results, check=False)  # a local sweep still checks here
    assert local.returncode == 2 and "Allowed: auto or cpu on this machine" in local.stderr, local.stderr


@pytest.mark.parametrize("n_jobs", ["0"])
def test_a_parallel_sweep_with_no_meaningful_job_count_is_rejected_before_any_job(tmp_path, n_jobs):
    """hydra.launcher.n_jobs=0 reached joblib ("n_jobs == 0 in Parallel has no meaning"): a ValueError
    traceback and exit 1 after the sweep had started."""
    pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    proc = run_cli(["-m", "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}", *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 2 and "'hydra.launcher.n_jobs'" in proc.stderr and "a nonzero integer" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not results.exists()


@pytest.mark.parametrize("option", ["submitit_local", "submitit_slurm", "joblib"])
def test_a_plugin_launcher_chosen_by_its_own_name_without_the_plugin_says_what_to_install(option):
    """hydra/launcher=submitit_local (docs/report.md uses it) without hydra-submitit-launcher: Hydra
    reports a missing option of the group, and the message listed the options (basic, joblib,
    parallel, slurm) with no word of the [cluster] extra that provides it."""
    from hydra.errors import MissingConfigException

    from prune_cli.run.composition_errors import as_config_error

    missing = f"hydra/launcher/{option}"
    err = MissingConfigException(f"Could not find '{missing}'", missing_cfg_file=missing, options=["basic", "parallel", "slurm"])
    found = str(as_config_error(err, ["-m", f"hydra/launcher={option}", "seed=0,1"]))
    assert f"'hydra/launcher': '{option}'" in found and 'pip install "prune-cli[cluster]"' in found, found


def test_cfg_job_of_a_slurm_config_leaves_the_device_check_to_the_nodes(tmp_path):
    """The review: `--cfg job device=cuda hydra/launcher=slurm` on a host without a GPU was refused
    ("torch.cuda.is_available() is False here") although the sweep it shows is accepted (its jobs check
    their device on the nodes). Shown without a check of this machine's device; a local config still
    gets it."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check would pass anyway")
    shown = run_cli(["--cfg", "job", "hydra/launcher=slurm", *FAST, "device=cuda"], tmp_path / "results")
    assert "device: cuda" in shown.stdout
    local = run_cli(["--cfg", "job", *FAST, "device=cuda"], tmp_path / "results", check=False)
    assert local.returncode == 2 and "Allowed: auto or cpu on this machine" in local.stderr, local.stderr


# Values of hydra-submitit-launcher's numeric options that sbatch or submitit would be given as they
# are (`--time=-5`, `--array=0-1%0`, `--signal=USR2@-30`, `--mem=0GB`: all of a node's memory): each
# with the fragment of what is allowed its message must name.
BAD_SUBMITIT_VALUES = [
    ("timeout_min", "-5", "an integer >= 1"),
    ("timeout_min", "0", "an integer >= 1"),
    ("cpus_per_task", "0", "an integer >= 1"),
    ("gpus_per_node", "-1", "an integer >= 0"),
    ("tasks_per_node", "0", "1, tasks per node"),
    ("tasks_per_node", "2", "1, tasks per node (sbatch --ntasks-per-node): prune-run is not distributed"),
    ("mem_gb", "0", "+hydra.launcher.additional_parameters.mem=0"),
    ("nodes", "0", "1, nodes per job"),
    ("nodes", "2", "1, nodes per job (sbatch --nodes): prune-run is not distributed"),
    ("array_parallelism", "0", "an integer >= 1"),
    ("signal_delay_s", "-30", "an integer in [0, 14400)"),
    ("signal_delay_s", "14400", "an integer in [0, 14400)"),
    ("max_num_timeout", "-1", "an integer >= 0"),
    ("cpus_per_gpu", "0", "an integer >= 1"),
    ("gpus_per_task", "-1", "an integer >= 0"),
]


@pytest.mark.parametrize("key, value, allowed", BAD_SUBMITIT_VALUES)
def test_a_slurm_launcher_value_sbatch_cannot_take_is_refused_before_submission(tmp_path, monkeypatch, key, value, allowed):
    """The audit with a fake SLURM: these values reached sbatch as given; sbatch's error and exit 1, or
    (max_num_timeout=-1, mem_gb=0) a sweep that ran otherwise than asked. Now one line naming the key,
    the value and what is allowed, exit 2, sbatch never called, results_dir not created."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    calls = tmp_path / "sbatch_calls"
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: refused', calls)}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    proc = run_cli(["-m", "hydra/launcher=slurm", f"hydra.launcher.{key}={value}", *FAST, "seed=0,1"], results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"'hydra.launcher.{key}'" in proc.stderr and value in proc.stderr and allowed in proc.stderr, proc.stderr
    assert proc.stderr.startswith("prune-run: error:") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not calls.exists() and not results.exists()


@pytest.mark.parametrize(
    "launcher, key, value, allowed",
    [
        ("submitit_slurm", "timeout_min", "0", "an integer >= 1"),  # the plugin's own config, without prune-cli's slurm.yaml
        ("submitit_slurm", "array_parallelism", "-2", "an integer >= 1"),
        ("submitit_slurm", "signal_delay_s", "3600", "an integer in [0, 3600)"),  # the plugin's timeout_min is 60
        ("submitit_local", "timeout_min", "-1", "an integer >= 1"),
        ("submitit_local", "gpus_per_node", "-1", "an integer >= 0"),
        ("submitit_local", "nodes", "2", "1 (submitit's local executor runs its jobs on this machine)"),
        ("submitit_slurm", "nodes", "3", "1, nodes per job (sbatch --nodes): prune-run is not distributed"),
    ],
)
def test_the_plugin_s_own_submitit_launchers_are_checked_too(tmp_path, monkeypatch, launcher, key, value, allowed):
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    calls = tmp_path / "sbatch_calls"
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: refused', calls)}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    own = ["hydra.launcher.submitit_folder=${results_dir}/.submitit/%j"]
    args = ["-m", f"hydra/launcher={launcher}", *own, f"hydra.launcher.{key}={value}", *FAST, "seed=0,1"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"'hydra.launcher.{key}'" in proc.stderr and value in proc.stderr and allowed in proc.stderr, proc.stderr
    assert not calls.exists() and not results.exists()


def test_a_launcher_value_from_a_config_file_is_checked_as_one_from_the_command_line(tmp_path, monkeypatch):
    """A user's launcher option (--config-dir) setting mem_gb: 0 is refused like hydra.launcher.mem_gb=0,
    and an earlier sweep's results are left byte for byte."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from conftest import snapshot

    results = tmp_path / "results"
    run_cli([*FAST, "seed=0"], results)
    before = snapshot(results)
    mine = tmp_path / "my_configs" / "hydra" / "launcher"
    mine.mkdir(parents=True)
    (mine / "my_slurm.yaml").write_text("# @package _global_\ndefaults:\n  - slurm\nhydra:\n  launcher:\n    mem_gb: 0\n")
    calls = tmp_path / "sbatch_calls"
    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: refused', calls)}{os.pathsep}{os.environ['PATH']}")
    args = ["--config-dir", str(tmp_path / "my_configs"), "-m", "hydra/launcher=my_slurm", *FAST, "seed=1,2"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2 and "'hydra.launcher.mem_gb'" in proc.stderr, proc.stderr
    assert not calls.exists() and snapshot(results) == before


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm", "submitit_local"])
def test_the_launchers_defaults_and_the_edges_of_each_range_are_accepted(tmp_path, launcher):
    """0 GPUs (a CPU job), no requeue after a timeout, SIGUSR2 at the time limit's last second, mem_gb=null
    (the cluster's default) are values, not mistakes."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from prune_cli.run.prevalidate import check_launcher_overrides

    check_launcher_overrides(_hydra_cfg([f"hydra/launcher={launcher}"], tmp_path))
    edges = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=1", "hydra.launcher.nodes=1"]
    if launcher != "submitit_local":
        edges += ["hydra.launcher.max_num_timeout=0", "hydra.launcher.signal_delay_s=59", "hydra.launcher.array_parallelism=1"]
    check_launcher_overrides(_hydra_cfg([f"hydra/launcher={launcher}", *edges], tmp_path))


def test_every_numeric_option_of_the_installed_submitit_plugin_has_a_range():
    """The ranges are read against the plugin's own dataclasses: an option a newer hydra-submitit-launcher
    adds with a number (an sbatch option) fails here until prune-cli says what it allows."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from prune_cli.run.launcher_values import SUBMITIT_RANGES, numeric_fields

    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    for conf in (SlurmQueueConf, LocalQueueConf):
        assert numeric_fields(conf), conf
        assert set(numeric_fields(conf)) <= set(SUBMITIT_RANGES), set(numeric_fields(conf)) - set(SUBMITIT_RANGES)


def test_cfg_job_of_a_sweep_with_a_bad_launcher_value_is_refused(tmp_path):
    """`--cfg job` shows a config the sweep accepts: a launcher value the sweep refuses is refused here too."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    args = ["--cfg", "job", "hydra/launcher=slurm", "hydra.launcher.array_parallelism=0", *FAST]
    proc = run_cli(args, tmp_path / "results", check=False)
    assert proc.returncode == 2 and "'hydra.launcher.array_parallelism'" in proc.stderr, proc.stderr


def test_a_job_whose_sweep_record_is_gone_still_does_its_run(tmp_path, monkeypatch):
    """The SLURM audit: the submit host removed results_dir/.sweeps while array tasks were still queued;
    each then failed writing its "started" line to the record (FileNotFoundError, which Hydra's run_job
    caught, so SLURM reported the task COMPLETED) and left a run directory holding only its log. A job
    whose record is gone now says so in its log and does its run; the record is not made again."""
    import shutil

    import prune_cli.sweep_lifecycle as lifecycle

    results = tmp_path / "results"

    def remove_the_record(point: str) -> None:  # the instant after the sweep made its record
        if point == "sweep-started":
            shutil.rmtree(results / ".sweeps")

    monkeypatch.setattr(lifecycle.crashpoints, "hold", remove_the_record)
    proc = run_cli(["-m", *FAST, "seed=0"], results, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [run] = _complete_runs(results)
    assert "the sweep's record" in (run / "prune-run.log").read_text() and "is gone" in (run / "prune-run.log").read_text()
    assert not (results / ".sweeps").exists()
    _check_shared_rows(results, 1)


class _FakeArrayTask:
    """One task of a SLURM array as hydra/launcher=slurm's plugin sees it (submitit's Job: job_id,
    results, wait), nothing submitted. Its run records `at_submission` in the sweep's record when
    submitted and `by_its_end` when it ends (its first wait or results); results then raises `raises`
    (None: a completed JobReturn). `unreachable`: wait raises it (the submit host cannot follow the job)."""

    def __init__(self, task: int, results: Path, at_submission=(), by_its_end=(), raises=None, unreachable=None):
        self.job_id = f"4242_{task}"
        self.run_dir = results / "runs" / f"run-{task}"
        self.by_its_end, self.raises, self.unreachable = list(by_its_end), raises, unreachable
        self.ended = False
        self._record(at_submission)

    def _record(self, statuses) -> None:
        from prune_cli.run import sweep_record

        for status in statuses:
            sweep_record.record_outcome(self.run_dir, status)

    def wait(self) -> None:
        if self.unreachable is not None:
            raise self.unreachable
        if not self.ended:
            self.ended = True
            self._record(self.by_its_end)

    def results(self):
        from hydra.core.utils import JobReturn, JobStatus

        if self.raises is not None:
            self.ended = True
            raise self.raises
        self.wait()
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]


def _fake_slurm_array(tmp_path: Path, monkeypatch, results: Path, tasks) -> list[_FakeArrayTask]:
    """hydra/launcher=slurm with a fake `srun` (submitit builds its executor) and `map_array` giving
    `_FakeArrayTask(i, results, **tasks[i])` for each job: the jobs made, filled in when submitted."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    import submitit

    monkeypatch.setenv("PATH", f"{_fake_slurm(tmp_path, 'sbatch: error: not used')}{os.pathsep}{os.environ['PATH']}")
    made: list[_FakeArrayTask] = []

    def map_array(self, fn, *args):  # one call per batch (hydra.sweeper.max_batch_size): the next tasks
        from submitit.core.utils import FailedJobError

        start = len(made)
        batch = tasks[start : start + len(args[0])]
        assert len(batch) == len(args[0])
        if "refused" in batch:
            raise FailedJobError("sbatch: error: QOSMaxSubmitJobPerUserLimit")
        new = [_FakeArrayTask(start + i, results, **task) for i, task in enumerate(batch)]
        made.extend(new)
        return new

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    return made


def _killed(task: int) -> Exception:
    from submitit.core.utils import UncompletedJobError

    return UncompletedJobError(f"Job 4242_{task} (task: {task}) with path x has not produced any output (state: FAILED)")


def test_a_slurm_job_killed_early_does_not_stop_the_submit_host_waiting_for_the_others(tmp_path, monkeypatch):
    """The SLURM audit (fake cluster): array task 0 SIGKILLed after its checkpoint. The plugin's
    `[j.results()[0] for j in jobs]` raised at task 0 while task 1 was still running and task 2 queued;
    prune-run called task 1 killed, did not mention task 2, and removed the sweep's record under them.
    Now the submit host waits for every job, then names only the run that ended without an outcome."""
    results = tmp_path / "results"
    tasks = [
        {"at_submission": ["started"], "raises": _killed(0)},
        {"at_submission": ["started"], "by_its_end": ["completed"]},  # running when task 0 was found dead
        {"by_its_end": ["started", "completed"]},  # queued then
    ]
    made = _fake_slurm_array(tmp_path, monkeypatch, results, tasks)
    proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, "seed=0,1,2"], results, check=False)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert all(task.ended for task in made), "the submit host stopped waiting for a job"
    assert "2 of the 3 runs that started completed" in err, err
    assert f"  {made[0].run_dir}: it ended without recording an outcome (killed" in err, err
    assert f"  {made[1].run_dir}" not in err and f"  {made[2].run_dir}" not in err, err
    assert not (results / ".sweeps").exists()  # every job has ended: the record has no reader left


def test_a_slurm_submit_host_that_cannot_follow_its_jobs_keeps_their_record_and_says_how_to_cancel(tmp_path, monkeypatch):
    """The launcher raises while jobs may still be queued or running (here the submit host cannot reach
    them any more): their outcome is unknown, not "killed"; the record they write to stays (a job that
    found it gone did nothing, and fail_fast reads it); the message says they complete their runs, how
    to collect them and how to cancel them."""
    results = tmp_path / "results"
    lost = RuntimeError("sacct: error: slurmdbd unreachable")
    tasks = [
        {"at_submission": ["started"], "raises": _killed(0)},
        {"at_submission": ["started"], "unreachable": lost},
        {"unreachable": lost},
    ]
    made = _fake_slurm_array(tmp_path, monkeypatch, results, tasks)
    proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, "seed=0,1,2"], results, check=False)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "killed" not in err, err
    assert f"  {made[1].run_dir}: outcome unknown" in err, err
    assert "1 queued job" in err and "scancel 4242" in err and "run the same command again" in err, err
    [record] = (results / ".sweeps").iterdir()
    assert str(made[1].run_dir) in record.read_text()


@pytest.mark.parametrize("when", ["waiting", "submitting", "before submitting"])
def test_a_ctrl_c_on_a_slurm_submit_host_says_what_becomes_of_the_jobs(tmp_path, monkeypatch, when):
    """The SLURM audit: Ctrl-C to the launching prune-run while its array was on the cluster printed a
    KeyboardInterrupt traceback (exit 130) and removed the sweep's record, so the queued jobs then ran
    and did nothing. Now one line: the jobs already submitted keep running and complete their runs (how
    to collect them, how to cancel them), their record stays; exit 130. A Ctrl-C before any job was
    submitted says so and leaves the results folder as it was."""
    import submitit

    results = tmp_path / "results"
    tasks = [{"at_submission": ["started"], "raises": KeyboardInterrupt()}, {}, {}]
    _fake_slurm_array(tmp_path, monkeypatch, results, tasks)
    if when != "waiting":

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(submitit.AutoExecutor, "map_array" if when == "submitting" else "update_parameters", interrupted)
    try:
        proc = run_cli(["-m", "hydra/launcher=slurm", *FAST, "seed=0,1,2"], results, check=False)
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C left prune-run as a KeyboardInterrupt (a traceback)")
    err = proc.stderr
    assert proc.returncode == 130 and "Traceback" not in err and err.count("prune-run:") == 1, err
    if when == "before submitting":
        assert "no job of the sweep was submitted" in err, err
        assert not results.exists(), sorted(str(p) for p in results.rglob("*"))
        return
    if when == "waiting":
        assert "keep running on the cluster" in err and "scancel 4242" in err and "run the same command again" in err, err
    else:
        assert "while its jobs were being submitted" in err and "squeue" in err, err
    assert [p.suffix for p in (results / ".sweeps").iterdir()] == [".jsonl"]  # the jobs write to it


def test_submitit_s_sigterm_handler_is_kept_so_a_preemption_can_still_requeue():
    """submitit ignores SIGTERM in its jobs: a preemption may send SIGTERM and then the `--signal`
    (SIGUSR2), whose handler requeues the job. Taking SIGTERM over (tried on 2026-12-02) stopped the
    job at SIGTERM, before the requeue: the run was lost from its sweep (the SLURM review)."""
    pytest.importorskip("submitit", reason=NEEDS)
    from submitit.core.job_environment import SignalHandler

    from prune_cli.core import interrupts

    handler = SignalHandler.__new__(SignalHandler)  # its methods are what install() looks at
    before = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    signal.signal(signal.SIGTERM, handler.bypass)
    try:
        interrupts.install()
        assert signal.getsignal(signal.SIGTERM) == handler.bypass
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def test_sbatch_refusing_a_later_batch_is_not_reported_as_a_failed_job(tmp_path, monkeypatch):
    """The SLURM review (hydra.sweeper.max_batch_size=1): sbatch refused the second batch after the first
    one's run completed; prune-run said "a job of the sweep did not end normally" and "all 1 jobs of the
    sweep have ended", as if the sweep were done. Now: which runs were not submitted, and what to do."""
    results = tmp_path / "results"
    _fake_slurm_array(tmp_path, monkeypatch, results, [{"by_its_end": ["started", "completed"]}, "refused"])
    proc = run_cli(["-m", "hydra/launcher=slurm", "hydra.sweeper.max_batch_size=1", *FAST, "seed=0,1"], results, check=False)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "did not end normally" not in err and "QOSMaxSubmitJobPerUserLimit" in err, err
    assert "could not submit" in err and "run the same command again" in err, err
    assert not (results / ".sweeps").exists()  # no job left to write to it


def test_a_ctrl_c_between_batches_of_a_slurm_sweep_says_what_ran(tmp_path, monkeypatch):
    """The SLURM review: a Ctrl-C between two batches (hydra.sweeper.max_batch_size=1), after the first
    batch's run completed, said "no job of the sweep was submitted; the results folder is as it was"
    and left the sweep's record behind."""
    import submitit

    results = tmp_path / "results"
    _fake_slurm_array(tmp_path, monkeypatch, results, [{"by_its_end": ["started", "completed"]}, {}])
    update, calls = submitit.AutoExecutor.update_parameters, []

    def update_parameters(self, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return update(self, **kwargs)

    monkeypatch.setattr(submitit.AutoExecutor, "update_parameters", update_parameters)
    proc = run_cli(["-m", "hydra/launcher=slurm", "hydra.sweeper.max_batch_size=1", *FAST, "seed=0,1"], results, check=False)
    err = proc.stderr
    assert proc.returncode == 130 and "Traceback" not in err and err.count("prune-run:") == 1, err
    assert "no job of the sweep was submitted" not in err and "have ended" in err and "run the same command again" in err, err
    assert not (results / ".sweeps").exists()


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm", "submitit_local"])
def test_more_than_one_task_per_job_is_refused(tmp_path, launcher):
    """Audit of 2026-12-04: `hydra.launcher.tasks_per_node=2` (and `nodes=2` on SLURM) was accepted, and each task
    ran the same job: with submitit_local a second process waited on the run's lock, then found it complete; on SLURM
    twice the resources reserved, and submitit requeues from task 0 only."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from prune_cli.core.errors import ConfigError
    from prune_cli.run.prevalidate import check_launcher_overrides

    with pytest.raises(ConfigError, match=r"'hydra.launcher.tasks_per_node': 2\. Allowed: 1, .*prune-run is not distributed"):
        check_launcher_overrides(_hydra_cfg([f"hydra/launcher={launcher}", "hydra.launcher.tasks_per_node=2"], tmp_path))
    check_launcher_overrides(_hydra_cfg([f"hydra/launcher={launcher}", "hydra.launcher.tasks_per_node=1"], tmp_path))


@pytest.mark.parametrize("checkpoint", [True, False], ids=["with-checkpoint", "before-the-first"])
def test_a_job_out_of_requeues_says_it_stopped_and_how_to_resume(tmp_path, monkeypatch, checkpoint):
    """Audit of 2026-12-04: submitit's SIGUSR2 handler raises UncompletedJobError("Job not requeued because: timed-out
    too many times.") in a job with no requeue left (hydra.launcher.max_num_timeout). It said only "error in <run>:
    Job not requeued ... (fail_fast: sweep stopped)" and wrote failed.json, with no word that the run keeps its
    checkpoint. Now the line of a run stopped by a signal, recorded as stopped; the sweep lists it and exits 1. The
    error is raised from a stub run (no SLURM here), where the handler would raise it."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from submitit.core.utils import UncompletedJobError

    from prune_cli.run import experiment

    def out_of_requeues(cfg, run_dir, on_found_complete=None):
        if checkpoint:
            (run_dir / "state.pt").write_bytes(b"the last checkpoint")
        raise UncompletedJobError("Job not requeued because: timed-out too many times.")

    monkeypatch.setattr(experiment, "run", out_of_requeues)
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "seed=0", "fail_fast=true"], results, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (run_dir,) = sorted(d for d in (results / "runs").iterdir() if d.is_dir())
    kept = (
        f"run {run_dir} keeps its last checkpoint (state.pt); run the same command again to resume it"
        if checkpoint
        else f"run {run_dir} has no checkpoint yet; run the same command again to start it"
    )
    said = "prune-run: stopped by SIGUSR2 with no requeue left (submitit: Job not requeued because: timed-out"
    assert said in proc.stderr and kept in proc.stderr, proc.stderr
    assert "error in" not in proc.stderr and not (run_dir / "failed.json").exists(), proc.stderr
    assert "1 of 1 runs failed" in proc.stderr, proc.stderr


def test_submitit_s_failed_job_error_is_not_taken_for_a_job_out_of_requeues():
    """FailedJobError (a subclass) is what the submitting side raises about a job's result: still an error."""
    pytest.importorskip(SUBMITIT, reason=NEEDS)
    from submitit.core.utils import FailedJobError, UncompletedJobError

    from prune_cli import cli

    assert cli._out_of_requeues(UncompletedJobError("Job not requeued because: timed-out too many times."))
    assert not cli._out_of_requeues(FailedJobError("job failed")) and not cli._out_of_requeues(RuntimeError("x"))
