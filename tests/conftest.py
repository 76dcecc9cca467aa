"""Shared fixtures: tiny data, tiny models, and a runner for the `prune-run` console command
(in this process by default, tests/cli_runner.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from filelock import FileLock

from parallel_hooks import (  # noqa: F401 - the suite runs in xdist workers by default; pytest finds hooks by name here
    LOADGROUP_VARIABLE,
    pytest_cmdline_main,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_xdist_auto_num_workers,
)
from prune_cli.data.splits import DataSplits

REPO = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)  # tiny tensors: one thread is faster, and subprocess tests get the other core


# Small, fast end-to-end settings: synthetic blobs, a tiny MLP, one or two epochs.
FAST = [
    "dataset=synthetic",
    "dataset.samples_per_class=60",
    "dataset.test_samples_per_class=30",
    "model=mlp",
    "model.widths=[16,16]",
    "train.epochs=2",
    "finetune.epochs=1",
    "train.batch_size=32",
    "finetune.batch_size=32",
]


# PYTHONPATH as the tests started: a test that changes it means a new interpreter (plugins outside
# the repository), which only a subprocess sees.
STARTING_PYTHONPATH = os.environ.get("PYTHONPATH")


def run_cli(
    args: list[str],
    results_dir: Path,
    check: bool = True,
    timeout: int = 300,
    separate_process: bool = False,
    keep_repeats: bool = False,
) -> subprocess.CompletedProcess:
    """Run `prune-run args... results_dir=<results_dir>` from results_dir's parent folder, with one
    OpenMP thread and Hydra's short error messages; return its exit code, stdout and stderr.

    By default the CLI runs in this process (tests/cli_runner.py: the same entry point, state restored
    after), which saves a new interpreter's start-up per call. A real subprocess
    (`python -m prune_cli.cli`) is used where the process is the point (`separate_process=True`),
    and always for outside plugins (`plugins=[...]`, a changed PYTHONPATH), whose imports cannot be
    undone in-process (nor in a forked child: the parent's caches, such as the metrics schema, were
    built without them). `timeout` applies to subprocesses. A key given twice keeps its last value
    (`last_value_wins`) unless `keep_repeats`."""
    env = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    argv = [*args, f"results_dir={results_dir}"]
    if not keep_repeats:
        from prune_cli.run.override_checks import last_value_wins

        argv = last_value_wins(argv)
    outside_plugins = os.environ.get("PYTHONPATH") != STARTING_PYTHONPATH or any(a.lstrip("+").startswith("plugins=") for a in args)
    if separate_process or outside_plugins:
        cmd = [sys.executable, "-m", "prune_cli.cli", *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}, cwd=results_dir.parent)
    else:
        from cli_runner import run_in_process

        proc = run_in_process(argv, cwd=results_dir.parent, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"prune-run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory under `folder`: what 'byte-identical' compares."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="session")
def finished_fast_run(tmp_path_factory) -> Path:
    """A results folder holding one finished run (the FAST default experiment), made once per test session
    (`made_once`); read only (tests get a copy, `finished_results`): a test that changes it fails the teardown."""
    folder, _ = made_once(tmp_path_factory, "finished_fast_run", lambda f: run_cli([*FAST], f / "results"))
    results = folder / "results"
    with _unchanged(results, "finished FAST run"):
        yield results


@pytest.fixture
def finished_results(finished_fast_run, tmp_path) -> Path:
    """A copy of `finished_fast_run` for a test that must leave it byte-identical (or may change it)."""
    copy = tmp_path / "results"
    shutil.copytree(finished_fast_run, copy)
    return copy


# One finished FAST run that many tests only read (its CSVs, logs and model files): trained once per
# test session (per xdist worker) instead of once per test.
SHARED_RUN = [*FAST, "sparsity=0.5"]


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


Done = subprocess.CompletedProcess


class SharedRun(NamedTuple):
    results: Path  # its results_dir
    run_dir: Path | None  # results/runs/<run id>
    proc: subprocess.CompletedProcess  # exit code, stdout, stderr of the run


def made_once(tmp_path_factory, name: str, make: Callable[[Path], Done]) -> tuple[Path, Done]:
    """`make(folder)` once per test session: with xdist, the first worker that needs it makes it in the
    session's common temporary folder under a file lock and the others read it (pytest-xdist's
    documented recipe for session fixtures); serially, in this session's temporary folder."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        return folder, make(folder)
    common = tmp_path_factory.getbasetemp().parent  # shared by the workers of this session
    folder, record = common / name, common / f"{name}.json"
    with FileLock(str(common / f"{name}.lock")):
        if not record.exists():
            if folder.exists():
                raise RuntimeError(f"{name}: the worker that made it first failed (its error is reported there)")
            folder.mkdir()
            proc = make(folder)
            record.write_text(json.dumps([proc.args, proc.returncode, proc.stdout, proc.stderr]))
    return folder, subprocess.CompletedProcess(*json.loads(record.read_text()))


@contextlib.contextmanager
def _unchanged(results: Path, what: str):
    """Fail on exit if a test changed a file under results."""
    before = _digest(results)
    yield
    after = _digest(results)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the {what}'s folder (copy it with copy_results): {changed}"


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory) -> SharedRun:
    """`prune-run SHARED_RUN` in its own results_dir: read it, never write into it (copy it with
    `copy_results` to change it). A test that changes it fails this fixture's teardown."""
    folder, proc = made_once(tmp_path_factory, "shared_run", lambda f: run_cli(SHARED_RUN, f / "results"))
    results = folder / "results"
    (run_dir,) = (results / "runs").iterdir()
    with _unchanged(results, "shared run"):
        yield SharedRun(results, run_dir, proc)


# A finished sweep that several tests only read: two methods x two sparsities x two seeds.
SHARED_SWEEP = ["-m", *FAST, "method=magnitude,random", "sparsity=0.5,0.8", "seed=0,1"]


@pytest.fixture(scope="session")
def shared_sweep(tmp_path_factory) -> SharedRun:
    """`prune-run SHARED_SWEEP` (8 runs) in its own results_dir; read only, like `shared_run`
    (run_dir is None: the sweep has eight)."""
    folder, proc = made_once(tmp_path_factory, "shared_sweep", lambda f: run_cli(SHARED_SWEEP, f / "results"))
    with _unchanged(folder / "results", "shared sweep"):
        yield SharedRun(folder / "results", None, proc)


# One rejected `prune-run` as the console command in a new interpreter, which two tests read: test_robustness
# (a rejected run creates nothing anywhere) and test_cli_in_process (the in-process runner answers like the
# console command). One interpreter start-up (torch and Hydra: 4-5 CPU-seconds) instead of one per test.
REJECTED = ["sparsity=2"]  # a value the pre-run pass rejects (exit 2, one line, nothing created)
REJECTED_RESULTS_DIR = "results_dir=deep/results"  # relative to the working directory, two levels down


class ConsoleRun(NamedTuple):
    work: Path  # the command's working directory (the only thing in its parent folder before the command)
    proc: subprocess.CompletedProcess  # its exit code, stdout and stderr
    created: list[str]  # every path under work's parent folder after the command, relative to it


@pytest.fixture(scope="session")
def rejected_console_run(tmp_path_factory) -> ConsoleRun:
    """`python -m prune_cli.cli sparsity=2 results_dir=deep/results` from an empty folder `work`, with one
    OpenMP thread and Hydra's short errors (as run_cli): what a user's shell runs, in a new interpreter."""

    def make(folder: Path) -> Done:
        work = folder / "work"
        work.mkdir()
        cmd = [sys.executable, "-m", "prune_cli.cli", *REJECTED, REJECTED_RESULTS_DIR]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=work)

    folder, proc = made_once(tmp_path_factory, "rejected_console_run", make)
    created = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    return ConsoleRun(folder / "work", proc, created)


class StartupReport(NamedTuple):
    cwd: Path  # the driver's working directory (empty before it ran)
    commands: dict  # name -> {"rc": exit code, "added": modules the command added to sys.modules}
    dynamo: bool  # whether torch._dynamo was imported by the end


@pytest.fixture(scope="session")
def startup_report(tmp_path_factory) -> StartupReport:
    """tests/startup_driver.py's commands in one new interpreter, made once per session: read by
    test_startup_imports and test_startup_model_check."""
    import startup_driver

    folder, proc = made_once(tmp_path_factory, "startup_report", startup_driver.run)
    got = startup_driver.report(proc)
    return StartupReport(folder, got["commands"], got["dynamo"])


def copy_results(results: Path, to: Path) -> Path:
    """A copy of a results folder to write into (results_dir is not part of the run id, so prune-run
    finds its runs there)."""
    shutil.copytree(results, to, symlinks=True)
    return to


@pytest.fixture
def tiny_data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataSplits(x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:], num_classes=3)


@pytest.fixture
def method_cfg():
    from tests.helpers import method_options

    def make(**overrides):
        return method_options(**{"allocation": "global", **overrides})

    return make
