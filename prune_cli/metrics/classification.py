"""Accuracy, top-5, loss, and per-class recall / precision / support from one evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..training import Evaluation


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C[i, j] = number of examples of true class i predicted as j."""
    return torch.bincount(targets * num_classes + predictions, minlength=num_classes**2).view(num_classes, num_classes)


def classification_metrics(ev: Evaluation, num_classes: int, split: str) -> tuple[list[dict], list[dict]]:
    """(scalar rows, per-class rows). Recall of a class with no example and precision of a class
    never predicted are NaN (undefined), not 0."""
    cm = confusion_matrix(ev.targets, ev.predictions, num_classes).double()
    correct = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    recall = correct / support  # 0/0 -> nan
    precision = correct / predicted
    scalars = [
        {"split": split, "metric": "accuracy", "value": float(correct.sum() / cm.sum())},
        {"split": split, "metric": "loss", "value": ev.loss},
    ]
    if ev.top5_correct is not None:
        scalars.append({"split": split, "metric": "top5_accuracy", "value": float(ev.top5_correct.float().mean())})
    # Class balance (Vysogorets, Ahuja and Kempe, "Robust Data Pruning"): the average and the worst
    # recall over the classes present in the split (per-class recall is a class's accuracy).
    present = recall[support > 0]
    if len(present):
        scalars.append({"split": split, "metric": "mean_class_recall", "value": float(present.mean())})
        scalars.append({"split": split, "metric": "worst_class_recall", "value": float(present.min())})
    per_class = [
        {"split": split, "class": c, "recall": float(recall[c]), "precision": float(precision[c]), "support": int(support[c])}
        for c in range(num_classes)
    ]
    return scalars, per_class
