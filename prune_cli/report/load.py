"""Loading a results folder for prune-report: the per-run tables of every completed run (or the
shared CSVs when there are no run directories), the runs' configs, and the columns that define a
condition (runs that differ only by seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
from omegaconf import OmegaConf

from ..core.tables import TABLES, shared_name

# One condition = one point of a figure; the runs inside it differ only by seed.
CONDITION = ["name", "dataset", "model", "method", "score", "allocation", "structure", "schedule", "target_sparsity"]


@dataclass
class ResultsFolder:
    """The tables of a results folder, concatenated over completed runs, plus run bookkeeping."""

    root: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    configs: dict[str, dict] = field(default_factory=dict)  # run_id -> resolved config
    failed: list[dict] = field(default_factory=list)  # failed.json records of runs without COMPLETE
    unfinished: list[str] = field(default_factory=list)  # run dirs with neither COMPLETE nor failed.json

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())


def load_results(root: Path) -> ResultsFolder:
    root = Path(root)
    folder = ResultsFolder(root)
    run_dirs = sorted(d for d in (root / "runs").glob("*") if d.is_dir() and not d.name.startswith("."))
    complete = [d for d in run_dirs if (d / "COMPLETE").exists()]
    for d in run_dirs:
        if d in complete:
            continue
        if (d / "failed.json").exists():
            folder.failed.append({"run": d.name, **json.loads((d / "failed.json").read_text())})
        else:
            folder.unfinished.append(d.name)
    if complete:
        names = sorted({f.name for d in complete for f in d.glob("*.csv") if f.name != "history.csv"})
        for name in names:
            parts = [pd.read_csv(d / name) for d in complete if (d / name).exists() and (d / name).stat().st_size]
            if parts:
                folder.tables[name] = pd.concat(parts, ignore_index=True)
        for d in complete:
            if (d / "config.yaml").exists():
                folder.configs[d.name] = OmegaConf.to_container(OmegaConf.load(d / "config.yaml"))
        varying = varying_config_keys(folder.configs)
        if len(varying.columns):
            for name, df in folder.tables.items():
                if "run_id" in df.columns:
                    folder.tables[name] = df.merge(varying, left_on="run_id", right_index=True, how="left")
    else:  # only the shared CSVs are there (e.g. copied from a cluster without the run folders)
        for run_table in set(TABLES) | {p.name for p in root.glob("*.csv")}:
            path = root / shared_name(run_table)
            if path.exists() and path.stat().st_size:
                folder.tables[run_table] = pd.read_csv(path)
    return folder


# Config keys that never define a condition: the seed, where results go, and keys the context columns carry.
NOT_CONDITION_KEYS = (
    "seed",
    "sparsity",
    "name",
    "device",
    "results_dir",
    "shared_results",
    "fail_fast",
    "dense_cache.",
    "hydra.",
    "dataset.name",
    "model.name",
    "method.name",
    "method.score",
    "method.allocation",
    "method.structure",
    "schedule.name",
)


def _flatten(node, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: str(node)}


def varying_config_keys(configs: dict[str, dict]) -> pd.DataFrame:
    """Per run (index run_id), the resolved config keys whose values differ between runs (as text),
    e.g. model.widths in a width sweep; keys in NOT_CONDITION_KEYS are left out."""
    if len(configs) < 2:
        return pd.DataFrame(index=pd.Index(list(configs), name="run_id"))
    flat = pd.DataFrame.from_dict({run: _flatten(cfg) for run, cfg in configs.items()}, orient="index")
    keep = [
        c
        for c in flat.columns
        if not any(c == k or (k.endswith(".") and c.startswith(k)) for k in NOT_CONDITION_KEYS)
        and flat[c].astype(str).nunique(dropna=False) > 1
    ]
    return flat[keep].astype(str).rename_axis("run_id")


def present_columns(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k in df.columns]


def condition_keys(df: pd.DataFrame) -> list[str]:
    """The context columns of a condition plus the config keys that vary between runs (dotted names,
    e.g. model.widths, added by load_results): runs that differ only by seed share a condition."""
    return present_columns(df, CONDITION) + [c for c in df.columns if "." in c]
