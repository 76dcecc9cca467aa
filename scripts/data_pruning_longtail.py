"""Evidence for docs/data_pruning.md: worst-class accuracy of DRoP against random, class-balanced,
EL2N, GraNd and forgetting-score data pruning on long-tailed MNIST-1D (Vysogorets, Ahuja and Kempe,
"Robust Data Pruning": DRoP should raise worst-class recall at some cost in average accuracy).

Runs one `prune-run -m` sweep (rules x seeds, no weight pruning needed for the claim: the dense
phase is compared) into RESULTS and prints, per rule, the mean and standard deviation over seeds
of the dense model's test accuracy, mean-class recall and worst-class recall.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/data_pruning_longtail.py /tmp/dp_longtail --seeds 0,1,2

`--rules grand,forgetting` runs only those rules (and `none`, the full-data reference, only when
listed): runs are deterministic given the config, so rules added later can be run on their own and
compared with an earlier table; rerunning a listed rule checks that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

RULES = "none,random,class_balanced,el2n,grand,forgetting,drop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--keep", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--longtail-ratio", type=float, default=10.0)
    parser.add_argument("--rules", default=RULES, help=f"comma-separated data_pruning rules (default {RULES})")
    args = parser.parse_args()
    common = [
        f"seed={args.seeds}",
        "dataset.imbalance=longtail",
        f"dataset.longtail_ratio={args.longtail_ratio}",
        f"train.epochs={args.epochs}",
        "finetune.epochs=1",
        "metrics.regions.enabled=false",
        "name=dp_longtail",
        f"results_dir={args.results}",
    ]
    # the full training set as the reference (`none` has no `keep`), then the rules at `keep`
    rules = [r for r in args.rules.split(",") if r]
    pruned = ",".join(r for r in rules if r != "none")
    choices = [["data_pruning=none"]] if "none" in rules else []
    choices += [[f"data_pruning={pruned}", f"data_pruning.keep={args.keep}"]] if pruned else []
    for choice in choices:
        cmd = [sys.executable, "-m", "prune_cli.cli", "-m", *choice, *common]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = []
    for run in sorted((args.results / "runs").glob("*/metrics.csv")):
        m = pd.read_csv(run)
        m = m[(m.phase == "dense") & (m.split == "test")]
        rule_file = run.parent / "data_pruning.csv"
        rule = pd.read_csv(rule_file).rule.iloc[0] if rule_file.exists() else "none"
        values = dict(zip(m.metric, m.value))
        rows.append(
            {
                "rule": rule,
                "seed": int(m.seed.iloc[0]),
                **{k: values[k] for k in ("accuracy", "mean_class_recall", "worst_class_recall")},
            }
        )
    table = pd.DataFrame(rows)
    summary = table.groupby("rule")[["accuracy", "mean_class_recall", "worst_class_recall"]].agg(["mean", "std", "count"])
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
