"""The plane counter with tied max-pool candidates, against independent computations (docs/regions.md).

Two candidates of one max-pool window that are the same affine function on a polygon (here: conv
outputs that see only padding, so each is the constant relu(bias)) once each got the same cell,
so polygons overlapped and were counted twice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prune_cli.analysis.regions.common import prepare
from prune_cli.analysis.regions.plane import area, count_plane, make_plane

TIED = np.array([[1.0, -0.7, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # output row 0 sees only padding
BIAS = 0.3


def conv_net(kernel: np.ndarray) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(kernel).reshape(1, 1, 3, 3))
        net[0].bias.fill_(BIAS)
    return net


def own_patterns(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Activation patterns of conv_net on (N, 4, 4) inputs, computed here in numpy (not with the
    package's pattern()): 16 ReLU signs and the first argmax of each 2x2 window, packed in one int."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    z = BIAS + sum(kernel[a, b] * xp[:, a : a + 4, b : b + 4] for a in range(3) for b in range(3))
    h = np.maximum(z, 0.0)
    win = h.reshape(-1, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 4)  # (N, window, candidate)
    signs = ((z > 0).reshape(len(x), 16).astype(np.int64) << np.arange(16)).sum(axis=1)
    return signs + (win.argmax(axis=2).astype(np.int64) << (16 + 2 * np.arange(4))).sum(axis=1)


def grid_count(plane, n: int, kernel: np.ndarray) -> int:
    """Distinct patterns on an n x n grid over the (convex, counter-clockwise) domain."""
    dom = plane.domain
    lo, hi = dom.min(axis=0), dom.max(axis=0)
    xs = np.linspace(lo[0], hi[0], n)
    keys = []
    for y in np.linspace(lo[1], hi[1], n):
        g = np.stack([xs, np.full(n, y)], axis=1)
        edge = np.roll(dom, -1, axis=0) - dom
        cross = edge[None, :, 0] * (g[:, None, 1] - dom[None, :, 1]) - edge[None, :, 1] * (g[:, None, 0] - dom[None, :, 0])
        g = g[(cross >= 0).all(axis=1)]
        x = plane.center.numpy().reshape(1, -1) + g @ plane.basis.numpy().T
        keys.append(np.unique(own_patterns(x.reshape(-1, 4, 4), kernel)))
    return len(np.unique(np.concatenate(keys)))


def the_plane():
    points = torch.randn(3, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return make_plane(points.reshape(3, 1, 4, 4), "box", box=(-3, 3))


def test_tied_pool_candidates_give_no_overlapping_polygons():
    plane = the_plane()
    result = count_plane(prepare(conv_net(TIED)), plane)
    # the polygons tile the domain (they overlapped: areas summed to 81.76 of 78.39, 161 polygons)
    assert sum(area(q) for q in result.polygons) == pytest.approx(area(plane.domain), rel=1e-9)
    # every polygon has its own pattern (at its centroid, by the forward pass above)
    centroids = np.stack([q.mean(axis=0) for q in result.polygons])
    x = plane.center.numpy().reshape(1, -1) + centroids @ plane.basis.numpy().T
    assert len(np.unique(own_patterns(x.reshape(-1, 4, 4), TIED))) == result.count
    # and a fine grid finds them all (1500 x 1500 points: 122 patterns)
    assert result.count == grid_count(plane, 1500, TIED) == 122


def test_count_without_ties_is_unchanged():
    """A generic kernel has no tied candidates: the count is the one the counter gave before ties
    were merged, and the grid's."""
    kernel = np.random.default_rng(3).normal(size=(3, 3))
    plane = the_plane()
    result = count_plane(prepare(conv_net(kernel)), plane)
    assert sum(area(q) for q in result.polygons) == pytest.approx(area(plane.domain), rel=1e-9)
    assert result.count == grid_count(plane, 1000, kernel) == 153
