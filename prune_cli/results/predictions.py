"""Reading the per-example predictions a run saves (`predictions.npz` in its run directory, written
by prune_cli/run/recorder.py): the true class of every example of a split and, per recorded phase,
the predicted class. numpy only (no torch), for prune-report's pruning-identified exemplars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREDICTIONS_FILE = "predictions.npz"


def read_predictions(run_dir: str | Path) -> dict[str, dict]:
    """{split: {"label": array, "phases": {phase: array}}} of one run; {} when the run saved none
    (a run made before predictions were saved)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.exists():
        return {}
    out: dict[str, dict] = {}
    with np.load(path) as saved:
        for key in saved.files:
            if key.startswith("label_"):
                out.setdefault(key[len("label_") :], {"label": None, "phases": {}})["label"] = saved[key].astype(np.int64)
        for key in saved.files:
            if key.startswith("pred_"):
                phase, split = key[len("pred_") :].rsplit("_", 1)
                out.setdefault(split, {"label": None, "phases": {}})["phases"][phase] = saved[key].astype(np.int64)
    return out
