"""`data_pruning=none` (the default): the whole training split is used."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.config_base import config_schema
from . import DataPruningConfig, DataPruningContext, Selection, class_rows, register_data_pruning


@config_schema("data_pruning", "none")
@dataclass
class NoDataPruningConfig(DataPruningConfig):
    """No data pruning; left out of the run id and the dense-cache key."""

    name: str = "none"


@register_data_pruning("none")
def keep_all(ctx: DataPruningContext, node: DictConfig) -> Selection:
    kept = torch.arange(len(ctx.data.train_y))
    return Selection(kept, class_rows(ctx.data.train_y.cpu(), kept, ctx.data.num_classes))
