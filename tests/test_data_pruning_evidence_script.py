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


def _main(monkeypatch, tmp_path, *argv) -> list[list[str]]:
    """data_pruning_longtail.py's prune-run commands for `argv` (recorded, nothing runs), in tmp_path."""
    import sys

    import pandas as pd

    import data_pruning_longtail

    commands = []
    monkeypatch.setattr(data_pruning_longtail, "run_or_exit", lambda cmd, **kw: commands.append(cmd))
    monkeypatch.setattr(data_pruning_longtail, "summary_table", lambda results: pd.DataFrame())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["data_pruning_longtail.py", "r", *argv])
    data_pruning_longtail.main()
    return commands


def test_a_keep_that_keeps_every_training_example_is_refused_before_any_run(monkeypatch, tmp_path, capsys):
    """`--keep 0.9999 --rules none,random`: the `none` sweep trained, then prune-run refused every job of
    the rule sweep when it had loaded the long-tailed split (round(0.9999 x 2898) keeps all 2898),
    exit 1 and failed run directories left. The script sizes the split as prune-run does and refuses
    the keep up front, with the bound."""
    import pytest

    with pytest.raises(SystemExit) as stop:
        _main(monkeypatch, tmp_path, "--keep", "0.9999", "--rules", "none,random", "--seeds", "0,1", "--epochs", "1")
    assert stop.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("data_pruning_longtail.py: error: argument --keep: '0.9999': allowed: "), line
    assert "2898" in line and "keep <= 0.999827" in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_keep_that_leaves_one_out_runs(monkeypatch, tmp_path):
    commands = _main(monkeypatch, tmp_path, "--keep", "0.999827", "--rules", "none,random", "--seeds", "0", "--epochs", "1")
    assert len(commands) == 2 and "data_pruning.keep=0.999827" in commands[1]
    # only `none`: keep is not used, not checked
    assert len(_main(monkeypatch, tmp_path, "--keep", "0.9999", "--rules", "none", "--seeds", "0")) == 1
