"""Tables of the evidence scripts that never pool runs of different settings as if they were more seeds.

A script that groups its rows by method and sparsity alone treats the runs of one method at
train.epochs 20 and at 40 in one results folder as six seeds of one setting (`40.00 ± 10.95 (n=6)`).
`apart` adds to the rows a column per config key that differs between runs the script would put in
one group, read as prune_cli.results reads them (every config value of each run's saved config.yaml
but the seed, the run name and what cannot change results: README "Reading results"), so that the
script groups by them too and the table shows what differs: the settings are kept apart, not
refused. In a folder of one setting it adds nothing and the tables are as they were.

`settings`, `exactly`, `compatible`, `merged` and `label` serve comparisons between methods (a method against its baseline at the
same setting): a run whose config has no such key (`NONE`, e.g. an option of another schedule)
matches every value of it.

A script run as `python scripts/NAME.py` imports this module from its own folder (as script_args).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from prune_cli.results import Results

NONE = "-"  # the value shown where a run's config has no such key (or the run has no config.yaml)


def apart(
    results: Path | Results, rows: pd.DataFrame, by: Sequence[str], under: Iterable[str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """`rows` (a table with `run_id`, e.g. the runs.csv of the folder `results`, or its
    prune_cli.results.load when the script has it already) with a column per config key that
    varies between the folder's runs (values as text, NONE where a run has no such key), and the keys
    whose values differ between rows that grouping by `by` puts together: the columns a table grouped
    by `by` must group by as well. `under`: only keys under these top-level names (what a dense model
    depends on, say). The keys come from prune_cli.results.load (completed runs with a config.yaml);
    a folder of shared CSVs only has none, and nothing is added."""
    from prune_cli.results import Results, load

    loaded = results if isinstance(results, Results) else load(results)
    allowed = None if under is None else set(under)
    keys = [k for k in loaded.varying if k not in rows.columns and (allowed is None or k.split(".", 1)[0] in allowed)]
    if not keys or rows.empty:
        return rows, []
    values = loaded.runs.set_index("run_id")[keys]
    rows = rows.merge(values, left_on="run_id", right_index=True, how="left")
    rows[keys] = rows[keys].astype(object).where(rows[keys].notna(), NONE).astype(str)
    if by:
        counts = rows.groupby(list(by), dropna=False)[keys].nunique()
        differing = [k for k in keys if (counts[k] > 1).any()]
    else:
        differing = [k for k in keys if rows[k].nunique() > 1]
    return rows, differing


def settings(rows: pd.DataFrame, keys: Sequence[str]) -> list[dict[str, str]]:
    """The distinct combinations of values of `keys` among `rows`, numbers in order ([{}] without keys)."""
    if not keys:
        return [{}]
    found = set(rows[list(keys)].itertuples(index=False, name=None))
    return [dict(zip(keys, values)) for values in sorted(found, key=lambda values: [_order(v) for v in values])]


def _order(value: str) -> tuple:
    """Numbers by value (20 before 100), then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def exactly(rows: pd.DataFrame, setting: Mapping[str, str]) -> pd.Series:
    """Which rows have `setting`'s values (NONE only where it has NONE)."""
    mask = pd.Series(True, index=rows.index)
    for key, value in setting.items():
        mask &= rows[key] == value
    return mask


def compatible(rows: pd.DataFrame, setting: Mapping[str, str]) -> pd.Series:
    """Which rows agree with `setting`: each key equal, or NONE on either side."""
    mask = pd.Series(True, index=rows.index)
    for key, value in setting.items():
        if value != NONE:
            mask &= (rows[key] == value) | (rows[key] == NONE)
    return mask


def merged(*setting: Mapping[str, str]) -> dict[str, str]:
    """The settings of compatible rows together: each key's value other than NONE."""
    out: dict[str, str] = {}
    for one in setting:
        for key, value in one.items():
            if out.get(key, NONE) == NONE:
                out[key] = value
    return out


def label(setting: Mapping[str, str]) -> str:
    """` (k=v, ...)` naming a setting's values other than NONE; '' for none."""
    shown = [f"{k}={v}" for k, v in setting.items() if v != NONE]
    return f" ({', '.join(shown)})" if shown else ""


SETUP_KEYS = ("dataset.name", "model.name", "model.widths")


def setup(results: Path | Results, keys: Sequence[str] = SETUP_KEYS, name: str | None = None) -> str:
    """The data and model of the runs in the folder `results`, read from their saved configs, for a
    table's heading: `dataset.name=mnist1d, model.name=mlp, model.widths=[256, 256]`, each key's values
    joined by ` / ` where the runs differ. A heading written into the script named MNIST-1D and MLP
    [256, 256] whatever dataset or model.widths the runs were given. A folder of shared CSVs only
    (no config.yaml) says so. `name`: only the runs of that run name (the script's own, in a shared folder)."""
    from prune_cli.results import Results, load

    loaded = results if isinstance(results, Results) else load(results)
    runs = [items for run, items in loaded.items.items() if name is None or loaded.configs.get(run, {}).get("name") == name]
    parts = []
    for key in keys:
        values = sorted({items[key] for items in runs if key in items}, key=_order)
        if values:
            parts.append(f"{key}={' / '.join(values)}")
    return ", ".join(parts) or "data and model unknown (no run with a config.yaml)"
