"""Checks the results folder of `prune-run device=cuda metrics=full` (step 2 of scripts/gpu_check.sh).

A metric that fails on CUDA tensors stops the run, so the run's exit status already covers crashes;
this checks what a run could get wrong without crashing: that it recorded the device it ran on, that
every value is finite, that each family of metrics in `metrics=full` wrote its rows (the same
families a CPU run writes: the table of metrics under `metrics` in README.md, "Config reference"),
and that the per-class and region tables are there.
It prints the headline values, to compare with a CPU run of the same command.

    python scripts/check_gpu_run.py RESULTS_DIR
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from script_args import require_runs

# One metric of each family that `metrics=full` records on the default MLP (a CPU run records all of them).
FAMILIES = {
    "accuracy": "accuracy",
    "per-class recall": "worst_class_recall",
    "parameters and FLOPs": "flops_sparse",
    "Hessian spectrum": "hessian_top_eig_1",
    "latency": "latency_ms",
    "membership inference": "mia_loss_auc",
    "NTK": "ntk_rel_dist_dense",
    "fundamental limit": "limit_rho_hat",
    "linear regions": "regions_line_mean",
    "region bounds": "regions_line_bound_ln_expected_binomial",
    "recall distortion": "I_t",
    "representation similarity": "cka_linear_mean",
    "sparse execution": "speedup_best_batch1",
}
HEADLINE = ["accuracy", "worst_class_recall", "hessian_top_eig_1", "ntk_rel_dist_dense", "regions_line_mean", "mia_loss_auc"]


def problems(results: Path) -> list[str]:
    """Everything wrong with the folder, one line each (empty: the run is fine)."""
    runs = pd.read_csv(results / "runs.csv")
    found = []
    devices = sorted(set(runs.device.astype(str)))
    if not devices or any(not d.startswith("cuda") for d in devices):
        found.append(f"runs.csv device column is {devices}, expected cuda")
    bad = runs[[not math.isfinite(float(v)) for v in runs.value]]
    found += [f"non-finite value: {r.phase}/{r.split}/{r.metric} = {r.value}" for r in bad.itertuples()]
    recorded = set(runs.metric)
    found += [f"no {family} row ({metric})" for family, metric in FAMILIES.items() if metric not in recorded]
    for table in ("per_class.csv", "regions.csv"):
        if not (results / table).is_file() or pd.read_csv(results / table).empty:
            found.append(f"{table} is missing or empty")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="the run's results_dir")
    results = ap.parse_args().results
    require_runs(ap, results, "results")
    runs = pd.read_csv(results / "runs.csv")
    finetuned = runs[(runs.phase == runs.phase.iloc[-1]) & runs.metric.isin(HEADLINE)]
    print(finetuned[["phase", "split", "metric", "value"]].to_string(index=False))
    print(f"{len(runs)} rows, {runs.metric.nunique()} metrics, device {sorted(set(runs.device.astype(str)))}")
    found = problems(results)
    for line in found:
        print(f"check_gpu_run: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
