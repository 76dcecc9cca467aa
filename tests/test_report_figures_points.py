"""The points of prune-report's figures follow the report's rule (prune_cli/report/mixing.py): a seed's
runs of several configurations under one point are left out with a stated reason, never averaged; and
every interval is drawn at --confidence. Folders are written by hand (config.yaml and CSVs); the
expected values are computed here from the planted numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from prune_cli.report import build_report
from prune_cli.report import plots as plotting
from test_report_experiments import _config


def _run_with_widths(root, seed, widths, method, sparsity) -> tuple[str, Path, dict]:
    """A run directory with its config.yaml (model.widths = `widths`): its run id, folder and the
    context columns of its rows."""
    run_id = f"{method}-s{sparsity:g}-w{'x'.join(map(str, widths))}-seed{seed}"
    d = root / "runs" / run_id
    d.mkdir(parents=True)
    cfg = _config(seed, method, sparsity, 1)
    cfg["model"]["widths"] = list(widths)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    ctx = dict(run_id=run_id, name="run", seed=seed, dataset="toy", model="mlp", method=method, score=method)
    ctx |= dict(allocation="global", structure="unstructured", schedule="oneshot", target_sparsity=sparsity)
    return run_id, d, ctx


def ntk_run(root, seed, widths, value, method="random", sparsity=0.5) -> str:
    """A completed run directory with model.widths = `widths` and one NTK metric of the pruned model."""
    run_id, d, ctx = _run_with_widths(root, seed, widths, method, sparsity)
    rows = [
        {**ctx, "phase": "pruned", "split": "model", "metric": "ntk_condition", "value": value, "dense_value": None},
        {**ctx, "phase": "pruned", "split": "test", "metric": "accuracy", "value": 0.5, "dense_value": 0.9},
        {**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": 0.9, "dense_value": 0.9},
    ]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    (d / "COMPLETE").write_text(run_id + "\n")
    return run_id


def _recorded_curves(monkeypatch) -> list[tuple]:
    """(label, x, y, half) of every curve plots._curve draws."""
    seen = []
    real = plotting._curve

    def record(ax, x, y, half=None, **k):
        seen.append((k.get("label"), list(map(float, x)), list(map(float, y)), None if half is None else list(map(float, half))))
        return real(ax, x, y, half=half, **k)

    monkeypatch.setattr(plotting, "_curve", record)
    return seen


NTK = {(32, 32): [1.0, 1.2, 1.1], (64, 64): [2.0, 2.4, 2.1], (64, 128): [4.0, 4.4, 4.3]}


def test_ntk_figure_leaves_out_a_width_whose_runs_mix_configurations(tmp_path, monkeypatch):
    """random at 0.5, seeds 0-2, widths [32, 32], [64, 64] and [64, 128]. Before: x = model.widths[0] and
    model.widths was no curve key, so each seed's [64, 64] and [64, 128] runs were averaged into one point
    at 64 (3.15, a network of neither shape), with no note. Now that point is left out and the Plots section
    says why; width 32 keeps its mean and its interval, computed here with scipy."""
    root = tmp_path / "res"
    for widths, values in NTK.items():
        for seed, v in enumerate(values):
            ntk_run(root, seed, widths, v)
    curves = _recorded_curves(monkeypatch)
    written = build_report(root, parallel=False)
    assert "ntk_vs_width.png" in written
    (curve,) = [c for c in curves if c[0] and "0.5" in c[0]]
    label, x, y, half = curve
    values = pd.Series(NTK[(32, 32)])
    t_half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / math.sqrt(3)
    assert (x, y, half) == ([32.0], [pytest.approx(values.mean())], [pytest.approx(t_half)])
    plots = written["summary.md"].read_text().split("## Plots")[1]
    (note,) = [line for line in plots.splitlines() if line.startswith("- ntk_vs_width.png")]
    assert note.startswith(
        "- ntk_vs_width.png: random sparsity 0.5 at width 64 left out, its 6 runs of 2 configurations (distinct config_hash; "
        "seeds 0, 1, 2 each have runs of several) that the figure does not tell apart are not averaged"
    ), note


def test_regions_and_ntk_intervals_follow_confidence(tmp_path, monkeypatch):
    """--confidence 0.5: before, regions_vs_sparsity.png and ntk_vs_width.png drew 95% intervals whatever
    the level (plots._half's default, t_interval's default). Now their half-widths are t_{0.75, n-1} sd /
    sqrt(n), computed here with scipy from the planted values."""
    from test_report_mixed import MAG, _shared_only

    runs = [(seed, "magnitude", 0.5, 2, m, 0.9) for seed, m in enumerate(MAG)]
    regions_root = _shared_only(tmp_path / "regions", runs=runs, regions=True)
    ntk_root = tmp_path / "ntk"
    for seed, v in enumerate(NTK[(32, 32)]):
        ntk_run(ntk_root, seed, (32, 32), v)
    curves = _recorded_curves(monkeypatch)
    t = stats.t.ppf(0.75, 2)

    build_report(regions_root, confidence=0.5, parallel=False)
    (count,) = [c for c in curves if c[0] == "magnitude: ln lr_count"]
    ln = pd.Series(MAG).mul(1000).map(math.log)
    assert count[3] == [pytest.approx(t * ln.std(ddof=1) / math.sqrt(3))]

    curves.clear()
    build_report(ntk_root, confidence=0.5, parallel=False)
    (ntk,) = [c for c in curves if c[1] == [32.0]]  # the accuracy curve's x is the compression, 2
    values = pd.Series(NTK[(32, 32)])
    assert ntk[3] == [pytest.approx(t * values.std(ddof=1) / math.sqrt(3))]


def hessian_run(root, seed, widths, sparsity, dense_peak, pruned_peak, method="magnitude") -> str:
    """A completed run directory with model.widths = `widths` and hessian_density.csv: a dense and a pruned
    density on a 3-point grid, peaked at `dense_peak` and `pruned_peak` (values that tell the curves apart)."""
    run_id, d, ctx = _run_with_widths(root, seed, widths, method, sparsity)
    acc = [{**ctx, "phase": p, "split": "test", "metric": "accuracy", "value": 0.8, "dense_value": 0.9} for p in ("dense", "pruned")]
    pd.DataFrame(acc).to_csv(d / "metrics.csv", index=False)
    rows = [
        {**ctx, "phase": phase, "grid": g, "density": peak if g == 0.0 else 0.1}
        for phase, peak in (("dense", dense_peak), ("pruned", pruned_peak))
        for g in (-1.0, 0.0, 1.0)
    ]
    pd.DataFrame(rows).to_csv(d / "hessian_density.csv", index=False)
    (d / "COMPLETE").write_text(run_id + "\n")
    return run_id


def test_hessian_figure_shows_each_dense_model_and_tells_the_runs_apart(tmp_path, monkeypatch):
    """magnitude at 0.5 on MLPs of widths [32, 32] (dense peak 5, pruned 3) and [16, 16] (dense peak 7,
    pruned 4), seed 0. Before: the dense panel drew the first run's dense model only (a `break`: "every
    run of a seed shares its dense model"), dropping the [16, 16] one, and both pruned curves were labelled
    "magnitude 0.5". Now one dense curve per dense model, and every label names the widths."""
    from matplotlib.axes import Axes

    root = tmp_path / "res"
    hessian_run(root, 0, (32, 32), 0.5, 5.0, 3.0)
    hessian_run(root, 0, (16, 16), 0.5, 7.0, 4.0)
    drawn = []
    plot = Axes.plot
    monkeypatch.setattr(
        Axes, "plot", lambda ax, *a, **k: (drawn.append((ax.get_title(), k.get("label"), list(a[1]))), plot(ax, *a, **k))[1]
    )
    assert "hessian_density.png" in build_report(root, parallel=False)
    # the panels are titled after the curves are drawn: tell them apart by the peak
    got = sorted((label, max(y)) for _, label, y in drawn if label is not None and len(y) == 3)
    assert got == [
        ("dense model.widths=[16, 16]", 7.0),
        ("dense model.widths=[32, 32]", 5.0),
        ("magnitude 0.5 model.widths=[16, 16]", 4.0),
        ("magnitude 0.5 model.widths=[32, 32]", 3.0),
    ]


def test_hessian_labels_of_runs_the_columns_do_not_tell_apart():
    """Only the shared CSVs: two runs of seed 0, both magnitude at 0.5 (2 and 6 epochs, which no column
    records). Before, both curves were "magnitude 0.5"; now each label carries its run id, and the dense
    models are named by their runs."""
    rows = [
        {"run_id": run, "seed": 0, "method": "magnitude", "target_sparsity": 0.5, "phase": "dense", "grid": 0.0, "density": 1.0}
        for run in ("r-e2", "r-e6")
    ]
    labels, dense_label = plotting.hessian_labels(pd.DataFrame(rows))
    assert labels == {"r-e2": "magnitude 0.5 (r-e2)", "r-e6": "magnitude 0.5 (r-e6)"}
    assert dense_label(["r-e6"], 2) == "dense of magnitude 0.5 (r-e6)" and dense_label(["r-e2", "r-e6"], 1) == "dense"


def test_recall_change_figure_gives_each_variant_of_a_method_its_own_series(tmp_path, monkeypatch):
    """magnitude at 0.5 trained 2 epochs (accuracy 0.60 + 0.01 s, dense 0.90) and 6 epochs (0.80 + 0.01 s,
    dense 0.95), seeds 0-2, every class's recall = the accuracy. Before: one series per sparsity, so the
    panel's "one point per class" held two points per class, one of each variant, under one legend entry.
    Now one series per (sparsity, variant): 2 points each, at the recall changes computed here."""
    from test_report_experiments import write_run

    root = tmp_path / "res"
    hand = []
    for seed in range(3):
        for epochs, acc, dense in ((2, 0.60, 0.90), (6, 0.80, 0.95)):
            write_run(root, seed, "magnitude", 0.5, epochs, acc + 0.01 * seed, dense_acc=dense)
            hand.append({"epochs": epochs, "seed": seed, "delta": acc + 0.01 * seed - dense, "dense": dense})
    curves = _recorded_curves(monkeypatch)
    build_report(root, parallel=False)
    mine = pd.DataFrame(hand).groupby("epochs").mean()
    got = sorted((label, x, y) for label, x, y, _ in curves if label and label.startswith("sparsity"))
    assert [label for label, _, _ in got] == ["sparsity 0.5 train.epochs=2", "sparsity 0.5 train.epochs=6"]
    for (_, x, y), epochs in zip(got, (2, 6)):
        assert x == pytest.approx([mine.loc[epochs, "dense"]] * 2) and y == pytest.approx([mine.loc[epochs, "delta"]] * 2)


def test_a_dollar_in_a_config_value_is_shown_as_written_in_every_figure(tmp_path, monkeypatch):
    """dataset.cache_dir=/tmp/p$^$q varies between two experiments, so it is in every figure's legend.
    Before: matplotlib read `$^$` as mathtext, the report stopped with a ValueError (reported as an argument
    error, exit 2) and left a partial report. Now every figure is written and its legend shows the value
    as written."""
    import matplotlib.pyplot as plt

    from test_report_summary import _with_cache_dirs

    root = tmp_path / "res"
    _with_cache_dirs(root, ["/tmp/p$^$q", "/tmp/r"])
    for d in sorted((root / "runs").iterdir()):
        m = pd.read_csv(d / "metrics.csv")
        ctx = m.iloc[0].drop(["phase", "split", "metric", "value", "dense_value"]).to_dict()
        ntk = {
            **ctx,
            "phase": "finetuned",
            "split": "model",
            "metric": "ntk_condition",
            "value": 2.0 + ctx["seed"],
            "dense_value": None,
        }
        pd.concat([m, pd.DataFrame([ntk])]).to_csv(d / "metrics.csv", index=False)
        pd.DataFrame([{**ctx, "phase": "finetuned", "lr_count": 100 + ctx["seed"]}]).to_csv(d / "regions.csv", index=False)
        rows = [{**ctx, "phase": p, "grid": g, "density": 1.0} for p in ("dense", "finetuned") for g in (0.0, 1.0)]
        pd.DataFrame(rows).to_csv(d / "hessian_density.csv", index=False)
    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    written = build_report(root, parallel=False)
    drawn = {"accuracy_vs_compression.png", "recall_change_vs_dense.png", "regions_vs_sparsity.png"}
    drawn |= {"hessian_density.png", "ntk_vs_width.png"}
    assert drawn <= set(written)
    shown = [
        any("/tmp/p$^$q" in t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()) for fig in figures
    ]
    assert len(figures) == 5 and all(shown), shown


def test_ntk_figure_plots_measurements_only_and_names_the_sparsity(tmp_path, monkeypatch):
    """ntk_num_inputs (how many inputs the NTK used: a budget setting, prune_cli/metrics/ntk.py) was drawn as
    a metric panel, and the legend said "random 0.5"; now only ntk_condition has a panel, labelled "random
    sparsity 0.5"."""
    root = tmp_path / "res"
    for seed, v in enumerate(NTK[(32, 32)]):
        run = ntk_run(root, seed, (32, 32), v)
        path = root / "runs" / run / "metrics.csv"
        m = pd.read_csv(path)
        extra = m[m["metric"] == "ntk_condition"].assign(metric="ntk_num_inputs", value=64.0)
        pd.concat([m, extra]).to_csv(path, index=False)
    curves = _recorded_curves(monkeypatch)
    build_report(root, parallel=False)
    ntk = [(label, y) for label, x, y, _ in curves if x == [32.0]]
    assert ntk == [("random sparsity 0.5", [pytest.approx(sum(NTK[(32, 32)]) / 3)])]


def test_curve_labels_name_the_whole_config_key():
    """Runs that differ in train.epochs and finetune.epochs: the legend showed "epochs=2/epochs=1" for one
    curve and "epochs=1/epochs=2" for the other (only the key's last part), which says neither which is which
    nor what docs/report.md promises (swept config keys as `key=value`)."""
    from prune_cli.report.regions import regions_table

    rows = [
        {"method": "magnitude", "target_sparsity": 0.5, "seed": seed, "lr_count": 10.0, "train.epochs": t, "finetune.epochs": f}
        for seed in range(2)
        for t, f in ((2, 1), (1, 2))
    ]
    points = regions_table(pd.DataFrame(rows))
    assert sorted(points.table["curve"].unique()) == [
        "magnitude/train.epochs=1/finetune.epochs=2",
        "magnitude/train.epochs=2/finetune.epochs=1",
    ]


def test_runs_whose_regions_were_not_counted_are_named_under_the_figure():
    """A run outside the counter's budget writes one "not counted: <reason>" row per phase; its curve was
    drawn from NaN alone (nothing on the figure, four legend entries) or with one seed fewer, without a
    word in the report (audit). Each such (curve, sparsity) now has a note with the count and the reason."""
    from prune_cli.report.regions import regions_table

    reason = "not counted: 32 ReLU/max-pool units per input > metrics.regions.max_line_units=20"
    rows = [
        {"method": "magnitude", "target_sparsity": 0.5, "seed": seed, "phase": "finetuned", "model.widths": w, **values}
        for seed in range(3)
        for w, values in (
            ("[4, 4]", {"counts": "", "lr_count": 10.0 + seed}),
            ("[16, 16]", {"counts": reason, "lr_count": float("nan")} if seed < 2 else {"counts": "", "lr_count": 30.0}),
        )
    ]
    points = regions_table(pd.DataFrame(rows))
    wide = [n for n in points.notes if "16" in n]
    assert len(wide) == 1 and "2 of 3 run(s)" in wide[0] and "max_line_units=20" in wide[0], points.notes
    assert not [n for n in points.notes if "[4, 4]" in n]
    row = points.table[(points.table["curve"].str.contains("16")) & (points.table["series"] == "ln lr_count")].iloc[0]
    assert row["n"] == 1 and row["mean"] == pytest.approx(math.log(30.0))


def test_a_regions_curve_with_no_counted_run_gets_no_legend_entry(tmp_path):
    """Every run of the [16, 16] curve was "not counted" (its note says so under the figure): before, its
    series were drawn from NaN alone, nothing on the axes and still an entry each in the legend. Now the
    legend lists only the [4, 4] curve, whose runs were counted."""
    from matplotlib.axes import Axes

    reason = "not counted: 32 ReLU/max-pool units per input > metrics.regions.max_line_units=20"
    rows = [
        {"method": "magnitude", "target_sparsity": s, "seed": seed, "phase": "finetuned", "model.widths": w, **values}
        for s in (0.5, 0.9)
        for seed in range(3)
        for w, values in (
            ("[4, 4]", {"counts": "", "lr_count": 10.0 + seed, "ub_ln_serra": 5.0}),
            ("[16, 16]", {"counts": reason, "lr_count": float("nan"), "ub_ln_serra": float("nan")}),
        )
    ]
    legends = []
    real = Axes.legend
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Axes, "legend", lambda ax, *a, **k: (legends.append(ax.get_legend_handles_labels()[1]), real(ax, *a, **k))[1])
        assert plotting.regions_vs_sparsity(pd.DataFrame(rows), tmp_path) is not None
    (labels,) = legends
    assert labels and all("[4, 4]" in label for label in labels), labels


def test_a_regions_figure_with_no_counted_run_is_not_drawn_and_says_why(tmp_path):
    """Every run "not counted": before, regions_vs_sparsity.png was written with empty axes. Now it is not
    written, and the Plots section says so above the notes that give the reason."""
    from test_report_experiments import write_run

    root = tmp_path / "res"
    reason = "not counted: 32 ReLU/max-pool units per input > metrics.regions.max_line_units=20"
    for seed in range(3):
        run = write_run(root, seed, "magnitude", 0.5, 2, 0.7, dense_acc=0.9)
        row = {"run_id": run, "seed": seed, "dataset": "toy", "model": "mlp", "method": "magnitude", "target_sparsity": 0.5}
        pd.DataFrame([row | {"phase": "finetuned", "counts": reason, "lr_count": float("nan")}]).to_csv(
            root / "runs" / run / "regions.csv", index=False
        )
    written = build_report(root, parallel=False)
    assert "regions_vs_sparsity.png" not in written and not (root / "report" / "regions_vs_sparsity.png").exists()
    md = written["summary.md"].read_text()
    assert "- regions_vs_sparsity.png is not drawn: no run's regions were counted\n" in md, md
    assert "regions not counted in 3 of 3 run(s)" in md, md


# ----------------------------------------------------------------------------- audit of the figures (fixfigs)

REGION_BOUNDS = ("bound_ln_serra", "bound_ln_rank_actual", "bound_ln_expected_binomial")


def _audit_folder(root, seeds: dict, achieved: dict) -> Path:
    """magnitude runs, one per (sparsity, seed) of `seeds` ({sparsity: seeds}), accuracy 0.8 + 0.01 seed
    (dense 0.9), each with a final `sparsity_prunable` of `achieved`[sparsity] and a regions.csv row of the
    finetuned model: lr_count = 100 * (seed + 1) and the three bounds, ln values 10, 20, 30."""
    from test_report_achieved_sparsity import _edit
    from test_report_experiments import write_run

    for sparsity, run_seeds in seeds.items():
        for seed in run_seeds:
            run = write_run(root, seed, "magnitude", sparsity, 10, 0.8 + 0.01 * seed)
            _edit(root, run, achieved[sparsity])
            d = root / "runs" / run
            m = pd.read_csv(d / "metrics.csv")
            ctx = m.iloc[0].drop(["phase", "split", "metric", "value", "dense_value"]).to_dict()
            row = {**ctx, "phase": "finetuned", "lr_count": 100.0 * (seed + 1)} | dict(zip(REGION_BOUNDS, (10.0, 20.0, 30.0)))
            pd.DataFrame([row]).to_csv(d / "regions.csv", index=False)
    return root


def test_regions_and_recall_figures_draw_a_condition_off_its_target_at_its_achieved_sparsity(tmp_path, monkeypatch):
    """magnitude at 0.5 (reached 0.5) and at 0.9 (reached 0.6, as layer_pruning or autoprune do), seeds 0-1.
    The accuracy figure drew the 0.9 condition at 1 / (1 - 0.6) = 2.5x as "(oneshot, achieved sparsity)"; the
    regions figure put it at x = 0.9 inside the magnitude curve and the recall figure labelled it "sparsity
    0.9". Now both draw it as a series of its own at 0.6, labelled "achieved sparsity"."""
    root = _audit_folder(tmp_path / "res", {0.5: (0, 1), 0.9: (0, 1)}, {0.5: 0.5, 0.9: 0.6})
    curves = _recorded_curves(monkeypatch)
    written = build_report(root, parallel=False)
    assert {"regions_vs_sparsity.png", "recall_change_vs_dense.png"} <= set(written)
    counts = {label: x for label, x, _, _ in curves if label and label.endswith("ln lr_count")}
    assert counts == {
        "magnitude: ln lr_count": [0.5],
        "magnitude (oneshot, achieved sparsity): ln lr_count": [pytest.approx(0.6)],
    }, counts
    # ln(100 (seed 0)), ln(200 (seed 1)): their mean, at the achieved 0.6 as at 0.5
    (off,) = [y for label, _, y, _ in curves if label == "magnitude (oneshot, achieved sparsity): ln lr_count"]
    assert off == [pytest.approx((math.log(100) + math.log(200)) / 2)]
    recall = sorted(label for label, *_ in curves if label and label.startswith("sparsity"))
    assert recall == ["sparsity 0.5", "sparsity 0.6 (oneshot, achieved sparsity)"], recall
    (accuracy,) = [x for label, x, _, _ in curves if label == "magnitude (oneshot, achieved sparsity)"]
    assert accuracy == [pytest.approx(1 / (1 - 0.6))]  # 2.5x: where the accuracy figure already drew it


def test_the_bounds_of_a_regions_curve_each_have_their_own_line_style_named_in_the_legend(tmp_path, monkeypatch):
    """The three bounds of one curve were all "--" in its colour and marker: three identical legend swatches.
    Now dashed, dotted and dash-dot, each said in its legend entry; the count stays the solid line."""
    import matplotlib.pyplot as plt

    rows = [
        {"run_id": f"r{seed}-{s}", "seed": seed, "method": "magnitude", "target_sparsity": s, "phase": "finetuned"}
        | {"lr_count": 100.0 + seed}
        | dict(zip(REGION_BOUNDS, (10.0, 20.0, 30.0)))
        for seed in range(2)
        for s in (0.5, 0.9)
    ]
    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    assert plotting.regions_vs_sparsity(pd.DataFrame(rows), tmp_path) is not None
    (fig,) = figures
    lines = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert lines == {
        "magnitude: ln lr_count": "-",
        "magnitude: bound_ln_serra (dashed)": "--",
        "magnitude: bound_ln_rank_actual (dotted)": ":",
        "magnitude: bound_ln_expected_binomial (dash-dot)": "-.",
    }, lines
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(legend) == sorted(lines), legend


def _kept(monkeypatch) -> list:
    import matplotlib.pyplot as plt

    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    return figures


def test_every_interval_label_names_the_confidence_level(tmp_path, monkeypatch):
    """--confidence 0.8: the y labels still read "mean ± CI" (accuracy, recall, NTK) and the regions figure's
    "ln(number of regions)" said nothing of its bars, while docs/report.md says every figure names the level."""
    root = _audit_folder(tmp_path / "res", {0.5: (0, 1, 2)}, {0.5: 0.5})
    ntk_root = tmp_path / "ntk"
    for seed, v in enumerate(NTK[(32, 32)]):
        ntk_run(ntk_root, seed, (32, 32), v)
    figures = _kept(monkeypatch)
    build_report(root, confidence=0.8, parallel=False)
    build_report(ntk_root, confidence=0.8, parallel=False)
    labels = {ax.get_ylabel() for fig in figures for ax in fig.axes if ax.get_ylabel()}
    assert {
        "test accuracy (mean ± 80% CI over seeds)",
        "recall change vs dense (mean ± 80% CI over seeds)",
        "ln(number of regions) (mean ± 80% CI over seeds)",
        "mean ± 80% CI over seeds",  # ntk_condition against the width
    } <= labels, labels
    assert not any("± CI" in label for label in labels), labels


def _hollow(fig) -> list[tuple]:
    """(x, y) of every point drawn with a white marker face on `fig` (the one-seed points), legend proxies aside."""
    return [
        (float(x), float(y))
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_markerfacecolor() == "white"
        for x, y in zip(line.get_xdata(), line.get_ydata())
    ]


def test_a_point_of_one_seed_is_hollow_and_the_legend_says_so(tmp_path, monkeypatch):
    """magnitude at 0.5 with seeds 0-2 and at 0.75 with seed 0 only: the 0.75 point has no interval, and was
    drawn with a bar of zero length, like seeds that agree exactly. Now it is hollow (a white marker face), no
    bar is drawn at it, and the legend has "hollow: one seed, no interval", in the accuracy, recall and regions
    figures; the three-seed points stay filled."""
    root = _audit_folder(tmp_path / "res", {0.5: (0, 1, 2), 0.75: (0,)}, {0.5: 0.5, 0.75: 0.75})
    figures = _kept(monkeypatch)
    build_report(root, parallel=False)
    by_label = {fig.axes[0].get_ylabel().split(" (")[0]: fig for fig in figures}
    accuracy, recall, regions = (by_label[y] for y in ("test accuracy", "recall change vs dense", "ln(number of regions)"))
    # accuracy: seed 0's 0.80 at 1 / (1 - 0.75) = 4x
    assert _hollow(accuracy) == [(pytest.approx(4.0), pytest.approx(0.80))]
    # recall: both classes' recall change 0.80 - 0.90 at the dense recall 0.90
    assert _hollow(recall) == [(pytest.approx(0.9), pytest.approx(-0.1))] * 2
    # regions: ln 100 and the bounds 10, 20, 30 at 0.75
    assert sorted(_hollow(regions)) == [(0.75, pytest.approx(v)) for v in sorted((math.log(100), 10.0, 20.0, 30.0))]
    # NTK: width 32 of seeds 0-2, width 64 of seed 0 only (its value 2.0)
    ntk_root = tmp_path / "ntk"
    for seed, v in enumerate(NTK[(32, 32)]):
        ntk_run(ntk_root, seed, (32, 32), v)
    ntk_run(ntk_root, 0, (64, 64), NTK[(64, 64)][0])
    figures.clear()
    build_report(ntk_root, parallel=False)
    (ntk,) = [fig for fig in figures if fig.axes[0].get_title() == "ntk_condition"]
    assert _hollow(ntk) == [(64.0, pytest.approx(2.0))]
    for fig in (accuracy, recall, regions, ntk):
        (ax,) = fig.axes
        assert "hollow: one seed, no interval" in [t.get_text() for t in ax.get_legend().get_texts()]
        # bars only at the points of several seeds: none centred on a one-seed point (the zero-length one it had)
        bars = [(seg[0][0], (seg[0][1] + seg[1][1]) / 2) for c in ax.collections for seg in c.get_segments()]
        assert bars and not any(math.isclose(bx, x) and math.isclose(by, y) for bx, by in bars for x, y in _hollow(fig)), bars


def test_hessian_figure_draws_each_condition_at_its_own_smallest_seed(tmp_path, monkeypatch):
    """random and magnitude at 0.5, widths [8, 8] and [16, 16], seeds 0-1, without magnitude [8, 8] seed 0.
    The figure took the folder's smallest seed (0) and drew 3 pruned curves; now 4, magnitude [8, 8] at its
    own smallest seed 1, the label naming each curve's seed. The pruned peaks (10 seed + a condition number)
    tell which run was drawn."""
    from matplotlib.axes import Axes

    root = tmp_path / "res"
    planted = {}
    for k, (method, widths) in enumerate((m, w) for m in ("random", "magnitude") for w in ((8, 8), (16, 16))):
        for seed in range(2):
            if (method, widths, seed) != ("magnitude", (8, 8), 0):
                hessian_run(root, seed, widths, 0.5, 5.0 + k, 10.0 * seed + k + 1, method=method)
                planted.setdefault((method, widths), (seed, 10.0 * seed + k + 1))
    drawn = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **k: (drawn.append((k.get("label"), list(a[1]))), plot(ax, *a, **k))[1])
    assert "hessian_density.png" in build_report(root, parallel=False)
    pruned = sorted((label, max(y)) for label, y in drawn if label and not label.startswith("dense") and len(y) == 3)
    expected = sorted(
        (f"{method} 0.5 model.widths=[{w[0]}, {w[1]}], seed {seed}", peak) for (method, w), (seed, peak) in planted.items()
    )
    assert len(expected) == 4 and pruned == expected, pruned


def test_a_figure_of_many_phases_wraps_into_rows(tmp_path, monkeypatch):
    """An iterative schedule of 5 rounds: 8 Hessian panels (dense, round_1-5, pruned, finetuned) in one row made
    a PNG thousands of pixels wide. Now 3 to a row: 3 rows (3, 3, 2), no wider than 3 panels and their legends."""
    from matplotlib.image import imread

    phases = ["dense", *(f"round_{i}" for i in range(1, 6)), "pruned", "finetuned"]
    rows = [
        {"run_id": "r0", "seed": 0, "method": "magnitude", "target_sparsity": 0.5, "phase": p, "grid": g, "density": 1.0 + g}
        for p in phases
        for g in (0.0, 1.0)
    ]
    figures = _kept(monkeypatch)
    path = plotting.hessian_density(pd.DataFrame(rows), tmp_path)
    (fig,) = figures
    tops = sorted({round(ax.get_position().y1, 6) for ax in fig.axes}, reverse=True)
    per_row = [sum(round(ax.get_position().y1, 6) == t for ax in fig.axes) for t in tops]
    assert per_row == [3, 3, 2], per_row
    height, width = imread(path).shape[:2]
    # a column: margins 0.85 + 0.25 in, a 4.6 in panel and its legend ("magnitude 0.5", under 2 in) at 110 dpi
    assert width <= 3 * (0.85 + 4.6 + 0.25 + 2.0) * 110 and height >= 3 * 3.4 * 110, (width, height)
