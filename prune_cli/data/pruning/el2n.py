"""`data_pruning=el2n`: keep the hardest examples by EL2N score (Paul, Ganguli and Dziugaite, "Deep
Learning on a Data Diet: Finding Important Examples Early in Training", NeurIPS 2021).

The EL2N score of an example (x, y) is the L2 norm of the error vector, softmax(f(x)) - onehot(y),
averaged over `proxies` models trained independently (their own initialisation and batch order)
for `proxy_epochs` epochs: early in training it already separates easy from hard examples. The
round(keep x N) examples with the highest scores are kept (ties: lower index first); `offset`
skips that fraction of the very hardest first (the paper's remedy at aggressive pruning, where
the hardest examples are often mislabelled or ambiguous)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import positive_int
from ...core.config_base import config_schema
from . import DataPruningContext, ScoreOffsetConfig, Selection, keep_highest, register_data_pruning


@config_schema("data_pruning", "el2n")
@dataclass
class EL2NDataPruningConfig(ScoreOffsetConfig):
    """Keep the examples with the largest EL2N score averaged over proxy models."""

    proxies: int = 4  # independently trained proxy models (the paper averages 10)
    proxy_epochs: int = 5  # epochs of each proxy (the run's train options otherwise)

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """Each proxy trains `proxy_epochs` epochs with the train config."""
        return node.proxy_epochs

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, key + ".proxies")
        positive_int(cfg, key + ".proxy_epochs")


def el2n_scores(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||softmax(logits) - onehot(y)||_2 per example."""
    probs = torch.softmax(logits.double(), dim=1)
    return (probs - torch.nn.functional.one_hot(y, probs.shape[1]).double()).norm(dim=1)


@register_data_pruning("el2n")
def el2n(ctx: DataPruningContext, node: DictConfig) -> Selection:
    x, y = ctx.data.train_x, ctx.data.train_y

    def compute() -> torch.Tensor:
        scores = torch.zeros(len(y), dtype=torch.float64)
        for i in range(node.proxies):
            scores += el2n_scores(ctx.logits(ctx.train_proxy(i, node.proxy_epochs), x), y).cpu()
        return scores / node.proxies

    # the scores do not depend on keep/offset: a sweep over them trains the proxies once
    scores = ctx.cached("el2n", {"proxies": node.proxies, "proxy_epochs": node.proxy_epochs}, compute, shape=(len(y),))
    return keep_highest(ctx, node, scores, "el2n")
