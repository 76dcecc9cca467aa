"""Atomic file writes, durable at the commit points: a temporary file beside the target, renamed into
place, so a kill at any instant leaves either the old file or the new one, never half of one.

A rename alone does not survive a lost node: ext4, XFS and network file systems may put the rename on
disk before the data it names, so after a power loss `COMPLETE` could stand beside an empty
`metrics.csv`. fsyncing every write cost a fast run about a quarter of its time (two fsyncs per file,
and the per-run tables are rewritten at every recorded phase), so only the commit points are durable
(`durable=True`: the data fsynced before the rename, the folder after it), each after the files it
commits were synced (`sync_files`): a run's `COMPLETE`, a dense-cache entry's `COMPLETE`, the shared
tables' journal and marker. A checkpoint needs none: an unreadable `state.pt` is set aside and the run
starts over (docs/robustness.md, "Durability")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_leftovers(folder: Path, dead_only: bool = False, names=None) -> list[Path]:
    """The temporary files (`.<name>.<pid>.tmp`) of atomic writes whose process was killed between the
    write and the rename: each a full copy (of a checkpoint, say), left for good. Without `dead_only`, only
    for a folder whose one writer is the caller (a run directory under its run lock), so no live write loses
    its file. `dead_only`: only a file whose pid names no running process on this machine, for a folder
    other processes may write in outside the caller's lock (a dense-cache entry, results_dir): a live
    writer's file is never removed (a pid reused since leaves its file for a later call). `names(name)`:
    which target names (`<name>`) are the caller's to remove (results_dir also holds the user's files)."""
    removed = []
    for tmp in Path(folder).glob(".*.*.tmp"):
        target, pid, _ = ([""] * 3 + tmp.name[1:].rsplit(".", 2))[-3:]
        if not (tmp.is_file() and pid.isdigit()) or (names is not None and not names(target)):
            continue
        if dead_only and _running(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    """Whether `pid` names a running process here (this one included): one that exists but is another
    user's (EPERM) counts as running."""
    if pid <= 0:
        return True  # not a pid a write of ours names: never taken for dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path. Some platforms and file systems cannot open or fsync a
    directory (EINVAL, EACCES, Windows), and a file may vanish or be unreadable meanwhile: what could be
    synced was, so the write stands."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """fsync a directory so the renames and the files created in it are on disk."""
    _fsync_path(folder)


def sync_files(folder: Path) -> None:
    """fsync every regular file directly in `folder`, then the folder itself: before a commit point
    names them complete (a run directory's files before its `COMPLETE`)."""
    folder = Path(folder)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.is_symlink():
            _fsync_path(path)
    sync_folder(folder)


def _write(path: Path, write, durable: bool) -> None:
    """`write(file)` into the temporary file and rename it over `path`; `durable`: fsync the data
    before the rename and the folder after it. A write that fails (a full disk) removes its temporary
    file and leaves `path` as it was: a half-written copy of a checkpoint would otherwise stay until the
    run's next attempt (`remove_leftovers`)."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        lost = _unnamed_os_error(err) if isinstance(err, Exception) else None  # not a signal's stop
        if lost is not None:
            raise OSError(lost.errno, lost.strerror or str(lost), str(path)) from err
        raise
    if durable:
        sync_folder(path.parent)


def _unnamed_os_error(err: BaseException) -> Optional[OSError]:
    """The OSError behind a failed write that names no file, if any: on a full disk torch.save raises its
    own RuntimeError ("unexpected pos") while handling its write's OSError(28), and closing the file
    raises OSError(28) again, none naming a file, so the run took the environment's refusal for a bug
    (docs/robustness.md, "a full disk"). An error that names its file is left as it is."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError):
            return None if seen.filename else seen
        seen = seen.__cause__ or seen.__context__
    return None


def atomic_write_texts(files: dict, durable: bool = False) -> None:
    """Write several files (path -> text) as nearly at once as renames allow: every file is written to its
    temporary file first, and only when all were written are they renamed into place, one after another. A
    write that fails (a full disk, a Ctrl-C) removes every temporary file and leaves every target as it was
    (the error names the file being written); only a kill between two renames (microseconds) leaves some
    renamed and some not. For a rebuild of the shared tables, which one table at a time left them from two
    different rebuilds when stopped partway (docs/robustness.md)."""
    staged: list[Path] = []
    current = None
    try:
        for path, text in files.items():
            current = Path(path)
            staged.append(_tmp(current))
            with open(staged[-1], "wb") as f:
                f.write(text.encode())
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
    except BaseException as err:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        lost = _unnamed_os_error(err) if isinstance(err, Exception) else None
        if lost is not None:
            raise OSError(lost.errno, lost.strerror or str(lost), str(current)) from err
        raise
    for path, tmp in zip(files, staged):
        os.replace(tmp, path)
    if durable:
        for folder in sorted({Path(path).parent for path in files}):
            sync_folder(folder)


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    atomic_write_bytes(path, text.encode(), durable)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    _write(path, lambda f: f.write(data), durable)


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

    _write(path, write, durable=False)
