"""Benchmark: a small sweep (3 methods x 4 sparsities x 1 seed) with and without the dense cache.

Both sweeps run in this process through the same entry point (`prune_cli.run.experiment.run` on
configs composed exactly as `prune-run` composes them); the ratio of their wall-clock times is the
speed-up the cache gives a sweep. With the cache, one dense model is trained and 11 runs load it.

    python scripts/bench_dense_cache.py [--epochs 20] [--dataset mnist1d]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

import prune_cli.cli  # noqa: F401  (registers the schemas and the run_id resolver)
from prune_cli.run.prevalidate import validate
from prune_cli.run.experiment import run
from prune_cli.core.identity import run_id

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
METHODS = ("magnitude", "random", "magnitude_layerwise")
SPARSITIES = (0.5, 0.8, 0.9, 0.95)


def sweep(results: Path, cache: bool, epochs: int, dataset: str) -> float:
    start = time.perf_counter()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for method in METHODS:
            for sparsity in SPARSITIES:
                overrides = [
                    f"dataset={dataset}",
                    f"train.epochs={epochs}",
                    "finetune.epochs=2",
                    f"sparsity={sparsity}",
                    f"results_dir={results}",
                    f"dense_cache.enabled={cache}",
                ]
                if method == "magnitude_layerwise":
                    overrides += ["method=magnitude", "method.allocation=layerwise", "name=layerwise"]
                else:
                    overrides += [f"method={method}"]
                cfg = compose(config_name="config", overrides=overrides)
                validate(cfg)
                run(cfg, results / "runs" / run_id(cfg))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="dense training epochs")
    ap.add_argument("--dataset", default="mnist1d")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        without = sweep(Path(tmp) / "no_cache", False, args.epochs, args.dataset)
        with_cache = sweep(Path(tmp) / "cache", True, args.epochs, args.dataset)
    n = len(METHODS) * len(SPARSITIES)
    print(
        f"sweep of {n} runs ({len(METHODS)} methods x {len(SPARSITIES)} sparsities x 1 seed), "
        f"{args.dataset}, {args.epochs} dense epochs + 2 fine-tuning epochs each"
    )
    print(f"without dense cache: {without:.1f} s; with dense cache: {with_cache:.1f} s")
    print(f"speed-up with the cache = {without / with_cache:.2f}x")


if __name__ == "__main__":
    main()
