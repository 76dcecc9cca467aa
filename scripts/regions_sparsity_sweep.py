"""Evidence for issue 4: uniform (layerwise) vs bound-guided (region_bound) per-layer densities.

A 40-100-100-10 MLP on MNIST-1D (offline, cached), classifier dense, one-shot magnitude pruning of
the two hidden layers at extreme global densities, fine-tuning, 3 seeds. Reports test accuracy,
exact line region counts (mean over 10 seeded test-pair segments) and the expected bound
ln E[UB] (binomial rank model, n0 = 1 for the segments, and n0 = 40 for the full input space).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/regions_sparsity_sweep.py --out /tmp/regions_sweep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from prune_cli.analysis.regions.bounds import expected_bound
from script_args import comma_list, density_arg, description, nonnegative_int, positive_int, refuse_given, require_runs, run_or_exit


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--out", default="results/regions_sweep")
    parser.add_argument("--densities", type=comma_list(density_arg), default="0.1,0.03,0.01,0.005,0.003")
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--skip-run", action="store_true", help="only aggregate an existing --out (the run's options are refused)")
    args = parser.parse_args()
    out = Path(args.out)
    sparsities = ",".join(str(round(1 - float(d), 6)) for d in args.densities.split(","))
    if args.skip_run:  # the options of a run would be ignored: refused
        why = "only without --skip-run, which runs nothing: it aggregates the runs already in --out"
        refuse_given(parser, why, but=("out", "skip_run"))
        require_runs(parser, out, "--skip-run: --out", ("runs.csv", "regions.csv", "layers.csv"))
    else:
        cmd = [
            sys.executable,
            "-m",
            "prune_cli.cli",
            "-m",
            f"results_dir={out}",
            "dataset=mnist1d",
            "model=mlp",
            "model.widths=[100,100]",
            "method=region_bound",
            "method.allocation=layerwise,region_bound",
            f"sparsity={sparsities}",
            f"seed={args.seeds}",
            f"train.epochs={args.epochs}",
            f"finetune.epochs={args.epochs}",
            "train.lr=0.05",
            "finetune.lr=0.01",
            "metrics.regions.enabled=true",
            "metrics.regions.method=line",
            "metrics.regions.segments=10",
            "metrics.regions.rank_models=[binomial]",
            "metrics.per_class=false",
            "name=regions_sweep",
        ]
        print(" ".join(cmd), flush=True)
        run_or_exit(cmd)
    summary_table, dense = summary(out)
    pd.set_option("display.width", 200)
    print(summary_table.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\n".join(dense))
    summary_table.to_csv(out / "regions_sweep_summary.csv")


def summary(out: Path) -> tuple[pd.DataFrame, list[str]]:
    """The table per density and allocation (means over seeds) and the dense lines, from the shared
    CSVs of `out`. Runs of other settings in the same folder (a second call with another --epochs,
    say) get rows of their own, an index level per config key that differs between them
    (scripts/script_tables.py), instead of being averaged with them as one run per seed."""
    from script_tables import apart, label  # scripts/ is on sys.path when the script runs

    runs = pd.read_csv(out / "runs.csv")
    regions = pd.read_csv(out / "regions.csv")
    layers = pd.read_csv(out / "layers.csv")
    acc = runs[(runs.metric == "accuracy") & (runs.split == "test")]
    acc, keys = apart(out, acc, ["allocation", "target_sparsity", "seed", "phase"])
    regions, _ = apart(out, regions, [])
    layers, _ = apart(out, layers, [])
    index = ["allocation", "target_sparsity", *keys, "seed"]
    acc = acc.pivot_table(index=index, columns="phase", values="value")
    reg = regions.groupby([*index, "phase"])["count"].mean().unstack("phase")
    bound = regions[regions.phase == "finetuned"].groupby(index)["bound_ln_expected_binomial"].first()
    dens = layers[(layers.phase == "finetuned") & layers.prunable].pivot_table(index=index, columns="layer", values="density")
    table = pd.DataFrame(
        {
            "acc_dense": acc["dense"],
            "acc_pruned": acc["pruned"],
            "acc_finetuned": acc["finetuned"],
            "regions_line_dense": reg["dense"],
            "regions_line_finetuned": reg["finetuned"],
            "lnEUB_n0=1": bound,
            "p1": dens.iloc[:, 0],
            "p2": dens.iloc[:, 1],
        }
    ).reset_index()
    table["lnEUB_n0=40"] = [expected_bound([40, 100, 100, 10], [p1, p2, 1.0]) for p1, p2 in zip(table.p1, table.p2)]
    table["density"] = (1 - table.target_sparsity).round(6)
    result = table.groupby(["density", *keys, "allocation"]).agg(
        seeds=("seed", "nunique"),
        acc_mean=("acc_finetuned", "mean"),
        acc_std=("acc_finetuned", "std"),
        acc_pruned=("acc_pruned", "mean"),
        regions_line=("regions_line_finetuned", "mean"),
        lnEUB_n0_1=("lnEUB_n0=1", "mean"),
        lnEUB_n0_40=("lnEUB_n0=40", "mean"),
        p1=("p1", "mean"),
        p2=("p2", "mean"),
    )
    result = result.sort_index(ascending=[False, *[True] * (len(keys) + 1)])
    dense = []
    for values, part in table.groupby(keys, sort=True) if keys else [((), table)]:
        setting = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        shown = label(setting)
        dense.append(f"dense{shown}: accuracy {part.acc_dense.mean():.4f}, line regions {part.regions_line_dense.mean():.1f}")
    return result, dense


if __name__ == "__main__":
    main()
