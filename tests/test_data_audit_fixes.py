"""The data-loading audit of 2026-12-03: MNIST-1D's declared training split and num_samples, a cache
file holding non-finite signals, the long-tail floor warning said once, IDX label files of another
shape and empty IDX files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.errors import ConfigError, DatasetFileUnreadable
from prune_cli.data import DATASETS
from prune_cli.data.mnist1d import Mnist1dConfig
from prune_cli.data.vision import VisionConfig


def _node(schema, **kw):
    return OmegaConf.merge(OmegaConf.structured(schema), kw)


def _package_dataset(num_samples: int, seed: int = 42) -> dict:
    """MNIST-1D as the mnist1d package makes it, without prune-cli's loader."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    return make_dataset(args)


# ----------------------------------------------------------------------------- A: max_train_samples


@pytest.mark.parametrize("num_samples", [100, 200, 1000])
def test_mnist1d_declares_the_training_split_the_package_makes(num_samples):
    """MNIST-1D declared num_samples training examples, where the package keeps 80 % for training: a
    max_train_samples between the two was accepted and did nothing (the run id changed, the data not)."""
    declared, per_class = Mnist1dConfig.declared_train_examples(_node(Mnist1dConfig, name="mnist1d", num_samples=num_samples))
    assert declared == len(_package_dataset(num_samples)["x"]) and per_class is None


MNIST1D_1000 = ["dataset=mnist1d", "dataset.num_samples=1000", "model=mlp", "model.widths=[16]"]


@pytest.mark.parametrize("cap, refused", [(900, True), (800, True), (799, False)])
def test_mnist1d_max_train_samples_at_or_above_its_training_split_is_refused(tmp_path, cap, refused):
    """num_samples=1000: 800 training examples (mnist1d's 80 %). 900 and 800 take no subset
    (splits.py subsets only below the split's size): overrides that do nothing, refused before the
    run as docs/robustness.md says; 799 is a subset."""
    from prune_cli.run.unused_options import unused_overrides
    from tests.helpers import validated

    override = f"dataset.max_train_samples={cap}"
    cfg = validated([*MNIST1D_1000, f"dataset.cache_dir={tmp_path / 'c'}", override, f"results_dir={tmp_path / 'r'}"])
    found = [u for u in unused_overrides(cfg, [override]) if u.error]
    if not refused:
        assert found == []
        return
    (unused,) = found
    assert unused.key == "dataset.max_train_samples" and "has 800 training examples" in unused.why, unused  # exact, not "at most"


def test_mnist1d_max_train_samples_900_exits_2_creating_nothing(tmp_path):
    from tests.conftest import run_cli

    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"
    proc = run_cli([*MNIST1D_1000, f"dataset.cache_dir={cache}", "dataset.max_train_samples=900"], work / "results", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if "dataset.max_train_samples" in x)
    assert "900" in line and "800 training examples" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # no results folder, no cache


# ----------------------------------------------------------------------------- B: num_samples


@pytest.mark.parametrize("value", [1005, 101, 109])
def test_mnist1d_num_samples_not_a_multiple_of_10_is_refused(value):
    """The package makes num_samples // 10 examples per class: 1005 gave the 1000 examples of
    num_samples=1000 under another run id (and was logged as 1005)."""
    cfg = OmegaConf.create({"dataset": {"name": "mnist1d", "num_samples": value, "data_seed": 42, "cache_dir": "/tmp"}})
    with pytest.raises(ConfigError) as caught:
        Mnist1dConfig.check(cfg, "dataset")
    assert caught.value.key == "dataset.num_samples" and caught.value.value == value
    assert "a multiple of 10 >= 100" in str(caught.value)


@pytest.mark.parametrize("value", [100, 1000, 4000, 5000, 10000])
def test_mnist1d_num_samples_that_are_multiples_of_10_pass(tmp_path, value):
    cfg = OmegaConf.create({"dataset": {"name": "mnist1d", "num_samples": value, "data_seed": 42, "cache_dir": str(tmp_path)}})
    Mnist1dConfig.check(cfg, "dataset")


def test_the_published_mnist1d_presets_still_validate():
    from tests.helpers import composed

    for preset in ("mnist1d", "mnist1d_small"):
        node = composed(f"dataset={preset}").dataset
        assert node.num_samples % 10 == 0
        Mnist1dConfig.check(OmegaConf.create({"dataset": OmegaConf.to_container(node)}), "dataset")


# ----------------------------------------------------------------------------- C: non-finite cache


@pytest.mark.parametrize("array, value", [("x", np.nan), ("x_test", np.inf)])
def test_a_mnist1d_cache_with_non_finite_signals_is_generated_again(tmp_path, caplog, array, value):
    """A cache whose signals hold NaN or inf was used: the run then diverged and blamed the learning rate."""
    cfg = _node(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path))
    DATASETS.get("mnist1d")(cfg)
    (cache,) = tmp_path.glob("mnist1d_n200_seed42.npz")
    with np.load(cache) as data:
        arrays = {k: data[k].copy() for k in data.files}
    arrays[array][3, 7] = value
    np.savez(cache, **arrays)
    with caplog.at_level("WARNING"):
        again = DATASETS.get("mnist1d")(cfg)
    fresh = _package_dataset(200)
    assert torch.equal(again.train_x, torch.from_numpy(fresh["x"]).float())
    assert torch.equal(again.test_x, torch.from_numpy(fresh["x_test"]).float())
    assert again.train_y.tolist() == fresh["y"].tolist() and again.test_y.tolist() == fresh["y_test"].tolist()
    assert len(list(tmp_path.glob("mnist1d_n200_seed42.npz.corrupt-*"))) == 1
    assert any("MNIST-1D cache" in r.getMessage() and "not finite" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- D: the long-tail warning


def test_the_long_tail_floor_warning_is_said_once_per_run(tmp_path):
    """Three classes of 60 at ratio 200: head 60, class 2 floored to 1, so 60 and not 200. The warning
    was printed 7 times (console) and 4 times in prune-run.log: each pre-run planner said it too."""
    from tests.conftest import FAST, run_cli

    args = [*FAST, "dataset.imbalance=longtail", "dataset.longtail_ratio=200", "method.allow_collapse=true"]
    proc = run_cli(args, tmp_path / "results")
    said = "largest/smallest is 60, not 200"
    assert (proc.stdout + proc.stderr).count(said) == 1, proc.stdout + proc.stderr
    (log,) = (tmp_path / "results" / "runs").glob("*/prune-run.log")
    assert log.read_text().count(said) == 1


# ----------------------------------------------------------------------------- E: IDX files


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: 0, 0, type 0x08 (unsigned bytes), the number of dimensions, their big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _tiny_mnist(root: Path, train_labels: np.ndarray | None = None) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (40, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(40) % 10 if train_labels is None else train_labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    return raw


@pytest.mark.parametrize("shape", [(40, 1), (4, 10), (1, 40)])
def test_an_idx_labels_file_of_more_than_one_dimension_is_refused(tmp_path, shape):
    """Labels of shape (40, 1) or (4, 10) were flattened into 40 labels and accepted: such a file is
    not an MNIST labels file (one dimension, one label per image)."""
    raw = _tiny_mnist(tmp_path, (np.arange(40) % 10).reshape(shape))
    path = raw / "train-labels-idx1-ubyte"
    with pytest.raises(DatasetFileUnreadable) as caught:
        DATASETS.get("mnist")(_node(VisionConfig, name="mnist", root=str(tmp_path)))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and f"{len(shape)} dimensions {list(shape)}" in message and "\n" not in message, message


def test_an_idx_labels_file_of_two_dimensions_exits_2_in_one_line(tmp_path):
    from tests.conftest import run_cli

    raw = _tiny_mnist(tmp_path / "data", (np.arange(40) % 10).reshape(40, 1))
    args = ["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "model=mlp", "model.widths=[16]", "train.epochs=1"]
    proc = run_cli(args, tmp_path / "results", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: error:")]
    assert len(lines) == 1 and str(raw / "train-labels-idx1-ubyte") in lines[0], proc.stderr
    assert not (tmp_path / "results").exists()


def test_an_empty_idx_file_says_it_is_empty(tmp_path):
    """An empty file was "not an IDX file of unsigned bytes (its header is )"."""
    raw = _tiny_mnist(tmp_path)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(b"")
    with pytest.raises(DatasetFileUnreadable) as caught:
        DATASETS.get("mnist")(_node(VisionConfig, name="mnist", root=str(tmp_path)))
    message = str(caught.value)
    assert message.startswith(f"{path} is empty") and "header is )" not in message, message


def test_generating_mnist1d_leaves_numpy_s_and_python_s_generators_where_the_run_seeded_them():
    """The mnist1d package seeds and draws from the global generators: a first run (no cache) drew other
    numbers in a plugin than every later run (models audit of 2026-12-03)."""
    import random

    from prune_cli.data.mnist1d import _generate

    np.random.seed(0)
    random.seed(0)
    expected = (np.random.rand(), random.random())
    np.random.seed(0)
    random.seed(0)
    _generate(100, 42)
    assert (np.random.rand(), random.random()) == expected


@pytest.mark.parametrize("images, cap, refused", [(200, 500, True), (200, 200, True), (200, 199, False), (60010, 60005, False)])
def test_an_image_folder_s_max_train_samples_is_judged_by_its_own_files(tmp_path, images, cap, refused):
    """Data audit of 2026-12-04: the "no effect" check compared dataset.max_train_samples with MNIST's published
    60000 training images: on a 200-image folder 500 was accepted and did nothing (build_splits subsets only below
    the split's size), and on a 60010-image folder 60005, a real subset, was refused as "at most 60000". The folder's
    own IDX header (read before the run starts) counts them. Only the header is written in full here: the check
    reads no further."""
    from prune_cli.run.unused_options import unused_overrides
    from tests.helpers import validated

    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, count in (("train-images-idx3-ubyte", images), ("t10k-images-idx3-ubyte", 10)):
        (raw / name).write_bytes(struct.pack(">BBBBIII", 0, 0, 8, 3, count, 28, 28))
    for name, count in (("train-labels-idx1-ubyte", images), ("t10k-labels-idx1-ubyte", 10)):
        (raw / name).write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, count))
    override = f"dataset.max_train_samples={cap}"
    args = ["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "model=mlp", override, f"results_dir={tmp_path / 'r'}"]
    found = [u for u in unused_overrides(validated(args), [override]) if u.error]
    if not refused:
        assert found == []
        return
    (unused,) = found
    # counted from the folder's own header: exact (review: it said "at most {images}")
    assert unused.key == "dataset.max_train_samples" and f"has {images} training examples (its files)" in unused.why, unused
