"""Measured inference latency of the dense and the current model on the run's device.

The honest counterpart of `theoretical_speedup`: masks keep dense storage and dense kernels, so a pruned
model usually runs no faster (measured_speedup ~ 1). In a pruned/fine-tuned phase the dense and the
current model are timed alternately in the same process (so drift in clock speed or load affects both
alike); the dense phase times the dense model only. Each model gets `warmup` untimed passes, then
`repeats` timed forward passes of one batch of `batch_size` test inputs under torch.no_grad() in eval
mode (CUDA is synchronised around each pass). Reported: median and 10th/90th percentiles in ms, and
the machine's 1-minute load average just before and just after the timing (`load_before`,
`load_after`; NaN where the platform has none) with its CPU count (`cpu_count`): on a shared machine a
median means little without the load it was taken under, so the load is in every row and in the log.

Cost: (warmup + repeats) forward passes per model per phase. Numbers depend on the machine and its load;
they are measurements to report, never thresholds.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from ..core import interrupts
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric

log = logging.getLogger(__name__)


def load_average() -> float:
    """The machine's 1-minute load average (os.getloadavg), NaN where the platform has none (Windows):
    recorded before and after every timing, because the machine is shared and a median is only
    comparable with others taken under a similar load."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")


def load_columns(before: float, after: float) -> dict:
    """The load columns of latency.csv and speedup.csv: the 1-minute load average before and after the
    timing, and the CPU count it is relative to (a load of 2 saturates 2 CPUs, not 16)."""
    return {"load_before": before, "load_after": after, "cpu_count": os.cpu_count()}


def describe_load(before: float, after: float) -> str:
    """`load average 1.25 -> 2.50 on 16 CPUs`, for the log line with a timing's result."""
    return f"load average {before:.2f} -> {after:.2f} on {os.cpu_count()} CPUs"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_models(models: dict[str, nn.Module], x: torch.Tensor, warmup: int, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per forward pass of each model on x, interleaving the models repeat by repeat. The order
    rotates with the repeat (each of k models first in every k-th repeat): with a fixed order the dense
    model always ran first, so whatever favours the later calls of a repeat (a warm cache, a CPU
    frequency ramp) always favoured the sparse one."""
    modes = {name: m.training for name, m in models.items()}
    for m in models.values():
        m.eval()
    times = {name: np.empty(repeats) for name in models}
    try:
        for _ in range(warmup):
            interrupts.check()  # warm-up passes are safe points too (a long warm-up outlasted SLURM's grace period)
            for m in models.values():
                m(x)
        _sync(x.device)
        order = list(models.items())
        for r in range(repeats):
            interrupts.check()  # a safe point between repeats, outside the timed calls
            shift = r % len(order)
            for name, m in order[shift:] + order[:shift]:
                start = time.perf_counter()
                m(x)
                _sync(x.device)
                times[name][r] = time.perf_counter() - start
    finally:
        for name, m in models.items():
            m.train(modes[name])
    return times


@config_schema("metric", "latency")
@dataclass
class LatencyConfig:
    """Measured inference latency of the dense and the current model (metrics/latency.py)."""

    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    batch_size: int = 128
    warmup: int = 5  # untimed forward passes before timing
    repeats: int = 30  # timed forward passes per model; the median is reported

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.latency
        for name, minimum in (("batch_size", 1), ("warmup", 0), ("repeats", 1)):
            value = node[name]
            if not (isinstance(value, int) and value >= minimum):
                raise ConfigError(f"metrics.latency.{name}", value, f"an integer >= {minimum}")


@register_metric("latency")
def latency(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """latency.csv (one row per timed model) and latency_ms / measured_speedup in metrics.csv."""
    x = ctx.data.test_x[: node.batch_size]
    if len(x) == 0:
        return MetricResult()
    x = ctx.accel.inputs(x)  # timed in the run's layout (accel.channels_last=true: NHWC, like its evaluation)
    models = {"current": ctx.model}
    if phase != "dense" and ctx.has_dense:
        models = {"dense": ctx.dense(), "current": ctx.model}
    before = load_average()
    times = time_models(models, x, node.warmup, node.repeats)
    load = load_columns(before, load_average())
    rows, median = [], {}
    for name, t in times.items():
        ms = t * 1e3
        median[name] = float(np.median(ms))
        rows.append(
            {
                "timed_model": "dense" if phase == "dense" else name,
                "batch_size": len(x),
                "warmup": node.warmup,
                "repeats": node.repeats,
                "median_ms": median[name],
                "p10_ms": float(np.percentile(ms, 10)),
                "p90_ms": float(np.percentile(ms, 90)),
                "threads": torch.get_num_threads(),
                **load,
            }
        )
    scalars = [{"split": "model", "metric": "latency_ms", "value": median["current"]}]
    if "dense" in median:
        scalars += [
            {"split": "model", "metric": "latency_dense_ms", "value": median["dense"]},
            {"split": "model", "metric": "measured_speedup", "value": median["dense"] / median["current"]},
        ]
    measured = "".join(f", {name} {ms:.3g} ms" for name, ms in median.items())
    ratio = f", measured speedup {median['dense'] / median['current']:.2f}x" if "dense" in median else ""
    log.info(
        "latency (%s, batch size %d): median%s%s; %s",
        phase,
        len(x),
        measured.removeprefix(","),
        ratio,
        describe_load(load["load_before"], load["load_after"]),
    )
    return MetricResult(scalars=scalars, tables={"latency.csv": rows})
