"""CIFAR ResNet-20/32/56 (He et al. 2016, section 4.2).

Shortcuts are option A: identity, and where the shape changes, stride-2 subsampling with
zero-padded extra channels. They have no parameters, so nothing in a shortcut is prunable.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from . import MODELS
from .base import PrunableNet


class ShortcutA(nn.Module):
    """He et al. (2016) option A: identity, or subsampling with zero-padded channels (no parameters)."""

    parameter_free_affine = True  # an affine map: region counting treats it as one (prune_cli/models/graph.py)

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, planes - in_planes

    def forward(self, x):
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = ShortcutA(in_planes, planes, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(PrunableNet):
    def __init__(self, depth: int, in_channels: int, num_classes: int):
        super().__init__()
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self.classifier = "fc"

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


@MODELS.register("resnet20", "resnet32", "resnet56")
def build_resnet(cfg, shape, num_classes: int) -> CifarResNet:
    """resnet<depth>: the depth is in the option's name (depth = 6n + 2)."""
    return CifarResNet(int(cfg.name.removeprefix("resnet")), shape[0], num_classes)
