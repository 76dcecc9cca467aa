"""A metric plugin's scalar rows may not take the (split, metric) of a row that a built-in metric or
another metric writes at the same phase: two `test,accuracy` rows per phase made the dense baseline
of the real row the plugin's value and the report averaged the two (audit A1)."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from prune_cli.core.errors import PruneCliError
from prune_cli.metrics import MetricResult, checked_result
from tests.conftest import FAST, run_cli
from tests.helpers import outside_plugin

CLASH = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import config_schema
    from prune_cli.metrics import MetricResult, register_metric


    @config_schema("metric", "clash")
    @dataclass
    class ClashConfig:
        enabled: bool = False


    @register_metric("clash")
    def clash(ctx, phase, node):
        return MetricResult(scalars=[{"split": "test", "metric": "accuracy", "value": 0.0}])
"""


def test_a_plugin_row_with_a_built_in_metric_name_stops_the_run_naming_it(tmp_path, monkeypatch):
    """The run stops before it writes a second `test,accuracy` row; the message names the plugin, the
    clashing (split, metric) and who wrote it first."""
    outside_plugin(tmp_path, monkeypatch, "clashlab", "clash", textwrap.dedent(CLASH).lstrip())
    results = tmp_path / "results"
    proc = run_cli(["plugins=[clashlab.clash]", *FAST, "metrics.clash.enabled=true"], results, check=False)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    said = proc.stdout + proc.stderr
    assert "metric clash" in said and "'accuracy'" in said and "split 'test'" in said and "built-in" in said, said[-3000:]
    for metrics in results.glob("runs/*/metrics.csv"):  # nothing half-written with two accuracy rows
        rows = pd.read_csv(metrics)
        assert not rows.duplicated(["phase", "split", "metric"]).any()


def test_check_scalar_names_names_the_metric_that_wrote_the_row_first():
    from prune_cli.metrics import check_scalar_names

    taken = {("test", "accuracy"): "the built-in metrics", ("model", "weight_norm"): "metric weight_norm"}
    check_scalar_names("other", [{"split": "model", "metric": "other_norm", "value": 1.0}], taken)  # a new name: fine
    assert taken[("model", "other_norm")] == "metric other"
    with pytest.raises(PruneCliError) as e:
        check_scalar_names("copy", [{"split": "model", "metric": "weight_norm", "value": 1.0}], taken)
    text = str(e.value)
    assert "metric copy" in text and "'weight_norm'" in text and "metric weight_norm" in text
    assert "other_norm, weight_norm" in text  # the names already taken on that split at this phase are listed


def test_a_metric_result_with_one_row_twice_is_refused():
    row = {"split": "test", "metric": "score", "value": 1.0}
    with pytest.raises(PruneCliError, match=r"metric twice.*'score'"):
        checked_result("twice", MetricResult(scalars=[row, dict(row, value=2.0)]))
