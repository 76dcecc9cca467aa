"""A completed run whose values of the compared metric are all lost (its metrics.csv cut to its header,
removed, or its accuracy recorded twice with different values and so left out) is a seed without a
value, not a seed the other method "has no run to pair with" (the verdict said so while the standards
check counted it as completed). And --expect names and counts a point's seed whose value is NaN, as the
verdicts do, instead of rating the point on the other seeds without a word. Fabricated runs
(write_run), no training."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from prune_cli.report import build_report
from prune_cli.report import main as report_main
from test_report_experiments import write_run

ACC = {"magnitude": 0.80, "random": 0.70}


def _lose(path, how: str) -> None:
    if how == "twice":  # a second finetuned test accuracy with another value: that metric of that run is left out
        table = pd.read_csv(path)
        row = table[(table["phase"] == "finetuned") & (table["metric"] == "accuracy")].assign(value=0.1)
        pd.concat([table, row], ignore_index=True).to_csv(path, index=False)
    elif how == "header":
        path.write_text(path.read_text().splitlines()[0] + "\n")
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["twice", "header", "no_file"])
def test_a_completed_run_that_lost_its_values_is_a_seed_without_a_value(tmp_path, how):
    root = tmp_path / "res"
    runs = {(m, s): write_run(root, s, m, 0.5, 10, acc + 0.01 * s) for m, acc in ACC.items() for s in range(5)}
    _lose(root / "runs" / runs["magnitude", 2] / "metrics.csv", how)
    written = build_report(root, plots=False)
    (row,) = pd.read_csv(written["comparisons.csv"], keep_default_na=False).to_dict(orient="records")
    assert (row["method"], row["baseline"], row["seeds"]) == ("random", "magnitude", "0 1 3 4")
    assert row["valueless"] == "magnitude has no value on seed 2 (of its 5 seeds)", row
    assert row["unpaired"] == "", row  # magnitude's seed-2 run completed: it did not "never run"
    assert row["verdict"].endswith("; left out: magnitude has no value on seed 2 (of its 5 seeds)"), row["verdict"]


def _three_seeds(root):
    return {(m, s): write_run(root, s, m, 0.5, 10, acc + 0.01 * s) for m, acc in ACC.items() for s in range(3)}


def _strict_expect_with_random_seed_2_nan(tmp_path, value: float) -> dict:
    """Three seeds of each method, random's seed 2 finetuned accuracy NaN; `prune-report --expect-strict` of a
    point for random at 0.5 expecting `value` (band 0.1) exits 1; its expect.csv row."""
    root = tmp_path / "res"
    runs = _three_seeds(root)
    path = root / "runs" / runs["random", 2] / "metrics.csv"
    table = pd.read_csv(path)
    table.loc[(table["phase"] == "finetuned") & (table["metric"] == "accuracy"), "value"] = float("nan")
    table.to_csv(path, index=False)
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "random", "sparsity": 0.5, "value": value, "band": 0.1}]}))
    with pytest.raises(SystemExit) as stop:
        report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert stop.value.code == 1
    (row,) = pd.read_csv(root / "report" / "expect.csv").to_dict(orient="records")
    return row


def test_an_expected_point_with_a_nan_seed_is_printed_named_and_not_confirmed(tmp_path, capsys):
    row = _strict_expect_with_random_seed_2_nan(tmp_path, 0.4)
    # by hand: seeds 0 and 1 have 0.70 and 0.71, mean 0.705; seed 2 has no value
    assert row["n_seeds"] == 2 and row["measured"] == pytest.approx(0.705) and row["status"] == "outside"
    assert row["seeds_lost"] == 1
    assert row["note"] == "left out: random has no value on seed 2 (of its 3 seeds)", row["note"]
    out = capsys.readouterr()
    assert "left out: random has no value on seed 2 (of its 3 seeds)" in out.out


def test_an_expected_point_inside_its_band_with_a_nan_seed_is_printed_and_rejected(tmp_path, capsys):
    """The audit's case: inside the band on the seeds with a value, rc 0 and nothing printed before."""
    row = _strict_expect_with_random_seed_2_nan(tmp_path, 0.7)
    assert row["status"] == "inside" and row["n_seeds"] == 2 and row["seeds_lost"] == 1
    out = capsys.readouterr()
    printed = "inside: random at sparsity 0.5 (final accuracy): expected 0.7 ± 0.1, got 0.705 (2 seeds); left out: random has no value"
    assert printed in out.out
    assert "1 expected point(s)" in out.err


def test_an_expected_point_whose_run_lost_its_rows_names_that_seed(tmp_path):
    root = tmp_path / "res"
    runs = _three_seeds(root)
    _lose(root / "runs" / runs["random", 2] / "metrics.csv", "header")
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "random", "sparsity": 0.5, "value": 0.7, "band": 0.1}]}))
    (row,) = pd.read_csv(build_report(root, plots=False, expect=str(spec))["expect.csv"]).to_dict(orient="records")
    assert row["n_seeds"] == 2 and row["seeds_lost"] == 1
    assert row["note"] == "left out: random has no value on seed 2 (of its 3 seeds)", row["note"]


def test_an_expected_point_whose_every_run_lost_its_rows_is_without_a_value_not_missing(tmp_path, capsys):
    """Every seed of the point's method cut to its header: its runs completed, so the point is `no_value`
    naming its seeds, not `missing` ("got no runs")."""
    root = tmp_path / "res"
    runs = _three_seeds(root)
    for s in range(3):
        _lose(root / "runs" / runs["random", s] / "metrics.csv", "header")
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "random", "sparsity": 0.5, "value": 0.7, "band": 0.1}]}))
    with pytest.raises(SystemExit) as stop:
        report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert stop.value.code == 1
    (row,) = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "no_value", row
    assert "of its 3 seeds (0, 1, 2)" in row["note"], row["note"]
