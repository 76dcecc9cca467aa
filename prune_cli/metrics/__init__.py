"""Metrics: each reads (model, masks, data, dense reference) and returns tidy rows.

Cheap metrics (accuracy, per-class, sparsity, FLOPs) run every phase. An optional metric is a
plugin module here (found by discovery, prune_cli/core/plugins.py) with its config dataclass and
its function; it takes its settings from `cfg.metrics.<name>` and runs when that node has
`enabled: true`:

    @config_schema("metric", "regions")
    @dataclass
    class RegionsConfig: enabled: bool = False; ...

    @register_metric("regions")
    def regions(ctx: MetricContext, phase, node) -> MetricResult: ...

`ctx` is a MetricContext (model, data, masks, the dense reference, device, run directory).
Scalar rows go to metrics.csv; `tables` become extra per-run (and shared) CSVs.
"""

from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import OmegaConf

from ..core import interrupts
from ..core.accel import FP32
from ..core.config_base import BaseMetricsConfig
from ..core.errors import ConfigError, PruneCliError
from ..core.tables import BUILTIN_METRIC_TABLES, RUN_TABLES
from ..core.registry import Registry

METRICS: Registry = Registry("metric", "metrics")


@dataclass(frozen=True)
class MetricContext:
    """What a metric may read at a phase: the current model and what it is compared with, not the
    running experiment. Built by the run layer (prune_cli/run/recorder.py) for each metric call."""

    model: Any  # the current PrunableNet (masks applied); a metric that changes its mode restores it
    data: Any  # prune_cli.data.DataSplits
    masks: Any  # {param name: bool mask}, empty before pruning
    prunable: tuple[str, ...]  # parameter names of the prunable weights, forward order
    device: Any  # torch.device the model and data live on
    train: Any  # the run's train options (eval_batch_size, l1, ...)
    run_dir: Path  # the run's directory, for a metric's own files (predictions, plots)
    dense: Optional[Callable[[], Any]] = None  # builds the trained dense model; None until it exists
    state: dict = field(default_factory=dict)  # the metric's own memory across phases of this run
    # the run's precision and memory format (prune_cli/core/accel.py), for a metric that reports what the
    # recorded evaluation measures (recall_distortion); analysis metrics compute in fp32 (docs/performance.md)
    accel: Any = field(default_factory=lambda: FP32)

    @property
    def has_dense(self) -> bool:
        return self.dense is not None

    @property
    def eval_batch_size(self) -> int:
        return int(self.train.eval_batch_size)


@dataclass
class MetricResult:
    scalars: list[dict] = field(default_factory=list)  # {"split", "metric", "value"} -> metrics.csv
    tables: dict[str, list[dict]] = field(default_factory=dict)  # {"regions.csv": [row, ...]}


SCALAR_KEYS = ("split", "metric", "value")
TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.csv")  # a file in the run directory, never a path


def checked_result(name: str, result: Any, built_in: bool = False) -> MetricResult:
    """A metric function's result, held to what the recorder writes: scalar rows with split, metric and
    value, tables as lists of rows. Anything else (a plugin's row without "split") crashed the recorder
    later, reported as a bug in prune-cli; now the message names the metric and the row.

    `built_in`: the metric is one of prune-cli's own (prune_cli/metrics/), whose tables are the names of
    core/tables.py `BUILTIN_METRIC_TABLES`. An outside metric's table may take none of those names: its
    rows were appended to the built-in metric's table (a `regions.csv` of a plugin gave the run's and the
    shared regions.csv its columns and rows with NaN counts), not written to a table of its own."""

    def wrong(what: str) -> PruneCliError:
        return PruneCliError(
            f"metric {name} returned {what}; a metric returns MetricResult(scalars=[{{'split', 'metric', 'value'}}, ...], "
            "tables={'name.csv': [row dict, ...]})"
        )

    if not isinstance(result, MetricResult):
        raise wrong(f"a {type(result).__name__}, not a MetricResult")
    if not isinstance(result.scalars, list) or not all(isinstance(r, dict) for r in result.scalars):
        raise wrong(f"scalars: a {type(result.scalars).__name__}, not a list of dicts")
    for i, row in enumerate(result.scalars):
        for key in SCALAR_KEYS:
            if key not in row:
                raise wrong(f"scalar row {i} lacks {key!r} ({row})")
        for key in ("split", "metric"):
            if not isinstance(row[key], str):
                raise wrong(f"scalar row {i}: {key} {row[key]!r} is a {type(row[key]).__name__}, not a str")
        if not isinstance(row["value"], numbers.Real):  # a list or a tensor would reach the CSV as text
            raise wrong(f"scalar row {i}: value {row['value']!r} is a {type(row['value']).__name__}, not a number (float(x))")
    seen: set[tuple[str, str]] = set()
    for row in result.scalars:  # one row per (split, metric) and phase: a second one reads as a repeated run's
        key = (row["split"], row["metric"])
        if key in seen:
            raise wrong(f"metric {row['metric']!r} of split {row['split']!r} twice")
        seen.add(key)
    if not isinstance(result.tables, dict):
        raise wrong(f"tables: a {type(result.tables).__name__}, not a dict")
    for table, rows in result.tables.items():
        if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
            raise wrong(f"table name {table!r}: a file name of letters, digits, '_', '-' and '.', ending in .csv")
        if table in RUN_TABLES:
            raise wrong(f"table name {table!r} is one the run writes itself ({', '.join(sorted(RUN_TABLES))})")
        if table in BUILTIN_METRIC_TABLES and not built_in:
            raise wrong(
                f"table name {table!r}, which is a built-in metric's table ({', '.join(sorted(BUILTIN_METRIC_TABLES))}); "
                "a metric plugin's table needs a name of its own"
            )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise wrong(f"table {table}: a {type(rows).__name__}, not a list of dicts")
    return result


BUILT_IN = "the built-in metrics (accuracy, loss, sparsity, FLOPs, ...)"


def check_scalar_names(name: str, scalars: list[dict], taken: dict[tuple[str, str], str]) -> None:
    """Refuse a scalar row of metric `name` whose (split, metric) an earlier metric of the same phase
    wrote (`taken`: (split, metric) -> who wrote it, updated with `name`'s rows). metrics.csv holds one
    row per (run, phase, split, metric): a plugin row named `test,accuracy` became a second accuracy
    row, the dense baseline of the real one took the plugin's value, and the report averaged the two
    into a wrong verdict without a word (audit A1)."""
    for row in scalars:
        key = (row["split"], row["metric"])
        if key in taken:
            names = ", ".join(sorted(m for s, m in taken if s == row["split"]))
            raise PruneCliError(
                f"metric {name} returned a row with metric {row['metric']!r} on split {row['split']!r}, which "
                f"{taken[key]} already wrote at this phase; a metric's rows need names of their own (taken on split "
                f"{row['split']!r}: {names})"
            )
    taken.update({(row["split"], row["metric"]): f"metric {name}" for row in scalars})


def check_table_names(name: str, tables: dict[str, list], taken: dict[str, str]) -> None:
    """Refuse a table of metric `name` that an earlier metric of the same phase returned (`taken`: table
    name -> who returned it, updated with `name`'s tables). The recorder appends every metric's rows of
    one name to one file: two metrics writing `mine.csv` gave one mine.csv mixing their rows, with nothing
    saying which metric wrote which (as `check_scalar_names` for metrics.csv's rows). Called before any of
    `name`'s rows are added, like the refusals of `checked_result`, so nothing of it is written."""
    for table in tables:
        if table in taken:
            raise PruneCliError(
                f"metric {name} returned table {table!r}, which {taken[table]} already returned at this phase; "
                f"a metric's tables need names of their own (taken: {', '.join(sorted(taken))})"
            )
    taken.update({table: f"metric {name}" for table in tables})


def _is_built_in(fn: Callable) -> bool:
    module = getattr(fn, "__module__", None) or ""
    return module == "prune_cli" or module.startswith("prune_cli.")


def register_metric(name: str) -> Callable:
    """Register `fn(ctx, phase, node) -> MetricResult` as metric `name`. The registry holds it behind
    a safe point (prune_cli/core/interrupts.py): a stop signal that arrived during the phase's
    evaluation or an earlier metric stops the run before this one starts. A long metric adds safe
    points of its own between its pieces of work (segments, HVPs, sweep points); the decorated
    function itself is returned unchanged."""

    def decorator(fn: Callable) -> Callable:
        built_in = _is_built_in(fn)  # only prune-cli's own metrics write BUILTIN_METRIC_TABLES

        @functools.wraps(fn)
        def at_a_safe_point(ctx: MetricContext, phase: str, node: Any) -> MetricResult:
            interrupts.check()
            return checked_result(name, fn(ctx, phase, node), built_in)

        METRICS.register(name)(at_a_safe_point)
        return fn

    return decorator


from .classification import classification_metrics  # noqa: E402
from .cost import layer_table, model_cost_metrics  # noqa: E402

_METRICS_CONFIG: type | None = None


def _refuse_unusable_metric_schema(name: str, cls: type) -> None:
    """A metric schema the assembled `metrics` schema cannot use, refused naming its module: one named after an
    always-on option (`layers`) would replace that BaseMetricsConfig field (every run failed with an OmegaConf
    merge error naming neither; outside modules are refused when indexed, core/plugins.py), and one without
    `enabled: bool` could never be turned on (`metrics.<name>.enabled=true` was an unknown key), as a metric
    without a schema, which core/plugins.py refuses for that reason."""
    import dataclasses
    import typing

    from ..core import plugins

    module = plugins.index().schemas.get(("metric", name), cls.__module__)
    if name in plugins.base_metrics_options():
        raise plugins.metric_named_as_base_option(module, name)
    enabled = next((f for f in dataclasses.fields(cls) if f.name == "enabled"), None) if dataclasses.is_dataclass(cls) else None
    try:
        declared = typing.get_type_hints(cls).get("enabled") if enabled is not None else None
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate: its written text
        declared = enabled.type
    if declared not in (bool, "bool"):
        has = "has none" if enabled is None else f"declares it as {declared!r}"
        raise ConfigError(
            "plugins",
            module,
            f"modules whose metric schemas have the field `enabled: bool = False`: {cls.__qualname__}, the schema of metric "
            f"'{name}', {has}, so metrics.{name}.enabled could never turn it on (docs/architecture.md, Plugins)",
        )


def metrics_config() -> type:
    """The `metrics` schema: the always-on options (BaseMetricsConfig) and one node per optional
    metric plugin, each declared with `@config_schema("metric", "<name>")` next to its function.

    Assembled from the plugin index, so a new metric module adds its node without editing this
    file; it imports every metric adapter, which is why adapters import their analysis math (scipy,
    pandas, matplotlib) inside the metric function."""
    global _METRICS_CONFIG
    if _METRICS_CONFIG is None:
        from ..core import plugins

        nodes = []
        for name in plugins.schema_names("metric"):
            try:
                cls = plugins.schema("metric", name)
                _refuse_unusable_metric_schema(name, cls)
            except ConfigError as err:
                where = plugins.index().entry_points.get(plugins.index().schemas.get(("metric", name), ""))
                if where is None:  # a built-in, or a module the command named in `plugins`: refused
                    raise
                # an installed entry point's: skipped with a warning as when it cannot be indexed (core/plugins.py
                # `_add_entry_points`), not refused: refusing stopped every command, `--help` included
                plugins.warn_skipped_entry_point(f"{where}: {err.hint or err.allowed}")
                continue
            nodes.append((name, cls))
        # each node's default is the structured schema, not `cls()`: a field without a default is then an
        # unset value (`???`) that the pre-run pass names with its key and schema where the metric is
        # enabled (prevalidate.check_missing_values), as for every other plugin's schema; `cls()` raised
        # a TypeError naming neither, from every run's composition
        _METRICS_CONFIG = make_dataclass(
            "MetricsConfig",
            [(name, cls, field(default_factory=functools.partial(OmegaConf.structured, cls))) for name, cls in nodes],
            bases=(BaseMetricsConfig,),
            namespace={"__doc__": "`metrics.*`: the always-on metrics and one node per optional metric plugin."},
        )
        _METRICS_CONFIG.__module__ = __name__
    return _METRICS_CONFIG


__all__ = [
    "METRICS",
    "MetricContext",
    "MetricResult",
    "check_scalar_names",
    "check_table_names",
    "checked_result",
    "metrics_config",
    "register_metric",
    "classification_metrics",
    "layer_table",
    "model_cost_metrics",
]
