"""The per-example predictions of a run: `predictions.npz` in its run directory, holding
`label_<split>` (the true classes) and `pred_<phase>_<split>` (the predicted class of every example
of the split at that phase), in the smallest unsigned integer type that holds the classes (10,000
CIFAR test images: about 5 KB per phase). prune-report's pruning-identified exemplars (Hooker et
al. 2019) and the recall-distortion randomisation null (Good et al., NeurIPS 2022) read them.

While a run is going, each recorded (phase, split) is written once, atomically, into its own small
file under `predictions.parts/`; when the run completes, `merge_parts` writes `predictions.npz`
once from them and removes the folder. Rewriting one growing file at every phase (as before) cost
time quadratic in the number of recorded phases (gradual pruning records one per pruning event).
A run killed between phases keeps the parts it wrote, so a resumed run loses nothing.

`read_predictions` reads `predictions.npz` and any parts, so it also reads the runs of older
versions (one predictions.npz rewritten per phase) and unfinished runs. numpy only (no torch):
the report and the analysis read it too."""

from __future__ import annotations

import io
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np

from .atomic_io import atomic_write_bytes
from .errors import PruneCliError

PREDICTIONS_FILE = "predictions.npz"
PARTS_DIR = "predictions.parts"


def class_dtype(num_classes: int) -> type:
    """The smallest unsigned integer type that holds every class index."""
    return np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int64


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def part_path(run_dir: str | Path, phase: str, split: str) -> Path:
    return Path(run_dir) / PARTS_DIR / f"{phase}_{split}.npz"


def has_phase(run_dir: str | Path, phase: str, split: str) -> bool:
    """Whether the predictions of (phase, split) are saved already (a part, or the merged file)."""
    if part_path(run_dir, phase, split).exists():
        return True
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.exists():
        return False
    with np.load(path) as saved:
        return f"pred_{phase}_{split}" in saved.files


def save_phase(run_dir: str | Path, phase: str, predictions: Mapping[str, tuple], num_classes: int) -> list[Path]:
    """Save one phase's predictions, {split: (true classes, predicted classes)} (numpy arrays or
    CPU tensors), one atomic file per split; returns the files written."""
    dtype = class_dtype(num_classes)
    written = []
    for split, (labels, preds) in predictions.items():
        path = part_path(run_dir, phase, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, _npz_bytes({"label": np.asarray(labels).astype(dtype), "pred": np.asarray(preds).astype(dtype)}))
        written.append(path)
    return written


def _parts(run_dir: Path) -> list[tuple[str, str, Path]]:
    """(phase, split, path) of every part, in name order; the split is the last `_` field (phase
    names such as step_12 or round_1 hold underscores, splits do not)."""
    folder = run_dir / PARTS_DIR
    if not folder.is_dir():
        return []
    return [(*p.stem.rsplit("_", 1), p) for p in sorted(folder.glob("*.npz"))]


class UnreadablePredictions(PruneCliError):
    """A run's predictions.npz (or one of its parts) cannot be read: empty, cut short, not an npz archive
    of arrays. `path` and `reason` (one line) say which file and why."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


# What numpy raises for a file that is not a whole npz archive of arrays: empty (EOFError), cut short or
# damaged (BadZipFile, zlib.error, a CRC error), a pickle or a text file (ValueError), an array missing (KeyError).
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _unreadable_reason(path: Path, err: Exception) -> str:
    if path.is_file() and path.stat().st_size == 0:
        return "it is empty (0 bytes)"
    if "pickled" in str(err):  # numpy's refusal goes on to tell how to load it unsafely: never advice for this file
        return "it is not an npz archive of arrays (numpy read it as a pickle)"
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"it cannot be read as an npz archive ({type(err).__name__}{': ' + first if first else ''})"


def _load(path: Path, keys=None) -> dict[str, np.ndarray]:
    """The arrays of one npz file (those `keys` keeps, a predicate on the name), read whole; a file that
    cannot be read is an UnreadablePredictions naming it and why."""
    try:
        with np.load(path) as saved:
            return {k: saved[k] for k in saved.files if keys is None or keys(k)}
    except _UNREADABLE as err:
        raise UnreadablePredictions(path, _unreadable_reason(path, err)) from None


def _arrays(run_dir: Path, split: str | None = None) -> dict[str, np.ndarray]:
    """The file format's arrays (label_<split>, pred_<phase>_<split>) of predictions.npz and the parts
    (parts win); only those of `split` when given (each array of the file is decompressed on access).
    A file that cannot be read raises UnreadablePredictions."""
    arrays: dict[str, np.ndarray] = {}
    path = run_dir / PREDICTIONS_FILE
    if path.exists():
        arrays = _load(path, None if split is None else lambda k: k.endswith(f"_{split}"))
    for phase, part_split, part in _parts(run_dir):
        if split is not None and part_split != split:
            continue
        saved = _load(part)
        if "label" not in saved or "pred" not in saved:
            raise UnreadablePredictions(part, "it lacks the label or pred array (not a part prune-run writes)")
        arrays[f"label_{part_split}"] = saved["label"]
        arrays[f"pred_{phase}_{part_split}"] = saved["pred"]
    return arrays


def merge_parts(run_dir: str | Path) -> Path | None:
    """Write predictions.npz once from the parts (and its earlier content, when a resumed run wrote
    it already), then remove the parts; None when the run saved no predictions."""
    run_dir = Path(run_dir)
    path = run_dir / PREDICTIONS_FILE
    if not _parts(run_dir):
        return path if path.exists() else None
    atomic_write_bytes(path, _npz_bytes(_arrays(run_dir)))
    shutil.rmtree(run_dir / PARTS_DIR)
    return path


def read_predictions(run_dir: str | Path, split: str | None = None) -> dict[str, dict]:
    """{split: {"label": array, "phases": {phase: array}}} of one run (int64), of every split or of
    `split` only; {} when the run saved none (a run made before predictions were saved).
    UnreadablePredictions when its predictions.npz (or a part) cannot be read."""
    out: dict[str, dict] = {}
    arrays = _arrays(Path(run_dir), split)
    for key, value in arrays.items():
        if key.startswith("label_"):
            out.setdefault(key[len("label_") :], {"label": None, "phases": {}})["label"] = value.astype(np.int64)
    for key, value in arrays.items():
        if key.startswith("pred_"):
            phase, split = key[len("pred_") :].rsplit("_", 1)
            out.setdefault(split, {"label": None, "phases": {}})["phases"][phase] = value.astype(np.int64)
    return out
