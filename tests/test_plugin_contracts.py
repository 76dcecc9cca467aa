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


# ----------------------------------------------------------------------------- 5: outside plugins of every kind (audit)

TINYNET = """
    from prune_cli.models import register_model


    @register_model("tinynet9")
    def tinynet9(cfg, input_shape, num_classes):
        raise AssertionError("never built: indexing does not import the module")
"""


@pytest.mark.parametrize(
    "init, raised", [('raise RuntimeError("init kaboom")\n', "RuntimeError: init kaboom"), ("def (:\n", "SyntaxError")]
)
def test_a_plugin_whose_package_init_raises_is_a_config_error_naming_the_module(tmp_path, monkeypatch, init, raised):
    """Audit: finding `badinit.tinynet` imports `badinit`, whose `__init__.py` raising anything but ImportError
    escaped `importlib.util.find_spec` as a raw traceback (exit 1). Now it is the promised one message on the
    `plugins` key naming the module and what was raised, also for the dense cache's source digest."""
    (tmp_path / "badinit").mkdir()
    (tmp_path / "badinit" / "__init__.py").write_text(init)
    (tmp_path / "badinit" / "tinynet.py").write_text(textwrap.dedent(TINYNET).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    for call in (plugins.add_modules, plugins.source_digest):
        with pytest.raises(ConfigError) as e:
            call(["badinit.tinynet"] if call is plugins.add_modules else "badinit.tinynet")
        assert e.value.key == "plugins" and e.value.value == "badinit.tinynet", str(e.value)
        assert "a module that imports" in str(e.value) and raised in str(e.value), str(e.value)
    assert "badinit.tinynet" not in plugins.outside_modules() and ("model", "tinynet9") not in plugins.index().kinds


def test_prune_run_with_a_plugin_whose_package_init_raises_stops_with_one_line(tmp_path, monkeypatch):
    (tmp_path / "src" / "badinit").mkdir(parents=True)
    (tmp_path / "src" / "badinit" / "__init__.py").write_text('raise RuntimeError("init kaboom")\n')
    (tmp_path / "src" / "badinit" / "tinynet.py").write_text(textwrap.dedent(TINYNET).lstrip())
    outside_plugin(tmp_path, monkeypatch, "unused_pkg", "unused", "")  # puts tmp_path/src on PYTHONPATH
    results = tmp_path / "results"
    proc = run_cli(["plugins=[badinit.tinynet]", "model=tinynet9", "dataset=synthetic"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.startswith("prune-run: error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'plugins': 'badinit.tinynet'" in proc.stderr and "RuntimeError: init kaboom" in proc.stderr
    assert not results.exists()


METRIC_NAMED = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import config_schema
    from prune_cli.metrics import MetricResult, register_metric


    @config_schema("metric", "{name}")
    @dataclass
    class Clash:
        enabled: bool = False


    @register_metric("{name}")
    def clash(ctx, phase, node):
        return MetricResult()
"""


@pytest.mark.parametrize("name", ["splits", "per_class", "layers"])  # the always-on `metrics` options (README)
def test_a_metric_named_after_an_always_on_metrics_option_is_refused_naming_the_module(lab, name):
    """Audit: `@config_schema("metric", "layers")` replaced the field metrics.layers of the metrics schema, and
    every run failed with "Merge error: bool is not a subclass of ..." naming neither module nor clash."""
    module = lab(f"m_{name}", METRIC_NAMED.replace("{name}", name))
    with pytest.raises(ConfigError) as e:
        plugins.add_modules([module])
    text = str(e.value)
    assert e.value.key == "plugins" and e.value.value == module, text
    assert f"schema metric '{name}' is the built-in option metrics.{name}" in text and "redeclare a built-in" in text, text
    assert module not in plugins.outside_modules() and ("metric", name) not in plugins.index().schemas


def test_the_metrics_schema_refuses_a_clashing_or_never_enabled_metric_schema_naming_its_module(monkeypatch):
    """The assembly of `metrics` (metrics_config) checks each metric schema it adds: named after an always-on
    option (whichever way it was indexed), or without `enabled: bool` (audit: `metrics.noen.enabled=true` was
    an unknown key, the metric could never run, where a metric without any schema is refused for that)."""
    from dataclasses import dataclass

    from prune_cli.metrics import _refuse_unusable_metric_schema

    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    for name in ("noen", "intenabled", "layers", "fine"):
        plugins.index().schemas[("metric", name)] = f"lab.{name}"

    @dataclass
    class NoEn:
        threshold: float = 0.5

    @dataclass
    class IntEnabled:
        enabled: int = 0

    @dataclass
    class Fine:
        enabled: bool = False
        threshold: float = 0.5

    for name, cls, said in (
        ("noen", NoEn, "NoEn, the schema of metric 'noen', has none, so metrics.noen.enabled could never turn it on"),
        ("intenabled", IntEnabled, "declares it as <class 'int'>"),
        ("layers", Fine, "schema metric 'layers' is the built-in option metrics.layers"),
    ):
        with pytest.raises(ConfigError) as e:
            _refuse_unusable_metric_schema(name, cls)
        assert e.value.key == "plugins" and e.value.value == f"lab.{name}" and said in str(e.value), str(e.value)
    _refuse_unusable_metric_schema("fine", Fine)  # accepted


METRIC_NO_ENABLED = """
    from dataclasses import dataclass

    from prune_cli.core.config_base import config_schema
    from prune_cli.metrics import MetricResult, register_metric


    @config_schema("metric", "noen")
    @dataclass
    class NoEn:
        threshold: float = 0.5


    @register_metric("noen")
    def noen(ctx, phase, node):
        return MetricResult()
"""


def test_prune_run_with_a_metric_schema_without_enabled_stops_before_any_work(tmp_path, monkeypatch):
    outside_plugin(tmp_path, monkeypatch, "noenlab", "noen", textwrap.dedent(METRIC_NO_ENABLED).lstrip())
    results = tmp_path / "results"
    proc = run_cli(["plugins=[noenlab.noen]", *FAST], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'plugins': 'noenlab.noen'" in proc.stderr and "metrics.noen.enabled could never turn it on" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not results.exists()


DOCSTRING_DECORATOR = '''
    """A score whose docstring shows how a score is declared:

        @register_score("magnitude")
        @config_schema("method", "magnitude")
    """

    from dataclasses import dataclass

    from prune_cli.core.config_base import MethodConfig, config_schema
    from prune_cli.pruning.scores import register_score


    @config_schema("method", "docscore")
    @dataclass
    class DocScore(MethodConfig):
        name: str = "docscore"


    @register_score(
        "docscore",
    )
    def docscore(model, params, ctx):
        """Also not a declaration: @register_score("magnitude")"""
        return {}
'''


def test_decorator_text_in_a_docstring_of_an_outside_module_declares_nothing(lab):
    """Audit: the decorator pattern read `    @register_score("magnitude")` inside a docstring as a declaration,
    and the valid module was refused as redeclaring the built-in score. An outside module's declarations are
    the decorators of its syntax tree (a wrapped name included)."""
    module = lab("docscore", DOCSTRING_DECORATOR)
    built_in = plugins.index().kinds[("score", "magnitude")]
    plugins.add_modules([module])
    assert plugins.index().kinds[("score", "docscore")] == module and plugins.index().schemas[("method", "docscore")] == module
    assert plugins.index().kinds[("score", "magnitude")] == built_in
    source = textwrap.dedent(DOCSTRING_DECORATOR).lstrip()
    assert plugins.declarations(source, outside=True) == ([("score", "docscore")], [("method", "docscore")])


# An installed package's entry points, without installing it: a `<name>.dist-info` folder on sys.path.
def _dist_info(root: Path, dist: str, lines: str) -> None:
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[prune_cli.plugins]\n{lines}\n")


EP_SCORE = """
    from prune_cli.pruning.scores import register_score


    @register_score("{name}")
    def score(model, params, ctx):
        return {{}}
"""


SAID_ENV = "_PRUNE_CLI_SKIPPED_ENTRY_POINTS_SAID"  # plugins.ENTRY_POINTS_SAID_ENV


def _fresh_index(monkeypatch) -> None:
    """The next `plugins.index()` is built anew (entry points included), restored after the test."""
    monkeypatch.setattr(plugins, "_INDEX", None)
    monkeypatch.setenv(SAID_ENV, "")  # set by the warning: removed again after the test
    monkeypatch.delenv(plugins.LAUNCHED_ENV, raising=False)


def test_a_broken_entry_point_is_skipped_with_a_warning_naming_it_and_its_distribution(tmp_path, monkeypatch, capsys):
    """Audit: an entry point naming a missing module (or one whose package raises on import) stopped every
    prune-run with "Invalid value for config key 'plugins'", a key the user never set, naming neither the entry
    point nor its distribution. As the plugins docstring promises (an installed entry point is not refused),
    it is skipped with one warning naming both; the good entry point next to it is indexed."""
    _dist_info(tmp_path, "ep2", "x = ep2.missing_module")
    _dist_info(tmp_path, "epinit", "y = epinit.scores")
    _dist_info(tmp_path, "epgood", "z = epgood.scores")
    (tmp_path / "epinit").mkdir()
    (tmp_path / "epinit" / "__init__.py").write_text('raise RuntimeError("init kaboom")\n')
    (tmp_path / "epinit" / "scores.py").write_text(textwrap.dedent(EP_SCORE.format(name="ep_init_score")).lstrip())
    (tmp_path / "epgood").mkdir()
    (tmp_path / "epgood" / "__init__.py").write_text("")
    (tmp_path / "epgood" / "scores.py").write_text(textwrap.dedent(EP_SCORE.format(name="ep_good_score")).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    _fresh_index(monkeypatch)
    idx = plugins.index()
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2, warnings
    missing, init = sorted(warnings)
    said = "prune-cli: warning: skipped the prune_cli.plugins entry point `x = ep2.missing_module` of distribution ep2: "
    assert missing.startswith(said), missing
    assert "No module named 'ep2'" in missing and "'plugins'" not in missing
    assert "entry point `y = epinit.scores` of distribution epinit" in init and "RuntimeError: init kaboom" in init
    assert idx.kinds[("score", "ep_good_score")] == "epgood.scores" and "epgood.scores" in idx.outside
    assert ("score", "ep_init_score") not in idx.kinds and "epinit.scores" not in idx.outside
    assert ("score", "magnitude") in idx.kinds  # the built-ins are all there
    plugins.index()
    assert capsys.readouterr().err == ""  # said once
    assert SAID_ENV == plugins.ENTRY_POINTS_SAID_ENV


def test_an_entry_point_clashing_with_a_built_in_is_skipped_whole(tmp_path, monkeypatch, capsys):
    """A skipped entry point adds none of its names (here the second of its scores clashes with the built-in
    `magnitude`): the first was added before the clash was found, and stayed without its module indexed."""
    _dist_info(tmp_path, "epclash", "c = epclash.scores")
    (tmp_path / "epclash").mkdir()
    (tmp_path / "epclash" / "__init__.py").write_text("")
    (tmp_path / "epclash" / "scores.py").write_text(
        textwrap.dedent(EP_SCORE.format(name="ep_first")).lstrip() + '\n\n@register_score("magnitude")\ndef mine(m, p, c):\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fresh_index(monkeypatch)
    idx = plugins.index()
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert "entry point `c = epclash.scores` of distribution epclash" in warning and "score 'magnitude'" in warning
    assert ("score", "ep_first") not in idx.kinds and idx.kinds[("score", "magnitude")].startswith("prune_cli.")


def test_an_entry_point_module_that_fails_to_import_when_chosen_names_the_entry_point(tmp_path, monkeypatch, capsys):
    """An entry point's module found at indexing but raising when its plugin is chosen: the message names the
    entry point and its distribution, since the user never listed the module in `plugins`."""
    _dist_info(tmp_path, "epboom", "b = epboom.scores")
    (tmp_path / "epboom").mkdir()
    (tmp_path / "epboom" / "__init__.py").write_text("")
    source = 'raise ValueError("boom at import")\n' + textwrap.dedent(EP_SCORE.format(name="ep_boom")).lstrip()
    (tmp_path / "epboom" / "scores.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    _fresh_index(monkeypatch)
    try:
        with pytest.raises(ConfigError) as e:
            plugins.load("score", "ep_boom")
    finally:
        sys.modules.pop("epboom", None)
    text = str(e.value)
    assert e.value.value == "epboom.scores" and "score 'ep_boom'" in text and "ValueError: boom at import" in text, text
    assert "named by the prune_cli.plugins entry point `b = epboom.scores` of distribution epboom" in text, text
    assert capsys.readouterr().err == ""


def test_prune_run_help_works_with_a_broken_entry_point_installed(tmp_path, monkeypatch):
    monkeypatch.delenv(SAID_ENV, raising=False)
    _dist_info(tmp_path / "src", "ep2", "x = ep2.missing_module")
    outside_plugin(tmp_path, monkeypatch, "unused_pkg", "unused", "")  # puts tmp_path/src on PYTHONPATH
    proc = run_cli(["--help"], tmp_path / "results", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (warning,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "entry point `x = ep2.missing_module` of distribution ep2" in warning and "Traceback" not in proc.stderr
    assert "prune-run is powered by Hydra" in proc.stdout


def test_prune_run_help_with_a_named_metric_schema_without_enabled_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """Review: the check of metric schemas ran while Hydra composed the config, so `plugins=[...] --help` with
    such a module ended in a traceback (exit 1); it is refused before Hydra, as a run is."""
    outside_plugin(tmp_path, monkeypatch, "noenlab", "noen", textwrap.dedent(METRIC_NO_ENABLED).lstrip())
    proc = run_cli(["plugins=[noenlab.noen]", "--help"], tmp_path / "results", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'plugins': 'noenlab.noen'" in proc.stderr and "metrics.noen.enabled could never turn it on" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_installed_metric_schema_without_enabled_is_skipped_with_a_warning_not_refused(tmp_path, monkeypatch):
    """Review: an entry point's metric schema without `enabled` was refused while composing, so an installed
    package stopped every command (`--help` exit 1, every run exit 2 blaming `plugins`, a key never set), against
    the rule that an installed entry point is skipped with a warning. The schema is left out of `metrics`, the
    warning names the entry point, and a run goes ahead."""
    monkeypatch.delenv(SAID_ENV, raising=False)
    _dist_info(tmp_path / "src", "noenlab", "n = noenlab.noen")
    outside_plugin(tmp_path, monkeypatch, "noenlab", "noen", textwrap.dedent(METRIC_NO_ENABLED).lstrip())
    said = "entry point `n = noenlab.noen` of distribution noenlab"
    helped = run_cli(["--help"], tmp_path / "results", check=False)
    assert helped.returncode == 0 and "Traceback" not in helped.stderr, helped.stderr[-3000:]
    (warning,) = [line for line in helped.stderr.splitlines() if line.strip()]
    assert said in warning and "metrics.noen.enabled could never turn it on" in warning, warning
    shown = run_cli(["--cfg", "job"], tmp_path / "results", check=False)
    assert shown.returncode == 0, shown.stderr[-3000:]
    metrics = OmegaConf.create(shown.stdout)["metrics"]
    assert "noen" not in metrics and "regions" in metrics
    assert said in shown.stderr


def test_each_skipped_entry_point_is_said_once_across_processes_even_after_another(monkeypatch, capsys):
    """Review: the environment carried one on/off flag, so a launched process that skipped a different entry point
    (a SLURM node whose packages differ from the submit host's) said nothing. It carries each warning's digest."""
    monkeypatch.setenv(SAID_ENV, "")
    plugins.warn_skipped_entry_point("entry point `a = x.y` of distribution x: broken")
    plugins.warn_skipped_entry_point("entry point `a = x.y` of distribution x: broken")
    first = capsys.readouterr().err.splitlines()
    assert len(first) == 1 and "`a = x.y`" in first[0]
    plugins.warn_skipped_entry_point("entry point `b = z.w` of distribution z: broken too")  # a worker's own
    second = capsys.readouterr().err.splitlines()
    assert len(second) == 1 and "`b = z.w`" in second[0]
    plugins.warn_skipped_entry_point("entry point `a = x.y` of distribution x: broken")
    assert capsys.readouterr().err == ""
