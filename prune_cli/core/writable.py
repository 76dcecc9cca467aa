"""Whether a directory can hold prune-cli's files: `results_dir`, `dense_cache.dir` and a dataset's folders (prune-run), `--out`
(prune-report). Standard library only: prune-report checks its --out before it imports pandas
(prune_cli/report/__init__.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def directory_problem(path: str, try_create: bool = False) -> str | None:
    """Why `path` cannot hold prune-cli's files, or None when it can: it exists as a writable
    directory, or it can be created (its nearest existing ancestor is a writable directory).
    `try_create`: also make and remove an empty directory there (`_can_create_in`); only where a
    command is about to write (or `prune-run --cfg job` checks a config as a run would), so that
    validating a config never touches the file system."""
    p = Path(path).expanduser()
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            return f"{path} exists and is not a directory" + (" (it is a file)" if p.is_file() else "")
        if not os.access(p, os.W_OK | os.X_OK) or (try_create and not _can_create_in(p)):
            return f"{path} is not writable"
        return None
    parent = p.absolute().parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is " + ("a file" if parent.is_file() else "not a directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (try_create and not _can_create_in(parent)):
        return f"{path} cannot be created: {parent} is not writable"
    return None


def _can_create_in(folder: Path) -> bool:
    """Whether a directory can be made in `folder`, tried (an empty directory, removed at once):
    `os.access` answers yes to root everywhere, also on /proc or a read-only mount."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prune-cli-probe-", dir=folder))
    except OSError:
        return False
    return True
