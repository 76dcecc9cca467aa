"""Predicted vs actual one-shot pruning limit of an MLP on MNIST-1D trained with L1
(Zhang et al., "How Sparse Can We Prune A Deep Network", analysis.md section 2).

Runs `prune-run` (the real console entry point, in a subprocess) once per (l1, seed) with
`metrics.pruning_limit.enabled=true`: L1-regularised dense training (constant LR, no weight decay,
as the paper's FC configs), then the prediction (epsilon, SLQ over the whole training split,
R(rho), rho_hat and the trace bounds) and the 1000-ratio one-shot global-magnitude sweep without
fine-tuning. Prints one row per run and writes the table to <results>/pruning_limit_summary.csv;
where runs of one name and seed differ in a config key (a second call into the folder with another
--epochs, say), a column per such key tells them apart (scripts/script_tables.py).

    PYTHONPATH=. python scripts/pruning_limit_mnist1d.py --results /tmp/limit [--l1 0,5e-5,2e-4] [--seeds 0] [overrides ...]

Extra arguments are prune-run overrides; one of a key the script sets alike for every run
(metrics.pruning_limit.ratios=20, say) replaces the script's value. The keys it sets per run are
refused (OWNED): train.l1, seed, train.epochs and results_dir come from --l1, --seeds, --epochs and
--results, and name labels the summary's rows by the L1 strength.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's
from script_args import comma_list, nonnegative_int, nonnegative_number, positive_int, refuse_owned, run_or_exit  # noqa: E402

# keys each run's command sets from the script's options (an override of one was given to every run:
# `train.l1=0.001` trained every run with it under the names limit-l10, limit-l15e-05, ...)
OWNED = {
    "train.l1": "set per run from --l1, which names the runs (limit-l1<L1>) the summary's rows are labelled by; give --l1",
    "seed": "set per run from --seeds; give --seeds",
    "train.epochs": "set from --epochs; give --epochs",
    "name": "the script names each run limit-l1<L1>, the summary's row label",
    "results_dir": "set from --results, the folder the summary reads; give --results",
    "metrics.pruning_limit.enabled": "the runs measure the pruning limit, which the summary reads",
}


def override_arg(text: str) -> str:
    """A Hydra override (key=value, +key=value, ~key): a bare value, such as the second L1 strength of
    the space-separated lists the script once took (`--l1 0 5e-5`), is refused, not passed on."""
    if "=" not in text and not text.startswith("~"):
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: a prune-run override key=value (lists are comma-separated: --l1 0,5e-5)")
    return text


def run(results: Path, l1: float, seed: int, epochs: int, extra: list[str]) -> None:
    args = [
        "dataset=mnist1d",
        "model=mlp",
        "model.widths=[100,100]",
        f"seed={seed}",
        f"train.l1={l1}",
        f"train.epochs={epochs}",
        "train.lr=0.01",
        "train.lr_schedule=constant",
        "train.weight_decay=0",
        "train.batch_size=128",
        "finetune.epochs=0",
        "metrics.pruning_limit.enabled=true",
        "metrics.pruning_limit.ratios=1000",
        "metrics.pruning_limit.lanczos_iter=128",
        "metrics.pruning_limit.samples=0",
        f"name=limit-l1{l1:g}",
        *extra,
    ]
    cmd = last_value_wins([sys.executable, "-m", "prune_cli.cli", f"results_dir={results}", *args])
    print("$", " ".join(cmd[1:]), flush=True)  # the command as run: an override in place of the script's value
    run_or_exit(cmd, stdout=subprocess.DEVNULL)


def summary(results: Path) -> pd.DataFrame:
    """One row per run of the folder, labelled by its name (the L1 strength), seed and a column per config
    key that differs between runs of one name and seed (scripts/script_tables.py): a second call with
    --epochs 3 into the same folder gave a second `limit-l10 0` row with nothing telling the two apart."""
    from script_tables import apart

    runs = pd.read_csv(results / "runs.csv")
    dense = runs[runs.phase == "dense"]
    wanted = [
        "limit_eps",
        "limit_trace_hutchinson",
        "limit_trace_abs_slq",
        "limit_rho_hat",
        "limit_rho_hat_bound_abs",
        "limit_rho_hat_bound_hutch",
        "limit_actual_strict",
        "limit_actual_tol_0pp",
        "limit_actual_tol_0.5pp",
        "limit_actual_tol_1pp",
    ]
    rows = []
    for run_id, g in dense.groupby("run_id"):
        v = g.set_index("metric").value
        acc = g[(g.metric == "accuracy") & (g.split == "test")].value.iloc[0]
        name = g.name.iloc[0]
        rows.append(
            {
                "run_id": run_id,
                "run": name,
                "seed": int(g.seed.iloc[0]),
                "dense_test_acc": round(acc, 4),
                **{k.replace("limit_", ""): v.get(k) for k in wanted},
            }
        )
    table, keys = apart(results, pd.DataFrame(rows), ["run", "seed"])
    table = table[["run", "seed", *keys, "dense_test_acc", *(k.replace("limit_", "") for k in wanted)]]
    return table.sort_values(["run", "seed", *keys])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results/pruning_limit_mnist1d")
    parser.add_argument("--l1", type=comma_list(nonnegative_number), default="0,5e-5,2e-4", help="L1 strengths, comma-separated")
    parser.add_argument("--seeds", type=comma_list(nonnegative_int), default="0", help="seeds, comma-separated")
    parser.add_argument("--epochs", type=positive_int, default=60)
    parser.add_argument("overrides", nargs="*", type=override_arg, help="extra prune-run overrides (key=value)")
    args = parser.parse_intermixed_args()
    refuse_owned(parser, args.overrides, OWNED)
    results = Path(args.results)
    start = time.perf_counter()
    for l1 in [float(v) for v in args.l1.split(",")]:
        for seed in [int(v) for v in args.seeds.split(",")]:
            run(results, l1, seed, args.epochs, args.overrides)
    table = summary(results)
    table.to_csv(results / "pruning_limit_summary.csv", index=False)
    pd.set_option("display.width", 250)
    print(table.to_string(index=False))
    print(f"# {time.perf_counter() - start:.0f} s; sweeps in {results}/pruning_limit_sweep.csv")


if __name__ == "__main__":
    main()
