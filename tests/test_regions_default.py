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


# ----------------------------------------------------------------------------- the split's size (2026-12-04)
# A split with fewer inputs than the method draws at once crashed after dense training (plane: "shape
# '[3, -1]' is invalid", line: "index 1 is out of bounds"). Sizes below are worked by hand: synthetic's test
# split is test_samples_per_class x num_classes; with class_counts [20, 5] the validation split holds
# round(f x 20) + round(f x 5), half to even: f = 0.05 -> 1 + 0, f = 0.1 -> 2 + 0.
TEST_2 = ["dataset=synthetic", "dataset.num_classes=2", "dataset.test_samples_per_class=1"]
TEST_3 = ["dataset=synthetic", "dataset.num_classes=3", "dataset.test_samples_per_class=1"]
VAL = ["dataset=synthetic", "dataset.num_classes=2", "dataset.imbalance=counts", "dataset.class_counts=[20,5]"]
VAL_1, VAL_2 = [*VAL, "dataset.val_fraction=0.05"], [*VAL, "dataset.val_fraction=0.1"]
PAIRS = ["metrics.regions.method=line"]
DIRECTION = ["metrics.regions.segment_kind=direction"]
FIXED_LENGTH = [*DIRECTION, "metrics.regions.segment_length=0.5"]
PLANE = ["metrics.regions.method=plane"]
SQUARE = ["metrics.regions.method=sample", "metrics.regions.domain=square"]


@pytest.mark.parametrize(
    "data,options,need",
    [
        (VAL_1, [*PAIRS, "metrics.regions.split=val"], 2),  # a segment joins two distinct inputs
        (TEST_2, DIRECTION, 3),  # the default length: the median of [[0, d], [d, 0]] is 0
        (TEST_2, PLANE, 3),  # a plane through three inputs
        (TEST_2, SQUARE, 3),
        (
            ["dataset=synthetic", "dataset.num_classes=2", "dataset.samples_per_class=1", "train.batch_size=2"],
            [*PLANE, "metrics.regions.split=train"],
            3,
        ),
        (  # data pruning keeps round(0.5 x 4) = 2 of the 4 training examples
            ["dataset=synthetic", "dataset.num_classes=2", "dataset.samples_per_class=2", "data_pruning=random", "train.batch_size=2"],
            [*PLANE, "metrics.regions.split=train"],
            3,
        ),
    ],
)
def test_a_split_smaller_than_the_method_draws_is_refused_before_the_run(data, options, need):
    from prune_cli.core.errors import ConfigError
    from tests.helpers import validated

    with pytest.raises(ConfigError) as err:
        validated(*data, *options)
    assert err.value.key == "metrics.regions.split"
    assert f"at least {need} examples" in str(err.value)


@pytest.mark.parametrize(
    "data,options",
    [
        (VAL_2, [*PAIRS, "metrics.regions.split=val"]),  # exactly the 2 a segment needs
        (VAL_1, [*FIXED_LENGTH, "metrics.regions.split=val"]),  # a direction segment with its own length: one input
        (TEST_3, DIRECTION),
        (TEST_3, PLANE),
        (TEST_3, SQUARE),
        (TEST_2, ["metrics.regions.method=sample"]),  # the input box: no input drawn from the split
    ],
)
def test_a_split_of_exactly_what_the_method_draws_is_accepted(data, options):
    from tests.helpers import validated

    validated(*data, *options)


def test_the_loaded_sizes_are_checked_where_the_declared_ones_leave_them_open():
    """A dataset that declares no test size is checked once loaded (before dense training): the sizes
    passed in are the loaded splits' (train, val, per class, test)."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.run.prevalidate import check_data_sizes

    cfg = composed(*TEST_3, *PLANE)
    check_data_sizes(cfg, (120, 0, [60, 60], 3))
    with pytest.raises(ConfigError) as err:
        check_data_sizes(cfg, (120, 0, [60, 60], 2))
    assert err.value.key == "metrics.regions.split" and "holds 2" in str(err.value)


@pytest.mark.parametrize(
    "overrides,n,need",
    [
        ({"method": "line"}, 1, 2),
        ({"method": "line", "segment_kind": "direction"}, 2, 3),
        ({"method": "plane", "plot": False}, 2, 3),
        ({"method": "sample", "domain": "square", "samples": 50}, 2, 3),
    ],
)
def test_the_metric_writes_not_counted_rather_than_crash_on_too_few_inputs(overrides, n, need):
    """Whatever reaches the metric with too few inputs gets a "not counted" row; one more input counts."""
    model = Chain(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
    out = regions(metric_context(model, _data((3,), n=n)), "dense", _node(**overrides))
    (row,) = out.tables["regions.csv"]
    assert row["counts"].startswith(f"not counted: the test split has {n} example(s), fewer than {need}: ")
    assert row["count"] is None
    rows = regions(metric_context(model, _data((3,), n=need)), "dense", _node(**overrides)).tables["regions.csv"]
    assert all(r["count"] >= 1 for r in rows)


def test_a_too_small_split_is_refused_before_any_work_and_the_exact_size_runs(tmp_path, finished_results):
    from tests.conftest import FAST, run_cli
    from tests.helpers import refused_before_any_work

    fast = [a for a in FAST if not a.startswith(("dataset.test_samples_per_class", "model.widths"))]
    args = [*fast, "model.widths=[8,8]", "sparsity=0.5", "dataset.test_samples_per_class=1", *PLANE, "metrics.regions.plot=false"]
    refused_before_any_work([*args, "dataset.num_classes=2"], finished_results, "metrics.regions.split", "holds 2")
    run_cli([*args, "dataset.num_classes=3"], tmp_path / "ok")
    table = pd.read_csv(next((tmp_path / "ok" / "runs").iterdir()) / "regions.csv")
    assert list(table.phase) == ["dense", "pruned", "finetuned"] and (table.counts == "activation_regions").all()


@pytest.mark.parametrize("method", ["plane", "sample"])
def test_the_square_radius_column_records_the_radius_used(method):
    """domain=square without a radius: R = 1.5 x the farthest of the plane's three inputs from their
    centroid (docs/regions.md), recomputed here from the row's indices; the plane's area is (2R)^2. The
    column was empty (it copied the unset option); a given radius is recorded as given."""
    model = Chain(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
    data = _data((3,))
    options = {"method": method, "domain": "square", "plot": False, "samples": 50}
    (row,) = regions(metric_context(model, data), "dense", _node(**options)).tables["regions.csv"]
    points = data.test_x.double()[[int(i) for i in row["indices"].split("-")]].numpy()
    centroid = points.sum(axis=0) / 3
    radius = 1.5 * max(float(((q - centroid) ** 2).sum() ** 0.5) for q in points)
    assert row["square_radius"] == pytest.approx(radius, rel=1e-12)
    if method == "plane":
        assert row["measure"] == pytest.approx((2 * radius) ** 2, rel=1e-9)
    (given,) = regions(metric_context(model, data), "dense", _node(**options, square_radius=0.7)).tables["regions.csv"]
    assert given["square_radius"] == 0.7
