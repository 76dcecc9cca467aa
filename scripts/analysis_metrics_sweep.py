"""Seeds x sparsities sweep with `metrics=full`, then the analyses prune-report builds on.

    python scripts/analysis_metrics_sweep.py --results /tmp/rd --seeds 0,1,2 --sparsities 0.5,0.9,0.97

Runs `prune-run -m metrics=full seed=... sparsity=...` (MNIST-1D, MLP, global magnitude: the defaults;
extra Hydra overrides after `--`), unless --skip-run, then prints:
1. alpha_t_ours / I_t / frac_intensified per sparsity and phase: mean over seeds with a 95 % t-interval;
2. the randomisation null of those statistics (Good et al. 2022, as the authors' code pools: each
   image's predictions shuffled across the dense model and the fine-tuned model of every sparsity of
   one seed; averaged over seeds; the un-fine-tuned `pruned` models are left out of the pool, where
   they widened the null);
3. the layer-mean CKA / SVCCA to the dense model, membership-attack AUC (dense -> current) and the
   measured vs theoretical speedup.
Runs of other settings in the same --results (a second call with other overrides) are kept apart:
a column per config key that differs in sections 1 and 3, a null per setting in section 2
(scripts/script_tables.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from prune_cli.analysis.recall_distortion import (  # noqa: E402
    load_predictions,
    randomisation_null,
    summarise_across_seeds,
)
from script_args import comma_list, nonnegative_int, positive_int, refuse_given, refuse_owned, require_runs, run_or_exit  # noqa: E402
from script_args import sparsity_arg  # noqa: E402

# keys the sweep sets from the script's options: an override of one was given to the whole sweep
# (`seed=4` ran seed 4 alone against --seeds, `results_dir=` sent the runs away from --results)
OWNED = {
    "results_dir": "set from --results, the folder the analyses read; give --results",
    "seed": "swept from --seeds; give --seeds",
    "sparsity": "swept from --sparsities; give --sparsities",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    parser.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.5,0.9,0.97")
    parser.add_argument("--n-perm", type=positive_int, default=2000)
    parser.add_argument(
        "--skip-run",
        action="store_true",
        help="only analyse an existing results folder (--results, --n-perm; the run's options are refused)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for prune-run")
    args = parser.parse_args()
    # prune-run runs in the repository (cwd=REPO): a relative --results is the caller's, resolved here
    args.results = args.results.resolve()
    if args.skip_run:  # the options of a run would be ignored: refused
        why = "only without --skip-run, which runs nothing: it analyses the runs already in --results"
        refuse_given(parser, why, but=("results", "n_perm", "skip_run"))
        require_runs(parser, args.results, "--skip-run: --results", ("runs.csv", "recall_distortion.csv"))
    else:
        refuse_owned(parser, args.overrides, OWNED)
        cmd = [
            sys.executable,
            "-m",
            "prune_cli.cli",
            "-m",
            f"results_dir={args.results}",
            "metrics=full",
            f"seed={args.seeds}",
            f"sparsity={args.sparsities}",
            *args.overrides,
        ]
        cmd = last_value_wins(cmd)
        print("$", " ".join(cmd), flush=True)  # the command as run: an override in place of the script's value
        run_or_exit(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    analyse(args.results, args.n_perm)


def setups(results: Path, run_dirs: list[Path]) -> list[tuple[str, list[Path]]]:
    """The completed runs by setup (every config value but the seed, name, method and sparsity: the
    runs of one setup share a dense model per seed, prune_cli/analysis/recall_distortion.py), each
    named ` (k=v, ...)` by the config keys that differ between the setups ('' for one setup)."""
    from omegaconf import OmegaConf

    from prune_cli.analysis.recall_distortion import _setups
    from prune_cli.results import flatten_config

    configs = {d.name: OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) for d in run_dirs}
    per_run, differ = _setups(configs)
    groups: dict[str, list[Path]] = {}
    for d in run_dirs:
        groups.setdefault(per_run[d.name], []).append(d)
    if len(groups) < 2:
        return [("", run_dirs)]
    flat = {d.name: flatten_config({k: configs[d.name].get(k) for k in differ}) for d in run_dirs}
    keys = sorted({k for f in flat.values() for k in f})
    keys = [k for k in keys if len({str(flat[g[0].name].get(k)) for g in groups.values()}) > 1]
    named = [(", ".join(f"{k}={flat[g[0].name].get(k)}" for k in keys), g) for g in groups.values()]
    return [(f" ({name})", g) for name, g in sorted(named, key=lambda item: item[0])]


def analyse(results: Path, n_perm: int) -> None:
    """Print the three sections for the runs in `results`. Runs of other settings in the folder (a
    second call with other overrides) are kept apart, not pooled as more seeds: sections 1 and 3 get a
    column per config key that differs (scripts/script_tables.py), section 2 a null per setup."""
    from script_tables import apart  # scripts/ is on sys.path when the script runs

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    rd = pd.read_csv(results / "recall_distortion.csv")
    rd, keys = apart(results, rd[rd.phase != "dense"], ["target_sparsity", "split", "phase"])
    summary = summarise_across_seeds(rd, keys=["target_sparsity", *keys, "split", "phase"])
    print("\n1. intensification statistics, mean over seeds (95 % t-interval)")
    print(
        summary[["target_sparsity", *keys, "phase", "statistic", "n_seeds", "mean", "ci_low", "ci_high"]].to_string(
            index=False, float_format="%.4f"
        )
    )

    runs = [p.parent for p in sorted(results.glob("runs/*/COMPLETE"))]
    print(f"\n2. randomisation null ({n_perm} permutations of the dense and fine-tuned models of each seed, averaged over seeds)")
    for name, part in setups(results, runs):
        preds = load_predictions(part, phases=("dense", "finetuned"))
        null = randomisation_null(preds, n_perm=n_perm, seed=0)
        null = null[null.statistic != "T"]
        if name:
            print(f"setting{name}:")
        print(
            null[["model", "statistic", "observed", "null_mean", "null_sd", "p_value", "p_value_code"]].to_string(
                index=False, float_format="%.4f"
            )
        )

    m = pd.read_csv(results / "runs.csv")
    keep = [
        "accuracy",
        "cka_linear_mean",
        "svcca_mean",
        "mia_loss_auc",
        "mia_confidence_auc",
        "theoretical_speedup",
        "measured_speedup",
    ]
    m = m[m.metric.isin(keep) & (m.phase != "dense") & m.split.isin(["test", "membership", "model"])]
    m, keys = apart(results, m, ["target_sparsity", "phase", "metric"])
    index = ["target_sparsity", *keys, "phase"]
    table = m.pivot_table(index=index, columns="metric", values="value", aggfunc="mean")
    dense = m[m.metric.isin(["accuracy", "mia_loss_auc"])].pivot_table(
        index=index, columns="metric", values="dense_value", aggfunc="mean"
    )
    table = table.join(dense.add_prefix("dense_"))
    print("\n3. other metrics, mean over seeds")
    print(
        table[[c for c in ["dense_accuracy", *keep[:5], "dense_mia_loss_auc", *keep[5:]] if c in table]].to_string(float_format="%.4f")
    )


if __name__ == "__main__":
    main()
