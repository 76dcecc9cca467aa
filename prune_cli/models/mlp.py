"""Fully connected ReLU networks: `mlp` (configurable widths) and `lenet_300_100`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import DictConfig
from torch import nn

from ..core.checks import check_widths
from ..core.config_base import ModelConfig, config_schema
from . import MODELS
from .base import PrunableNet


@config_schema("model", "mlp")
@dataclass
class MLPConfig(ModelConfig):
    widths: list[int] = field(default_factory=lambda: [100, 100])
    bias: bool = True

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        check_widths(cfg, f"{key}.widths")


class MLP(PrunableNet):
    def __init__(self, in_features: int, widths: list[int], num_classes: int, bias: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for width in widths:
            layers += [nn.Linear(previous, width, bias=bias), nn.ReLU()]
            previous = width
        layers.append(nn.Linear(previous, num_classes, bias=bias))
        self.net = nn.Sequential(*layers)
        self.classifier = f"net.{len(layers) - 1}"

    def forward(self, x):
        return self.net(x)


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig, input_shape, num_classes) -> MLP:
    return MLP(math.prod(input_shape), list(cfg.widths), num_classes, bias=cfg.bias)


@MODELS.register("lenet_300_100")
def build_lenet_300_100(cfg: DictConfig, input_shape, num_classes) -> MLP:
    return MLP(math.prod(input_shape), [300, 100], num_classes)
