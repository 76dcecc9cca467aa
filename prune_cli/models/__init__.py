"""Model registry. Every model is a plugin module here (`@MODELS.register`, found by discovery,
prune_cli/core/plugins.py, imported when chosen) and declares its prunable layers in forward order
and its classifier."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from omegaconf import DictConfig

from ..core.errors import ConfigError
from ..core.registry import Registry
from .base import PrunableNet

MODELS: Registry = Registry("model", "model.name")


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> PrunableNet:
    """Build `cfg.name` for inputs of `input_shape` (without the batch dimension), held to the contract
    pruning relies on (prune_cli/models/base.py): a PrunableNet whose `classifier` names its final
    prunable layer. A plugin's plain nn.Module crashed inside the pre-run pass, and one without
    `classifier` had its last layer pruned under method.exclude_classifier=true."""
    model = MODELS.get(cfg.name)(cfg, tuple(input_shape), num_classes)
    if not isinstance(model, PrunableNet):
        raise ConfigError(
            "model",
            cfg.name,
            f"a model whose builder returns a prune_cli.models.base.PrunableNet (its builder returned a "
            f"{type(model).__name__}, not a PrunableNet: subclass it and set `classifier` to the final layer's name)",
        )
    names = [name for name, _ in model.prunable_layers()]
    if model.classifier not in names:
        raise ConfigError(
            "model",
            cfg.name,
            f"a PrunableNet whose `classifier` names its final prunable layer (its classifier is "
            f"{model.classifier!r}, not the name of one of its prunable layers ({', '.join(names)}))",
        )
    return model


@contextlib.contextmanager
def isolated_cpu_build() -> Iterator[None]:
    """Build a model only to check it (the pre-run pass) without touching the run: one intra-op
    thread, and the global random streams put back afterwards, so that the run's own model, built
    later from its seed, is initialised exactly as without the check.

    Checks build on the CPU, not on the meta device: PyTorch 2's meta kernels of common ops are
    Python functions that import `torch._dynamo` (with sympy and the compiler stack) on first use,
    which takes longer than importing torch itself (docs/performance.md, "Start-up")."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads != 1:
                torch.set_num_threads(1)
            yield
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


def build_checked_shapes(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> PrunableNet:
    """`cfg.name`'s layers for these inputs on the meta device (shapes, no weights), built on the CPU
    under `isolated_cpu_build`, for checks that need the layers but not a forward pass."""
    with isolated_cpu_build():
        model = build_model(cfg, input_shape, num_classes)
    return model.to_empty(device="meta")


__all__ = ["MODELS", "PrunableNet", "build_checked_shapes", "build_model", "isolated_cpu_build"]
