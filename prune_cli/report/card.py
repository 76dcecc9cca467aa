"""The report card: which evaluation recommendations of Blalock et al., "What is the State of Neural
Network Pruning?" (MLSys 2020, Section 7) a results folder meets, and what is missing.

One row per recommendation (met / not met, what was found, what is missing):

1. pairs        at least 3 (dataset, architecture) pairs;
2. metrics      compression ratio and theoretical speedup reported for every pruned run;
3. operating    per pair, at least 5 operating points whose compression of the prunable weights
   points     1 / (1 - target sparsity) spans 2x to 32x (the ShrinkBench levels 0.5 ... 0.96875);
4. baselines    per pair, random and magnitude pruning at every operating point, and every run has
               its dense baseline; a pair whose runs are all off their target sparsity (achieved.py)
               has no operating point to check them at, and does not count as met;
5. seeds        every experiment (prune_cli/results: config minus seed) repeated with >= 3 seeds, so
               that intervals exist: a seed counts where its run has a finite value
               (`runs_with_a_value`), as the summary's n does; a run that diverged (NaN) is no seed.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from .achieved import off_target_runs
from .compare import final_values

MIN_PAIRS = 3
MIN_OPERATING_POINTS = 5
SPAN = (2.0, 32.0)
BASELINE_SCORES = ("random", "magnitude")
MIN_SEEDS = 3
SPEED_METRICS = ("compression_ratio", "theoretical_speedup")


def _row(name: str, met: bool, found: str, missing: str) -> dict:
    return {"recommendation": name, "met": bool(met), "found": found, "missing": "" if met else missing}


def runs_with_a_value(metrics: pd.DataFrame, split: str = "test") -> set:
    """The run ids whose final model has a finite `split` accuracy: phase finetuned, else pruned, else
    dense (a run without a pruned phase). The seeds the report card and the standards check count."""
    if not len(metrics):
        return set()
    acc = final_values(metrics, "accuracy", split, phases=("finetuned", "pruned", "dense"))
    value = pd.to_numeric(acc["value"], errors="coerce").to_numpy(float)
    return set(acc.loc[np.isfinite(value), "run_id"])


def report_card(metrics: pd.DataFrame, runs: pd.DataFrame, split: str = "test", failed: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The card of a folder from its metrics table (prune_cli/core/tables.py columns) and its runs
    (prune_cli.results.load(...).runs: run_id, experiment, seed). Seeds are counted where the run
    has a finite `split` accuracy (`runs_with_a_value`). `failed` (compare.failed_runs): a missing
    baseline whose runs failed is named so, not as one never run."""
    from .compare import failed_note

    if not len(metrics):
        return pd.DataFrame([_row("runs", False, "no completed run with metrics.csv", "completed runs")])
    pairs = sorted(set(zip(metrics["dataset"], metrics["model"])))
    rows = [
        _row(
            f"at least {MIN_PAIRS} dataset-architecture pairs",
            len(pairs) >= MIN_PAIRS,
            f"{len(pairs)}: " + ", ".join(f"{d}/{m}" for d, m in pairs),
            f"{MIN_PAIRS - len(pairs)} more pair(s)",
        )
    ]

    pruned = metrics[metrics["phase"] != "dense"]
    pruned_runs = set(pruned["run_id"])
    lacking = {m: len(pruned_runs - set(pruned[pruned["metric"] == m]["run_id"])) for m in SPEED_METRICS}
    rows.append(
        _row(
            "compression ratio and theoretical speedup reported",
            bool(pruned_runs) and not any(lacking.values()),
            f"{len(pruned_runs)} pruned run(s)",
            "; ".join(f"{m} missing in {n} run(s)" for m, n in lacking.items() if n) or "no pruned run",
        )
    )

    points_missing, points_found, base_missing = [], [], []
    off = off_target_runs(metrics)  # runs far from their target sparsity are no operating point at it (achieved.py)
    for dataset, model in pairs:
        everything = metrics[(metrics["dataset"] == dataset) & (metrics["model"] == model)]
        here = everything[~everything["run_id"].isin(off)]
        levels = sorted(s for s in here["target_sparsity"].unique() if s > 0)
        ratios = [1 / (1 - s) for s in levels if s < 1]
        lo, hi = (min(ratios), max(ratios)) if ratios else (np.nan, np.nan)
        missed = everything.loc[everything["run_id"].isin(off), "run_id"].nunique()
        points_found.append(
            f"{dataset}/{model}: {len(ratios)} point(s)"
            + (f", {lo:.3g}x-{hi:.3g}x" if ratios else "")
            + (f" ({missed} run(s) off their target sparsity not counted)" if missed else "")
        )
        gaps = []
        if len(ratios) < MIN_OPERATING_POINTS:
            gaps.append(f"{MIN_OPERATING_POINTS - len(ratios)} more point(s)")
        if not ratios or lo > SPAN[0] * (1 + 1e-9):
            gaps.append(f"a point at <= {SPAN[0]:g}x")
        if not ratios or hi < SPAN[1] * (1 - 1e-9):
            gaps.append(f"a point at >= {SPAN[1]:g}x")
        if gaps:
            points_missing.append(f"{dataset}/{model}: " + ", ".join(gaps))
        score = "score" if "score" in here.columns else "method"
        # a baseline is present where a pruned phase has an accuracy (NaN: nothing to compare against)
        accuracy = (here["metric"] == "accuracy") & (here["phase"] != "dense")
        measured = here[accuracy & pd.to_numeric(here["value"], errors="coerce").notna()]
        pair = {"dataset.name": dataset, "model.name": model}
        absent = [
            f"{b} at {s:g}{failed_note(failed, b, s, pair)}"
            for s in levels
            for b in BASELINE_SCORES
            if b not in set(measured[measured["target_sparsity"] == s][score])
        ]
        if missed and not levels:  # no pruned operating point to check baselines at (a dense run at 0 is none)
            absent = ["every run off its target sparsity, baselines not checkable"]
        no_dense = set(everything["run_id"]) - set(everything[everything["phase"] == "dense"]["run_id"])
        if "dense_value" in everything.columns:
            acc = everything[(everything["metric"] == "accuracy") & everything["dense_value"].notna()]
            no_dense -= set(acc["run_id"])
        if absent or no_dense:
            base_missing.append(
                f"{dataset}/{model}: " + ", ".join(absent + ([f"dense baseline of {len(no_dense)} run(s)"] if no_dense else []))
            )
    rows.append(
        _row(
            f"at least {MIN_OPERATING_POINTS} operating points spanning {SPAN[0]:g}x-{SPAN[1]:g}x compression",
            not points_missing,
            "; ".join(points_found),
            "; ".join(points_missing),
        )
    )
    rows.append(
        _row(
            "baselines present (random, magnitude, dense)",
            not base_missing,
            f"{len(pairs) - len(base_missing)} of {len(pairs)} pair(s) complete",
            "; ".join(base_missing),
        )
    )

    if len(runs) and "experiment" in runs.columns:
        valued = runs[runs["run_id"].isin(runs_with_a_value(metrics, split))]
        n_seeds = valued.groupby("experiment")["seed"].nunique().reindex(runs["experiment"].unique(), fill_value=0).sort_index()
    else:
        n_seeds = pd.Series(dtype=int)
    few = n_seeds[n_seeds < MIN_SEEDS]
    rows.append(
        _row(
            f"every experiment repeated with at least {MIN_SEEDS} seeds",
            len(n_seeds) > 0 and not len(few),
            f"{len(n_seeds)} experiment(s), seeds with a value per experiment {int(n_seeds.min()) if len(n_seeds) else 0}"
            f"-{int(n_seeds.max()) if len(n_seeds) else 0}",
            f"{len(few)} experiment(s) with fewer seeds: " + ", ".join(f"{e} ({n})" for e, n in few.items()),
        )
    )
    return pd.DataFrame(rows)
