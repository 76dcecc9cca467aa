"""Training-time pruning vs one-shot magnitude pruning at high sparsity on MNIST-1D (issue 13 evidence).

GReg-1 and GReg-2 (Wang et al., ICLR 2021) and AutoPrune (Xiao, Wang and Rajasekaran, NeurIPS 2019)
against one-shot global magnitude pruning + fine-tuning, every method starting from the same
trained dense MLP (the dense cache) and getting the same budget of epochs after it:

- magnitude: `schedule=oneshot`, fine-tuning for BUDGET epochs;
- greg1 / greg2: a regularization phase of about BUDGET/2 epochs (its penalty schedule is set so that
  its steps fill them: the steps of an epoch are those of the training split at finetune.batch_size,
  from the config composed with the overrides given), then BUDGET/2 epochs of fine-tuning;
- oneshot/mp_global_normalize: one-shot with per-layer normalized magnitudes, fine-tuning for
  BUDGET epochs (a control: AutoPrune's gates start at |w| / mean |w| of the layer, which implies
  this allocation);
- oneshot/magnitude/layerwise, greg1/layerwise and greg2/layerwise: the same density in every layer
  (the papers' per-layer choice; global magnitude at 98 % leaves the middle layer almost empty, and
  GReg choosing globally inherits that);
- autoprune: a gating phase of at most BUDGET/2 epochs (it stops earlier when the gates reach the
  target), then BUDGET/2 epochs of fine-tuning.

The papers' qualitative claim checked here: at high sparsity, GReg and AutoPrune reach at least
the accuracy of one-shot magnitude pruning. Prints the mean ± std test accuracy over seeds after
fine-tuning, the paired difference to magnitude (same seed) and whether the claim reproduced.

    python scripts/train_time_pruning.py --results-dir results/train_time_pruning
    python scripts/train_time_pruning.py --results-dir results/train_time_pruning --table-only

Cost: one dense MLP per seed (the default 40 epochs) and 8 settings x 2 sparsities x 3 seeds runs of
10 epochs after it, about 30 minutes on a 2-core machine at load 10-15.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from script_args import comma_list, nonnegative_int, positive_int, refuse_given, refuse_owned, require_runs, run_or_exit  # noqa: E402
from script_args import sparsity_arg  # noqa: E402
from script_tables import apart, compatible, exactly, label, merged, setup  # noqa: E402
from script_tables import settings as settings_among  # noqa: E402  (settings() here are the methods' overrides)

BASELINE = "oneshot/magnitude"
BASE = ["dataset=mnist1d", "model=mlp"]  # the config every method's runs start from, before the user's overrides
# keys the script sets per method or from its options: an override of one was given to every method
# (`finetune.epochs=3` broke the equal budget, `schedule.delta=0.1` the GReg phase sized from the script's
# delta, `method=snip` ran snip under every method's label, `results_dir=` sent the runs away from the
# folder the table reads)
OWNED = {
    "results_dir": "set from --results-dir, the folder the table reads; give --results-dir",
    "sparsity": "swept from --sparsities; give --sparsities",
    "seed": "swept from --seeds; give --seeds",
    "finetune.epochs": "set per method from --budget (the same budget for every method); give --budget",
    "schedule": "set per method: the script compares its methods' schedules",
    "schedule.*": "set per method: the script sizes each method's phase from --budget",
    "method": "set per method: the script compares its methods",
    "method.allocation": "set per method: the script compares the global and layerwise allocations",
}


def overrides(options: dict) -> list[str]:
    return [f"schedule.{k}={v}" for k, v in options.items()]


def raising_steps(options: dict) -> int:
    """Iterations of GReg's regularization phase up to and including its last raise (GRegSchedule)."""
    sys.path.insert(0, str(REPO))
    from omegaconf import OmegaConf

    from prune_cli.pruning.train_time.greg import GRegSchedule

    greg2 = "pick_delta" in options
    schedule = GRegSchedule.from_options(OmegaConf.create({**options, "stabilize_steps": 0}), greg2)
    return schedule.steps()


# GReg-1: delta 0.05 every 10 steps, raised until above the ceiling 1 (1.05 at iteration 200);
# the rest of the phase stabilizes.
GREG1_OPTIONS = {"delta": 0.05, "interval": 10, "ceiling": 1.0}
# GReg-2: 0.01 every 10 steps on all weights to 0.1 (the choice before iteration 90), then the
# chosen 0.1 + 0.1 per update until above 1 (1.1 at iteration 190), the kept weights recover=-1e-4.
GREG2_OPTIONS = {"pick_delta": 0.01, "pick_ceiling": 0.1, "delta": 0.1, "interval": 10, "ceiling": 1.0, "recover": -1e-4}


def steps_per_epoch(extra: list[str], seeds: str) -> int:
    """Optimizer steps of one epoch of GReg's regularization phase in the runs this script starts:
    ceil(training examples / finetune.batch_size) (the phase trains with the finetune config,
    prune_cli/run/experiment.py), with the config composed from the script's overrides and the
    user's `extra` ones and the training split built as prune-run builds it (build_splits), for each
    seed. Raises ValueError where that is not one number: overrides that do not compose (a sweep
    such as `finetune.batch_size=64,128` among them), data pruning (the kept subset is chosen when the
    run starts), or seeds whose splits differ in size."""
    import torch
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (resolvers, schemas)
    from prune_cli.data import DATASETS, build_splits

    overrides = last_value_wins([*BASE, "schedule=greg1", *extra])
    try:
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except Exception as err:  # Hydra's composition errors have no common base class
        why = str(err).splitlines()[0]  # one line (Hydra's sweep message goes on with suggestions)
        raise ValueError(
            f"argument overrides: {' '.join(extra)!r}: allowed: overrides prune-run composes, one value each ({why})"
        ) from None
    if cfg.data_pruning.name != "none":
        raise ValueError(
            f"argument overrides: 'data_pruning={cfg.data_pruning.name}': allowed: no data pruning (GReg's phase is sized from "
            "the training set, which data pruning chooses when each run starts)"
        )
    raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    sizes = {int(seed): len(build_splits(raw, cfg.dataset, int(seed), torch.device("cpu")).train_y) for seed in seeds.split(",")}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"argument --seeds: {seeds!r}: allowed: seeds whose training splits have one size (GReg's phase is sized by it; "
            f"here {sizes}: run them one at a time)"
        )
    return math.ceil(next(iter(sizes.values())) / int(cfg.finetune.batch_size))


def smallest_budget(steps_per_epoch: int) -> int:
    """The smallest --budget whose regularization half holds both GReg schedules' raising phases
    (a shorter one would give prune-run a negative schedule.stabilize_steps)."""
    steps = max(raising_steps(GREG1_OPTIONS), raising_steps(GREG2_OPTIONS))
    return 2 * math.ceil(steps / steps_per_epoch)


def settings(budget: int, steps_per_epoch: int) -> dict[str, list[str]]:
    """Each method's overrides for `budget` epochs after the dense model, `steps_per_epoch` optimizer
    steps in an epoch of GReg's phase (`steps_per_epoch`)."""
    half = budget // 2
    steps = half * steps_per_epoch  # the regularization phase's optimizer steps
    greg1 = ["schedule=greg1", *overrides(GREG1_OPTIONS), f"schedule.stabilize_steps={steps - raising_steps(GREG1_OPTIONS)}"]
    greg2 = ["schedule=greg2", *overrides(GREG2_OPTIONS), f"schedule.stabilize_steps={steps - raising_steps(GREG2_OPTIONS)}"]
    return {
        "magnitude": ["schedule=oneshot", "method=magnitude", f"finetune.epochs={budget}"],
        # one-shot with each layer's magnitudes divided by the layer's norm: the allocation AutoPrune's
        # magnitude-scaled start of the gates implies (separates the allocation from the gating)
        "normalized": ["schedule=oneshot", "method=mp_global_normalize", f"finetune.epochs={budget}"],
        "greg1": [*greg1, "method=magnitude", f"finetune.epochs={budget - half}"],
        # the same with the same density in every layer: global magnitude at 98 % leaves the MLP's
        # middle layer with a few dozen weights, and GReg, choosing with it, inherits that bottleneck
        "magnitude_layerwise": ["schedule=oneshot", "method=magnitude", "method.allocation=layerwise", f"finetune.epochs={budget}"],
        "greg1_layerwise": [*greg1, "method=magnitude", "method.allocation=layerwise", f"finetune.epochs={budget - half}"],
        "greg2": [*greg2, "method=magnitude", f"finetune.epochs={budget - half}"],
        # the paper chooses per layer (the same ratio in every pruned layer)
        "greg2_layerwise": [*greg2, "method=magnitude", "method.allocation=layerwise", f"finetune.epochs={budget - half}"],
        "autoprune": [
            "schedule=autoprune",
            "method=magnitude",
            f"schedule.prune_epochs={half}",
            "schedule.reg=0.003",
            f"finetune.epochs={budget - half}",
        ],
    }


def run(results_dir: Path, overrides: list[str], sparsities: str, seeds: str, extra: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "prune_cli.cli",
        "-m",
        f"results_dir={results_dir}",
        *BASE,
        "metrics.regions.enabled=false",
        "allow_failures=true",  # a failed run (e.g. a collapsed layer) is listed and missing from the table, n says so
        f"sparsity={sparsities}",
        f"seed={seeds}",
        *overrides,
        *extra,
    ]
    cmd = last_value_wins(cmd)
    print("running:", " ".join(cmd), flush=True)  # the command as run: an override in place of the script's value
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run_or_exit(cmd, cwd=REPO, env=env)


def accuracies(results_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Each run's test accuracy after fine-tuning, labelled by schedule (oneshot by its method) and
    allocation (when not global), with a column per config key that differs between runs of one label
    and sparsity, and those keys (script_tables.apart): runs of different settings in one folder
    (train.epochs 20 and 40, say) are kept apart, not pooled as more seeds."""
    df = pd.read_csv(results_dir / "runs.csv")
    acc = df[(df.split == "test") & (df.metric == "accuracy") & (df.phase == "finetuned")]
    acc = acc.drop_duplicates(["run_id"], keep="last")
    label = acc.schedule.where(acc.schedule != "oneshot", "oneshot/" + acc.method)
    label = label.where(acc.allocation == "global", label + "/" + acc.allocation)
    acc = acc.assign(schedule=label)[["run_id", "schedule", "target_sparsity", "seed", "value"]]
    return apart(results_dir, acc, ["target_sparsity", "schedule"])


def baseline_for(label: str) -> str:
    """One-shot magnitude with the same allocation (global unless the label names another)."""
    if "/" in label.removeprefix("oneshot/") and label != f"{BASELINE}/layerwise":
        return f"{BASELINE}/{label.rsplit('/', 1)[1]}"
    return BASELINE


def paired_interval(diff: pd.Series) -> tuple[float, float]:
    """95 % Student-t interval of the mean paired difference (the seeds are the pairs); NaN for one
    seed, which gives no interval (it used to be [mean, mean], a verdict from one seed)."""
    from scipy import stats

    n = len(diff)
    if n < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, n - 1) * diff.std() / n**0.5
    return float(diff.mean() - half), float(diff.mean() + half)


def report(acc: pd.DataFrame, keys: list[str] | tuple[str, ...] = ()) -> str:
    """The mean ± std table (a row per sparsity and setting of `keys`, a column per method) and each
    method's paired difference to one-shot magnitude with the same allocation, seed by seed, at the
    same setting: runs with different settings are compared per setting (the line names it), never
    averaged together; a baseline without a key of the setting (an option of another schedule, such as
    GReg's stabilize_steps) is the baseline of every value of it. Runs of one setting and seed (a rerun)
    count once, their mean."""
    keys = list(keys)
    lines = []
    stats = acc.groupby(["target_sparsity", *keys, "schedule"]).value.agg(["mean", "std", "count"])
    table = stats.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} (n={int(r['count'])})", axis=1).unstack("schedule")
    lines.append(table.to_string())
    lines.append(
        "\npaired difference to one-shot magnitude with the same allocation (same seed), points, "
        "mean [95 % Student-t interval]; claim: method >= magnitude"
    )
    for s, group in acc.groupby("target_sparsity"):
        for method in sorted(set(group.schedule) - {BASELINE}):
            base = baseline_for(method)
            mine, theirs = group[group.schedule == method], group[group.schedule == base]
            if theirs.empty:
                continue
            name = f"{method} vs {base.removeprefix('oneshot/')}"
            for setting in settings_among(mine, keys):
                ours = mine[exactly(mine, setting)].groupby("seed").value.mean()
                same = theirs[compatible(theirs, setting)]
                if same.empty:
                    lines.append(f"sparsity {s}{label(setting)}: {name}: no baseline run with this setting")
                for b in settings_among(same, keys):
                    diff = 100 * (ours - same[exactly(same, b)].groupby("seed").value.mean()).dropna()
                    if diff.empty:
                        continue
                    lo, hi = paired_interval(diff)
                    interval = f"[{lo:+.2f}, {hi:+.2f}]"
                    if len(diff) < 2:
                        verdict, interval = "inconclusive (one seed)", "[no interval]"
                    elif lo > 0:
                        verdict = "reproduced (better)"
                    elif lo == 0:  # e.g. every paired difference 0: the claim (>=) holds, "better" would not
                        verdict = "reproduced (equal or better)"
                    elif hi < 0:
                        verdict = "not reproduced (worse)"
                    else:
                        verdict = "inconclusive (the interval contains 0)"
                    wins = int((diff >= 0).sum())
                    lines.append(
                        f"sparsity {s}{label(merged(setting, b))}: {name:42s} {diff.mean():+6.2f} {interval}"
                        f" ({wins}/{len(diff)} seeds >= 0): {verdict}"
                    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "train_time_pruning")
    p.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.9,0.98")
    p.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    p.add_argument("--budget", type=positive_int, default=10, help="epochs after the dense model, the same for every method")
    p.add_argument(
        "--table-only", action="store_true", help="only read the CSVs of an earlier run (--results-dir; the run's options are refused)"
    )
    p.add_argument("overrides", nargs="*", help="extra prune-run overrides for every method")
    args = p.parse_args()
    if args.table_only:  # the options of a run would be ignored (--budget named the header's budget only): refused
        why = "only without --table-only, which runs nothing: it prints the tables of the runs already in --results-dir"
        refuse_given(p, why, but=("results_dir", "table_only"))
        require_runs(p, args.results_dir, "--table-only: --results-dir")
    else:
        refuse_owned(p, args.overrides, OWNED)
        try:
            steps = steps_per_epoch(args.overrides, args.seeds)
        except ValueError as err:
            p.error(str(err))
        least = smallest_budget(steps)
        if args.budget < least:  # GReg's raises would not fit in its half of the budget: prune-run refuses a negative stabilize_steps
            p.error(
                f"argument --budget: {str(args.budget)!r}: allowed: an integer >= {least} (GReg's raising phase fits in half of it)"
            )
        for overrides in settings(args.budget, steps).values():
            run(args.results_dir.resolve(), overrides, args.sparsities, args.seeds, args.overrides)
    acc, keys = accuracies(args.results_dir)
    # --table-only: the budget is the runs' own (--budget's default named 10 whatever they had)
    budget = "" if args.table_only else f", {args.budget} epochs after the dense model"
    # the data and model of the runs read (a heading naming MNIST-1D, MLP [256, 256] ignored dataset= / model.widths=)
    print(f"\n{setup(args.results_dir)}{budget}; test accuracy % after fine-tuning")
    print(report(acc, keys))


if __name__ == "__main__":
    main()
