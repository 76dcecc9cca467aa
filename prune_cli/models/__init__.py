"""Model registry. Every model declares its prunable layers in forward order and its classifier."""

from __future__ import annotations

from omegaconf import DictConfig

from ..core.registry import Registry
from .base import PrunableNet

MODELS: Registry = Registry("model", "model.name")

from . import cnn, mlp, ntk_mlp, resnet, vgg  # noqa: E402,F401  (register the families)


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> PrunableNet:
    """Build `cfg.name` for inputs of `input_shape` (without the batch dimension)."""
    return MODELS.get(cfg.name)(cfg, tuple(input_shape), num_classes)


__all__ = ["MODELS", "PrunableNet", "build_model"]
