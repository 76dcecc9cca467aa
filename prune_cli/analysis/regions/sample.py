"""Distinct activation patterns over N random points: a LOWER bound on the regions they meet.

Thin regions are missed by sampling, so this is never reported as a count of regions."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .common import Tracer, pattern


def distinct_patterns(net: nn.Module, points: torch.Tensor, batch: int = 4096) -> int:
    """Number of distinct activation patterns among the rows of `points` (input-shaped)."""
    tracer = Tracer(net)
    seen: set[bytes] = set()
    for s in range(0, len(points), batch):
        pat = pattern(tracer, points[s : s + batch]).cpu().numpy().astype(np.int16)
        seen.update(row.tobytes() for row in pat)
    return len(seen)


def box_points(n: int, shape: tuple, box: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    lo, hi = box
    return lo + (hi - lo) * torch.rand(n, *shape, generator=generator, dtype=torch.float64)


def plane_points(n: int, plane, generator: torch.Generator) -> torch.Tensor:
    """Uniform points of the plane's domain polygon (rejection from its bounding rectangle)."""
    from matplotlib.path import Path

    lo, hi = plane.domain.min(axis=0), plane.domain.max(axis=0)
    path, kept = Path(plane.domain), []
    total = 0
    while total < n:
        u = lo + (hi - lo) * torch.rand(2 * n, 2, generator=generator, dtype=torch.float64).numpy()
        u = u[path.contains_points(u)]
        kept.append(u)
        total += len(u)
    u = torch.from_numpy(np.concatenate(kept)[:n])
    x = plane.center.reshape(1, -1) + u @ plane.basis.T
    return x.reshape(n, *plane.center.shape)
