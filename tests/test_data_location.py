"""A relative `dataset.root` (the image datasets' default is `data`) names another folder from another
working directory. The run id and the dense-cache key hashed only its spelling, so a run made from a second
folder into the same results_dir was "already complete" with the first folder's numbers, and another
method's run there loaded a dense model trained on the first folder's files (README, "Every run gets its
own directory": the same experiment with its data in another folder gets another run id)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from cli_runner import run_in_process
from conftest import snapshot
from test_data import _write_mnist

ARGS = [
    "dataset=mnist",
    "dataset.root=data",
    "model=mlp",
    "model.widths=[8]",
    "train.epochs=1",
    "finetune.epochs=1",
    "train.batch_size=25",
    "finetune.batch_size=25",
    "threads=1",
]
ENV = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _working_dir(tmp_path: Path, name: str, seed: int) -> Path:
    """A working directory whose ./data holds tiny MNIST files of its own (other pixels and labels per seed)."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / name
    train_y, test_y = rng.permutation(np.arange(100) % 10), rng.permutation(np.arange(20) % 10)
    _write_mnist(
        folder / "data" / "MNIST" / "raw", rng.integers(0, 256, (100, 28, 28)), train_y, rng.integers(0, 256, (20, 28, 28)), test_y
    )
    return folder


def _run(cwd: Path, results: Path, *extra: str):
    return run_in_process([*ARGS, *extra, f"results_dir={results}"], cwd=cwd, env=ENV)


def _dense_rows(results: Path) -> pd.DataFrame:
    (run,) = [p for p in (results / "runs").iterdir() if (p / "COMPLETE").is_file() and "s0.8" in p.name]
    rows = pd.read_csv(run / "metrics.csv")
    return rows[rows["phase"] == "dense"][["metric", "split", "value"]].reset_index(drop=True)


def test_a_run_made_from_another_working_directory_is_not_taken_for_this_one(tmp_path):
    first, second, shared = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1), tmp_path / "shared"
    done = _run(first, shared)
    assert done.returncode == 0, done.stderr
    assert "already complete" in _run(first, shared).stderr + _run(first, shared).stdout  # the same folder: the same run
    before = snapshot(shared)
    refused = _run(second, shared)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    message = " ".join(refused.stderr.split())
    assert "dataset.root" in message and str(first / "data") in message and str(second / "data") in message, message
    assert snapshot(shared) == before


def test_another_method_s_run_from_another_working_directory_trains_its_own_dense_model(tmp_path):
    first, second, shared = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1), tmp_path / "shared"
    assert _run(first, shared, "sparsity=0.5").returncode == 0
    assert _run(second, shared, "sparsity=0.8").returncode == 0
    alone = tmp_path / "alone"
    assert _run(second, alone, "sparsity=0.8").returncode == 0
    # the dense model of second's run is the one trained on second's files, as in a results folder of its own
    pd.testing.assert_frame_equal(_dense_rows(shared), _dense_rows(alone))


def test_the_data_memo_reads_a_relative_root_from_each_working_directory(tmp_path, monkeypatch):
    """The per-process memo (a sweep's jobs share one load) was keyed on the spelling: a second working
    directory's `root=data` got the first one's images."""
    from omegaconf import OmegaConf

    from prune_cli.data import cache
    from prune_cli.data.vision import VisionConfig

    node = OmegaConf.merge(OmegaConf.structured(VisionConfig), {"name": "mnist", "root": "data"})
    loaded = {}
    for name, seed in (("A", 0), ("B", 1)):
        monkeypatch.chdir(_working_dir(tmp_path, name, seed))
        loaded[name] = cache.load_raw(node)
    monkeypatch.chdir(tmp_path / "B")
    expected = cache.DATASETS.get("mnist")(node)  # read from B's files, no memo
    assert loaded["B"].train_y.tolist() == expected.train_y.tolist() != loaded["A"].train_y.tolist()
    assert np.array_equal(loaded["B"].train_x.numpy(), expected.train_x.numpy())
