"""`data_pruning=class_balanced`: the same number of examples from every class (random within a
class); a class with fewer examples than its share keeps them all and the rest is shared among the
other classes (water-filling, `water_fill`). On a long-tailed training set this rebalances the
classes, the random baseline with "appropriate class ratios" of Vysogorets, Ahuja and Kempe,
"Robust Data Pruning"."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.config_base import config_schema
from . import DataPruningContext, KeepFractionConfig, Selection, class_rows, random_within_classes, register_data_pruning, water_fill


@config_schema("data_pruning", "class_balanced")
@dataclass
class ClassBalancedDataPruningConfig(KeepFractionConfig):
    """Equal per-class counts (as far as the classes' sizes allow), random within a class."""

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """No model is trained to choose the examples."""
        return 0


@register_data_pruning("class_balanced")
def class_balanced(ctx: DataPruningContext, node: DictConfig) -> Selection:
    y = ctx.data.train_y.cpu()
    sizes = torch.bincount(y, minlength=ctx.data.num_classes).tolist()
    quotas = water_fill(sizes, [1.0] * len(sizes), ctx.kept_count(node.keep))
    kept = random_within_classes(y, quotas, ctx.generator)
    return Selection(kept, class_rows(y, kept, ctx.data.num_classes, quota=quotas))
