"""Achieved against target sparsity. A run's `target_sparsity` is its config's `sparsity`; what it
reached is its final `sparsity_prunable` (metrics.csv, the fraction of prunable weights that are
zero). Most schedules reach the target within method.sparsity_tolerance (the run stops otherwise,
prune_cli/pruning/pruner.py), but some decide their own sparsity (autoprune with
stop_at_target=false, layer_pruning, whose `sparsity` prune-run calls "has no effect"): tabulated,
plotted and counted at the target, a run at 0.07 read as a point at 10x compression. Where the
achieved sparsity differs from the target by more than the condition's tolerance (`tolerance_of`:
its runs' own method.sparsity_tolerance, the largest of them, else TOLERANCE) the report shows it at
the achieved sparsity, labelled so, and never counts it as an operating point at the target
(docs/report.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tolerance import TOLERANCE, TOLERANCE_COLUMN, tolerance_of


def condition_tolerance(df: pd.DataFrame) -> np.ndarray:
    """Per row, the largest tolerance (`tolerance_of`) among the rows of its condition (load.condition_keys)."""
    from .load import condition_keys

    own = pd.Series(tolerance_of(df), index=df.index)
    keys = condition_keys(df)
    if not keys or not len(df):
        return own.to_numpy(float)
    return own.groupby([df[k] for k in keys], dropna=False).transform("max").to_numpy(float)


def run_sparsity(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run with a pruned phase: run_id, its condition's columns (load.condition_keys),
    target_sparsity, sparsity_achieved (its final phase's `sparsity_prunable`, compare.final_values),
    sparsity_tolerance (its condition's, `condition_tolerance`) and off_target (|achieved - target| >
    that tolerance)."""
    from .compare import final_values
    from .load import condition_keys

    base = ["run_id", "method", "schedule", "target_sparsity", "sparsity_achieved", TOLERANCE_COLUMN, "off_target"]
    if not len(metrics):
        return pd.DataFrame(columns=base)
    rows = final_values(metrics, "sparsity_prunable", "model")
    rows = rows.assign(sparsity_achieved=pd.to_numeric(rows["value"], errors="coerce"))
    rows[TOLERANCE_COLUMN] = condition_tolerance(rows)
    rows = rows.assign(off_target=off_target(rows["sparsity_achieved"], rows["target_sparsity"], rows[TOLERANCE_COLUMN]))
    columns = base + [c for c in condition_keys(rows) if c not in base]
    return rows[[c for c in columns if c in rows.columns]].reset_index(drop=True)


def off_target(achieved: pd.Series, target: pd.Series, tolerance=TOLERANCE) -> np.ndarray:
    """Whether each achieved sparsity is further than `tolerance` (one, or one per row) from its
    target (NaN: unknown, not off)."""
    a, t, tol = np.asarray(achieved, float), np.asarray(target, float), np.asarray(tolerance, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(a) & (np.abs(a - t) > tol + 1e-12)


def off_target_runs(metrics: pd.DataFrame) -> set:
    runs = run_sparsity(metrics)
    return set(runs.loc[runs["off_target"].astype(bool), "run_id"]) if len(runs) else set()


def with_achieved(acc: pd.DataFrame, final: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`acc` (summary rows of the final phase) with sparsity_achieved (the condition's mean final
    `sparsity_prunable`), off_target (by the condition's TOLERANCE_COLUMN, summary.summarise) and
    x_sparsity: the sparsity to show and plot it at, the achieved one where it is off target, else the
    target."""
    achieved = final[(final["metric"] == "sparsity_prunable") & (final["split"] == "model")]
    achieved = achieved[keys + ["mean"]].rename(columns={"mean": "sparsity_achieved"}).drop_duplicates(keys)
    out = acc.drop(columns=[c for c in ("sparsity_achieved",) if c in acc.columns]).merge(achieved, on=keys, how="left")
    out.index = acc.index
    out["off_target"] = off_target(out["sparsity_achieved"], out["target_sparsity"], tolerance_of(out))
    out["x_sparsity"] = np.where(out["off_target"], out["sparsity_achieved"], out["target_sparsity"].astype(float))
    return out


def off_target_lines(metrics: pd.DataFrame, indent: str = "    ") -> list[str]:
    """One line per condition whose runs missed the target: what they reached. The line names the
    condition's experiment (where the runs' configs gave one) and, where several conditions share the
    method, schedule and target, what tells them apart (the context columns, then the varying config
    keys, as the standards check's seed lines do)."""
    runs = run_sparsity(metrics)
    runs = runs[runs["off_target"].astype(bool)] if len(runs) else runs
    base = ["method", "schedule", "target_sparsity"]
    lines = []
    for (method, schedule, target), part in runs.groupby(base, sort=True):
        keys = [c for c in part.columns if c in ("experiment", "score", "allocation", "structure", "name") or "." in c]
        conditions = list(part.groupby(keys, dropna=False, sort=True)) if keys else [((), part)]
        shown = [c for c in ("score", "allocation", "structure", "name") if c in part.columns and part[c].nunique(dropna=False) > 1]
        dotted = [c for c in part.columns if "." in c and c.rpartition(".")[2] not in shown and part[c].nunique(dropna=False) > 1]
        for _, condition in conditions:
            said = [f"experiment {condition['experiment'].iloc[0]}"] if "experiment" in condition.columns else []
            differing = ", ".join(f"{c}={condition[c].iloc[0]}" for c in shown + sorted(dotted))
            label = "; ".join(said + ([differing] if differing else []))
            lo, hi = condition["sparsity_achieved"].min(), condition["sparsity_achieved"].max()
            reached = f"{lo:.3g}" if np.isclose(lo, hi) else f"{lo:.3g}-{hi:.3g}"
            lines.append(
                f"{indent}[sparsity] {method}/{schedule}{f' ({label})' if label else ''}: target {target:g} not reached, "
                f"achieved {reached} ({len(condition)} run(s)); shown at its achieved sparsity, not counted as an operating point"
            )
    return lines
