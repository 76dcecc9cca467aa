"""Datasets through their real code paths: tiny IDX and CIFAR pickle files, synthetic, MNIST-1D,
imbalance, seeded splits and tensor augmentation."""

from __future__ import annotations

import gzip
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
    assert longtail_counts([1000] * 10, 100) == [int(1000 * 100 ** (-c / 9)) for c in range(10)]
    raw = raw_blobs((50, 50, 50))
    lt = build_splits(
        raw, cfg_of(DatasetConfig, name="x", val_fraction=0.0, imbalance="longtail", longtail_ratio=10), 0, torch.device("cpu")
    )
    assert torch.bincount(lt.train_y).tolist() == [50, int(50 * 10**-0.5), 5]
    counts = build_splits(
        raw, cfg_of(DatasetConfig, name="x", val_fraction=0.0, imbalance="counts", class_counts=[3, 7, 11]), 0, torch.device("cpu")
    )
    assert torch.bincount(counts.train_y).tolist() == [3, 7, 11]
    with pytest.raises(ConfigError, match="dataset.class_counts"):
        build_splits(raw, cfg_of(DatasetConfig, name="x", imbalance="counts", class_counts=[3, 7]), 0, torch.device("cpu"))


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
