"""Latency: rows exist and are positive, dense and current model are both timed (no timing thresholds)."""

from __future__ import annotations

import copy

import torch
from omegaconf import OmegaConf

from prune_cli.data.splits import DataSplits
from tests.helpers import metric_context
from prune_cli.metrics import METRICS
from prune_cli.metrics.latency import time_models
from prune_cli.models.mlp import MLP


def test_time_models_counts_and_restores_mode():
    model = MLP(4, [8], 2).train()
    times = time_models({"a": model}, torch.randn(5, 4), warmup=1, repeats=4)
    assert times["a"].shape == (4,) and (times["a"] > 0).all()
    assert model.training


def test_metric_rows_dense_and_pruned():
    torch.manual_seed(0)
    model = MLP(4, [8], 2)
    data = DataSplits(*(torch.randn(20, 4), torch.randint(0, 2, (20,))) * 3, num_classes=2)
    dense = copy.deepcopy(model)
    exp = metric_context(model, data, dense=dense)
    node = OmegaConf.create({"batch_size": 8, "warmup": 1, "repeats": 3})
    out = METRICS.get("latency")(exp, "dense", node)
    assert [r["timed_model"] for r in out.tables["latency.csv"]] == ["dense"]
    assert [s["metric"] for s in out.scalars] == ["latency_ms"]
    out = METRICS.get("latency")(exp, "pruned", node)
    rows = out.tables["latency.csv"]
    assert [r["timed_model"] for r in rows] == ["dense", "current"]
    assert all(r["median_ms"] > 0 and r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] and r["batch_size"] == 8 for r in rows)
    values = {s["metric"]: s["value"] for s in out.scalars}
    assert set(values) == {"latency_ms", "latency_dense_ms", "measured_speedup"}
    assert all(v > 0 for v in values.values())
    assert values["measured_speedup"] == values["latency_dense_ms"] / values["latency_ms"]


def test_no_model_is_always_timed_first():
    """The dense model ran first in every repeat, so a warm cache or a frequency ramp always favoured the
    second: the order rotates, each of k models first in every k-th repeat (with 2: AB, BA, AB, BA)."""
    calls = []

    class Recording(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            return x

    time_models({"dense": Recording("dense"), "sparse": Recording("sparse")}, torch.zeros(1), warmup=1, repeats=4)
    assert calls[2:] == ["dense", "sparse", "sparse", "dense", "dense", "sparse", "sparse", "dense"]
    calls.clear()
    three = {n: Recording(n) for n in "abc"}
    times = time_models(three, torch.zeros(1), warmup=0, repeats=3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"] and all(len(t) == 3 for t in times.values())
