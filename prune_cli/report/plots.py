"""PNG figures of prune-report (matplotlib, Agg backend: no display needed). Each function draws one
figure when its data exists and returns the path, else None."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..core.stats import t_interval  # noqa: E402
from .load import ResultsFolder, condition_keys  # noqa: E402
from .summary import final_phase  # noqa: E402

DPI = 110


def _part(key: str, value) -> str:
    """A legend fragment: context values as they are, swept config keys as name=value."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{key.split('.')[-1]}={text}" if "." in key else text


def _label(row: pd.Series, varying: list[str]) -> str:
    return "/".join(_part(k, row[k]) for k in varying) if varying else str(row.get("method", ""))


def _varying(df: pd.DataFrame, candidates=("method", "allocation", "schedule", "name"), skip=()) -> list[str]:
    """Columns that distinguish the curves: the method, plus whatever else varies in this figure
    (including swept config keys such as model.rescale)."""
    dotted = [c for c in df.columns if "." in c]
    if "method" in df.columns:  # method-specific keys (method.sampling, ...) say nothing the method name does not
        dotted = [c for c in dotted if df.groupby("method")[c].nunique(dropna=False).max() > 1]
    candidates = list(candidates) + dotted
    return [c for c in candidates if c in df.columns and c not in skip and (c == "method" or df[c].nunique() > 1)]


def _legend(ax, fontsize: int) -> None:
    """The legend to the right of its axes, outside them, so that it never covers data; the
    constrained layout of `_save` makes room for it between panels (issue 15)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _save(fig, path: Path) -> Path:
    """Constrained layout (room for the outside legends; tight_layout warned and cut them off) and a
    tight bounding box, so nothing is clipped at the figure's edge."""
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    if legends:  # widen the figure by the legends' width, so the panels keep their size
        extra = sum(leg.get_window_extent(renderer).width for leg in legends) / fig.dpi + 0.2 * len(legends)
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + extra, height)
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _pairs(df: pd.DataFrame) -> list[tuple]:
    return sorted(set(zip(df["dataset"], df["model"])))


def accuracy_vs_compression(summary: pd.DataFrame, out: Path, split: str = "test") -> Optional[Path]:
    """Accuracy of the final sparse model against compression 1/(1-sparsity) (log axis), one curve per
    method with confidence-interval error bars; the dense accuracy as a dashed line."""
    if not len(summary):
        return None
    final = final_phase(summary)
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)]
    if not len(acc):
        return None
    pairs = _pairs(acc)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4.2), squeeze=False)
    varying = _varying(acc)
    for ax, (dataset, model) in zip(axes[0], pairs):
        part = acc[(acc["dataset"] == dataset) & (acc["model"] == model)]
        for label, curve in part.groupby(part.apply(lambda r: _label(r, varying), axis=1)):
            curve = curve.sort_values("target_sparsity")
            x = 1.0 / (1.0 - curve["target_sparsity"].to_numpy(float))
            err = np.nan_to_num(curve["ci_half"].to_numpy(float))
            ax.errorbar(x, curve["mean"], yerr=err, marker="o", capsize=3, label=label)
        dense = part["dense_mean"].mean()
        if math.isfinite(dense):
            ax.axhline(dense, color="k", ls="--", lw=1, label="dense")
        ax.set_xscale("log", base=2)
        ticks = sorted(set(np.round(1.0 / (1.0 - part["target_sparsity"].to_numpy(float)), 3)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("compression of prunable weights, 1/(1 - sparsity)")
        ax.set_ylabel(f"{split} accuracy (mean ± CI over seeds)")
        ax.set_title(f"{dataset} / {model}")
        _legend(ax, 8)
    return _save(fig, out / "accuracy_vs_compression.png")


def recall_change_vs_dense(per_class: pd.DataFrame, out: Path) -> Optional[Path]:
    """Per-class recall change (pruned - dense, mean ± CI over seeds) against the class's dense recall,
    one panel per method, colours by sparsity: the intensification picture (weak classes lose more)."""
    if not len(per_class):
        return None
    keys = condition_keys(per_class) + [k for k in ("split",) if k in per_class.columns]
    wide = per_class.pivot_table(
        index=keys + ["phase", "class"], columns="quantity", values=["mean", "ci_low", "ci_high"], dropna=False
    ).reset_index()
    wide.columns = ["_".join(c for c in col if c) if isinstance(col, tuple) else col for col in wide.columns]
    if "mean_delta_recall" not in wide.columns or "mean_dense_recall" not in wide.columns:
        return None
    wide = wide.rename(columns={"mean_delta_recall": "mean"})
    wide = final_phase(wide)
    methods = sorted(wide["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4.2), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    levels = sorted(wide["target_sparsity"].unique())
    for ax, method in zip(axes[0], methods):
        part = wide[wide["method"] == method]
        for i, level in enumerate(levels):
            pts = part[part["target_sparsity"] == level]
            if not len(pts):
                continue
            lo = (pts["mean"] - pts["ci_low_delta_recall"]).to_numpy(float)
            hi = (pts["ci_high_delta_recall"] - pts["mean"]).to_numpy(float)
            ax.errorbar(
                pts["mean_dense_recall"],
                pts["mean"],
                yerr=np.nan_to_num([lo, hi]),
                fmt="o",
                capsize=2,
                color=cmap(i / max(1, len(levels) - 1)),
                label=f"sparsity {level:g}",
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("dense recall of the class (mean over seeds)")
        ax.set_title(method)
        _legend(ax, 8)
    axes[0][0].set_ylabel("recall change vs dense (mean ± CI)")
    return _save(fig, out / "recall_change_vs_dense.png")


REGION_COUNT_COLUMNS = ("lr_count", "count", "regions", "n_regions", "region_count")


def region_columns(df: pd.DataFrame) -> tuple[Optional[str], list[str]]:
    """(count column, bound columns) of a regions table: lr_count / *_count, and ub_* / *bound* columns."""
    count = next((c for c in REGION_COUNT_COLUMNS if c in df.columns), None)
    if count is None:
        count = next((c for c in df.columns if c.endswith("_count") and pd.api.types.is_numeric_dtype(df[c])), None)
    bounds = [c for c in df.columns if (c.startswith("ub_") or "bound" in c) and pd.api.types.is_numeric_dtype(df[c])]
    return count, bounds


def regions_vs_sparsity(regions: pd.DataFrame, out: Path) -> Optional[Path]:
    """ln(region count) and the ln upper bounds against sparsity, mean ± CI over seeds, per method."""
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
    for b in bounds:
        col = f"_ln_{b}"
        df[col] = df[b].astype(float) if "ln" in b else np.log(df[b].astype(float).where(df[b] > 0))
        series.append((col, b if "ln" in b else f"ln {b}", "--"))
    varying = _varying(df)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, part in df.groupby(df.apply(lambda r: _label(r, varying), axis=1)):
        for col, name, style in series:
            stats = [
                (s, t_interval(g.groupby("seed")[col].mean() if "seed" in g else g[col])) for s, g in part.groupby("target_sparsity")
            ]
            x = [s for s, _ in stats]
            y = [t["mean"] for _, t in stats]
            err = np.nan_to_num([t["ci_half"] for _, t in stats])
            ax.errorbar(x, y, yerr=err, ls=style, marker="o", capsize=3, label=f"{label}: {name}")
    ax.set_xlabel("target sparsity")
    ax.set_ylabel("ln(number of regions)")
    _legend(ax, 7)
    return _save(fig, out / "regions_vs_sparsity.png")


def hessian_density(density: pd.DataFrame, out: Path) -> Optional[Path]:
    """SLQ spectral density of the loss Hessian, one panel per phase, one curve per (method, sparsity)
    for the smallest seed (densities of different seeds live on different grids)."""
    if not len(density) or not {"grid", "density"} <= set(density.columns):
        return None
    phases = [p for p in ("dense", "pruned", "finetuned") if p in set(density["phase"])] or sorted(set(density["phase"]))
    fig, axes = plt.subplots(1, len(phases), figsize=(5 * len(phases), 4), squeeze=False)
    seed = density["seed"].min() if "seed" in density.columns else None
    df = density[density["seed"] == seed] if seed is not None else density
    for ax, phase in zip(axes[0], phases):
        part = df[df["phase"] == phase]
        runs = part.groupby("run_id", sort=True) if "run_id" in part.columns else [("", part)]
        for _, curve in runs:  # one curve per run (each run's density has its own grid)
            first = curve.iloc[0]
            label = " ".join(
                f"{first[k]:g}" if isinstance(first[k], float) else str(first[k])
                for k in ("method", "target_sparsity")
                if k in curve.columns
            )
            if phase == "dense":
                label = "dense"
            curve = curve.sort_values("grid")
            ax.plot(curve["grid"], np.maximum(curve["density"], 1e-12), label=label)
            if phase == "dense":
                break  # every run of a seed shares its dense model
        ax.set_yscale("log")
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_title(f"{phase} (seed {seed})" if seed is not None else phase)
        _legend(ax, 7)
    axes[0][0].set_ylabel("spectral density (SLQ)")
    return _save(fig, out / "hessian_density.png")


def ntk_vs_width(metrics: pd.DataFrame, configs: dict[str, dict], out: Path) -> Optional[Path]:
    """NTK metrics (metric names starting with ntk_) of the final sparse model against the model width
    (model.widths[0] from each run's config.yaml), mean ± CI over seeds, one curve per (method, sparsity)."""
    if not len(metrics):
        return None
    ntk = metrics[metrics["metric"].astype(str).str.startswith("ntk_") & (metrics["phase"] != "dense")].copy()
    widths = {run: (cfg.get("model", {}).get("widths") or [None])[0] for run, cfg in configs.items()}
    ntk["width"] = ntk["run_id"].map(widths)
    ntk = ntk[ntk["width"].notna()]
    if not len(ntk):
        return None
    present = set(ntk["phase"])
    ntk = ntk[ntk["phase"] == ("finetuned" if "finetuned" in present else "pruned" if "pruned" in present else sorted(present)[0])]
    names = sorted(ntk["metric"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = ntk[ntk["metric"] == name]
        curve_keys = ["method", "target_sparsity"] + _varying(part, candidates=(), skip=("model.widths",))
        for key, curve in part.groupby(curve_keys):
            stats = [(w, t_interval(g.groupby("seed")["value"].mean())) for w, g in curve.groupby("width")]
            ax.errorbar(
                [w for w, _ in stats],
                [t["mean"] for _, t in stats],
                yerr=np.nan_to_num([t["ci_half"] for _, t in stats]),
                marker="o",
                capsize=3,
                label=" ".join(_part(k, v) for k, v in zip(curve_keys, key)),
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width (model.widths[0])")
        ax.set_ylabel("mean ± CI over seeds")
        ax.set_title(name)
        _legend(ax, 7)
    return _save(fig, out / "ntk_vs_width.png")


def draw_all(folder: ResultsFolder, summary: pd.DataFrame, per_class: pd.DataFrame, out: Path, split: str = "test") -> dict[str, Path]:
    drawn = {
        "accuracy_vs_compression.png": accuracy_vs_compression(summary, out, split),
        "recall_change_vs_dense.png": recall_change_vs_dense(per_class, out),
        "regions_vs_sparsity.png": regions_vs_sparsity(folder.table("regions.csv"), out),
        "hessian_density.png": hessian_density(folder.table("hessian_density.csv"), out),
        "ntk_vs_width.png": ntk_vs_width(folder.table("metrics.csv"), folder.configs, out),
    }
    return {k: v for k, v in drawn.items() if v is not None}
