"""VGG-11/16/19 with batch norm for CIFAR (3x3 convs, global average pool, one linear classifier)."""

from __future__ import annotations

from torch import nn

from . import MODELS
from .base import PrunableNet

PLANS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(PrunableNet):
    def __init__(self, plan: list, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(in_channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
                in_channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.classifier = "fc"

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@MODELS.register("vgg11", "vgg16", "vgg19")  # the keys of PLANS
def build_vgg(cfg, shape, num_classes: int) -> VGG:
    return VGG(PLANS[cfg.name], shape[0], num_classes)
