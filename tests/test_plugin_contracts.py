"""What an outside plugin gets wrong is named, not mixed in or reported as a bug of prune-cli
(docs/architecture.md, "Plugins"; audit of the plugin contracts at 2b81249):

1. a metric plugin's table with a built-in metric's file name (`regions.csv`) or another metric's table
   name at the same phase was appended to that table (columns of its own, NaN counts);
2. a score or metric registered without its schema, or a @config_schema of a misspelt group, was accepted
   and ended as a message naming no module;
3. an exception raised inside a plugin's code was reported as "a bug in prune-cli";
4. a dataset with NaN inputs trained and failed as "Training diverged ... lower the learning rate"; an
   allocation whose densities cannot be placed was refused naming neither it nor its options.
"""

from __future__ import annotations

import copy
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core import plugins
from prune_cli.core.errors import ConfigError, DatasetContentError, PruneCliError
from prune_cli.metrics import MetricResult, checked_result
from tests.conftest import FAST, run_cli
from tests.helpers import outside_plugin

# ----------------------------------------------------------------------------- 1: metric tables

TABLES = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import config_schema
    from prune_cli.metrics import MetricResult, register_metric


    @config_schema("metric", "wn_reg")
    @dataclass
    class WnRegConfig:
        enabled: bool = False


    @register_metric("wn_reg")
    def wn_reg(ctx, phase, node):
        return MetricResult(tables={"regions.csv": [{"a": 1}]}, scalars=[{"split": "model", "metric": "wn_reg", "value": 1.0}])


    @config_schema("metric", "tab_a")
    @dataclass
    class TabAConfig:
        enabled: bool = False


    @register_metric("tab_a")
    def tab_a(ctx, phase, node):
        return MetricResult(tables={"mine.csv": [{"who": "a"}]})


    @config_schema("metric", "tab_b")
    @dataclass
    class TabBConfig:
        enabled: bool = False


    @register_metric("tab_b")
    def tab_b(ctx, phase, node):
        return MetricResult(tables={"mine.csv": [{"who": "b"}]})
"""


def test_a_plugin_table_with_a_built_in_metric_s_name_is_refused_naming_both():
    with pytest.raises(PruneCliError) as e:
        checked_result("wn_reg", MetricResult(tables={"regions.csv": [{"a": 1}]}))
    text = str(e.value)
    assert "metric wn_reg" in text and "'regions.csv'" in text and "built-in metric" in text


def test_a_built_in_metric_keeps_its_own_table():
    """The built-in regions metric returns regions.csv (prune_cli/metrics/regions.py): still accepted."""
    rows = [{"segment": 0, "regions": 3}]
    assert checked_result("regions", MetricResult(tables={"regions.csv": rows}), True).tables == {"regions.csv": rows}
    assert checked_result("mine", MetricResult(tables={"mine.csv": rows})).tables == {"mine.csv": rows}  # a plugin's own name


def test_register_metric_lets_only_prune_cli_s_own_metrics_write_built_in_tables(monkeypatch):
    """What the recorder calls (the registered wrapper): a function of an outside module returning regions.csv is
    refused, one of prune-cli's own modules (as prune_cli/metrics/regions.py) is not."""
    from prune_cli.metrics import METRICS, register_metric

    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))  # noqa: SLF001 - registered for this test only
    for module, name in (("contracts_lab.wn_reg", "contracts_outside"), ("prune_cli.metrics.contracts", "contracts_built_in")):

        def metric(ctx, phase, node):
            return MetricResult(tables={"regions.csv": [{"a": 1}]})

        metric.__module__ = module
        register_metric(name)(metric)
    with pytest.raises(PruneCliError, match=r"metric contracts_outside returned table name 'regions.csv'"):
        METRICS.get("contracts_outside")(None, "dense", None)
    assert list(METRICS.get("contracts_built_in")(None, "dense", None).tables) == ["regions.csv"]


def test_check_table_names_refuses_a_table_another_metric_returned_at_the_phase():
    from prune_cli.metrics import check_table_names

    taken: dict[str, str] = {}
    check_table_names("tab_a", {"mine.csv": []}, taken)
    check_table_names("other", {"other.csv": []}, taken)  # a name of its own: fine
    assert taken == {"mine.csv": "metric tab_a", "other.csv": "metric other"}
    with pytest.raises(PruneCliError) as e:
        check_table_names("tab_b", {"mine.csv": []}, taken)
    text = str(e.value)
    assert "metric tab_b" in text and "'mine.csv'" in text and "metric tab_a" in text


def test_clashing_metric_tables_stop_the_run_before_any_row_is_written(tmp_path, monkeypatch):
    """Through prune-run: the refusal comes when the second metric returns at the dense phase, before its rows
    are added, so neither the run directory nor the shared tables hold a mixed mine.csv (a built-in table's
    name is refused the same way, in the metric's wrapper: the test above); a plugin's table of its own name
    beside the built-in regions metric is written, one row per recorded phase (dense, pruned, finetuned)."""
    outside_plugin(tmp_path, monkeypatch, "tablab", "tabs", textwrap.dedent(TABLES).lstrip())
    results = tmp_path / "results_clash"
    proc = run_cli(["plugins=[tablab.tabs]", *FAST, "metrics.tab_a.enabled=true", "metrics.tab_b.enabled=true"], results, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(s in proc.stderr for s in ("metric tab_b", "'mine.csv'", "metric tab_a")), proc.stderr[-2000:]
    assert not list(results.rglob("mine.csv")), sorted(results.rglob("*.csv"))
    results = tmp_path / "results_ok"
    run_cli(["plugins=[tablab.tabs]", *FAST, "metrics.tab_a.enabled=true"], results)  # regions stays on (metrics=default)
    import pandas as pd

    mine = pd.read_csv(results / "mine.csv")
    assert mine["who"].tolist() == ["a", "a", "a"] and mine["phase"].tolist() == ["dense", "pruned", "finetuned"]
    assert len(list(results.glob("runs/*/regions.csv"))) == 1 and "a" not in pd.read_csv(results / "regions.csv").columns


# ----------------------------------------------------------------------------- 2: schemas at indexing


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """write(module, source): a module of an outside package on sys.path, indexed on a copy of the plugin
    index (restored after the test), so nothing of it stays in this process."""
    package = "contracts_lab"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))

    def write(module: str, source: str) -> str:
        (tmp_path / package / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
        return f"{package}.{module}"

    yield write
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


METRIC_NO_SCHEMA = """
    from prune_cli.metrics import MetricResult, register_metric


    @register_metric("wnos")
    def wnos(ctx, phase, node):
        return MetricResult()
"""
METRIC_SCHEMA = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import config_schema


    @config_schema("metric", "wnos")
    @dataclass
    class WnosConfig:
        enabled: bool = False
"""


def test_a_metric_without_its_schema_is_refused_naming_the_module(lab):
    module = lab("wnos", METRIC_NO_SCHEMA)
    with pytest.raises(ConfigError) as e:
        plugins.add_modules([module])
    text = str(e.value)
    assert e.value.key == "plugins" and module in text and "metric 'wnos'" in text and "@config_schema('metric', 'wnos')" in text
    assert module not in plugins.outside_modules()


def test_a_metric_whose_schema_another_given_module_declares_is_accepted(lab):
    metric, schema = lab("wnos", METRIC_NO_SCHEMA), lab("wnos_schema", METRIC_SCHEMA)
    plugins.add_modules([metric, schema])
    assert plugins.index().kinds[("metric", "wnos")] == metric and plugins.index().schemas[("metric", "wnos")] == schema


def test_a_schema_of_a_misspelt_group_is_refused_naming_the_module_and_the_group(lab):
    module = lab(
        "tmisspelt",
        """
        from dataclasses import dataclass

        from prune_cli.core.config_base import config_schema


        @config_schema("methods", "taylor")
        @dataclass
        class TaylorConfig:
            name: str = "taylor"
        """,
    )
    with pytest.raises(ConfigError) as e:
        plugins.add_modules([module])
    text = str(e.value)
    assert module in text and "@config_schema('methods', 'taylor')" in text and "@config_schema('method', 'taylor')" in text


def test_a_score_without_a_schema_is_named_when_its_method_is_chosen(lab):
    """A score without a schema is legitimate (method.score=<it> of another method) and indexed; choosing
    it as `method=` names its module and the missing schema (prune_cli/run/composition_errors.py)."""
    from prune_cli.run.composition_errors import _no_schema_hint

    module = lab(
        "tnoschema",
        """
        from prune_cli.pruning.scores import register_score


        @register_score("tnoschema")
        def tnoschema(model, params, ctx):
            return {}
        """,
    )
    plugins.add_modules([module])
    hint = _no_schema_hint("method", "tnoschema")
    assert module in hint and "score 'tnoschema'" in hint and "@config_schema('method', 'tnoschema')" in hint
    assert _no_schema_hint("method", "magnitude") == ""  # a built-in option with its schema: no hint


# ----------------------------------------------------------------------------- 3: an error inside a plugin


def test_an_exception_raised_in_a_plugin_is_attributed_to_its_module(lab):
    import importlib

    module = lab(
        "traise",
        """
        import torch


        def divide():
            return 1 / 0


        def bad_shapes():
            return torch.zeros(2, 3) @ torch.zeros(2, 3)
        """,
    )
    plugins._INDEX.outside.append(module)  # noqa: SLF001 - as add_modules lists it (it declares nothing)
    loaded = importlib.import_module(module)
    path = str(Path(loaded.__file__))
    for call, line in ((loaded.divide, 5), (loaded.bad_shapes, 9)):  # raised in its code, or in torch called from it
        with pytest.raises(Exception) as e:
            call()
        found = plugins.plugin_module_raising(e.value)
        assert found is not None and found[0] == module and Path(found[1]) == Path(path) and found[2] == line
    with pytest.raises(PruneCliError) as e:  # raised in prune-cli's own code: not the plugin's
        checked_result("x", "not a result")
    assert plugins.plugin_module_raising(e.value) is None


SCORE_RAISES = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import MethodConfig, config_schema
    from prune_cli.pruning.scores import register_score


    @config_schema("method", "traise")
    @dataclass
    class TraiseConfig(MethodConfig):
        name: str = "traise"
        score: str = "traise"


    @register_score("traise", options=TraiseConfig)
    def traise(model, params, ctx):
        return 1 / 0
"""


def test_prune_run_names_the_plugin_whose_code_raised(tmp_path, monkeypatch):
    outside_plugin(tmp_path, monkeypatch, "raiselab", "traise", textwrap.dedent(SCORE_RAISES).lstrip())
    results = tmp_path / "results"
    proc = run_cli(["plugins=[raiselab.traise]", "method=traise", *FAST], results, check=False)
    assert proc.returncode != 0
    assert "error in plugin module raiselab.traise" in proc.stderr and "ZeroDivisionError" in proc.stderr, proc.stderr[-3000:]
    assert "bug in prune-cli" not in proc.stderr and "Traceback" in proc.stderr
    assert len(list(results.glob("runs/*/failed.json"))) == 1


# ----------------------------------------------------------------------------- 4: dataset inputs, allocations


def _raw(train_x: torch.Tensor):
    from prune_cli.data.splits import RawData

    return RawData(train_x, torch.tensor([0, 1, 0, 1]), torch.zeros(2, 3), torch.tensor([0, 1]), num_classes=2)


def test_non_finite_inputs_are_refused_naming_the_dataset():
    from prune_cli.data.splits import check_examples

    check_examples(_raw(torch.ones(4, 3)), "rings")  # finite: fine
    x = torch.ones(4, 3)
    x[2, 1], x[3, 0] = float("nan"), float("inf")
    with pytest.raises(DatasetContentError) as e:
        check_examples(_raw(x), "rings")
    text = str(e.value)
    assert "rings" in text and "training" in text and "2 of its 4" in text and "index 2" in text


def test_an_allocation_s_unplaceable_densities_name_it_and_its_options():
    """sizes {a: 100, fc: 40}, density 0.1: round(0.1 x 140) = 14 kept, but fc_keep=1.0 freezes all 40 of
    fc: counts_from_densities cannot place them, and the message now names the allocation and fc_keep."""
    from dataclasses import dataclass

    from prune_cli.pruning.allocation import Allocation, counts_from_densities

    @dataclass
    class FcFracOptions:
        fc_keep: float = 1.0

    def fc_frac(scores, density, ctx):
        sizes = {n: s.numel() for n, s in scores.items()}
        return counts_from_densities({"a": 0.0, "fc": ctx.method.fc_keep}, sizes, 14, frozen=("fc",))

    scores = {"a": torch.ones(10, 10), "fc": torch.ones(4, 10)}
    ctx = SimpleNamespace(method=OmegaConf.create({"fc_keep": 1.0, "allocation": "fc_frac"}))
    with pytest.raises(PruneCliError) as e:
        Allocation("fc_frac", fc_frac, options=FcFracOptions)(scores, 0.1, ctx)
    assert str(e.value).startswith("method.allocation=fc_frac (method.fc_keep=1.0): cannot place 14 kept weights"), str(e.value)

    def refuses(scores, density, ctx):
        raise ConfigError("method.fc_keep", 2.0, "a fraction")

    with pytest.raises(ConfigError) as e:  # a ConfigError names its key: kept as raised
        Allocation("fc_frac", refuses, options=FcFracOptions)(scores, 0.1, ctx)
    assert str(e.value).startswith("Invalid value for config key 'method.fc_keep'")
