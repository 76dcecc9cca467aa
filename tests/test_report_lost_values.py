"""A completed run whose values of the compared metric are all lost (its metrics.csv cut to its header,
removed, or its accuracy recorded twice with different values and so left out) is a seed without a
value, not a seed the other method "has no run to pair with" (the verdict said so while the standards
check counted it as completed). And --expect names and counts a point's seed whose value is NaN, as the
verdicts do, instead of rating the point on the other seeds without a word. Fabricated runs
(write_run), no training."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report import build_report
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
