"""What the timing metrics time (prune_cli/metrics/latency.py, prune_cli/metrics/speedup.py), and the
dry run that measures layer shapes (prune_cli/models/base.py `traced_forward`):
- under accel.channels_last=true the timed batch is NHWC like the run's evaluation (it was NCHW
  beside NHWC models: docs/performance.md, the accel table);
- with metrics.speedup.warmup=0 the dense model gets one untimed call before timing, as every
  path does in its output check (its first timed call was the only cold one);
- the dry run feeds zeros in the model's dtype: `layer_table` of a float64 model crashed."""

from __future__ import annotations

import copy

import torch
from omegaconf import OmegaConf

from prune_cli.core.accel import Accel
from prune_cli.data.splits import DataSplits
from prune_cli.metrics import METRICS
from tests.helpers import TinyConvChain, metric_context


def _conv_context(tmp_path, accel=None):
    torch.manual_seed(0)
    model = TinyConvChain().eval()
    dense = copy.deepcopy(model)
    with torch.no_grad():  # an unstructured half of every layer's weights
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(torch.rand_like(p) < 0.5)
    masks = {n: p != 0 for n, p in model.named_parameters() if n.endswith("weight")}
    if accel is not None:
        accel.prepare_model(model)
        accel.prepare_model(dense)
    data = DataSplits(*(torch.randn(12, 4, 6, 6), torch.randint(0, 4, (12,))) * 3, num_classes=4)
    return metric_context(model, data, dense=dense, masks=masks, run_dir=tmp_path, accel=accel), model, dense


def _spy_timed(monkeypatch, *models) -> list[list[bool]]:
    """Per model, per call made while time_models runs (the warm-up and timed calls, not the dry run
    that measures layer shapes): whether its input is NHWC (channels-last and not plain contiguous)."""
    from prune_cli.metrics import latency as latency_module

    timing = [False]
    real = latency_module.time_models

    def timed(*args):
        timing[0] = True
        try:
            return real(*args)
        finally:
            timing[0] = False

    monkeypatch.setattr(latency_module, "time_models", timed)
    seen: list[list[bool]] = []
    for model in models:
        calls: list[bool] = []

        def hook(_m, args, calls=calls):
            if timing[0]:
                x = args[0]
                calls.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())

        model.register_forward_pre_hook(hook)
        seen.append(calls)
    return seen


def test_latency_times_the_channels_last_batch(tmp_path, monkeypatch):
    ctx, model, dense = _conv_context(tmp_path, Accel(channels_last=True))
    seen_model, seen_dense = _spy_timed(monkeypatch, model, dense)
    METRICS.get("latency")(ctx, "pruned", OmegaConf.create({"batch_size": 4, "warmup": 1, "repeats": 2}))
    assert seen_model == [True] * 3 and seen_dense == [True] * 3


def test_speedup_times_the_channels_last_batch(tmp_path, monkeypatch):
    from tests.test_speedup import node

    ctx, model, dense = _conv_context(tmp_path, Accel(channels_last=True))
    seen_model, seen_dense = _spy_timed(monkeypatch, model, dense)
    METRICS.get("speedup")(ctx, "pruned", node(batch_size=4, warmup=1, repeats=2))
    # the dense model: 3 calls per batch size (1 and 4); the run's model also through the paths that copy it
    assert seen_dense == [True] * 6 and len(seen_model) >= 6 and all(seen_model)


def test_without_channels_last_the_timed_batch_keeps_its_layout(tmp_path, monkeypatch):
    ctx, model, dense = _conv_context(tmp_path)
    (seen,) = _spy_timed(monkeypatch, dense)
    METRICS.get("latency")(ctx, "pruned", OmegaConf.create({"batch_size": 4, "warmup": 0, "repeats": 1}))
    assert seen == [False]


def test_with_warmup_zero_the_dense_model_is_called_once_before_timing(tmp_path, monkeypatch):
    """Counted by a spy: the dense model's calls when time_models starts (warmup=0: it times at once)."""
    from prune_cli.metrics import latency as latency_module
    from tests.test_speedup import node

    ctx, model, dense = _conv_context(tmp_path)
    calls: list[int] = []
    dense.register_forward_pre_hook(lambda _m, _a: calls.append(1) and None)
    at_start: list[int] = []
    real = latency_module.time_models

    def spy(models, x, warmup, repeats):
        at_start.append(len(calls))
        return real(models, x, warmup, repeats)

    monkeypatch.setattr(latency_module, "time_models", spy)
    METRICS.get("speedup")(ctx, "pruned", node(batch_size=4, warmup=0, repeats=1))
    # batch size 1: one untimed call, then one timed; batch size 4: one more untimed call before timing
    assert at_start == [1, 3] and len(calls) == 4


def test_layer_table_of_a_float64_model_equals_the_float32_counts():
    from prune_cli.metrics.cost import layer_table
    from prune_cli.models.base import output_positions

    torch.manual_seed(0)
    model = TinyConvChain()
    prunable = [f"{n}.weight" for n, _ in model.prunable_layers()]
    expected = layer_table(model, prunable, (4, 6, 6))
    double = copy.deepcopy(model).double()
    assert layer_table(double, prunable, (4, 6, 6)) == expected
    # independent count: output positions per layer of TinyConvChain on 6x6 (padding 1: 6x6; fc: 1)
    assert output_positions(double, (4, 6, 6)) == {"c1": 36, "c2": 36, "fc": 1}
