"""Helpers the training-time methods of this package share (docs/training_time.md)."""

from __future__ import annotations

from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from ...core.errors import ConfigError


def meta_model(cfg: DictConfig):
    """The run's model on the meta device for the dataset's declared input (no weights, no memory),
    or None when the dataset declares no input shape (then the hook checks at its start)."""
    declared = OmegaConf.get_type(cfg.dataset)
    spec = declared.declared_input(cfg.dataset) if hasattr(declared, "declared_input") else None
    if spec is None:
        return None
    from ...models import build_model

    shape, classes = spec
    with torch.device("meta"):
        try:
            return build_model(cfg.model, shape, classes)
        except (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError):
            return None  # the pre-run pass reports a model that does not fit the data


def require_residual_sections(model, cfg: DictConfig, key: str) -> None:
    """Layer pruning needs a model that declares residual sections (`residual_sections()`, e.g. res_mlp)."""
    if model is not None and not hasattr(model, "residual_sections"):
        raise ConfigError(
            "model",
            cfg.model.name,
            "a model with residual sections, e.g. model=res_mlp",
            f"{key}={cfg.schedule.name} removes whole residual sections.",
        )


def generator_state(gen: torch.Generator) -> torch.Tensor:
    return gen.get_state().clone()


def restore_generator(state: Optional[torch.Tensor], seed: int) -> torch.Generator:
    gen = torch.Generator().manual_seed(seed)
    if state is not None:
        gen.set_state(state)
    return gen
