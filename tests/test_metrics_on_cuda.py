"""Every metric of `metrics=full` records the same values on a GPU as on the CPU (run by
scripts/gpu_check.sh; skipped without a GPU).

The metrics draw their samples, probes, segments and shuffles from CPU generators of their own
(prune_cli/metrics/*.py), so what they draw does not depend on the device, and a model with the same
weights on both devices must give the same values up to floating-point summation order. With no
training (`train.epochs=0 finetune.epochs=0`) the dense model is the seeded initialisation, built on
the CPU in both runs (prune_cli/run/experiment.py), and magnitude pruning then keeps the same weights.
So the whole experiment runs once per device and every row of runs.csv is compared, except the
timings (latency and measured speedup), whose names must still match.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import compose

TIMINGS = re.compile(r"^(latency|measured_speedup|speedup_)")


def recorded_values(results: Path, device: str, data_cache: Path) -> pd.Series:
    """runs.csv's values of the untrained default experiment with every metric, run on `device`,
    indexed by (phase, split, metric)."""
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    overrides = ["metrics=full", "train.epochs=0", "finetune.epochs=0", "dense_cache.enabled=false", f"dataset.cache_dir={data_cache}"]
    cfg = compose([*overrides, f"device={device}"], results)
    run(cfg, results / "runs" / run_id(cfg))
    runs = pd.read_csv(results / "runs.csv")
    assert set(runs.device.astype(str).str.split(":").str[0]) == {device}
    return runs.set_index(["phase", "split", "metric"]).value


def differences(cpu: pd.Series, gpu: pd.Series, rel: float = 1e-3, abs_: float = 1e-6) -> list[str]:
    """One line per row whose values differ beyond float noise (timings: only their presence)."""
    found = [f"only on the CPU: {k}" for k in cpu.index.difference(gpu.index)]
    found += [f"only on the GPU: {k}" for k in gpu.index.difference(cpu.index)]
    for key in cpu.index.intersection(gpu.index):
        a, b = float(cpu[key]), float(gpu[key])
        if not TIMINGS.match(key[2]) and not math.isclose(a, b, rel_tol=rel, abs_tol=abs_):
            found.append(f"{'/'.join(key)}: cpu {a!r}, gpu {b!r}")
    return found


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")
def test_every_metric_of_metrics_full_records_the_cpu_values_on_a_gpu(tmp_path):
    cpu = recorded_values(tmp_path / "cpu", "cpu", tmp_path / "data")
    gpu = recorded_values(tmp_path / "cuda", "cuda", tmp_path / "data")
    assert len(cpu) > 150  # every phase's rows of every metric (179 for the default experiment)
    found = differences(cpu, gpu)
    assert not found, f"{len(found)} of {len(cpu)} values differ:\n" + "\n".join(found)


def test_the_comparison_names_each_differing_value_and_ignores_timings():
    """The comparison itself (CPU-only): a changed value, a missing row and a timing."""
    keys = [("dense", "test", "accuracy"), ("dense", "model", "latency_ms"), ("pruned", "test", "regions_line_mean")]
    index = pd.MultiIndex.from_tuples(keys)
    cpu = pd.Series([0.5, 1.0, 100.0], index=index)
    gpu = pd.Series([0.5 + 1e-9, 7.0, 101.0], index=index)
    assert differences(cpu, gpu) == ["pruned/test/regions_line_mean: cpu 100.0, gpu 101.0"]
    assert differences(cpu, gpu.iloc[:2]) == ["only on the CPU: ('pruned', 'test', 'regions_line_mean')"]
