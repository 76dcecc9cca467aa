"""`res_mlp`: a fully connected network of residual sections, for layer pruning during training.

Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks" (2024), put
*linear* residual connections around *nonlinear* sections so that information still flows once a
section is removed. Here, after a stem `h = ReLU(stem(x))`,

    h <- h + g_l * section_l(h),     section_l = Linear(width, width) -> ReLU -> Linear(width, width)

for l = 0 .. blocks-1, then the classifier. `g_l` is the buffer `gates[l]` (1 by default): a
layer-pruning method (`schedule=layer_pruning`, docs/training_time.md) sets it to 0 when it removes
section l and masks the section's weights, so the network is then exactly the one without that
section and the FLOPs counter (prune_cli/metrics/cost.py) no longer counts it. Every section keeps
the width, so a removed section is the identity map and nothing downstream changes shape;
`without_sections` builds the network that no longer has them at all.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from ..core.checks import positive_int
from ..core.config_base import ModelConfig, config_schema
from . import MODELS
from .base import PrunableNet


@config_schema("model", "res_mlp")
@dataclass
class ResMLPConfig(ModelConfig):
    width: int = 64  # the stem's, every section's and the residual stream's width
    blocks: int = 4  # residual sections (each two Linear layers around a ReLU)
    bias: bool = True

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, f"{key}.width")
        positive_int(cfg, f"{key}.blocks")


class ResMLP(PrunableNet):
    def __init__(self, in_features: int, width: int, blocks: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.flatten = nn.Flatten()
        self.stem = nn.Linear(in_features, width, bias=bias)
        self.stem_relu = nn.ReLU()  # a module, so the region counter sees every nonlinearity
        self.sections = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width, bias=bias), nn.ReLU(), nn.Linear(width, width, bias=bias)) for _ in range(blocks)
        )
        self.classifier_layer = nn.Linear(width, num_classes, bias=bias)
        self.classifier = "classifier_layer"
        self.register_buffer("gates", torch.ones(blocks))  # 1 = section active, 0 = removed

    def residual_sections(self) -> list[list[str]]:
        """The weight names of each residual section, in forward order (what removing section l masks)."""
        return [[f"sections.{i}.0.weight", f"sections.{i}.2.weight"] for i in range(len(self.sections))]

    def section_parameters(self) -> list[list[str]]:
        """Every parameter of each section (weights and biases): what removing it zeroes, so a removed
        section's biases, which its gate of 0 keeps from acting, are not counted as live parameters."""
        return [[f"sections.{i}.{n}" for n, _ in section.named_parameters()] for i, section in enumerate(self.sections)]

    def section_branches(self) -> list[str]:
        """The module whose output is section l's contribution to the residual sum (what a gate scales)."""
        return [f"sections.{i}" for i in range(len(self.sections))]

    def without_sections(self, removed: set[int]) -> "ResMLP":
        """A copy without the `removed` sections: fewer modules, the same function as this network
        with their gates at 0."""
        compact = copy.deepcopy(self)
        kept = [i for i in range(len(self.sections)) if i not in removed]
        compact.sections = nn.ModuleList(compact.sections[i] for i in kept)
        compact.gates = self.gates[kept].clone()
        return compact

    def forward(self, x):
        h = self.stem_relu(self.stem(self.flatten(x)))
        for i, section in enumerate(self.sections):
            h = h + self.gates[i] * section(h)
        return self.classifier_layer(h)


@MODELS.register("res_mlp")
def build_res_mlp(cfg: DictConfig, input_shape, num_classes) -> ResMLP:
    return ResMLP(math.prod(input_shape), cfg.width, cfg.blocks, num_classes, bias=cfg.bias)
