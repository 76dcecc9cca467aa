"""PNG figures of prune-report (matplotlib, Agg backend: no display needed). Each function draws one
figure when its data exists and returns the path, else None."""

from __future__ import annotations

import io
import textwrap

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import stdtrit  # noqa: E402

from ..core.atomic_io import atomic_write_bytes  # noqa: E402
from ..core.stats import t_interval  # noqa: E402
from .points import ntk_points  # noqa: E402
from .regions import STYLE_NAMES, _label, _part, _varying, region_columns, regions_table  # noqa: E402, F401 (region_columns: where it was)
from .achieved import off_target, with_achieved  # noqa: E402
from .levels import percent  # noqa: E402
from .tolerance import TOLERANCE_COLUMN  # noqa: E402
from .load import condition_keys  # noqa: E402
from .summary import final_phase, phase_order  # noqa: E402

DPI = 110
# zlib level of the PNG files: 1 encodes several times faster than the default 6 for about 10 %
# larger files (the same pixels); encoding was a tenth of the drawing time (scripts/bench_report.py).
PNG_COMPRESS_LEVEL = 1


ONE_SEED = "hollow: one seed, no interval"  # the legend entry of an axes with a one-seed point (`_curve`)
ONE_SEED_FACE = "white"  # the face of a one-seed point's marker: hollow on the white axes


def _legend(ax, fontsize: int) -> None:
    """The legend to the right of its axes, outside them, so that it never covers data; `_save`
    makes room for it between panels (issue 15). Where a point of one seed was drawn (hollow, `_curve`),
    a last entry says what a hollow marker means: its missing bar is no interval of zero width."""
    if getattr(ax, "_one_seed_drawn", False):
        ax.plot([], [], ls="none", marker="o", ms=4, color="k", mfc=ONE_SEED_FACE, label=ONE_SEED)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def one_seed_points(ax, x, y, n, color, marker: str = "o", ms: float = 4) -> None:
    """Draw the points of one seed (`n` == 1) hollow over their series' markers: they have no interval, and
    their bar of zero length looked like that of several seeds that agree. `_legend` then names them."""
    one = np.asarray(n, float) == 1
    x, y = np.asarray(x, float)[one], np.asarray(y, float)[one]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.plot(x[ok], y[ok], ls="none", marker=marker, ms=ms, color=color, mfc=ONE_SEED_FACE, zorder=3)
        ax._one_seed_drawn = True


def _ci(confidence) -> str:
    """The words "mean ± 80% CI": the level of a figure's intervals (--confidence, levels.percent), or "mean ± CI"
    where it is not known (a table without its `confidence` column, or of several levels)."""
    levels = pd.Series(confidence, dtype=float).dropna().unique() if confidence is not None else []
    return f"mean ± {percent(float(levels[0]))} CI" if len(levels) == 1 else "mean ± CI"


def _curve(ax, x, y, half=None, low=None, high=None, label=None, color=None, ls="-", marker="o", fillstyle="full", n=None) -> None:
    """A series with vertical interval bars: one Line2D and one LineCollection, from numpy arrays
    (errorbar builds more artists, and pandas input goes through matplotlib's unit conversion). A series
    with no finite point is not drawn: it showed nothing on the axes and still took a legend entry (a
    regions curve whose runs were all "not counted", which the Plots section names). `n`: each point's
    number of seeds; a point of one seed has no interval and is drawn hollow (`one_seed_points`), not with
    a bar of zero length."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.isfinite(x) & np.isfinite(y)).any():
        return
    if half is not None:
        half = np.asarray(half, float)  # NaN (one seed): no bar, where a zero-length one read as seeds that agree
        low, high = y - half, y + half
    (line,) = ax.plot(x, y, ls=ls, marker=marker, ms=4, color=color, label=label, fillstyle=fillstyle)
    if low is not None:
        ok = np.isfinite(low) & np.isfinite(high)
        if ok.any():
            ax.vlines(x[ok], np.asarray(low, float)[ok], np.asarray(high, float)[ok], color=line.get_color(), lw=1)
    if n is not None:
        one_seed_points(ax, x, y, n, line.get_color(), marker)


PANEL = (4.6, 3.4)  # inches of one panel's axes
MARGINS = {"left": 0.85, "right": 0.25, "bottom": 0.6, "top": 0.65}  # inches: tick labels, axis labels, two-line titles


PER_ROW = 3  # panels to a row of a figure with one panel per pair, method, phase or metric


def _figure(n_panels: int, sharey: bool = False, per_row: int = PER_ROW):
    """A figure of `n_panels` axes, at most `per_row` to a row (`_save` keeps those rows): in one row, the
    Hessian figure of an 8-round iterative schedule was 7,642 px wide. (the figure, its axes as a list, row
    by row); `_save` places them (no layout engine). With `sharey`, the first axes of each row keeps its
    tick labels."""
    rows, cols = -(-max(n_panels, 1) // per_row), min(max(n_panels, 1), per_row)
    fig, grid = plt.subplots(rows, cols, figsize=(PANEL[0] * cols, PANEL[1] * rows), squeeze=False, sharey=sharey)
    axes = list(grid.ravel())
    for ax in axes[n_panels:]:
        ax.remove()
    fig._per_row = cols  # `_save`'s default: the rows laid out here
    return fig, axes[: max(n_panels, 1)]


def plain_text(fig) -> None:
    """Show every title, axis label and legend entry of `fig` as written: their text comes from config
    values and method names (a `dataset.cache_dir=/tmp/p$^$q`), which matplotlib would parse as mathtext
    between two `$` and, on a bad expression, stop the report with a ValueError. Tick labels keep
    mathtext (the log axes' formatters write 10^k with it)."""
    from matplotlib.text import Text

    ticks = {id(ax_.xaxis.offsetText) for ax_ in fig.axes} | {id(ax_.yaxis.offsetText) for ax_ in fig.axes}
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks |= {id(tick.label1), id(tick.label2)}
    for text in fig.findobj(Text):
        if id(text) not in ticks:
            text.set_parse_math(False)


def _save(fig, path: Path, per_row: Optional[int] = None) -> Path:
    """Place the axes by hand: each panel keeps PANEL's size and is followed by the measured width of
    its legend, so no legend covers data or leaves the figure; then save with a single draw.
    Constrained layout and bbox_inches="tight" each drew the figure again and took most of
    prune-report's time (scripts/bench_report.py). `per_row`: at most that many axes to a row, the
    rows one below the other (each column as wide as its widest panel and legend, each row as tall as
    its tallest legend); by default those of `_figure`, else every axis in one row."""
    per_row = per_row or getattr(fig, "_per_row", None)
    plain_text(fig)
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    sizes = []
    for ax in axes:
        legend = ax.get_legend()
        box = legend.get_window_extent(renderer) if legend is not None else None
        sizes.append((box.width / fig.dpi + 0.05 * PANEL[0], box.height / fig.dpi) if box is not None else (0.0, 0.0))
    m, (pw, ph) = MARGINS, PANEL
    per_row = per_row or max(len(axes), 1)
    grid = [sizes[i : i + per_row] for i in range(0, len(sizes), per_row)]
    columns = [max(m["left"] + pw + row[j][0] + m["right"] for row in grid if j < len(row)) for j in range(len(grid[0]))]
    tallest = [max([ph] + [h for _, h in row]) for row in grid]
    for ax in axes:  # a title still wider than its panel (wide glyphs: _title wraps by characters) is set smaller
        room = pw + 2 * min(m["left"], m["right"])  # centred on the axes, it may reach into the margins
        if ax.title.get_text():
            wide = ax.title.get_window_extent(renderer).width / fig.dpi
            if wide > room:
                ax.title.set_fontsize(max(4.0, ax.title.get_fontsize() * room / wide))
    # a title wrapped to more than two lines (_title) needs more room above its row than MARGINS["top"]
    titles = [ax.title.get_window_extent(renderer).height / fig.dpi + 0.2 if ax.title.get_text() else 0.0 for ax in axes]
    tops = [max([m["top"]] + titles[i * per_row : (i + 1) * per_row]) for i in range(len(grid))]
    heights = [m["bottom"] + (t - ph) + ph + top for t, top in zip(tallest, tops)]
    width, height = sum(columns), sum(heights)
    fig.set_size_inches(width, height)
    for k, ax in enumerate(axes):
        i, j = divmod(k, per_row)
        x = sum(columns[:j])
        bottom = height - sum(heights[: i + 1])  # the row's lower edge, rows from the top
        ax.set_position([(x + m["left"]) / width, (bottom + m["bottom"] + tallest[i] - ph) / height, pw / width, ph / height])
    # drawn into memory, then written atomically: on a full disk savefig's error named no file (and left a
    # torn PNG), so the report could not say which file did not fit (docs/robustness.md, "a full disk")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
    return path


def _half(table: pd.DataFrame, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the Student-t interval from columns n, sd (prune_cli.core.stats.t_interval's
    formula, for all points at once); NaN for one seed."""
    n, sd = table["n"].to_numpy(float), table["sd"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, stdtrit(np.maximum(n - 1, 1), (1 + confidence) / 2) * sd / np.sqrt(n), np.nan)


TITLE_WIDTH = 64  # characters of a title line at fontsize 9 that fit above one PANEL-wide axes


def _title(*lines: str) -> str:
    """The title's lines, each wrapped at TITLE_WIDTH: a long "curves by ..." line (a data-pruning sweep's
    keys) ran off both edges of the figure, which cut its start and end."""
    return "\n".join(textwrap.fill(line, TITLE_WIDTH, break_on_hyphens=False) for line in lines if line)


def _by(varying: list[str]) -> str:
    """The second title line: which keys tell the curves apart (swept config keys by their dotted name)."""
    return "curves by " + ", ".join(varying) if varying else ""


def _pairs(df: pd.DataFrame) -> list[tuple]:
    return sorted(set(zip(df["dataset"], df["model"])))


METHOD_COLUMNS = ("method", "score", "allocation", "structure")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
FILLS = ("full", "none", "left", "bottom")  # with MARKERS: 40 point styles for series of one colour


def _per_seed(part: pd.DataFrame, dense_seeds: Optional[pd.DataFrame]) -> Optional[pd.DataFrame]:
    """The dense value of each seed each of `part`'s conditions averages (its `seeds` column), from
    `dense_seeds` (summary.dense_by_seed); None where either is missing (a figure drawn from a summary
    alone: then the conditions' dense means are all there is)."""
    if dense_seeds is None or not len(dense_seeds) or "seeds" not in part.columns:
        return None
    keys = [k for k in condition_keys(dense_seeds) if k in part.columns]
    rows = part[keys + ["seeds"]].assign(_row=np.arange(len(part)), seed=part["seeds"].astype(str).str.split()).explode("seed")
    merged = rows.drop(columns="seeds").merge(dense_seeds[keys + ["seed", "dense_value"]], on=keys + ["seed"], how="inner")
    return merged[np.isfinite(merged["dense_value"].to_numpy(float))]


def dense_references(
    part: pd.DataFrame, varying: list[str], configs_known: bool = False, dense_seeds: Optional[pd.DataFrame] = None
) -> list[tuple[str, float]]:
    """The dashed dense lines of one (dataset, model) panel: (label, mean dense accuracy) per dense
    configuration. Curves that differ only in the method (its name, score, allocation, structure,
    method.* keys) share their dense model; curves that differ in anything else the panel varies
    (model.widths, train.epochs, the schedule) were trained from other dense models, and one line
    averaged over them (a width-16 and a width-64 MLP, say) is the dense accuracy of neither.
    One line "dense" when all the curves share one dense value; else one per configuration,
    labelled by what tells the configurations apart. `configs_known` False (only the shared CSVs:
    the keys hold no train.epochs or widths, docs/report.md "Runs a key cannot tell apart"): within
    one configuration's curves, conditions whose dense values differ come from different dense
    models, and each value gets its own line, labelled by the sparsities it belongs to.
    A line's value is the mean over seeds of each seed's dense accuracy (`dense_seeds`, from
    summary.dense_by_seed), not the mean of the conditions' dense means, which weighted the seeds of
    conditions that missed one twice; and where every seed has one dense value across a configuration's
    conditions, they share a dense model even if their means differ (a missing seed), and get one line."""
    keys = [c for c in varying if c not in METHOD_COLUMNS and not c.startswith("method.")]
    part = part[np.isfinite(part["dense_mean"].to_numpy(float))]
    seeds = _per_seed(part, dense_seeds)
    frames = [(_label(g.iloc[0], keys), g) for _, g in part.groupby(keys, dropna=False)] if keys else [("", part)]
    groups = []
    for label, g in frames:
        values = g["dense_mean"].round(9)
        if seeds is not None:
            mine = seeds[seeds["_row"].isin(np.flatnonzero(part.index.isin(g.index)))]
            per_seed = mine.groupby("seed")["dense_value"]
            if len(mine) and (configs_known or (per_seed.agg(lambda v: v.round(9).nunique()) <= 1).all()):
                groups.append((label, float(per_seed.mean().mean())))
                continue
        if configs_known or values.nunique() <= 1:
            groups.append((label, float(g["dense_mean"].mean())))
            continue
        for _, h in g.groupby(values, sort=True):
            at = ", ".join(f"{float(x):g}" for x in sorted(h["target_sparsity"].unique()))
            groups.append((f"{label} (sparsity {at})".strip(), float(h["dense_mean"].mean())))
    if len({round(value, 12) for _, value in groups}) <= 1:
        return [("dense", groups[0][1])] if groups else []
    return [(f"dense {label}", value) for label, value in groups]


LINE_STYLES = ("-", "--", ":", "-.")
LINE_STYLE_OF = {"-..": (0, (3, 1.5, 1, 1.5, 1, 1.5))}  # regions.BOUND_STYLES' names matplotlib has no short form for


def curve_style(k: int) -> dict:
    """Colour, line style and marker of a figure's k-th curve: the 10 colours of matplotlib's cycle, then
    the next line style and marker with each further 10 curves, so that 40 curves differ in at least one
    (before, curve 10 looked exactly like curve 0)."""
    return {"color": f"C{k % 10}", "ls": LINE_STYLES[(k // 10) % len(LINE_STYLES)], "marker": MARKERS[(k // 10) % len(MARKERS)]}


DENSE_LINE_STYLES = ("--", ":", "-.")
DENSE_GREYS = ("k", "0.45", "0.7")  # black, then two greys that stay visible on white
DENSE_MARKERS = ("", "x", "+", "|")


def dense_style(k: int) -> dict:
    """Line style, grey level and marker of a figure's k-th dense reference line: the three line styles, then
    the next grey with each further 3 lines, then the next marker (at the line's ends) with each further 9, so
    that 36 lines differ in at least one (before, all were black and cycled over the 3 styles: the 4th looked
    exactly like the 1st)."""
    n_styles, n_greys = len(DENSE_LINE_STYLES), len(DENSE_GREYS)
    return {
        "ls": DENSE_LINE_STYLES[k % n_styles],
        "color": DENSE_GREYS[(k // n_styles) % n_greys],
        "marker": DENSE_MARKERS[(k // (n_styles * n_greys)) % len(DENSE_MARKERS)],
    }


def accuracy_vs_compression(
    summary: pd.DataFrame, out: Path, split: str = "test", configs_known: bool = False, dense_seeds: Optional[pd.DataFrame] = None
) -> Optional[Path]:
    """Accuracy of the final sparse model against compression 1/(1-sparsity) (log axis), one curve per
    method with confidence-interval error bars; the dense accuracy as dashed lines (`dense_references`;
    `configs_known`: the runs' config.yaml gave the experiment keys; `dense_seeds`: each condition's
    dense accuracy per seed, summary.dense_by_seed)."""
    if not len(summary):
        return None
    final = final_phase(summary)
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)]
    acc = acc[np.isfinite(acc["mean"].to_numpy(float))]  # a condition not averaged (`mixed`) has no point
    if not len(acc):
        return None
    # a condition off its target sparsity (a schedule that decides its own) is drawn at what it reached, as a
    # curve of its own whose label names its schedule (achieved.py)
    acc = with_achieved(acc, final, condition_keys(acc))
    pairs = _pairs(acc)
    fig, axes = _figure(len(pairs))
    varying = _varying(acc)
    ci = _ci(acc["confidence"] if "confidence" in acc.columns else None)
    for ax, (dataset, model) in zip(axes, pairs):
        part = acc[(acc["dataset"] == dataset) & (acc["model"] == model)]
        labels = [_label(r, varying) for r in part[varying].to_dict(orient="records")] if varying else ["" for _ in range(len(part))]
        labels = [
            f"{label or method} ({schedule}, achieved sparsity)"
            if off and "schedule" not in varying
            else f"{label} (achieved sparsity)"
            if off
            else label
            for label, method, schedule, off in zip(labels, part["method"], part["schedule"], part["off_target"])
        ]
        for k, (label, curve) in enumerate(part.groupby(np.asarray(labels, dtype=object))):
            curve = curve.sort_values("x_sparsity")
            x = 1.0 / (1.0 - curve["x_sparsity"].to_numpy(float))
            n = curve["n_seeds"] if "n_seeds" in curve.columns else None
            _curve(ax, x, curve["mean"], half=curve["ci_half"], label=label, n=n, **curve_style(k))
        for k, (label, dense) in enumerate(dense_references(part, varying, configs_known, dense_seeds)):
            ax.axhline(dense, lw=1, label=label, **dense_style(k))
        ax.set_xscale("log", base=2)
        ticks = sorted(set(np.round(1.0 / (1.0 - part["x_sparsity"].to_numpy(float)), 3)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("compression of prunable weights, 1/(1 - sparsity)")
        ax.set_ylabel(f"{split} accuracy ({ci} over seeds)")
        ax.set_title(_title(f"{dataset} / {model}: final sparse model", _by(varying)), fontsize=9)
        _legend(ax, 8)
    return _save(fig, out / "accuracy_vs_compression.png")


def achieved_by_condition(table: pd.DataFrame, sparsity: Optional[pd.DataFrame]) -> pd.DataFrame:
    """`table` (one row per condition, or more) with off_target and x_sparsity, as achieved.with_achieved gives
    the accuracy figure: x_sparsity is the sparsity the condition reached (the mean over its runs of their final
    `sparsity_prunable`) where that is further from its target than its tolerance, else the target. `sparsity`:
    achieved.run_sparsity's rows (one per run); without them (a figure drawn from its table alone) every
    condition is at its target, as before."""
    target = table["target_sparsity"].astype(float).to_numpy()
    out = table.assign(off_target=False, x_sparsity=target)
    if sparsity is None or not len(sparsity) or not len(table):
        return out
    keys = [k for k in condition_keys(table) if k in sparsity.columns]
    if "target_sparsity" not in keys:
        return out
    runs = sparsity[keys + ["sparsity_achieved", TOLERANCE_COLUMN]]
    reached = runs.groupby(keys, dropna=False, sort=False).agg(
        _achieved=("sparsity_achieved", "mean"), _tolerance=(TOLERANCE_COLUMN, "max")
    )
    merged = table[keys].merge(reached.reset_index(), on=keys, how="left")
    off = off_target(merged["_achieved"], target, merged["_tolerance"].to_numpy(float))
    return out.assign(off_target=off, x_sparsity=np.where(off, merged["_achieved"].to_numpy(float), target))


def recall_change_vs_dense(per_class: pd.DataFrame, out: Path, sparsity: Optional[pd.DataFrame] = None) -> Optional[Path]:
    """Per-class recall change (pruned - dense, mean ± CI over seeds) against the class's dense recall,
    one panel per method, colours by sparsity and one series per variant of the method (the keys that
    vary within it: allocation, schedule, name, dataset, model, widths, epochs, ...; marker by variant): the
    intensification picture (weak classes lose more), one point per class in each series. A condition that
    missed its target (`sparsity`: achieved.run_sparsity's rows; `achieved_by_condition`) is a series of its
    own at the sparsity it reached, labelled "achieved sparsity", as in the accuracy figure; before, it was
    labelled and coloured by its target."""
    if not len(per_class):
        return None
    # One row per (condition, phase, class): the experiment key identifies the condition. A
    # pivot_table over every condition column with dropna=False built their Cartesian product (20 GB
    # for a folder with method-specific keys such as LAP's).
    # the dataset and model too: a method's panel holds every (dataset, model), whose class points were one series
    candidates = ("method", *METHOD_COLUMNS[1:], "schedule", "name", "dataset", "model")
    varying = [k for k in _varying(per_class, candidates=candidates) if k != "method"]
    if "method" in per_class.columns:  # keys that vary within a method: the variants of its panel
        varying = [k for k in varying if per_class.groupby("method")[k].nunique(dropna=False).max() > 1]
    ci = _ci(per_class["confidence"] if "confidence" in per_class.columns else None)
    per_class = per_class.assign(
        _variant=[" ".join(_part(k, r[k]) for k in varying) for r in per_class[varying].to_dict(orient="records")] if varying else ""
    )
    # the achieved sparsity of each condition, while its keys are still columns
    per_class = achieved_by_condition(per_class, sparsity)
    per_class = per_class.assign(_schedule=per_class["schedule"].astype(str) if "schedule" in per_class.columns else "")
    keys = [
        k
        for k in ("experiment", "dataset", "model", "method", "_variant", "target_sparsity", "split", "phase", "class")
        if k in per_class.columns
    ]
    columns = [c for c in ("mean", "ci_low", "ci_high", "n_seeds") if c in per_class.columns]
    values = per_class.set_index(keys + ["quantity"])[columns]
    wide = values[~values.index.duplicated()].unstack("quantity").reset_index()
    wide.columns = ["_".join(c for c in col if c) if isinstance(col, tuple) else col for col in wide.columns]
    if "mean_delta_recall" not in wide.columns or "mean_dense_recall" not in wide.columns:
        return None
    where = per_class.drop_duplicates(keys)[keys + ["off_target", "x_sparsity", "_schedule"]]
    wide = wide.merge(where, on=keys, how="left")
    wide = wide.rename(columns={"mean_delta_recall": "mean"})
    wide = final_phase(wide)
    methods = sorted(wide["method"].unique())
    fig, axes = _figure(len(methods), sharey=True)
    cmap = plt.get_cmap("viridis")
    levels = sorted(set(wide["x_sparsity"].astype(float)))
    series = sorted(set(zip(wide["x_sparsity"].astype(float), wide["off_target"].astype(bool), wide["_schedule"])))
    variants = sorted(wide["_variant"].unique())
    for ax, method in zip(axes, methods):
        part = wide[wide["method"] == method]
        for level, off, schedule in series:
            at = part[(part["x_sparsity"] == level) & (part["off_target"] == off) & (part["_schedule"] == schedule)]
            colour = cmap(levels.index(level) / max(1, len(levels) - 1))
            said = (f"{schedule}, " if "schedule" not in varying and schedule else "") + "achieved sparsity"
            for j, variant in enumerate(variants):
                pts = at[at["_variant"] == variant]
                if not len(pts):
                    continue
                _curve(
                    ax,
                    pts["mean_dense_recall"],
                    pts["mean"],
                    low=pts["ci_low_delta_recall"],
                    high=pts["ci_high_delta_recall"],
                    color=colour,
                    label=f"sparsity {level:g}{f' ({said})' if off else ''} {variant}".strip(),
                    ls="none",
                    marker=MARKERS[j % len(MARKERS)],
                    fillstyle=FILLS[(j // len(MARKERS)) % len(FILLS)],  # variant j and j+10 differed in nothing
                    n=pts["n_seeds_delta_recall"] if "n_seeds_delta_recall" in pts.columns else None,
                )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("dense recall of the class (mean over seeds)")
        shape = f", marker = {', '.join(varying)}" if varying else ""
        colour_is = "sparsity (the achieved one where labelled so, else the target)" if wide["off_target"].any() else "target sparsity"
        ax.set_title(_title(f"{method}: one point per class", f"colour = {colour_is}{shape}"), fontsize=9)
        _legend(ax, 8)
    for ax in axes[::PER_ROW]:  # the first panel of each row: the others share its y axis
        ax.set_ylabel(f"recall change vs dense ({ci} over seeds)")
    return _save(fig, out / "recall_change_vs_dense.png")


def regions_vs_sparsity(
    regions: pd.DataFrame, out: Path, confidence: float = 0.95, sparsity: Optional[pd.DataFrame] = None
) -> Optional[Path]:
    """ln(region count) and the ln upper bounds against sparsity, mean ± CI (at `confidence`, prune-report's
    --confidence) over seeds, per method (the points of regions.regions_table). Not drawn when no run's
    regions were counted (its axes would be empty; the report's Plots section says so and why). `sparsity`:
    achieved.run_sparsity's rows: a condition that missed its target is a curve of its own at the sparsity
    it reached (regions_table). Each bound has its own line style, named in the legend."""
    drawn = regions_table(regions, sparsity)
    if drawn is None or not np.isfinite(drawn.table["mean"].to_numpy(float)).any():
        return None
    fig, axes = _figure(1)
    ax = axes[0]
    curves = list(dict.fromkeys(drawn.table["curve"]))
    for (curve, series, style), part in drawn.table.groupby(["curve", "series", "style"], sort=False):
        part = part.sort_values("x_sparsity")
        look = curve_style(curves.index(curve))  # one colour and marker per curve, its series told apart by line style
        name = f"{series} ({STYLE_NAMES[style]})" if style != "-" else series  # the count: the solid line
        label = f"{curve}: {name}" if curve else name
        _curve(
            ax,
            part["x_sparsity"],
            part["mean"],
            half=_half(part, confidence),
            ls=LINE_STYLE_OF.get(style, style),
            label=label,
            color=look["color"],
            marker=look["marker"],
            n=part["n"],
        )
    ax.set_title(_title("linear regions of the final sparse model", _by(drawn.varying)), fontsize=9)
    off = (drawn.table["x_sparsity"].astype(float) != drawn.table["target_sparsity"].astype(float)).any()
    ax.set_xlabel("sparsity (target; achieved where labelled so)" if off else "target sparsity")
    ax.set_ylabel(f"ln(number of regions) ({_ci(confidence)} over seeds)")
    _legend(ax, 7)
    return _save(fig, out / "regions_vs_sparsity.png")


def hessian_density(density: pd.DataFrame, out: Path) -> Optional[Path]:
    """SLQ spectral density of the loss Hessian, one panel per phase recorded (dense, each round or step,
    pruned, finetuned: `summary.phase_order`; at most PER_ROW to a row), one curve per run of its
    condition's smallest seed (densities of different seeds live on different grids, so none is averaged;
    the folder's smallest seed dropped every condition without a run of it), labelled by the
    method, the sparsity and every key that varies (`hessian_labels`), and by its seed where the
    conditions' smallest seeds differ (else the panel's title names the one seed). The dense panel draws one curve
    per dense model: the runs of one dense model carry the same dense density; runs of other widths or
    epochs carry their own, and each is drawn (before, only the first run's)."""
    if not len(density) or not {"grid", "density"} <= set(density.columns):
        return None
    # every phase recorded, in the order a run records it: the rounds and steps of an iterative or gradual
    # schedule (round_2 before round_10) were never drawn while a dense, pruned or finetuned one existed
    phases = sorted(set(density["phase"].astype(str)), key=phase_order)
    fig, axes = _figure(len(phases))
    df = density
    if "seed" in df.columns:  # each condition's own smallest seed
        keys = [k for k in condition_keys(df) if k != "seed"]
        smallest = df.groupby(keys, dropna=False)["seed"].transform("min") if keys else df["seed"].min()
        df = df[df["seed"] == smallest]
    df = df.drop_duplicates()  # the same run's rows copied into the shared CSVs twice
    if "run_id" not in df.columns:
        df = df.assign(run_id="")
    seeds = sorted(set(df["seed"])) if "seed" in df.columns else []
    seed = seeds[0] if len(seeds) == 1 else None
    run_seed = df.groupby("run_id", sort=True)["seed"].first() if len(seeds) > 1 else None
    labels, dense_labels = hessian_labels(df)
    if run_seed is not None:  # the conditions' smallest seeds differ: each label names its own
        labels = {run: f"{label}, seed {run_seed[run]}" for run, label in labels.items()}
    for ax, phase in zip(axes, phases):
        part = df[df["phase"] == phase]
        curves = [(labels[run], curve) for run, curve in part.groupby("run_id", sort=True)]  # each run's own grid
        if phase == "dense":  # one curve per dense model: runs with identical dense densities share it
            models: dict[tuple, list] = {}
            for run, curve in part.groupby("run_id", sort=True):
                curve = curve.sort_values("grid")
                shape = tuple(np.round(curve[["grid", "density"]].to_numpy(float), 12).ravel())
                models.setdefault(shape, [run, curve, []])[2].append(run)
            curves = [(dense_labels(runs, len(models)), curve) for _, curve, runs in models.values()]
            if len({label for label, _ in curves}) < len(curves):  # the keys do not tell two dense models apart
                curves = [("dense of " + ", ".join(labels[r] for r in runs), curve) for _, curve, runs in models.values()]
            elif run_seed is not None:
                curves = [
                    (f"{label}, seed {', '.join(str(s) for s in sorted(set(run_seed[runs])))}", curve)
                    for (label, curve), (_, _, runs) in zip(curves, models.values())
                ]
        for label, curve in curves:
            curve = curve.sort_values("grid")
            ax.plot(curve["grid"].to_numpy(float), np.maximum(curve["density"].to_numpy(float), 1e-12), label=label)
        ax.set_yscale("log")
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_title(f"{phase} (seed {seed})" if seed is not None else f"{phase} (each condition's smallest seed)" if seeds else phase)
        _legend(ax, 7)
    for ax in axes[::PER_ROW]:
        ax.set_ylabel("spectral density (SLQ)")
    return _save(fig, out / "hessian_density.png")


def hessian_labels(df: pd.DataFrame):
    """({run_id: its legend label}, a function (runs of one dense model, number of dense models) -> the
    dense curve's label). A run's label: method, sparsity and the keys that vary between the runs (model
    widths, epochs, schedule, ...); runs that still share a label (only the shared CSVs: no epochs or widths
    in the columns) get their run id appended. A dense model's label: "dense" when it is the only one,
    else "dense" and the non-method keys of its runs (`dense widths=[32, 32]`), or its runs' labels where
    those keys do not tell the dense models apart."""
    first = df.groupby("run_id", sort=True).first()
    varying = [k for k in _varying(df) if k != "method"]
    keys = [k for k in ("method", "target_sparsity") if k in first.columns] + varying
    text = {run: " ".join(_part(k, r[k]) for k in keys) for run, r in first.iterrows()}
    counts = pd.Series(text).value_counts()
    labels = {run: (f"{t} ({run})" if counts[t] > 1 else t) for run, t in text.items()}
    dense_keys = [k for k in varying if k not in METHOD_COLUMNS and not k.startswith("method.")]

    def dense_label(runs: list, n_models: int) -> str:
        if n_models == 1:
            return "dense"
        own = {" ".join(_part(k, first.loc[run, k]) for k in dense_keys) for run in runs} if dense_keys else set()
        if len(own) == 1 and all(own):
            return f"dense {own.pop()}"
        return "dense of " + ", ".join(labels[run] for run in runs)

    return labels, dense_label


def ntk_vs_width(metrics: pd.DataFrame, configs: dict[str, dict], out: Path, confidence: float = 0.95) -> Optional[Path]:
    """NTK metrics (metric names starting with ntk_) of the final sparse model against the model width
    (model.widths[0] from each run's config.yaml), mean ± CI (at `confidence`) over seeds, one curve per (method, sparsity)
    and varying config key; a point whose seed has runs of several configurations is left out
    (points.ntk_points)."""
    drawn = ntk_points(metrics, configs)
    if drawn is None or not len(drawn.table):
        return None
    names = sorted(drawn.table["metric"].unique())
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names):
        part = drawn.table[drawn.table["metric"] == name]
        for label, curve in part.groupby("curve", sort=True):
            stats = [(w, t_interval(g["value"], confidence)) for w, g in curve.groupby("width")]
            _curve(
                ax,
                [w for w, _ in stats],
                [t["mean"] for _, t in stats],
                half=[t["ci_half"] for _, t in stats],
                label=label,
                n=[t["n_seeds"] for _, t in stats],
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width (model.widths[0])")
        ax.set_ylabel(f"{_ci(confidence)} over seeds")
        ax.set_title(name)
        _legend(ax, 7)
    return _save(fig, out / "ntk_vs_width.png")
