"""MNIST, Fashion-MNIST, CIFAR-10/100 read from local files through torchvision's readers.

Inputs are standardised with statistics of the training split (per channel). Files are never
fetched unless `dataset.download=true`; when they are missing the error says where they go.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from ..errors import DatasetFilesMissing
from . import DATASETS
from .splits import RawData


@dataclass(frozen=True)
class VisionSource:
    label: str
    folder: str  # relative to dataset.root, as torchvision lays it out
    files: tuple[str, ...]
    num_classes: int
    url_hint: str


SOURCES = {
    "mnist": VisionSource("MNIST", "MNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), 10,
                          "the four IDX files of yann.lecun.com/exdb/mnist (optionally .gz)"),
    "fashion_mnist": VisionSource("Fashion-MNIST", "FashionMNIST/raw", ("train-images-idx3-ubyte",
                                  "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"), 10,
                                  "the four IDX files of github.com/zalandoresearch/fashion-mnist"),
    "cifar10": VisionSource("CIFAR-10", "cifar-10-batches-py", ("data_batch_1", "data_batch_2",
                            "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"),
                            10, "the extracted cifar-10-python.tar.gz"),
    "cifar100": VisionSource("CIFAR-100", "cifar-100-python", ("train", "test", "meta"), 100,
                             "the extracted cifar-100-python.tar.gz"),
}


def _present(folder: str, name: str) -> bool:
    return os.path.exists(os.path.join(folder, name)) or os.path.exists(os.path.join(folder, name + ".gz"))


def _check_files(name: str, root: str) -> None:
    src = SOURCES[name]
    folder = os.path.join(os.path.expanduser(root), src.folder)
    missing = [f for f in src.files if not _present(folder, f)]
    if missing:
        raise DatasetFilesMissing(
            f"{src.label} files not found for dataset.root={root!r}: missing {', '.join(missing)} in "
            f"{folder}. Put {src.url_hint} there, or pass dataset.download=true on a machine with "
            f"network access."
        )


def _torchvision_class(name: str):
    """The torchvision dataset class; CIFAR's md5 checks (data and meta files) are relaxed to
    'files exist' so re-packed or subset copies load; torchvision still parses the files."""
    from torchvision import datasets

    base = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST,
            "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    if name.startswith("cifar"):
        class LocalCIFAR(base):  # type: ignore[misc, valid-type]
            def _check_integrity(self) -> bool:
                folder = os.path.join(self.root, self.base_folder)
                names = [f for f, _ in self.train_list + self.test_list] + [self.meta["filename"]]
                return all(os.path.exists(os.path.join(folder, f)) for f in names)

            def _load_meta(self) -> None:
                with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
                self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

        return LocalCIFAR
    return base


def _to_tensors(ds, image_layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    x = data.float().div_(255.0)
    x = x.unsqueeze(1) if image_layout == "NHW" else x.permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return x, y


def _standardise(train_x: torch.Tensor, test_x: torch.Tensor):
    dims = (0, 2, 3)
    mean = train_x.mean(dim=dims, keepdim=True)
    std = train_x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    return (train_x - mean) / std, (test_x - mean) / std


def load_vision(name: str, cfg: DictConfig) -> RawData:
    if not cfg.download:
        _check_files(name, cfg.root)
    cls = _torchvision_class(name)
    root = os.path.expanduser(cfg.root)
    layout = "NHW" if "mnist" in name else "NHWC"
    train_x, train_y = _to_tensors(cls(root, train=True, download=cfg.download), layout)
    test_x, test_y = _to_tensors(cls(root, train=False, download=cfg.download), layout)
    train_x, test_x = _standardise(train_x, test_x)
    return RawData(train_x, train_y, test_x, test_y, SOURCES[name].num_classes, image=True)


for _name in SOURCES:
    DATASETS.register(_name)(lambda cfg, _n=_name: load_vision(_n, cfg))
