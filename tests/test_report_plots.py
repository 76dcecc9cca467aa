"""prune-report's figures: drawn without any warning, and every legend outside every axes of its
figure (checked geometrically on the rendered figures), so that no legend covers data."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from prune_cli.report import build_report
from prune_cli.report import plots as plotting
from test_report_card import LEVELS, _run


def test_figures_without_warnings_and_legends_outside_axes(tmp_path, monkeypatch):
    root = tmp_path / "r"
    for score in ("magnitude", "random", "a_method_with_a_rather_long_name", "snip"):
        for s in LEVELS:
            for seed in range(2):
                _run(root, "mnist1d", "mlp", score, s, seed)
                _run(root, "synthetic", "mlp", score, s, seed)
    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = build_report(root, plots=True, parallel=False)  # the figures are inspected in this process
    assert "accuracy_vs_compression.png" in written and figures
    checked = 0
    for fig in figures:
        canvas = FigureCanvasAgg(fig)  # closed figures lose their canvas: draw again with the same layout
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(other) for other in boxes), "a legend overlaps an axes"
            assert box.x1 <= fig.bbox.x1 + 1 and box.y0 >= -1, "a legend leaves the figure"
            checked += 1
    assert checked >= 2


def test_dense_line_per_dense_configuration(tmp_path, monkeypatch):
    """One panel with MLPs of width 16 (dense 0.80) and 64 (dense 0.90), magnitude and random at
    each: the dashed dense line was the mean over the panel (0.85), the dense accuracy of neither.
    Now one line per dense configuration, labelled by the key that differs; methods that share a
    dense model share one line."""
    from matplotlib.axes import Axes

    from prune_cli.report.summary import summarise

    rows = []
    for width, dense in ((16, 0.80), (64, 0.90)):
        for method, drop in (("magnitude", 0.05), ("random", 0.15)):
            for seed in range(2):
                for sparsity in (0.5, 0.9):
                    ctx = dict(
                        run_id=f"{method}-{width}-{seed}-{sparsity}",
                        experiment=f"e-{method}-{width}-{sparsity}",
                        seed=seed,
                        dataset="toy",
                        model="mlp",
                        method=method,
                        schedule="oneshot",
                        target_sparsity=sparsity,
                        **{"model.widths": f"[{width}, {width}]"},
                    )
                    rows.append(
                        {
                            **ctx,
                            "phase": "finetuned",
                            "split": "test",
                            "metric": "accuracy",
                            "value": dense - drop,
                            "dense_value": dense,
                        }
                    )
    lines = []
    axhline = Axes.axhline
    monkeypatch.setattr(Axes, "axhline", lambda ax, y, *a, **k: (lines.append((k.get("label"), y)), axhline(ax, y, *a, **k))[1])
    plotting.accuracy_vs_compression(summarise(pd.DataFrame(rows)), tmp_path)
    assert sorted(lines) == [("dense model.widths=[16, 16]", 0.80), ("dense model.widths=[64, 64]", 0.90)]


def test_thirty_accuracy_curves_are_thirty_distinct_styles(tmp_path, monkeypatch):
    """30 methods in one panel: before, every curve took the colour cycle's next colour with the same line
    and marker, so curve 10 looked exactly like curve 0. Now each (colour, line style, marker) is used once."""
    from prune_cli.report.summary import summarise

    rows = [
        {"run_id": f"m{i}-{seed}", "seed": seed, "dataset": "toy", "model": "mlp", "method": f"m{i:02d}", "schedule": "oneshot"}
        | {"target_sparsity": 0.5, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": 0.5, "dense_value": 0.9}
        for i in range(30)
        for seed in range(2)
    ]
    styles = []
    real = plotting._curve
    monkeypatch.setattr(
        plotting,
        "_curve",
        lambda ax, x, y, **k: (styles.append((k.get("color"), k.get("ls"), k.get("marker"))), real(ax, x, y, **k))[1],
    )
    plotting.accuracy_vs_compression(summarise(pd.DataFrame(rows)), tmp_path)
    assert len(styles) == 30 and len(set(styles)) == 30, styles


def _kept_figures(monkeypatch) -> list:
    """The figures the plots close, kept for inspection (a closed figure is drawn again on its own canvas)."""
    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    return figures


def _title_box(figures: list):
    """(the one figure drawn, its first axes' title extent in pixels), drawn with the layout it was saved with."""
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return fig, fig.axes[0].title.get_window_extent(canvas.get_renderer())


def _recorded_curves(monkeypatch) -> list[dict]:
    """Every `_curve` call's style and label, as drawn."""
    calls: list[dict] = []
    real = plotting._curve

    def record(ax, x, y, **k):
        calls.append(k)
        return real(ax, x, y, **k)

    monkeypatch.setattr(plotting, "_curve", record)
    return calls


def test_thirteen_regions_curves_differ_and_name_no_nan(tmp_path, monkeypatch):
    """A data-pruning sweep of 13 settings: the regions figure drew curve k and k+10 in the same colour
    and style, and a key a setting lacks read `data_pruning.proxies=nan` in its legend (audit)."""
    rows = []
    for i in range(13):
        for seed in range(2):
            for sparsity in (0.5, 0.9):
                rows.append(
                    {"run_id": f"r{i}-{seed}-{sparsity}", "seed": seed, "method": "magnitude", "target_sparsity": sparsity}
                    | {"phase": "finetuned", "lr_count": 100 + i + seed, "ub_sparse": 1000.0 + i}
                    | {"data_pruning.keep": 0.3 + 0.05 * (i // 2), "data_pruning.proxies": 4 if i % 2 else None}
                    | {
                        "data_pruning.proxy_epochs": i // 2 % 3,
                        "data_pruning.offset": 0.01 * (i // 2 % 4),
                        "data_pruning.name": f"rule{i // 2 % 5}",
                    }
                )
    calls = _recorded_curves(monkeypatch)
    figures = _kept_figures(monkeypatch)
    assert plotting.regions_vs_sparsity(pd.DataFrame(rows), tmp_path) is not None
    fig, title = _title_box(figures)
    assert title.x0 >= 0 and title.x1 <= fig.bbox.x1 and title.y1 <= fig.bbox.y1, (
        "the title runs off the figure"
    )  # "curves by method, data_pruning..." did
    counts = [c for c in calls if "ln lr_count" in c["label"]]
    assert len(counts) == 13 and len({(c["color"], c["marker"]) for c in counts}) == 13, counts
    assert not any("nan" in c["label"] for c in calls), [c["label"] for c in calls]
    assert any("data_pruning.proxies=(absent)" in c["label"] for c in calls)


def test_thirteen_per_class_series_differ_and_name_no_nan(tmp_path, monkeypatch):
    """The recall-change figure: colour is the sparsity, so 13 settings at one sparsity took MARKERS[j % 10]
    and settings j and j+10 were the same points (audit)."""
    from test_report_achieved_sparsity import _edit
    from test_report_experiments import write_run

    root = tmp_path / "res"
    for i in range(13):
        for seed in range(2):
            run = write_run(root, seed, "magnitude", 0.5, 10, 0.5 + 0.01 * i, name=f"k{i}")
            _edit(
                root,
                run,
                data_pruning__name="el2n",
                data_pruning__keep=0.3 + 0.05 * i,
                **({"data_pruning__proxies": 4} if i % 2 else {}),
            )
    calls = _recorded_curves(monkeypatch)
    build_report(root, plots=True, parallel=False)
    points = [c for c in calls if c["label"].startswith("sparsity")]
    styles = {(c["color"], c["marker"], c.get("fillstyle", "full")) for c in points}
    assert len(points) == 13 and len(styles) == 13, points
    assert not any("nan" in c["label"] for c in calls), [c["label"] for c in calls]


def test_options_of_another_rule_are_not_named_where_the_rule_already_tells_the_curves_apart():
    """data_pruning=none beside EL2N (offset 0 and 4 proxies in every EL2N run): the labels read
    `.../data_pruning.name=none/data_pruning.offset=(absent)/data_pruning.proxies=(absent)` (review)."""
    from prune_cli.report.regions import _varying

    rows = [
        {"method": "magnitude", "data_pruning.name": "none", "data_pruning.keep": 1.0},
        {
            "method": "magnitude",
            "data_pruning.name": "el2n",
            "data_pruning.keep": 0.5,
            "data_pruning.offset": 0.0,
            "data_pruning.proxies": 4,
        },
    ]
    assert _varying(pd.DataFrame(rows)) == ["method", "data_pruning.name", "data_pruning.keep"]
    # where only the option's presence tells two settings apart, it is named
    rows.append({"method": "magnitude", "data_pruning.name": "el2n", "data_pruning.keep": 0.5, "data_pruning.offset": 0.0})
    assert _varying(pd.DataFrame(rows)) == ["method", "data_pruning.name", "data_pruning.keep", "data_pruning.proxies"]


def test_a_title_of_wide_letters_stays_on_the_figure(tmp_path, monkeypatch):
    """_title wraps by characters; ten keys of capital Ws still ran off both edges (review)."""
    rows = [
        {"run_id": f"r{i}", "seed": 0, "method": "magnitude", "target_sparsity": s, "phase": "finetuned", "lr_count": 100 + i}
        | {f"WWWWWWWWWWWW.WWWWWWWWWWWW{k}": i + k for k in range(10)}
        for i in range(2)
        for s in (0.5, 0.9)
    ]
    figures = _kept_figures(monkeypatch)
    assert plotting.regions_vs_sparsity(pd.DataFrame(rows), tmp_path) is not None
    fig, title = _title_box(figures)
    assert title.x0 >= 0 and title.x1 <= fig.bbox.x1 and title.y1 <= fig.bbox.y1, title


def test_a_scaling_point_of_one_seed_is_hollow_without_a_bar(tmp_path, monkeypatch):
    """The scaling figure drew a one-seed point with a bar of zero length (np.nan_to_num of its NaN half-width),
    like seeds that agree. Now no bar and a hollow marker, named in the legend. One family at 7 densities of 3
    seeds, the densest point's seed count set to 1 (its error and std as fitted)."""
    import numpy as np

    from prune_cli.report import scaling
    from test_report_scaling import _noisy_family

    _, fitted = scaling.fit_families(_noisy_family())
    densest = fitted["density"] == fitted["density"].max()
    fitted.loc[densest, "n_seeds"] = 1
    figures = _kept_figures(monkeypatch)
    scaling.plot_fits(fitted, tmp_path)
    (fig,) = figures
    ax = fig.axes[0]
    white = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    hollow = [(float(x), float(y)) for line in white for x, y in zip(*line.get_data())]
    (x, y) = fitted.loc[densest, ["density", "error"]].iloc[0]
    assert hollow == [(x, y)], hollow
    bars = [seg for c in ax.collections for seg in c.get_segments() if np.isfinite(seg).all() and len(seg)]
    assert len(bars) == 6 and all(seg[0][0] != x for seg in bars), bars  # the 6 three-seed points keep theirs
    assert "hollow: one seed, no interval" in [t.get_text() for t in ax.get_legend().get_texts()]
