"""Cost of the region counts that every run now writes (issue 13), as a ratio to the same run
without them, measured end to end with `prune-run` in subprocesses, interleaved and repeated.

For each setting (the default MNIST-1D run and the tests' FAST synthetic run) it runs
`prune-run` with the default metrics and with `metrics.regions.enabled=false` (the baseline), once
each untimed, then alternating the order (scripts/script_timing.py), `--repeats` times each (dense
cache off, fresh results folder each time), and prints the median wall times, their ratio, the
counting time the run itself logged (sum of regions.csv `wall_s`, which excludes the bounds) and the
load average before and after.

`--in-process` reports an absolute time instead: the metric timed on a finished run's models (one
untimed call, then the repeats), with its share of one end-to-end run's wall time (that run not
repeated); no baseline is timed beside it. `--only bounds` times the rank models of the expected
bound against the binomial one (the default), interleaved.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench_regions_default.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd
from script_args import description, positive_int
from script_timing import interleaved, print_load, repeats_note, rounds

FAST = [
    "dataset=synthetic",
    "dataset.samples_per_class=60",
    "dataset.test_samples_per_class=30",
    "model=mlp",
    "model.widths=[16,16]",
    "train.epochs=2",
    "finetune.epochs=1",
    "train.batch_size=32",
    "finetune.batch_size=32",
]
SETTINGS = {"default (MNIST-1D, mlp 256-256)": [], "FAST (synthetic, mlp 16-16)": FAST}


def run_once(args: list[str], regions: bool) -> tuple[float, float]:
    """Wall time of one prune-run, and the counting time it logged in regions.csv."""
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        cmd = [sys.executable, "-m", "prune_cli.cli", *args, f"results_dir={results}", "dense_cache.enabled=false"]
        if not regions:
            cmd.append("metrics.regions.enabled=false")
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp)
        wall = time.perf_counter() - start
        tables = list(results.glob("runs/*/regions.csv"))
        counted = float(pd.read_csv(tables[0]).wall_s.sum()) if tables else 0.0
    return wall, counted


def in_process_cost(overrides: list[str], repeats: int) -> tuple[float, float]:
    """(median seconds of the default regions metric over the three phases, the run's wall time):
    one prune-run without region counts, then the metric timed in this process on the run's saved
    dense/pruned/fine-tuned models and data: an absolute cost, less sensitive to the machine's load
    than the difference of two end-to-end runs."""
    import torch
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (resolvers, plugin source)
    from prune_cli.data import DATASETS, build_splits
    from prune_cli.metrics import MetricContext
    from prune_cli.metrics.regions import regions
    from prune_cli.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        cmd = [sys.executable, "-m", "prune_cli.cli", *overrides, f"results_dir={results}", "dense_cache.enabled=false"]
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "metrics.regions.enabled=false"],
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=tmp,
        )
        wall = time.perf_counter() - start
        (run_dir,) = (results / "runs").iterdir()
        repo = Path(prune_cli.__file__).resolve().parent.parent
        with initialize_config_dir(config_dir=str(repo / "configs"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, f"results_dir={results}"])
        data = build_splits(DATASETS.get(cfg.dataset.name)(cfg.dataset), cfg.dataset, cfg.seed, torch.device("cpu"))
        models = []
        for phase in ("dense", "pruned", "finetuned"):
            model = build_model(cfg.model, data.input_shape, data.num_classes)
            model.load_state_dict(torch.load(run_dir / f"model_{phase}.pt", weights_only=True))
            models.append((phase, model))

        def three_phases() -> None:
            for phase, model in models:
                ctx = MetricContext(model, data, {}, (), torch.device("cpu"), cfg.train, run_dir)
                regions(ctx, phase, cfg.metrics.regions)

        times = interleaved({"regions": three_phases}, repeats)  # one untimed call, then the repeats
    return statistics.median(times["regions"]), wall


def bound_costs(repeats: int, widths: tuple[int, ...] = (256, 256)) -> None:
    """In-process: the expected bound's rank models on the default MLP (40-256-256-10; `widths` are
    its hidden widths), dense and at 10 % density, interleaved; the binomial model is the default,
    the Monte-Carlo one is in metrics=full. The Monte-Carlo rank distributions are memoised per
    layer shape, density and seed (bounds._MC_CACHE); the cache is emptied before each timed call, so
    every repeat times the sampling (a run computes each once per process and layer shape)."""
    import torch
    from omegaconf import OmegaConf

    from prune_cli.analysis.regions import bounds
    from prune_cli.metrics.regions import bound_columns
    from prune_cli.models.mlp import MLP

    torch.manual_seed(0)
    model = MLP(40, list(widths), 10)
    pruned = MLP(40, list(widths), 10)
    pruned.load_state_dict(model.state_dict())
    with torch.no_grad():
        for m in pruned.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(torch.rand_like(m.weight) < 0.1)
    nodes = {
        kind: OmegaConf.create({"include_output_layer": True, "rank_models": [kind], "seed": 0, "mc_sample_factor": 48})
        for kind in ("binomial", "montecarlo")
    }

    def bound(net: torch.nn.Module, kind: str) -> Callable[[], object]:
        def call() -> object:
            bounds._MC_CACHE.clear()  # montecarlo_rank_log_probs memoises per shape and seed: time the computation
            return bound_columns(net, 1, nodes[kind])

        return call

    for label, net in (("dense", model), ("10 % density", pruned)):
        # the baseline (binomial, the default rank model) named before timing; one untimed call each,
        # then rounds in a rotating order
        times = interleaved({kind: bound(net, kind) for kind in ("binomial", "montecarlo")}, repeats)
        b, m = statistics.median(times["binomial"]), statistics.median(times["montecarlo"])
        print(
            f"bounds, default MLP {label}: binomial (baseline) median {b:.3f} s, montecarlo median {m:.3f} s, "
            f"montecarlo / binomial {m / b:.1f}x ({repeats_note(repeats)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--only", choices=["default", "fast", "bounds"], default=None)
    parser.add_argument("--in-process", action="store_true", help="time the metric in this process on a finished run's models")
    args = parser.parse_args()
    print_load("before")
    if args.only in (None, "bounds"):
        bound_costs(args.repeats)
    for label, overrides in SETTINGS.items():
        if args.only and not label.lower().startswith(args.only):
            continue
        if args.in_process:
            cost, wall = in_process_cost(overrides, args.repeats)
            share = 100 * cost / wall
            print(
                f"{label}: regions metric, 3 phases, in process: median {cost:.3f} s ({repeats_note(args.repeats)}; an absolute "
                f"time, no baseline timed beside it); one end-to-end run without it (not repeated) {wall:.2f} s ({share:.2f} %)"
            )
            continue
        on, off, counting = [], [], []
        for regions in (True, False):  # one untimed run of each first (file caches, MNIST-1D generated once)
            run_once(overrides, regions)
        for _, regions in rounds((True, False), repeats=args.repeats):  # the order alternates from round to round
            wall, counted = run_once(overrides, regions)
            (on if regions else off).append(wall)
            if regions:
                counting.append(counted)
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(
            f"{label} ({repeats_note(args.repeats)}): median wall with regions {m_on:.2f} s, without (baseline) {m_off:.2f} s, "
            f"ratio {m_on / m_off:.3f} (+{100 * (m_on / m_off - 1):.1f} %); "
            f"counting logged in regions.csv: median {statistics.median(counting):.3f} s "
            f"({100 * statistics.median(counting) / m_off:.2f} % of the run); runs on={[round(t, 2) for t in on]} "
            f"off={[round(t, 2) for t in off]}"
        )
    print_load("after")


if __name__ == "__main__":
    main()
