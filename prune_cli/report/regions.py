"""The points of the regions figure (plots.regions_vs_sparsity), without matplotlib: build.py reads
them too, for the lines the report writes about the figure. Also the curve labels of every figure."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from .mixing import SEPARATE_BY_NAME, runs_of, without_mixed

FIGURE = "regions_vs_sparsity.png"


def _part(key: str, value) -> str:
    """A legend fragment: context values as they are, swept config keys as key=value with the whole
    dotted key (train.epochs and finetune.epochs both read `epochs=` when only its last part was kept)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        text = "(absent)"  # a key this curve's runs do not have (an option of another rule), as the tables write it
    else:
        text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{key}={text}" if "." in key else text


def _label(row: pd.Series, varying: list[str]) -> str:
    return "/".join(_part(k, row[k]) for k in varying) if varying else str(row.get("method", ""))


WITHIN_METHOD = ("score", "structure")  # named only where they vary within a method: else its name says them


def _varying(df: pd.DataFrame, candidates=("method", "score", "allocation", "structure", "schedule", "name"), skip=()) -> list[str]:
    """Columns that distinguish the curves: the method, plus whatever else varies in this figure
    (including swept config keys such as model.rescale). The score and the structure count where they
    vary within one method (`WITHIN_METHOD`): with only the shared CSVs, whose keys hold no method.*
    keys, magnitude unstructured and magnitude channel were one curve with two points per sparsity."""
    dotted = [c for c in df.columns if "." in c]
    if "method" in df.columns:  # method-specific keys (method.sampling, ...) say nothing the method name does not
        dotted = [c for c in dotted if df.groupby("method")[c].nunique(dropna=False).max() > 1]
    present = {c for c in candidates if c in df.columns}
    candidates = [
        c for c in list(candidates) + [c for c in dotted if _column_of(c) not in present] if c in df.columns and c not in skip
    ]
    varying = [c for c in candidates if c == "method" or df[c].nunique() > 1]
    if "method" in df.columns:
        varying = [c for c in varying if c not in WITHIN_METHOD or df.groupby("method")[c].nunique(dropna=False).max() > 1]
    # a key some runs lack (an option of one data-pruning rule) is named only where it tells apart runs
    # the other keys do not (`proxies=4` against `(absent)` in one rule): else every label listed the
    # options of every other rule as `(absent)`
    for c in candidates:
        if c in varying or not (df[c].isna().any() and df[c].notna().any()):
            continue
        # a missing key as the labels write it: pandas 3's astype(str) keeps NaN, which join refuses
        shown = df[varying].astype(object).where(df[varying].notna(), "(absent)").astype(str)
        labels = shown.agg("\x1f".join, axis=1) if varying else pd.Series("", index=df.index)
        if (df[c].isna().groupby(labels).nunique() > 1).any():
            varying.append(c)
    return [c for c in candidates if c in varying]


def _column_of(key: str) -> str | None:
    """The context column that holds the same as config key `key`: method.allocation is `allocation`,
    schedule.name is `schedule` (None: no column does)."""
    node, _, leaf = key.partition(".")
    if node == "method" and "." not in leaf:
        return leaf
    return node if leaf == "name" else None


REGION_COUNT_COLUMNS = ("lr_count", "count", "regions", "n_regions", "region_count")


def region_columns(df: pd.DataFrame) -> tuple[Optional[str], list[str]]:
    """(count column, bound columns) of a regions table: lr_count / *_count, and ub_* / *bound* columns."""
    count = next((c for c in REGION_COUNT_COLUMNS if c in df.columns), None)
    if count is None:
        count = next((c for c in df.columns if c.endswith("_count") and pd.api.types.is_numeric_dtype(df[c])), None)
    bounds = [c for c in df.columns if (c.startswith("ub_") or "bound" in c) and pd.api.types.is_numeric_dtype(df[c])]
    return count, bounds


# line styles of the bounds, one each (the count is the solid line): the three bounds of a curve shared
# its colour, its marker and "--", and their legend swatches were identical. Named in the legend.
BOUND_STYLES = ("--", ":", "-.", "-..")
STYLE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot", "-..": "dash-dot-dot"}


class RegionsTable(NamedTuple):
    """`table`: one row per (curve, series, target sparsity) with n (seeds), mean and sd (n - 1) over
    seeds of the per-seed mean, and x_sparsity: where the figure draws it (the target, or the sparsity
    the condition reached where it missed its target, `regions_table`); `varying`: the keys that tell the
    curves apart; `notes`: one line per (curve, sparsity) left out because one seed has runs of several
    configurations there (mixing.py)."""

    table: pd.DataFrame
    varying: list[str]
    notes: list[str]


def _not_counted_notes(df: pd.DataFrame) -> list[str]:
    """One note per (curve, sparsity) with runs outside the counter's scope or budget (their "not
    counted: <reason>" rows, prune_cli/metrics/regions.py): those runs have no count to average, so the
    point has fewer seeds, or no point is drawn."""
    if "counts" not in df.columns:
        return []
    text = df["counts"].astype(str)
    missing = text.str.startswith("not counted")
    if not missing.any():
        return []
    run = df["run_id"].astype(str) if "run_id" in df.columns else df.get("seed", pd.Series(range(len(df)), index=df.index)).astype(str)
    notes = []
    for (curve, sparsity), group in df.assign(_run=run, _missing=missing, _text=text).groupby(["_curve_label", "target_sparsity"]):
        lost = group[group["_missing"]]
        if not len(lost):
            continue
        reasons = "; ".join(sorted(set(lost["_text"].str.replace("not counted: ", "", regex=False))))
        notes.append(
            f"{FIGURE}: {curve or 'the curve'} at sparsity {float(sparsity):g}: regions not counted in "
            f"{lost['_run'].nunique()} of {group['_run'].nunique()} run(s) ({reasons})"
        )
    return notes


def regions_table(regions: pd.DataFrame, sparsity: Optional[pd.DataFrame] = None) -> Optional[RegionsTable]:
    """ln(region count) and the ln upper bounds of the final sparse model (finetuned, else pruned)
    per curve and target sparsity, mean and sd over seeds; None without a sparsity or a region column.
    `sparsity`: achieved.run_sparsity's rows (one per run): a (curve, target) whose runs missed the target
    by more than their tolerance is a curve of its own, "(achieved sparsity)", at the mean sparsity they
    reached (x_sparsity), as in the accuracy figure (achieved.with_achieved); before, it was drawn at the
    target, inside the curve of the conditions that reached it."""
    if not len(regions) or "target_sparsity" not in regions.columns:
        return None
    count, bounds = region_columns(regions)
    if count is None and not bounds:
        return None
    df = regions.copy()
    if "phase" in df.columns:
        present = set(df["phase"])
        df = df[df["phase"] == ("finetuned" if "finetuned" in present else "pruned" if "pruned" in present else sorted(present)[0])]
    series = []
    if count is not None:
        df["_ln_count"] = np.log(df[count].astype(float).where(df[count] > 0))
        series.append(("_ln_count", f"ln {count}", "-"))
    for i, b in enumerate(bounds):
        col = f"_ln_{b}"
        df[col] = df[b].astype(float) if "ln" in b else np.log(df[b].astype(float).where(df[b] > 0))
        series.append((col, b if "ln" in b else f"ln {b}", BOUND_STYLES[i % len(BOUND_STYLES)]))
    varying = _varying(df)
    df["_curve_label"] = [_label(r, varying) for r in df[varying].to_dict(orient="records")] if varying else ""
    not_counted = _not_counted_notes(df)
    # a (curve, sparsity) where one seed has runs of several configurations is left out (mixing.py)
    df, mixed = without_mixed(df, ["_curve_label", "target_sparsity"]) if "seed" in df.columns else (df, {})
    notes = [
        f"{FIGURE}: {curve or 'the curve'} at sparsity {float(sparsity):g} left out, its {runs_of(info)} that the curve "
        f"does not tell apart are not averaged as repeated runs; {SEPARATE_BY_NAME}"
        for (curve, sparsity), info in mixed.items()
    ] + not_counted
    columns = ["curve", "series", "style", "target_sparsity", "x_sparsity", "n", "mean", "sd"]
    if not len(df):
        return RegionsTable(pd.DataFrame(columns=columns), varying, notes)
    df = _at_achieved(df, sparsity, varying)
    keys = ["_curve_label", "target_sparsity", "x_sparsity"] + (["seed"] if "seed" in df.columns else [])
    parts = []
    for col, name, style in series:
        per_seed = df.groupby(keys, sort=True)[col].mean()  # one value per seed, then t-intervals
        if "seed" in keys:
            per_seed = per_seed.groupby(level=[0, 1, 2])
            table = pd.DataFrame({"n": per_seed.count(), "mean": per_seed.mean(), "sd": per_seed.std(ddof=1)})
        else:
            table = pd.DataFrame({"n": 1, "mean": per_seed, "sd": np.nan})
        table.index = table.index.set_names(["curve", "target_sparsity", "x_sparsity"])
        parts.append(table.reset_index().assign(series=name, style=style))
    table = pd.concat(parts, ignore_index=True)[columns]
    return RegionsTable(table, varying, notes)


def _at_achieved(df: pd.DataFrame, sparsity: Optional[pd.DataFrame], varying: list[str]) -> pd.DataFrame:
    """`df` (regions rows with _curve_label) with x_sparsity: the target, or for a (curve, target) whose
    runs missed it (the mean of their achieved sparsities further from the target than the largest of their
    conditions' tolerances: achieved.off_target, as achieved.with_achieved) that mean, its label then
    naming it "(achieved sparsity)" (and the schedule, where the curves are not told apart by it)."""
    from .achieved import off_target
    from .tolerance import TOLERANCE_COLUMN

    df = df.assign(x_sparsity=df["target_sparsity"].astype(float))
    if sparsity is None or not len(sparsity) or "run_id" not in df.columns:
        return df
    runs = sparsity.drop_duplicates("run_id").set_index("run_id")
    df["_achieved"] = df["run_id"].map(runs["sparsity_achieved"]).astype(float)
    df["_tolerance"] = df["run_id"].map(runs[TOLERANCE_COLUMN]).astype(float)
    condition = df.groupby(["_curve_label", "target_sparsity"], dropna=False, sort=False)
    reached, tolerance = condition["_achieved"].transform("mean"), condition["_tolerance"].transform("max")
    off = off_target(reached, df["target_sparsity"], tolerance.to_numpy(float))
    if not off.any():
        return df.drop(columns=["_achieved", "_tolerance"])
    schedule = df["schedule"].astype(str) + ", " if "schedule" in df.columns and "schedule" not in varying else ""
    said = (schedule + "achieved sparsity") if isinstance(schedule, pd.Series) else pd.Series("achieved sparsity", index=df.index)
    label = (df["_curve_label"].astype(str) + " (" + said + ")").str.strip()
    df["_curve_label"] = np.where(off, label, df["_curve_label"])
    df["x_sparsity"] = np.where(off, reached.to_numpy(float), df["x_sparsity"])
    return df.drop(columns=["_achieved", "_tolerance"])
