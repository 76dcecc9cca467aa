"""Small value checks shared by every schema's `check`: each raises ConfigError naming the key, the bad
value and what is allowed."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError


def check(ok: bool, key: str, value, allowed: str, hint: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, allowed, hint)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def choice(cfg: DictConfig, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    check(value in choices, key, value, "one of " + ", ".join(sorted(choices)))


def positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    check(isinstance(value, int) and value >= minimum, key, value, f"an integer >= {minimum}")


def check_widths(cfg: DictConfig, key: str) -> None:
    """Hidden widths of a fully connected model (mlp, ntk_mlp): a non-empty list of positive integers."""
    value = list(OmegaConf.select(cfg, key))
    check(len(value) >= 1 and all(w >= 1 for w in value), key, value, "a non-empty list of positive integers")


def fraction(cfg: DictConfig, key: str, lo: float, hi: float, hi_open: bool = True) -> None:
    value = OmegaConf.select(cfg, key)
    ok = finite(value) and lo <= value and (value < hi if hi_open else value <= hi)
    check(ok, key, value, f"a number in [{lo}, {hi}{')' if hi_open else ']'}")


def directory_problem(path: str, try_create: bool = False) -> str | None:
    """Why `path` cannot hold prune-cli's files, or None when it can: it exists as a writable
    directory, or it can be created (its nearest existing ancestor is a writable directory).
    `try_create`: also make and remove an empty directory there (`_can_create_in`); only where a
    run is about to start, so that validating a config never touches the file system."""
    p = Path(path).expanduser()
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            return f"{path} exists and is not a directory"
        if not os.access(p, os.W_OK | os.X_OK) or (try_create and not _can_create_in(p)):
            return f"{path} is not writable"
        return None
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
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


def usable_directory(cfg: DictConfig, key: str, try_create: bool = False) -> None:
    """A directory option (`results_dir`, `dense_cache.dir`): a non-empty path prune-cli can write or
    create (`directory_problem`)."""
    value = OmegaConf.select(cfg, key)
    problem = directory_problem(str(value), try_create) if isinstance(value, str) and value.strip() else "it is empty"
    check(problem is None, key, value, "a directory prune-run can write or create", f"Here {problem}." if problem else "")
