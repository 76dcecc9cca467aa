"""Datasets through their real code paths: tiny IDX and CIFAR pickle files, synthetic, MNIST-1D,
imbalance, seeded splits and tensor augmentation."""

from __future__ import annotations

import gzip
import re
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.config_base import DatasetConfig
from prune_cli.core.errors import ConfigError, DatasetFilesMissing
from prune_cli.data import DATASETS, build_splits
from prune_cli.data.batches import iterate_batches, random_crop_flip
from prune_cli.data.mnist1d import Mnist1dConfig
from prune_cli.data.splits import longtail_counts
from prune_cli.data.synthetic import SyntheticConfig
from prune_cli.data.vision import VisionConfig


def cfg_of(schema, **kw):
    return OmegaConf.merge(OmegaConf.structured(schema), kw)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """The IDX format: magic (0x0800 + ndim for uint8), big-endian dimension sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    train_x, test_x = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    train_y, test_y = np.arange(30) % 10, np.arange(10) % 10
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    data = DATASETS.get(name)(cfg_of(VisionConfig, name=name, root=str(tmp_path)))
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_y.tolist() == train_y.tolist() and data.num_classes == 10
    # Standardised with the training split's statistics: recover the raw pixels exactly.
    scaled = train_x / 255.0
    mean, std = scaled.mean(), scaled.std(ddof=1)
    assert np.allclose(data.test_x[:, 0].numpy() * std + mean, test_x / 255.0, atol=1e-5)


def _write_mnist(raw: Path, train_x, train_y, test_x, test_y, compress: bool = False) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    files = {"train-images-idx3": train_x, "train-labels-idx1": train_y, "t10k-images-idx3": test_x, "t10k-labels-idx1": test_y}
    for stem, array in files.items():
        write_idx(raw / f"{stem}-ubyte", array, compress)


def test_gzipped_idx_files_load_as_the_docs_say():
    """README and the pre-run check accept the IDX files as .gz (as Fashion-MNIST is distributed);
    torchvision's reader opened only the unzipped names, and the run failed after its directory existed,
    blaming a file that was not there."""
    import tempfile

    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    train_y, test_y = np.arange(30) % 10, (np.arange(10) * 3) % 10
    with tempfile.TemporaryDirectory() as tmp:
        _write_mnist(Path(tmp) / "FashionMNIST" / "raw", train_x, train_y, test_x, test_y, compress=True)
        data = DATASETS.get("fashion_mnist")(cfg_of(VisionConfig, name="fashion_mnist", root=tmp))
    assert data.train_y.tolist() == train_y.tolist() and data.test_y.tolist() == test_y.tolist()
    scaled = train_x / 255.0
    assert np.allclose(data.train_x[:, 0].numpy() * scaled.std(ddof=1) + scaled.mean(), scaled, atol=1e-5)


@pytest.mark.parametrize(
    "case, match",
    [
        ("fewer_labels", r"train-labels-idx1-ubyte.*30 labels for 40 images"),
        ("more_test_labels", r"t10k-labels-idx1-ubyte.*25 labels for 20 images"),
        ("label_10", r"train-labels-idx1-ubyte.*label 10 .*0\.\.9"),
    ],
)
def test_idx_labels_that_do_not_fit_the_images_are_named(tmp_path, case, match):
    """A label file shorter or longer than its image file, or with a label outside the classes: the
    examples were silently dropped or misaligned, or the run crashed after dense training."""
    from prune_cli.core.errors import DatasetFileUnreadable

    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (40, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    train_y, test_y = np.arange(40) % 10, np.arange(20) % 10
    if case == "fewer_labels":
        train_y = train_y[:30]
    elif case == "more_test_labels":
        test_y = np.arange(25) % 10
    else:
        train_y[7] = 10
    _write_mnist(tmp_path / "MNIST" / "raw", train_x, train_y, test_x, test_y)
    with pytest.raises(DatasetFileUnreadable, match=match):
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(tmp_path)))


@pytest.mark.parametrize("damage", ["truncated", "label_out_of_range"])
def test_a_damaged_data_file_stops_the_run_creating_nothing(tmp_path, finished_results, damage):
    """A CIFAR batch that cannot be read (or holds a label outside the classes) is bad input: the run
    stopped with the right message but left a run directory (failed.json, .hydra, the log) in the
    results folder, which bad input must leave byte-identical."""
    from tests.helpers import refused_before_any_work

    write_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=6, classes=10)
    path = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        entry = pickle.loads(path.read_bytes())
        entry["labels"][0] = 10
        path.write_bytes(pickle.dumps(entry))
    args = ["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "model=mlp", "model.widths=[8]", "train.epochs=1"]
    refused_before_any_work(args, finished_results, str(path))


def _truncated_cifar(tmp_path) -> Path:
    write_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=6, classes=10)
    path = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    return path


CIFAR_MLP = ["dataset=cifar10", "model=mlp", "model.widths=[8]", "train.epochs=1", "finetune.epochs=1"]


def test_a_damaged_data_file_keeps_a_folder_of_the_user_s_given_as_hydra_run_dir(tmp_path):
    """The review of the fix above: a folder the user named with hydra.run.dir, holding their own
    experiment.log, was deleted with the run's scaffolding. It is the user's: kept, with failed.json."""
    from tests.conftest import run_cli

    path = _truncated_cifar(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "experiment.log").write_text("my notes\n")
    proc = run_cli([*CIFAR_MLP, f"dataset.root={tmp_path / 'data'}", f"hydra.run.dir={mine}"], tmp_path / "results", check=False)
    assert proc.returncode == 2 and str(path) in proc.stderr, proc.stderr
    assert (mine / "experiment.log").read_text() == "my notes\n" and (mine / "failed.json").is_file()


def test_a_damaged_data_file_met_by_a_resumed_run_is_recorded_in_failed_json(tmp_path):
    """The review: a run with a checkpoint keeps its directory, and its failed.json says why it stopped
    (the InputError path skipped _record_failure for a directory it kept)."""
    from tests.conftest import run_cli

    write_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=6, classes=10)
    results = tmp_path / "results"
    args = [*CIFAR_MLP, f"dataset.root={tmp_path / 'data'}"]
    run_cli(args, results)
    (run_dir,) = (results / "runs").iterdir()
    (run_dir / "COMPLETE").unlink()  # as if stopped before its end: the command runs it again
    path = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    from prune_cli.data import cache

    cache.clear()  # this process keeps the data it loaded (the memo): read the damaged file as a new process does
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2 and str(path) in proc.stderr, proc.stderr
    assert (run_dir / "metrics.csv").is_file() and str(path) in (run_dir / "failed.json").read_text()


@pytest.mark.parametrize("case", ["short_labels", "label_out_of_range", "row_length"])
def test_cifar_batches_whose_labels_or_rows_do_not_fit_are_named(tmp_path, case):
    """data_batch_2 with 3 labels fewer than images misaligned every later label (exit 0); a label
    10 was dropped; a row of 3000 bytes crashed in numpy's reshape as an internal error."""
    from prune_cli.core.errors import DatasetFileUnreadable

    write_cifar(tmp_path, "cifar10", n_train=20, n_test=6, classes=10)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    entry = pickle.loads(path.read_bytes())
    if case == "short_labels":
        entry["labels"] = entry["labels"][:-3]
    elif case == "label_out_of_range":
        entry["labels"][0] = 10
    else:
        entry["data"] = entry["data"][:, :3000]
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DatasetFileUnreadable, match="data_batch_2"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path)))


def write_cifar(root: Path, name: str, n_train: int, n_test: int, classes: int) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(1)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(n, offset):
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        return {"data": data, label_key: [(offset + i) % classes for i in range(n)]}

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        batches = [batch(n_train // 5, 5 * i) for i in range(5)]
        for i, b in enumerate(batches):
            (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(b))
        (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test, 0)))
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
        first = batches[0]
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        first = batch(n_train, 0)
        (folder / "train").write_bytes(pickle.dumps(first))
        (folder / "test").write_bytes(pickle.dumps(batch(n_test, 0)))
        (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return first["data"], first[label_key]


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_pickle_batches(tmp_path, name, classes):
    first_data, first_labels = write_cifar(tmp_path, name, n_train=20, n_test=6, classes=classes)
    data = DATASETS.get(name)(cfg_of(VisionConfig, name=name, root=str(tmp_path)))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.num_classes == classes and data.image
    assert data.train_y[: len(first_labels)].tolist() == list(first_labels)
    # Channel-first layout: pixel (row 0, col 1) of channel 2 of image 0 is byte 2*1024 + 1 of its row.
    raw0 = first_data[0].reshape(3, 32, 32) / 255.0
    x = data.train_x[0].numpy()
    # standardisation is per channel and affine, so correlations with the raw image are exactly 1
    for c in range(3):
        assert np.corrcoef(x[c].ravel(), raw0[c].ravel())[0, 1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "name, meta, content",
    [
        ("cifar10", "batches.meta", b"\x80\x04broken"),  # not a pickle
        ("cifar10", "batches.meta", pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]})),  # CIFAR-100's meta
        ("cifar100", "meta", pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})),  # CIFAR-10's meta
    ],
)
def test_a_cifar_meta_file_that_is_not_the_dataset_s_stops_the_run_naming_it(tmp_path, name, meta, content):
    """batches.meta (CIFAR-100: meta) was required but never read: a broken one, or another dataset's, ran."""
    from prune_cli.core.errors import DatasetFileUnreadable

    write_cifar(tmp_path, name, n_train=20, n_test=6, classes=10 if name == "cifar10" else 100)
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    (tmp_path / folder / meta).write_bytes(content)
    with pytest.raises(DatasetFileUnreadable, match=re.escape(meta)):
        DATASETS.get(name)(cfg_of(VisionConfig, name=name, root=str(tmp_path)))


def test_a_dataset_folder_that_cannot_be_read_is_not_called_missing(tmp_path, monkeypatch):
    """A cifar-10-batches-py folder the user cannot read was reported as "files not found ... Put the
    extracted cifar-10-python.tar.gz there" although every file was there. (The tests run as root, for
    whom a chmod changes nothing: the folder's permission answer is patched.)"""
    from prune_cli.core.errors import DatasetFileUnreadable
    from prune_cli.data import vision

    write_cifar(tmp_path, "cifar10", n_train=20, n_test=6, classes=10)
    folder = str(tmp_path / "cifar-10-batches-py")
    access = vision.os.access
    monkeypatch.setattr(vision, "_present", lambda where, name: False)  # what os.path.exists answers there
    monkeypatch.setattr(vision.os, "access", lambda path, mode: access(path, mode) and str(path) != folder)
    with pytest.raises(DatasetFileUnreadable, match=r"cifar-10-batches-py cannot be read"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path)))


def test_missing_files_say_where_they_go(tmp_path):
    with pytest.raises(DatasetFilesMissing, match=r"cifar-10-batches-py.*dataset.download=true"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path)))


def test_synthetic_blobs_and_spirals():
    blobs = DATASETS.get("synthetic")(
        cfg_of(SyntheticConfig, name="synthetic", input_dim=5, num_classes=4, samples_per_class=10, test_samples_per_class=3)
    )
    assert blobs.train_x.shape == (40, 5) and blobs.test_x.shape == (12, 5)
    assert torch.bincount(blobs.train_y).tolist() == [10] * 4
    spirals = DATASETS.get("synthetic")(cfg_of(SyntheticConfig, name="synthetic", kind="spirals", noise=0.0, samples_per_class=50))
    radius = spirals.train_x.norm(dim=1)
    assert radius.max() <= 1.0 + 1e-6  # noiseless arms lie inside the unit disc


def test_mnist1d_generated_once_then_cached(tmp_path, monkeypatch):
    cfg = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=500, cache_dir=str(tmp_path))
    first = DATASETS.get("mnist1d")(cfg)
    assert first.train_x.shape == (400, 40) and first.test_x.shape == (100, 40)
    from prune_cli.data import mnist1d as module

    monkeypatch.setattr(module, "_generate", lambda *a: (_ for _ in ()).throw(AssertionError("regenerated")))
    second = DATASETS.get("mnist1d")(cfg)
    assert torch.equal(first.train_x, second.train_x)


def raw_blobs(per_class=(40, 40, 40)):
    x = torch.randn(sum(per_class), 3)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    from prune_cli.data.splits import RawData

    return RawData(x, y, x[:9], y[:9], num_classes=len(per_class))


def test_split_is_stratified_seeded_and_disjoint():
    raw = raw_blobs()
    cfg = cfg_of(DatasetConfig, name="x", val_fraction=0.25)
    a = build_splits(raw, cfg, seed=0, device=torch.device("cpu"))
    b = build_splits(raw, cfg, seed=0, device=torch.device("cpu"))
    c = build_splits(raw, cfg, seed=1, device=torch.device("cpu"))
    assert torch.bincount(a.val_y).tolist() == [10, 10, 10]
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    train_rows = {tuple(r) for r in a.train_x.tolist()}
    assert not train_rows & {tuple(r) for r in a.val_x.tolist()} and len(train_rows) == 90


def test_longtail_and_explicit_counts():
    # round(1000 x 100^(-c/9)): 1000, 599.48, 359.38, 215.44, 129.16, 77.43, 46.42, 27.83, 16.68, 10
    assert longtail_counts([1000] * 10, 100) == [1000, 599, 359, 215, 129, 77, 46, 28, 17, 10]
    raw = raw_blobs((50, 50, 50))
    lt = build_splits(
        raw, cfg_of(DatasetConfig, name="x", val_fraction=0.0, imbalance="longtail", longtail_ratio=10), 0, torch.device("cpu")
    )
    assert torch.bincount(lt.train_y).tolist() == [50, 16, 5]  # 50 x 10^(-1/2) = 15.81
    counts = build_splits(
        raw, cfg_of(DatasetConfig, name="x", val_fraction=0.0, imbalance="counts", class_counts=[3, 7, 11]), 0, torch.device("cpu")
    )
    assert torch.bincount(counts.train_y).tolist() == [3, 7, 11]
    with pytest.raises(ConfigError, match="dataset.class_counts"):
        build_splits(raw, cfg_of(DatasetConfig, name="x", imbalance="counts", class_counts=[3, 7]), 0, torch.device("cpu"))


# MNIST's training examples per class (LeCun et al. 1998; torchvision's MNIST train split), MNIST-1D's
# with the default num_samples=10000 and data_seed=42 (Greydanus 2020), CIFAR-10's (Krizhevsky 2009)
MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST1D_TRAIN = [788, 788, 789, 800, 807, 803, 815, 804, 797, 809]


@pytest.mark.parametrize(
    "available, ratio, expected",
    [
        # n_head = floor(min_c available[c] x ratio^(c/(C-1))), n_c = round(n_head x ratio^(-c/(C-1))), evaluated
        # with 50-digit decimals outside the code: the class that limits the head is 1 here (150 x 4^(1/2) = 300)
        ([1000, 150, 500], 4, [300, 150, 75]),
        ([1000, 300, 100], 4, [400, 200, 100]),  # and the last class here (100 x 4 = 400)
        # MNIST: class 1 (6742) is the largest, class 0 (5923) sets the head; 5923 x 100^(-1/9) = 3550.745, ...
        # 5923 x 100^(-1) = 59.230. It gave [5923, 4041, 2422, ...] (anchored on 6742), largest/smallest 88.4
        (MNIST_TRAIN, 100, [5923, 3551, 2129, 1276, 765, 459, 275, 165, 99, 59]),
        # 5923 x 10^(-1/9) = 4585.964, ..., 592.300; it gave [5923, 5220, 4041, ...], largest/smallest 8.79
        (MNIST_TRAIN, 10, [5923, 4586, 3551, 2749, 2129, 1648, 1276, 988, 765, 592]),
        # 788 x 10^(-c/9): 610.120, 472.394, 365.757, 283.193, 219.266, 169.769, 131.446, 101.774, 78.800;
        # it gave [788, 631, 488, ...], largest/smallest 9.73
        (MNIST1D_TRAIN, 10, [788, 610, 472, 366, 283, 219, 170, 131, 102, 79]),
        # CIFAR-10's 5000 per class: 5000 x 3^(-c/9) = 4425.441, 3916.905, ..., 1666.667 (it rounded all down)
        ([5000] * 10, 3, [5000, 4425, 3917, 3467, 3068, 2716, 2404, 2128, 1883, 1667]),
    ],
)
def test_longtail_ratio_is_the_largest_over_the_smallest_class(available, ratio, expected):
    """README: longtail_ratio is largest / smallest class with the profile n_c = n_head x ratio^(-c/(C-1))
    (Cui et al. 2019). Anchored on the largest class and capped by each class's size, a class 0 smaller
    than the largest was cut to its own size: MNIST at ratio 100 came out at 88.4, and its first step
    was 1.47 against 1.67 for the others."""
    counts = longtail_counts(available, ratio)
    assert counts == expected
    assert all(n <= have for n, have in zip(counts, available))
    # largest / smallest is the ratio up to rounding the smallest class to a whole example
    assert max(counts) == counts[0] and min(counts) == counts[-1]
    assert counts[0] / (counts[-1] + 0.5) <= ratio <= counts[0] / (counts[-1] - 0.5)


def test_a_long_tail_too_steep_for_the_data_says_the_ratio_it_reached(caplog):
    """Classes whose share rounds below one example keep one: the ratio reached is then smaller than
    asked, which went unsaid (three classes of 20 at ratio 100: head 20, 2, 1, so 20 and not 100)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="prune_cli.data.splits"):
        assert longtail_counts([20, 20, 20], 100) == [20, 2, 1]
    assert "class(es) 2 would keep less than one example (head 20)" in caplog.text
    assert "largest/smallest is 20, not 100" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prune_cli.data.splits"):
        longtail_counts([5000] * 10, 100)
    assert not caplog.text


def test_random_crop_flip_is_a_crop_of_the_padded_image_possibly_flipped():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float).view(2, 3, 6, 6)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        candidates = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        candidates += [c.flip(2) for c in candidates]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_batches_cover_every_example_once():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))


def test_a_failed_download_is_named_not_a_urllib_traceback(tmp_path, monkeypatch):
    """dataset.download=true without network: urllib's URLError ended the run as an internal error."""
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetFilesMissing, match=r"could not fetch CIFAR-10 .*URLError.*by hand"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path), download=True))


def test_a_gzipped_cifar_batch_is_missing_not_present(tmp_path):
    """The pre-run check counted data_batch_1.gz as data_batch_1 (only IDX files are read from .gz):
    the run started and failed on the file it could not open."""
    write_cifar(tmp_path, "cifar10", n_train=20, n_test=6, classes=10)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.with_name("data_batch_1.gz").write_bytes(gzip.compress(batch.read_bytes()))
    batch.unlink()
    with pytest.raises(DatasetFilesMissing, match="missing data_batch_1 in"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path)))


def test_mnist1d_seed_out_of_numpy_s_range_is_a_config_error():
    """data_seed=-1 or 2**32 reached numpy's seeding and ended as an internal error."""
    from helpers import validated

    for seed in (-1, 2**32):
        with pytest.raises(ConfigError, match=r"'dataset.data_seed'"):
            validated("dataset=mnist1d", f"dataset.data_seed={seed}")
    validated("dataset=mnist1d", f"dataset.data_seed={2**32 - 1}")


def test_an_unreadable_mnist1d_cache_is_generated_again(tmp_path, monkeypatch):
    """A cache file that numpy cannot read (garbage, a torn write from another tool) crashed the run
    as an internal error; it is set aside with a warning and the data generated again."""
    cfg = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path))
    first = DATASETS.get("mnist1d")(cfg)
    (cache,) = tmp_path.glob("mnist1d_n200_seed42.npz")
    cache.write_text("garbage\n")
    again = DATASETS.get("mnist1d")(cfg)
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_y, again.test_y)
    assert list(tmp_path.glob("mnist1d_n200_seed42.npz.corrupt-*"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc", "-5"])
def test_a_data_memo_size_that_is_not_a_size_falls_back_to_the_default_with_a_warning(monkeypatch, caplog, value):
    """PRUNE_CLI_DATA_MEMO_MB=inf or nan crashed the run (OverflowError, ValueError) in int(); a negative
    size turned the memo off without a word. The memo changes only speed, not results (README): a bad
    value is a warning naming the variable, the value and what is allowed, and the default is used."""
    from prune_cli.data import cache

    monkeypatch.setenv(cache.MEMO_ENV, value)
    with caplog.at_level("WARNING", logger=cache.log.name):
        assert cache.memo_limit_bytes() == int(cache.DEFAULT_MEMO_MB * 2**20)
    assert f"{cache.MEMO_ENV}={value!r}" in caplog.text and "a number of megabytes >= 0" in caplog.text, caplog.text


def test_two_processes_finding_the_mnist1d_cache_unreadable_at_once_both_load_it(tmp_path, monkeypatch):
    """Two runs reading an unreadable cache at once both moved it aside: the second os.replace found no
    file (FileNotFoundError: the run failed; 36 of 40 in the race audit's harness). Reading, generating
    and writing the cache now happen under a lock: the second finds the regenerated file. Here two
    threads are held together inside the read (before the fix both were, and one failed)."""
    import threading

    from prune_cli.data import mnist1d as module

    cfg = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path))
    first = DATASETS.get("mnist1d")(cfg)
    (cache,) = tmp_path.glob("mnist1d_n200_seed42.npz")
    cache.write_text("garbage\n")
    together, load = threading.Barrier(2), np.load

    def held_load(*args, **kwargs):
        try:
            together.wait(timeout=2)  # both readers inside the read at once, if nothing keeps them apart
        except threading.BrokenBarrierError:
            pass
        return load(*args, **kwargs)

    monkeypatch.setattr(module.np, "load", held_load)
    results, errors = [], []

    def read():
        try:
            results.append(DATASETS.get("mnist1d")(cfg))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2
    assert all(torch.equal(r.train_x, first.train_x) for r in results)


# --------------------------------------------------------------------------- audit of the data layer: files that do not fit


MNIST_ARGS = ["dataset=mnist", "model=mlp", "model.widths=[16]", "train.epochs=1", "finetune.epochs=1", "train.batch_size=16"]


def _tiny_mnist(root: Path, n_train: int = 40, n_test: int = 20, compress: bool = False) -> Path:
    """MNIST's four IDX files under root/MNIST/raw: n_train and n_test images, labels 0..9 in turn."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    train_x, test_x = rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 256, (n_test, 28, 28))
    _write_mnist(raw, train_x, np.arange(n_train) % 10, test_x, np.arange(n_test) % 10, compress)
    return raw


def _the_one_error_line(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("damage", ["first_20_bytes", "corrupt_deflate_stream"])
def test_a_damaged_gz_idx_file_is_named(tmp_path, damage):
    """A truncated .gz (gzip raises EOFError) or one whose compressed bytes are damaged (zlib.error)
    ended the run with a traceback, exit 1, "internal error": only OSError (BadGzipFile) was caught."""
    from prune_cli.core.errors import DatasetFileUnreadable

    raw = _tiny_mnist(tmp_path, compress=True)
    path = raw / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    if damage == "first_20_bytes":
        path.write_bytes(data[:20])
    else:  # the 10-byte gzip header kept, the deflate stream replaced by bytes that are not one
        path.write_bytes(data[:10] + b"\xff" * 64 + data[-8:])
    with pytest.raises(DatasetFileUnreadable, match=rf"cannot read {path}"):
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(tmp_path)))


def test_a_truncated_gz_idx_file_is_one_message_exit_2(tmp_path):
    from conftest import run_cli

    raw = _tiny_mnist(tmp_path / "data", compress=True)
    path = raw / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    proc = run_cli([*MNIST_ARGS, f"dataset.root={tmp_path / 'data'}"], tmp_path / "results", check=False)
    line = _the_one_error_line(proc)
    assert f"cannot read {path}" in line and "EOFError" in line, line


@pytest.mark.parametrize("split, stem", [("train", "train-images-idx3-ubyte"), ("test", "t10k-images-idx3-ubyte")])
def test_an_idx_split_without_images_is_refused_when_loading(tmp_path, split, stem):
    """0 training images and 0 labels crashed inside training (IndexError, exit 1); an empty test split
    was found only after dense training (torch.cat of an empty list), the dense model already cached."""
    from conftest import run_cli

    raw = _tiny_mnist(tmp_path / "data", n_train=0 if split == "train" else 40, n_test=0 if split == "test" else 20)
    proc = run_cli([*MNIST_ARGS, f"dataset.root={tmp_path / 'data'}"], tmp_path / "results", check=False)
    line = _the_one_error_line(proc)
    assert f"{raw / stem} holds 0 images" in line, line
    assert not (tmp_path / "results" / "dense_cache").exists()  # refused before any training


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_loader_that_returns_an_empty_split_is_refused(split):
    """A dataset plugin whose source has no training (or test) examples: named in build_splits, not a
    crash inside training or evaluation."""
    from prune_cli.core.errors import PruneCliError
    from prune_cli.data.splits import RawData

    x, y = torch.randn(9, 3), torch.arange(9) % 3
    empty_x, empty_y = x[:0], y[:0]
    raw = RawData(empty_x, empty_y, x, y, 3) if split == "train" else RawData(x, y, empty_x, empty_y, 3)
    with pytest.raises(
        PruneCliError,
        match=rf"dataset 'plug' has no {split}ing examples" if split == "train" else "dataset 'plug' has no test examples",
    ):
        build_splits(raw, cfg_of(DatasetConfig, name="plug"), 0, torch.device("cpu"))


@pytest.mark.parametrize(
    "header",
    [bytes([0, 0, 8, 3]), bytes([0, 0, 8, 3]) + struct.pack(">I", 40) + b"\x00\x00"],
    ids=["magic_only", "cut_in_the_dimensions"],
)
def test_a_truncated_idx_header_says_truncated(tmp_path, header):
    """A 4-byte file `00 00 08 03` (or one cut inside the dimensions) was reported as "images of shape
    (0, 0), not 28 x 28"; it is a truncated file."""
    from prune_cli.core.errors import DatasetFileUnreadable

    raw = _tiny_mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(header)
    with pytest.raises(DatasetFileUnreadable) as caught:
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(tmp_path)))
    message = str(caught.value)
    assert message.startswith(f"{path} is truncated: its header declares 3 dimensions") and "shape" not in message, message


def test_a_failed_mnist_download_is_one_line_with_the_first_reason(tmp_path, monkeypatch):
    """torchvision's MNIST tries each mirror and raises one RuntimeError listing them all: the message
    spanned six lines. It is one line naming the dataset and root, saying the download failed, with
    the first mirror's reason."""
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(f"Name or service not known ({url.split('/')[2]})")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DatasetFilesMissing) as caught:
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(tmp_path), download=True))
    message = str(caught.value)
    first_mirror = tv_mnist.MNIST.mirrors[0]
    assert "\n" not in message, message
    assert message.startswith(f"dataset.download=true could not fetch MNIST into {tmp_path / 'MNIST' / 'raw'} (dataset.root=")
    assert "download failed" in message and first_mirror in message, message
    assert f"Name or service not known ({first_mirror.split('/')[2]})" in message, message
    second_host = tv_mnist.MNIST.mirrors[1].split("/")[2]
    assert f"Name or service not known ({second_host})" not in message, message  # the first reason only


def test_cifar_batches_without_images_are_refused_when_loading(tmp_path):
    from prune_cli.core.errors import DatasetFileUnreadable

    write_cifar(tmp_path, "cifar10", n_train=20, n_test=0, classes=10)
    with pytest.raises(DatasetFileUnreadable, match=r"cifar-10-batches-py/test_batch hold 0 images: the test split would be empty"):
        DATASETS.get("cifar10")(cfg_of(VisionConfig, name="cifar10", root=str(tmp_path)))


@pytest.mark.parametrize(
    "split, labels, named",
    [("train", [0, 1, 5, 2, -1, 5], "-1, 5"), ("test", [0, 3, 1], "3")],
    ids=["train_5_and_minus_1", "test_3"],
)
def test_labels_outside_the_classes_are_refused_not_dropped(split, labels, named):
    """A plugin dataset (or cache) whose labels fall outside range(num_classes): build_splits dropped
    the training examples silently (the stratified split takes classes 0..K-1 only); bad test labels
    crashed after dense training."""
    from prune_cli.core.errors import PruneCliError
    from prune_cli.data.splits import RawData

    good = torch.arange(12) % 3
    bad = torch.tensor(labels)
    x_bad, x_good = torch.randn(len(bad), 2), torch.randn(12, 2)
    raw = RawData(x_bad, bad, x_good, good, 3) if split == "train" else RawData(x_good, good, x_bad, bad, 3)
    with pytest.raises(PruneCliError) as caught:
        build_splits(raw, cfg_of(DatasetConfig, name="plug", val_fraction=0.0), 0, torch.device("cpu"))
    what = "training" if split == "train" else "test"
    assert str(caught.value).startswith(f"dataset 'plug' has {what} labels outside its 3 classes: {named}. Allowed: 0..2"), str(
        caught.value
    )


def test_longtail_on_data_without_a_class_names_the_imbalance_not_class_counts():
    """Class 2 has no training examples in the data: the long-tail profile asks one of it, and the
    message blamed dataset.class_counts, which the user never set."""
    raw = raw_blobs((50, 50, 0))
    cfg = cfg_of(DatasetConfig, name="plug", val_fraction=0.0, imbalance="longtail", longtail_ratio=10)
    with pytest.raises(ConfigError) as caught:
        build_splits(raw, cfg, 0, torch.device("cpu"))
    message = str(caught.value)
    assert caught.value.key == "dataset.imbalance" and "class_counts" not in message, message
    assert "dataset.longtail_ratio=10" in message and "class 2" in message and "dataset 'plug'" in message, message


def test_a_class_without_training_examples_in_the_data_is_a_warning(caplog, capsys):
    """Dataset files with no training example of a class: the run trains without it (a legitimate
    experiment), but says so in its log and on stderr."""
    raw = raw_blobs((30, 0, 30, 0))
    with caplog.at_level("WARNING"):
        splits = build_splits(raw, cfg_of(DatasetConfig, name="plug", val_fraction=0.0), 0, torch.device("cpu"))
    assert torch.bincount(splits.train_y, minlength=4).tolist() == [30, 0, 30, 0]  # the selection is unchanged
    expected = "classes 1, 3 of 4 have no training examples (removed by the dataset's files)"
    assert expected in capsys.readouterr().err
    assert any(expected in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_no_warning_when_every_class_keeps_training_examples(caplog, capsys):
    with caplog.at_level("WARNING"):
        build_splits(raw_blobs(), cfg_of(DatasetConfig, name="plug", max_train_samples=60), 0, torch.device("cpu"))
    assert "no training examples" not in capsys.readouterr().err and not caplog.records


def test_max_train_samples_that_leaves_classes_out_warns_in_the_log_and_on_stderr(tmp_path):
    """dataset.max_train_samples=1 on three classes trains on one class: a legitimate experiment, but
    the other two disappeared without a word."""
    from conftest import FAST, run_cli

    proc = run_cli([*FAST, "dataset.max_train_samples=1"], tmp_path / "results")
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: warning:")]
    named = re.fullmatch(
        r"prune-run: warning: classes (\d), (\d) of 3 have no training examples \(removed by dataset\.max_train_samples=1\); "
        r"the model is trained without them",
        line,
    )
    assert named and len({named[1], named[2]}) == 2, line  # one example keeps one class of the three
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    assert line.removeprefix("prune-run: warning: ") in (run_dir / "prune-run.log").read_text()


@pytest.mark.parametrize(
    "case",
    [
        "train_label_12",
        "train_label_minus_1",
        "y_shorter_than_x",
        "x_width_30",
        "test_label_10",
        "x_test_rows",
        "labels_as_floats",
        "other_num_samples",
    ],
)
def test_a_mnist1d_cache_that_does_not_fit_is_generated_again(tmp_path, caplog, case):
    """A cache whose arrays numpy reads but that does not fit (a label outside 0..9, y shorter than x, 30
    samples per signal instead of 40, another dataset size) was used silently: examples dropped, a model
    of the wrong input size, or a crash after dense training (bad test labels). It is set aside like an
    unreadable cache and the data generated again."""
    cfg = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path))
    first = DATASETS.get("mnist1d")(cfg)
    (cache,) = tmp_path.glob("mnist1d_n200_seed42.npz")
    with np.load(cache) as data:
        arrays = {k: data[k].copy() for k in data.files}
    assert arrays["x"].shape == (160, 40) and arrays["x_test"].shape == (40, 40)  # 80 % of 200 for training
    if case == "train_label_12":
        arrays["y"][3] = 12
    elif case == "train_label_minus_1":
        arrays["y"][0] = -1
    elif case == "y_shorter_than_x":
        arrays["y"] = arrays["y"][:150]
    elif case == "x_width_30":
        arrays["x"], arrays["x_test"] = arrays["x"][:, :30], arrays["x_test"][:, :30]
    elif case == "test_label_10":
        arrays["y_test"][5] = 10
    elif case == "x_test_rows":
        arrays["x_test"] = arrays["x_test"][:30]
    elif case == "labels_as_floats":
        arrays["y"] = arrays["y"].astype(np.float64) + 0.5
    else:  # the arrays of num_samples=100 under the name of 200
        arrays = {k: v[: len(v) // 2] for k, v in arrays.items()}
    np.savez(cache, **arrays)
    with caplog.at_level("WARNING"):
        again = DATASETS.get("mnist1d")(cfg)
    assert again.train_x.shape == (160, 40) and again.test_x.shape == (40, 40)
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.train_y, again.train_y)
    assert torch.equal(first.test_y, again.test_y)
    assert len(list(tmp_path.glob("mnist1d_n200_seed42.npz.corrupt-*"))) == 1
    assert any("MNIST-1D cache" in r.getMessage() and "generating again" in r.getMessage() for r in caplog.records)


def test_a_read_only_mnist1d_cache_holding_a_corrupt_file_is_refused_before_the_run(tmp_path, monkeypatch):
    """A read-only cache_dir was accepted as soon as its cache file existed; a corrupt file there made the
    run warn that it had moved the file aside, then fail on the move with "Permission denied", naming no
    key, after its run directory existed. (The tests run as root, for whom a chmod does not make a folder
    read-only: the folder's answer is patched.)"""
    from prune_cli.data import mnist1d as module

    monkeypatch.setattr(module, "directory_problem", lambda value, try_create=False: f"{value} is not writable")
    cfg = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path))
    (tmp_path / "mnist1d_n200_seed42.npz").write_text("garbage\n")
    with pytest.raises(ConfigError, match=r"'dataset.cache_dir'.*not writable, and its mnist1d_n200_seed42.npz does not hold"):
        Mnist1dConfig.check(OmegaConf.create({"dataset": cfg}), "dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist1d_n200_seed42.npz"]  # nothing moved, nothing made
    module._generate(200, 42)  # a fitting file in the read-only folder is read
    np.savez(tmp_path / "mnist1d_n200_seed42.npz", **module._generate(200, 42))
    Mnist1dConfig.check(OmegaConf.create({"dataset": cfg}), "dataset")


def test_a_cache_file_that_cannot_be_set_aside_names_the_key_not_a_false_move(tmp_path, monkeypatch, caplog):
    """The run logged "moved to ..." before the move, which then failed (read-only folder)."""
    from prune_cli.core.errors import DatasetFileUnreadable
    from prune_cli.data import mnist1d as module

    cache = tmp_path / "mnist1d_n200_seed42.npz"
    cache.write_text("garbage\n")

    def refused(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(module.os, "replace", refused)
    with caplog.at_level("WARNING"), pytest.raises(DatasetFileUnreadable, match="dataset.cache_dir"):
        module._read_cache(cache, 200)
    assert "moved to" not in caplog.text


@pytest.mark.slow
def test_the_published_mnist1d_is_num_samples_5000_not_the_default():
    """README: the published MNIST-1D (Greydanus 2020: the mnist1d package's defaults, 4000 training and
    1000 test signals) is dataset.num_samples=5000; the default 10000 is other draws, not a superset."""
    from mnist1d.data import get_dataset_args, make_dataset

    from prune_cli.data.mnist1d import _generate

    published = make_dataset(get_dataset_args())
    ours = _generate(5000, 42)
    assert all(np.array_equal(ours[k], published[k]) for k in ("x", "y", "x_test", "y_test"))
    assert (len(ours["x"]), len(ours["x_test"])) == (4000, 1000)
    default = _generate(10000, 42)
    flat = {row.tobytes() for row in np.concatenate([default["x"], default["x_test"]])}
    assert not any(row.tobytes() in flat for row in published["x_test"])


def test_a_cifar_label_list_of_pairs_is_not_flattened(tmp_path):
    """A label entry of nested pairs (here 2 x 2 for 4 images: shape (2, 2)) was flattened to 4 labels and accepted,
    pairing images with labels that were never theirs; the IDX reader already refuses labels of 2 dimensions.
    Named now, like a short label list (sixth session of 2026-12-03)."""
    from prune_cli.core.errors import DatasetFileUnreadable

    write_cifar(tmp_path, "cifar100", n_train=4, n_test=2, classes=100)
    path = tmp_path / "cifar-100-python" / "train"
    entry = pickle.loads(path.read_bytes())
    entry["fine_labels"] = [[0, 1], [2, 3]]
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(DatasetFileUnreadable, match=r"train: labels of shape \(2, 2\), not one label per image"):
        DATASETS.get("cifar100")(cfg_of(VisionConfig, name="cifar100", root=str(tmp_path)))


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_download_leaves_no_folder_it_created(tmp_path, monkeypatch, existing):
    """Data audit of 2026-12-04: dataset.download=true without network failed with nothing in results_dir, but left
    the dataset.root torchvision had made (and MNIST/raw in it). The folders the download created are removed; a
    root that was there before stays, with what it held."""
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    root = tmp_path / "new" / "data"
    if existing:
        root.mkdir(parents=True)
        (root / "notes.txt").write_text("mine")
    with pytest.raises(DatasetFilesMissing, match="could not fetch MNIST"):
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(root), download=True))
    if existing:
        assert sorted(p.name for p in root.iterdir()) == ["notes.txt"] and (root / "notes.txt").read_text() == "mine"
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("partial", [False, True])
def test_a_failed_download_never_removes_another_runs_files(tmp_path, monkeypatch, partial):
    """Review of the cleanup above: it removed the whole tree it computed it would create, before torchvision ran.
    Two runs sharing a dataset.root that did not exist (a sweep over dataset=mnist,cifar10): while one's download
    failed, the other completed its own under the same root, and the failed one's cleanup deleted it. Only empty
    folders are removed now; files stay, the failed download's partial files too (the error says they may)."""
    import torchvision.datasets

    root = tmp_path / "new" / "data"

    def concurrent_then_offline(folder, train=True, download=False):
        other = Path(folder) / "cifar-10-batches-py"  # the other run's completed download, meanwhile
        other.mkdir(parents=True)
        (other / "data_batch_1").write_bytes(b"the other run's data")
        (Path(folder) / "MNIST" / "raw").mkdir(parents=True)
        if partial:
            (Path(folder) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"half")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\nno network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", concurrent_then_offline)
    with pytest.raises(DatasetFilesMissing) as failed:
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(root), download=True))
    assert (root / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"the other run's data"
    assert "Partial files of the failed download may be left" in str(failed.value)
    if partial:
        assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").read_bytes() == b"half"
    else:
        assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # the empty MNIST/raw is gone


def test_a_failed_download_alone_leaves_no_empty_folder(tmp_path, monkeypatch):
    """The plain case of the cleanup: nothing else written under the new root, every folder it made goes."""
    import torchvision.datasets

    def offline(folder, train=True, download=False):
        (Path(folder) / "MNIST" / "raw").mkdir(parents=True)
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetFilesMissing, match="could not fetch MNIST"):
        DATASETS.get("mnist")(cfg_of(VisionConfig, name="mnist", root=str(tmp_path / "new" / "data"), download=True))
    assert list(tmp_path.iterdir()) == []
