"""Reading a results folder as tidy pandas frames in which experiments are identified, never mixed.

`prune_cli.results.load(results_dir)` (README, "Reading results") returns the per-run tables of every
completed run with two keys computed from each run's saved `config.yaml`:

- `experiment`: every resolved config value except the seed, the run name and the keys that cannot
  change results (`HASH_EXCLUDED` of prune_cli/core/identity.py: results_dir, shared_results,
  dense_cache, fail_fast, allow_failures, plugins, hydra), a disabled metric's node and the options of
  an allocation or structure the run did not choose (`_result_items`). Runs with the same experiment key differ
  only by seed, so averaging over them is averaging over seeds, never over datasets, models,
  schedules or epochs.
- `comparison`: the experiment key without the method (all `method.*` options) and the sparsity.
  Runs with the same comparison key and seed share the data, the initialisation and the dense
  model, which is what makes paired comparisons between methods valid (docs/report.md).

Both are short hashes; `Results.experiments` shows, per experiment, only the config keys whose
values actually vary in the folder. Without any run directory (only the shared CSVs) the keys fall
back to the context columns of the rows (`key_source == "columns"`), which cannot see options such
as epochs or widths; `prune-report` says so.

`python -m prune_cli.results RESULTS_DIR` (rebuilding the shared tables) is `__main__.py`; this
module does not import torch.
"""

from __future__ import annotations

import dataclasses

import csv
import hashlib
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from ..core.accel import AccelConfig
from ..core.accel import is_default as default_accel
from ..core import plugins
from ..core.identity import HASH_EXCLUDED, decided_schedule, unhashed_plugin_options
from ..core.tables import CORE_TABLES, TABLES, TEXT_COLUMNS, dir_run_id, one_per_run_id, shared_name

__all__ = [
    "Results",
    "load",
    "flatten_config",
    "experiment_keys",
    "RESULT_NEUTRAL",
    "COMPARISON_FREE",
    "CONTEXT_KEYS",
]

# Top-level keys that never change what a run computes: the seed is the replicate, the name only
# labels the run, and HASH_EXCLUDED only says where results go and how the sweep is driven.
RESULT_NEUTRAL = ("seed", "name", *HASH_EXCLUDED)
# What a comparison between methods varies: the method with all its options, and the sparsity.
COMPARISON_FREE = ("method", "sparsity")
# Context columns of every row (prune_cli/core/tables.py) that stand in for the config when only the
# shared CSVs are there: everything but seed, run name and run id.
CONTEXT_KEYS = ("dataset", "model", "method", "score", "allocation", "structure", "schedule", "target_sparsity")
CONTEXT_COMPARISON_FREE = ("method", "score", "allocation", "structure", "target_sparsity")


def flatten_config(node: Any, prefix: str = "") -> dict[str, str]:
    """{dotted key: value as text} of a nested config (strings as they are, anything else as JSON);
    lists stay one value (`[16, 16]`)."""
    if not isinstance(node, Mapping):
        return {prefix[:-1]: _as_text(node)}
    out: dict[str, str] = {}
    _flatten_into(node, prefix, out)
    return out


_PLAIN_LEAVES = frozenset({str, int, float, bool, list, type(None)})


def _flatten_into(node: Mapping, prefix: str, out: dict[str, str]) -> None:
    """flatten_config into one dict (building and merging a dict per node was a third of the time of
    keying a 100-run folder, scripts/bench_report.py)."""
    for k, v in node.items():
        kind = type(v)  # exact types first: typing.Mapping's isinstance check is slow on every leaf
        if kind is dict or (kind not in _PLAIN_LEAVES and isinstance(v, Mapping)):
            _flatten_into(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = _as_text(v)


def _as_text(value: Any) -> str:
    """A leaf as flatten_config writes it: strings as they are, anything else as json.dumps would
    (the common scalars spelled out directly, with the same text)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return repr(value)
    return json.dumps(value, sort_keys=True, default=str)


# accel.* as flatten_config writes the defaults of prune_cli/core/accel.py's AccelConfig
ACCEL_DEFAULTS = {f"accel.{f.name}": _as_text(f.default) for f in dataclasses.fields(AccelConfig)}


def _top(key: str) -> str:
    return key.split(".", 1)[0]


def _digest(items: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(items.items())).encode()).hexdigest()[:8]


def _neutral(cfg: Mapping) -> tuple[str, ...]:
    """RESULT_NEUTRAL, and `accel` when all its values are the defaults (as in the run id, so a run
    saved before the accel group existed has the same experiment key as one saved after)."""
    return RESULT_NEUTRAL + (("accel",) if default_accel(cfg.get("accel")) else ())


def _result_items(cfg: Mapping) -> dict[str, str]:
    """The flattened config values that enter the experiment key. The neutral top-level keys are
    decided once per run and dropped before flattening (deciding them per dotted key compared the
    accel node with its defaults once per key: most of the key time on a 100-run folder,
    scripts/bench_report.py)."""
    neutral = set(_neutral(cfg))
    kept = {k: v for k, v in cfg.items() if k not in neutral}
    if isinstance(kept.get("schedule"), dict):  # a null lr_rewind as the value it stands for, as in the run id
        kept["schedule"] = decided_schedule(kept["schedule"])
    if isinstance(kept.get("metrics"), dict):  # a disabled metric computes nothing (a metric plugin loaded or not)
        kept["metrics"] = {k: v for k, v in kept["metrics"].items() if not (isinstance(v, dict) and v.get("enabled") is False)}
    if isinstance(kept.get("method"), dict):
        kept["method"] = _without_unchosen_plugin_options(kept["method"], cfg.get("plugins"))
    return flatten_config(kept)


def _without_unchosen_plugin_options(method: dict, modules) -> dict:
    """The method node without the options of allocations and structures the run did not choose, as in
    the run id (prune_cli/core/identity.py `unhashed_plugin_options`): whether `my_lab.fc_frac` was
    loaded, or a sweep set `method.fc_keep` for the jobs that chose `global` too, changes nothing a run
    computes. The run's own outside plugins (`plugins` in its config) are read from their source where
    this process finds them; the options of one it cannot find stay in the key."""
    modules = tuple(str(m) for m in modules) if isinstance(modules, list) else ()
    dropped = unhashed_plugin_options(method, plugins.plugin_options_with(modules))
    return {k: v for k, v in method.items() if k not in dropped} if dropped else method


def experiment_keys(
    configs: Mapping[str, Mapping], flat: Mapping[str, dict[str, str]] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Per run id: `experiment` and `comparison` keys and the flattened config values that enter the
    experiment key; and the dotted keys whose values vary between the runs (the keys a table must
    show so that two experiments never look identical). `flat`: the runs' `_result_items`, when
    already computed."""
    if flat is None:
        flat = {run: _result_items(cfg) for run, cfg in configs.items()}
    rows = []
    for run, items in flat.items():
        comparable = {k: v for k, v in items.items() if _top(k) not in COMPARISON_FREE}
        rows.append({"run_id": run, "experiment": _digest(items), "comparison": _digest(comparable), **items})
    table = pd.DataFrame(rows).set_index("run_id") if rows else pd.DataFrame(columns=["experiment", "comparison"])
    # A run at accel's defaults has no accel.* items (`_neutral`: its key is that of a run saved before the
    # group existed); shown with its default values, not as absent beside a bf16 run's, and a default key
    # such as accel.compile then varies with nothing. The keys were digested above: they do not change.
    for name, default in ACCEL_DEFAULTS.items():
        if name in table.columns:
            table[name] = table[name].fillna(default)
    # A key missing from some configs (a plugin installed later) varies too: its absence is a value.
    values = table.drop(columns=["experiment", "comparison"]).fillna("<absent>")
    varying = [c for c in values.columns if values[c].nunique() > 1]
    return table, varying


def comparison_key(cfg: Mapping) -> str:
    """The `comparison` key of one run's config (`experiment_keys` computes it for every run of a folder):
    runs with the same one and the same seed share data, initialisation and dense model."""
    items = _result_items(cfg)
    return _digest({k: v for k, v in items.items() if _top(k) not in COMPARISON_FREE})


@dataclass
class Results:
    """Tidy tables of a results folder. Every table with a `run_id` column carries `experiment`,
    `comparison` and the varying config keys (dotted column names, e.g. `train.epochs`). Tables are
    read when first asked for: a report needs a few of the ten or so per-run tables, and reading
    CSVs is most of its cost (scripts/bench_report.py)."""

    root: Path
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per completed run
    varying: list[str] = field(default_factory=list)  # config keys that differ between experiments
    key_source: str = "config"  # "config" (config.yaml of each run) or "columns" (shared CSVs only)
    configs: dict[str, dict] = field(default_factory=dict)  # run_id -> saved config (run directories only)
    # run_id -> the flattened config values of its experiment key (dotted key -> text), kept for the
    # report's scaling-law families, which would otherwise flatten every config again
    items: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[str, list[Path]] = field(default_factory=dict)  # table name -> per-run files
    run_dirs: dict[str, Path] = field(default_factory=dict)  # run_id -> its directory (the runs read, with a config)
    # completed runs whose config.yaml is missing: no experiment key, so their rows are left out (named by prune-report)
    without_config: list[str] = field(default_factory=list)
    # completed runs whose config.yaml cannot be read (not YAML, empty, not a mapping), by name -> why: left
    # out like those without one (named by prune-report)
    bad_config: dict[str, str] = field(default_factory=dict)
    # run directories not read, by name -> why (a second directory of a run id already read: a copy)
    skipped: dict[str, str] = field(default_factory=dict)
    cache: dict[str, pd.DataFrame] = field(default_factory=dict)  # tables read so far, with keys
    # table name -> the per-run files of it that hold no rows (empty, or only a header), once the table is read
    empty: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The table names present in the folder ("metrics.csv", "per_class.csv", ...). A table asked
        for but absent is cached as a frame without columns, and is not present: a folder of failed
        runs was said to hold every table the report had looked for."""
        return sorted(set(self.sources) | {name for name, df in self.cache.items() if len(df.columns)})

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table (reads those not read yet)."""
        return {name: self.table(name) for name in self.names}

    def table(self, name: str) -> pd.DataFrame:
        """A per-run table by file name ("metrics.csv", "per_class.csv", ...); empty if absent."""
        if name not in self.cache:
            parts = _read_csvs(self.sources.get(name, []), self.empty.setdefault(name, []))
            self.cache[name] = self._with_keys(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame()
        return self.cache[name]

    def _with_keys(self, df: pd.DataFrame) -> pd.DataFrame:
        if "run_id" not in df.columns or not len(self.runs):
            return df
        shown = self.runs.drop(columns="seed").set_index("run_id")
        extra = shown[[c for c in shown.columns if c not in df.columns]]
        return df.merge(extra, left_on="run_id", right_index=True, how="left")

    @property
    def metrics(self) -> pd.DataFrame:
        return self.table("metrics.csv")

    @property
    def per_class(self) -> pd.DataFrame:
        return self.table("per_class.csv")

    @property
    def experiments(self) -> pd.DataFrame:
        """One row per experiment: its varying keys, the number of runs and the seeds."""
        if not len(self.runs):
            return pd.DataFrame(columns=["experiment", "n_runs", "seeds"])
        cols = ["experiment", *self.varying]
        grouped = self.runs.groupby(cols, dropna=False, sort=True)["seed"]
        out = grouped.agg(n_runs="size", seeds=lambda s: " ".join(str(x) for x in sorted(s.unique())))
        return out.reset_index()


def _read_csvs(paths: list[Path], empty: list[Path] | None = None) -> list[pd.DataFrame]:
    """The non-empty tables of `paths`, parsed once per distinct header: files with the same
    columns are joined as text and read by one pandas.read_csv call. One call per file cost most of
    prune-report's time on a 100-run folder (scripts/bench_report.py); the parsed values are the
    same, since every row goes through the same parser with the same columns. The files without a
    row (empty, or a header alone) are appended to `empty`."""
    bodies: dict[str, list[str]] = {}
    for path in paths:
        text = path.read_text()
        header, _, body = text.partition("\n")
        if header.strip() and body.strip():
            bodies.setdefault(header, []).append(body if body.endswith("\n") else body + "\n")
        elif empty is not None:
            empty.append(path)
    return [_read_table(io.StringIO(header + "\n" + "".join(parts)), header) for header, parts in bodies.items()]


# What pandas reads as a missing value by default ("", "nan", "NA", "null", ...): kept for the numeric columns.
_DEFAULT_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>"]
_DEFAULT_NA += ["N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def _read_table(source: Any, header: str) -> pd.DataFrame:
    """A table whose first line is `header`, its TEXT_COLUMNS read as the text written (only an empty
    cell is missing there) and every other column parsed by pandas as usual."""
    names = next(csv.reader([header]), [])
    text = [c for c in names if c in TEXT_COLUMNS]
    na = {c: [""] if c in TEXT_COLUMNS else _DEFAULT_NA for c in names}
    return pd.read_csv(source, dtype=dict.fromkeys(text, str), keep_default_na=False, na_values=na)


def _run_dirs(root: Path, complete_only: bool = True) -> list[Path]:
    """The run directories under `root`/runs (only those with COMPLETE unless `complete_only` is False)."""
    found = (d for d in (root / "runs").glob("*") if d.is_dir() and not d.name.startswith("."))
    return sorted(d for d in found if not complete_only or (d / "COMPLETE").exists())


def _keys_from_columns(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Fallback without configs: the context columns of the rows (one row per run id)."""
    frames = [t[["run_id", *[c for c in CONTEXT_KEYS if c in t.columns]]] for t in tables.values() if "run_id" in t.columns]
    if not frames:
        return pd.DataFrame(columns=["experiment", "comparison"]), []
    ctx = pd.concat(frames).drop_duplicates("run_id").set_index("run_id").astype(str)
    items = ctx.to_dict(orient="index")
    ctx["experiment"] = [_digest(items[r]) for r in ctx.index]
    ctx["comparison"] = [_digest({k: v for k, v in items[r].items() if k not in CONTEXT_COMPARISON_FREE}) for r in ctx.index]
    return ctx[["experiment", "comparison"]], []


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A top-level key of a block mapping as yaml.safe_dump and OmegaConf write it: a plain name at column 0.
_TOP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:(?: |$)")


def _top_level_blocks(text: str) -> list[str] | None:
    """The text of each top-level key with its indented value, or None when the document is not
    plainly a block mapping of such keys (anchors, aliases, tags, comments or document markers: then
    the whole document is parsed as one)."""
    if any(c in text for c in "&*!#%"):
        return None
    blocks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith((" ", "- ")) or line.rstrip("\r\n") in ("", "-"):
            if not blocks:
                return None
            blocks[-1].append(line)
        elif _TOP_KEY.match(line):
            blocks.append([line])
        else:
            return None
    return ["".join(b) for b in blocks]


def _plain_copy(node: Any) -> Any:
    """A copy of parsed YAML (dicts and lists of scalars), so that no two configs share objects."""
    if type(node) is dict:
        return {k: _plain_copy(v) for k, v in node.items()}
    if type(node) is list:
        return [_plain_copy(v) for v in node]
    return node


def _read_configs(paths: Mapping[str, Path]) -> tuple[dict[str, dict], dict[str, str]]:
    """The runs' saved config.yaml files (written resolved by prune-run, so plain YAML), by libyaml's
    C loader when available: OmegaConf.load took most of prune-report's time on a 100-run folder.
    The runs of a sweep share most of their config, so each distinct top-level block (`dataset:`,
    `model:`, ... with its indented value) is parsed once and copied into every config that has it;
    a document that is not plainly such blocks is parsed whole (scripts/bench_report.py). Returns
    (the configs, the runs whose file cannot be read as a config -> why: not YAML, not text, empty, not
    a mapping of config keys): prune-run writes config.yaml atomically, so only outside damage (a hand
    edit, a truncated copy) makes one unreadable, and the run is then left out by name, not a reason
    for the whole report to stop with a traceback."""
    parsed: dict[str, dict] = {}
    out: dict[str, dict] = {}
    bad: dict[str, str] = {}
    for run, path in paths.items():
        try:
            text = path.read_text()
            blocks = _top_level_blocks(text)
            if blocks is None:
                cfg = yaml.load(text, Loader=_LOADER)
            else:
                cfg = {}
                for block in blocks:
                    if block not in parsed:
                        parsed[block] = yaml.load(block, Loader=_LOADER)
                    cfg.update(_plain_copy(parsed[block]))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            bad[run] = f"{type(e).__name__}: {' '.join(str(e).split())}"
            continue
        if not isinstance(cfg, dict):
            bad[run] = f"not a mapping of config keys (a YAML {type(cfg).__name__})"
        elif not cfg:
            bad[run] = "empty"
        elif broken := [k for k in CONFIG_GROUPS if k in cfg and not isinstance(cfg[k], dict)]:
            bad[run] = f"{', '.join(broken)} not a mapping of options (prune-run writes each group whole: cut short or edited)"
        else:
            out[run] = cfg
    return out, bad


# Groups that a config.yaml prune-run writes holds as mappings of options (configs/config.yaml's
# defaults); one that is there but empty or a scalar (`method:` at the end of a truncated file) made
# the report stop with a KeyError.
CONFIG_GROUPS = ("dataset", "model", "method", "schedule")


def load(results_dir: str | Path) -> Results:
    """Read `results_dir` (the `results_dir` of prune-run) into tidy frames with experiment keys.

    Completed run directories (`runs/<id>/COMPLETE`) are the source of truth. Only a folder without
    any run directory (moved away, or shared CSVs copied on their own) is read from its shared CSVs
    (`runs.csv`, `per_class.csv`, ...), the keys coming from their columns: where run directories
    exist but none completed, the rows in the shared CSVs are of unfinished runs, not results. Each run
    id is read once: a second directory holding it (a copy such as "<id> (copy)") is left out with a
    warning naming it (`Results.skipped`)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    res = Results(root)
    complete = _run_dirs(root)
    if complete or _run_dirs(root, complete_only=False):
        complete, res.skipped = one_per_run_id(complete)
        for name, why in res.skipped.items():
            warnings.warn(f"{root / 'runs' / name}: not read, {why}", stacklevel=2)
        res.without_config = [d.name for d in complete if not (d / "config.yaml").exists()]
        dirs = {dir_run_id(d): d for d in complete if (d / "config.yaml").exists()}
        configs, bad = _read_configs({run: d / "config.yaml" for run, d in dirs.items()})
        res.bad_config = {dirs[run].name: why for run, why in bad.items()}
        res.run_dirs = {run: d for run, d in dirs.items() if run not in bad}
        for d in res.run_dirs.values():
            for f in d.glob("*.csv"):
                if f.name != "history.csv":
                    res.sources.setdefault(f.name, []).append(f)
        res.configs = configs
        res.items = {run: _result_items(cfg) for run, cfg in configs.items()}
        keys, res.varying = experiment_keys(configs, res.items)
        seeds = {run: cfg.get("seed") for run, cfg in configs.items()}
        tables: dict[str, pd.DataFrame] = {}
    else:
        tables = {}
        # a shared file under its per-run table's name (runs.csv is metrics.csv), any other CSV as it is
        shared_files = set(CORE_TABLES.values()) - set(CORE_TABLES)
        for run_table in set(TABLES) | {p.name for p in root.glob("*.csv") if p.name not in shared_files}:
            path = root / shared_name(run_table)
            if path.exists() and path.stat().st_size:
                with path.open(newline="") as f:
                    header = f.readline().rstrip("\r\n")
                tables[run_table] = _read_table(path, header)
        keys, res.varying = _keys_from_columns(tables)
        res.key_source = "columns"
        seeds = {}
        for t in tables.values():
            if {"run_id", "seed"} <= set(t.columns):
                seeds.update(t.drop_duplicates("run_id").set_index("run_id")["seed"].to_dict())
    shown = keys[["experiment", "comparison", *res.varying]]
    res.runs = shown.assign(seed=[seeds.get(r) for r in shown.index]).rename_axis("run_id").reset_index()
    res.cache = {name: res._with_keys(df) for name, df in tables.items()}
    return res
