"""Pruning against membership inference on MNIST-1D (issue 13 evidence; docs/training_time.md).

Wang et al., "Against Membership Inference Attack: Pruning is All You Need" (IJCAI 2021) claim
that their (ADMM) pruning gives a lower membership-inference attack accuracy than the dense model,
than magnitude pruning and than the min-max defence of Nasr et al. (CCS 2018), at similar test
accuracy. Here an MLP is trained to overfit a small MNIST-1D training set (`max_train_samples`),
then for each sparsity and seed:

- `magnitude`: one-shot magnitude pruning (layerwise) + fine-tuning,
- `admm`: schedule=admm (ADMM pruning, layerwise, Z/U every 2 steps) + masked retraining,
- `minmax`: schedule=minmax (adversarial regularisation from the initialisation, magnitude pruning,
  adversarially regularised fine-tuning),

all read at their final phase with the membership metric (loss-threshold attack on training vs test
examples: AUC and held-out threshold accuracy). Each method is one prune-run multirun; the dense
model is trained once per seed (the dense cache) and is the `dense` row. Magnitude pruning also runs
at `--frontier-sparsities`, so that every method's AUC can be read against magnitude's at the same
test accuracy (`frontier`).

    python scripts/mia_pruning.py --results-dir results/mia_pruning
    python scripts/mia_pruning.py --results-dir results/mia_pruning --table-only
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from script_args import comma_list, nonnegative_int, one_of, positive_int, refuse_given, require_runs, run_or_exit  # noqa: E402
from script_args import refuse_owned, sparsity_arg, width_list  # noqa: E402
from script_tables import NONE, apart, compatible, exactly, label, merged, settings  # noqa: E402

METHODS = {
    "magnitude": ["schedule=oneshot"],
    # 800 examples leave 720-721 for training after the validation split, 6 steps of 128 per epoch:
    # with the default update_every=20 the 10 ADMM epochs make 3
    # Z/U updates and rho stays near its start (1e-3 x 1.3^3); every 2 steps it reaches rho_max = 1
    "admm": ["schedule=admm", "schedule.update_every=2"],
    "minmax": ["schedule=minmax"],
}
# keys the sweeps set from the script's options or compare: an override of one was given to every sweep
# (`schedule=admm` ran ADMM for every method, `train.epochs=3` replaced --epochs unseen)
OWNED = {
    "results_dir": "set from --results-dir, the folder the tables read; give --results-dir",
    "sparsity": "swept from --sparsities (and --frontier-sparsities); give those",
    "seed": "swept from --seeds; give --seeds",
    "schedule": "set per method from --methods; give --methods",
    "dataset.max_train_samples": "set from --train-samples; give --train-samples",
    "model.widths": "set from --widths; give --widths",
    "train.epochs": "set from --epochs; give --epochs",
}
COMMON = [
    "dataset=mnist1d",
    "model=mlp",
    "metrics.membership.enabled=true",
    "metrics.regions.enabled=false",
]
# the pruning criterion: not given to an admm or minmax sweep whose every sparsity is 0, where no weight is pruned
# and prune-run refuses it as having no effect (a sweep with another sparsity reads it; its sparsity-0 job's log notes it)
METHOD = ["method=magnitude", "method.allocation=layerwise"]


def method_keys(method: str, sparsities: str) -> list[str]:
    """METHOD, or nothing for an admm or minmax sweep that prunes nothing (`--sparsities 0`)."""
    if method != "magnitude" and all(float(s) == 0 for s in sparsities.split(",")):
        return []
    return METHOD


def run(results_dir: Path, method: str, args: argparse.Namespace) -> None:
    sparsities = args.sparsities
    if method == "magnitude" and args.frontier_sparsities:  # magnitude's accuracy/AUC trade-off curve
        sparsities = ",".join(sorted({*args.sparsities.split(","), *args.frontier_sparsities.split(",")}, key=float))
    cmd = [sys.executable, "-m", "prune_cli.cli", "-m", f"results_dir={results_dir}", *COMMON, *method_keys(method, sparsities)]
    cmd += [*METHODS[method], f"dataset.max_train_samples={args.train_samples}", f"model.widths={args.widths}"]
    cmd += [f"train.epochs={args.epochs}", f"sparsity={sparsities}", f"seed={args.seeds}", *args.overrides]
    cmd = last_value_wins(cmd)
    print("running:", " ".join(cmd), flush=True)  # the command as run: an override in place of the script's value
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run_or_exit(cmd, cwd=REPO, env=env)


METRICS = {"accuracy": "test", "mia_loss_auc": "membership", "mia_loss_accuracy": "membership", "mia_confidence_auc": "membership"}


# what the dense model depends on (prune_cli/run/dense_cache.py: DENSE_KEYS, data_pruning and accel where set)
DENSE = ("dataset", "model", "train", "data_pruning", "accel")


def table(results_dir: Path) -> pd.DataFrame:
    """Mean ± std (n) over seeds of each metric at the final phase, a row per sparsity and method, and
    the dense model's (one per seed). Runs of one method and sparsity with different settings in one
    folder (train.epochs 20 and 40, say) are kept apart, not pooled as more seeds: the rows get an
    index level per config key that differs between them (scripts/script_tables.py); the dense row is
    one model per seed and dense setting (dataset, model, train), its other keys `-`."""
    df = pd.read_csv(results_dir / "runs.csv")
    df = df[[(m in METRICS and s == METRICS[m]) for m, s in zip(df.metric, df.split)]]
    df = df.drop_duplicates(["run_id", "phase", "metric"], keep="last")
    final = df[df.phase == "finetuned"].assign(method=lambda d: d.schedule.map({"oneshot": "magnitude"}).fillna(d.schedule))
    final, keys = apart(results_dir, final, ["target_sparsity", "method", "metric"])
    dense, dense_keys = apart(results_dir, df[df.phase == "dense"], ["metric"], under=DENSE)
    dense = dense.drop_duplicates(["seed", "metric", *dense_keys]).assign(method="dense", target_sparsity=0.0)
    shown = list(dict.fromkeys([*keys, *dense_keys]))
    dense = dense.assign(**{k: NONE for k in shown if k not in dense_keys})
    both = pd.concat([final, dense])
    stats = both.groupby(["target_sparsity", "method", *shown, "metric"])["value"].agg(["mean", "std", "count"])
    return stats.apply(lambda r: f"{r['mean']:.4f} ± {r['std']:.4f} (n={int(r['count'])})", axis=1).unstack("metric")


def _final(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The final phase's test accuracy and loss-attack AUC of each run, with the config keys that differ
    between runs of one schedule and sparsity (script_tables.apart)."""
    df = pd.read_csv(results_dir / "runs.csv")
    df = df[(df.phase == "finetuned") & df.metric.isin(["accuracy", "mia_loss_auc"]) & df.split.isin(["test", "membership"])]
    df = df.drop_duplicates(["run_id", "metric"], keep="last")
    return apart(results_dir, df, ["target_sparsity", "schedule", "metric"])


def _means(rows: pd.DataFrame, setting: dict) -> pd.Series:
    return rows[exactly(rows, setting)].groupby("metric").value.mean()


def verdict(results_dir: Path) -> list[str]:
    """The paper's qualitative claim at each sparsity: admm's attack AUC below magnitude's and minmax's,
    with test accuracy within 2 points of theirs (means over seeds). Runs with different settings are
    compared per setting (the line names it), never averaged together; a method without a key of the
    setting (an option of another schedule) is compared at every value of it."""
    df, keys = _final(results_dir)
    lines = []
    for sparsity, block in df.groupby("target_sparsity"):
        parts = {s: block[block.schedule == s] for s in ("admm", "oneshot", "minmax")}
        if any(part.empty for part in parts.values()):
            continue
        for a in settings(parts["admm"], keys):
            magnitude = parts["oneshot"][compatible(parts["oneshot"], a)]
            for o in settings(magnitude, keys):
                minmax = parts["minmax"][compatible(parts["minmax"], merged(a, o))]
                for m in settings(minmax, keys):
                    b = pd.DataFrame(
                        {"admm": _means(parts["admm"], a), "oneshot": _means(magnitude, o), "minmax": _means(minmax, m)}
                    ).T
                    lower = all(b.loc["admm", "mia_loss_auc"] < b.loc[x, "mia_loss_auc"] for x in ("oneshot", "minmax"))
                    similar = all(abs(b.loc["admm", "accuracy"] - b.loc[x, "accuracy"]) <= 0.02 for x in ("oneshot", "minmax"))
                    lines.append(
                        f"sparsity {sparsity}{label(merged(a, o, m))}: admm AUC {b.loc['admm', 'mia_loss_auc']:.4f}"
                        f" vs magnitude {b.loc['oneshot', 'mia_loss_auc']:.4f} vs minmax {b.loc['minmax', 'mia_loss_auc']:.4f};"
                        f" accuracy {b.loc['admm', 'accuracy']:.4f} / {b.loc['oneshot', 'accuracy']:.4f} /"
                        f" {b.loc['minmax', 'accuracy']:.4f} -> claim "
                        + ("reproduced" if lower and similar else "NOT reproduced")
                        + ("" if lower else " (AUC not lower)")
                        + ("" if similar else " (accuracy not within 2 points)")
                    )
    return lines


def frontier(results_dir: Path) -> list[str]:
    """Each method's attack AUC against magnitude pruning's at the same test accuracy: magnitude's
    (mean accuracy, mean AUC) over its sparsities, linearly interpolated at the method's mean
    accuracy (a privacy/accuracy trade-off comparison; outside magnitude's accuracy range: none).
    Runs with different settings are compared per setting, against magnitude's runs of that setting
    (the line names it)."""
    df, keys = _final(results_dir)
    magnitude = df[df.schedule == "oneshot"]
    if magnitude.empty:
        return []
    lines = []
    for (schedule, sparsity), part in df[df.schedule != "oneshot"].groupby(["schedule", "target_sparsity"]):
        for setting in settings(part, keys):
            row = _means(part, setting)
            same = magnitude[compatible(magnitude, setting)]
            for b in settings(same, keys):
                at_setting = same[exactly(same, b)]
                curve = at_setting.groupby(["target_sparsity", "metric"]).value.mean().unstack("metric").sort_values("accuracy")
                name = f"{schedule} at {sparsity}{label(merged(setting, b))}"
                if not curve.accuracy.min() <= row.accuracy <= curve.accuracy.max():
                    lines.append(f"{name}: accuracy {row.accuracy:.4f} outside magnitude's range")
                    continue
                at = float(np.interp(row.accuracy, curve.accuracy, curve.mia_loss_auc))
                lines.append(
                    f"{name}: accuracy {row.accuracy:.4f}, AUC {row.mia_loss_auc:.4f} vs magnitude's {at:.4f}"
                    f" at that accuracy ({row.mia_loss_auc - at:+.4f})"
                )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "mia_pruning")
    p.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.8,0.95")
    p.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    p.add_argument(
        "--train-samples",
        type=positive_int,
        default=800,
        help="examples drawn before the 10 %% validation split (dataset.max_train_samples; 800 leave 720-721 for training): "
        "a small training set, so that the dense MLP overfits",
    )
    p.add_argument("--widths", type=width_list, default="[256,256]")
    p.add_argument("--epochs", type=positive_int, default=40)
    p.add_argument("--methods", type=comma_list(one_of(METHODS)), default=",".join(METHODS))
    p.add_argument(
        "--frontier-sparsities",
        type=comma_list(sparsity_arg),
        default="0.5,0.7,0.9",
        help="extra sparsities of magnitude pruning only",
    )
    p.add_argument(
        "--table-only", action="store_true", help="only read the CSVs of an earlier run (--results-dir; the run's options are refused)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="extra prune-run overrides, e.g. finetune.epochs=5 (ADMM's schedule.epochs=5 only with --methods admm)",
    )
    args = p.parse_args()
    if args.table_only:  # the options of a run would be ignored: refused
        why = "only without --table-only, which runs nothing: it prints the tables of the runs already in --results-dir"
        refuse_given(p, why, but=("results_dir", "table_only"))
        require_runs(p, args.results_dir, "--table-only: --results-dir")
    else:
        refuse_owned(p, args.overrides, OWNED)
        for method in args.methods.split(","):
            run(args.results_dir.resolve(), method, args)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table(args.results_dir))
    for line in verdict(args.results_dir):
        print(line)
    for line in frontier(args.results_dir):
        print(line)


if __name__ == "__main__":
    main()
