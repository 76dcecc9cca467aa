"""Random pruning with ERK vs uniform (layerwise) densities on MNIST-1D with an MLP.

One-shot pruning of the trained dense MLP at sparsities 0.98 / 0.99 / 0.995, then fine-tuning,
for seeds 0, 1, 2; prints the mean +- std test accuracy after fine-tuning (and right after
pruning), read back from the shared results CSV (results_dir/runs.csv).

    PYTHONPATH=$PWD python scripts/random_erk_vs_layerwise.py [--results-dir DIR] [overrides ...]

Runs that already completed in DIR are not repeated. At these sparsities a random mask may cut
every input-output path (layer collapse); the runs set method.allow_collapse=true so that such a
network is fine-tuned and reported (near chance accuracy) instead of stopping the sweep; the
collapse is logged. Extra arguments are passed to prune-run (e.g. train.epochs=5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from script_args import comma_list, nonnegative_int, run_or_exit, sparsity_arg  # noqa: E402

ALLOCATIONS = ["erk", "layerwise"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default="results/random_erk_vs_layerwise")
    parser.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.98,0.99,0.995")
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    args, overrides = parser.parse_known_args()
    results = Path(args.results_dir).resolve()
    cmd = [
        sys.executable,
        "-m",
        "prune_cli.cli",
        "-m",
        f"results_dir={results}",
        "dataset=mnist1d",
        "model=mlp",
        "method=random",
        "method.sampling=exact",
        "method.allow_collapse=true",
        "schedule=oneshot",
        f"method.allocation={','.join(ALLOCATIONS)}",
        f"sparsity={args.sparsities}",
        f"seed={args.seeds}",
        "name=random_erk_vs_layerwise",
        *overrides,
    ]
    print("+", " ".join(cmd), flush=True)
    run_or_exit(last_value_wins(cmd))
    df = pd.read_csv(results / "runs.csv")
    df = df[(df["name"] == "random_erk_vs_layerwise") & (df["split"] == "test") & (df["metric"] == "accuracy")]
    df = df.drop_duplicates(["run_id", "phase"], keep="last")
    table = (
        df[df["phase"].isin(["pruned", "finetuned"])]
        .groupby(["target_sparsity", "allocation", "phase"])["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    table["acc"] = table.apply(lambda r: f"{100 * r['mean']:.2f} +- {100 * r['std']:.2f} (n={int(r['count'])})", axis=1)
    wide = table.pivot_table(index="target_sparsity", columns=["phase", "allocation"], values="acc", aggfunc="first")
    dense = df[df["phase"] == "dense"]["value"]
    print(f"\nMNIST-1D, MLP, random pruning (exact count), test accuracy % (mean +- std over seeds {args.seeds})")
    print(f"dense: {100 * dense.mean():.2f} +- {100 * dense.std():.2f}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide.to_string())


if __name__ == "__main__":
    main()
