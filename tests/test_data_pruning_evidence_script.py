"""scripts/data_pruning_longtail.py's table: one row per experiment, never runs of different settings
pooled as seeds. Before, it grouped by the rule alone: two forgetting runs of seed 0 with
observe=presentation and observe=epoch in one folder made one `forgetting` row with count 2 and a
standard deviation "over seeds" (the docs' evidence commands write both protocols to one folder)."""

from __future__ import annotations

import math

import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
from conftest import FAST, run_cli
from data_pruning_longtail import summary_table


def test_runs_of_two_protocols_are_two_rows_of_one_run_each(tmp_path):
    results = tmp_path / "r"
    common = [*FAST, "data_pruning=forgetting", "data_pruning.proxy_epochs=2", "metrics.regions.enabled=false", "seed=0"]
    run_cli([*common, "data_pruning.observe=presentation"], results)
    run_cli([*common, "data_pruning.observe=epoch"], results)
    table = summary_table(results)
    assert len(table) == 2
    assert list(table[("accuracy", "count")]) == [1, 1]
    assert all(math.isnan(v) for v in table[("accuracy", "std")])  # one seed: no spread
    observed = {str(v) for v in table.index.get_level_values("data_pruning.observe")}
    assert observed == {"presentation", "epoch"}
