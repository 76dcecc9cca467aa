"""Loading a results folder for prune-report: the per-run tables of every completed run (or the
shared CSVs when there are no run directories), the runs' configs, and the columns that define a
condition (runs that differ only by seed: the same experiment key, prune_cli/results)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import yaml

from ..results import Results, load
from .tolerance import TOLERANCE_COLUMN, run_tolerances
from .mixing import CONFIGURATION, configuration_ids

# One condition = one point of a figure; the runs inside it differ only by seed.
CONDITION = ["name", "dataset", "model", "method", "score", "allocation", "structure", "schedule", "target_sparsity"]

# The tables every completed run writes (prune_cli/run/recorder.py), with what of the report reads them:
# metrics.csv always, per_class.csv unless the run's metrics.per_class is off.
RUN_TABLES_READ = {
    "metrics.csv": "every table, verdict and figure",
    "per_class.csv": "the recall-distortion and disparate-impact tables",
}


@dataclass
class ResultsFolder:
    """The tables of a results folder, concatenated over completed runs, plus run bookkeeping."""

    root: Path
    results: Optional[Results] = None  # the tables, read when first asked for (prune_cli.results)
    configs: dict[str, dict] = field(default_factory=dict)  # run_id -> resolved config
    failed: list[dict] = field(default_factory=list)  # failed.json records of runs without COMPLETE
    failed_configs: dict[str, dict] = field(default_factory=dict)  # failed run directory name -> its config.yaml, where readable
    unfinished: list[str] = field(default_factory=list)  # run dirs with neither COMPLETE nor failed.json
    unfinished_configs: dict[str, dict] = field(default_factory=dict)  # unfinished run directory name -> its config.yaml if readable
    incomplete_methods: set[str] = field(default_factory=set)  # method names of the failed and unfinished runs
    without_config: list[str] = field(default_factory=list)  # completed runs left out: their config.yaml is missing
    bad_config: dict[str, str] = field(default_factory=dict)  # completed runs left out: their config.yaml cannot be read -> why
    # table name -> its rows left out because a number column holds text (`_without_text_values`), as notes
    text_values: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # run directories not read (a copy of a run read already) -> why
    # table name -> the (run, split, metric) left out because one phase holds it twice with different values, as notes
    repeated: dict[str, list[str]] = field(default_factory=dict)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run: experiment keys, seed
    run_dirs: dict[str, Path] = field(default_factory=dict)  # run id -> its directory (completed, with a config)
    varying: list[str] = field(default_factory=list)  # config keys that differ between experiments
    key_source: str = "config"  # see prune_cli.results.load

    def table(self, name: str) -> pd.DataFrame:
        """A per-run table with a `configuration` column (mixing.py: the identity of each run's
        configuration, by which the tables tell a repeated run from runs their key cannot tell apart)."""
        if self.results is None:
            return pd.DataFrame()
        df = self.results.table(name)
        if name not in self.text_values:
            df, self.text_values[name] = _without_text_values(df)
            df, self.repeated[name] = _without_repeated_rows(df) if name == "metrics.csv" else (df, [])
            self.results.cache[name] = df  # checked once, on the cached table
        if len(df) and "run_id" in df.columns and CONFIGURATION not in df.columns:
            df[CONFIGURATION] = configuration_ids(df, self.key_source).to_numpy()  # on the cached table: once
        if name == "metrics.csv" and len(df) and "run_id" in df.columns and self.configs and TOLERANCE_COLUMN not in df.columns:
            # each run's method.sparsity_tolerance (achieved.py): how far from its target prune-run accepted it
            df[TOLERANCE_COLUMN] = run_tolerances(df["run_id"], self.configs)
        return df

    def without_table(self) -> dict[str, list[str]]:
        """{table: the completed runs whose directory lacks it} for the tables of RUN_TABLES_READ, where
        another completed run has it (a run deleted or damaged by hand, a copy that left a file
        behind; a folder in which no run has per_class.csv was written without it) and, for
        per_class.csv, the run did not switch it off (metrics.per_class: false). Those runs are left
        out of what reads the table, which summary.md and standards.txt say: before, their conditions
        showed one seed fewer without a word."""
        if self.results is None or not self.run_dirs:
            return {}
        out = {}
        for name in RUN_TABLES_READ:
            files = self.results.sources.get(name, [])
            if files:
                self.table(name)  # read (once): which of its files hold no rows is known then
            empty = {p.parent for p in self.results.empty.get(name, [])}
            present = {p.parent for p in files} - empty
            # a file without a row (truncated to nothing or to its header) is named whether or not other runs have rows
            lacking = [
                run if d not in empty else f"{run} (no rows)"
                for run, d in sorted(self.run_dirs.items())
                if d in empty or (present and d not in present and _writes(self.configs.get(run, {}), name))
            ]
            if lacking:
                out[name] = lacking
        return out


# The provenance columns that tell the code a run was made by (prune_cli/run/results.py CODE_FIELDS: what
# prune-run itself compares when it keeps a finished run); values that say nothing are not compared.
CODE_COLUMNS = ("git_sha", "prune_cli_version", "torch_version")
UNKNOWN_CODE = ("", "unknown", "nan", "None")


def mixed_code_versions(folder: ResultsFolder) -> list[str]:
    """One note per experiment whose seeds were made by different code: a code column of CODE_COLUMNS
    (metrics.csv's provenance, the starting process's) holds several known values among its runs.
    Such seeds are averaged as they are (the numbers do not change); the note names the experiment and
    each value with its seeds: `experiment 1a2b3c4d (magnitude oneshot 0.5): git_sha 0123456789ab
    (seed 0), fedcba987654 (seeds 1, 2)` (a git sha shortened to 12 characters)."""
    metrics = folder.table("metrics.csv")
    columns = [c for c in CODE_COLUMNS if c in metrics.columns]
    if not len(metrics) or not columns or "experiment" not in metrics.columns:
        return []
    label = [c for c in ("method", "schedule", "target_sparsity") if c in metrics.columns]
    runs = metrics.drop_duplicates("run_id")
    notes = []
    for experiment, part in runs.groupby("experiment", sort=True):
        differing = []
        for column in columns:
            values = part[column].astype(str).str.strip()
            known = part[~values.isin(UNKNOWN_CODE)].assign(_code=values)
            if known["_code"].nunique() < 2:
                continue
            named = []  # (its lowest seed, "value (seeds ...)"): the versions in the order of their seeds
            for value, runs_of in known.groupby("_code", sort=True):
                seeds = sorted(runs_of["seed"].unique())
                shown = value[:12] if column == "git_sha" else value
                named.append((seeds[0], f"{shown} ({'seed' if len(seeds) == 1 else 'seeds'} {', '.join(str(s) for s in seeds)})"))
            differing.append(f"{column} " + ", ".join(text for _, text in sorted(named)))
        if differing:
            first = part.iloc[0]
            what = " ".join(f"{first[c]:g}" if isinstance(first[c], float) else str(first[c]) for c in label)
            notes.append(f"experiment {experiment}" + (f" ({what})" if what else "") + ": " + "; ".join(differing))
    return notes


NUMBER_COLUMNS = ("value", "dense_value")  # what every table with them holds as numbers (metrics.csv, runs.csv)
SHOWN = 10  # text values named per table; the rest are counted


def _without_text_values(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(`df` less the rows whose `value` or `dense_value` holds text that is not a number, a note per such
    row). prune-run writes numbers there (NaN as an empty cell), so only outside damage (a hand edit)
    puts text there; the whole column was then read as text and the report stopped with a TypeError
    part-way through writing its files. The rows are left out and named: `run (phase split metric:
    value 'abc')`."""
    bad = pd.Series(False, index=df.index)
    what = pd.Series("", index=df.index)
    for column in NUMBER_COLUMNS:
        if column not in df.columns or pd.api.types.is_numeric_dtype(df[column]):
            continue
        numbers = pd.to_numeric(df[column], errors="coerce")
        text = numbers.isna() & df[column].notna()
        what[text & ~bad] = [f"{column} {v!r}" for v in df.loc[text & ~bad, column]]
        bad |= text
        df = df.assign(**{column: numbers})
    if not bad.any():
        return df, []
    context = [c for c in ("phase", "split", "metric") if c in df.columns]
    rows = df[bad]
    notes = [f"{r.get('run_id', '?')} ({' '.join(str(r[c]) for c in context)}: {what[i]})" for i, r in rows.head(SHOWN).iterrows()]
    if len(rows) > SHOWN:
        notes.append(f"... ({len(rows)} rows in all)")
    return df[~bad.to_numpy()].reset_index(drop=True), notes


ROW_KEY = ("run_id", "phase", "split", "metric")  # one row of metrics.csv per key (prune_cli/run/recorder.py)


def _without_repeated_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(`df` less every row of a (run, split, metric) that holds two rows of one phase with different
    values, a note per such key). prune-run writes one row per ROW_KEY; two (a hand edit, or a folder
    written before a metric plugin was refused a built-in metric's name) were averaged by the tables and
    one of them picked at random by the verdicts, and the run's dense_value of that metric is suspect
    too, so the metric is left out of that run in every phase and named: `run (phase split metric:
    values 0.8, 0)`. Rows repeated verbatim (a run's rows copied into the shared CSVs twice) are
    kept once: whichever is read, the value is the same."""
    if not len(df) or not all(c in df.columns for c in ROW_KEY):
        return df, []
    valued = [c for c in ("value", "dense_value") if c in df.columns]
    distinct = df.drop_duplicates([*ROW_KEY, *valued])
    clash = distinct[distinct.duplicated(list(ROW_KEY), keep=False)]
    if not len(clash):
        return df, []
    notes = [
        f"{run} ({phase} {split} {metric}: values {', '.join(f'{v:g}' for v in rows['value'])})"
        for (run, phase, split, metric), rows in clash.groupby(list(ROW_KEY), sort=True)
    ]
    if len(notes) > SHOWN:
        notes = notes[:SHOWN] + [f"... ({len(notes)} in all)"]
    out = set(zip(clash["run_id"], clash["split"], clash["metric"]))
    left_out = pd.Series([k in out for k in zip(df["run_id"], df["split"], df["metric"])], index=df.index, dtype=bool)
    return df[~left_out.to_numpy()].reset_index(drop=True), notes


def _writes(config: dict, table: str) -> bool:
    """Whether a run of `config` writes `table` (per_class.csv: unless metrics.per_class is false)."""
    metrics = config.get("metrics")
    return table != "per_class.csv" or not isinstance(metrics, dict) or metrics.get("per_class", True) is not False


def load_results(root: Path) -> ResultsFolder:
    """The tables of every completed run with the experiment keys of `prune_cli.results.load`, the
    runs' configs, and the failed and unfinished run directories."""
    root = Path(root)
    folder = ResultsFolder(root)
    run_dirs = sorted(d for d in (root / "runs").glob("*") if d.is_dir() and not d.name.startswith("."))
    for d in run_dirs:
        if (d / "COMPLETE").exists():
            continue
        config = _config_of(d / "config.yaml")
        if (d / "failed.json").exists():
            folder.failed.append({"run": d.name, **_failure_record(d / "failed.json")})
            if config is not None:
                folder.failed_configs[d.name] = config
        else:
            folder.unfinished.append(d.name)
            if config is not None:
                folder.unfinished_configs[d.name] = config
        method = config.get("method") if config is not None else None
        if isinstance(method, dict) and method.get("name"):
            folder.incomplete_methods.add(str(method["name"]))
    results = load(root)
    folder.results, folder.runs, folder.varying, folder.key_source = results, results.runs, results.varying, results.key_source
    folder.configs, folder.without_config, folder.skipped = results.configs, results.without_config, results.skipped
    folder.bad_config = results.bad_config
    folder.run_dirs = results.run_dirs
    return folder


def _failure_record(path: Path) -> dict:
    """A failed run's failed.json, or a record saying it cannot be read. prune-run writes it atomically,
    so only outside damage (a hand edit, a truncated copy) makes it unreadable: the run is still a
    failed run to list, not a reason for the whole report to stop with a traceback."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return {"error_type": f"unreadable failed.json: {type(e).__name__}"}
    return record if isinstance(record, dict) else {"error_type": "unreadable failed.json: not a JSON object"}


def _config_of(config: Path) -> dict | None:
    """An incomplete run's config.yaml, or None where it has none or it cannot be read as a mapping (an
    incomplete run's config only names the methods that have no value yet and the seeds that failed)."""
    try:
        cfg = yaml.load(config.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if config.exists() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return cfg if isinstance(cfg, dict) else None


def present_columns(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k in df.columns]


def condition_keys(df: pd.DataFrame) -> list[str]:
    """The context columns of a condition, its experiment key and the config keys that vary between
    experiments (dotted names, e.g. model.widths, added by prune_cli.results.load): runs that differ
    only by seed share a condition, and two conditions never look identical in a table."""
    return present_columns(df, CONDITION + ["experiment"]) + [c for c in df.columns if "." in c]
