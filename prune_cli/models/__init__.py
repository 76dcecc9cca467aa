"""Model registry. Every model is a plugin module here (`@MODELS.register`, found by discovery,
prune_cli/core/plugins.py, imported when chosen) and declares its prunable layers in forward order
and its classifier."""

from __future__ import annotations

from omegaconf import DictConfig

from ..core.registry import Registry
from .base import PrunableNet

MODELS: Registry = Registry("model", "model.name")


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> PrunableNet:
    """Build `cfg.name` for inputs of `input_shape` (without the batch dimension)."""
    return MODELS.get(cfg.name)(cfg, tuple(input_shape), num_classes)


__all__ = ["MODELS", "PrunableNet", "build_model"]
