"""Predicted vs actual one-shot pruning limit of an MLP on MNIST-1D trained with L1
(Zhang et al., "How Sparse Can We Prune A Deep Network", analysis.md section 2).

Runs `prune-run` (the real console entry point, in a subprocess) once per (l1, seed) with
`metrics.pruning_limit.enabled=true`: L1-regularised dense training (constant LR, no weight decay,
as the paper's FC configs), then the prediction (epsilon, SLQ over the whole training split,
R(rho), rho_hat and the trace bounds) and the 1000-ratio one-shot global-magnitude sweep without
fine-tuning. Prints one row per run and writes the table to <results>/pruning_limit_summary.csv.

    PYTHONPATH=. python scripts/pruning_limit_mnist1d.py --results /tmp/limit [--l1 0 5e-5 2e-4] [--seeds 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from script_args import nonnegative_int, nonnegative_number, positive_int, run_or_exit


def run(results: Path, l1: float, seed: int, epochs: int, extra: list[str]) -> None:
    args = [
        "dataset=mnist1d",
        "model=mlp",
        "model.widths=[100,100]",
        f"seed={seed}",
        f"train.l1={l1}",
        f"train.epochs={epochs}",
        "train.lr=0.01",
        "train.lr_schedule=constant",
        "train.weight_decay=0",
        "train.batch_size=128",
        "finetune.epochs=0",
        "metrics.pruning_limit.enabled=true",
        "metrics.pruning_limit.ratios=1000",
        "metrics.pruning_limit.lanczos_iter=128",
        "metrics.pruning_limit.samples=0",
        f"name=limit-l1{l1:g}",
        *extra,
    ]
    cmd = [sys.executable, "-m", "prune_cli.cli", f"results_dir={results}", *args]
    print("$", " ".join(cmd[1:]), flush=True)
    run_or_exit(cmd, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, stdout=subprocess.DEVNULL)


def summary(results: Path) -> pd.DataFrame:
    runs = pd.read_csv(results / "runs.csv")
    dense = runs[runs.phase == "dense"]
    wanted = [
        "limit_eps",
        "limit_trace_hutchinson",
        "limit_trace_abs_slq",
        "limit_rho_hat",
        "limit_rho_hat_bound_abs",
        "limit_rho_hat_bound_hutch",
        "limit_actual_strict",
        "limit_actual_tol_0pp",
        "limit_actual_tol_0.5pp",
        "limit_actual_tol_1pp",
    ]
    rows = []
    for run_id, g in dense.groupby("run_id"):
        v = g.set_index("metric").value
        acc = g[(g.metric == "accuracy") & (g.split == "test")].value.iloc[0]
        name = g.name.iloc[0]
        rows.append(
            {
                "run": name,
                "seed": int(g.seed.iloc[0]),
                "dense_test_acc": round(acc, 4),
                **{k.replace("limit_", ""): v.get(k) for k in wanted},
            }
        )
    return pd.DataFrame(rows).sort_values(["run", "seed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/pruning_limit_mnist1d")
    parser.add_argument("--l1", type=nonnegative_number, nargs="+", default=[0.0, 5e-5, 2e-4])
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=positive_int, default=60)
    parser.add_argument("overrides", nargs="*", help="extra prune-run overrides")
    args = parser.parse_args()
    results = Path(args.results)
    start = time.perf_counter()
    for l1 in args.l1:
        for seed in args.seeds:
            run(results, l1, seed, args.epochs, args.overrides)
    table = summary(results)
    table.to_csv(results / "pruning_limit_summary.csv", index=False)
    pd.set_option("display.width", 250)
    print(table.to_string(index=False))
    print(f"# {time.perf_counter() - start:.0f} s; sweeps in {results}/pruning_limit_sweep.csv")


if __name__ == "__main__":
    main()
