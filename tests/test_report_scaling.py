"""prune-report's scaling-law points (prune_cli/report/scaling.py) on hand-made points whose seed
means are known."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report import scaling


def test_dense_error_is_a_mean_over_seeds_not_runs(monkeypatch):
    """Seed 0 ran at 6 densities with dense error 0.10, seed 1 at one with 0.30: eps_np, the seed
    mean of the dense error, is 0.20. It was the run mean, (6 x 0.10 + 0.30) / 7 = 0.1286, which
    weights a seed by how many densities it ran."""
    densities = [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]
    runs = [(0, d, 0.10) for d in densities] + [(1, 0.5, 0.30)]
    points = pd.DataFrame(
        [
            {
                "family": "f",
                "dataset": "toy",
                "model": "mlp",
                "method": "magnitude",
                "schedule": "oneshot",
                "dataset_size": 100.0,
                "run_id": f"r{i}",
                "seed": seed,
                "density": density,
                "target_density": density,
                "error": eps_np + (1 - density) * 0.3,
                "eps_np": eps_np,
            }
            for i, (seed, density, eps_np) in enumerate(runs)
        ]
    )
    seen = []
    real = scaling.fit_scaling_law
    monkeypatch.setattr(scaling, "fit_scaling_law", lambda mean, scales: (seen.append(mean), real(mean, scales))[1])
    scaling.fit_families(points)
    (mean,) = seen
    assert mean["eps_np"].tolist() == pytest.approx([0.20] * len(densities))


def _noisy_family() -> pd.DataFrame:
    """One family at 7 densities, 3 seeds: Eq. 1's error times 0.98, 1.00, 1.02 (so each point has a spread)."""
    rows = []
    for seed in range(3):
        for i, density in enumerate((0.8, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)):
            error = float(scaling.pruned_error(density, 0.10, 0.9, 2.0, 0.05)) * (0.98 + 0.02 * seed)
            rows.append(
                {"family": "f", "dataset": "toy", "model": "mlp", "method": "magnitude", "schedule": "oneshot"}
                | {"dataset_size": 100.0, "run_id": f"r{seed}-{i}", "seed": seed, "density": density, "target_density": density}
                | {"error": error, "eps_np": 0.10}
            )
    return pd.DataFrame(rows)


def test_scaling_figure_bars_are_confidence_intervals_and_tick_labels_do_not_overlap(tmp_path, monkeypatch):
    """Before: the error bars were the SD over seeds (every other figure's bars are t intervals, and
    nothing said so), and every minor tick of the log axes was labelled, overlapping. Now the bars are
    the --confidence t interval of the seed mean (scipy here), and no two tick labels of an axis overlap."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from scipy import stats

    points = _noisy_family()
    _, fitted = scaling.fit_families(points)
    bars, figures = [], []
    errorbar = Axes.errorbar
    record = lambda ax, x, y, yerr=None, **k: (bars.append(list(yerr)), errorbar(ax, x, y, yerr=yerr, **k))[1]  # noqa: E731
    monkeypatch.setattr(Axes, "errorbar", record)
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    scaling.plot_fits(fitted, tmp_path, confidence=0.8)
    per_point = points.groupby("density")["error"]
    half = stats.t.ppf(0.9, 2) * per_point.std(ddof=1) / per_point.count() ** 0.5
    (drawn,) = bars
    assert drawn == pytest.approx(half.sort_index().tolist())
    (fig,) = figures
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
            assert boxes, "an axis without a tick label"
            for i, a in enumerate(boxes):
                assert not any(a.overlaps(b) for b in boxes[i + 1 :]), [t.get_text() for t in axis.get_ticklabels(which="both")]


def test_scaling_figure_wraps_families_into_rows(tmp_path, monkeypatch):
    """Every family's two panels were put in one row: 8 families made a PNG 10,736 px wide. They now
    wrap, FAMILIES_PER_ROW to a row: 8 families are 4 rows, no wider than 2 families, no panel or
    legend outside the figure or over another; 1 family's figure is laid out as before (one row)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imread

    points = pd.concat([_noisy_family().assign(family=f"f{k}", method=f"m{k}") for k in range(8)], ignore_index=True)
    _, fitted = scaling.fit_families(points)
    assert fitted["family"].nunique() == 8
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    sizes = {}
    for n in (1, 2, 8):
        out = tmp_path / str(n)
        out.mkdir()
        part = fitted[fitted["family"].isin([f"f{k}" for k in range(n)])]
        height, width = imread(scaling.plot_fits(part, out)).shape[:2]
        sizes[n] = (width, height)
    assert sizes[8][0] == sizes[2][0] and sizes[8][1] == pytest.approx(4 * sizes[2][1], abs=4), sizes
    assert sizes[2][0] < 2.2 * sizes[1][0] and sizes[2][1] == sizes[1][1]
    assert scaling.FAMILIES_PER_ROW == 2
    fig = figures[-1]
    assert len(fig.axes) == 16
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        box = ax.get_position()
        assert 0 <= box.x0 and box.x1 <= 1 and 0 <= box.y0 and box.y1 <= 1
        boxes.append(ax.get_window_extent(renderer))
        legend = ax.get_legend()
        if legend is not None:
            boxes.append(legend.get_window_extent(renderer))
    assert all(b.x1 <= fig.bbox.width + 1 and b.y1 <= fig.bbox.height + 1 for b in boxes)
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1 :])


def test_a_family_names_the_setting_that_tells_it_from_the_others(tmp_path):
    """Two data-pruning rules, each a family of its own: summary.md had two lines `magnitude / toy / mlp /
    oneshot (f-04b5aa1f)` told apart only by a hash, and scaling_fit.csv had no column to map a family back
    to its rule (audit). Now each names the keys in which the families differ, only those it has."""
    import yaml

    from prune_cli.report import build_report
    from test_report_achieved_sparsity import _edit
    from test_report_experiments import write_run

    root = tmp_path / "res"
    for rule, extra in (("el2n", {"data_pruning__proxies": 4}), ("random", {})):
        for sparsity in (0.5, 0.9):
            run = write_run(root, 0, "magnitude", sparsity, 10, 0.7, name=rule)
            _edit(root, run, data_pruning__name=rule, data_pruning__keep=0.5, **extra)
    table = pd.read_csv(build_report(root, plots=False)["scaling_fit.csv"])
    by_rule = {
        yaml.safe_load((root / "runs" / run / "config.yaml").read_text())["data_pruning"]["name"]: run
        for run in (d.name for d in (root / "runs").iterdir())
    }
    assert len(by_rule) == 2 and sorted(table["setting"]) == ["data_pruning=el2n, data_pruning.proxies=4", "data_pruning=random"]
    summary = (root / "report" / "summary.md").read_text()
    for setting in table["setting"]:
        assert f"- magnitude / toy / mlp / oneshot [{setting}] (f-" in summary, summary
