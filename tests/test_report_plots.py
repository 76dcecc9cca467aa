"""prune-report's figures: drawn without any warning, and every legend outside every axes of its
figure (checked geometrically on the rendered figures), so that no legend covers data."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
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
