"""The structured-sparsity / speedup path: a grouped convolution reading the network input is refused by
compaction with the reason, and the speedup metric reports it as absent (before, it was compacted across
a group boundary without a word, or stopped with a plain ValueError); speedup.csv and latency.csv record
the machine's load, without which a slow timing could not be told from a busy machine; a best sparse
path within the timing noise is not reported as a speedup (a 1.01x path as often slower as faster was);
scripts/bench_speedup.py rotates the order of what it times, keeps every repeat and checks its options
before any work; compaction keeps the channels-last layout of the layers it rebuilds (they came back
NCHW beside NHWC ones)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.models.compact import CompactionError, compact


class _GroupedStem(nn.Module):
    """A plugin-style model whose first layer is a grouped convolution reading the network input."""

    def __init__(self, groups: int):
        super().__init__()
        self.c1 = nn.Conv2d(6 if groups == 3 else 4, 6, 3, groups=groups, padding=1)
        self.act = nn.ReLU()
        self.c2 = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.c2(self.act(self.c1(x)))


@pytest.mark.parametrize("groups, unread", [(2, slice(0, 2)), (3, slice(0, 1))])
def test_a_grouped_convolution_reading_the_network_input_is_refused_with_the_reason(groups, unread):
    """groups=2 with two channels unread was compacted across a group boundary (its output differed
    from the masked model's by up to 0.36, silently); groups=3 with one channel unread raised a plain
    ValueError from nn.Conv2d that the speedup metric did not catch."""
    torch.manual_seed(0)
    model = _GroupedStem(groups)
    with torch.no_grad():
        model.c2.weight[:, unread] = 0
    with pytest.raises(CompactionError, match=f"groups={groups}"):
        compact(model)


def test_the_speedup_metric_reports_a_grouped_input_convolution_as_absent():
    from prune_cli.metrics.speedup import execution_paths

    model = _GroupedStem(3)
    with torch.no_grad():
        model.c2.weight[:, :1] = 0
    masks = {n: (p != 0) for n, p in model.named_parameters() if n.endswith("weight")}
    node = OmegaConf.create({"batch_size": 2, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    _paths, absent = execution_paths(model, masks, node)
    assert "grouped convolution (groups=3)" in absent["compact_dense"]


def _fake_load(monkeypatch, values=(1.25, 2.5, 3.75, 5.0, 6.25, 7.5)):
    """os.getloadavg returning 1-minute averages from `values` in turn (then the last one), so the
    load before and after a timing differ and are known; the other two averages are ignored."""
    import os

    seen = iter(values)
    last = [values[-1]]

    def getloadavg():
        last[0] = next(seen, last[0])
        return (last[0], 0.0, 0.0)

    monkeypatch.setattr(os, "getloadavg", getloadavg)


def test_latency_rows_and_log_record_the_load_and_the_cpu_count(monkeypatch, caplog):
    import copy
    import logging
    import os

    from prune_cli.data.splits import DataSplits
    from prune_cli.metrics import METRICS
    from prune_cli.models.mlp import MLP
    from tests.helpers import metric_context

    torch.manual_seed(0)
    model = MLP(4, [8], 2)
    data = DataSplits(*(torch.randn(20, 4), torch.randint(0, 2, (20,))) * 3, num_classes=2)
    ctx = metric_context(model, data, dense=copy.deepcopy(model))
    _fake_load(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.latency"):
        out = METRICS.get("latency")(ctx, "pruned", OmegaConf.create({"batch_size": 8, "warmup": 1, "repeats": 3}))
    rows = out.tables["latency.csv"]
    assert [(r["load_before"], r["load_after"], r["cpu_count"]) for r in rows] == [(1.25, 2.5, os.cpu_count())] * 2
    assert any("load average 1.25 -> 2.50" in r.getMessage() for r in caplog.records)


def test_speedup_rows_and_log_record_the_load_per_batch_size(monkeypatch, caplog, tmp_path):
    import logging
    import os

    import numpy as np

    from prune_cli.metrics import METRICS
    from prune_cli.metrics import speedup as speedup_module
    from tests.test_speedup import node, pruned_context

    ctx, *_ = pruned_context(tmp_path, "unstructured")
    monkeypatch.setattr(speedup_module, "_time_interleaved", lambda models, inputs, w, r: {n: np.full(r, 1e-3) for n in models})
    _fake_load(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.speedup"):
        out = METRICS.get("speedup")(ctx, "pruned", node())
    loads = {(r["batch_size"], r["load_before"], r["load_after"], r["cpu_count"]) for r in out.tables["speedup.csv"]}
    assert loads == {(1, 1.25, 2.5, os.cpu_count()), (8, 3.75, 5.0, os.cpu_count())}  # absent rows too
    said = [r.getMessage() for r in caplog.records if "batch size" in r.getMessage() and "theoretical" in r.getMessage()]
    assert len(said) == 2 and "load average 1.25 -> 2.50" in said[0] and "load average 3.75 -> 5.00" in said[1]


def test_a_platform_without_a_load_average_gets_nan(monkeypatch):
    import math
    import os

    from prune_cli.metrics.latency import load_average

    monkeypatch.delattr(os, "getloadavg")
    assert math.isnan(load_average())


def test_faster_only_when_the_lower_quartile_of_the_paired_ratios_is_above_one():
    """Numbers fed to the rule, no clock: a median ratio above 1 is not enough."""
    import numpy as np

    from prune_cli.metrics.speedup import beyond_noise

    assert beyond_noise(np.array([1.2, 1.3, 1.1, 1.25, 1.4]))  # faster in every repeat
    assert not beyond_noise(np.array([0.95, 1.02, 1.01, 0.97, 1.03]))  # median 1.01: within noise
    assert not beyond_noise(np.array([0.5, 0.6, 1.5, 1.6, 1.7]))  # median 1.5, slower in 2 of 5 repeats
    assert not beyond_noise(np.array([1.0, 1.0, 1.0]))
    # counted, not interpolated: np.percentile's lower quartile is above 1 for each of these, though
    # the path was slower in 1 of 2, 1 of 3 and 1 of 4 repeats (not "more than three of four")
    assert not beyond_noise(np.array([0.9, 2.0]))
    assert not beyond_noise(np.array([0.95, 1.2, 1.3]))
    assert not beyond_noise(np.array([0.99, 1.1, 1.1, 1.1]))
    assert beyond_noise(np.array([1.01, 1.1, 1.1, 1.1]))  # faster in 4 of 4
    assert beyond_noise(np.array([1.3]))  # one repeat: its ratio
    assert not beyond_noise(np.array([]))


def test_a_best_path_within_the_noise_is_not_reported_as_a_speedup(monkeypatch, caplog, tmp_path):
    """A 4x4 block run logged "best compact_dense 1.01x of theoretical 4.00x" and speedup_best_large =
    1.007 from 5 repeats in which the path was as often slower as faster. Synthetic timings: dense
    2 ms in every repeat, sparse_csr 1.6 ms in 3 repeats and 2.2 ms in 2 (median ratio 1.25, slower in
    2 of 5 paired repeats): no sparse path beats the dense model beyond the noise."""
    import logging

    import numpy as np

    from prune_cli.metrics import METRICS
    from prune_cli.metrics import speedup as speedup_module
    from tests.test_speedup import node, pruned_context

    ctx, *_ = pruned_context(tmp_path, "unstructured")
    per_repeat = {"sparse_csr": [1.6, 2.2, 1.6, 2.2, 1.6]}

    def timing(models, inputs, warmup, repeats):
        return {n: np.array(per_repeat.get(n, [2.0] * repeats)) / 1e3 for n in models}

    monkeypatch.setattr(speedup_module, "_time_interleaved", timing)
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.speedup"):
        out = METRICS.get("speedup")(ctx, "pruned", node(repeats=5))
    values = {s["metric"]: s["value"] for s in out.scalars}
    assert values["speedup_sparse_csr_large"] == pytest.approx(2.0 / 1.6)  # the median ratio is still reported
    assert values["speedup_best_large"] == 1.0 and values["speedup_best_batch1"] == 1.0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("sparse_csr 1.25x (within noise)" in w for w in warned)
    rows = [r for r in out.tables["speedup.csv"] if r["path"] == "sparse_csr"]
    # quartiles of the per-repeat ratios 2/1.6 = 1.25 (x3) and 2/2.2 = 0.909 (x2), computed here
    assert all(r["speedup_q25"] == pytest.approx(np.percentile([1.25] * 3 + [2 / 2.2] * 2, 25)) for r in rows)
    assert all(r["speedup_q75"] == pytest.approx(1.25) for r in rows)
    assert all(r["faster_share"] == pytest.approx(3 / 5) for r in rows)  # faster in 3 of the 5 repeats

    per_repeat["sparse_csr"] = [1.6, 1.6, 2.2, 1.6, 1.6]  # faster in 4 of 5 repeats: lower quartile 1.25
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.speedup"):
        out = METRICS.get("speedup")(ctx, "pruned", node(repeats=5))
    assert {s["metric"]: s["value"] for s in out.scalars}["speedup_best_large"] == pytest.approx(1.25)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def _bench(monkeypatch) -> dict:
    """scripts/bench_speedup.py's namespace (main's globals), loaded without running main."""
    import runpy

    from tests.conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the script imports script_args from its folder
    return runpy.run_path(str(REPO / "scripts" / "bench_speedup.py"), run_name="bench_speedup")["main"].__globals__


def test_bench_speedup_rotates_the_order_and_keeps_every_repeat(monkeypatch):
    """time_interleaved ran the dense model first in every repeat, while metrics/latency.py's
    time_models rotates the order because a fixed order favoured the later (sparse) models."""
    ns = _bench(monkeypatch)
    calls = []

    class Recording(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            return x

    times = ns["time_interleaved"]({"dense": Recording("dense"), "sparse": Recording("sparse")}, torch.zeros(1), 1, 4)
    assert calls[2:] == ["dense", "sparse", "sparse", "dense", "dense", "sparse", "sparse", "dense"]
    assert all(len(t) == 4 for t in times.values())


def test_bench_speedup_reports_the_spread_of_the_paired_ratios(monkeypatch):
    """Synthetic per-repeat times: the median ratio, and the quartiles of the per-repeat ratios."""
    import numpy as np

    ns = _bench(monkeypatch)
    times = {"dense": np.array([2.0, 2.0, 4.0, 2.0]), "sparse_csr": np.array([1.0, 2.0, 1.0, 4.0])}
    stats = ns["ratio_stats"](times)
    ratios = np.array([2.0, 1.0, 4.0, 0.5])
    assert stats["sparse_csr"] == pytest.approx(
        (2.0 / float(np.median([1.0, 2.0, 1.0, 4.0])), np.percentile(ratios, 25), np.percentile(ratios, 75))
    )
    assert "dense" not in stats


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--convnets", "--quick", "--models", "resnet56"], ["--models", "resnet56", "vgg11", "resnet20"]),
        (["--quick", "--models", "vgg11"], ["--models", "--convnets"]),  # was ignored: the MLP benchmark ran
    ],
)
def test_bench_speedup_checks_models_before_any_work(monkeypatch, capsys, tmp_path, argv, said):
    """--models resnet56 with --convnets ended in a pandas KeyError ('measured_speedup') after the
    start-up; --models without --convnets was silently ignored. Both exit 2 with a message, before
    any model is built or anything written."""
    import sys

    ns = _bench(monkeypatch)

    class Started(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Started("the benchmark started")

    for name in ("MLP", "VGG", "CifarResNet"):
        monkeypatch.setitem(ns, name, refuse)
    csv = tmp_path / "out.csv"
    monkeypatch.setattr(sys, "argv", ["bench_speedup.py", *argv, "--csv", str(csv)])
    with pytest.raises(SystemExit) as stopped:
        ns["main"]()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert all(word in err for word in said), err
    assert not csv.exists()


def test_compaction_keeps_the_channels_last_layout_of_the_layers_it_rebuilds():
    """With accel.channels_last=true the model's 4-D weights are NHWC, and the speedup metric times the
    compact model against a dense reference of that layout; the convolutions compact() rebuilt came back
    in the default (NCHW) layout while the untouched ones kept NHWC. Layouts are compared with strides'
    own definition (is_contiguous in a memory format), outputs with the masked model's."""
    from prune_cli.models.vgg import VGG

    torch.manual_seed(0)
    model = VGG([8, "M", 16, 16, "M"], 3, 5).eval()
    with torch.no_grad():
        model.get_submodule("features.4").weight[:, :3] = 0  # channels 0-2 of the first conv are unread
        model.get_submodule("features.7").weight[:, 5:9] = 0  # channels 5-8 of the second conv are unread
    model = model.to(memory_format=torch.channels_last)
    small, report = compact(model)
    assert set(report.units) == {"features.0", "features.4"}
    convs = {n: m for n, m in small.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs.values())
    assert not any(m.weight.is_contiguous() for m in convs.values())  # 3x3 kernels: the two layouts differ
    x = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-5, atol=1e-5)
