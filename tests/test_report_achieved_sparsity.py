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
    assert "magnitude/layer_pruning: target 0.9 not reached, achieved 0.25 (3 run(s))" in standards, standards
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    points = card.loc["at least 5 operating points spanning 2x-32x compression"]
    assert points["found"].startswith("toy/mlp: 1 point(s), 2x-2x"), points["found"]
    assert "at 0.9" not in str(card.loc["baselines present (random, magnitude, dense)", "missing"])
