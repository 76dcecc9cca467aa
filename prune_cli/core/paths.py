"""Where the YAML configs are: the top-level configs/ of a source checkout, else the copy shipped
inside the wheel as the package `prune_cli.configs` (pyproject.toml)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional


def user_path(value) -> Path:
    """A directory option as a path (`results_dir`, `dense_cache.dir`): a leading `~` is the home folder,
    as the validation that tried it (prune_cli/core/writable.py) and a shell read it. Hydra keeps a
    quoted `results_dir='~/x'` as typed; used unexpanded it was ./~/x."""
    return Path(os.path.expanduser(str(value)))


def checkout_configs() -> Optional[Path]:
    """configs/ next to the package in a source checkout, or None in an installed wheel."""
    checkout = Path(__file__).resolve().parents[2] / "configs"
    return checkout if (checkout / "config.yaml").exists() else None


def configs_dir() -> Path:
    """The configs directory as a path (checkout first, else the installed package data)."""
    return checkout_configs() or Path(str(resources.files("prune_cli.configs")))


def hydra_config_path() -> str:
    """The config path for `hydra.main`: the checkout's directory, else `pkg://prune_cli.configs`."""
    checkout = checkout_configs()
    return str(checkout) if checkout is not None else "pkg://prune_cli.configs"
