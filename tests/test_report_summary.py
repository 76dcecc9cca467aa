"""prune-report's summary table and standards check on hand-made results folders whose true
answers are known: the dense column over the seeds that have a value, and the seed counts of the
standards check per experiment (variants of one method apart)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from prune_cli.report.summary import summarise
from test_report_experiments import write_run


def test_dense_mean_is_over_the_seeds_with_a_value(tmp_path):
    """Seed 1's accuracy is NaN (dense 0.99), seeds 0 and 2 have 0.80 and 0.84 (dense 0.90, 0.91).
    The mean and the change use seeds 0 and 2; the dense column averaged all three (0.9333), so the
    table's accuracy - dense (0.82 - 0.9333) was not its change (-0.085). Now dense is 0.905."""
    root = tmp_path / "res"
    for seed, (acc, dense) in enumerate([(0.80, 0.90), (math.nan, 0.99), (0.84, 0.91)]):
        write_run(root, seed, "magnitude", 0.5, 10, acc, dense_acc=dense)
    metrics = pd.concat(pd.read_csv(f) for f in sorted(root.glob("runs/*/metrics.csv")))
    row = summarise(metrics).query("phase == 'finetuned' and metric == 'accuracy'").iloc[0]
    assert row["n_seeds"] == 2 and row["mean"] == pytest.approx(0.82)
    assert row["dense_mean"] == pytest.approx((0.90 + 0.91) / 2)
    assert row["delta_mean"] == pytest.approx(((0.80 - 0.90) + (0.84 - 0.91)) / 2)
    assert row["mean"] - row["dense_mean"] == pytest.approx(row["delta_mean"])
