"""`data_pruning=class_balanced`: the same number of examples from every class (random within a
class); a class with fewer examples than its share keeps them all and the rest is shared among the
other classes (water-filling, `water_fill`). On a long-tailed training set this rebalances the
classes, the random baseline with "appropriate class ratios" of Vysogorets, Ahuja and Kempe,
"Robust Data Pruning"."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import check
from ...core.config_base import config_schema, declared_train_examples
from ...core.errors import ConfigError
from . import (
    DataPruningContext,
    KeepFractionConfig,
    Selection,
    class_rows,
    kept_examples,
    random_within_classes,
    register_data_pruning,
    water_fill,
)


@config_schema("data_pruning", "class_balanced")
@dataclass
class ClassBalancedDataPruningConfig(KeepFractionConfig):
    """Equal per-class counts (as far as the classes' sizes allow), random within a class."""

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """No model is trained to choose the examples."""
        return 0

    @staticmethod
    def check_training_split(cfg: DictConfig, examples: int, exact: bool) -> None:
        """KeepFractionConfig's check, and a keep too small for one example of every class: round(keep x N)
        below the number of classes that have training examples leaves some of them none, so the counts are
        not equal (prune_cli/run/prevalidate.py `check_data_sizes`, before any work; from the dataset's
        declared per-class counts where they are exact, otherwise `check_every_class_kept` once loaded)."""
        KeepFractionConfig.check_training_split(cfg, examples, exact)
        spec = declared_train_examples(cfg.dataset)
        if not exact or spec is None:
            return
        from ..splits import planned_train_counts

        try:
            counts, exact_counts = planned_train_counts(cfg.dataset, *spec)
        except ConfigError:  # a split that leaves a class nothing: the pre-run pass refuses it
            return
        if exact_counts and sum(counts) == examples:
            check_every_class_kept(cfg.data_pruning.keep, counts)


def smallest_keep_for(classes: int, examples: int) -> float:
    """The smallest keep of 6 decimals with kept_examples(keep, N) >= `classes` (about (classes - 0.5) / N)."""
    k = max(1, math.floor((classes - 0.5) / examples * 1e6) - 2)
    while k < 1_000_000 and kept_examples(k / 1e6, examples) < classes:
        k += 1
    return k / 1e6


def check_every_class_kept(keep: float, counts: list[int]) -> None:
    """A ConfigError naming data_pruning.keep when the round(keep x N) examples kept are fewer than the
    classes that have training examples (`counts`, per class): water_fill would give some class none."""
    classes, examples = sum(1 for n in counts if n > 0), sum(counts)
    kept = kept_examples(keep, examples)
    check(
        kept >= classes,
        "data_pruning.keep",
        keep,
        f"a fraction that keeps at least one example of each of the {classes} classes with training examples: "
        f"round(keep x {examples}) keeps {kept}, so data_pruning=class_balanced would leave "
        f"{classes - kept} {'class' if classes - kept == 1 else 'classes'} without any and its per-class counts unequal; "
        f"keep >= {smallest_keep_for(classes, examples):.6f} keeps one of each",
    )


@register_data_pruning("class_balanced")
def class_balanced(ctx: DataPruningContext, node: DictConfig) -> Selection:
    y = ctx.data.train_y.cpu()
    sizes = torch.bincount(y, minlength=ctx.data.num_classes).tolist()
    check_every_class_kept(node.keep, sizes)  # where the declared counts left it open (a random subset), before training
    quotas = water_fill(sizes, [1.0] * len(sizes), ctx.kept_count(node.keep))
    kept = random_within_classes(y, quotas, ctx.generator)
    return Selection(kept, class_rows(y, kept, ctx.data.num_classes, quota=quotas))
