"""Plain convolutional nets: `lenet5`, `conv6` (Frankle & Carbin 2019) and `cnn1d` for MNIST-1D."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig
from torch import nn

from ..core.checks import check_widths, positive_int
from ..core.config_base import ModelConfig, config_schema
from . import MODELS
from .base import PrunableNet, flat_features


@config_schema("model", "cnn1d")
@dataclass
class CNN1DConfig(ModelConfig):
    channels: list[int] = field(default_factory=lambda: [32, 32, 32])
    kernel_size: int = 5
    hidden: int = 64

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        """Sizes of layers: a zero-width layer has no weights (hidden=0 divided by zero in the cost table
        after dense training; channels=[0] and kernel_size=0 were reported as a model not fitting the data)."""
        check_widths(cfg, f"{key}.channels")
        positive_int(cfg, f"{key}.kernel_size")
        positive_int(cfg, f"{key}.hidden")


class ConvThenDense(PrunableNet):
    """A convolutional body, flattened into ReLU dense layers and a linear classifier."""

    def __init__(self, body: list[nn.Module], input_shape, hidden: list[int], num_classes: int, add_channel: bool = False):
        super().__init__()
        self.add_channel = add_channel
        self.features = nn.Sequential(*body)
        shape = (1, *input_shape) if add_channel else input_shape
        previous = flat_features(self.features, shape)
        dense: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            dense += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        dense.append(nn.Linear(previous, num_classes))
        self.head = nn.Sequential(*dense)
        self.classifier = f"head.{len(dense) - 1}"

    def forward(self, x):
        if self.add_channel:
            x = x.unsqueeze(1)
        return self.head(self.features(x))


def _conv_stack(in_channels: int, plan: list, conv=nn.Conv2d, pool=nn.MaxPool2d, kernel=3, padding=1):
    layers: list[nn.Module] = []
    for item in plan:
        if item == "M":
            layers.append(pool(2))
        else:
            layers += [conv(in_channels, item, kernel, padding=padding), nn.ReLU()]
            in_channels = item
    return layers


@MODELS.register("lenet5")
def build_lenet5(cfg: DictConfig, input_shape, num_classes):
    body = [nn.Conv2d(input_shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)]
    return ConvThenDense(body, input_shape, [120, 84], num_classes)


@MODELS.register("conv6")
def build_conv6(cfg: DictConfig, input_shape, num_classes):
    body = _conv_stack(input_shape[0], [64, 64, "M", 128, 128, "M", 256, 256, "M"])
    return ConvThenDense(body, input_shape, [256, 256], num_classes)


@MODELS.register("cnn1d")
def build_cnn1d(cfg: DictConfig, input_shape, num_classes):
    """Small 1-D CNN for sequence inputs of shape (L,): stride-2 convs, then one hidden layer."""
    layers: list[nn.Module] = []
    channels = 1
    for out in cfg.channels:
        layers += [nn.Conv1d(channels, out, cfg.kernel_size, stride=2, padding=cfg.kernel_size // 2), nn.ReLU()]
        channels = out
    return ConvThenDense(layers, input_shape, [cfg.hidden], num_classes, add_channel=True)
