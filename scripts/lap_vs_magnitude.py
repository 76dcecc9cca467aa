"""LAP vs magnitude pruning at high sparsity on MNIST-1D with an MLP (issue 3 evidence).

One-shot pruning of the trained dense MLP, then fine-tuning, for each method x sparsity x seed,
as Hydra multiruns of prune-run; then a table of mean +- std test accuracy (after pruning and
after fine-tuning) read back from the shared results CSV with pandas. Compared: LAP with its
default per-layer allocation, magnitude with the same per-layer allocation (the LAP paper's
comparison) and magnitude with the project's default global allocation.

    python scripts/lap_vs_magnitude.py --results-dir results/lap_vs_magnitude
    python scripts/lap_vs_magnitude.py --results-dir results/lap_vs_magnitude --table-only

The MLP is the default [256, 256] (configs/model/mlp.yaml; 78k prunable weights), passed explicitly
(`--widths`): with [100, 100] (15k weights, the default until 2026-11-21) 98-99.5 % sparsity leaves
75-300 weights and every method is near chance. Cost: 27 runs of the default MNIST-1D experiment
(about 15-20 s each on one core when measured, with the then-default 20 dense and 10 fine-tuning
epochs; the defaults are now 40 and 20).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's


# (method, allocation) pairs compared; allow_collapse so that a collapsed layer is a data point, not an abort.
SETTINGS = [("lookahead", "layerwise"), ("magnitude", "layerwise"), ("magnitude", "global")]
# keys the sweeps set from the script's options or compare: an override of one was given to every sweep
# (`method=snip` ran snip three times, `results_dir=` sent the runs away from the folder the table reads)
OWNED = {
    "results_dir": "set from --results-dir, the folder the table reads; give --results-dir",
    "sparsity": "swept from --sparsities; give --sparsities",
    "seed": "swept from --seeds; give --seeds",
    "model.widths": "set from --widths; give --widths",
    "method": "the script compares " + ", ".join(f"{m}/{a}" for m, a in SETTINGS),
    "method.allocation": "the script compares " + ", ".join(f"{m}/{a}" for m, a in SETTINGS),
}


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
    cmd = last_value_wins(cmd)
    print("running:", " ".join(cmd), flush=True)  # the command as run: an override in place of the script's value
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    from script_args import run_or_exit  # scripts/ is on sys.path when the script runs

    run_or_exit(cmd, cwd=REPO, env=env)


def table(results_dir: Path) -> pd.DataFrame:
    """Mean ± std (n) over seeds of the test accuracy after pruning and after fine-tuning, a row per
    sparsity, a column per phase and method/allocation. Runs of one method and sparsity with different
    settings in one folder (train.epochs 20 and 40, say) are kept apart, not pooled as more seeds: the
    rows get an index level per config key that differs between them (scripts/script_tables.py)."""
    from script_tables import apart  # scripts/ is on sys.path when the script runs

    df = pd.read_csv(results_dir / "runs.csv")
    acc = df[(df.split == "test") & (df.metric == "accuracy") & df.phase.isin(["pruned", "finetuned"])]
    acc = acc.drop_duplicates(["run_id", "phase"], keep="last")
    acc = acc.assign(method=acc.method + "/" + acc.allocation)
    acc, keys = apart(results_dir, acc, ["target_sparsity", "method", "phase"])
    stats = acc.groupby(["target_sparsity", *keys, "method", "phase"])["value"].agg(["mean", "std", "count"])
    wide = stats.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} (n={int(r['count'])})", axis=1)
    return wide.unstack("phase")[["pruned", "finetuned"]].unstack("method")


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def dense_configuration(run_dir: Path) -> dict:
    """The config keys the run's dense model depends on (prune_cli/run/dense_cache.py DENSE_KEYS, and
    data_pruning and accel where set), without the seed, flattened; empty without config.yaml."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except OSError:
        return {}
    return _flat({k: config[k] for k in ("dataset", "model", "train", "data_pruning", "accel") if k in config})


def dense_lines(results_dir: Path, name: str | None = None) -> list[str]:
    """Mean ± std of the dense test accuracy over seeds, one dense model per seed: every run records
    the dense phase of the model it pruned, and the runs of one seed and dense configuration share it
    (the dense cache), so they count once. One line per dense configuration where there are several,
    named by the keys that tell them apart. `name`: only the runs of that run name (another script's
    runs in the same folder left out)."""
    df = pd.read_csv(results_dir / "runs.csv")
    if name is not None:
        df = df[df["name"] == name]
    dense = df[(df.split == "test") & (df.metric == "accuracy") & (df.phase == "dense")].drop_duplicates("run_id", keep="last")
    configs = {r: dense_configuration(results_dir / "runs" / r) for r in dense.run_id}
    dense = dense.assign(
        configuration=[json.dumps(configs[r], sort_keys=True, default=str) for r in dense.run_id],
        device=dense["device"].astype(str).str.split(":").str[0] if "device" in dense else "",  # the dense cache keys the type
    )
    identity = ["configuration", "dataset", "model", "device"]
    models = dense.drop_duplicates([*identity, "seed"], keep="last")
    groups = list(models.groupby(identity, sort=False))
    keys = [k for k in dict.fromkeys(k for c in configs.values() for k in c) if len({str(c.get(k)) for c in configs.values()}) > 1]
    lines = []
    for (configuration, *_), part in groups:
        shown = json.loads(configuration)
        label = "dense" + (" " + ", ".join(f"{k}={shown.get(k)}" for k in keys) if len(groups) > 1 and keys else "")
        spread = f" ± {100 * part.value.std():.2f}" if len(part) > 1 else ""
        lines.append(f"{label}: {100 * part.value.mean():.2f}{spread} (n={len(part)})")
    return lines


def main() -> None:
    from script_args import (
        comma_list,
        nonnegative_int,
        refuse_given,
        refuse_owned,
        require_runs,
        sparsity_arg,
        width_list,
    )  # scripts/ is on sys.path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "lap_vs_magnitude")
    p.add_argument("--sparsities", type=comma_list(sparsity_arg), default="0.98,0.99,0.995")
    p.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    p.add_argument("--widths", type=width_list, default="[256,256]", help="hidden widths of the MLP")
    p.add_argument(
        "--table-only", action="store_true", help="only read the CSVs of an earlier run (--results-dir; the run's options are refused)"
    )
    p.add_argument("overrides", nargs="*", help="extra prune-run overrides, e.g. train.epochs=10")
    args = p.parse_args()
    if args.table_only:  # the options of a run would be ignored: refused
        why = "only without --table-only, which runs nothing: it prints the tables of the runs already in --results-dir"
        refuse_given(p, why, but=("results_dir", "table_only"))
        require_runs(p, args.results_dir, "--table-only: --results-dir")
    else:
        refuse_owned(p, args.overrides, OWNED)
        for method, allocation in SETTINGS:
            run(args.results_dir.resolve(), method, allocation, args.sparsities, args.seeds, args.widths, args.overrides)
    from script_tables import setup  # the data and model of the runs read, not the script's defaults

    print(f"\n{setup(args.results_dir)}, one-shot + fine-tuning; test accuracy % (mean ± std over seeds)")
    print("\n".join(dense_lines(args.results_dir)) + "\n")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table(args.results_dir).to_string())


if __name__ == "__main__":
    main()
