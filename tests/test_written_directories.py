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
