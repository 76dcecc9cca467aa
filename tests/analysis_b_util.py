"""In-process config composition for validation tests (no subprocess start-up per bad value)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from conftest import REPO
from prune_cli.run.prevalidate import register_schemas, validate

_registered = False


def composed(overrides: list[str]) -> DictConfig:
    """The config prune-run would compose for these overrides."""
    global _registered
    if not _registered:
        register_schemas()
        _registered = True
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def validated(overrides: list[str]) -> DictConfig:
    cfg = composed(overrides)
    validate(cfg)
    return cfg
