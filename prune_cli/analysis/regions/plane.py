"""Exact count of activation regions in a 2-D plane slice by splitting convex polygons (docs/regions.md).

The plane is x(u) = c + B u (c = centroid of three inputs, B = orthonormal basis of their span).
Layer by layer (each nn.ReLU / nn.MaxPool module in forward order), every current polygon has a
constant pattern for the earlier nonlinearities, so this nonlinearity's input is affine in u on
it; its map is read exactly with forward-mode AD (jvp along the two plane directions) at an
interior point, which works for any supported module stack (MLP or CNN). ReLU units split a
polygon along their zero line; a max-pool window splits it into the cells where each candidate is
the maximum, candidates that are the same affine function on the polygon (within `tol`) counting
as one, the lowest index, as the pattern's first argmax does. The final polygons have pairwise
distinct patterns, so their number is the number of full-dimensional activation regions meeting
the domain.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .common import RegionsError, Tracer, pool_windows


@dataclass
class Plane:
    center: torch.Tensor  # c, input-shaped
    basis: torch.Tensor  # (n0, 2), orthonormal columns
    domain: np.ndarray  # convex polygon in u coordinates, (k, 2) counter-clockwise
    square_radius: float | None = None  # domain 'square': the R of [-R, R]^2 used (given or computed)


@dataclass
class PlaneCount:
    count: int
    area: float
    polygons: list = field(default_factory=list)  # final convex polygons (u coordinates)


def area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def clip(poly: np.ndarray, alpha: np.ndarray, beta: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of the convex polygon where alpha . u + beta >= 0."""
    v = poly @ alpha + beta
    out = []
    k = len(poly)
    for i in range(k):
        j = (i + 1) % k
        if v[i] >= 0:
            out.append(poly[i])
        if (v[i] > 0 > v[j]) or (v[i] < 0 < v[j]):
            out.append(poly[i] + (poly[j] - poly[i]) * (v[i] / (v[i] - v[j])))
    return np.array(out).reshape(-1, 2)


def _split(q: np.ndarray, alpha: np.ndarray, beta: float, tol: float, eps_area: float) -> list[np.ndarray]:
    v = q @ alpha + beta
    scale = np.abs(v).max()
    if not (v.max() > tol * scale and v.min() < -tol * scale):
        return [q]
    p1, p2 = clip(q, alpha, beta), clip(q, -alpha, -beta)
    if len(p1) < 3 or len(p2) < 3 or area(p1) < eps_area or area(p2) < eps_area:
        return [q]  # a sliver below eps_area: not counted as a region of its own
    return [p1, p2]


def make_plane(points: torch.Tensor, domain: str, box: tuple[float, float] | None = None, radius: float | None = None) -> Plane:
    """Plane through three inputs; domain 'box' = {lo <= x <= hi} in the plane, 'square' = [-R, R]^2."""
    p = points.detach().double().cpu()
    flat = p.reshape(3, -1)
    c = flat.mean(0)
    basis = scipy.linalg.orth(np.stack([(flat[1] - flat[0]).numpy(), (flat[2] - flat[0]).numpy()], axis=1))
    if basis.shape[1] != 2:
        raise RegionsError("the three points of a plane are collinear; choose other inputs or another seed")
    if domain == "square":
        r = radius if radius is not None else 1.5 * float((flat - c).norm(dim=1).max())
        poly = np.array([[-r, -r], [r, -r], [r, r], [-r, r]], dtype=np.float64)
    elif domain == "box":
        lo, hi = box
        cn = c.numpy()
        corner = np.maximum(np.abs(cn - lo), np.abs(cn - hi))
        r = float(np.linalg.norm(corner)) + 1.0
        poly = np.array([[-r, -r], [r, -r], [r, r], [-r, r]], dtype=np.float64)
        for k in np.nonzero(np.abs(basis).max(axis=1) > 1e-14)[0]:
            poly = clip(poly, basis[k], cn[k] - lo)  # c_k + B_k u >= lo
            poly = clip(poly, -basis[k], hi - cn[k])  # c_k + B_k u <= hi
            if len(poly) < 3:
                break
        flat_rows = np.abs(basis).max(axis=1) <= 1e-14
        if len(poly) < 3 or ((cn[flat_rows] < lo) | (cn[flat_rows] > hi)).any():
            raise RegionsError(f"the plane does not meet the box [{lo}, {hi}]; the box must contain the inputs")
    else:
        raise ValueError(domain)
    radius_used = r if domain == "square" else None  # regions.csv records it (a computed R was left empty)
    return Plane(center=c.reshape(p.shape[1:]), basis=torch.from_numpy(basis), domain=poly, square_radius=radius_used)


def _make_dual(primal: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """fwAD.make_dual. Its first call in a process loads PyTorch's forward-AD decompositions, which
    script functions with `torch.jit.script` and so print PyTorch's own deprecation FutureWarning
    (torch 2.14): a warning about PyTorch internals that a user of prune-cli can do nothing about,
    so it is silenced here and nowhere else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        return fwAD.make_dual(primal, tangent)


def _affine_maps(tracer: Tracer, plane: Plane, interior: np.ndarray, layer: int, batch: int):
    """For each interior point: the nonlinearity's input value (P, U) and its u-Jacobian (P, U, 2)."""
    device = next(tracer.net.parameters()).device
    c = plane.center.to(device)
    b = plane.basis.to(device)
    shape = c.shape
    values, jac, module, out_shape = [], [], None, None
    for s in range(0, len(interior), batch):
        u = torch.from_numpy(interior[s : s + batch]).to(device)
        n = len(u)
        x = (c.reshape(1, -1) + u @ b.T).reshape(n, *shape)
        primal = torch.cat([x, x])
        tangent = torch.cat([b[:, 0].reshape(1, *shape).expand(n, *shape), b[:, 1].reshape(1, *shape).expand(n, *shape)])
        with fwAD.dual_level():
            module, inp, out = tracer.run(_make_dual(primal, tangent.contiguous()), upto=layer)[layer]
            p, t = fwAD.unpack_dual(inp)
            out_shape = out.shape
            if isinstance(module, nn.ReLU):
                values.append(p[:n].reshape(n, -1))
                jac.append(torch.stack([t[:n].reshape(n, -1), t[n:].reshape(n, -1)], dim=-1))
            else:
                values.append(pool_windows(module, p[:n], out_shape))
                jac.append(
                    torch.stack(
                        [pool_windows(module, t[:n], out_shape, pad=0.0), pool_windows(module, t[n:], out_shape, pad=0.0)], dim=-1
                    )
                )
    return module, torch.cat(values).cpu().numpy(), torch.cat(jac).cpu().numpy()


def _split_all(pieces: list[np.ndarray], alphas: np.ndarray, betas: np.ndarray, tol: float, eps_area: float) -> list[np.ndarray]:
    """The arrangement of the lines alpha_i . u + beta_i = 0 inside convex pieces.

    Divide and conquer: a piece is tested against the lines that cut its parent only, split by
    the first one that cuts it, and each half continues with the remaining lines; small pieces
    meet few lines, so the work stays near (regions x lines that cut them)."""
    out = []
    stack = [(q, np.arange(len(alphas))) for q in pieces]
    while stack:
        q, idx = stack.pop()
        if len(idx):
            v = q @ alphas[idx].T + betas[idx]  # (vertices, lines)
            vmax, vmin = v.max(axis=0), v.min(axis=0)
            scale = np.maximum(vmax, -vmin)
            idx = idx[(vmax > tol * scale) & (vmin < -tol * scale)]
        if len(idx) == 0:
            out.append(q)
            continue
        halves = _split(q, alphas[idx[0]], betas[idx[0]], tol, eps_area)
        stack += [(h, idx[1:]) for h in halves]
    return out


def _relu_split(poly, value, jac, u0, tol, eps_area) -> list[np.ndarray]:
    offset = value - jac @ u0  # z(u) = jac u + offset
    return _split_all([poly], jac, offset, tol, eps_area)


def _unstable(q: np.ndarray, jac: np.ndarray, offset: np.ndarray, finite: np.ndarray, tol: float) -> np.ndarray:
    """Windows (indices into jac) whose argmax is not the same candidate on all of q."""
    at = np.einsum("wkd,vd->vwk", jac, q) + offset[None]  # (vertices, windows, K), -inf for padding
    top = at.max(axis=2, keepdims=True)
    scale = np.abs(np.where(finite[None], at, 0.0)).max(axis=(0, 2), keepdims=True).clip(min=1e-300)
    dominant = (at >= top - tol * scale).all(axis=0)  # (windows, K)
    return np.nonzero(~dominant.any(axis=1))[0]


def _distinct(q: np.ndarray, jac: np.ndarray, offset: np.ndarray, cand: np.ndarray, tol: float) -> np.ndarray:
    """The candidates of one window left after dropping each whose affine map on q equals an earlier
    kept candidate's (vertex values within tol x max|value|), so tied candidates are one candidate.

    Two candidates that are the same function on q (e.g. two outputs that see only padding, or a
    pruned kernel's bias) would otherwise get the same cell {i >= j for all j} each, overlapping
    polygons counted twice. The lowest index is kept, as `pattern()` takes the first argmax
    (docs/regions.md)."""
    at = q @ jac[cand].T + offset[cand]  # (vertices, candidates)
    scale = max(float(np.abs(at).max()), 1e-300)
    kept: list[int] = []
    for n in range(len(cand)):
        if all(np.abs(at[:, n] - at[:, m]).max() > tol * scale for m in kept):
            kept.append(n)
    return cand[kept]


def _pool_split(poly, value, jac, u0, tol, eps_area) -> list[np.ndarray]:
    """Split by max-pool windows: a window whose argmax varies cuts q into its candidates' cells.

    Candidates that are the same affine function on q count once (`_distinct`), so the cells do not
    overlap and every final polygon has its own pattern."""
    c_, k_, l_ = value.shape
    val = value.transpose(0, 2, 1).reshape(-1, k_)  # (windows, K)
    jac = jac.transpose(0, 2, 1, 3).reshape(-1, k_, 2)
    finite = np.isfinite(val)
    offset = np.where(finite, val - jac @ u0, -np.inf)
    out = []
    stack = [(poly, np.arange(len(val)))]
    while stack:
        q, idx = stack.pop()
        if len(idx):
            idx = idx[_unstable(q, jac[idx], offset[idx], finite[idx], tol)]
        if len(idx) == 0:
            out.append(q)
            continue
        w = idx[0]
        cand = _distinct(q, jac[w], offset[w], np.nonzero(finite[w])[0], tol)
        cells = []
        for i in cand:
            cell = q
            for j in cand:
                if j != i and len(cell) >= 3:
                    cell = clip(cell, jac[w, i] - jac[w, j], offset[w, i] - offset[w, j])
            if len(cell) >= 3 and area(cell) >= eps_area:
                cells.append(cell)
        stack += [(cell, idx[1:]) for cell in (cells if len(cells) > 1 else [q])]
    return out


def count_plane(
    net: nn.Module, plane: Plane, tol: float = 1e-9, eps_area: float = 1e-12, batch: int = 1024, max_regions: int | None = None
) -> PlaneCount:
    """Activation regions of `net` (a prepared float64 eval copy) meeting the plane's domain."""
    tracer = Tracer(net)
    n_layers = tracer.count(plane.center.unsqueeze(0).to(next(net.parameters()).device))
    polys = [plane.domain]
    for layer in range(n_layers):
        interior = np.stack([q.mean(axis=0) for q in polys])
        per_point = max(1, 4_000_000 // max(1, _units(tracer, plane, layer)))
        module, values, jac = _affine_maps(tracer, plane, interior, layer, min(batch, per_point))
        split = _relu_split if isinstance(module, nn.ReLU) else _pool_split
        polys = [piece for q, v, j, u0 in zip(polys, values, jac, interior) for piece in split(q, v, j, u0, tol, eps_area)]
        if max_regions is not None and len(polys) > max_regions:
            raise RegionsError(f"more than {max_regions} regions in the plane (metrics.regions.max_regions)")
    return PlaneCount(count=len(polys), area=area(plane.domain), polygons=polys)


def _units(tracer: Tracer, plane: Plane, layer: int) -> int:
    x = plane.center.unsqueeze(0).to(next(tracer.net.parameters()).device)
    _, inp, _ = tracer.run(x, upto=layer)[layer]
    return inp.numel()
