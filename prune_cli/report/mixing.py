"""Runs that a report's key cannot tell apart: one rule for every table that averages a seed's runs.

Within one results folder the same config gives the same run id, so two runs of one seed under one
key (a comparison key and variant, a condition, an expected point) are runs of different
configurations that the key does not record: with only the shared CSVs the keys come from the rows'
context columns (prune_cli/results), which hold no train.epochs, widths or data size. Averaging them
as a "repeated run" gives a number of no experiment (and, in a comparison, a dense model of none).
Such a key gets no statistic: the tables leave its numbers empty and say why, naming how many
configurations and runs it mixes. Decision: runs with the same configuration (the same rows copied
into the shared CSVs twice, or with run directories two runs whose configs differ only in the run
`name`) are one configuration, and averaging them is harmless.

A run's configuration is its `configuration` column where the report set it (load.ResultsFolder:
the experiment key with run directories, whose config.yaml holds every option; `config_hash`
without them), else its `config_hash`, else its run id.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

CONFIGURATION = "configuration"


def configuration_ids(df: pd.DataFrame, key_source: str = "columns") -> pd.Series:
    """Per row, the identity of its run's configuration: with run directories (`key_source`
    "config") the experiment key, which covers every result-relevant config value; without them the
    `config_hash` column (its run id where it has none), the only record of the options the
    context columns do not show."""
    if CONFIGURATION in df.columns:
        return df[CONFIGURATION].astype(str)
    if key_source == "config" and "experiment" in df.columns:
        return df["experiment"].astype(str)
    run = df["run_id"].astype(str)
    if "config_hash" in df.columns:
        return df["config_hash"].astype(str).where(df["config_hash"].notna(), run)
    return run


def mixed_keys(df: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, dict]:
    """{key values (a tuple): {n_configurations, n_runs, seeds}} for each group of `keys` in which one
    seed has runs of more than one configuration (`n_configurations`: the most of one seed; `seeds`:
    the seeds with several, sorted)."""
    keys = list(keys)
    if not len(df) or "run_id" not in df.columns:
        return {}
    runs = df.assign(_conf=configuration_ids(df).to_numpy()).drop_duplicates(keys + ["run_id"])
    per_seed = runs.groupby(keys + ["seed"], dropna=False, sort=True)["_conf"].nunique()
    bad = per_seed[per_seed > 1]
    if not len(bad):
        return {}
    out = {}
    bad_frame = bad.reset_index()
    for key, seeds in bad_frame.groupby(keys, dropna=False, sort=True)["seed"]:
        key = key if isinstance(key, tuple) else (key,)
        part = runs[rows_of(runs, keys, key)]
        out[key] = {  # a config_hash includes the seed: configurations are counted within one seed
            "n_configurations": int(part.groupby("seed")["_conf"].nunique().max()),
            "n_runs": int(part["run_id"].nunique()),
            "seeds": sorted(seeds.tolist()),
        }
    return out


def rows_of(frame: pd.DataFrame, keys: Sequence[str], key: tuple) -> pd.Series:
    """The rows of `frame` whose `keys` columns hold `key` (NaN matching NaN, as groupby(dropna=False))."""
    mask = pd.Series(True, index=frame.index)
    for k, v in zip(keys, key):
        mask &= frame[k].isna() if pd.isna(v) else frame[k] == v
    return mask


def without_mixed(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[pd.DataFrame, dict[tuple, dict]]:
    """(`frame` less the rows of its mixed keys, those keys as `mixed_keys` gives them)."""
    mixed = mixed_keys(frame, keys)
    if not mixed:
        return frame, mixed
    drop = pd.Series(False, index=frame.index)
    for key in mixed:
        drop |= rows_of(frame, keys, key)
    return frame[~drop.to_numpy()], mixed


def describe(info: dict) -> str:
    """The parenthesis of a note: 'distinct config_hash; seeds 0, 1, 2 each have runs of several'."""
    seeds = info["seeds"]
    which = f"seed {seeds[0]} has" if len(seeds) == 1 else f"seeds {', '.join(str(s) for s in seeds)} each have"
    return f"distinct config_hash; {which} runs of several"


def runs_of(info: dict) -> str:
    """'6 runs of 2 configurations (distinct config_hash; ...)'."""
    return f"{info['n_runs']} runs of {info['n_configurations']} configurations ({describe(info)})"


# How to tell the configurations apart, per table: the summary's conditions and --expect also
# separate runs by their `name`; the comparison key does not (the name is not a result).
SEPARATE = "keep the run directories (each run's config.yaml tells the configurations apart)"
SEPARATE_BY_NAME = SEPARATE + " or give the variants different `name`s"

PER_CLASS_TABLES = "intensification.csv, per_class_summary.csv and worst_class.csv"


def left_out_notes(mixed: dict[tuple, dict], keys: Sequence[str], rows: pd.DataFrame) -> list[str]:
    """One line per condition of the per-class tables (`mixed`: mixed_keys of `rows` over the condition
    `keys`) left out of them: 'toy/mlp random at sparsity 0.5: left out of ..., its 6 runs of 2
    configurations (...) that the condition does not tell apart are not averaged as repeated runs; keep
    ...'. The other context keys (name, schedule, ...) are named where they vary within one method of `rows`."""
    named = ("dataset", "model", "method", "target_sparsity")
    method = [k for k in named[:3] if k in rows.columns]
    others = [k for k in keys if k not in named and "." not in k and k != "experiment"]
    varying = [k for k in others if (rows.groupby(method, dropna=False)[k].nunique(dropna=False) > 1).any()] if method else others
    notes = []
    for key, info in mixed.items():
        c = dict(zip(keys, key))
        extra = "".join(f", {k} {c[k]}" for k in varying)
        sparsity = c.get("target_sparsity")
        where = f" at sparsity {float(sparsity):g}" if sparsity is not None and pd.notna(sparsity) else ""
        notes.append(
            f"{c.get('dataset')}/{c.get('model')} {c.get('method')}{extra}{where}: left out of {PER_CLASS_TABLES}, its "
            f"{runs_of(info)} that the condition does not tell apart are not averaged as repeated runs; {SEPARATE_BY_NAME}"
        )
    return notes
