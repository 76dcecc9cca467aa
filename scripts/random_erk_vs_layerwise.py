"""Random pruning with ERK vs uniform (layerwise) densities on MNIST-1D with an MLP.

One-shot pruning of the trained dense MLP at sparsities 0.98 / 0.99 / 0.995, then fine-tuning,
for seeds 0, 1, 2; prints the mean +- std test accuracy after fine-tuning (and right after
pruning), read back from the shared results CSV (results_dir/runs.csv).

    PYTHONPATH=$PWD python scripts/random_erk_vs_layerwise.py [--results-dir DIR] [overrides ...]

Runs that already completed in DIR are not repeated. At these sparsities a random mask may cut
every input-output path (layer collapse); the runs set method.allow_collapse=true so that such a
network is fine-tuned and reported (near chance accuracy) instead of stopping the sweep; the
collapse is logged. Extra arguments are passed to prune-run (e.g. train.epochs=5); one of a key the
script sets alike for every run (method.sampling, say) replaces the script's value, one of a key it
sets per run or compares (OWNED: the seeds, sparsities, allocations, the method, the name and the
folder its table reads) is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from script_args import comma_list, nonnegative_int, refuse_owned, run_or_exit, sparsity_arg  # noqa: E402

ALLOCATIONS = ["erk", "layerwise"]


NAME = "random_erk_vs_layerwise"
# keys the sweep sets from the script's options or compares: an override of one was given to the whole
# sweep (`seed=5` ran seed 5 alone, `results_dir=` sent the runs away from the folder the table reads)
OWNED = {
    "results_dir": "set from --results-dir, the folder the table reads; give --results-dir",
    "sparsity": "swept from --sparsities; give --sparsities",
    "seed": "swept from --seeds; give --seeds",
    "method": "the script compares random pruning's allocations",
    "method.allocation": f"the script compares {' and '.join(ALLOCATIONS)}",
    "name": f"the table reads the runs named {NAME}",
}


def table(results: Path) -> pd.DataFrame:
    """Mean +- std (n) over seeds of the test accuracy after pruning and after fine-tuning, a row per
    sparsity, a column per phase and allocation. Runs of other settings in the same folder (a second
    call with finetune.epochs=2, say) get rows of their own, an index level per config key that
    differs between them (scripts/script_tables.py), instead of being pooled as more seeds."""
    from script_tables import apart  # scripts/ is on sys.path when the script runs

    df = pd.read_csv(results / "runs.csv")
    df = df[(df["name"] == NAME) & (df["split"] == "test") & (df["metric"] == "accuracy")]
    df = df[df["phase"].isin(["pruned", "finetuned"])].drop_duplicates(["run_id", "phase"], keep="last")
    df, keys = apart(results, df, ["target_sparsity", "allocation", "phase"])
    stats = df.groupby(["target_sparsity", *keys, "allocation", "phase"])["value"].agg(["mean", "std", "count"])
    cells = stats.apply(lambda r: f"{100 * r['mean']:.2f} +- {100 * r['std']:.2f} (n={int(r['count'])})", axis=1)
    return cells.unstack(["phase", "allocation"]).sort_index(axis=1)


def dense_lines(results: Path) -> list[str]:
    """The dense test accuracy, mean +- std over seeds, one dense model per seed (every run records the
    dense phase of the model it pruned: lap_vs_magnitude.dense_lines)."""
    from lap_vs_magnitude import dense_lines as lines  # scripts/ is on sys.path when the script runs

    return lines(results, name=NAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default="results/random_erk_vs_layerwise")
    parser.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.98,0.99,0.995")
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    parser.add_argument("overrides", nargs="*", help="extra prune-run overrides, e.g. train.epochs=5")
    args = parser.parse_intermixed_args()  # an unknown option is refused here, not passed to prune-run
    refuse_owned(parser, args.overrides, OWNED)
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
        f"name={NAME}",
        *args.overrides,
    ]
    cmd = last_value_wins(cmd)
    print("+", " ".join(cmd), flush=True)  # the command as run: an override in place of the script's value
    run_or_exit(cmd)
    from script_tables import setup  # the data and model of the runs read, not the script's defaults

    heading = "random pruning (exact count), test accuracy % (mean +- std over seeds; n: runs per cell)"
    print(f"\n{setup(results, name=NAME)}, {heading}")
    print("\n".join(dense_lines(results)))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table(results).to_string())


if __name__ == "__main__":
    main()
