"""GraSP (Wang, Zhang & Grosse, ICLR 2020): keep the weights whose removal hurts gradient flow.

GraSP's removal score is S(-w) = -(H g) * w and it prunes the *highest*; in prune-cli's
higher-is-kept convention the score is therefore (H g) * w. `absolute=true` gives the `graspabs`
variant |(H g) * w|. g and Hg are taken over every prunable weight of the model (as the
reference, also excluded layers), logits divided by `temperature`, on class-balanced batches
of `samples_per_class` examples per class. Cost: one gradient plus one Hessian-vector product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError
from . import register_score
from .common import bn_mode_unused, check_data_options, named_weights, require_data, scoring_mode


@config_schema("method", "grasp")
@dataclass
class GraspConfig(MethodConfig):
    samples_per_class: int = 10  # class-balanced batch, as the reference code
    batches: int = 1
    temperature: float = 200.0  # logits / T for the score (reference code)
    absolute: bool = False  # graspabs: |Hg * w|, keep the highest
    batch_seed: Optional[int] = None
    bn_mode: str = "train"

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        check_data_options(cfg, key, ("samples_per_class", "batches"))  # also batch_seed and bn_mode, as snip's
        m = OmegaConf.select(cfg, key)
        if not (math.isfinite(m.temperature) and m.temperature > 0):
            raise ConfigError(f"{key}.temperature", m.temperature, "a finite number > 0")

    @staticmethod
    def check_class_examples(cfg: DictConfig, counts: list[int], exact: bool) -> None:
        """The batches fit the training split (prune_cli/run/prevalidate.py check_data_sizes: from the
        dataset's declared counts before any work, from the loaded split, after data pruning)."""
        check_batches_fit(counts, cfg.method.samples_per_class, cfg.method.batches, exact)

    @staticmethod
    def unused_for_model(cfg: DictConfig, key: str, model) -> dict[str, str]:
        return bn_mode_unused(key, model)


def check_batches_fit(counts: list[int], per_class: int, n_batches: int, exact: bool = True) -> None:
    """`n_batches` disjoint batches of `per_class` examples of every class fit training examples of
    `counts` per class: every batch full, as in the reference code, whose batches all hold
    samples_per_class of every class; a short batch would weigh its few examples as much as a full one
    and, with unequal classes, be unbalanced. Classes without training examples are left out (a class
    may be removed from training). `exact=False`: each count is an upper bound on its class (a single
    value bounds every class), and only a certain failure is refused: no class could fill the batches."""
    present = [(n, c) for c, n in enumerate(counts) if n > 0]
    if not present:
        return
    if exact:
        smallest, c = min(present)
        where = f"class {c} has {smallest} training examples"
    else:
        smallest = max(n for n, _ in present)
        where = f"the training split will have at most {smallest} examples of any class"
    balanced = "GraSP's batches are class-balanced and disjoint, each with method.samples_per_class examples of every class"
    if per_class > smallest:
        raise ConfigError("method.samples_per_class", per_class, f"at most {smallest}: {where}, and {balanced}")
    if per_class * n_batches > smallest:
        raise ConfigError(
            "method.batches",
            n_batches,
            f"at most {smallest // per_class}: {where}, and {balanced} (here {per_class}); every batch is full",
        )


def balanced_batches(ctx, per_class: int, n_batches: int, seed: Optional[int]):
    """`n_batches` disjoint batches with `per_class` shuffled examples of every class that has training
    examples (`check_batches_fit`: each of them full)."""
    data = require_data(ctx, "grasp")
    check_batches_fit(data.train_class_counts(), per_class, n_batches)
    gen = torch.Generator().manual_seed(seed) if seed is not None else ctx.generator
    y = data.train_y.cpu()
    order = torch.randperm(len(y), generator=gen)
    per = [order[y[order] == c] for c in range(data.num_classes)]
    batches = []
    for b in range(n_batches):
        idx = torch.cat([p[b * per_class : (b + 1) * per_class] for p in per])
        idx = idx.to(data.train_x.device)
        batches.append((data.train_x[idx], data.train_y[idx]))
    return batches


def grasp_signed(method) -> bool:
    """GraSP's scores (H g) * w take either sign (Wang, Zhang & Grosse, ICLR 2020: removing a
    weight can raise or lower the gradient norm); only `absolute=true` (graspabs) makes them |.| >= 0."""
    return not getattr(method, "absolute", False)


@register_score("grasp", options=GraspConfig, signed=grasp_signed)
def grasp_scores(model, params, ctx):
    m = ctx.method
    names = [f"{n}.weight" for n, _ in model.prunable_layers()]
    weights = named_weights(model, names)
    batches = balanced_batches(ctx, m.samples_per_class, m.batches, m.batch_seed)
    temp = float(m.temperature)
    with scoring_mode(model, train=m.bn_mode == "train"):
        g = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            for acc, gi in zip(g, torch.autograd.grad(F.cross_entropy(model(x) / temp, y), weights)):
                acc += gi
        hg = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            grads = torch.autograd.grad(F.cross_entropy(model(x) / temp, y), weights, create_graph=True)
            z = sum((gr * gi).sum() for gr, gi in zip(grads, g))
            for acc, h in zip(hg, torch.autograd.grad(z, weights)):
                acc += h
    by_name = dict(zip(names, hg))
    scores = {n: by_name[n] * params[n].detach() for n in params}
    return {n: s.abs() for n, s in scores.items()} if m.absolute else scores
