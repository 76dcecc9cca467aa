"""Gaussian blobs and interleaved spirals: fast, offline, any input dimension."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from ..core.checks import check, choice, data_seed, finite, positive_int
from ..core.config_base import DatasetConfig, config_schema
from . import DATASETS
from .splits import RawData


@config_schema("dataset", "synthetic")
@dataclass
class SyntheticConfig(DatasetConfig):
    kind: str = "blobs"  # blobs | spirals
    input_dim: int = 2
    num_classes: int = 3
    # standard deviation of the Gaussian noise: blobs, on every coordinate around the class centre (centres
    # drawn with standard deviation 2); spirals, x 0.1 on the two plane coordinates before the embedding
    noise: float = 0.5
    samples_per_class: int = 500  # training samples per class (before the validation split)
    # drawn from the same generator after the training samples: another samples_per_class gives other
    # test examples (dataset.max_train_samples subsets the training split and keeps the test split)
    test_samples_per_class: int = 200
    data_seed: int = 0  # the data itself; the run's seed drives splits and training

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        d = OmegaConf.select(cfg, key)
        choice(cfg, f"{key}.kind", {"blobs", "spirals"})
        positive_int(cfg, f"{key}.input_dim", minimum=2 if d.kind == "spirals" else 1)
        positive_int(cfg, f"{key}.num_classes", minimum=2)
        positive_int(cfg, f"{key}.samples_per_class")
        positive_int(cfg, f"{key}.test_samples_per_class")
        check(finite(d.noise) and d.noise >= 0, f"{key}.noise", d.noise, "a finite number >= 0")
        data_seed(cfg, f"{key}.data_seed")  # the range of dataset=mnist1d's: a larger one overflowed in torch's manual_seed

    @classmethod
    def declared_input(cls, node):
        return (int(node.input_dim),), int(node.num_classes)

    @classmethod
    def declared_train_examples(cls, node):
        return int(node.samples_per_class) * int(node.num_classes), [int(node.samples_per_class)] * int(node.num_classes)

    @classmethod
    def declared_test_examples(cls, node):
        return int(node.test_samples_per_class) * int(node.num_classes)


def _blobs(n_per_class: int, cfg: DictConfig, gen: torch.Generator, centers: torch.Tensor):
    k, d = centers.shape
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = centers[y] + cfg.noise * torch.randn(len(y), d, generator=gen)
    return x, y


def _spirals(n_per_class: int, cfg: DictConfig, gen: torch.Generator, embed: torch.Tensor):
    """k interleaved arms in the plane (radius 0..1, 1.5 turns), embedded in input_dim dimensions."""
    k = cfg.num_classes
    t = torch.rand(k, n_per_class, generator=gen)
    radius = t
    angle = 3 * math.pi * t + (2 * math.pi / k) * torch.arange(k)[:, None]
    plane = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(-1, 2)
    plane = plane + cfg.noise * 0.1 * torch.randn(plane.shape, generator=gen)
    y = torch.arange(k).repeat_interleave(n_per_class)
    return plane @ embed, y


@DATASETS.register("synthetic")
def load_synthetic(cfg: DictConfig) -> RawData:
    gen = torch.Generator().manual_seed(cfg.data_seed)
    d, k = cfg.input_dim, cfg.num_classes
    if cfg.kind == "blobs":
        shared = torch.randn(k, d, generator=gen) * 2.0
        make = lambda n: _blobs(n, cfg, gen, shared)  # noqa: E731
    else:
        # Orthonormal embedding of the spiral plane: for input_dim=2 it is the identity.
        embed = torch.eye(2, d) if d == 2 else torch.linalg.qr(torch.randn(d, 2, generator=gen))[0].T
        make = lambda n: _spirals(n, cfg, gen, embed)  # noqa: E731
    train_x, train_y = make(cfg.samples_per_class)
    test_x, test_y = make(cfg.test_samples_per_class)
    return RawData(train_x.float(), train_y, test_x.float(), test_y, num_classes=k)
