"""Region counters against independent counts when pre-activations are small.

The MILP counter (method=exact):

Its margin f (how far a point is from every unit's zero, compared with the absolute `f_tol`) took
every unit but those 0 on the whole box: a fully pruned row with a bias of +-1e-7 is a constant unit
that pinned the margin to 1e-7 and the count to 0; now only units that can change sign enter it. The
expected counts come from the plane counter (polygon splitting, the whole 2-D box) and from the
distinct activation patterns on a grid of the box, computed here with the layers' own weights.

The segment counter (method=line) took its zero tolerance from the layer's largest |z|, so a unit
1e-13 times smaller never crossed it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prune_cli.analysis.regions.common import RegionsError, prepare
from prune_cli.analysis.regions.exact import count_exact
from prune_cli.analysis.regions.line import count_line
from prune_cli.analysis.regions.plane import count_plane, make_plane

BOX = (-2.0, 2.0)


def grid_patterns(net: nn.Sequential, n: int = 500) -> int:
    """Distinct on/off patterns of every ReLU at the centres of an n x n grid of BOX (a lower bound
    of the count; this grid finds every region of the networks below)."""
    lo, hi = BOX
    c = lo + (torch.arange(n, dtype=torch.float64) + 0.5) * (hi - lo) / n
    x = torch.cartesian_prod(c, c)
    bits = []
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                x = x @ m.weight.T + m.bias
            elif isinstance(m, nn.ReLU):
                bits.append(x > 0)
                x = x.clamp_min(0)
    return len(torch.unique(torch.cat(bits, dim=1), dim=0))


def two_layer_net(pruned_bias: float | None = None, scale: float = 1.0) -> nn.Sequential:
    """2-5-4-2; `pruned_bias`: the first unit's weights pruned, its bias set; `scale`: every
    pre-activation multiplied by it (layer 1's weights and bias and layer 2's bias), same regions."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        if pruned_bias is not None:
            net[0].weight[0] = 0
            net[0].bias[0] = pruned_bias
        net[0].weight.mul_(scale)
        net[0].bias.mul_(scale)
        net[2].bias.mul_(scale)
    return net


def independent_counts(net: nn.Sequential) -> tuple[int, int]:
    plane = make_plane(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64), "box", box=BOX)
    return count_plane(prepare(net), plane).count, grid_patterns(net)


@pytest.mark.parametrize("bias", [1e-7, -1e-7, 1e-5])
def test_exact_counts_every_region_beside_a_pruned_row_with_a_small_bias(bias):
    net = two_layer_net(pruned_bias=bias)
    assert independent_counts(net) == (13, 13)
    result = count_exact(prepare(net), (2,), BOX)
    assert result.count == 13  # was 0 for a bias of +-1e-7
    assert result.min_margin > 1e-6


@pytest.mark.parametrize("scale", [1.0, 1e5])
def test_exact_counts_every_region_at_scales_f_tol_resolves(scale):
    net = two_layer_net(scale=scale)
    assert independent_counts(net) == (24, 24)
    assert count_exact(prepare(net), (2,), BOX).count == 24


def test_exact_refuses_pre_activations_all_below_f_tol():
    """f_tol is absolute (a relative margin was tried and withdrawn, docs/regions.md): at 1e-9 every
    pre-activation is below it and the count was 0; it is an error naming the cause."""
    net = two_layer_net(scale=1e-9)
    assert independent_counts(net) == (24, 24)
    with pytest.raises(RegionsError, match="no region with margin above f_tol"):
        count_exact(prepare(net), (2,), BOX)


def test_exact_refuses_a_count_of_zero():
    """A layer-2 unit that cancels to its bias 1e-9 (weights [1, -1] on two coincident layer-1 units)
    is constant, but interval arithmetic cannot see it: its margin stays below f_tol everywhere. No
    box holds 0 regions; the counter says so instead of returning 0."""
    net = two_layer_net()
    with torch.no_grad():
        net[0].weight[1] = net[0].weight[0]
        net[0].bias[1] = net[0].bias[0]
        net[2].weight[0] = torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
        net[2].bias[0] = 1e-9
    with pytest.raises(RegionsError, match="no region with margin above f_tol"):
        count_exact(prepare(net), (2,), BOX)


def test_line_finds_the_kink_of_a_unit_far_smaller_than_its_layers_largest():
    """1-2-1 network: z1 = 1e7 x, z2 = 1e-6 x - 3e-7, kinks at x = 0 and x = 0.3 on [-1, 1]."""
    net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1e7], [1e-6]]))
        net[0].bias.copy_(torch.tensor([0.0, -3e-7]))
    x = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)[:, None]  # brute force: pattern changes
    with torch.no_grad():
        on = (x @ net[0].weight.T + net[0].bias) > 0
    assert 1 + int((on[1:] != on[:-1]).any(dim=1).sum()) == 3
    result = count_line(prepare(net), torch.tensor([-1.0]), torch.tensor([1.0]))
    assert result.count == 3  # was 2: the kink at x = 0.3 was missed
    assert result.breakpoints[1:-1].tolist() == pytest.approx([0.5, 0.65])  # t = (x + 1) / 2


def test_line_finds_the_argmax_switch_of_a_max_pool_window_of_tiny_values():
    """Conv1d(1, 1, 1) with weight 1e-14, MaxPool1d(2) on the segment (0, 1) -> (1, 0): the window's
    candidates 1e-14 t and 1e-14 (1 - t) switch at t = 0.5. Every candidate within 1e-12 x max(|top|, 1)
    of the top counted as tied at an interval's start, so the walk started on the steeper one and found
    no switch (1 region instead of 2)."""
    net = nn.Sequential(nn.Conv1d(1, 1, 1), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.fill_(1e-14)
        net[0].bias.zero_()
    a, b = torch.tensor([[0.0, 1.0]], dtype=torch.float64), torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None, None]  # brute force: argmax changes
    argmax = (1e-14 * (a + t * (b - a))).argmax(dim=2).flatten()
    assert 1 + int((argmax[1:] != argmax[:-1]).sum()) == 2
    result = count_line(prepare(net), a, b)
    assert result.count == 2
    assert result.breakpoints.tolist() == pytest.approx([0.0, 0.5, 1.0])
