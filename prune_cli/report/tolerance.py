"""Each run's sparsity tolerance, as prune-run held it to its target: read from the run's config by
load.py (so this module imports nothing of the report's: load.py must not import achieved.py, which
reads load's and compare's tables) and used by achieved.py (docs/report.md "Achieved against target
sparsity")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# The default method.sparsity_tolerance (prune_cli/core/config_base.py): a run further from its target
# than a pruner would have accepted did not prune to it.
TOLERANCE = 0.005
# The column of metrics.csv's table (load.py) and of summary.csv holding each run's (each condition's)
# tolerance: absent with only the shared CSVs, where no config says it (TOLERANCE then).
TOLERANCE_COLUMN = "sparsity_tolerance"
# Schedules whose runs prune-run never holds to method.sparsity_tolerance (their `unused` options name
# it, or the whole `method`): autoprune's gates keep exactly the target's top k or decide the sparsity
# themselves, layer_pruning removes whole sections. A raised tolerance in their configs says nothing
# about the sparsity they reach, so they are held to TOLERANCE.
UNTOLERATED_SCHEDULES = ("autoprune", "layer_pruning")


def config_tolerance(config: dict) -> float:
    """The sparsity tolerance prune-run accepted a run of `config` (its saved config.yaml) with: its
    method.sparsity_tolerance, TOLERANCE where the config lacks it (or it is not a number >= 0) or its
    schedule is one of UNTOLERATED_SCHEDULES."""
    schedule = config.get("schedule") if isinstance(config, dict) else None
    if isinstance(schedule, dict) and schedule.get("name") in UNTOLERATED_SCHEDULES:
        return TOLERANCE
    method = config.get("method") if isinstance(config, dict) else None
    value = method.get("sparsity_tolerance") if isinstance(method, dict) else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return TOLERANCE
    return value if math.isfinite(value) and value >= 0 else TOLERANCE


def run_tolerances(run_ids: pd.Series, configs: dict[str, dict]) -> np.ndarray:
    """Per row, `config_tolerance` of its run's config (NaN for a run without one)."""
    known = {run: config_tolerance(cfg) for run, cfg in configs.items()}
    return run_ids.map(known).to_numpy(float)


def tolerance_of(df: pd.DataFrame) -> np.ndarray:
    """Per row, its TOLERANCE_COLUMN (TOLERANCE where absent or NaN)."""
    if TOLERANCE_COLUMN not in df.columns:
        return np.full(len(df), TOLERANCE)
    values = pd.to_numeric(df[TOLERANCE_COLUMN], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(values), values, TOLERANCE)
