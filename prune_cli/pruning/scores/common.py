"""Helpers shared by data-driven scores: training batches, gradients, mode/buffer hygiene, tracing.

Scores must leave the model as they found it: same train/eval mode, same BatchNorm running
statistics (a forward pass in train mode would update them), and no `.grad` left behind
(gradients are taken with `torch.autograd.grad`, never `.backward()`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import dataclasses

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ...core.checks import seed_option
from ...core.config_base import MethodConfig
from ...core.errors import ConfigError, PruneCliError
from ...data.batches import iterate_batches


@dataclass
class DataScoreConfig(MethodConfig):
    """Options of scores computed from training minibatches."""

    batches: int = 1  # training minibatches the score averages over (ShrinkBench/UP: 1)
    batch_size: int = 128
    batch_seed: Optional[int] = None  # null: draw batches from the pruning event's generator; an int: fixed batches
    bn_mode: str = "train"  # train (batch statistics, as the references) | eval (running statistics)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        """Runs for every schema that extends this one: each data-driven score, also one added later."""
        check_data_options(cfg, key, ("batches", "batch_size"))

    @staticmethod
    def unused_for_model(cfg: DictConfig, key: str, model) -> dict[str, str]:
        return bn_mode_unused(key, model)


def check_data_options(cfg: DictConfig, key: str, counts: tuple[str, ...]) -> None:
    """The checks of the options every score computed from training batches shares, also one whose
    schema does not extend `DataScoreConfig` (GraSP: `samples_per_class` instead of `batch_size`):
    each of `counts` an integer >= 1, `bn_mode` train or eval, `batch_seed` null or a seed."""
    m = OmegaConf.select(cfg, key)
    for name in counts:
        if not (isinstance(m[name], int) and m[name] >= 1):
            raise ConfigError(f"{key}.{name}", m[name], "an integer >= 1")
    if m.bn_mode not in ("train", "eval"):
        raise ConfigError(f"{key}.bn_mode", m.bn_mode, "one of eval, train")
    seed_option(cfg, f"{key}.batch_seed", nullable=True)


def mode_dependent_modules(model) -> bool:
    """Whether the model computes differently in train and eval mode (BatchNorm, dropout): only then
    do `bn_mode` and BatchNorm-based options change a score."""
    from torch import nn

    return any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)) for m in model.modules())


def bn_mode_unused(key: str, model) -> dict[str, str]:
    """`bn_mode` on a model without BatchNorm or dropout: the score is the same in either mode."""
    if mode_dependent_modules(model):
        return {}
    return {f"{key}.bn_mode": "the model has no BatchNorm or dropout, so train and eval mode compute the same score"}


def require_data(ctx, score: str):
    if ctx.data is None:
        raise PruneCliError(f"method.score={score} needs training data in its PruneContext (ctx.data is None)")
    return ctx.data


def iter_score_batches(
    ctx, n_batches: int, batch_size: int, seed: Optional[int] = None, score: str = "score"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`n_batches` shuffled training minibatches (more than one epoch if needed), one at a time."""
    data = require_data(ctx, score)
    gen = torch.Generator().manual_seed(seed) if seed is not None else ctx.generator
    produced = 0
    while produced < n_batches:
        for xb, yb in iterate_batches(data.train_x, data.train_y, batch_size, gen):
            yield xb, yb
            produced += 1
            if produced == n_batches:
                return


def draw_batches(
    ctx, n_batches: int, batch_size: int, seed: Optional[int] = None, score: str = "score"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same batches as a list (for scores that pass over them more than once)."""
    return list(iter_score_batches(ctx, n_batches, batch_size, seed, score))


@contextmanager
def scoring_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Put the model in train/eval mode for scoring; restore the mode and the buffers afterwards."""
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train(train)
    try:
        yield
    finally:
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])


def loss_gradients(model: nn.Module, tensors: list[torch.Tensor], batches, loss_fn) -> list[torch.Tensor]:
    """Gradient of the mean loss over `batches` (each batch weighted equally), no weight decay."""
    grads = [torch.zeros_like(t) for t in tensors]
    for x, y in batches:
        loss = loss_fn(model(x), y) / len(batches)
        for acc, g in zip(grads, torch.autograd.grad(loss, tensors)):
            acc += g
    return grads


def named_weights(model: nn.Module, names) -> list[nn.Parameter]:
    named = dict(model.named_parameters())
    return [named[n] for n in names]


def followers_of(model: nn.Module, ctx, what: str) -> dict:
    """{module name: LayerInfo} with each prunable layer's BatchNorm, ReLU and the ReLU's consumers,
    from the model's layer graph (prune_cli/models/graph.py)."""
    graph = ctx.layer_graph(model)
    if not graph.traced:
        raise PruneCliError(
            f"{what} needs the layers that follow each prunable layer, and torch.fx cannot trace "
            f"{type(model).__name__}; use a traceable model or turn the option off."
        )
    return {info.module_name: info for info in graph.values()}


def require_options(method: DictConfig, options: type) -> None:
    """A score chosen with `method.score=` under another method's config lacks its options: say so.

    `options` is the config class the score declared (`register_score(..., options=...)`); the
    method node must hold every option that class adds to `MethodConfig`."""
    base = {f.name for f in dataclasses.fields(MethodConfig)}
    missing = [f.name for f in dataclasses.fields(options) if f.name not in base and f.name not in method]
    if missing:
        raise ConfigError(
            "method.score",
            method.score,
            f"a score whose options are in this method config (missing {', '.join(missing)})",
            f"Select it with method={method.score} instead of overriding method.score.",
        )
