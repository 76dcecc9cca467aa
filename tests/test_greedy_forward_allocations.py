"""Greedy forward selection under allocations other than an even layerwise split (audit of 2026-12-03).

The selection used to stop at ceil(density * units) of the *global* density and to select later
layers with only the earlier layers' selected units open. Under erk or uniform_plus the masks keep
another number of rows (uniform_plus: the first layer dense, fewer rows elsewhere, so selected units
were pruned), and after a selection that stopped early the masks keep more rows (filled by L2 norm)
than the later layers were chosen with. Here an independent brute force re-runs the selection on
copies of the network whose unkept rows are zeroed (biases kept), layer by layer, with the earlier
layers restricted to the rows the masks keep, and compares.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.data.splits import DataSplits
from prune_cli.models.mlp import MLP
from prune_cli.pruning.pruner import PruneContext, prune, select_prunable
from prune_cli.pruning.scores import greedy_forward
from prune_cli.pruning.scores.greedy_forward import GreedyForwardConfig, greedy_select
from prune_cli.run.prevalidate import validate_node
from tests.helpers import composed


def data() -> DataSplits:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(120, 5, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] * x[:, 2] > 0).long()
    return DataSplits(x, y, x[:4], y[:4], x[:4], y[:4], num_classes=4)


def trained(seed: int, d: DataSplits) -> MLP:
    torch.manual_seed(seed)
    model = MLP(5, [12, 9], 4)  # net.1: 12 x 5, net.3: 9 x 12, net.5 (classifier): 4 x 9
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(d.train_x), d.train_y).backward()
        opt.step()
    return model


def context(d, allocation: str, density: float, tol: float, model) -> PruneContext:
    m = OmegaConf.structured(
        GreedyForwardConfig(
            name="t",
            score="greedy_forward",
            allocation=allocation,
            num_evaluate=100,
            batch_size=len(d.train_y),
            subset_stride=1,
            top1_tol=tol,
            precheck_tol=tol,
            gate_sites="all",
            allow_collapse=True,  # a 9-unit layer at 0.29 may lose every path to the classifier; not the point here
        )
    )
    return PruneContext(method=m, generator=torch.Generator().manual_seed(0), data=d, density=density, model=model)


def restricted(model, rows: dict[str, list[int]]):
    """A copy whose weight rows outside `rows[layer]` are zero (biases kept), as a weight mask leaves them."""
    net = copy.deepcopy(model)
    modules = dict(net.named_modules())
    with torch.no_grad():
        for name, keep in rows.items():
            w = modules[name].weight
            w[[u for u in range(w.shape[0]) if u not in keep]] = 0
    return net


def evaluate(net, d) -> tuple[float, float]:
    with torch.no_grad():
        out = net(d.train_x)
    return float(F.cross_entropy(out, d.train_y)), float((out.argmax(1) == d.train_y).float().mean())


def assert_greedy(model, d, earlier: dict[str, list[int]], site: str, target: int, tol: float, selection: list[int]) -> None:
    """`selection` follows the docs' rule, checked by brute force: each step adds a unit of lowest loss
    (ties, such as dead units, may go either way), and the selection ends exactly when top-1 reaches
    (1 - tol) * the starting top-1 (the layer whole, earlier layers restricted) or at `target` units;
    the whole data is batch and subset."""
    n = dict(model.named_modules())[site].weight.shape[0]
    start = evaluate(restricted(model, earlier), d)[1]
    for i, unit in enumerate(selection):
        chosen = selection[:i]
        options = {u: evaluate(restricted(model, {**earlier, site: chosen + [u]}), d) for u in range(n) if u not in chosen}
        lowest = min(loss for loss, _ in options.values())
        assert options[unit][0] <= lowest + 1e-6, (site, i, unit, options)
        stops = options[unit][1] >= (1 - tol) * start or i + 1 == target
        assert stops == (i + 1 == len(selection)), (site, i, options[unit], start)
    assert selection, site


def kept_rows(mask: torch.Tensor) -> list[int]:
    return mask.flatten(1).any(1).nonzero().flatten().tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "allocation, density, tol",
    [
        ("layerwise", 0.75, 0.5),  # net.1 stops after 3-5 units: the masks keep 9 rows, more than it selected
        ("erk", 0.5, 0.1),  # erk keeps 7 of net.1's 12 rows, not ceil(0.5 * 12) = 6
        ("uniform_plus", 0.5, 0.0),  # net.1 dense, net.3 at 0.29: fewer rows than ceil(0.5 * 9)
    ],
)
def test_each_layer_is_selected_in_the_network_the_masks_produce(seed, allocation, density, tol):
    d = data()
    model = trained(seed, d)
    ctx = context(d, allocation, density, tol, model)
    params = select_prunable(model, ctx.method)
    selected = greedy_select(model, params, ctx)
    masks = prune(model, 1 - density, ctx)
    kept = {site: kept_rows(masks[f"{site}.weight"]) for site in ("net.1", "net.3")}
    earlier: dict[str, list[int]] = {}
    for site in ("net.1", "net.3"):
        mask = masks[f"{site}.weight"]
        units = math.ceil(int(mask.sum()) / mask.shape[1])
        assert len(kept[site]) == units  # whole rows but at most one partial boundary row
        if units == mask.shape[0]:  # every unit kept: nothing is selected
            assert selected[site] == []
        else:
            assert_greedy(model, d, earlier, site, units, tol, selected[site])
            assert set(selected[site]) <= set(kept[site])  # every selected unit survives
        earlier[site] = kept[site]


def test_the_selection_reaches_the_units_the_allocation_keeps(monkeypatch):
    """uniform_plus at density 0.5 keeps 32 of net.3's 108 weights: 3 rows (ceil(32 / 12)), not
    ceil(0.5 * 9) = 5; where the stopping rule never holds it selects exactly 3."""
    d = data()
    model = trained(0, d)
    monkeypatch.setattr(greedy_forward, "_top1", lambda *args: 2.0)  # a starting top-1 no subnetwork reaches: no early stop
    ctx = context(d, "uniform_plus", 0.5, 0.0, model)
    selected = greedy_select(model, select_prunable(model, ctx.method), ctx)
    # uniform_plus by hand: N = 60 + 108 + 36 = 204, kept round(102); first layer dense (60);
    # the rest (net.3, net.5) at (102 - 60) / 144 = 0.2917 >= 0.2, so net.3 keeps 0.2917 * 108 = 31.5 -> 31 or 32
    assert len(selected["net.3"]) == 3 and selected["net.1"] == []


def test_a_nan_model_is_a_clear_error():
    d = data()
    model = trained(0, d)
    with torch.no_grad():
        model.net[5].bias[0] = float("nan")
    ctx = context(d, "layerwise", 0.5, 0.0, model)
    with pytest.raises(PruneCliError, match="greedy_forward.*net.1.*not finite"):
        greedy_select(model, select_prunable(model, ctx.method), ctx)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["method.allocation=global"], "method.allocation"),
        (["method.allocation=matched", "method.match_method=magnitude"], "method.allocation"),
        (["method.threshold_impl=shrinkbench_quantile"], "method.allocation.*with threshold_impl topk or lap_round"),
        (["method.threshold_impl=strict_kth"], "method.allocation.*with threshold_impl topk or lap_round"),
    ],
)
def test_allocations_whose_counts_come_from_the_scores_are_refused(overrides, key):
    with pytest.raises(ConfigError, match=key):
        validate_node(composed(["method=greedy_forward", *overrides]), "method")


@pytest.mark.parametrize(
    "overrides",
    [
        ["method.allocation=erk"],
        ["method.allocation=er"],
        ["method.allocation=uniform_plus"],
        ["method.allocation=layerwise"],
        ["method.allocation=region_bound"],  # widths, masks and options decide its counts (review of 2026-12-03)
        ["method.allocation=matched", "method.match_masks=masks.pt"],  # a file decides them
    ],
)
def test_allocations_whose_counts_do_not_depend_on_the_scores_pass(overrides):
    validate_node(composed(["method=greedy_forward", *overrides]), "method")


def test_under_earlier_masks_the_selection_ends_when_its_units_hold_the_count(monkeypatch):
    """Under an iterative schedule a unit pruned in part in an earlier round holds fewer live weights than a
    row: the selection stopped at ceil(k / row size) units while the masks kept one more row (review of
    2026-12-03). Now it ends where the selected units' live weights reach k, and the units held open for the
    next layer are those the masks keep (rows in the score's order until k live weights)."""
    d = data()
    model = trained(0, d)
    monkeypatch.setattr(greedy_forward, "_top1", lambda *args: 2.0)  # no early stop: the count decides
    g = torch.Generator().manual_seed(3)
    current = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    current["net.3.weight"] = torch.rand(9, 12, generator=g) < 0.6  # rows keep 3 to 10 of their 12 weights
    current["net.3.weight"][0] = False  # a dead unit
    ctx = dataclasses.replace(context(d, "layerwise", 0.3, 0.0, model), masks=current)
    with torch.no_grad():
        model.net[3].weight.mul_(current["net.3.weight"])  # pruned weights are zero, as the pruner leaves them
    selected = greedy_select(model, select_prunable(model, ctx.method), ctx)
    live = current["net.3.weight"].sum(1)
    k = round(0.3 * 108)  # layerwise topk: round(d n) of the layer's 108 weights
    held = [int(live[u]) for u in selected["net.3"]]
    assert sum(held[:-1]) < k <= sum(held), (held, k)
    masks = prune(model, 0.7, ctx)
    kept = set(kept_rows(masks["net.3.weight"]))
    norms = model.net[3].weight.detach().norm(dim=1)
    others = sorted((u for u in range(9) if u not in selected["net.3"]), key=lambda u: (-float(norms[u]), u))
    walk, total = [], 0
    for u in selected["net.3"] + others:  # my own walk: rows in order, live weights until k
        if total < k and int(live[u]) > 0:
            walk.append(u)
            total += int(live[u])
    assert kept == set(walk) and set(selected["net.3"]) <= kept
