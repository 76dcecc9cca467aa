"""Exact region counters against independent computations (brute force, arrangement formula, MILP)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath
from omegaconf import OmegaConf
from torch import nn

from prune_cli.analysis.regions.common import RegionsError, Tracer, pattern, prepare
from prune_cli.analysis.regions.exact import count_exact
from prune_cli.analysis.regions.line import count_line
from prune_cli.analysis.regions.plane import area, count_plane, make_plane
from prune_cli.analysis.regions.sample import box_points, distinct_patterns, plane_points
from prune_cli.models.cnn import build_cnn1d
from prune_cli.models.mlp import MLP


def brute_force_line(net: nn.Module, a: torch.Tensor, b: torch.Tensor, samples: int = 2001, width: float = 1e-11) -> int:
    """Dense sampling, then bisection of every interval whose end patterns differ down to `width`.

    Activation regions are convex, so an interval whose ends share a pattern lies in one region;
    each remaining tiny interval holds one pattern change."""
    tracer = Tracer(net)

    def pats(t):
        x = a.double()[None] + t.reshape(-1, *[1] * a.dim()) * (b - a).double()[None]
        with torch.no_grad():
            return pattern(tracer, x)

    lo = torch.linspace(0, 1, samples, dtype=torch.float64)
    hi, lo = lo[1:], lo[:-1]
    plo, phi = pats(lo), pats(hi)
    while True:
        diff = (plo != phi).any(dim=1)
        lo, hi, plo, phi = lo[diff], hi[diff], plo[diff], phi[diff]
        if len(lo) == 0 or (hi - lo).max() < width:
            return 1 + len(lo)
        mid = (lo + hi) / 2
        pm = pats(mid)
        lo, hi = torch.cat([lo, mid]), torch.cat([mid, hi])
        plo, phi = torch.cat([plo, pm]), torch.cat([pm, phi])


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(4, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_line_equals_brute_force_on_random_mlps(seed):
    torch.manual_seed(seed)
    net = prepare(MLP(5, [12, 10, 8], 3))
    a, b = 3 * torch.randn(5), 3 * torch.randn(5)
    result = count_line(net, a, b)
    assert result.count > 5
    assert result.count == brute_force_line(net, a, b)


def test_line_equals_brute_force_on_small_cnns_with_max_pooling():
    torch.manual_seed(0)
    net = prepare(small_cnn())
    a, b = torch.randn(1, 8, 8), torch.randn(1, 8, 8)
    result = count_line(net, a, b)
    assert result.count > 10
    assert result.count == brute_force_line(net, a, b)
    cnn1d = prepare(build_cnn1d(OmegaConf.create({"channels": [3, 4], "kernel_size": 3, "hidden": 6}), (12,), 3))
    a, b = torch.randn(12), torch.randn(12)
    assert count_line(cnn1d, a, b).count == brute_force_line(cnn1d, a, b)


def test_line_one_hidden_layer_hand_worked():
    # 4 units with hyperplanes x = 0.5, 1.5, 2.5, 3.5 on the segment 0 -> 4: n + 1 = 5 regions
    lin = nn.Linear(1, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0], [1.0]]))
        lin.bias.copy_(torch.tensor([-0.5, 1.5, -5.0, -3.5]))
    net = prepare(nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 2)))
    result = count_line(net, torch.tensor([0.0]), torch.tensor([4.0]))
    assert result.count == 5
    assert torch.allclose(result.breakpoints, torch.tensor([0, 0.125, 0.375, 0.625, 0.875, 1], dtype=torch.float64))
    assert result.length == pytest.approx(4.0)


def test_line_rejects_hidden_nonlinearities():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.relu, self.b = nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8)

        def forward(self, x):
            return torch.tanh(self.b(self.relu(self.a(x))))

    torch.manual_seed(0)
    with pytest.raises(RegionsError, match="not piecewise affine"):
        count_line(prepare(Hidden()), 3 * torch.randn(2), 3 * torch.randn(2))
    with pytest.raises(RegionsError, match="Sigmoid"):
        prepare(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()))


def test_plane_one_layer_equals_arrangement_formula():
    torch.manual_seed(3)
    n = 7
    net = prepare(MLP(2, [n], 2))
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    radius = 6.0
    plane = make_plane(points, "square", radius=radius)
    w, b = net.net[1].weight.numpy(), net.net[1].bias.numpy()
    alpha, beta = w @ plane.basis.numpy(), w @ plane.center.numpy() + b  # lines in plane coordinates
    corners = np.array(list(itertools.product([-radius, radius], repeat=2)))
    values = corners @ alpha.T + beta
    assert ((values.max(0) > 0) & (values.min(0) < 0)).all(), "fixture: every line must cross the square"
    inside = 0
    for i, j in itertools.combinations(range(n), 2):
        u = np.linalg.solve(np.stack([alpha[i], alpha[j]]), -np.array([beta[i], beta[j]]))
        inside += bool(np.abs(u).max() < radius)
    result = count_plane(net, plane)
    assert result.count == 1 + n + inside
    assert sum(area(q) for q in result.polygons) == pytest.approx((2 * radius) ** 2)


def grid_lower_bound(net, plane, n: int) -> int:
    lo, hi = plane.domain.min(0), plane.domain.max(0)
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)), -1).reshape(-1, 2)
    g = g[MplPath(plane.domain).contains_points(g)]
    x = plane.center.reshape(1, -1) + torch.from_numpy(g) @ plane.basis.T
    with torch.no_grad():
        pats = pattern(Tracer(net), x.reshape(len(g), *plane.center.shape))
    return len(torch.unique(pats, dim=0))


# The CNN's plane is a smaller box around smaller inputs (half-width 0.3 instead of 2.5): about 1,500
# regions instead of 13,800, so the exact count costs a second instead of twelve, and the 300 x 300 grid
# is finer relative to the regions (it finds 88 % of them instead of 63 %: a tighter lower bound).
@pytest.mark.parametrize(
    "builder,shape,half", [(lambda: MLP(6, [10, 10, 10], 3), (6,), 2.5), (small_cnn, (1, 8, 8), 0.3)], ids=["mlp", "small_cnn"]
)
def test_plane_never_below_fine_grid_on_deeper_nets(builder, shape, half):
    torch.manual_seed(4)
    net = prepare(builder())
    plane = make_plane(torch.randn(3, *shape) * (half / 2.5), "box", box=(-half, half))
    result = count_plane(net, plane)
    grid = grid_lower_bound(net, plane, 300)
    assert grid > 10
    assert result.count >= grid
    assert sum(area(q) for q in result.polygons) == pytest.approx(area(plane.domain), rel=1e-9)


def test_exact_agrees_with_plane_on_two_dimensional_input():
    torch.manual_seed(1)
    net = prepare(MLP(2, [5, 5], 3))
    box = (-2.0, 2.0)
    plane = make_plane(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "box", box=box)
    exact = count_exact(net, (2,), box)
    assert exact.count == count_plane(net, plane).count
    assert exact.volume == pytest.approx(16.0)
    # sampling is a lower bound of the same count, and dense sampling gets close on this small net
    gen = torch.Generator().manual_seed(0)
    sampled = distinct_patterns(net, box_points(20000, (2,), box, gen))
    assert exact.count - 3 <= sampled <= exact.count
    assert distinct_patterns(net, plane_points(20000, plane, gen)) <= exact.count
    with pytest.raises(RegionsError, match="max_units=4"):
        count_exact(net, (2,), box, max_units=4)
    with pytest.raises(RegionsError, match="max_regions=3"):
        count_exact(net, (2,), box, max_regions=3)
    with pytest.raises(RegionsError, match="method=exact"):
        count_exact(prepare(small_cnn()), (1, 8, 8), box)


def test_exact_refuses_a_residual_network_and_an_over_budget_layer_with_a_reason():
    """A CIFAR ResNet with a stride-2 block: the parameter-free shortcut was taken as the next link of
    the chain and numpy's matmul failed (ValueError: the run stopped after training instead of writing a
    "not counted" row). A layer wider than max_units is refused before its dense [out, in] matrix is
    built (a 32x32 input made ~2 GB matrices before the budget was checked)."""
    from prune_cli.models.resnet import CifarResNet

    torch.manual_seed(0)
    resnet = prepare(CifarResNet(8, 3, 3).eval())
    with pytest.raises(RegionsError, match="plain chain"):
        count_exact(resnet, (3, 2, 2), (-1.0, 1.0), max_units=10_000)
    wide = prepare(nn.Sequential(nn.Flatten(), nn.Linear(4, 100), nn.ReLU(), nn.Linear(100, 3)))
    built = []
    real_eye = torch.eye
    try:
        torch.eye = lambda n, *a, **k: built.append(n) or real_eye(n, *a, **k)
        with pytest.raises(RegionsError, match="max_units=64"):
            count_exact(wide, (4,), (-1.0, 1.0), max_units=64)
    finally:
        torch.eye = real_eye
    assert built == []  # refused before any layer's matrix was built


@pytest.mark.parametrize("case", ["dead_unit", "sparse_no_bias"])
def test_exact_counts_regions_where_a_unit_is_identically_zero(case):
    """Without biases, a unit whose weights are all pruned is 0 everywhere, and a second-layer unit
    whose nonzero inputs all come from units that are off is 0 on a whole region: neither splits a
    region. The MILP's margin min |z| over every unit was then 0 and the region was not counted: a
    pruned channel gave count 0 (a box holds at least one region), ntk_mlp's sparse layers 7 of 12.
    Checked against the plane counter (polygon splitting) on the same 2-D box."""
    torch.manual_seed(3)
    net = MLP(2, [6, 6], 3, bias=False)
    with torch.no_grad():
        if case == "dead_unit":  # a removed unit: its row and the next layer's column
            net.net[1].weight[2] = 0
            net.net[3].weight[:, 2] = 0
        else:  # each second-layer unit reads two first-layer units: off together on whole wedges
            mask = torch.zeros(6, 6)
            for i in range(6):
                mask[i, [i, (i + 1) % 6]] = 1
            net.net[3].weight.mul_(mask)
    net = prepare(net)
    box = (-2.0, 2.0)
    plane = make_plane(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "box", box=box)
    expected = count_plane(net, plane).count
    assert expected > 1
    assert count_exact(net, (2,), box).count == expected
