"""Shared fixtures: tiny data, tiny models, and a runner for the `prune-run` console command
(in this process by default, tests/cli_runner.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

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
    args: list[str], results_dir: Path, check: bool = True, timeout: int = 300, separate_process: bool = False
) -> subprocess.CompletedProcess:
    """Run `prune-run args... results_dir=<results_dir>` from results_dir's parent folder, with one
    OpenMP thread and Hydra's short error messages; return its exit code, stdout and stderr.

    By default the CLI runs in this process (tests/cli_runner.py: the same entry point, state restored
    after), which saves a new interpreter's start-up per call. A real subprocess
    (`python -m prune_cli.cli`) is used where the process is the point (`separate_process=True`),
    and always for outside plugins (`plugins=[...]`, a changed PYTHONPATH), whose imports cannot be
    undone in-process. `timeout` applies to subprocesses."""
    env = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    argv = [*args, f"results_dir={results_dir}"]
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


# One finished FAST run that many tests only read (its CSVs, logs and model files): trained once per
# test session (per xdist worker) instead of once per test.
SHARED_RUN = [*FAST, "sparsity=0.5"]


def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class SharedRun(NamedTuple):
    results: Path  # its results_dir
    run_dir: Path | None  # results/runs/<run id>
    proc: subprocess.CompletedProcess  # exit code, stdout, stderr of the run


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory) -> SharedRun:
    """`prune-run SHARED_RUN` in its own results_dir: read it, never write into it (copy it with
    `copy_results` to change it). A test that changes it fails this fixture's teardown."""
    results = tmp_path_factory.mktemp("shared_run") / "results"
    proc = run_cli(SHARED_RUN, results)
    (run_dir,) = (results / "runs").iterdir()
    before = _digest(results)
    yield SharedRun(results, run_dir, proc)
    after = _digest(results)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the shared run's folder (copy it with copy_results): {changed}"


# A finished sweep that several tests only read: two methods x two sparsities x two seeds.
SHARED_SWEEP = ["-m", *FAST, "method=magnitude,random", "sparsity=0.5,0.8", "seed=0,1"]


@pytest.fixture(scope="session")
def shared_sweep(tmp_path_factory) -> SharedRun:
    """`prune-run SHARED_SWEEP` (8 runs) in its own results_dir; read only, like `shared_run`
    (run_dir is None: the sweep has eight)."""
    results = tmp_path_factory.mktemp("shared_sweep") / "results"
    proc = run_cli(SHARED_SWEEP, results)
    before = _digest(results)
    yield SharedRun(results, None, proc)
    after = _digest(results)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the shared sweep's folder (copy it with copy_results): {changed}"


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
