"""`data_pruning=random`: keep round(keep x N) training examples drawn uniformly (the baseline every
data-pruning paper compares with; Paul et al., NeurIPS 2021; Vysogorets, Ahuja and Kempe,
"Robust Data Pruning")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.config_base import config_schema
from . import DataPruningContext, KeepFractionConfig, Selection, class_rows, register_data_pruning


@config_schema("data_pruning", "random")
@dataclass
class RandomDataPruningConfig(KeepFractionConfig):
    """Uniformly random subset of the training split."""

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """No model is trained to choose the examples."""
        return 0


@register_data_pruning("random")
def random_subset(ctx: DataPruningContext, node: DictConfig) -> Selection:
    y = ctx.data.train_y.cpu()
    kept = torch.randperm(len(y), generator=ctx.generator)[: ctx.kept_count(node.keep)].sort().values
    return Selection(kept, class_rows(y, kept, ctx.data.num_classes))
