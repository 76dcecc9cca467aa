"""Expected points that differ only by `match:` (magnitude at 0.5 with no match, with
method.allocation=global, with layerwise) could not be told apart: expect.csv, summary.md's table and
the printed lines showed no match. Each now shows it (`match` column, "magnitude at sparsity 0.5
[method.allocation=layerwise]"). Fabricated runs (write_run), no training."""

from __future__ import annotations

import pandas as pd
import yaml

from prune_cli.report import main as report_main
from test_report_experiments import write_run
from test_report_missing_tables import _rows


def test_points_that_differ_only_by_match_are_told_apart(tmp_path, capsys):
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.80 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.5, 10, 0.60 + 0.01 * seed, allocation="layerwise")
        write_run(root, seed, "random", 0.5, 10, 0.70)
    points = [
        {"method": "magnitude", "sparsity": 0.5, "value": 0.8, "band": 0.05},
        {"method": "magnitude", "sparsity": 0.5, "value": 0.8, "band": 0.05, "match": {"method.allocation": "global"}},
        {"method": "magnitude", "sparsity": 0.5, "value": 0.9, "band": 0.01, "match": {"method.allocation": "layerwise"}},
    ]
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": points}))
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert table["match"].tolist() == ["", "method.allocation=global", "method.allocation=layerwise"]
    assert table["status"].tolist() == ["ambiguous", "inside", "outside"]
    # by hand: the layerwise runs have 0.60, 0.61, 0.62, mean 0.61
    out = capsys.readouterr().out
    printed = "outside: magnitude at sparsity 0.5 [method.allocation=layerwise] (final accuracy): expected 0.9 ± 0.01, got 0.61"
    assert printed + " (3 seeds)" in out
    assert "ambiguous: magnitude at sparsity 0.5 (final accuracy): the 6 runs" in out
    rows = _rows((root / "report" / "summary.md").read_text(), "Expected values", "method")
    assert [(r["match"], r["status"]) for r in rows] == [
        ("", "ambiguous"),
        ("method.allocation=global", "inside"),
        ("method.allocation=layerwise", "outside"),
    ]


def test_without_any_match_the_summary_table_has_no_match_column(tmp_path):
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.80)
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "magnitude", "sparsity": 0.5, "value": 0.8, "band": 0.05}]}))
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    rows = _rows((root / "report" / "summary.md").read_text(), "Expected values", "method")
    assert "match" not in rows[0]
    assert pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)["match"].tolist() == [""]


def test_a_match_of_several_keys_with_a_list_value_reads_unambiguously():
    """Keys were joined with ', ', which a list value contains too ('model.widths=[16, 16], train.epochs=2')."""
    from prune_cli.report.expect import match_text

    point = {"match": {"model.widths": [16, 16], "train.epochs": 2}}
    assert match_text(point).split("; ") == ["model.widths=[16, 16]", "train.epochs=2"]
