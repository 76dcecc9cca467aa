"""Every activation region of the whole input box, by MILP enumeration with no-good cuts (Serra et al., ICML 2018; docs/regions.md).

The network is read as a chain of affine maps and ReLUs (each affine block's matrix taken
exactly from the modules; convolutions become dense matrices), checked against the model's own
output. One MILP (scipy.optimize.milp / HiGHS) maximises the margin f = min over units of |z|
within the box (units that cannot change sign left out; f_tol is absolute, in the units of the
pre-activations, so regions whose units all stay within f_tol of 0 are missed: docs/regions.md);
every optimum with f > f_tol is a full-dimensional region, whose pattern is then
excluded by a no-good cut, and the MILP is solved again until f <= f_tol. Big-M constants come
from interval arithmetic (valid, so the enumeration stays exact). Cost grows with the count (one
MILP per region); `max_units` and `max_regions` bound it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from ...core import interrupts
from ...models.graph import is_affine
from .common import RegionsError


@dataclass
class ExactCount:
    count: int
    volume: float  # of the box
    min_margin: float  # smallest f among the counted regions (audit of near-degenerate regions)
    solves: int


NOT_A_CHAIN = (
    "method=exact needs a network that is a plain chain of affine layers and nn.ReLU "
    "(no skip connections, pooling or functional nonlinearities); use method=plane"
)


def _over_budget(units: int, max_units: int) -> RegionsError:
    return RegionsError(
        f"method=exact: the network has {units} hidden units, more than "
        f"metrics.regions.max_units={max_units}; raise the budget or use method=plane"
    )


def affine_chain(net: nn.Module, input_shape: tuple, max_units: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W_1, b_1), ..., (W_L+1, b_L+1)]: the network as affine maps with a ReLU after all but the last.

    Raises RegionsError for max-pooling or anything that is not a plain chain of modules: every module
    must take the previous module's output (a ResNet's shortcut takes the block's input, whose shape
    broke the matrix product with a bare ValueError), and the chain must reproduce the network. With
    `max_units`, more hidden units (ReLU outputs) than that are refused before any layer's dense
    [out, in] matrix is built (a convolution on a 32x32 input needs gigabytes)."""
    leaves = [m for m in net.modules() if len(list(m.children())) == 0]
    calls: list = []

    def hook(module, inputs, output):
        calls.append((module, inputs[0], output))

    handles = [m.register_forward_hook(hook) for m in leaves]
    x = torch.randn(4, *input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = x.to(next(net.parameters()).device)
    try:
        with torch.no_grad():
            y = net(x)
    finally:
        for h in handles:
            h.remove()
    units = sum(int(out[0].numel()) for module, _, out in calls if isinstance(module, nn.ReLU))
    if max_units is not None and units > max_units:
        raise _over_budget(units, max_units)
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    n_in = int(np.prod(input_shape))
    w, b = np.eye(n_in), np.zeros(n_in)
    previous = x
    for module, inp, out in calls:
        if inp.numel() != previous.numel() or not torch.equal(inp.reshape(-1), previous.reshape(-1)):
            raise RegionsError(f"{NOT_A_CHAIN}: {type(module).__name__} does not take the previous module's output")
        previous = out
        if isinstance(module, nn.ReLU):
            blocks.append((w, b))
            w, b = np.eye(w.shape[0]), np.zeros(w.shape[0])
            continue
        if not is_affine(module):
            raise RegionsError(
                f"method=exact supports chains of affine layers and nn.ReLU; "
                f"{type(module).__name__} is not supported (use method=plane or line)"
            )
        shape = inp.shape[1:]
        with torch.no_grad():
            bias = module(torch.zeros(1, *shape, dtype=inp.dtype, device=inp.device)).reshape(-1)
            eye = torch.eye(int(np.prod(shape)), dtype=inp.dtype, device=inp.device).reshape(-1, *shape)
            mat = (module(eye).reshape(eye.shape[0], -1) - bias).T  # (out, in)
        w, b = mat.cpu().numpy() @ w, mat.cpu().numpy() @ b + bias.cpu().numpy()
    blocks.append((w, b))
    # the chain must reproduce the network (no hidden skip connections or functional nonlinearities)
    h = x.reshape(len(x), -1).cpu().numpy()
    for i, (wi, bi) in enumerate(blocks):
        h = h @ wi.T + bi
        if i < len(blocks) - 1:
            h = np.maximum(h, 0)
    if not np.allclose(h, y.reshape(len(x), -1).cpu().numpy(), rtol=1e-8, atol=1e-8):
        raise RegionsError(NOT_A_CHAIN)
    return blocks


def count_exact(
    net: nn.Module, input_shape: tuple, box: tuple[float, float], max_units: int = 64, max_regions: int = 10_000, f_tol: float = 1e-6
) -> ExactCount:
    """Number of full-dimensional activation regions of `net` inside the box [lo, hi]^n0.

    Raises RegionsError where no region has a margin above `f_tol` (a box holds at least one region;
    degenerate weights, or pre-activations on the scale of `f_tol`, docs/regions.md)."""
    blocks = affine_chain(net, input_shape, max_units)
    hidden = blocks[:-1]
    units = sum(w.shape[0] for w, _ in hidden)
    if units > max_units:
        raise _over_budget(units, max_units)
    lo, hi = box
    n0 = hidden[0][0].shape[1]
    # interval bounds of every pre-activation (for big-M)
    l_in, u_in = np.full(n0, lo, float), np.full(n0, hi, float)
    upper, lower = [], []
    for w, b in hidden:
        wp, wn = np.maximum(w, 0), np.minimum(w, 0)
        u = wp @ u_in + wn @ l_in + b
        l = wp @ l_in + wn @ u_in + b
        upper.append(u)
        lower.append(l)
        l_in, u_in = np.maximum(l, 0), np.maximum(u, 0)
    # Units whose pre-activation is identically 0 split no region and must not pin the margin to 0:
    # a unit 0 on the whole box (interval bounds [0, 0]: a pruned unit without bias) is left out of
    # the margin; a unit without bias whose nonzero inputs are all off is 0 on that whole region, so
    # its margin term applies only where one of them is on (binary g = OR of those inputs' z) and it
    # counts as off there (z <= g), one pattern per region (generic weights otherwise; docs/regions.md).
    # Only a unit whose interval contains 0 and is not a point can change sign, so only such units enter the
    # margin: a unit with l > 0 or u < 0 keeps its sign on the whole box, and one with l == u is constant
    # (interval arithmetic gives l == u exactly for a unit all of whose inputs with a nonzero weight are
    # constant, e.g. a fully pruned row: its value is its bias). Before 2026-12-03 only units with bounds
    # [0, 0] were left out: a pruned row with bias 1e-7 capped the margin at 1e-7 <= f_tol and the count was 0.
    # A unit that is 0 through cancellation (weights [1, -1] on two coincident units) has an interval around
    # 0 and is not detected: its margin is 0 and such regions are missed (docs/regions.md).
    zero = [(l == 0) & (u == 0) for l, u in zip(lower, upper)]
    margin = [(l <= 0) & (u >= 0) & (l < u) for l, u in zip(lower, upper)]
    gated = [[li > 0 and b[i] == 0 and bool(margin[li][i]) for i in range(w.shape[0])] for li, (w, b) in enumerate(hidden)]
    # variable layout: x | per layer (h, hb, z, g) | f
    offsets, pos = [], n0
    for w, _ in hidden:
        offsets.append(pos)
        pos += 4 * w.shape[0]
    nf = pos
    nvar = pos + 1
    rows, lb_c, ub_c = [], [], []

    def add(coeffs: dict, lo_: float, hi_: float):
        rows.append(coeffs)
        lb_c.append(lo_)
        ub_c.append(hi_)

    m_pos = [np.maximum(u, 0) for u in upper]
    m_neg = [np.maximum(-l, 0) for l in lower]
    spans = [np.maximum(mp, mn)[m] for mp, mn, m in zip(m_pos, m_neg, margin)]
    cap = min((float(v.min()) for v in spans if v.size), default=1.0)  # no unit can vary: one region
    mf = max(cap, 1e-12)
    var_lb, var_ub = np.zeros(nvar), np.zeros(nvar)
    var_lb[:n0], var_ub[:n0] = lo, hi
    integrality = np.zeros(nvar)
    z_index = []
    z_index_of: dict[int, int] = {}  # a unit's output variable h -> its binary z
    prev = list(range(n0))
    for li, (w, b) in enumerate(hidden):
        n = w.shape[0]
        h0, hb0, z0, g0 = offsets[li], offsets[li] + n, offsets[li] + 2 * n, offsets[li] + 3 * n
        for i in range(n):
            h, hb, z, g = h0 + i, hb0 + i, z0 + i, g0 + i
            coeffs = {p: w[i, k] for k, p in enumerate(prev) if w[i, k] != 0}
            coeffs[h] = coeffs.get(h, 0) - 1.0
            coeffs[hb] = 1.0
            add(coeffs, -b[i], -b[i])  # W h_prev + b = h - hb
            add({h: 1.0, z: -m_pos[li][i]}, -np.inf, 0.0)  # h <= M z
            add({hb: 1.0, z: m_neg[li][i]}, -np.inf, m_neg[li][i])  # hb <= Mb (1 - z)
            if gated[li][i]:  # g = 1 iff some input with a nonzero weight is on; off where none is
                inputs = [z_index_of[p] for k, p in enumerate(prev) if w[i, k] != 0]
                add({g: 1.0, **{q: -1.0 for q in inputs}}, -np.inf, 0.0)  # g <= sum z_in
                for q in inputs:
                    add({g: 1.0, q: -1.0}, 0.0, np.inf)  # g >= z_in
                add({z: 1.0, g: -1.0}, -np.inf, 0.0)  # z <= g
                add({nf: 1.0, h: -1.0, z: mf, g: mf}, -np.inf, 2 * mf)  # z = 1, g = 1 => f <= h
                add({nf: 1.0, hb: -1.0, z: -mf, g: mf}, -np.inf, mf)  # z = 0, g = 1 => f <= hb
                var_ub[g] = 1.0
                integrality[g] = 1
            elif margin[li][i]:
                add({nf: 1.0, h: -1.0, z: mf}, -np.inf, mf)  # z = 1 => f <= h
                add({nf: 1.0, hb: -1.0, z: -mf}, -np.inf, 0.0)  # z = 0 => f <= hb
            var_ub[h], var_ub[hb] = m_pos[li][i], m_neg[li][i]
            var_ub[z] = 1.0 if upper[li][i] > 0 else 0.0
            # never negative: on, except where it is identically 0 (a zero unit; a gated one with no input on)
            var_lb[z] = 1.0 if lower[li][i] >= 0 and not zero[li][i] and not gated[li][i] else 0.0
            integrality[z] = 1
            z_index.append(z)
            z_index_of[h] = z
        prev = list(range(h0, h0 + n))
    var_ub[nf] = cap
    c = np.zeros(nvar)
    c[nf] = -1.0  # maximise f
    count, solves, min_margin = 0, 0, np.inf
    while True:
        interrupts.check()  # a safe point before every solve: a count can take thousands of them
        a = sp.lil_matrix((len(rows), nvar))
        for r, coeffs in enumerate(rows):
            for k, v in coeffs.items():
                a[r, k] = v
        res = milp(
            c,
            constraints=LinearConstraint(a.tocsr(), lb_c, ub_c),
            integrality=integrality,
            bounds=Bounds(var_lb, var_ub),
            options={"mip_rel_gap": 0.0, "presolve": False},
        )
        solves += 1
        if res.x is None:
            if res.status == 2:  # infeasible: every pattern has been cut off
                break
            raise RegionsError(f"method=exact: the MILP solver failed ({res.message})")
        f = float(res.x[nf])
        if f <= f_tol:
            break
        count += 1
        min_margin = min(min_margin, f)
        if count > max_regions:
            raise RegionsError(
                f"method=exact: more than metrics.regions.max_regions={max_regions} regions "
                f"in the box; raise the budget or use method=plane"
            )
        zs = np.round(res.x[z_index]).astype(int)
        ones = [z for z, v in zip(z_index, zs) if v == 1]
        cut = {z: (1.0 if v == 1 else -1.0) for z, v in zip(z_index, zs)}
        add(cut, -np.inf, len(ones) - 1)  # no-good cut: exclude this pattern
    if count == 0:  # a box holds at least one region: its margin was lost (degenerate weights, a tiny scale)
        raise RegionsError(
            f"method=exact found no region with margin above f_tol={f_tol} (a box holds at least one): "
            "degenerate weights (a unit that is 0 through cancellation) or pre-activations on the scale of f_tol "
            "(docs/regions.md); use method=plane"
        )
    return ExactCount(count=count, volume=float((hi - lo) ** n0), min_margin=float(min_margin), solves=solves)
