"""Greedy forward selection of neurons/channels (Ye et al., ICML 2020; docs/scores.md).

Gated layers are processed input -> output. For each, the selection starts from no unit and
repeatedly adds the unit that, together with the units already chosen, gives the lowest
cross-entropy on a fresh training minibatch; candidates are a random sample of `num_evaluate`
unselected units. It stops when the subnetwork recovers (1 - top1_tol) of the layer's starting
top-1 on a strided training subset (checked only after a cheap minibatch pre-check with
`precheck_tol`), when the layer has ceil(density * units) units, or when no candidate is left.
Earlier layers stay restricted to their selection while later layers are selected.

A gate removes the *weight* part of a unit's pre-activation (bias kept), so the evaluated
subnetwork is exactly the network the resulting weight mask gives. Deviation from the reference
code: chosen units keep multiplier 1 (no mean-field N/n up-weighting), and there is no 0.1-epoch
fine-tune between layers.

How sparsity is read: the score makes whole rows (output units) survive in order of preference:
selected units in selection order, then the other units by row L2 norm; within a row by |w|.
The allocation (per-layer, e.g. layerwise) then keeps exactly round(density * N) weights of the
layer, i.e. whole rows except at most one partial boundary row. Layers that are not gated
(the classifier, and with gate_sites=block_hidden layers whose output feeds a residual add)
are scored by |w|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError
from . import register_score
from .common import draw_batches, followers_of, require_data, scoring_mode


@config_schema("method", "greedy_forward")
@dataclass
class GreedyForwardConfig(MethodConfig):
    num_evaluate: int = 50  # candidate units evaluated per step (random sample of the unselected)
    batch_size: int = 128  # fresh minibatch per step
    subset_stride: int = 200  # stopping rule evaluated on every subset_stride-th training example
    top1_tol: float = 0.02  # stop once subset top-1 >= (1 - top1_tol) * the layer's starting top-1
    precheck_tol: float = 0.05  # ... checked only when minibatch top-1 >= (1 - precheck_tol) * start
    gate_sites: str = "block_hidden"  # block_hidden (units feeding one consumer) | all (every non-classifier layer)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        m = cfg.method
        for name in ("num_evaluate", "batch_size", "subset_stride"):
            if not (isinstance(m[name], int) and m[name] >= 1):
                raise ConfigError(f"method.{name}", m[name], "an integer >= 1")
        for name in ("top1_tol", "precheck_tol"):
            if not (0 <= m[name] < 1):
                raise ConfigError(f"method.{name}", m[name], "a number in [0, 1)")
        if m.gate_sites not in ("block_hidden", "all"):
            raise ConfigError("method.gate_sites", m.gate_sites, "one of all, block_hidden")
        if m.allocation == "global":
            raise ConfigError(
                "method.allocation",
                m.allocation,
                "a per-layer allocation (e.g. layerwise)",
                "greedy_forward's row priorities are only comparable within a layer.",
            )
        if m.rounds != 1:
            raise ConfigError("method.rounds", m.rounds, "1 for greedy_forward (it selects units once)")

    @staticmethod
    def unused_for_model(cfg: DictConfig, key: str, model) -> dict[str, str]:
        """`gate_sites` on a model where both choices gate the same layers (a plain MLP or CNN: every
        hidden layer's ReLU feeds one module): the selection, and so the masks, are the same."""
        from ...models.graph import trace

        graph = trace(model)
        if not graph.traced:
            return {}
        info = {i.module_name: i for i in graph.values()}
        layers = [n for n, _ in model.prunable_layers() if n != model.classifier]
        if any(n not in info or info[n].activation is None or info[n].consumers != 1 for n in layers):
            return {}
        why = "every hidden layer of this model feeds one module through its ReLU, so all and block_hidden gate the same layers"
        return {f"{key}.gate_sites": why}


class _Gate:
    """Forward hook: out = g * (out - bias) + bias, per output unit."""

    def __init__(self, module):
        self.g = torch.ones(module.weight.shape[0], device=module.weight.device)
        self.bias = module.bias
        self.handle = module.register_forward_hook(self)

    def __call__(self, mod, inputs, out):
        shape = (1, -1, *([1] * (out.dim() - 2)))
        g = self.g.view(shape)
        if self.bias is None:
            return out * g
        b = self.bias.view(shape)
        return (out - b) * g + b


def _top1(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean()) if len(y) else 0.0


def gate_sites(model, params, ctx) -> list[str]:
    """Names of the layers (module names) whose units are selected, in forward order."""
    layers = [n for n, _ in model.prunable_layers() if f"{n}.weight" in params and n != model.classifier]
    if ctx.method.gate_sites == "all":
        return layers
    follow = followers_of(model, ctx, "greedy_forward with method.gate_sites=block_hidden")
    return [n for n in layers if follow[n].activation is not None and follow[n].consumers == 1]


def greedy_select(model, params, ctx) -> dict[str, list[int]]:
    """Selected units per gated layer, in selection order."""
    m = ctx.method
    data = require_data(ctx, "greedy_forward")
    modules = dict(model.named_modules())
    sites = gate_sites(model, params, ctx)
    sub_x, sub_y = data.train_x[:: m.subset_stride], data.train_y[:: m.subset_stride]
    gates = {}
    selected: dict[str, list[int]] = {}
    try:
        with scoring_mode(model, train=False), torch.no_grad():
            for site in sites:
                gates[site] = gate = _Gate(modules[site])
                n_units = gate.g.numel()
                mask = (ctx.masks or {}).get(f"{site}.weight")
                alive = torch.arange(n_units) if mask is None else torch.nonzero(mask.flatten(1).any(1)).flatten().cpu()
                target = min(len(alive), max(1, math.ceil(ctx.density * n_units)))
                init_top1 = _top1(model, sub_x, sub_y)
                chosen: list[int] = []
                gate.g.zero_()
                while len(chosen) < target:
                    x, y = draw_batches(ctx, 1, m.batch_size, None, "greedy_forward")[0]
                    rest = alive[~torch.isin(alive, torch.tensor(chosen, dtype=torch.long))]
                    cand = rest[torch.randperm(len(rest), generator=ctx.generator)[: m.num_evaluate]].tolist()
                    best, best_loss, best_top1 = None, math.inf, 0.0
                    for c in cand:
                        gate.g[c] = 1.0
                        out = model(x)
                        gate.g[c] = 0.0
                        loss = float(F.cross_entropy(out, y))
                        if loss < best_loss:
                            best, best_loss, best_top1 = c, loss, float((out.argmax(1) == y).float().mean())
                    chosen.append(best)
                    gate.g[best] = 1.0
                    if best_top1 >= (1 - m.precheck_tol) * init_top1 and _top1(model, sub_x, sub_y) >= (1 - m.top1_tol) * init_top1:
                        break
                selected[site] = chosen
    finally:
        for gate in gates.values():
            gate.handle.remove()
    return selected


@register_score("greedy_forward", options=GreedyForwardConfig)
def greedy_forward_scores(model, params, ctx):
    selected = greedy_select(model, params, ctx)
    scores = {}
    for name, p in params.items():
        w = p.detach().abs()
        site = name[: -len(".weight")]
        if site not in selected:
            scores[name] = w
            continue
        n_units = w.shape[0]
        chosen = selected[site]
        rest = [u for u in torch.argsort(w.flatten(1).norm(dim=1), descending=True, stable=True).tolist() if u not in set(chosen)]
        rank = torch.empty(n_units, device=w.device)
        for r, u in enumerate(chosen + rest):
            rank[u] = n_units - r  # integer priority per row, best row highest
        top = w.max()
        within = 0.5 * w / top if float(top) > 0 else torch.zeros_like(w)
        scores[name] = rank.view(-1, *([1] * (w.dim() - 1))) + within
    return scores
