"""Atomic, durable file writes: write a temporary file beside the target, fsync it, rename it into
place and fsync the folder, so a kill at any instant leaves either the old file or the new one, never
half of one, and a node that loses power after the rename finds the new bytes, not an empty file under
the new name (ext4, XFS and network file systems may persist a rename before the data it names;
docs/robustness.md, "Durability")."""

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


def _sync_folder(folder: Path) -> None:
    """fsync a directory so the rename in it is on disk. Some platforms and file systems cannot open
    or fsync a directory (EINVAL, EACCES, Windows): the data was already synced, so the write stands."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_durably(path: Path, write) -> None:
    """`write(file)` into the temporary file, fsync it, rename it over `path`, fsync the folder."""
    path = Path(path)
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _write_durably(path, lambda f: f.write(data))


def atomic_write_csv(df, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def atomic_torch_save(obj, path: Path, crash_point: Optional[str] = None) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    import torch

    from . import crashpoints

    def write(f):
        torch.save(obj, f)
        if crash_point:
            crashpoints.reached(crash_point)

    _write_durably(path, write)
