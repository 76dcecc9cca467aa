"""A run whose achieved sparsity (its final `sparsity_prunable`) is far from its target (autoprune
without stop_at_target, layer_pruning, whose `sparsity` has no effect) is tabulated and plotted at
its achieved sparsity, labelled so, and never counted as an operating point at the target by the
standards check and the card (audit A2). Fabricated runs (write_run), no training."""

from __future__ import annotations

import pandas as pd
import yaml

from prune_cli.report import build_report
from test_report_experiments import write_run
from test_report_missing_tables import _rows

ACHIEVED = 0.25  # layer_pruning's runs removed a quarter of the prunable weights; their config says 0.9


def _folder(root):
    for seed in range(3):
        runs = [(write_run(root, seed, m, 0.5, 10, a + 0.01 * seed), 0.5) for m, a in (("magnitude", 0.8), ("random", 0.7))]
        lp = write_run(root, seed, "magnitude", 0.9, 10, 0.85 + 0.01 * seed, name="lp")
        config = yaml.safe_load((root / "runs" / lp / "config.yaml").read_text())
        config["schedule"] = {"name": "layer_pruning", "prune_epochs": 2}
        (root / "runs" / lp / "config.yaml").write_text(yaml.safe_dump(config))
        for run, achieved in [*runs, (lp, ACHIEVED)]:
            path = root / "runs" / run / "metrics.csv"
            table = pd.read_csv(path)
            if run == lp:
                table["schedule"] = "layer_pruning"
            row = table[(table["phase"] == "finetuned") & (table["metric"] == "accuracy")]
            row = row.assign(split="model", metric="sparsity_prunable", value=achieved, dense_value=0.0)
            pd.concat([table, row], ignore_index=True).to_csv(path, index=False)
    return root


def test_a_run_far_from_its_target_is_shown_and_plotted_at_its_achieved_sparsity(tmp_path, monkeypatch):
    from prune_cli.report import plots

    drawn = []
    real = plots._curve
    monkeypatch.setattr(
        plots, "_curve", lambda ax, x, y, label=None, **kw: drawn.append((label, list(x))) or real(ax, x, y, label=label, **kw)
    )
    root = _folder(tmp_path / "res")
    written = build_report(root, parallel=False)
    md = written["summary.md"].read_text()
    rows = {(r["schedule"], r["method"]): r for r in _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")}
    lp = rows["layer_pruning", "magnitude"]
    assert lp["sparsity"] == "0.25 (achieved; target 0.9)" and lp["sparsity_achieved"] == "0.25", lp
    assert rows["oneshot", "random"]["sparsity"] == "0.5" and rows["oneshot", "random"]["sparsity_achieved"] == "0.5"
    # the figure: layer_pruning at 1 / (1 - 0.25) = 1.333x, never at 10x, under a label naming its schedule
    (lp_curve,) = [(label, x) for label, x in drawn if "layer_pruning" in str(label)]
    assert lp_curve[1] == [1 / (1 - ACHIEVED)] and "achieved" in lp_curve[0], drawn
    assert all(10.0 not in x for _, x in drawn), drawn
    standards = written["standards.txt"].read_text()
    assert "operating points (target sparsity -> compression of prunable weights): 0.5 (2x)\n" in standards, standards
    assert "0.9 (10x)" not in standards and "at 0.9:" not in standards and "sparsity 0.9:" not in standards, standards
    (line,) = [line.strip() for line in standards.splitlines() if "[sparsity]" in line]
    assert line.startswith("[sparsity] magnitude/layer_pruning (experiment "), line  # the experiment: summary.md's Experiments
    assert "): target 0.9 not reached, achieved 0.25 (3 run(s))" in line, line
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    points = card.loc["at least 5 operating points spanning 2x-32x compression"]
    assert points["found"].startswith("toy/mlp: 1 point(s), 2x-2x"), points["found"]
    assert "at 0.9" not in str(card.loc["baselines present (random, magnitude, dense)", "missing"])


def _edit(root, run, achieved=None, columns=None, **config):
    """Run `run` of `root` with config values set (dotted keys, `method__sparsity_tolerance=0.05`), its
    metrics.csv columns set (`columns`) and a final `sparsity_prunable` row of value `achieved`."""
    d = root / "runs" / run
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    for dotted, value in config.items():
        *path, leaf = dotted.split("__")
        node = cfg
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = value
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    table = pd.read_csv(d / "metrics.csv")
    for column, value in (columns or {}).items():
        table[column] = value
    if achieved is not None:
        row = table[(table["phase"] == "finetuned") & (table["metric"] == "accuracy")]
        table = pd.concat([table, row.assign(split="model", metric="sparsity_prunable", value=achieved, dense_value=0.0)])
    table.to_csv(d / "metrics.csv", index=False)
    return run


def test_a_run_within_its_own_sparsity_tolerance_is_an_operating_point_at_its_target(tmp_path, monkeypatch):
    """prune-run's channel pruning of small layers reaches 0.476 for sparsity=0.5; with
    method.sparsity_tolerance=0.05 (what its own error suggests) it accepts the run. |0.476 - 0.5| =
    0.024 <= 0.05: at its target in the report too. A condition of the default 0.005 at 0.735 for 0.75
    (0.015 > 0.005) stays off its target: the tolerance is each condition's, not the folder's largest."""
    from prune_cli.report import plots

    drawn = []
    real = plots._curve
    monkeypatch.setattr(
        plots, "_curve", lambda ax, x, y, label=None, **kw: drawn.append((label, list(x))) or real(ax, x, y, label=label, **kw)
    )
    root = tmp_path / "res"
    channel = {"method__structure": "channel", "columns": {"structure": "channel"}}
    for seed in range(3):
        for method, acc in (("magnitude", 0.8), ("random", 0.7)):
            _edit(root, write_run(root, seed, method, 0.5, 10, acc + 0.01 * seed), 0.5, method__sparsity_tolerance=0.005)
            run = write_run(root, seed, method, 0.5, 10, acc - 0.05 + 0.01 * seed, allocation="layerwise")
            _edit(root, run, 0.476, method__sparsity_tolerance=0.05, **channel)
        run = write_run(root, seed, "magnitude", 0.75, 10, 0.7 + 0.01 * seed, allocation="layerwise")
        _edit(root, run, 0.735, **channel)  # no method.sparsity_tolerance in its config: the default 0.005
    written = build_report(root, parallel=False)
    md = written["summary.md"].read_text()
    rows = _rows(md, "Accuracy (test split, final sparse model)", "dataset/model")
    shown = sorted((r["sparsity"], r["sparsity_achieved"]) for r in rows)
    at_target = [("0.5", "0.476"), ("0.5", "0.476"), ("0.5", "0.5"), ("0.5", "0.5")]
    assert shown == [*at_target, ("0.735 (achieved; target 0.75)", "0.735")], rows
    summary = pd.read_csv(written["summary.csv"])
    layerwise = summary[(summary["allocation"] == "layerwise") & (summary["target_sparsity"] == 0.5)]
    assert set(layerwise["sparsity_tolerance"]) == {0.05}, layerwise["sparsity_tolerance"]
    # the figure: only the 0.75 condition is a curve of its own, at 1 / (1 - 0.735)
    off = [(label, x) for label, x in drawn if "achieved" in str(label)]
    assert len(off) == 1 and off[0][1] == [1 / (1 - 0.735)], drawn
    standards = written["standards.txt"].read_text()
    assert "operating points (target sparsity -> compression of prunable weights): 0.5 (2x)\n" in standards, standards
    assert "target 0.5 not reached" not in standards and "baseline allocations not run" not in standards, standards
    assert "target 0.75 not reached, achieved 0.735 (3 run(s))" in standards, standards
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    found = card.loc["at least 5 operating points spanning 2x-32x compression", "found"]
    assert found == "toy/mlp: 1 point(s), 2x-2x (3 run(s) off their target sparsity not counted)", found


def test_the_sparsity_line_names_the_experiment_and_a_raised_tolerance_does_not_hide_layer_pruning(tmp_path):
    """Two layer_pruning experiments (train.epochs 10 and 20) at target 0.9 reach 0.25 and 0.3: one
    `[sparsity]` line each, naming its experiment and what tells them apart (before: one line,
    "achieved 0.25-0.3 (6 run(s))"). The second says method.sparsity_tolerance=0.8, which layer_pruning
    ignores (prune-run: `method` has no effect): it is off its target all the same (|0.3 - 0.9| = 0.6)."""
    from prune_cli.results import load

    root = tmp_path / "res"
    lp = {"schedule": {"name": "layer_pruning", "prune_epochs": 2}}
    for seed in range(3):
        for epochs, achieved, tolerance in ((10, 0.25, 0.005), (20, 0.3, 0.8)):
            run = write_run(root, seed, "magnitude", 0.9, epochs, 0.85, name="lp")
            _edit(root, run, achieved, columns={"schedule": "layer_pruning"}, method__sparsity_tolerance=tolerance, **lp)
            for method in ("magnitude", "random"):
                _edit(root, write_run(root, seed, method, 0.5, epochs, 0.8), 0.5)
    written = build_report(root, parallel=False, plots=False)
    experiment = load(root).runs.set_index("run_id")["experiment"]
    standards = written["standards.txt"].read_text()
    lines = [line.strip() for line in standards.splitlines() if "[sparsity]" in line]
    e10, e20 = experiment["lp-magnitude-s0.9-seed0-e10-r"], experiment["lp-magnitude-s0.9-seed0-e20-r"]
    assert lines == sorted(
        [
            f"[sparsity] magnitude/layer_pruning (experiment {e10}; method.sparsity_tolerance=0.005, train.epochs=10): "
            "target 0.9 not reached, achieved 0.25 (3 run(s)); shown at its achieved sparsity, not counted as an operating point",
            f"[sparsity] magnitude/layer_pruning (experiment {e20}; method.sparsity_tolerance=0.8, train.epochs=20): "
            "target 0.9 not reached, achieved 0.3 (3 run(s)); shown at its achieved sparsity, not counted as an operating point",
        ]
    ), standards


def test_a_pair_whose_runs_are_all_off_their_target_has_no_baselines_to_check(tmp_path):
    """Only layer_pruning runs on synthetic/res_mlp (target 0.9, achieved 0.25; no random run): no run is
    at its target, so there is no operating point at which the random and magnitude baselines could be
    checked. Before, the empty list of levels found nothing missing: the card ticked "baselines present"
    and R5 said nothing (before achieved.py: "missing random at 0.9")."""
    root = tmp_path / "res"
    for seed in range(3):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.85, name="lp", dataset="synthetic")
        config = {"model__name": "res_mlp", "schedule": {"name": "layer_pruning", "prune_epochs": 2}}
        _edit(root, run, ACHIEVED, columns={"model": "res_mlp", "schedule": "layer_pruning"}, **config)
    written = build_report(root, parallel=False, plots=False)
    card = pd.read_csv(written["report_card.csv"], keep_default_na=False).set_index("recommendation")
    baselines = card.loc["baselines present (random, magnitude, dense)"]
    assert not baselines["met"], baselines.to_dict()
    assert baselines["missing"] == "synthetic/res_mlp: every run off its target sparsity, baselines not checkable", baselines.to_dict()
    assert baselines["found"] == "0 of 1 pair(s) complete", baselines.to_dict()
    standards = written["standards.txt"].read_text()
    assert "  synthetic/res_mlp:\n    operating points (target sparsity -> compression of prunable weights): none\n" in standards
    assert "    [R5] baselines not checkable: every run is off its target sparsity (no operating point)\n" in standards, standards


def test_a_dense_reference_run_at_sparsity_0_does_not_make_baselines_checkable(tmp_path):
    """The same folder plus a sparsity=0 run per seed (a dense reference, which prune-run accepts): the
    card ticked "baselines present" (it leaves level 0 out, so found nothing missing) while R5 asked for
    "random at sparsity 0" (review). Neither: no pruned operating point is at its target."""
    root = tmp_path / "res"
    for seed in range(3):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.85, name="lp", dataset="synthetic")
        config = {"model__name": "res_mlp", "schedule": {"name": "layer_pruning", "prune_epochs": 2}}
        _edit(root, run, ACHIEVED, columns={"model": "res_mlp", "schedule": "layer_pruning"}, **config)
        dense = write_run(root, seed, "magnitude", 0.0, 10, 0.9, name="dense", dataset="synthetic")
        _edit(root, dense, 0.0, columns={"model": "res_mlp"}, model__name="res_mlp")
    written = build_report(root, parallel=False, plots=False)
    card = pd.read_csv(written["report_card.csv"], keep_default_na=False).set_index("recommendation")
    baselines = card.loc["baselines present (random, magnitude, dense)"]
    assert not baselines["met"] and "every run off its target sparsity, baselines not checkable" in baselines["missing"]
    standards = written["standards.txt"].read_text()
    assert "[R5] baselines not checkable: every run is off its target sparsity (no operating point)" in standards, standards
    assert "missing baselines at sparsity 0:" not in standards
