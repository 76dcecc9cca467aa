"""Lookahead pruning LAP (Park, Lee, Mo & Shin, ICLR 2020) and its variants (docs/scores.md).

Squared score of weight W_i[k, j] (as the authors' code; same ranking as the unsquared form):

    LAP(w)^2 = W_i[k,j]^2 * ||W_{i-1}[j, :]||^2 * ||W_{i+1}[:, k]||^2

= the squared Frobenius distortion of the linear block W_{i+1} W_i W_{i-1} when w alone is zeroed.
The chain is every prunable layer of the model in forward order (also layers this method
excludes from pruning; skip connections are ignored, the reference's `chain`): the first layer's
prev factor and the last layer's next factor are 1. Convolutions use whole-filter energies;
a linear layer reading C*S flattened conv features maps feature f to channel f // S.

Variants: `bn` (BatchNorm scale gamma/sqrt(var+1e-10) on both factors), `activation` (weights
pre-scaled by ReLU firing probabilities), `mode=forward|backward` (LFP / LBP: layers pruned one
after another, each scored with its neighbour already pruned) and `normalize` (each layer's score
tensor divided by its L2 norm, for one global ranking: `lap_global_normalize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError, PruneCliError
from . import register_score
from .common import followers_of, iter_score_batches, scoring_mode


@config_schema("method", "lookahead")
@dataclass
class LookaheadConfig(MethodConfig):
    mode: str = "base"  # base (LAP) | forward (LFP) | backward (LBP)
    bn: bool = False  # LAP-BN: include the following BatchNorm's scale (VGG/ResNet)
    activation: bool = False  # LAP-act: rescale rows by ReLU firing probabilities first
    act_batches: int = 2000  # firing probabilities from act_batches x act_batch_size training samples
    act_batch_size: int = 30
    normalize: bool = False  # divide each layer's score tensor by its L2 norm (global variant)
    faithful_bn_flatten: bool = False  # reproduce the reference's idx // C BN index for flattened features

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        m = cfg.method
        if m.mode not in ("base", "forward", "backward"):
            raise ConfigError("method.mode", m.mode, "one of backward, base, forward")
        if m.mode != "base" and m.allocation == "global":
            raise ConfigError(
                "method.allocation",
                m.allocation,
                "a per-layer allocation (e.g. layerwise)",
                "LAP's forward/backward modes prune layer by layer, so every layer needs its own count.",
            )
        if m.mode != "base" and m.rounds != 1:
            raise ConfigError("method.rounds", m.rounds, "1 with method.mode=forward|backward")
        if m.mode != "base" and m.invert:  # the chain masks neighbours keeping the highest scores
            raise ConfigError(
                "method.invert",
                m.invert,
                "false with method.mode=forward|backward (each layer is scored against its neighbours' masks, which keep "
                "the highest scores), or method.mode=base",
            )
        if m.mode != "base":  # LFP/LBP build each layer's mask before the neighbour is scored
            from .. import STRUCTURES

            local = [n for n in STRUCTURES.names() if STRUCTURES.get(n).layer_local]
            if m.structure in STRUCTURES.names() and not STRUCTURES.get(m.structure).layer_local:
                raise ConfigError(
                    "method.structure",
                    m.structure,
                    f"a structure that prunes one layer at a time with method.mode={m.mode} ({', '.join(sorted(local))})",
                    f"method.structure={m.structure} decides all layers together; LAP's forward/backward modes mask each "
                    "layer before scoring its neighbour (method.mode=base scores all layers at once).",
                )
        for name in ("act_batches", "act_batch_size"):
            if not (isinstance(m[name], int) and m[name] >= 1):
                raise ConfigError(f"method.{name}", m[name], "an integer >= 1")

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        m = OmegaConf.select(cfg, key)
        found = {}
        if not m.activation:  # firing probabilities are estimated only for LAP-act
            for name in ("act_batches", "act_batch_size"):
                found[f"{key}.{name}"] = (
                    f"it applies only with {key}.activation=true (LAP-act's firing-probability estimate); here {key}.activation=false"
                )
        if not m.bn:  # the flattened BatchNorm index is read only where a BatchNorm scale enters (LAP-BN)
            found[f"{key}.faithful_bn_flatten"] = (
                f"it applies only with {key}.bn=true (LAP-BN's BatchNorm scales); here {key}.bn=false"
            )
        return found

    @staticmethod
    def unused_for_model(cfg: DictConfig, key: str, model) -> dict[str, str]:
        """LAP-BN multiplies by the following BatchNorm's scale: nothing on a model without one."""
        if not OmegaConf.select(cfg, f"{key}.bn") or any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return {}
        return {f"{key}.bn": "the model has no BatchNorm layer, whose scale LAP-BN multiplies in"}


def _energy_in(w: torch.Tensor) -> torch.Tensor:
    """Squared norm of the weights into each output unit/channel: [C_out]."""
    return (w**2).flatten(1).sum(1)


def _energy_out(w: torch.Tensor) -> torch.Tensor:
    """Squared norm of the weights out of each input feature/channel: [F_in]."""
    return (w**2).sum(dim=[d for d in range(w.dim()) if d != 1])


def _spatial(features: int, channels: int, where: str) -> int:
    """S such that features == channels * S (channel-major flatten), or raise."""
    if features % channels or features < channels:
        raise PruneCliError(
            f"lookahead: {where} reads {features} features but the neighbouring layer has "
            f"{channels} channels; LAP supports F == C or F == C*S (flattened conv output)"
        )
    return features // channels


def _bn_scale(bn: Optional[nn.Module]) -> Optional[torch.Tensor]:
    if bn is None or bn.running_var is None:
        return None
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return gamma / torch.sqrt(bn.running_var + 1e-10)


def _firing_scales(model, names, follow, ctx) -> dict[str, torch.Tensor]:
    """Per-output-unit multipliers sqrt(P(ReLU > 0)); conv: summed over positions (reference code)."""
    m = ctx.method
    counts: dict[str, torch.Tensor] = {}
    seen = [0]
    hooks = []
    for name in names[:-1]:
        relu = follow[name].activation
        if relu is None:
            continue

        def hook(mod, inputs, out, _n=name):
            fired = (out > 0).sum(0).double()
            counts[_n] = counts[_n] + fired if _n in counts else fired

        hooks.append(relu.register_forward_hook(hook))
    batches = iter_score_batches(ctx, m.act_batches, m.act_batch_size, None, "lookahead")
    try:
        with scoring_mode(model, train=False), torch.no_grad():
            for x, _ in batches:
                model(x)
                seen[0] += len(x)
    finally:
        for h in hooks:
            h.remove()
    scales = {}
    for name, c in counts.items():
        root = torch.sqrt(c / seen[0])
        scales[name] = (root.flatten(1).sum(1) if root.dim() > 1 else root).float()
    return scales


def _layer_score(i: int, ws: list[torch.Tensor], bn: list[Optional[torch.Tensor]], faithful: bool) -> torch.Tensor:
    w = ws[i]
    score = w**2
    if i > 0:
        c_prev = ws[i - 1].shape[0]
        s = _spatial(w.shape[1], c_prev, f"layer {i}")
        prev = _energy_in(ws[i - 1]).repeat_interleave(s)
        if bn[i - 1] is not None:
            b2 = bn[i - 1] ** 2
            idx = torch.arange(w.shape[1], device=w.device)
            bidx = idx // c_prev if faithful else idx // s
            if int(bidx.max()) >= c_prev:
                raise PruneCliError(
                    "lookahead: method.faithful_bn_flatten=true indexes past the BatchNorm "
                    f"channels of layer {i - 1} (S > C); use faithful_bn_flatten=false"
                )
            prev = prev * b2[bidx]
        score = score * prev.view(1, -1, *([1] * (w.dim() - 2)))
    if i < len(ws) - 1:
        c = w.shape[0]
        s = _spatial(ws[i + 1].shape[1], c, f"layer {i + 1}")
        nxt = _energy_out(ws[i + 1]).view(c, s).sum(1)
        if bn[i] is not None:
            nxt = nxt * bn[i] ** 2
        score = score * nxt.view(-1, *([1] * (w.dim() - 1)))
    return score


@register_score("lookahead", options=LookaheadConfig, layer_normalised=lambda m: "method.normalize" if m.get("normalize") else None)
def lookahead_scores(model, params, ctx):
    from ..registries import ALLOCATIONS, STRUCTURES

    m = ctx.method
    layers = model.prunable_layers()
    names = [f"{n}.weight" for n, _ in layers]
    ws = [mod.weight.detach().clone() for _, mod in layers]
    follow = None
    if m.bn or m.activation:
        follow = followers_of(model, ctx, "lookahead with method.bn or method.activation")
    bn = [_bn_scale(follow[n].norm) if m.bn else None for n, _ in layers] if follow else [None] * len(ws)
    if m.activation:
        scales = _firing_scales(model, [n for n, _ in layers], follow, ctx)
        for i, (n, _) in enumerate(layers):
            if n in scales:
                ws[i] = ws[i] * scales[n].view(-1, *([1] * (ws[i].dim() - 1)))
    faithful = m.faithful_bn_flatten
    mode = m.mode
    current = ctx.masks or {}

    def finish(i: int, s: torch.Tensor) -> torch.Tensor:
        if names[i] in current:
            s = s.masked_fill(~current[names[i]].to(s.device), float("-inf"))
        return s

    scores: dict[str, torch.Tensor] = {}
    if mode == "base":
        for i, name in enumerate(names):
            if name in params:
                scores[name] = _layer_score(i, ws, bn, faithful)
    else:
        # LFP/LBP: each layer keeps its allocated count before its neighbour is scored. Counts come
        # from the allocation on the plain LAP scores (per-layer allocations depend on shapes only).
        base = {n: finish(i, _layer_score(i, ws, bn, faithful)) for i, n in enumerate(names) if n in params}
        counts = ALLOCATIONS.get(m.allocation)(base, ctx.density, ctx)
        build = STRUCTURES.get(m.structure)
        order = range(len(ws)) if mode == "forward" else reversed(range(len(ws)))
        for i in order:
            if names[i] not in params:
                continue
            s = _layer_score(i, ws, bn, faithful)
            scores[names[i]] = s
            keep = build(finish(i, s), counts[names[i]], "exact", m)
            ws[i] = ws[i] * keep.to(ws[i].device, ws[i].dtype)  # structures return CPU masks
    if m.normalize:
        for name, s in scores.items():
            norm = s.norm()
            if float(norm) > 0:
                scores[name] = s / norm
    return scores
