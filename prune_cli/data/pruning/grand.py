"""`data_pruning=grand`: keep the examples with the largest GraNd score (Paul, Ganguli and
Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early in Training", NeurIPS
2021).

The GraNd score of a training example (x, y) is the expected norm of its loss gradient with
respect to the weights, E_w ||grad_w loss(f_w(x), y)||_2, the expectation taken over the
initialisations (and, with `proxy_epochs` > 0, the first epochs of training) of `proxies`
independent proxy models. The paper's GraNd is measured at initialisation (`proxy_epochs=0`, the
default here) and averaged over 10 initialisations; it bounds the expected change of the loss of
other examples caused by training on (x, y), so examples with small scores matter little and are
dropped. The round(keep x N) examples with the highest scores are kept (ties: lower index first);
`offset` skips that fraction of the very highest first, as for EL2N.

Per-example gradients are computed with torch.func (`vmap(grad(...))` over `functional_call`), a
whole chunk of examples per call, over every trainable parameter of the model (weights and
biases). The model is evaluated in eval mode, so batch-norm layers use their running statistics
(at initialisation: the identity) and each example's gradient depends on that example alone, as the
definition requires."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from ...core.checks import positive_int
from ...core.config_base import config_schema
from . import DataPruningContext, ScoreOffsetConfig, Selection, keep_highest, register_data_pruning

# Per-example gradients of a chunk occupy chunk x parameters floats: chunks are sized to stay
# within this many (256 MiB in float32), and never larger than the evaluation batch size.
GRADIENT_FLOATS = 1 << 26


@config_schema("data_pruning", "grand")
@dataclass
class GraNdDataPruningConfig(ScoreOffsetConfig):
    """Keep the examples with the largest expected per-example gradient norm (GraNd)."""

    proxies: int = 4  # independent proxy initialisations averaged over (the paper averages 10)
    proxy_epochs: int = 0  # epochs each proxy is trained before scoring (0: at initialisation, the paper's GraNd)

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """Each proxy trains `proxy_epochs` epochs with the train config."""
        return node.proxy_epochs

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, key + ".proxies")
        positive_int(cfg, key + ".proxy_epochs", minimum=0)


def per_example_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """||grad_w CE(f_w(x_i), y_i)||_2 for every example i (float64, on the CPU), the norm taken over
    all trainable parameters at once. One vmap'd gradient per chunk of examples (torch.func), the
    model in eval mode (restored afterwards)."""
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    n_params = sum(p.numel() for p in params.values())
    chunk = max(1, min(batch_size, GRADIENT_FLOATS // max(n_params, 1)))

    def loss(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    was_training = model.training
    model.eval()
    norms = []
    try:
        for s in range(0, len(y), chunk):
            grads = per_example(params, x[s : s + chunk], y[s : s + chunk])
            # per-tensor norms in the gradients' dtype (no float64 copy of the chunk), combined in float64
            squared = sum(g.flatten(1).norm(dim=1).double() ** 2 for g in grads.values())
            norms.append(squared.sqrt().cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms) if norms else torch.zeros(0, dtype=torch.float64)


@register_data_pruning("grand")
def grand(ctx: DataPruningContext, node: DictConfig) -> Selection:
    x, y = ctx.data.train_x, ctx.data.train_y

    def compute() -> torch.Tensor:
        scores = torch.zeros(len(y), dtype=torch.float64)
        for i in range(node.proxies):
            scores += per_example_gradient_norms(ctx.train_proxy(i, node.proxy_epochs), x, y, ctx.eval_batch_size)
        return scores / node.proxies

    # the scores do not depend on keep/offset: a sweep over them scores the proxies once
    # at initialisation (proxy_epochs=0) the training options do not matter: a sweep over train.lr scores once
    key = {"proxies": node.proxies, "proxy_epochs": node.proxy_epochs}
    scores = ctx.cached("grand", key, compute, trains=node.proxy_epochs > 0, shape=(len(ctx.data.train_y),))
    return keep_highest(ctx, node, scores, "grand")
