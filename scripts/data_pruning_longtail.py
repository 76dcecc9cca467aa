"""Evidence for docs/data_pruning.md: worst-class accuracy of DRoP against random, class-balanced,
EL2N, GraNd and forgetting-score data pruning on long-tailed MNIST-1D (Vysogorets, Ahuja and Kempe,
"Robust Data Pruning": DRoP should raise worst-class recall at some cost in average accuracy).

Runs one `prune-run -m` sweep (rules x seeds, no weight pruning needed for the claim: the dense
phase is compared) into RESULTS and prints, per rule, the mean and standard deviation over seeds
of the dense model's test accuracy, mean-class recall and worst-class recall.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/data_pruning_longtail.py /tmp/dp_longtail --seeds 0,1,2

`--rules grand,forgetting` runs only those rules (and `none`, the full-data reference, only when
listed; a name that is not a configs/data_pruning rule is refused before any run): runs are
deterministic given the config, so rules added later can be run on their own and compared with
an earlier table; rerunning a listed rule checks that. A sweep that prune-run refuses or that fails
stops the script with prune-run's exit status (its message above), without the table.
A --keep that keeps every example of the long-tailed training split (round(keep x N) = N) is refused
before any run, with the largest keep that leaves one out (prune-run refused the rule sweep's jobs
only once they had loaded the split, after the `none` sweep had trained). So is, with class_balanced
among the rules, a --keep that keeps fewer examples than the split has classes, with the smallest keep
that keeps one of each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from script_args import comma_list, nonnegative_int, number_in, one_of, positive_int, run_or_exit

RULES = "none,random,class_balanced,el2n,grand,forgetting,drop"


def rule_names() -> list[str]:
    """The data_pruning rules prune-run knows: the names of configs/data_pruning/*.yaml (docs/data_pruning.md),
    the script's RULES first. A misspelt --rules name is refused before any run (prune-run refused it only
    in the rule sweep, after the `none` sweep had trained)."""
    from prune_cli.core.paths import configs_dir

    found = sorted(p.stem for p in (configs_dir() / "data_pruning").glob("*.yaml"))
    return [*RULES.split(","), *(r for r in found if r not in RULES.split(","))]


def training_sizes(dataset: list[str], seeds: str) -> dict[int, list[int]]:
    """The training split's examples per class for each of `seeds`, built as prune-run builds it (build_splits)
    from the config composed with the `dataset` overrides: their sum is the N a rule keeps round(keep x N) of."""
    import torch
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (resolvers, schemas)
    from prune_cli.core.paths import configs_dir
    from prune_cli.data import DATASETS, build_splits

    with initialize_config_dir(config_dir=str(configs_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=dataset)
    raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    return {
        int(seed): torch.bincount(build_splits(raw, cfg.dataset, int(seed), torch.device("cpu")).train_y.cpu()).tolist()
        for seed in seeds.split(",")
    }


def check_keep(parser: argparse.ArgumentParser, keep: float, counts: dict[int, list[int]], balanced: bool = False) -> None:
    """Stop (argparse's one line, exit 2) when `keep` keeps all N training examples of a seed's split
    (`counts`, per class): the rule would select nothing, and prune-run refuses it once the run has loaded
    the split; with class_balanced among the rules (`balanced`), also when it keeps fewer examples than
    the split has classes (prune-run refused it in the rule sweep, after the `none` sweep had trained)."""
    from prune_cli.data.pruning import kept_examples, largest_keep_leaving_one_out
    from prune_cli.data.pruning.class_balanced import smallest_keep_for

    sizes = {seed: sum(per_class) for seed, per_class in counts.items()}
    if balanced:
        for seed, per_class in counts.items():
            classes, examples = sum(1 for n in per_class if n > 0), sizes[seed]
            if kept_examples(keep, examples) < classes:
                bound = max(smallest_keep_for(sum(1 for n in c if n > 0), sum(c)) for c in counts.values())
                parser.error(
                    f"argument --keep: {str(keep)!r}: allowed: with class_balanced, a fraction that keeps at least one "
                    f"example of each of the {classes} classes (round(keep x {examples}) keeps {kept_examples(keep, examples)} "
                    f"of seed {seed}'s long-tailed training split): keep >= {bound:.6f}"
                )
    for seed, examples in sizes.items():
        if examples > 1 and kept_examples(keep, examples) >= examples:
            bound = min(largest_keep_leaving_one_out(n) for n in sizes.values())
            parser.error(
                f"argument --keep: {str(keep)!r}: allowed: a fraction that leaves out at least one training example "
                f"(round(keep x {examples}) keeps all {examples} of seed {seed}'s long-tailed training split): keep <= {bound:.6f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    parser.add_argument(
        "--keep",
        type=number_in(0.0, 1.0, True, True, "the fraction kept"),  # prune-run refuses keep=1 (no pruning: data_pruning=none)
        default=0.3,
        help="fraction of training examples kept, 0 < keep < 1 (default 0.3)",
    )
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--longtail-ratio", type=number_in(1.0, float("inf"), True, False), default=10.0)
    parser.add_argument(
        "--rules", type=comma_list(one_of(rule_names())), default=RULES, help=f"comma-separated data_pruning rules (default {RULES})"
    )
    args = parser.parse_args()
    dataset = ["dataset.imbalance=longtail", f"dataset.longtail_ratio={args.longtail_ratio}"]
    common = [
        f"seed={args.seeds}",
        *dataset,
        f"train.epochs={args.epochs}",
        "finetune.epochs=1",
        "metrics.regions.enabled=false",
        "name=dp_longtail",
        f"results_dir={args.results}",
    ]
    # the full training set as the reference (`none` has no `keep`), then the rules at `keep`
    rules = [r for r in args.rules.split(",") if r]
    pruned = ",".join(r for r in rules if r != "none")
    if pruned:  # every rule keeps round(keep x N) of the N training examples (KeepFractionConfig)
        from prune_cli.core.errors import PruneCliError

        try:
            sizes = training_sizes(dataset, args.seeds)
        except PruneCliError:  # the data cannot be loaded (an unwritable cache, say): prune-run's first sweep says why, exit 2
            sizes = {}
        check_keep(parser, args.keep, sizes, balanced="class_balanced" in rules)
    choices = [["data_pruning=none"]] if "none" in rules else []
    choices += [[f"data_pruning={pruned}", f"data_pruning.keep={args.keep}"]] if pruned else []
    for choice in choices:
        cmd = [sys.executable, "-m", "prune_cli.cli", "-m", *choice, *common]
        print(" ".join(cmd[2:]), flush=True)
        run_or_exit(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})  # a refused or failed sweep stops here, with its status
    print(summary_table(args.results).round(4).to_string())


def summary_table(results: Path) -> pd.DataFrame:
    """Mean, std and count over seeds of the dense model's test accuracy, mean-class and worst-class
    recall, one row per experiment (prune_cli.results: every config value but the seed equal), labelled
    by the config keys that vary in the folder (scripts/script_tables.py). Grouping by the rule alone
    pooled runs of different settings in one folder (forgetting with observe=presentation and
    observe=epoch, another keep or epochs) as if they were seeds."""
    from prune_cli.results import load
    from script_tables import apart

    loaded = load(results)
    metrics = loaded.metrics
    dense = metrics[(metrics.phase == "dense") & (metrics.split == "test")]
    wide = dense.pivot_table(index=["experiment", "run_id"], columns="metric", values="value", aggfunc="first").reset_index()
    wide, keys = apart(loaded, wide, [])
    return wide.groupby(keys or ["experiment"], dropna=False)[["accuracy", "mean_class_recall", "worst_class_recall"]].agg(
        ["mean", "std", "count"]
    )


if __name__ == "__main__":
    main()
