"""The folders a run writes besides results_dir (MNIST-1D's dataset.cache_dir, a vision dataset's root when
dataset.download=true fetches into it) are tried before the run starts, as results_dir and dense_cache.dir
are: `os.access` says yes to root everywhere, /proc included, so only making a directory there tells
(prune_cli/core/writable.py). README: "a single run rejected by its config creates nothing at all"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import run_cli

pytestmark = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")

MNIST1D = ["dataset=mnist1d", "dataset.num_samples=1000", "model=mlp", "model.widths=[8]"]
MNIST1D += ["train.epochs=1", "finetune.epochs=1", "threads=1"]


@pytest.mark.parametrize("flags", [[], ["-m", "seed=0,1"]], ids=["run", "sweep"])
@pytest.mark.parametrize("folder", ["/proc/no-such-dir", "/sys/no-such-dir"])
def test_an_uncreatable_mnist1d_cache_dir_is_refused_before_any_work(tmp_path, flags, folder):
    # Before (as root): the run directory was made (.run.lock, failed.json, prune-run.log), MNIST-1D was
    # generated, then "cannot use /proc/...: No such file or directory", exit 1; a sweep failed every job.
    proc = run_cli([*flags, *MNIST1D, f"dataset.cache_dir={folder}"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'dataset.cache_dir'" in proc.stderr and "cannot be created" in proc.stderr, proc.stderr
    assert sorted(tmp_path.iterdir()) == []  # nothing created


def test_an_uncreatable_mnist1d_cache_dir_of_a_run_given_its_own_directory_is_refused_before_any_work(tmp_path):
    # `hydra.run.dir=...`: Hydra never resolves ${runs_dir:}, so run_directories.py checks the run itself.
    args = [f"hydra.run.dir={tmp_path}/own", *MNIST1D, "dataset.cache_dir=/proc/no-such-dir"]
    proc = run_cli(args, tmp_path / "r", check=False)
    assert proc.returncode == 2 and "'dataset.cache_dir'" in proc.stderr and "cannot be created" in proc.stderr, proc.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_an_uncreatable_download_root_is_refused_before_any_work(tmp_path):
    # Before: accepted (no check of dataset.root with download=true), the download failed inside the run.
    args = ["dataset=mnist", "dataset.download=true", "dataset.root=/proc/no-such-dir", "model=mlp", "model.widths=[8]", "threads=1"]
    proc = run_cli(args, tmp_path / "r", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'dataset.root'" in proc.stderr and "cannot be created" in proc.stderr, proc.stderr
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "key, value", [("results_dir", None), ("dataset.cache_dir", "/proc/no-such-dir"), ("dense_cache.dir", "/proc/dc")]
)
def test_cfg_job_refuses_an_uncreatable_folder_as_a_run_does(tmp_path, key, value):
    # README: `prune-run --cfg job` checks the composed config "as a run would". Before: results_dir=/proc/xx
    # (and dataset.cache_dir=/proc/yy) printed the config, exit 0, where the run refused it.
    results = Path("/proc/no-such-dir") if key == "results_dir" else tmp_path / "r"
    args = ["--cfg", "job", *MNIST1D] + ([f"{key}={value}"] if value else [])
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2 and f"'{key}'" in proc.stderr and "cannot be created" in proc.stderr, proc.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_a_read_only_mnist1d_cache_holding_the_dataset_is_still_accepted_when_tried(tmp_path, monkeypatch):
    # A shared cache on a read-only mount (making a directory there fails): read, never written, so it is
    # fine when it already holds this dataset, also where the folder is tried before the run.
    from prune_cli.core import writable
    from prune_cli.core.errors import ConfigError
    from prune_cli.data import mnist1d as module
    from prune_cli.data.mnist1d import Mnist1dConfig

    monkeypatch.setattr(writable, "_can_create_in", lambda folder: False)
    cfg = OmegaConf.create({"dataset": {"name": "mnist1d", "num_samples": 200, "data_seed": 42, "cache_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"'dataset.cache_dir'.*is not writable"):
        Mnist1dConfig.check_writes(cfg, "dataset")  # empty: the dataset would be written there
    np.savez(tmp_path / "mnist1d_n200_seed42.npz", **module._generate(200, 42))
    Mnist1dConfig.check_writes(cfg, "dataset")


# A run's or a sweep job's directory where prune-run keeps files of its own (audit of 2026-12-04): before,
# `hydra.run.dir=<results_dir>` ran, exit 0, and the run's layers.csv, per_class.csv and regions.csv replaced the
# shared tables of those names (every earlier run's rows gone), with COMPLETE, config.yaml and its models beside them.
OWN_FILES_SPELLINGS = [
    "results",  # relative to the working directory (results_dir's parent)
    "{tmp}/results",
    "{tmp}/results/runs/..",
    "link",  # a symbolic link to results_dir
    "results/runs",
    "link/runs",
    "results/dense_cache",  # the dense cache's default folder (enabled by default)
    "results/dense_cache/mine",
]


@pytest.mark.parametrize("spelling", OWN_FILES_SPELLINGS)
def test_a_run_directory_where_prune_run_keeps_its_own_files_is_refused_before_any_work(finished_results, spelling):
    from conftest import FAST
    from helpers import refused_before_any_work

    tmp = finished_results.parent
    (tmp / "link").symlink_to(finished_results)
    args = [*FAST, "threads=1", "sparsity=0.34", f"hydra.run.dir={spelling.format(tmp=tmp)}"]
    refused_before_any_work(args, finished_results, "'hydra.run.dir'", "Allowed: a directory prune-run can write or create")
    assert sorted(p.name for p in tmp.iterdir()) == ["link", "results"]


@pytest.mark.parametrize("subdir", ["''", "..", "../dense_cache"])
def test_a_sweep_job_directory_where_prune_run_keeps_its_own_files_is_refused_before_any_job(finished_results, subdir):
    # Before: `-m "hydra.sweep.subdir=''"` wrote the run's COMPLETE, config.yaml and tables into results_dir/runs, and
    # a later rebuild dropped its rows without naming it; `..` put them into results_dir as above.
    from conftest import FAST
    from helpers import refused_before_any_work

    args = ["-m", *FAST, "threads=1", "sparsity=0.34", f"hydra.sweep.subdir={subdir}"]
    refused_before_any_work(args, finished_results, "'hydra.sweep.subdir'", "a directory per run, of that run's own")


@pytest.mark.parametrize("spelling, where", [("${runs_dir:}/..", "it is results_dir"), ("${runs_dir:}", "it is results_dir/runs")])
@pytest.mark.parametrize("cfg_job", [False, True], ids=["run", "cfg-job"])
def test_a_run_directory_spelt_with_runs_dir_is_placed_too(finished_results, spelling, where, cfg_job):
    # Review: any value holding ${runs_dir:} skipped the check (prune-run's own default holds it), so
    # `hydra.run.dir=${runs_dir:}/..` wrote the run's layers.csv, per_class.csv and regions.csv over the shared ones.
    from conftest import FAST
    from helpers import refused_before_any_work

    args = [*(["--cfg", "job"] if cfg_job else []), *FAST, "threads=1", "sparsity=0.34", f"hydra.run.dir={spelling}"]
    refused_before_any_work(args, finished_results, "'hydra.run.dir'", where)


def test_a_run_directory_of_its_own_under_runs_dir_is_accepted(finished_results):
    from conftest import FAST, run_cli

    proc = run_cli(["--cfg", "job", *FAST, "threads=1", "hydra.run.dir=${runs_dir:}/mine"], finished_results, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_empty_hydra_run_dir_is_refused_before_any_work(finished_results):
    # Before: '' (an unset shell variable) wrote every run file into the current directory, exit 0, where
    # results_dir='' is refused.
    from conftest import FAST
    from helpers import refused_before_any_work

    refused_before_any_work([*FAST, "threads=1", "hydra.run.dir=''"], finished_results, "'hydra.run.dir'", "it is empty")
    assert sorted(p.name for p in finished_results.parent.iterdir()) == ["results"]


@pytest.mark.parametrize("flags", [[], ["--cfg", "job"]], ids=["run", "cfg-job"])
def test_a_hydra_run_dir_under_a_file_is_refused_naming_the_key(tmp_path, flags):
    # Before: the run said "cannot use .../f/x: Not a directory" (no key, nothing allowed), and `--cfg job`, which
    # README says tries the folders a run would write, printed the config, exit 0.
    (tmp_path / "f").write_text("a file")
    proc = run_cli([*flags, *MNIST1D, f"hydra.run.dir={tmp_path}/f/x"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'hydra.run.dir'" in proc.stderr and "a directory prune-run can write or create" in proc.stderr, proc.stderr
    assert f"{tmp_path}/f is a file" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize(
    "extra, folder",
    [([], "."), ([], "results/mine"), ([], "elsewhere"), (["dense_cache.enabled=false"], "results/dense_cache/mine")],
    ids=["above-results_dir", "under-results_dir", "elsewhere", "cache-off"],
)
def test_cfg_job_accepts_a_run_directory_of_the_run_s_own(finished_results, extra, folder):
    # Not over-strict: only results_dir, results_dir/runs and the dense cache (while on) are prune-run's own.
    from conftest import FAST

    proc = run_cli(["--cfg", "job", *FAST, *extra, f"hydra.run.dir={folder}"], finished_results, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_run_directory_under_results_dir_outside_runs_is_accepted_and_appends_its_rows(finished_results):
    import csv

    from conftest import FAST

    def rows(path: Path) -> int:
        with path.open(newline="") as f:
            return sum(1 for _ in csv.reader(f)) - 1

    first = next(finished_results.glob("runs/*/COMPLETE")).parent
    proc = run_cli([*FAST, "threads=1", "sparsity=0.34", "hydra.run.dir=results/mine"], finished_results, check=False)
    assert proc.returncode == 0, proc.stderr
    mine = finished_results / "mine"
    assert (mine / "COMPLETE").is_file()
    for table in ("layers.csv", "per_class.csv"):  # the shared table: both runs' rows, each run's own table kept
        assert rows(finished_results / table) == rows(first / table) + rows(mine / table), table


def test_the_rebuild_names_a_run_s_files_it_does_not_read(finished_results, capsys):
    # Before: a run's files in runs/ itself (an earlier `hydra.sweep.subdir=''`) were left out of the rebuilt tables
    # without a word ("runs.csv: N rows from 1 runs").
    from prune_cli.run.results import main

    (finished_results / "runs" / "COMPLETE").write_text("run-x\n")
    (finished_results / "runs" / "config.yaml").write_text("seed: 0\n")
    assert main([str(finished_results)]) == 0
    out = capsys.readouterr().out
    assert "runs/: left out (it holds config.yaml, COMPLETE: a run's files in runs/ itself" in out, out
    assert "runs.csv: " in out and "from 1 runs" in out, out
