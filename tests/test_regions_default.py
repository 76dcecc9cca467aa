"""Region counts in every run (issue 13): the default metrics count regions along a few segments,
and a model outside the counter's scope gets a "not counted: <reason>" row instead of a failure."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from helpers import Chain, TinyConvChain, TinyConvPool, composed, metric_context
from prune_cli.data.splits import DataSplits
from prune_cli.metrics.regions import nonlinear_units, regions


def _data(shape, n: int = 12, seed: int = 0) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.arange(n) % 3
    return DataSplits(x, y, x, y, x, y, num_classes=3)


def _node(**overrides):
    return OmegaConf.merge(composed().metrics.regions, overrides)  # the defaults composed once


def test_default_metrics_count_regions_on_a_small_budget():
    node = composed().metrics.regions
    assert node.enabled and node.method == "line" and node.segments == 4 and list(node.rank_models) == ["binomial"]
    full = composed("metrics=full").metrics.regions  # metrics=full keeps its larger budget
    assert full.segments == 10 and list(full.rank_models) == ["binomial", "montecarlo"]
    assert not composed("metrics.regions.enabled=false").metrics.regions.enabled


def test_unit_count_by_hand():
    """Hand count: 5 + 4 ReLU inputs; conv 2x5x5 -> max-pool 2x2 windows = 2*2*2 = 8 windows."""
    mlp = Chain(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    assert nonlinear_units(mlp.double(), torch.zeros(1, 3, dtype=torch.float64)) == 9
    assert nonlinear_units(TinyConvPool().double(), torch.zeros(1, 1, 5, 5, dtype=torch.float64)) == 8


def test_line_counts_match_brute_force_sampling_along_each_segment():
    """Each row's count against the number of distinct consecutive activation patterns at 20001
    points along the same segment (an independent computation of the same quantity)."""
    torch.manual_seed(1)
    model = Chain(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    data = _data((2,))
    rows = regions(metric_context(model, data), "dense", _node()).tables["regions.csv"]
    assert len(rows) == 4
    x = data.test_x.double()
    net = model.double()
    for row in rows:
        i, j = map(int, row["indices"].split("-"))
        t = torch.linspace(0, 1, 20001, dtype=torch.float64)[:, None]
        pts = (1 - t) * x[i] + t * x[j]
        h1 = net.net[0](pts)
        h2 = net.net[2](torch.relu(h1))
        pattern = torch.cat([h1 > 0, h2 > 0], dim=1)
        changes = int((pattern[1:] != pattern[:-1]).any(dim=1).sum())
        assert row["count"] == changes + 1
        assert row["counts"] == "activation_regions" and "bound_ln_expected_binomial" in row


@pytest.mark.parametrize(
    "model,shape,overrides,reason",
    [
        (TinyConvChain(), (4, 4, 4), {}, "no nn.ReLU or nn.MaxPool"),  # functional relu only
        (Chain(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)), (3,), {}, "module 'net.1' is Tanh"),
        (
            Chain(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3)),
            (3,),
            {"max_line_units": 4},
            "5 ReLU/max-pool units per input > metrics.regions.max_line_units=4",
        ),
    ],
)
def test_unsupported_models_get_a_not_counted_row(model, shape, overrides, reason):
    out = regions(metric_context(model, _data(shape)), "pruned", _node(**overrides))
    (row,) = out.tables["regions.csv"]
    assert row["counts"].startswith("not counted: ") and reason in row["counts"]
    assert row["count"] is None and out.scalars == []


def test_default_run_writes_region_counts_and_scalars(shared_run):
    results, run_dir = shared_run.results, shared_run.run_dir  # FAST with the default metrics
    table = pd.read_csv(run_dir / "regions.csv")
    assert sorted(table.phase.unique()) == ["dense", "finetuned", "pruned"]
    assert (table.groupby("phase").size() == 4).all() and (table.counts == "activation_regions").all()
    m = pd.read_csv(run_dir / "metrics.csv")
    assert {"regions_line_mean", "regions_line_bound_ln_expected_binomial"} <= set(m.metric)
    shared = pd.read_csv(results / "regions.csv")
    assert len(shared) == len(table)
