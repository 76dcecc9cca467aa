"""Achieved against target sparsity. A run's `target_sparsity` is its config's `sparsity`; what it
reached is its final `sparsity_prunable` (metrics.csv, the fraction of prunable weights that are
zero). Most schedules reach the target within method.sparsity_tolerance (the run stops otherwise,
prune_cli/pruning/pruner.py), but some decide their own sparsity (autoprune with
stop_at_target=false, layer_pruning, whose `sparsity` prune-run calls "has no effect"): tabulated,
plotted and counted at the target, a run at 0.07 read as a point at 10x compression. Where the
achieved sparsity differs from the target by more than TOLERANCE the report shows it at the achieved
sparsity, labelled so, and never counts it as an operating point at the target (docs/report.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The default method.sparsity_tolerance: a run further from its target than a pruner would have
# accepted did not prune to it.
TOLERANCE = 0.005


def run_sparsity(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run with a pruned phase: run_id, method, schedule, target_sparsity, sparsity_achieved (its
    final phase's `sparsity_prunable`, compare.final_values) and off_target (|achieved - target| >
    TOLERANCE)."""
    from .compare import final_values

    columns = ["run_id", "method", "schedule", "target_sparsity", "sparsity_achieved", "off_target"]
    if not len(metrics):
        return pd.DataFrame(columns=columns)
    rows = final_values(metrics, "sparsity_prunable", "model")
    rows = rows.assign(sparsity_achieved=pd.to_numeric(rows["value"], errors="coerce"))
    rows = rows.assign(off_target=off_target(rows["sparsity_achieved"], rows["target_sparsity"]))
    return rows[[c for c in columns if c in rows.columns]].reset_index(drop=True)


def off_target(achieved: pd.Series, target: pd.Series) -> np.ndarray:
    """Whether each achieved sparsity is further than TOLERANCE from its target (NaN: unknown, not off)."""
    a, t = np.asarray(achieved, float), np.asarray(target, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(a) & (np.abs(a - t) > TOLERANCE + 1e-12)


def off_target_runs(metrics: pd.DataFrame) -> set:
    runs = run_sparsity(metrics)
    return set(runs.loc[runs["off_target"].astype(bool), "run_id"]) if len(runs) else set()


def with_achieved(acc: pd.DataFrame, final: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`acc` (summary rows of the final phase) with sparsity_achieved (the condition's mean final
    `sparsity_prunable`), off_target and x_sparsity: the sparsity to show and plot it at, the achieved
    one where it is off target, else the target."""
    achieved = final[(final["metric"] == "sparsity_prunable") & (final["split"] == "model")]
    achieved = achieved[keys + ["mean"]].rename(columns={"mean": "sparsity_achieved"}).drop_duplicates(keys)
    out = acc.drop(columns=[c for c in ("sparsity_achieved",) if c in acc.columns]).merge(achieved, on=keys, how="left")
    out.index = acc.index
    out["off_target"] = off_target(out["sparsity_achieved"], out["target_sparsity"])
    out["x_sparsity"] = np.where(out["off_target"], out["sparsity_achieved"], out["target_sparsity"].astype(float))
    return out


def off_target_lines(metrics: pd.DataFrame, indent: str = "    ") -> list[str]:
    """One line per (method, schedule, target) whose runs missed the target: what they reached."""
    runs = run_sparsity(metrics)
    runs = runs[runs["off_target"].astype(bool)] if len(runs) else runs
    lines = []
    for (method, schedule, target), part in runs.groupby(["method", "schedule", "target_sparsity"], sort=True):
        lo, hi = part["sparsity_achieved"].min(), part["sparsity_achieved"].max()
        reached = f"{lo:.3g}" if np.isclose(lo, hi) else f"{lo:.3g}-{hi:.3g}"
        lines.append(
            f"{indent}[sparsity] {method}/{schedule}: target {target:g} not reached, achieved {reached} ({len(part)} run(s)); "
            "shown at its achieved sparsity, not counted as an operating point"
        )
    return lines
