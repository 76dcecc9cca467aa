"""prune-report's statistics: dense baselines, seed-aggregated summaries with Student-t intervals,
the evaluation-standards check (R1-R8, docs/report.md) and the markdown tables."""

from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np
import pandas as pd
from scipy.special import stdtrit

from .achieved import off_target_lines, off_target_runs, with_achieved
from .tolerance import TOLERANCE, TOLERANCE_COLUMN, tolerance_of
from .levels import percent
from .load import RUN_TABLES_READ, ResultsFolder, condition_keys, mixed_code_versions
from .mixing import SEPARATE_BY_NAME, mixed_keys, rows_of, runs_of

# The ShrinkBench operating points (R4): sparsities for 2, 4, 8, 16, 32x compression of the prunable weights.
STANDARD_SPARSITIES = (0.5, 0.75, 0.875, 0.9375, 0.96875)
MIN_SEEDS, MIN_PAIRS = 3, 3
BASELINE_SCORES = ("random", "magnitude")


def with_dense_baseline(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every row gets `dense_value`: the run's own column (R1), else the dense-phase row of the same run."""
    df = metrics.copy()
    dense = df[df["phase"] == "dense"][["run_id", "split", "metric", "value"]].rename(columns={"value": "_dense"})
    df = df.merge(dense.drop_duplicates(["run_id", "split", "metric"]), on=["run_id", "split", "metric"], how="left")
    if "dense_value" not in df.columns:
        df["dense_value"] = np.nan
    df["dense_value"] = df["dense_value"].where(df["dense_value"].notna(), df["_dense"])
    return df.drop(columns="_dense")


def dense_by_seed(metrics: pd.DataFrame, split: str) -> pd.DataFrame:
    """The dense accuracy at `split` of each (condition, seed), averaged over runs repeating a seed as
    `summarise` does: the dense reference lines of accuracy_vs_compression.png average these over the
    seeds, so that a condition missing a seed does not weight the seeds it kept twice (a mean of the
    conditions' `dense_mean` moved with every missing seed: 0.959568 for 0.959259)."""
    acc = metrics[(metrics["metric"] == "accuracy") & (metrics["split"] == split)] if len(metrics) else metrics
    if not len(acc):
        return pd.DataFrame()
    df = with_dense_baseline(acc)
    keys = condition_keys(df)
    out = df.groupby(keys + ["seed"], dropna=False, sort=True)["dense_value"].mean().reset_index()
    return out.assign(seed=out["seed"].map(str))


def _t_columns(grouped, confidence: float) -> pd.DataFrame:
    """n_seeds, mean, std (n - 1) and the Student-t interval of each group's finite values: the
    formula of prune_cli.core.stats.t_interval, computed for all groups at once."""
    n = grouped.count()
    mean = grouped.mean()
    std = grouped.std(ddof=1).where(n > 1)
    df = (n - 1).where(n > 1)
    half = pd.Series(stdtrit(df, (1 + confidence) / 2), index=n.index) * std / np.sqrt(n.where(n > 0))
    return pd.DataFrame({"n_seeds": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "ci_half": half})


def phase_order(phase: str) -> tuple[int, str, int]:
    """A phase's place in a run: dense, then the rounds or steps in their order (`round_2` before
    `round_10`, which text order put first), then pruned and finetuned; another name after the steps."""
    fixed = {"dense": (0, "", 0), "pruned": (3, "", 0), "finetuned": (4, "", 0)}
    if phase in fixed:
        return fixed[phase]
    name, _, number = str(phase).rpartition("_")
    return (1, name, int(number)) if number.isdigit() and name in ("round", "step") else (2, str(phase), 0)


def in_run_order(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`table` (one row per `keys`, which end with phase, split, metric) sorted by its keys with the
    phases in the order a run records them (`phase_order`), not as text."""
    if not len(table) or "phase" not in table.columns:
        return table
    order = table["phase"].map(phase_order)
    ranked = table.assign(_rank=order.map(lambda t: t[0]), _name=order.map(lambda t: t[1]), _number=order.map(lambda t: t[2]))
    by = [k for k in keys if k != "phase"]
    at = by.index("split") if "split" in by else len(by)
    by = by[:at] + ["_rank", "_name", "_number"] + by[at:]
    return ranked.sort_values(by, kind="stable", na_position="last").drop(columns=["_rank", "_name", "_number"]).reset_index(drop=True)


def summarise(metrics: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (condition, phase, split, metric): statistics over seeds of the value, of the dense
    baseline (over the seeds with a value, those of the mean) and of the per-seed change value -
    dense_value. Runs repeating a seed with one configuration are averaged first; where a
    condition's runs of one seed are of several configurations (mixing.py) its statistics are left
    empty and `mixed` says why.
    Vectorised over groups (one Python-level loop per group cost most of prune-report's time on a
    100-run folder; scripts/bench_report.py)."""
    df = with_dense_baseline(metrics)
    df["delta"] = df["value"] - df["dense_value"]
    keys = condition_keys(df) + ["phase", "split", "metric"]
    per_seed = df.groupby(keys + ["seed"], dropna=False, sort=True)[["value", "dense_value", "delta"]].mean().reset_index()
    per_seed[["value", "delta"]] = per_seed[["value", "delta"]].replace([np.inf, -np.inf], np.nan)
    groups = per_seed.groupby(keys, dropna=False, sort=True)
    out = _t_columns(groups["value"], confidence)
    # per_seed holds one row per (condition, seed), sorted by seed within each condition; `seeds` lists
    # those with a value, the ones n_seeds counts and the statistics use
    used = per_seed[per_seed["value"].notna()]
    seeds = used["seed"].map(str).groupby([used[k] for k in keys], dropna=False, sort=True).agg(" ".join)
    out["seeds"] = seeds.reindex(out.index).fillna("")
    # the dense column over the seeds the mean uses, so that the table's accuracy - dense is its change
    out["dense_mean"] = (
        per_seed["dense_value"].where(per_seed["value"].notna()).groupby([per_seed[k] for k in keys], dropna=False, sort=True).mean()
    )
    delta = _t_columns(groups["delta"], confidence)
    for col in ("mean", "std", "ci_low", "ci_high"):
        out[f"delta_{col}"] = delta[col]
    out["confidence"] = confidence
    out = in_run_order(out.reset_index(), keys)
    out["mixed"] = pd.Series(np.nan, index=out.index, dtype=object)
    for key, info in mixed_keys(df, keys).items():  # a mean of different configurations is no statistic
        rows = rows_of(out, keys, key)
        out.loc[rows, [c for c in out.columns if c not in (*keys, "confidence", "mixed", "seeds")]] = np.nan
        out.loc[rows, "seeds"] = ""
        out.loc[rows, "mixed"] = f"{runs_of(info)} that the condition does not tell apart; {SEPARATE_BY_NAME}"
    # the sparsity tolerance the condition is judged by: the largest of its runs' (achieved.py; the default
    # where no config says it, as with only the shared CSVs)
    runs = df.drop_duplicates("run_id") if "run_id" in df.columns else df
    runs = runs.assign(**{TOLERANCE_COLUMN: tolerance_of(runs)})
    cond = condition_keys(df)
    if not cond:
        return out.assign(**{TOLERANCE_COLUMN: runs[TOLERANCE_COLUMN].max()})
    tolerance = runs.groupby(cond, dropna=False, sort=True)[TOLERANCE_COLUMN].max().reset_index()
    return out.merge(tolerance, on=cond, how="left")


def recall_distortion_rows(folder: ResultsFolder) -> pd.DataFrame:
    """Rows in the form the recall-distortion functions take, run by run: a run's recall_distortion.csv
    rows when the metric ran for it, else rows built from its per_class.csv and the accuracy rows of
    metrics.csv (same definitions). Per run, because the metric is an option: one run with it must not
    hide the per-class rows of all the runs without it. Rows repeated verbatim (shared CSVs
    concatenated twice or rebuilt on top of themselves) are kept once: joined row by row, each
    copy would multiply the others."""
    rd = folder.table("recall_distortion.csv").drop_duplicates()
    pc, metrics = folder.table("per_class.csv").drop_duplicates(), folder.table("metrics.csv").drop_duplicates()
    if len(rd) and len(pc):
        pc = pc[~pc["run_id"].isin(set(rd["run_id"]))]
    if not len(pc) or not len(metrics):
        return rd
    acc = with_dense_baseline(metrics[metrics["metric"] == "accuracy"])
    acc = acc[["run_id", "phase", "split", "value", "dense_value"]].drop_duplicates()
    acc = acc.rename(columns={"value": "accuracy", "dense_value": "dense_accuracy"})
    df = pc.merge(acc, on=["run_id", "phase", "split"], how="inner")
    if "dense_recall" not in df.columns or df["dense_recall"].isna().all():
        dense = pc[pc["phase"] == "dense"][["run_id", "split", "class", "recall"]].drop_duplicates()
        dense = dense.rename(columns={"recall": "dense_recall"})
        df = df.drop(columns=[c for c in ("dense_recall",) if c in df.columns]).merge(
            dense, on=["run_id", "split", "class"], how="left"
        )
    return pd.concat([rd, df], ignore_index=True) if len(rd) else df


# ----------------------------------------------------------------------------- standards (R1-R8)


def standards_check(
    folder: ResultsFolder, summary: pd.DataFrame, split: str = "test", failed: Optional[pd.DataFrame] = None
) -> list[str]:
    """Lines of the evaluation-standards summary: pairs, operating points, seeds (those whose run has a
    finite `split` accuracy, card.runs_with_a_value), missing baselines (those whose runs failed named
    so, `failed`: compare.failed_runs)."""
    from .card import runs_with_a_value
    from .compare import failed_note

    metrics = folder.table("metrics.csv")
    lines = ["Evaluation standards (ShrinkBench checklist, Blalock et al. MLSys 2020; docs/report.md R1-R8):"]
    if not len(metrics):  # every run failed or is unfinished: still say which
        others = [n for n in (folder.results.names if folder.results else []) if n != "metrics.csv"]  # e.g. per_class.csv only
        held = f" (the folder holds {', '.join(others)} only)" if others else ""
        return lines + [f"  no completed runs with metrics.csv (shared: runs.csv) found{held}", *_failed_and_unfinished(folder)]
    pruned = metrics[metrics["phase"] != "dense"]
    valued = runs_with_a_value(metrics, split)
    pairs = sorted(set(zip(metrics["dataset"], metrics["model"])))
    lines.append(
        f"  (dataset, model) pairs: {len(pairs)} -> "
        + ", ".join(f"{d}/{m}" for d, m in pairs)
        + ("" if len(pairs) >= MIN_PAIRS else f"  [fewer than {MIN_PAIRS} pairs]")
    )
    off = off_target_runs(metrics)  # runs far from their target sparsity: no operating point at it (achieved.py)
    for dataset, model in pairs:
        everything = metrics[(metrics["dataset"] == dataset) & (metrics["model"] == model)]
        here = everything[~everything["run_id"].isin(off)]
        levels = sorted(here["target_sparsity"].unique())
        lines.append(f"  {dataset}/{model}:")
        lines.append(
            "    operating points (target sparsity -> compression of prunable weights): "
            + (", ".join(f"{s:g} ({1 / (1 - s):.3g}x)" for s in levels) or "none")
        )
        missing_levels = [s for s in STANDARD_SPARSITIES if not np.isclose(levels, s).any()]
        if len(levels) < 5 or missing_levels:
            lines.append(
                f"    [R4] {len(levels)} operating points; missing standard levels: "
                + (", ".join(f"{s:g}" for s in missing_levels) or "none")
            )
        for (method, schedule, level), label, n, completed in _seeds_per_experiment(here, valued):
            flag = "" if n >= MIN_SEEDS else f"  [fewer than {MIN_SEEDS} seeds]"
            of = "" if n == completed else f" with a value (of {completed} completed)"
            lines.append(f"    {method}/{schedule} at {level:g}{label}: {n} seed(s){of}{flag}")
        lines += off_target_lines(everything)
        pruned_levels = [s for s in levels if s > 0]  # a dense reference run at sparsity 0 asks for no pruning baseline
        if not pruned_levels and everything["run_id"].isin(off).any():  # nothing found missing below, nothing checked
            lines.append("    [R5] baselines not checkable: every run is off its target sparsity (no operating point)")
        for level, part in here[here["target_sparsity"] > 0].groupby("target_sparsity"):
            present = set(part["score"])
            missing = [b for b in BASELINE_SCORES if b not in present]
            if missing:
                pair = {"dataset.name": dataset, "model.name": model}
                named = [f"{b}{failed_note(failed, b, level, pair)}" for b in missing]
                lines.append(f"    [R5] missing baselines at sparsity {level:g}: " + ", ".join(named))
            variants = set(zip(part["score"], part["allocation"])) if "allocation" in part else set()
            absent = [f"{b}/{a}" for b in BASELINE_SCORES if b in present for a in ("global", "layerwise") if (b, a) not in variants]
            if absent:
                lines.append(f"    [R5] baseline allocations not run at sparsity {level:g}: " + ", ".join(absent))
        # R1 asks for the dense baseline of each run: a dense phase, or the dense accuracy carried on its
        # rows. Metrics that are themselves relative to the dense model (intensification, CKA to dense)
        # have no dense value of their own and must not count as a missing baseline.
        accuracy = everything[(everything["metric"] == "accuracy") & (everything["phase"] != "dense")]
        dense_value = accuracy.get("dense_value", pd.Series(np.nan, index=accuracy.index))
        with_dense = set(everything[everything["phase"] == "dense"]["run_id"]) | set(accuracy[dense_value.notna()]["run_id"])
        dense_missing = set(everything["run_id"]) - with_dense
        if dense_missing:
            lines.append(f"    [R1] missing dense baseline for {len(dense_missing)} run(s)")
    if not any(str(d).lower().startswith(("imagenet", "image_folder", "imagefolder")) for d, _ in pairs):
        lines.append("  [R8] no large-scale pair (an ImageNet-like dataset)")
    if not len(pruned):
        lines.append("  [R5] only dense results: no pruned phase in any run")
    return lines + _failed_and_unfinished(folder)


def _seeds_per_experiment(rows: pd.DataFrame, valued: set) -> list[tuple[tuple, str, int, int]]:
    """((method, schedule, sparsity), label, number of seeds whose run is in `valued` (has a finite
    value), number of seeds completed) per experiment of `rows`: the unit the
    report card counts seeds in (card.py), so that two variants of one method (allocation global and
    layerwise, say) are never pooled into one count. Where one (method, schedule, sparsity) holds
    several experiments the label names what tells them apart (` [allocation=layerwise]`): the
    context columns that differ, then the varying config keys that no column already shows."""
    base = ["method", "schedule", "target_sparsity"]
    keys = base + (["experiment"] if "experiment" in rows.columns else [])
    out = []
    for ident, part in rows.groupby(base, sort=True):
        experiments = list(part.groupby(keys[3:], sort=True)) if len(keys) > 3 else [((), part)]
        shown = [c for c in ("score", "allocation", "structure", "name") if c in part.columns and part[c].nunique() > 1]
        dotted = [c for c in part.columns if "." in c and c.rpartition(".")[2] not in shown and part[c].nunique() > 1]
        for experiment, runs in experiments:
            label = ""
            if len(experiments) > 1:
                differing = [f"{c}={runs[c].iloc[0]}" for c in shown + dotted]
                label = (
                    " ["
                    + (", ".join(differing) or f"experiment {experiment[0] if isinstance(experiment, tuple) else experiment}")
                    + "]"
                )
            with_value = runs.loc[runs["run_id"].isin(valued), "seed"].nunique()
            out.append((ident, label, int(with_value), int(runs["seed"].nunique())))
    return out


def _failed_and_unfinished(folder: ResultsFolder) -> list[str]:
    lines = []
    if folder.failed:
        lines.append(
            f"  failed runs: {len(folder.failed)} -> " + ", ".join(f"{r['run']} ({r.get('error_type', '?')})" for r in folder.failed)
        )
    if folder.unfinished:
        lines.append(f"  unfinished runs (no COMPLETE, no failed.json): {len(folder.unfinished)} -> " + ", ".join(folder.unfinished))
    if folder.without_config:
        lines.append(
            f"  completed runs without config.yaml, left out: {len(folder.without_config)} -> " + ", ".join(folder.without_config)
        )
    if folder.bad_config:
        named = ", ".join(f"{n} ({why})" for n, why in folder.bad_config.items())
        lines.append(f"  completed runs whose config.yaml cannot be read, left out: {len(folder.bad_config)} -> {named}")
    for name, runs in folder.without_table().items():
        lines.append(f"  completed runs without {name}, left out of {RUN_TABLES_READ[name]}: {len(runs)} -> " + ", ".join(runs))
    for name, rows in folder.text_values.items():
        if rows:
            lines.append(f"  {name} rows whose value is not a number, left out: {'; '.join(rows)}")
    for name, rows in folder.repeated.items():
        if rows:
            lines.append(f"  {name} rows recorded twice with different values, that metric of that run left out: {'; '.join(rows)}")
    if folder.skipped:
        named = "; ".join(f"{n} ({why})" for n, why in folder.skipped.items())
        lines.append(f"  run directories not read: {len(folder.skipped)} -> {named}")
    mixed_code = mixed_code_versions(folder)
    if mixed_code:
        lines.append(
            f"  experiments whose seeds were made by different code (averaged as they are): {len(mixed_code)} -> "
            + "; ".join(mixed_code)
        )
    return lines


# ----------------------------------------------------------------------------- markdown


def _fmt(x: float, digits: int = 4) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def finite(x: float, spec: str, suffix: str = "") -> str:
    """`x` formatted with `spec`, then `suffix`; empty where there is no value (NaN, None, inf), as `_fmt`."""
    return "" if x is None or not math.isfinite(x) else f"{x:{spec}}{suffix}"


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text) -> str:
    """`text` on one line: every line break (`str.splitlines`'s: \\n, \\r, \\v, \\f, U+2028, ...) and other
    control character made a space, so that a value (a config value, a run's name, an error) put into a
    bullet, a paragraph, a heading or a line of the standards check can never start a line of its own,
    and with it a heading, an image, a list or a code fence of summary.md (a config value
    `"c\\n![x](/etc/hostname)"` gave a line that report.html embedded as a figure). Leading spaces are
    kept (the standards check's and the scaling law's indentation)."""
    return CONTROL.sub(" ", " ".join(str(text).splitlines()))


# What may start a markdown block at the start of a list item's text (a heading, a quote, a nested list, a
# setext underline, a table, an image, a code fence: three backticks or tildes, a link definition, HTML, a
# numbered list): escaped there. One backtick starts no block, only a code span (`rnd` stays code).
LEADING_MARK = re.compile(r"^([#>*+\-=|!\[<]|`{3}|~{3})|^(\d+)([.)])")


def item(text) -> str:
    """`text` as the text of a bullet (`- ` before it): on one line (`one_line`), and a markdown mark it starts
    with (a value first, a method named `# x` or `1. x`) escaped with a backslash, as CommonMark allows, so
    that it stays text of the item (html.py's `_bullets` undoes the escape)."""
    return LEADING_MARK.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", one_line(text), count=1)


def bullet_line(line: str) -> str:
    """A whole bullet line (`- text`, or `  - text` nested): on one line, its text as `item` makes it."""
    line = one_line(line)
    indent = len(line) - len(line.lstrip(" "))
    return line[: indent + 2] + item(line[indent + 2 :]) if line[indent:].startswith("- ") else line


def markdown_cell(text: str) -> str:
    """`text` as one markdown table cell: `|` escaped as `\\|` (GitHub-flavoured markdown) and each
    line break as `<br>`, so that a value never adds a column or ends its row; a backtick and a
    literal `<br>` in the value are escaped (`\\``, `\\<br>`) so that they stay text, not a code span
    or a line break (html.py undoes all of them)."""
    if not text:
        return ""
    escaped = str(text).replace("|", "\\|").replace("`", "\\`").replace("<br>", "\\<br>")
    return "<br>".join(escaped.splitlines())


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    rows = ["| " + " | ".join(markdown_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        rows.append("| " + " | ".join(markdown_cell(_fmt(v) if isinstance(v, float) else str(v)) for v in r) + " |")
    return "\n".join(rows)


def final_phase(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each condition's final sparse model: phase `finetuned` where it exists, else `pruned`."""
    keys = condition_keys(df)
    rank = df["phase"].map({"finetuned": 2, "pruned": 1}).fillna(0)
    best = rank.groupby([df[k] for k in keys], dropna=False).transform("max") if keys else rank.max()
    return df[(rank == best) & (rank > 0)]


def _ci_header(confidence: pd.Series) -> str:
    """'50% CI': the level of the table's intervals (--confidence); 'CI' where rows differ in it."""
    levels = confidence.dropna().unique()
    return f"{percent(levels[0])} CI" if len(levels) == 1 else "CI"


def accuracy_markdown(summary: pd.DataFrame, split: str) -> str:
    final = final_phase(summary)
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)]
    if not len(acc):
        return "(no accuracy rows)"
    comp = final[(final["metric"] == "compression_ratio") & (final["split"] == "model")]
    keys = condition_keys(acc)
    table = acc.merge(comp[keys + ["mean"]].rename(columns={"mean": "compression"}), on=keys, how="left")
    table = with_achieved(table, final, keys)  # a condition off its target is shown at what it reached (achieved.py)
    out = pd.DataFrame(
        {
            "dataset/model": table["dataset"] + "/" + table["model"],
            **({"experiment": table["experiment"]} if "experiment" in table.columns else {}),
            "method": table["method"],
            "schedule": table["schedule"],
            "sparsity": [
                f"{a:.3g} (achieved; target {t:g})" if off else f"{t:g}"
                for t, a, off in zip(table["target_sparsity"], table["sparsity_achieved"], table["off_target"])
            ],
            # the runs' mean final sparsity of the prunable weights, beside the target (absent from folders without it)
            **(
                {"sparsity_achieved": table["sparsity_achieved"].map(lambda a: finite(a, ".3g"))}
                if table["sparsity_achieved"].notna().any()
                else {}
            ),
            "compression": table["compression"].map(lambda c: finite(c, ".3g", "x")),
            "phase": table["phase"],
            "n": table["n_seeds"],
            f"{split} accuracy": [
                f"not averaged: {x}"
                if isinstance(x, str) and x
                else finite(m, ".4f") + (f" ± {s:.4f}" if math.isfinite(m) and math.isfinite(s) else "")
                for m, s, x in zip(table["mean"], table["std"], table.get("mixed", pd.Series(index=table.index, dtype=object)))
            ],
            _ci_header(table["confidence"]): [
                f"[{lo:.4f}, {hi:.4f}]" if math.isfinite(lo) else "" for lo, hi in zip(table["ci_low"], table["ci_high"])
            ],
            "dense": table["dense_mean"].map(lambda v: finite(v, ".4f")),
            "Δ vs dense": table["delta_mean"].map(lambda v: finite(v, "+.4f")),
        }
    )
    text = markdown_table(out.sort_values(["dataset/model", "method", "schedule", "sparsity"]))
    if table["off_target"].any():
        text += (
            f"\n\nsparsity: the target (the run's `sparsity`), or where the runs' final sparsity of the prunable weights "
            "(sparsity_achieved, their mean) differs from it by more than the condition's sparsity tolerance (the largest "
            f"method.sparsity_tolerance of its runs; {TOLERANCE:g}, the default, without configs and for schedule=autoprune "
            "or layer_pruning, which are not held to one), the achieved sparsity, marked so: such runs (a schedule that "
            "decides its own sparsity) are plotted there and are no operating point at the target."
        )
    return text


def experiments_markdown(folder: ResultsFolder) -> str:
    """One row per experiment key: the config keys that vary in the folder, the number of runs and the
    seeds (prune_cli/results). The method, schedule and sparsity are shown too: this table has no
    context columns, and a method x sparsity sweep left it a list of bare hashes."""
    from ..results import Results

    exp = Results(folder.root, runs=folder.runs, varying=folder.varying).experiments
    keep = ["experiment", *folder.varying, "n_runs", "seeds"]
    exp = exp[keep].groupby("experiment", as_index=False).first() if len(exp) else exp
    return markdown_table(exp[keep].fillna("(absent)"))


def _difference(x: float, scale: float) -> str:
    """A difference in the table's unit: accuracy points with 2 decimals, another metric's units (--metric)
    with 4 significant digits, as its verdicts print them (2 decimals showed an ECE difference as +0.00)."""
    return f"{x * scale:+.2f}" if scale == 100 else f"{x:+.4g}"


def _interval(lo: float, hi: float, scale: float) -> str:
    """[lo, hi] in the table's unit; empty where there is none (a comparison not made: n 0)."""
    return f"[{_difference(lo, scale)}, {_difference(hi, scale)}]" if math.isfinite(lo) and math.isfinite(hi) else ""


def _p_shown(p: float, alpha: float) -> str:
    from .compare import _p

    return "" if p is None or not math.isfinite(p) else _p(p, alpha)


def comparisons_markdown(comparisons: pd.DataFrame, confidence: float, family: str = "all the comparisons of this report") -> str:
    """The verdicts as a list, then the numbers behind them (differences in accuracy points). `family`:
    the comparisons Holm's correction ran over (--compare-by's are a family of their own)."""
    lines = [f"- {item(v)}" for v in comparisons["verdict"]]
    scale = 100.0 if (comparisons["metric"] == "accuracy").all() else 1.0
    table = pd.DataFrame(
        {
            "dataset/model": comparisons["dataset"] + "/" + comparisons["model"],
            "comparison": comparisons["comparison"],
            **({"setting": comparisons["setting"]} if "setting" in comparisons and comparisons["setting"].astype(bool).any() else {}),
            "sparsity": comparisons["target_sparsity"].map(lambda s: f"{s:g}"),
            "A - B": comparisons["method"] + " - " + comparisons["baseline"],
            "n": comparisons["n"],
            "mean diff": comparisons["mean_diff"].map(lambda v: _difference(v, scale) if math.isfinite(v) else ""),
            f"t {percent(confidence)} (not adjusted)": [
                _interval(lo, hi, scale) for lo, hi in zip(comparisons["t_low"], comparisons["t_high"])
            ],
            f"bootstrap {percent(confidence)} (not adjusted)": [
                _interval(lo, hi, scale) for lo, hi in zip(comparisons["boot_low"], comparisons["boot_high"])
            ],
            "d_z": comparisons["d_z"].map(lambda v: _fmt(v, 3)),
            # as the verdicts print p: more than two digits where two would read as the test level (0.0496 as 0.05)
            "p (t)": comparisons["p_t"].map(lambda v: _p_shown(v, 1 - confidence)),
            "p (Wilcoxon)": comparisons["p_wilcoxon"].map(lambda v: _p_shown(v, 1 - confidence)),
            "p (Holm)": comparisons["p_holm"].map(lambda v: _p_shown(v, 1 - confidence)),
        }
    )
    unit = "accuracy points (x100)" if scale == 100 else "metric units"
    note = (
        f"Differences A - B in {unit}, paired by seed. The intervals are per comparison, not adjusted for multiple "
        f"comparisons; p (Holm) is adjusted over {family}, and a verdict claims a direction "
        "only where it is below the test level:"
    )
    return "\n".join(lines) + f"\n\n{note}\n\n" + markdown_table(table)
