"""CIFAR ResNet-20/32/56 (He et al. 2016, section 4.2).

Shortcuts are option A: identity, and where the shape changes, stride-2 subsampling with
zero-padded extra channels. They have no parameters, so nothing in a shortcut is prunable.

Every BasicBlock is a residual section for layer pruning during training (`schedule=layer_pruning`,
Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks", 2024;
docs/training_time.md): `relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))`. Its input is the
output of a ReLU (the stem's or the previous block's), so it is nonnegative and relu2(shortcut(x)) =
shortcut(x): a block whose branch is zero computes exactly its shortcut, the identity, or for the
first block of stages 2 and 3 the parameter-free stride-2 subsampling with zero-padded channels.
Those downsampling blocks are sections too: removing one keeps only its shortcut, which still
carries every input channel to the next stage. `without_sections` builds the network in which the
removed blocks are replaced by their shortcuts.
"""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import nn

from . import MODELS
from .base import PrunableNet


class ShortcutA(nn.Module):
    """He et al. (2016) option A: identity, or subsampling with zero-padded channels (no parameters).

    `channel_index` is the output channel of each input channel (input c -> c + extra // 2 when
    padding). A compacted ResNet (prune_cli/models/compact.py) passes its own `index`: the kept
    input channels land on their kept output positions, the other outputs are zero."""

    parameter_free_affine = True  # an affine map: region counting treats it as one (prune_cli/models/graph.py)

    def __init__(self, in_planes: int, planes: int, stride: int, index: list[int] | None = None):
        super().__init__()
        self.stride, self.extra = stride, planes - in_planes
        self.out_channels = planes
        self.channel_index = list(index) if index is not None else [c + self.extra // 2 for c in range(in_planes)]
        if len(self.channel_index) != in_planes or not all(0 <= i < planes for i in self.channel_index):
            raise ValueError(f"ShortcutA index {self.channel_index}: {in_planes} positions in [0, {planes}) expected")
        lo = self.channel_index[0] if self.channel_index else 0
        self._pad = (lo, planes - in_planes - lo) if self.channel_index == list(range(lo, lo + in_planes)) else None
        self.constructor_args = {"in_planes": in_planes, "planes": planes, "stride": stride, "index": self.channel_index}

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self._pad == (0, 0):
            return x
        if self._pad is not None:
            return F.pad(x, (0, 0, 0, 0, *self._pad))
        out = x.new_zeros(x.shape[0], self.out_channels, *x.shape[2:])
        out[:, self.channel_index] = x
        return out


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

    # -- residual sections (layer pruning; the forward pass above does not change) --------------
    BRANCH = ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")

    def block_names(self) -> list[str]:
        """Every BasicBlock in forward order: layer1.0, layer1.1, ..., layer3.<n-1>."""
        return [f"{stage}.{i}" for stage in ("layer1", "layer2", "layer3") for i in range(len(getattr(self, stage)))]

    def residual_sections(self) -> list[list[str]]:
        """The convolution weights of each block's branch, in forward order (its multiply-accumulates)."""
        return [[f"{b}.conv1.weight", f"{b}.conv2.weight"] for b in self.block_names()]

    def section_parameters(self) -> list[list[str]]:
        """Every parameter of each block's branch: zero, they make the branch output exactly 0 in
        training and in evaluation mode (bn2's scale and shift are 0), whatever the running statistics."""
        return [[f"{b}.{p}" for p in self.BRANCH] for b in self.block_names()]

    def section_branches(self) -> list[str]:
        """The module whose output is block l's contribution to the residual sum (what a gate scales)."""
        return [f"{b}.bn2" for b in self.block_names()]

    def without_sections(self, removed: set[int]) -> "CifarResNet":
        """A copy in which each `removed` block is replaced by its shortcut (nn.Identity when that is
        the identity): fewer modules, the same function as this network with the blocks' branches at 0."""
        compact = copy.deepcopy(self)
        for i, name in enumerate(self.block_names()):
            if i in removed:
                stage, index = name.split(".")
                shortcut = compact.get_submodule(name).shortcut
                identity = shortcut.stride == 1 and shortcut._pad == (0, 0)
                getattr(compact, stage)[int(index)] = nn.Identity() if identity else shortcut
        return compact

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


@MODELS.register("resnet20", "resnet32", "resnet56")
def build_resnet(cfg, shape, num_classes: int) -> CifarResNet:
    """resnet<depth>: the depth is in the option's name (depth = 6n + 2)."""
    return CifarResNet(int(cfg.name.removeprefix("resnet")), shape[0], num_classes)
