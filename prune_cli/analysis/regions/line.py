"""Exact count of activation regions along a segment by breakpoint propagation (docs/regions.md).

Between consecutive breakpoints of the earlier nonlinearities the network up to nonlinearity l is
affine in t, so a ReLU input's zero is found exactly by linear interpolation and a max-pool
window's argmax switch exactly by intersecting its (affine) candidates. After all layers, the
count is 1 + the number of pattern changes between consecutive intervals. As a safeguard against
hidden nonlinearities (e.g. a functional relu the hooks cannot see) the network output is checked
to be affine on every final interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import RegionsError, Tracer, pattern, pool_windows

ZERO_TOL = 1e-12  # |z| below ZERO_TOL * (max|z| of that unit along the segment) counts as zero (docs/regions.md)
MERGE_TOL = 1e-12  # breakpoints closer than this in t are merged


@dataclass
class LineCount:
    count: int  # activation regions meeting the segment
    breakpoints: torch.Tensor  # sorted t in [0, 1], including 0 and 1
    length: float


def _chunks(n: int, per_row: int, budget: int = 20_000_000):
    step = max(1, budget // max(per_row, 1))
    for s in range(0, n, step):
        yield s, min(n, s + step)


def _relu_crossings(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Every sign change of every unit (columns of z, rows at the breakpoints t) by interpolation.

    The zero tolerance is per unit: with the layer's largest |z| as the scale, a unit whose
    pre-activation is 1e-13 of another unit's never left the tolerance band and its kink was missed."""
    eps = ZERO_TOL * z.abs().amax(dim=0).clamp_min(1e-300)  # (units,), broadcast over the rows
    out = []
    for s, e in _chunks(len(t) - 1, z.shape[1]):
        z0, z1 = z[s:e], z[s + 1 : e + 1]
        cross = ((z0 > eps) & (z1 < -eps)) | ((z0 < -eps) & (z1 > eps))
        k, i = cross.nonzero(as_tuple=True)
        a, b = z0[k, i], z1[k, i]
        out.append(t[s + k] + (t[s + k + 1] - t[s + k]) * a / (a - b))
    return torch.cat(out) if out else t.new_zeros(0)


def _pool_switches(t: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Every argmax switch inside each interval for every window; win is (T, C, K, L).

    On an interval the window's candidates are affine in s in [0, 1]; walking the upper envelope
    from s = 0 visits candidates in increasing slope, so K - 1 steps find every switch."""
    finite = torch.isfinite(win)
    # ties at an interval's start: within ZERO_TOL x the window's own largest |value| on the segment;
    # with max(|top|, 1) as the scale every candidate of a window of values below 1e-12 was tied, and
    # the walk could start on the wrong one and miss the switch
    scale = torch.where(finite, win.abs(), torch.zeros((), dtype=win.dtype)).amax(dim=(0, 2), keepdim=True).clamp_min(1e-300)
    out = []
    per_row = win[0].numel()
    inf = torch.tensor(torch.inf, dtype=win.dtype)
    for s, e in _chunks(len(t) - 1, 4 * per_row):
        a = win[s:e]
        fin = finite[s:e]
        d = torch.where(fin & finite[s + 1 : e + 1], win[s + 1 : e + 1] - a, torch.zeros((), dtype=a.dtype))
        top = a.max(dim=2, keepdim=True).values
        tie = a >= top - ZERO_TOL * scale
        cur = torch.where(tie, d, -inf).argmax(dim=2, keepdim=True)
        pos = torch.zeros_like(top)  # current s on the envelope
        dt = (t[s + 1 : e + 1] - t[s:e]).reshape(-1, 1, 1, 1)
        for _ in range(a.shape[2] - 1):
            ai, di = a.gather(2, cur), d.gather(2, cur)
            rising = (d > di) & fin
            step = torch.where(rising, (ai - a) / (d - di), inf)
            step = torch.where(step > pos + MERGE_TOL / dt, step, inf)
            first = step.min(dim=2, keepdim=True).values
            inside = first < 1 - MERGE_TOL / dt
            if not inside.any():
                break
            # among candidates crossing at the same point, the envelope continues with the steepest
            nxt = torch.where(step <= first + MERGE_TOL / dt, d, -inf).argmax(dim=2, keepdim=True)
            k = inside.squeeze(2).nonzero(as_tuple=True)[0]
            out.append(t[s + k] + (t[s + k + 1] - t[s + k]) * first[inside])
            cur = torch.where(inside, nxt, cur)
            pos = torch.where(inside, first, torch.ones_like(first))
    return torch.cat(out) if out else t.new_zeros(0)


def _merge(t: torch.Tensor) -> torch.Tensor:
    t = torch.unique(t.clamp(0.0, 1.0))  # sorted
    keep = torch.ones_like(t, dtype=torch.bool)
    keep[1:] = (t[1:] - t[:-1]) > MERGE_TOL
    t = t[keep]
    t[-1] = 1.0  # a breakpoint within MERGE_TOL of the end merges into it
    return t


def count_line(net: nn.Module, a: torch.Tensor, b: torch.Tensor, batch: int = 8192) -> LineCount:
    """Activation regions of `net` (a prepared float64 eval copy) on the segment a -> b."""
    tracer = Tracer(net)
    a, b = a.to(torch.float64).unsqueeze(0), b.to(torch.float64).unsqueeze(0)
    direction = b - a

    def points(t):
        return a + t.reshape(-1, *([1] * (a.dim() - 1))) * direction

    def capture(t, layer):
        parts, module = [], None
        for s in range(0, len(t), batch):
            module, inp, out = tracer.run(points(t[s : s + batch]), upto=layer)[layer]
            if isinstance(module, nn.ReLU):
                parts.append(inp.reshape(inp.shape[0], -1))
            else:
                parts.append(pool_windows(module, inp, out.shape))
        return module, torch.cat(parts)

    n_layers = tracer.count(a)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, device=a.device)
    for layer in range(n_layers):
        module, values = capture(t, layer)
        new = _relu_crossings(t, values) if isinstance(module, nn.ReLU) else _pool_switches(t, values)
        if len(new):
            t = _merge(torch.cat([t, new]))
    mids = (t[:-1] + t[1:]) / 2
    changes, prev, worst = 0, None, 0.0
    for s in range(0, len(mids), batch):
        e = min(len(mids), s + batch)
        pat = pattern(tracer, points(mids[s:e]))
        f_mid = tracer.output
        with torch.no_grad():
            f_ends = net(points(t[s : e + 1]))
        # safeguard: the output must be affine on every final interval, else a nonlinearity was missed
        gap = (f_mid - (f_ends[:-1] + f_ends[1:]) / 2).abs().max() / f_ends.abs().max().clamp_min(1.0)
        worst = max(worst, float(gap))
        if prev is not None:
            pat = torch.cat([prev, pat])
        changes += int((pat[1:] != pat[:-1]).any(dim=1).sum())
        prev = pat[-1:]
    if worst > 1e-6:
        raise RegionsError(
            "the network is not piecewise affine in its nn.ReLU/nn.MaxPool modules "
            "(a nonlinearity the hooks cannot see, e.g. a functional relu or sigmoid)"
        )
    return LineCount(count=1 + changes, breakpoints=t, length=float(direction.norm()))
