"""`prune-report RESULTS_DIR`: turn a results folder into summary tables, plots and an
evaluation-standards check (analysis.md section 4, R1-R8).

Reads the per-run files of every completed run (results_dir/runs/<run id>/, the source of truth;
the shared CSVs are only used when there are no run directories), joins each run with the dense
baseline of the same seed, aggregates over seeds (mean, std, n, Student-t confidence interval) and
writes into RESULTS_DIR/report/ (or --out):

  summary.csv             one row per (condition, phase, split, metric): n_seeds, mean, std, ci_low,
                          ci_high, ci_half, dense_mean, delta_mean (value - dense, per seed), delta_ci_*
  summary.md              accuracy / compression tables, intensification table, the standards check
  intensification.csv     recall-distortion statistics over seeds (analysis/recall_distortion.py)
  per_class_summary.csv   per-class recall changes over seeds, with intervals
  standards.txt           the evaluation-standards check (also printed)
  *.png                   accuracy_vs_compression, recall_change_vs_dense, regions_vs_sparsity,
                          hessian_density, ntk_vs_width (each when its data exists)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from .analysis.recall_distortion import summarise_across_seeds, summarise_classes_across_seeds
from .core.atomic_io import atomic_write_csv
from .core.stats import t_interval
from .core.tables import TABLES, shared_name

# One condition = one point of a figure; the runs inside it differ only by seed.
CONDITION = ["name", "dataset", "model", "method", "score", "allocation", "structure", "schedule",
             "target_sparsity"]
# The ShrinkBench operating points (R4): sparsities for 2, 4, 8, 16, 32x compression of the prunable weights.
STANDARD_SPARSITIES = (0.5, 0.75, 0.875, 0.9375, 0.96875)
MIN_SEEDS, MIN_PAIRS = 3, 3
BASELINE_SCORES = ("random", "magnitude")


# ----------------------------------------------------------------------------- loading


@dataclass
class ResultsFolder:
    """The tables of a results folder, concatenated over completed runs, plus run bookkeeping."""

    root: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    configs: dict[str, dict] = field(default_factory=dict)  # run_id -> resolved config
    failed: list[dict] = field(default_factory=list)  # failed.json records of runs without COMPLETE
    unfinished: list[str] = field(default_factory=list)  # run dirs with neither COMPLETE nor failed.json

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


def load_results(root: Path) -> ResultsFolder:
    root = Path(root)
    folder = ResultsFolder(root)
    run_dirs = sorted(d for d in (root / "runs").glob("*") if d.is_dir() and not d.name.startswith("."))
    complete = [d for d in run_dirs if (d / "COMPLETE").exists()]
    for d in run_dirs:
        if d in complete:
            continue
        if (d / "failed.json").exists():
            folder.failed.append({"run": d.name, **json.loads((d / "failed.json").read_text())})
        else:
            folder.unfinished.append(d.name)
    if complete:
        names = sorted({f.name for d in complete for f in d.glob("*.csv") if f.name != "history.csv"})
        for name in names:
            parts = [pd.read_csv(d / name) for d in complete if (d / name).exists() and (d / name).stat().st_size]
            if parts:
                folder.tables[name] = pd.concat(parts, ignore_index=True)
        for d in complete:
            if (d / "config.yaml").exists():
                folder.configs[d.name] = OmegaConf.to_container(OmegaConf.load(d / "config.yaml"))
        varying = varying_config_keys(folder.configs)
        if len(varying.columns):
            for name, df in folder.tables.items():
                if "run_id" in df.columns:
                    folder.tables[name] = df.merge(varying, left_on="run_id", right_index=True, how="left")
    else:  # only the shared CSVs are there (e.g. copied from a cluster without the run folders)
        for run_table in set(TABLES) | {p.name for p in root.glob("*.csv")}:
            path = root / shared_name(run_table)
            if path.exists() and path.stat().st_size:
                folder.tables[run_table] = pd.read_csv(path)
    return folder


# Config keys that never define a condition: the seed, where results go, and keys the context columns carry.
NOT_CONDITION_KEYS = ("seed", "sparsity", "name", "device", "results_dir", "shared_results", "fail_fast",
                      "dense_cache.", "hydra.", "dataset.name", "model.name", "method.name", "method.score",
                      "method.allocation", "method.structure", "schedule.name")


def _flatten(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: str(node)}


def varying_config_keys(configs: dict[str, dict]) -> pd.DataFrame:
    """Per run (index run_id), the resolved config keys whose values differ between runs (as text),
    e.g. model.widths in a width sweep; keys in NOT_CONDITION_KEYS are left out."""
    if len(configs) < 2:
        return pd.DataFrame(index=pd.Index(list(configs), name="run_id"))
    flat = pd.DataFrame.from_dict({run: _flatten(cfg) for run, cfg in configs.items()}, orient="index")
    keep = [c for c in flat.columns
            if not any(c == k or (k.endswith(".") and c.startswith(k)) for k in NOT_CONDITION_KEYS)
            and flat[c].astype(str).nunique(dropna=False) > 1]
    return flat[keep].astype(str).rename_axis("run_id")


# ----------------------------------------------------------------------------- statistics


def _keys(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k in df.columns]


def condition_keys(df: pd.DataFrame) -> list[str]:
    """The context columns of a condition plus the config keys that vary between runs (dotted names,
    e.g. model.widths, added by load_results): runs that differ only by seed share a condition."""
    return _keys(df, CONDITION) + [c for c in df.columns if "." in c]


def with_dense_baseline(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every row gets `dense_value`: the run's own column (R1), else the dense-phase row of the same run."""
    df = metrics.copy()
    dense = df[df["phase"] == "dense"][["run_id", "split", "metric", "value"]].rename(columns={"value": "_dense"})
    df = df.merge(dense.drop_duplicates(["run_id", "split", "metric"]), on=["run_id", "split", "metric"], how="left")
    if "dense_value" not in df.columns:
        df["dense_value"] = np.nan
    df["dense_value"] = df["dense_value"].where(df["dense_value"].notna(), df["_dense"])
    return df.drop(columns="_dense")


def summarise(metrics: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (condition, phase, split, metric): statistics over seeds of the value, of the dense
    baseline and of the per-seed change value - dense_value. Runs repeating a seed are averaged first."""
    df = with_dense_baseline(metrics)
    df["delta"] = df["value"] - df["dense_value"]
    keys = condition_keys(df) + ["phase", "split", "metric"]
    per_seed = df.groupby(keys + ["seed"], dropna=False, sort=True)[["value", "dense_value", "delta"]].mean()
    out = []
    for group, part in per_seed.reset_index().groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, group))
        row.update(t_interval(part["value"], confidence))
        row["seeds"] = " ".join(str(s) for s in sorted(part["seed"].unique()))
        row["dense_mean"] = float(part["dense_value"].mean())
        delta = t_interval(part["delta"], confidence)
        row.update(delta_mean=delta["mean"], delta_std=delta["std"], delta_ci_low=delta["ci_low"],
                   delta_ci_high=delta["ci_high"])
        row["confidence"] = confidence
        out.append(row)
    return pd.DataFrame(out)


def recall_distortion_rows(folder: ResultsFolder) -> pd.DataFrame:
    """Rows in the form the recall-distortion functions take: recall_distortion.csv when the metric ran,
    else built from per_class.csv and the accuracy rows of metrics.csv (same definitions)."""
    rd = folder.table("recall_distortion.csv")
    if len(rd):
        return rd
    pc, metrics = folder.table("per_class.csv"), folder.table("metrics.csv")
    if not len(pc) or not len(metrics):
        return pd.DataFrame()
    acc = with_dense_baseline(metrics[metrics["metric"] == "accuracy"])
    acc = acc[["run_id", "phase", "split", "value", "dense_value"]].rename(
        columns={"value": "accuracy", "dense_value": "dense_accuracy"})
    df = pc.merge(acc, on=["run_id", "phase", "split"], how="inner")
    if "dense_recall" not in df.columns or df["dense_recall"].isna().all():
        dense = pc[pc["phase"] == "dense"][["run_id", "split", "class", "recall"]].rename(
            columns={"recall": "dense_recall"})
        df = df.drop(columns=[c for c in ("dense_recall",) if c in df.columns]).merge(
            dense, on=["run_id", "split", "class"], how="left")
    return df


# ----------------------------------------------------------------------------- standards (R1-R8)


def standards_check(folder: ResultsFolder, summary: pd.DataFrame) -> list[str]:
    """Lines of the evaluation-standards summary: pairs, operating points, seeds, missing baselines."""
    metrics = folder.table("metrics.csv")
    lines = ["Evaluation standards (ShrinkBench checklist, analysis.md section 4.2):"]
    if not len(metrics):
        return lines + ["  no completed runs with metrics.csv found"]
    pruned = metrics[metrics["phase"] != "dense"]
    pairs = sorted(set(zip(metrics["dataset"], metrics["model"])))
    lines.append(f"  (dataset, model) pairs: {len(pairs)} -> " + ", ".join(f"{d}/{m}" for d, m in pairs)
                 + ("" if len(pairs) >= MIN_PAIRS else f"  [fewer than {MIN_PAIRS} pairs]"))
    for dataset, model in pairs:
        here = metrics[(metrics["dataset"] == dataset) & (metrics["model"] == model)]
        levels = sorted(here["target_sparsity"].unique())
        lines.append(f"  {dataset}/{model}:")
        lines.append("    operating points (target sparsity -> compression of prunable weights): "
                     + ", ".join(f"{s:g} ({1 / (1 - s):.3g}x)" for s in levels))
        missing_levels = [s for s in STANDARD_SPARSITIES if not np.isclose(levels, s).any()]
        if len(levels) < 5 or missing_levels:
            lines.append(f"    [R4] {len(levels)} operating points; missing standard levels: "
                         + (", ".join(f"{s:g}" for s in missing_levels) or "none"))
        seeds = here.groupby(["method", "schedule", "target_sparsity"])["seed"].nunique()
        for (method, schedule, level), n in seeds.items():
            flag = "" if n >= MIN_SEEDS else f"  [fewer than {MIN_SEEDS} seeds]"
            lines.append(f"    {method}/{schedule} at {level:g}: {n} seed(s){flag}")
        for level, part in here.groupby("target_sparsity"):
            present = set(part["score"])
            missing = [b for b in BASELINE_SCORES if b not in present]
            if missing:
                lines.append(f"    [R5] missing baselines at sparsity {level:g}: " + ", ".join(missing))
            variants = set(zip(part["score"], part["allocation"])) if "allocation" in part else set()
            absent = [f"{b}/{a}" for b in BASELINE_SCORES if b in present for a in ("global", "layerwise")
                      if (b, a) not in variants]
            if absent:
                lines.append(f"    [R5] baseline allocations not run at sparsity {level:g}: " + ", ".join(absent))
        dense_missing = sorted(set(here["run_id"]) - set(here[here["phase"] == "dense"]["run_id"]))
        no_dense_value = here[(here["phase"] != "dense") & here.get("dense_value", pd.Series(np.nan, index=here.index)).isna()
                              & (here["split"] != "model")]
        if dense_missing or len(no_dense_value):
            lines.append(f"    [R1] missing dense baseline for {len(set(dense_missing) | set(no_dense_value['run_id']))} run(s)")
    if not any(str(d).lower().startswith(("imagenet", "image_folder", "imagefolder")) for d, _ in pairs):
        lines.append("  [R8] no large-scale pair (an ImageNet-like dataset)")
    if not len(pruned):
        lines.append("  [R5] only dense results: no pruned phase in any run")
    if folder.failed:
        lines.append(f"  failed runs: {len(folder.failed)} -> " + ", ".join(
            f"{r['run']} ({r.get('error_type', '?')})" for r in folder.failed))
    if folder.unfinished:
        lines.append(f"  unfinished runs (no COMPLETE, no failed.json): {len(folder.unfinished)} -> "
                     + ", ".join(folder.unfinished))
    return lines


# ----------------------------------------------------------------------------- markdown


def _fmt(x: float, digits: int = 4) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        rows.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(rows)


def final_phase(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each condition's final sparse model: phase `finetuned` where it exists, else `pruned`."""
    keys = condition_keys(df)
    rank = df["phase"].map({"finetuned": 2, "pruned": 1}).fillna(0)
    best = rank.groupby([df[k] for k in keys], dropna=False).transform("max") if keys else rank.max()
    return df[(rank == best) & (rank > 0)]


def accuracy_markdown(summary: pd.DataFrame, split: str) -> str:
    final = final_phase(summary)
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)]
    if not len(acc):
        return "(no accuracy rows)"
    comp = final[(final["metric"] == "compression_ratio") & (final["split"] == "model")]
    keys = condition_keys(acc)
    table = acc.merge(comp[keys + ["mean"]].rename(columns={"mean": "compression"}), on=keys, how="left")
    out = pd.DataFrame({
        "dataset/model": table["dataset"] + "/" + table["model"], "method": table["method"],
        "schedule": table["schedule"], "sparsity": table["target_sparsity"].map(lambda s: f"{s:g}"),
        "compression": table["compression"].map(lambda c: _fmt(c, 3) + "x"),
        "phase": table["phase"], "n": table["n_seeds"],
        f"{split} accuracy": [f"{m:.4f} ± {s:.4f}" if math.isfinite(s) else f"{m:.4f}"
                              for m, s in zip(table["mean"], table["std"])],
        "95% CI" if (table["confidence"] == 0.95).all() else "CI": [
            f"[{lo:.4f}, {hi:.4f}]" if math.isfinite(lo) else "" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "dense": table["dense_mean"].map(lambda v: f"{v:.4f}"),
        "Δ vs dense": table["delta_mean"].map(lambda v: f"{v:+.4f}"),
    })
    return markdown_table(out.sort_values(["dataset/model", "method", "schedule", "sparsity"]))


# ----------------------------------------------------------------------------- entry point


def build_report(root: Path, out: Optional[Path] = None, confidence: float = 0.95, split: str = "test",
                 plots: bool = True) -> dict[str, Path]:
    """Write every table and plot for the results folder `root`; returns {artifact name: path}."""
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    root = Path(root)
    out = Path(out) if out is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    folder = load_results(root)
    written: dict[str, Path] = {}
    metrics = folder.table("metrics.csv")
    summary = summarise(metrics, confidence) if len(metrics) else pd.DataFrame()
    if len(summary):
        atomic_write_csv(summary, out / "summary.csv")
        written["summary.csv"] = out / "summary.csv"

    rd = recall_distortion_rows(folder)
    intens = per_class = pd.DataFrame()
    if len(rd):
        rd_split = rd[(rd["split"] == split) & (rd["phase"] != "dense")]
        if len(rd_split):
            keys = condition_keys(rd_split) + ["split", "phase"]
            intens = summarise_across_seeds(rd_split, keys=keys, confidence=confidence)
            per_class = summarise_classes_across_seeds(rd_split, keys=keys, confidence=confidence)
            atomic_write_csv(intens, out / "intensification.csv")
            atomic_write_csv(per_class, out / "per_class_summary.csv")
            written.update({"intensification.csv": out / "intensification.csv",
                            "per_class_summary.csv": out / "per_class_summary.csv"})

    standards = standards_check(folder, summary)
    (out / "standards.txt").write_text("\n".join(standards) + "\n")
    written["standards.txt"] = out / "standards.txt"

    md = [f"# Report: {root}", "", f"Completed runs: {len(folder.configs) or metrics.get('run_id', pd.Series()).nunique()}; "
          f"failed: {len(folder.failed)}; unfinished: {len(folder.unfinished)}. Means over seeds ± std; "
          f"{confidence:.0%} Student-t intervals.", ""]
    if len(summary):
        md += [f"## Accuracy ({split} split, final sparse model)", "", accuracy_markdown(summary, split), ""]
    if len(intens):
        t = intens[(intens["phase"].isin(["finetuned", "pruned"]))]
        t = t[[c for c in ("method", "schedule", "target_sparsity", "phase", "statistic", "n_seeds", "mean",
                           "ci_low", "ci_high") if c in t.columns]]
        md += ["## Recall distortion (intensification statistics over seeds)", "", markdown_table(t), ""]
    md += ["## Evaluation standards", "", "```", *standards, "```", ""]

    if plots:
        from . import plots as plotting

        drawn = plotting.draw_all(folder, summary, per_class, out, split)
        written.update(drawn)
        if drawn:
            md += ["## Plots", ""] + [f"![{name}]({path.name})" for name, path in drawn.items()] + [""]
    (out / "summary.md").write_text("\n".join(md))
    written["summary.md"] = out / "summary.md"
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="prune-report", description=(
        "Summarise a prune-run results folder: seed-aggregated tables (mean, std, n, t-interval), "
        "plots, and an evaluation-standards check."))
    parser.add_argument("results_dir", type=Path, help="the results_dir of prune-run (holds runs/)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default RESULTS_DIR/report)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--split", default="test", choices=["test", "val"], help="split of the tables and plots")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        parser.error(f"results folder {args.results_dir} does not exist")
    if not 0 < args.confidence < 1:
        parser.error(f"--confidence must be in (0, 1), got {args.confidence}")
    written = build_report(args.results_dir, args.out, args.confidence, args.split, plots=not args.no_plots)
    print((written["standards.txt"]).read_text(), end="")
    print("written: " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main(sys.argv[1:])
