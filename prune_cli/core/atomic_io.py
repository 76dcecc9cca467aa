"""Atomic file writes: write a temporary file beside the target, then rename it into place, so a
kill at any instant leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_leftovers(folder: Path) -> list[Path]:
    """The temporary files (`.<name>.<pid>.tmp`) of atomic writes whose process was killed between the
    write and the rename: each a full copy (of a checkpoint, say), left for good. Only for a folder
    whose one writer is the caller (a run directory under its run lock), so no live write loses its file."""
    removed = []
    for tmp in Path(folder).glob(".*.*.tmp"):
        if tmp.is_file() and tmp.name.rsplit(".", 2)[-2].isdigit():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_csv(df, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def atomic_torch_save(obj, path: Path, crash_point: Optional[str] = None) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    import torch

    from . import crashpoints

    path = Path(path)
    tmp = _tmp(path)
    torch.save(obj, tmp)
    if crash_point:
        crashpoints.reached(crash_point)
    os.replace(tmp, path)
