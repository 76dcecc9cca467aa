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
    # every weight pruned (method.allow_collapse=true): 474 / 0 is inf, not the dense count 474 (audit 2026-12-04)
    with torch.no_grad():
        net.conv.weight.zero_()
        net.fc.weight.zero_()
    layers = layer_table(net, prunable, (1, 5, 5))
    assert sum(r["flops_sparse"] for r in layers) == 0
    m = {r["metric"]: r["value"] for r in model_cost_metrics(net, prunable, layers)}
    assert m["theoretical_speedup"] == float("inf")


class _SequenceAndSharedLayers(torch.nn.Module):
    """A Linear applied at every position of a length-6 sequence, and one Linear called twice."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(8, 16)  # (6, 8) -> (6, 16): applied 6 times per example
        self.shared = torch.nn.Linear(16, 16)  # called twice on the pooled vector
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        h = self.embed(x).mean(dim=1)
        return self.head(self.shared(torch.relu(self.shared(h))))


def test_flops_count_every_position_and_every_call_of_a_linear_layer():
    """output_positions said 1 for every Linear and kept the last call only: a Linear over a sequence of
    6 was counted once (128 MACs instead of 768), a Linear called twice once (256 instead of 512). Hand
    count: params x applications per example."""
    net = _SequenceAndSharedLayers()
    with torch.no_grad():
        net.shared.weight[:8] = 0  # half of shared's weights pruned
    rows = {r["layer"]: r for r in layer_table(net, ["embed.weight", "shared.weight", "head.weight"], (6, 8))}
    assert {k: r["flops_dense"] for k, r in rows.items()} == {"embed": 8 * 16 * 6, "shared": 16 * 16 * 2, "head": 16 * 3}
    assert rows["shared"]["flops_sparse"] == 8 * 16 * 2


def test_a_layer_forward_never_calls_costs_no_flops():
    """A (plugin) model with a Linear its forward never uses: layer_table failed with KeyError on it.
    Its weights are counted (they are parameters) and cost no FLOPs; the used layer's FLOPs are by hand
    3 x 4 = 12 per example."""
    from torch import nn

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(3, 4), nn.Linear(5, 6)

        def forward(self, x):
            return self.used(x)

    rows = {r["layer"]: r for r in layer_table(Unused(), ["used.weight", "spare.weight"], (3,))}
    assert rows["used"]["flops_dense"] == 12 and rows["spare"]["flops_dense"] == 0 and rows["spare"]["params"] == 30
