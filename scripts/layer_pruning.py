"""Layer pruning during training on MNIST-1D (issue 13 evidence; docs/training_time.md).

Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks" (2024), claim
that irrelevant residual sections can be identified and removed early in training at little cost in
accuracy. A residual MLP (`model=res_mlp`) is trained with `schedule=layer_pruning` for each penalty
and seed; the table lists which sections were removed (and in which epoch), the FLOPs saving
(1 - flops_sparse / flops_dense of the final network) and test accuracy against the dense res_mlp
trained from the same initialisation without layer pruning.

    python scripts/layer_pruning.py --results-dir results/layer_pruning
    python scripts/layer_pruning.py --results-dir results/layer_pruning --table-only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def run(results_dir: Path, args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "prune_cli.cli", "-m", f"results_dir={results_dir}", "dataset=mnist1d", "model=res_mlp"]
    cmd += [f"model.width={args.width}", f"model.blocks={args.blocks}", f"train.epochs={args.epochs}", "schedule=layer_pruning"]
    cmd += [f"schedule.penalty={args.penalties}", f"schedule.prune_epochs={args.prune_epochs}", f"seed={args.seeds}"]
    cmd += ["metrics.regions.enabled=false", *args.overrides]
    print("running:", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def table(results_dir: Path) -> pd.DataFrame:
    import yaml

    rows = []
    for run_dir in sorted((results_dir / "runs").iterdir()):
        if not (run_dir / "COMPLETE").exists() or not (run_dir / "layer_pruning.csv").exists():
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        sections = pd.read_csv(run_dir / "layer_pruning.csv")
        m = pd.read_csv(run_dir / "metrics.csv").set_index(["phase", "split", "metric"]).value
        gone = sections[sections.removed]
        rows.append(
            {
                "penalty": cfg["schedule"]["penalty"],
                "seed": cfg["seed"],
                "removed": " ".join(f"{int(r.section)}@e{int(r.epoch_removed)}" for r in gone.itertuples()) or "-",
                "n_removed": len(gone),
                "flops_saving": 1 - m[("finetuned", "model", "flops_sparse")] / m[("finetuned", "model", "flops_dense")],
                "dense_acc": m[("dense", "test", "accuracy")],
                "pruned_acc": m[("pruned", "test", "accuracy")],
                "finetuned_acc": m[("finetuned", "test", "accuracy")],
            }
        )
    return pd.DataFrame(rows).sort_values(["penalty", "seed"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "layer_pruning")
    p.add_argument("--penalties", default="0.2,0.3,0.4,0.5")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--prune-epochs", type=int, default=4)
    p.add_argument("--table-only", action="store_true", help="only read the CSVs of an earlier run")
    p.add_argument("overrides", nargs="*", help="extra prune-run overrides")
    args = p.parse_args()
    if not args.table_only:
        run(args.results_dir.resolve(), args)
    t = table(args.results_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(t.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        summary = t.groupby("penalty")[["n_removed", "flops_saving", "dense_acc", "finetuned_acc"]].agg(["mean", "std"])
        print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
