"""`data_pruning=drop`: DRoP, the fairness-aware rule of Vysogorets, Ahuja and Kempe, "Robust Data
Pruning" (distributionally robust pruning).

A query model (the run's architecture, trained on the full training split for `query_epochs`
epochs) gives each class's error rate on the validation split, e_k = 1 - recall_k. The fraction of
class k kept (its density) is proportional to e_k (the paper's Algorithm 1), so the number kept is
proportional to N_k e_k: quota_k = Z N_k e_k / sum_j N_j e_j with Z = round(keep x N), capped at the
class's size N_k, the surplus of capped classes shared among the others in the same proportion until
none overflows (`water_fill`; Algorithm 1's saturated classes). Examples are drawn at random within a
class. Harder classes thus keep more of their data, which the paper shows raises
worst-class accuracy at a tolerable cost in average accuracy. With no validation split the errors
are measured on the training split (logged, and written in data_pruning.csv's `error_split`), and so
is the error of a class that has no validation example (a long-tailed class of a few examples, whose
share round(val_fraction x n) is 0: weighting it 0 would drop the whole class, the opposite of what
the rule is for); if the query model makes no error at all the quotas fall back to class-balanced
(equal weights)."""

from __future__ import annotations

from fractions import Fraction

import logging
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import positive_int
from ...core.config_base import config_schema
from . import DataPruningContext, KeepFractionConfig, Selection, class_rows, random_within_classes, register_data_pruning, water_fill

log = logging.getLogger(__name__)


@config_schema("data_pruning", "drop")
@dataclass
class DRoPDataPruningConfig(KeepFractionConfig):
    """Per-class keep ratios from a query model's per-class validation error, random within a class."""

    query_epochs: int = 5  # epochs of the query model (the run's train options otherwise)

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """Each query model trains `query_epochs` epochs with the train config."""
        return node.query_epochs

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, key + ".query_epochs")


def class_errors(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[float]:
    """1 - recall per class (NaN for a class without examples)."""
    pred = logits.argmax(dim=1).cpu()
    y = y.cpu()
    out = []
    for c in range(num_classes):
        mask = y == c
        out.append(float((pred[mask] != c).double().mean()) if bool(mask.any()) else float("nan"))
    return out


def drop_quotas(sizes: list[int], errors: list[float], total: int) -> list[int]:
    """DRoP's per-class quotas: class densities proportional to the error rates (counts to N_k e_k),
    capped at the class sizes. Counts proportional to e_k alone agreed with the paper only for classes
    of equal size. An error is a ratio of counts (wrong / examples of the class), read back as that
    exact fraction (denominators up to 10^7 are recovered exactly from the float), so N_k e_k is exact
    and an exact tie goes to the lower class index as `water_fill` promises: float products broke it."""
    weights = [Fraction(0) if e != e else n * Fraction(float(e)).limit_denominator(10**7) for n, e in zip(sizes, errors)]  # NaN: 0
    if sum(weights) <= 0:
        log.warning("data_pruning=drop: the query model made no error on any class; keeping classes balanced")
        weights = [1.0] * len(sizes)
    return water_fill(sizes, weights, total)


@register_data_pruning("drop")
def drop(ctx: DataPruningContext, node: DictConfig) -> Selection:
    data = ctx.data
    in_val = torch.bincount(data.val_y.cpu(), minlength=data.num_classes) > 0
    splits = ["val" if bool(v) else "train" for v in in_val]
    if not bool(in_val.any()):
        log.warning("data_pruning=drop: no validation split, so class errors are measured on the training split")
    elif not bool(in_val.all()):
        missing = [c for c, v in enumerate(in_val.tolist()) if not v]
        log.warning("data_pruning=drop: classes %s have no validation example; their errors come from the training split", missing)

    def compute() -> torch.Tensor:
        query = ctx.train_proxy(0, node.query_epochs)
        on = {}
        for split in sorted(set(splits)):  # the validation split, and the training split where it is needed
            x, y = data.split(split)
            on[split] = class_errors(ctx.logits(query, x), y, data.num_classes)
        return torch.tensor([on[split][c] for c, split in enumerate(splits)], dtype=torch.float64)

    # float64 (the key's "errors" entry keeps float32 entries of earlier versions, which moved a quota by
    # one example at exact ties, from being read)
    key = {"query_epochs": node.query_epochs, "error_splits": splits, "errors": "float64"}
    errors = ctx.cached("drop", key, compute, shape=(len(splits),)).tolist()
    y = data.train_y.cpu()
    sizes = torch.bincount(y, minlength=data.num_classes).tolist()
    quotas = drop_quotas(sizes, errors, ctx.kept_count(node.keep))
    kept = random_within_classes(y, quotas, ctx.generator)
    rows = class_rows(y, kept, data.num_classes, query_error=errors, quota=quotas, error_split=splits)
    return Selection(kept, rows)
