"""Classification metrics and cost metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from prune_cli.metrics import classification_metrics, layer_table, model_cost_metrics
from prune_cli.training import Evaluation
from tests.helpers import TinyConvPool


def test_classification_metrics_by_hand():
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 0, 0])
    scalars, per_class = classification_metrics(Evaluation(preds, targets, None, 0.7), 4, "test")
    values = {r["metric"]: r["value"] for r in scalars}
    assert values["accuracy"] == pytest.approx(3 / 6)
    assert values["loss"] == 0.7
    assert "top5_accuracy" not in values
    pc = {r["class"]: r for r in per_class}
    assert pc[0]["recall"] == pytest.approx(2 / 3) and pc[0]["precision"] == pytest.approx(2 / 4)
    assert pc[1]["recall"] == pytest.approx(1 / 2) and pc[1]["precision"] == pytest.approx(1 / 2)
    assert pc[2]["recall"] == 0 and math.isnan(pc[2]["precision"])  # never predicted
    assert math.isnan(pc[3]["recall"]) and pc[3]["support"] == 0  # no example


def test_flops_and_counts_by_hand():
    net = TinyConvPool()
    with torch.no_grad():
        net.conv.weight.view(-1)[:9] = 0  # first filter entirely zero: 9 of 18 weights
        net.fc.weight[0] = 0  # 8 of 24
    prunable = ["conv.weight", "fc.weight"]
    layers = layer_table(net, prunable, (1, 5, 5))
    conv, fc = layers
    assert conv["flops_dense"] == 2 * 1 * 9 * 25 and conv["flops_sparse"] == 9 * 25
    assert fc["flops_dense"] == 24 and fc["flops_sparse"] == 16
    assert conv["density"] == 0.5 and fc["nonzero"] == 16
    m = {r["metric"]: r["value"] for r in model_cost_metrics(net, prunable, layers)}
    total = 18 + 2 + 24 + 3  # weights + biases
    assert m["params_total"] == total and m["params_prunable"] == 42
    assert m["sparsity_prunable"] == pytest.approx(17 / 42)
    assert m["sparsity_total"] == pytest.approx(17 / total)
    assert m["compression_ratio"] == pytest.approx(total / (total - 17))
    assert m["theoretical_speedup"] == pytest.approx((450 + 24) / (225 + 16))
