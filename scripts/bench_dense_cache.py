"""Benchmark: a small sweep (3 methods x 4 sparsities x 1 seed) with and without the dense cache.

Each sweep is one `prune-run -m` process (Hydra's basic launcher: the 12 runs one after another, with
prune-run's own thread choice and OpenMP settings), started --repeats times per variant, the two
variants interleaved and their order alternated between repeats (cache first, then without, and so
on: scripts/script_timing.py), after one untimed sweep of each, each in a fresh results_dir. With the
cache, one dense model is trained and the other 11 runs load it; without, every run trains its own.
Printed: the median wall time of each variant, the ratio (median without / median with: the speed-up
the cache gives such a sweep; without the cache is the baseline), each repeat's times, the machine's
load (1-minute load average) before and after the timing and after every sweep, and whether both
variants recorded the same numbers (every run's test accuracy, dense and fine-tuned: a cache hit must
give the run trained from scratch: docs/robustness.md "How", "Random streams"; the cache itself:
README.md "Config reference", `dense_cache`).

The speed-up is bounded by the share of dense training in a run: with --epochs E dense epochs and 2
fine-tuning epochs per run, at most about 12 (E + 2) / (12 * 2 + E) when training dominates.

    PYTHONPATH=$PWD python scripts/bench_dense_cache.py --epochs 20 --repeats 3
    PYTHONPATH=$PWD python scripts/bench_dense_cache.py --epochs 2 --repeats 2 --num-samples 2000   # a few minutes
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

import pandas as pd
from script_args import description, positive_int
from script_timing import print_load, repeats_note, rotated

REPO = Path(__file__).resolve().parent.parent
METHODS = "magnitude,random"  # plus magnitude with layerwise allocation, a third method
SPARSITIES = "0.5,0.8,0.9,0.95"


def sweep_commands(results: Path, cache: bool, epochs: int, dataset: str, num_samples: int | None) -> list[list[str]]:
    """The two `prune-run -m` commands of one sweep (global magnitude and random; layerwise magnitude)."""
    common = [
        f"dataset={dataset}",
        f"train.epochs={epochs}",
        "finetune.epochs=2",
        f"sparsity={SPARSITIES}",
        f"results_dir={results}",
        f"dense_cache.enabled={str(cache).lower()}",
        "method.allow_collapse=true",  # global magnitude may empty a layer at 0.95 after short training: timed all the same
    ]
    if num_samples is not None:
        common.append(f"dataset.num_samples={num_samples}")
    base = [sys.executable, "-m", "prune_cli.cli", "-m", *common]
    return [[*base, f"method={METHODS}"], [*base, "method=magnitude", "method.allocation=layerwise", "name=layerwise"]]


def run_sweep(results: Path, cache: bool, args) -> float:
    """Wall time of one sweep (its two prune-run processes), with the environment prune-run gets."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    for cmd in sweep_commands(results, cache, args.epochs, args.dataset, args.num_samples):
        proc = subprocess.run(cmd, env=env, cwd=results.parent, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def accuracies(results: Path) -> pd.Series:
    """Every run's test accuracy per phase (dense, pruned, finetuned), by run id."""
    table = pd.read_csv(results / "runs.csv")
    rows = table[(table.metric == "accuracy") & (table.split == "test")]
    return rows.set_index(["run_id", "phase"])["value"].sort_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--epochs", type=positive_int, default=20, help="dense training epochs")
    ap.add_argument("--dataset", default="mnist1d")
    ap.add_argument("--num-samples", type=positive_int, default=None, help="dataset.num_samples (MNIST-1D), smaller for a quick run")
    ap.add_argument("--repeats", type=positive_int, default=3)
    args = ap.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for cache in (True, False):  # one untimed sweep of each first: file caches, the dataset generated once
            (Path(tmp) / f"warmup-{'cache' if cache else 'no_cache'}").mkdir()
            run_sweep(Path(tmp) / f"warmup-{'cache' if cache else 'no_cache'}", cache, args)
        print_load("before")
        load = [os.getloadavg()[0]]
        for rep in range(args.repeats):
            recorded = {}
            for cache in rotated((True, False), rep):  # the order alternates from repeat to repeat
                results = Path(tmp) / f"rep{rep}-{'cache' if cache else 'no_cache'}"
                results.mkdir()
                times[cache].append(run_sweep(results, cache, args))
                load.append(os.getloadavg()[0])
                recorded[cache] = accuracies(results)
            same = same and recorded[True].equals(recorded[False])
        print_load("after")
    with_cache, without = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"sweep of 12 runs (magnitude, random, layerwise magnitude x sparsities {SPARSITIES} x seed 0), {args.dataset}, "
        f"{args.epochs} dense epochs + 2 fine-tuning epochs each; {repeats_note(args.repeats)}, interleaved, order alternated; "
        "baseline: without the cache"
    )
    print(f"load average (1 min) {min(load):.1f}-{max(load):.1f} (median {statistics.median(load):.1f}); {os.cpu_count()} CPUs")
    print("without cache, s: " + ", ".join(f"{t:.1f}" for t in times[False]))
    print("with cache, s:    " + ", ".join(f"{t:.1f}" for t in times[True]))
    print(f"medians: without {without:.1f} s, with {with_cache:.1f} s; speed-up with the cache = {without / with_cache:.2f}x")
    print(f"same test accuracies in both variants (every run, every phase): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
