"""LAP vs magnitude pruning at high sparsity on MNIST-1D with an MLP (issue 3 evidence).

One-shot pruning of the trained dense MLP, then fine-tuning, for each method x sparsity x seed,
as Hydra multiruns of prune-run; then a table of mean +- std test accuracy (after pruning and
after fine-tuning) read back from the shared results CSV with pandas. Compared: LAP with its
default per-layer allocation, magnitude with the same per-layer allocation (the LAP paper's
comparison) and magnitude with the project's default global allocation.

    python scripts/lap_vs_magnitude.py --results-dir results/lap_vs_magnitude
    python scripts/lap_vs_magnitude.py --results-dir results/lap_vs_magnitude --table-only

The MLP is widened to [256, 256] hidden units (77k prunable weights) by default: with the
default [100, 100] (15k weights) 98-99.5 % sparsity leaves 75-300 weights and every method is
near chance. Cost: 27 runs of the default MNIST-1D experiment (about 15-20 s each on one core).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's


# (method, allocation) pairs compared; allow_collapse so that a collapsed layer is a data point, not an abort.
SETTINGS = [("lookahead", "layerwise"), ("magnitude", "layerwise"), ("magnitude", "global")]


def run(results_dir: Path, method: str, allocation: str, sparsities: str, seeds: str, widths: str, extra: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "prune_cli.cli",
        "-m",
        f"results_dir={results_dir}",
        "dataset=mnist1d",
        "model=mlp",
        f"model.widths={widths}",
        "schedule=oneshot",
        f"method={method}",
        f"method.allocation={allocation}",
        "method.allow_collapse=true",
        f"sparsity={sparsities}",
        f"seed={seeds}",
        *extra,
    ]
    print("running:", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(last_value_wins(cmd), check=True, cwd=REPO, env=env)


def table(results_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(results_dir / "runs.csv")
    acc = df[(df.split == "test") & (df.metric == "accuracy") & df.phase.isin(["pruned", "finetuned"])]
    acc = acc.drop_duplicates(["run_id", "phase"], keep="last")
    acc = acc.assign(method=acc.method + "/" + acc.allocation)
    stats = acc.groupby(["target_sparsity", "method", "phase"])["value"].agg(["mean", "std", "count"])
    wide = stats.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} (n={int(r['count'])})", axis=1)
    return wide.unstack("phase")[["pruned", "finetuned"]].unstack("method")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "lap_vs_magnitude")
    p.add_argument("--sparsities", default="0.98,0.99,0.995")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--widths", default="[256,256]", help="hidden widths of the MLP")
    p.add_argument("--table-only", action="store_true", help="only read the CSVs of an earlier run")
    p.add_argument("overrides", nargs="*", help="extra prune-run overrides, e.g. train.epochs=10")
    args = p.parse_args()
    if not args.table_only:
        for method, allocation in SETTINGS:
            run(args.results_dir.resolve(), method, allocation, args.sparsities, args.seeds, args.widths, args.overrides)
    dense = pd.read_csv(args.results_dir / "runs.csv")
    dense = dense[(dense.split == "test") & (dense.metric == "accuracy") & (dense.phase == "dense")]
    dense = dense.drop_duplicates("run_id")
    print("\nMNIST-1D, MLP, one-shot + fine-tuning; test accuracy % (mean ± std over seeds)")
    print(f"dense: {100 * dense.value.mean():.2f} ± {100 * dense.value.std():.2f} (n={len(dense)})\n")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table(args.results_dir).to_string())


if __name__ == "__main__":
    main()
