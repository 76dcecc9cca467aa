"""Greedy forward selection of neurons/channels (Ye et al., ICML 2020; docs/scores.md).

Gated layers are processed input -> output. For each, the selection starts from no unit and
repeatedly adds the unit that, together with the units already chosen, gives the lowest
cross-entropy on a fresh training minibatch; candidates are a random sample of `num_evaluate`
unselected units. It stops when the subnetwork recovers (1 - top1_tol) of the layer's starting
top-1 on a strided training subset (checked only after a cheap minibatch pre-check with
`precheck_tol`), or when the selected units hold as many live weights as the masks will keep of
the layer.

How many weights a layer keeps is the allocation's count k, known before scoring whatever the
scores' values (`counts_from_shapes` or `counts_without_score_values`); without earlier masks that
is ceil(k / row size) units, and under an iterative schedule the selected units' live weights are
counted (a unit pruned in part holds fewer). A layer whose every live weight is kept is not selected
in (nothing to choose). Once a layer's selection ends, the units the masks keep of it (the selected
ones, then the others by row L2 norm, until k live weights: `kept_units`) stay open while later layers
are selected, so each later layer is chosen in the network the masks produce (up to a partial
boundary row, opened whole), whatever the allocation and whether the selection stopped early. This
holds for `structure=unstructured` without `invert`: a structure keeps its own shapes (channel, block,
nm) and the budget and the opened units then follow the unstructured count. (Before 2026-12-03 the
budget was ceil(density * units) of the global density and later layers saw only the selected
units: with erk or uniform_plus the masks kept other rows than those selected, and a selection that
stopped early was followed by later layers chosen in a narrower network than the masks kept.)

A gate removes the *weight* part of a unit's pre-activation (bias kept), as a weight mask does.
Deviations from the reference code: an unselected unit still outputs relu(bias) (relu(BN(0)) after a
BatchNorm) into the next layer, where the reference code's mask zeroes its output; chosen units keep
multiplier 1 (no mean-field N/n up-weighting); there is no 0.1-epoch fine-tune between layers.

How sparsity is read: the score makes whole rows (output units) survive in order of preference:
selected units in selection order, then the other units by row L2 norm; within a row by |w|.
The allocation then keeps its count of the layer's weights, i.e. whole rows except at most one
partial boundary row. Layers that are not gated (the classifier, and with gate_sites=block_hidden
layers whose output feeds a residual add) are scored by |w|.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from ...core.config_base import MethodConfig, config_schema
from ...core.errors import ConfigError, PruneCliError
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
        _check_allocation(m)
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


def _check_allocation(m) -> None:
    """The allocation's per-layer counts must be known before scoring, whatever the scores' values
    (`counts_from_shapes`, or `counts_without_score_values`: region_bound, matched with match_masks): the
    selection stops once the selected units hold the count the masks keep of each layer, and later layers are
    selected with the kept units open. `global` ranks rows of different layers against each other, which
    greedy_forward's per-layer row priorities are not made for; layerwise's tie-dependent thresholds and
    matched's match_method (another method scored here) decide their counts while pruning."""
    from ..registries import ALLOCATIONS

    allocation = ALLOCATIONS.get(m.allocation)
    if allocation.counts_from_shapes(m) or allocation.counts_without_score_values(m):
        return
    allowed = (
        "layerwise (with threshold_impl topk or lap_round), erk, er, erk_plus, uniform_plus, explicit, region_bound "
        "or matched with match_masks"
    )
    why = "greedy_forward selects each layer's units up to the count its mask keeps, which only these allocations fix before scoring."
    raise ConfigError("method.allocation", m.allocation, allowed, why)


def planned_counts(model, params, ctx, sites) -> dict[str, int]:
    """The weights of each gated layer the masks will keep: the allocation's count, which does not depend
    on the scores' values (`_check_allocation`), so zero scores of the right shapes give it."""
    from ..registries import ALLOCATIONS

    if ctx.model is None:
        ctx = dataclasses.replace(ctx, model=model)
    counts = ALLOCATIONS.get(ctx.method.allocation)({n: torch.zeros(p.shape) for n, p in params.items()}, ctx.density, ctx)
    return {site: counts[f"{site}.weight"] for site in sites}


def row_order(w: torch.Tensor, chosen: list[int]) -> list[int]:
    """The units of weight `w` in the order the masks keep them: the selected ones in selection order,
    then the others by row L2 norm (largest first; ties by index)."""
    taken = set(chosen)
    by_norm = torch.argsort(w.detach().flatten(1).norm(dim=1), descending=True, stable=True).tolist()
    return chosen + [u for u in by_norm if u not in taken]


def kept_units(order: list[int], live: torch.Tensor, count: int) -> list[int]:
    """The units whose weights the masks keep when `count` live weights are kept row by row in `order` (the
    score's row priorities; within a row the largest |w|): every row up to the one the count ends in.
    `live`: each unit's live (unpruned) weights."""
    kept, held = [], 0
    for u in order:
        if held >= count:
            break
        if int(live[u]) > 0:
            kept.append(u)
            held += int(live[u])
    return kept


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
    planned = planned_counts(model, params, ctx, sites)
    sub_x, sub_y = data.train_x[:: m.subset_stride], data.train_y[:: m.subset_stride]
    gates = {}
    selected: dict[str, list[int]] = {}
    try:
        with scoring_mode(model, train=False), torch.no_grad():
            for site in sites:
                gates[site] = gate = _Gate(modules[site])
                w = params[f"{site}.weight"]
                mask = (ctx.masks or {}).get(f"{site}.weight")
                live = torch.full((w.shape[0],), w[0].numel()) if mask is None else mask.flatten(1).sum(1).cpu()
                alive = torch.nonzero(live).flatten()
                count = planned[site]
                if count >= int(live.sum()):  # the masks keep every live weight: nothing to choose, all stay open
                    selected[site] = []
                    continue
                init_top1 = _top1(model, sub_x, sub_y)
                chosen: list[int] = []
                held = 0  # live weights of the selected units: the selection ends where they hold the count
                gate.g.zero_()
                while held < count:
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
                    if best is None:  # every candidate's loss was NaN (or inf)
                        raise PruneCliError(
                            f"method.score=greedy_forward: the cross-entropy of every candidate unit of {site} is not finite "
                            "(the model's outputs are NaN or inf), so no unit can be selected"
                        )
                    chosen.append(best)
                    held += int(live[best])
                    gate.g[best] = 1.0
                    if best_top1 >= (1 - m.precheck_tol) * init_top1 and _top1(model, sub_x, sub_y) >= (1 - m.top1_tol) * init_top1:
                        break
                selected[site] = chosen
                # later layers are selected in the network the masks produce: this layer's kept units open
                gate.g.zero_()
                gate.g[kept_units(row_order(w, chosen), live, count)] = 1.0
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
        rank = torch.empty(n_units, device=w.device)
        for r, u in enumerate(row_order(p, selected[site])):
            rank[u] = n_units - r  # integer priority per row, best row highest
        top = w.max()
        within = 0.5 * w / top if float(top) > 0 else torch.zeros_like(w)
        scores[name] = rank.view(-1, *([1] * (w.dim() - 1))) + within
    return scores
