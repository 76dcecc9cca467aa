"""Reading the per-example predictions a run saves (`predictions.npz` in its run directory; the
format and the writing are in prune_cli/core/predictions.py, next to the writer the metrics share).
numpy only (no torch), for prune-report's pruning-identified exemplars."""

from __future__ import annotations

from ..core.predictions import PREDICTIONS_FILE, UnreadablePredictions, read_predictions

__all__ = ["PREDICTIONS_FILE", "UnreadablePredictions", "read_predictions"]
