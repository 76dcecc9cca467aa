"""Greedy forward selection against a brute-force re-enumeration on a tiny network."""

from __future__ import annotations

import dataclasses

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from conftest import FAST, run_cli
from prune_cli.data.splits import DataSplits
from prune_cli.core.errors import ConfigError
from prune_cli.pruning.pruner import PruneContext, prune, select_prunable
from prune_cli.pruning.scores.greedy_forward import (
    GreedyForwardConfig,
    gate_sites,
    greedy_forward_scores,
    greedy_select,
)
from prune_cli.run.prevalidate import validate_node
from tests.helpers import TwoLayer


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 2, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return DataSplits(x, y, x[:3], y[:3], x[:3], y[:3], num_classes=3)


def ctx_for(d, density, **kw):
    opts = dict(num_evaluate=100, batch_size=len(d.train_y), subset_stride=1, top1_tol=0.0, precheck_tol=0.0)
    opts.update(kw)
    m = OmegaConf.structured(GreedyForwardConfig(name="t", score="greedy_forward", allocation="layerwise", **opts))
    return m, PruneContext(method=m, generator=torch.Generator().manual_seed(0), data=d, density=density)


def subnet_eval(model, d, units):
    """Loss and top-1 of the network whose hidden rows outside `units` are zeroed (biases kept)."""
    net = copy.deepcopy(model)
    with torch.no_grad():
        drop = [u for u in range(6) if u not in units]
        net.net[0].weight[drop] = 0
        out = net(d.train_x)
    return float(F.cross_entropy(out, d.train_y)), float((out.argmax(1) == d.train_y).float().mean())


def brute_force_greedy(model, d, target):
    with torch.no_grad():
        init = float((model(d.train_x).argmax(1) == d.train_y).float().mean())
    chosen = []
    while len(chosen) < target:
        options = {u: subnet_eval(model, d, chosen + [u]) for u in range(6) if u not in chosen}
        best = min(options, key=lambda u: options[u][0])
        chosen.append(best)
        if options[best][1] >= init:  # top1_tol = precheck_tol = 0, subset = batch = all data
            break
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_selection_matches_brute_force(seed):
    model, d = TwoLayer(2, 6, 3, seed), data()
    m, ctx = ctx_for(d, density=0.5)
    selected = greedy_select(model, select_prunable(model, m), ctx)
    assert selected == {"net.0": brute_force_greedy(model, d, target=3)}


def test_scores_make_selected_rows_survive_whole():
    model, d = TwoLayer(2, 6, 3, 5), data()
    m, ctx = ctx_for(d, density=0.5)
    expected = brute_force_greedy(model, d, target=3)
    norms = model.net[0].weight.detach().norm(dim=1)
    rest = sorted((u for u in range(6) if u not in expected), key=lambda u: -float(norms[u]))
    order = expected + rest
    scores = greedy_forward_scores(model, select_prunable(model, m), ctx)
    rows = scores["net.0.weight"]
    assert torch.argsort(rows.min(1).values, descending=True).tolist() == order
    torch.testing.assert_close(scores["net.2.weight"], model.net[2].weight.detach().abs())
    masks = prune(model, 0.5, ctx)  # 6 of the 12 weights (6 rows of 2): the three best rows
    kept_rows = masks["net.0.weight"].all(1).nonzero().flatten().tolist()
    assert sorted(kept_rows) == sorted(order[:3]) and int(masks["net.0.weight"].sum()) == 6


def test_loose_tolerance_stops_after_one_unit():
    model, d = TwoLayer(2, 6, 3, 0), data()
    m, ctx = ctx_for(d, density=0.5, top1_tol=0.99, precheck_tol=0.99)  # at 1.0 every unit is kept: nothing selected
    selected = greedy_select(model, select_prunable(model, m), ctx)
    assert len(selected["net.0"]) == 1


def test_block_hidden_sites_of_a_resnet_are_the_first_convs_of_blocks():
    from prune_cli.models.resnet import CifarResNet

    model = CifarResNet(20, 3, 10)
    x = torch.randn(4, 3, 8, 8)
    d = DataSplits(x, torch.zeros(4, dtype=torch.long), x, x[:, 0, 0, 0].long(), x, x[:, 0, 0, 0].long(), 10)
    m, ctx = ctx_for(d, density=0.5)
    sites = gate_sites(model, select_prunable(model, m), ctx)
    assert sites == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)]
    m.gate_sites = "all"
    ctx = dataclasses.replace(ctx, method=m)  # the context holds its own (frozen) copy of the options
    assert len(gate_sites(model, select_prunable(model, m), ctx)) == 19  # every conv, not the fc


def test_bad_options_are_config_errors():
    def cfg(**kw):
        return OmegaConf.create(
            {"method": OmegaConf.structured(GreedyForwardConfig(name="t", score="greedy_forward", allocation="layerwise", **kw))}
        )

    with pytest.raises(ConfigError, match="method.top1_tol"):
        validate_node(cfg(top1_tol=1.5), "method")
    with pytest.raises(ConfigError, match="method.gate_sites"):
        validate_node(cfg(gate_sites="everywhere"), "method")
    bad = cfg()
    bad.method.allocation = "global"
    with pytest.raises(ConfigError, match="method.allocation"):
        validate_node(bad, "method")


def test_cli_greedy_forward_reaches_exact_sparsity(tmp_path):
    results = tmp_path / "r"
    run_cli([*FAST, "method=greedy_forward", "sparsity=0.75", "method.subset_stride=10"], results)
    df = pd.read_csv(results / "runs.csv")
    got = df[(df.metric == "sparsity_prunable") & (df.phase == "finetuned")]
    assert len(got) == 1 and abs(float(got.value.iloc[0]) - 0.75) < 1e-12


@pytest.mark.slow
def test_selected_subnetwork_loss_trends_down_with_width():
    """Spec 7.5 target: on a trained net, held-out loss at n_final < at n_final/4 < at 1 unit."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 2
    y = torch.arange(4).repeat_interleave(150)
    x = centers[y] + torch.randn(600, 8, generator=g)
    perm = torch.randperm(600, generator=g)
    x, y = x[perm], y[perm]
    d = DataSplits(x[:400], y[:400], x[400:], y[400:], x[400:], y[400:], num_classes=4)

    class Net(TwoLayer):
        def __init__(self):
            super(TwoLayer, self).__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
            self.classifier = "net.2"

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(d.train_x), d.train_y).backward()
        opt.step()
    m, ctx = ctx_for(d, density=0.25, batch_size=128, num_evaluate=64, subset_stride=1, top1_tol=0.0)
    order = greedy_select(model, select_prunable(model, m), ctx)["net.0"]

    def held_out_loss(units):
        net = copy.deepcopy(model)
        with torch.no_grad():
            drop = [u for u in range(64) if u not in units]
            net.net[0].weight[drop] = 0
            return float(F.cross_entropy(net(d.val_x), d.val_y))

    n = len(order)
    assert n >= 4
    assert held_out_loss(order) < held_out_loss(order[: n // 4]) < held_out_loss(order[:1])
