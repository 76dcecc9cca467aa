"""Disparate impact of pruning: who pays for the lost accuracy.

- Per class, the recall change against the dense model of the same seed with a Student-t interval
  over seeds (per_class_summary.csv) and, per condition, the worst class's drop: the class with the
  lowest mean change, with that class's interval over seeds, and the mean over seeds of each
  model's own worst drop (a per-model statistic: no selection of a class after seeing the means).
- Pruning-identified exemplars (PIEs; Hooker, Courville, Clark, Dauphin and Frome, "What Do
  Compressed Deep Neural Networks Forget?", 2019, Section 3.1): test examples whose modal
  prediction across the pruned models (the seeds of one condition) differs from the modal
  prediction across the dense models (the seeds of the same comparison key: same data, model and
  training). Ties: an example's modal labels are all the classes with the highest vote count; an
  example is a PIE only when the pruned and the dense modal sets are disjoint, i.e. when the
  modal predictions differ however the ties are broken. The modal label shown is the smallest of
  a tied set (scipy.stats.mode's convention) and the tie is flagged.

The predictions come from each run's `predictions.npz` (prune_cli/run/recorder.py).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..core.stats import t_interval
from ..results.predictions import UnreadablePredictions, read_predictions
from .load import ResultsFolder, condition_keys
from .mixing import without_mixed
from .summary import final_phase

FINAL_PHASES = ("finetuned", "pruned")  # the final sparse model: finetuned where it exists, else pruned


# ----------------------------------------------------------------------------- per-class changes


def _t(values: np.ndarray, confidence: float) -> tuple[int, float, float, float]:
    """(n, mean, ci_low, ci_high) of the finite values (core/stats.py's Student-t interval)."""
    s = t_interval(values, confidence)
    return s["n_seeds"], s["mean"], s["ci_low"], s["ci_high"]


def worst_class_drops(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per condition (condition keys, split, phase) of recall-distortion rows (one row per run, class,
    split, phase with `recall` and `dense_recall`): the worst class (lowest mean recall change over
    seeds) with its change and t-interval over seeds, and the per-model worst drop (min over
    classes of each seed's change) with its t-interval. A condition in which one seed has runs of
    several configurations (mixing.py) gets no row: the report's sections say which (build.py)."""
    if not len(rows):
        return pd.DataFrame()
    df = rows.assign(delta_recall=rows["recall"] - rows["dense_recall"])
    keys = [k for k in condition_keys(df) + ["split", "phase"] if k in df.columns]
    df, _ = without_mixed(df, keys)
    if not len(df):
        return pd.DataFrame()
    # A repeated run of one seed and one configuration is averaged first, as everywhere in the report.
    per_seed = df.groupby(keys + ["seed", "class"], dropna=False, sort=True)["delta_recall"].mean().reset_index()
    # Each condition's (seed x class) table as a numpy array: one pandas pivot per condition took
    # most of this function's time on a 100-run folder (scripts/bench_report.py).
    group = per_seed.groupby(keys, dropna=False, sort=True).ngroup().to_numpy()
    order = np.argsort(group, kind="stable")  # rows of a condition stay sorted by seed, then class
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    seeds, classes = per_seed["seed"].to_numpy()[order], per_seed["class"].to_numpy()[order]
    values = per_seed["delta_recall"].to_numpy(float)[order]
    identity = per_seed[keys].iloc[order[starts]].to_dict(orient="records")
    out = []
    for ident, rows in zip(identity, np.split(np.arange(len(order)), starts[1:])):
        seed_values, seed_at = np.unique(seeds[rows], return_inverse=True)
        class_values, class_at = np.unique(classes[rows], return_inverse=True)
        wide = np.full((len(seed_values), len(class_values)), np.nan)
        wide[seed_at, class_at] = values[rows]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN class or seed gives NaN, as pandas' skipna does
            means = np.nanmean(wide, axis=0)
            per_model = np.nanmin(wide, axis=1)
        if np.isnan(means).all():
            continue
        worst = int(np.nanargmin(means))
        n, mean, lo, hi = _t(wide[:, worst], confidence)
        n_m, mean_m, lo_m, hi_m = _t(per_model, confidence)
        out.append(
            {
                **ident,
                "worst_class": int(class_values[worst]),
                "n_seeds": n,
                "worst_class_change": mean,
                "worst_class_ci_low": lo,
                "worst_class_ci_high": hi,
                "per_model_worst_change": mean_m,
                "per_model_worst_ci_low": lo_m,
                "per_model_worst_ci_high": hi_m,
                "confidence": confidence,
            }
        )
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- exemplars


def modal_votes(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """votes[i, c] = number of models (rows of `preds`, shape (models, examples)) predicting class c
    for example i."""
    preds = np.asarray(preds, np.int64)
    votes = np.zeros((preds.shape[1], num_classes), np.int64)
    examples = np.arange(preds.shape[1])
    for row in preds:
        np.add.at(votes, (examples, row), 1)
    return votes


def exemplar_table(dense_preds: np.ndarray, pruned_preds: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per example: true label, dense and pruned modal labels (smallest of a tie), whether
    each mode was tied, the share of models voting for it, and `pie` (disjoint modal sets)."""
    labels = np.asarray(labels, np.int64)
    num_classes = int(max(labels.max(initial=0), np.max(dense_preds, initial=0), np.max(pruned_preds, initial=0))) + 1
    dense, pruned = modal_votes(dense_preds, num_classes), modal_votes(pruned_preds, num_classes)
    dense_set = dense == dense.max(axis=1, keepdims=True)
    pruned_set = pruned == pruned.max(axis=1, keepdims=True)
    return pd.DataFrame(
        {
            "index": np.arange(len(labels)),
            "label": labels,
            "dense_modal": dense_set.argmax(axis=1),
            "pruned_modal": pruned_set.argmax(axis=1),
            "dense_tied": dense_set.sum(axis=1) > 1,
            "pruned_tied": pruned_set.sum(axis=1) > 1,
            "dense_agreement": dense.max(axis=1) / len(dense_preds),
            "pruned_agreement": pruned.max(axis=1) / len(pruned_preds),
            "pie": ~(dense_set & pruned_set).any(axis=1),
        }
    )


def _final_prediction(phases: dict) -> tuple[str, np.ndarray] | None:
    for phase in FINAL_PHASES:
        if phase in phases:
            return phase, phases[phase]
    return None


def pruning_identified_exemplars(folder: ResultsFolder, split: str = "test") -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(pie rows, per-class counts, notes) of a results folder: for each condition, the PIEs of its
    final sparse model against the dense models of its comparison key. The note names the completed
    runs without saved `split` predictions; a run without metrics.csv rows is left out too, and
    named by the report as such (ResultsFolder.without_table), not as one without predictions."""
    metrics = folder.table("metrics.csv")
    if not len(folder.runs) or not len(metrics) or folder.key_source != "config":
        return pd.DataFrame(), pd.DataFrame(), []
    context = [c for c in ("dataset", "model", "method", "schedule", "target_sparsity") if c in metrics.columns]
    run_dir = {r: folder.run_dirs.get(r, folder.root / "runs" / r) for r in folder.runs["run_id"]}
    preds, unreadable = {}, {}
    for r, d in run_dir.items():
        try:
            preds[r] = read_predictions(d, split).get(split)
        except UnreadablePredictions as err:  # empty, cut short, not an npz: left out like a missing file, named
            preds[r], unreadable[r] = None, str(err)
    without = sorted(r for r, p in preds.items() if p is None and r not in unreadable)
    notes: list[str] = []
    if without:
        notes.append(
            f"{len(without)} run(s) without saved {split} predictions (predictions.npz) are left out of the exemplars: "
            + ", ".join(without)
        )
    if unreadable:
        notes.append(
            f"{len(unreadable)} run(s) whose {split} predictions cannot be read are left out of the exemplars: "
            + ", ".join(f"{r} ({why})" for r, why in sorted(unreadable.items()))
        )
    runs = folder.runs[folder.runs["run_id"].map(lambda r: preds[r] is not None).to_numpy(bool)]
    runs = runs.merge(metrics.drop_duplicates("run_id")[["run_id", *context]], on="run_id", how="inner")
    pie_rows, class_rows = [], []
    for comparison, group in runs.groupby("comparison", sort=True):
        dense_by_seed: dict = {}
        for r in group.sort_values("run_id").itertuples():
            if "dense" in preds[r.run_id]["phases"]:
                dense_by_seed.setdefault(r.seed, (r.run_id, preds[r.run_id]["phases"]["dense"]))
        if not dense_by_seed:
            continue
        labels = preds[next(iter(dense_by_seed.values()))[0]]["label"]
        if any(not np.array_equal(preds[r]["label"], labels) for r in group["run_id"]):
            notes.append(f"comparison {comparison}: runs disagree on the {split} labels; no exemplars computed")
            continue
        dense = np.stack([p for _, p in dense_by_seed.values()])
        for experiment, cond in group.groupby("experiment", sort=True):
            pruned_by_seed: dict = {}
            for r in cond.sort_values("run_id").itertuples():
                final = _final_prediction(preds[r.run_id]["phases"])
                if final is not None:
                    pruned_by_seed.setdefault(r.seed, final)
            if not pruned_by_seed:
                continue
            phase = next(iter(pruned_by_seed.values()))[0]
            table = exemplar_table(dense, np.stack([p for _, p in pruned_by_seed.values()]), labels)
            first = cond.iloc[0]
            ident = {
                "experiment": experiment,
                "comparison": comparison,
                **{c: first[c] for c in context},
                **{k: first[k] for k in folder.varying if k in cond.columns},
                "phase": phase,
                "split": split,
                "n_dense_seeds": len(dense),
                "n_pruned_seeds": len(pruned_by_seed),
            }
            pies = table[table["pie"]].drop(columns="pie")
            pie_rows.append(pies.assign(**ident))
            support = np.bincount(labels, minlength=int(labels.max()) + 1)
            counts = np.bincount(pies["label"].to_numpy(np.int64), minlength=len(support))
            for c in range(len(support)):
                class_rows.append(
                    {
                        **ident,
                        "class": c,
                        "support": int(support[c]),
                        "pie_count": int(counts[c]),
                        "pie_fraction": counts[c] / support[c] if support[c] else math.nan,
                        "share_of_pies": counts[c] / len(pies) if len(pies) else math.nan,
                    }
                )
    pie = pd.concat(pie_rows, ignore_index=True) if pie_rows else pd.DataFrame()
    if len(pie):  # identity first, then the example
        ident_cols = [c for c in pie.columns if c not in table.columns]
        pie = pie[ident_cols + [c for c in table.columns if c != "pie"]]
    return pie, pd.DataFrame(class_rows), notes


# ----------------------------------------------------------------------------- markdown


def _interval(mean: float, lo: float, hi: float, scale: float = 100.0, digits: int = 1, signed: bool = True) -> str:
    """`mean [lo, hi]` scaled; with a sign on every number for a change (signed), on none for a level
    (an ECE: "0.0690 [+0.0096, +0.1285]" mixed both)."""
    if not math.isfinite(mean):
        return ""
    fmt = f"{'+' if signed else ''}.{digits}f"
    return f"{mean * scale:{fmt}}" + (f" [{lo * scale:{fmt}}, {hi * scale:{fmt}}]" if math.isfinite(lo) else "")


def disparate_markdown(worst: pd.DataFrame, pie_classes: pd.DataFrame, summary: pd.DataFrame, split: str) -> str:
    """One row per condition (final sparse model): the worst class's recall change with its interval,
    the per-model worst drop, the PIE count and the calibration error against dense."""
    from .summary import _ci_header, finite, markdown_table

    def level(table: pd.DataFrame) -> str:  # "90% CI" as the accuracy table's header names --confidence
        return _ci_header(table["confidence"]) if "confidence" in table.columns else "CI"

    parts = []
    if len(worst):
        final = final_phase(worst[worst["split"] == split])
        ci = level(final)
        table = pd.DataFrame(
            {
                "dataset/model": final["dataset"] + "/" + final["model"],
                **({"experiment": final["experiment"]} if "experiment" in final.columns else {}),  # variants apart
                "method": final["method"],
                "sparsity": final["target_sparsity"].map(lambda s: f"{s:g}"),
                "phase": final["phase"],
                "n": final["n_seeds"],
                "worst class": final["worst_class"],
                f"its recall change (points, {ci})": [
                    _interval(m, lo, hi)
                    for m, lo, hi in zip(final["worst_class_change"], final["worst_class_ci_low"], final["worst_class_ci_high"])
                ],
                f"per-model worst change ({ci})": [
                    _interval(m, lo, hi)
                    for m, lo, hi in zip(
                        final["per_model_worst_change"], final["per_model_worst_ci_low"], final["per_model_worst_ci_high"]
                    )
                ],
            }
        )
        if len(pie_classes):
            # the PIEs of the seeds with saved predictions: where those are not the row's n seeds, the cell says how many
            pies = pie_classes.groupby("experiment").agg(pies=("pie_count", "sum"), seeds=("n_pruned_seeds", "first"))
            known = "experiment" in final.columns
            counts = final["experiment"].map(pies["pies"]) if known else pd.Series(np.nan, index=final.index)
            seeds = final["experiment"].map(pies["seeds"]) if known else pd.Series(np.nan, index=final.index)
            table["PIEs"] = [
                "" if pd.isna(c) else f"{int(c)}" + ("" if s == n else f" (from {int(s)} seeds)")
                for c, s, n in zip(counts, seeds, final["n_seeds"])
            ]
        parts.append(markdown_table(table.sort_values(["dataset/model", "method", "sparsity"])))
    if len(summary) and (summary["metric"] == "ece").any():
        ece = final_phase(summary[(summary["metric"] == "ece") & (summary["split"] == split)])
        ci = level(ece)
        table = pd.DataFrame(
            {
                "dataset/model": ece["dataset"] + "/" + ece["model"],
                **({"experiment": ece["experiment"]} if "experiment" in ece.columns else {}),
                "method": ece["method"],
                "sparsity": ece["target_sparsity"].map(lambda s: f"{s:g}"),
                "phase": ece["phase"],
                "n": ece["n_seeds"],
                f"ECE ({ci})": [
                    _interval(m, lo, hi, 1.0, 4, signed=False) for m, lo, hi in zip(ece["mean"], ece["ci_low"], ece["ci_high"])
                ],
                "dense ECE": ece["dense_mean"].map(lambda v: finite(v, ".4f")),
                f"change ({ci})": [
                    _interval(m, lo, hi, 1.0, 4) for m, lo, hi in zip(ece["delta_mean"], ece["delta_ci_low"], ece["delta_ci_high"])
                ],
            }
        )
        parts.append(
            "Expected calibration error (Guo et al. 2017, 15 equal-width confidence bins) of the final sparse model:\n\n"
            + markdown_table(table.sort_values(["dataset/model", "method", "sparsity"]))
        )
    return "\n\n".join(parts)
