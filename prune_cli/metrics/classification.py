"""Accuracy, top-5, loss, expected calibration error, and per-class recall / precision / support
from one evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..training import Evaluation

# Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks" (ICML 2017), Section 2:
# M = 15 equal-width bins of the maximum softmax probability.
ECE_BINS = 15


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C[i, j] = number of examples of true class i predicted as j."""
    return torch.bincount(targets * num_classes + predictions, minlength=num_classes**2).view(num_classes, num_classes)


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)| (Guo et al. 2017, eq. 3), where B_m holds the
    examples whose confidence (max softmax probability) lies in ((m - 1) / M, m / M]; a confidence of
    exactly 0 goes to the first bin. NaN for no example."""
    confidence = confidence.double().flatten()
    correct = correct.double().flatten()
    n = len(confidence)
    if n == 0:
        return float("nan")
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    conf_sum = torch.bincount(index, weights=confidence, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    return float((conf_sum - correct_sum).abs().sum() / n)  # |B_m| |acc - conf| = |sum correct - sum conf|


def classification_metrics(ev: Evaluation, num_classes: int, split: str) -> tuple[list[dict], list[dict]]:
    """(scalar rows, per-class rows). Recall of a class with no example and precision of a class
    never predicted are NaN (undefined), not 0. With the evaluation's confidences (max softmax
    probability per example) an `ece` row is added."""
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
        scalars.append({"split": split, "metric": "top5_accuracy", "value": float(ev.top5_correct.double().mean())})
    if ev.confidence is not None:
        ece = expected_calibration_error(ev.confidence, ev.predictions == ev.targets)
        scalars.append({"split": split, "metric": "ece", "value": ece})
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
