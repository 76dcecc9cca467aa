"""Upper bounds on the number of linear regions (Serra et al., ICML 2018; Cai et al., CPAIOR 2023; docs/regions.md).

- `serra2018`: Serra, Tjandraatmadja & Ramalingam (ICML 2018) Theorem 1, exact Python integers.
- `expected_bound`: CPAIOR 2023 expected rank-aware bound for sparse layers, ln E[UB], with the
  analytic binomial rank model or the Monte Carlo rank model; accumulated in log space because
  the values overflow float64 for wide nets.
- `choose_layer_densities`: per-layer densities maximising ln E[UB] at a fixed weight budget
  (the paper's `lagrange3` for two pruned layers, and a budget-preserving coordinate search for
  any number of layers).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch


def _log_comb(n: int, k: int) -> float:
    return math.log(math.comb(n, k))


def serra2018(n0: int, widths: Sequence[int]) -> int:
    """Serra et al. (2018) bound via its recursion G(l, d) (exact integer; docs/regions.md)."""
    widths = [int(w) for w in widths]

    @lru_cache(maxsize=None)
    def g(l: int, d: int) -> int:
        if l == len(widths):
            return 1
        n = widths[l]
        return sum(math.comb(n, j) * g(l + 1, min(d, n - j)) for j in range(min(d, n) + 1))

    return g(0, int(n0))


def rank_ub(n0: int, widths: Sequence[int], ranks: Sequence[int]) -> int:
    """Deterministic rank-aware bound UB(k_1..k_L) of Cai et al. 2023 (exact integer; docs/regions.md)."""
    widths, ranks = [int(w) for w in widths], [int(k) for k in ranks]

    @lru_cache(maxsize=None)
    def g(l: int, d: int) -> int:
        if l == len(widths):
            return 1
        n, k = widths[l], ranks[l]
        return sum(math.comb(n, j) * g(l + 1, min(n - j, d, k)) for j in range(min(k, d) + 1))

    return g(0, int(n0))


def binomial_rank_log_probs(rows: int, cols: int, density: float, drop_zero: bool = True) -> dict[int, float]:
    """ln P(rank = k) under rank model A (the authors' code): k = number of non-zero lines in
    the smaller dimension; P(0) is dropped (not renormalised) as in the authors' code."""
    m, o = min(rows, cols), max(rows, cols)
    if density >= 1.0:
        return {m: 0.0}
    if density <= 0.0:
        return {} if drop_zero else {0: 0.0}
    log_miss = o * math.log1p(-density)  # ln (1 - p)^o = ln(1 - Q)
    log_q = math.log(-math.expm1(log_miss))
    out = {}
    for k in range(0 if not drop_zero else 1, m + 1):
        out[k] = _log_comb(m, k) + k * log_q + (m - k) * log_miss
    return out


_MC_CACHE: dict[tuple, dict[int, float]] = {}


def montecarlo_rank_log_probs(rows: int, cols: int, density: float, seed: int = 0, sample_factor: int = 48) -> dict[int, float]:
    """ln P(rank = k) under rank model B (the authors' code): Gaussian matrices with Bernoulli(p) entries,
    sampled until #samples >= (max rank - min rank + 1) x sample_factor. Seeded and cached."""
    key = (rows, cols, float(density), seed, sample_factor)
    if key not in _MC_CACHE:
        if density >= 1.0:
            _MC_CACHE[key] = {min(rows, cols): 0.0}
        else:
            gen = torch.Generator().manual_seed(seed)
            ranks: list[int] = []
            while not ranks or len(ranks) < (max(ranks) - min(ranks) + 1) * sample_factor:
                m = torch.randn(cols, rows, generator=gen, dtype=torch.float64)
                keep = torch.rand(cols, rows, generator=gen, dtype=torch.float64) < density
                ranks.append(int(torch.linalg.matrix_rank(m * keep)))
            values, counts = np.unique(ranks, return_counts=True)
            _MC_CACHE[key] = {int(v): math.log(c / len(ranks)) for v, c in zip(values, counts)}
    return _MC_CACHE[key]


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """ln sum exp along the last axis; a row of only -inf gives -inf (no term), not NaN. Written
    out rather than scipy.special.logsumexp: the default run computes this bound and loads no scipy
    (importing it costs about 0.4 s here)."""
    top = a.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - top).sum(axis=-1)) + top[..., 0]


def expected_bound_from_probs(n: Sequence[int], log_probs: Sequence[dict[int, float]]) -> float:
    """ln E[UB] by the recursion F(l, d) of Cai et al. 2023 (docs/regions.md), n = [n_0, n_1, ..., n_L]:

        F(l, d) = ln sum_k P_l(k) sum_{j <= min(k, d)} C(n_l, j) exp F(l + 1, min(n_l - j, d, k)),

    F(L, .) = 0. The inner sum depends on k and d only through m = min(k, d) (then
    min(n_l - j, d, k) = min(n_l - j, m)), so each layer is one table G_l(m) over m <= n_l and
    F(l, d) = ln sum_k P_l(k) exp G_l(min(k, d)): whole layers as numpy arrays instead of one
    memoised call per (l, d) pair, the same sums in the same log space."""
    n = [int(v) for v in n]
    widths = n[1:]
    f_next = None  # F(l + 1, d) for d = 0..n_l; None after the last layer (F = 0)
    for l in reversed(range(len(widths))):
        w = widths[l]
        ranks = np.array(sorted(log_probs[l]), dtype=np.int64)
        lps = np.array([log_probs[l][int(k)] for k in ranks], dtype=np.float64)
        d_max = n[0] if l == 0 else n[l]  # F(0, .) is asked at n_0 only; F(l, .) at d <= n_l
        m_max = min(int(ranks.max()) if len(ranks) else 0, d_max, w)
        j = np.arange(m_max + 1)
        m = np.arange(m_max + 1)[:, None]
        log_c = np.array([_log_comb(w, int(v)) for v in j])
        table = np.broadcast_to(log_c, (m_max + 1, m_max + 1)).copy()
        if f_next is not None:
            table += f_next[np.minimum(w - j[None, :], m)]
        table[j[None, :] > m] = -math.inf  # j runs to m only
        g = _logsumexp_rows(table)  # G_l(m), m = 0..m_max
        d = np.array([n[0]]) if l == 0 else np.arange(d_max + 1)
        terms = lps[None, :] + g[np.minimum(np.minimum(ranks[None, :], d[:, None]), m_max)]
        f_next = _logsumexp_rows(terms) if len(ranks) else np.full(len(d), -math.inf)
    return float(f_next[0])


def expected_bound(
    n: Sequence[int],
    densities: Sequence[float],
    rank_model: str = "binomial",
    drop_zero_rank: bool = True,
    seed: int = 0,
    sample_factor: int = 48,
) -> float:
    """ln E[UB] for widths n = [n_0, ..., n_L] and one density per weight matrix (len L).

    Whether the output layer is included is the caller's choice: append its width and density."""
    if len(densities) != len(n) - 1:
        raise ValueError(f"need {len(n) - 1} densities for n={list(n)}, got {len(densities)}")
    probs = []
    for l, p in enumerate(densities):
        rows, cols = n[l + 1], n[l]
        if rank_model == "binomial":
            probs.append(binomial_rank_log_probs(rows, cols, float(p), drop_zero_rank))
        elif rank_model == "montecarlo":
            probs.append(montecarlo_rank_log_probs(rows, cols, float(p), seed, sample_factor))
        else:
            raise ValueError(f"rank_model must be binomial or montecarlo, got {rank_model!r}")
    return expected_bound_from_probs(n, probs)


# ----------------------------------------------------------------------------- density choice


def lagrange3(p: float, dims: Sequence[int], objective) -> tuple[float, float]:
    """The authors' `lagrange3` (from their public code; docs/regions.md) for two pruned layers.

    `objective(p0, p1)` returns ln E[UB]; `dims` are the two layers' weight counts."""
    d0, d1 = float(dims[0]), float(dims[1])
    keep = p * (d0 + d1)
    min_p0 = max(keep - d1, 0.0) / d0
    max_p1 = max(keep - d0, 0.0) / d1
    max_p0 = (keep - max_p1 * d1) / d0
    grid = np.linspace(min_p0, max_p0, 12)
    low = (grid[1], (keep - grid[1] * d0) / d1)
    high = (grid[-2], (keep - grid[-2] * d0) / d1)
    mid = (p, p)
    xs = [low[0], p, high[0]]
    if len(set(xs)) < 3:  # a single feasible point (p = 1 keeps every weight): nothing to interpolate
        return mid
    ys = [objective(*low), objective(*mid), objective(*high)]
    # derivative of the Lagrange quadratic through (xs, ys): 2 a r + b = 0
    a = sum(ys[i] / np.prod([xs[i] - xs[j] for j in range(3) if j != i]) for i in range(3))
    b = -sum(ys[i] * sum(xs[j] for j in range(3) if j != i) / np.prod([xs[i] - xs[j] for j in range(3) if j != i]) for i in range(3))
    if a == 0:
        return mid
    r = -b / (2 * a)
    if low[0] < r < high[0]:
        cand = (float(r), float((keep - r * d0) / d1))
        if cand[1] <= 1.0 and objective(*cand) > ys[1]:
            return cand
    return mid


def coordinate_search(
    p: float, dims: Sequence[int], objective, iterations: int = 60, caps: Sequence[float] | None = None
) -> list[float]:
    """Budget-preserving pairwise search for any number of layers: move weight between two layers
    (multiplying one density by a factor, adjusting the other to keep the kept-weight count) while
    ln E[UB] improves; factors shrink when no move helps. Starts at uniform; deterministic.

    `caps`: an upper bound on each layer's density (default 1): at a later pruning event a layer keeps
    at most what is still alive in it, since masks only shrink (docs/allocation.md, region_bound). The
    search then starts at uniform as far as the caps allow (`_capped_uniform`) and moves only within them."""
    caps = [1.0] * len(dims) if caps is None else [float(c) for c in caps]
    dens = [float(p)] * len(dims) if all(p <= c for c in caps) else _capped_uniform(p, dims, caps)
    best = objective(dens)
    factor = 4.0
    for _ in range(iterations):
        improved = False
        for i in range(len(dims)):
            for j in range(len(dims)):
                if i == j:
                    continue
                for f in (factor, 1.0 / factor):
                    new_i = min(dens[i] * f, caps[i])
                    new_j = dens[j] + (dens[i] - new_i) * dims[i] / dims[j]
                    if not (0.0 < new_j <= caps[j] and new_i > 0.0):
                        continue
                    cand = list(dens)
                    cand[i], cand[j] = new_i, new_j
                    value = objective(cand)
                    if value > best + 1e-12:
                        best, dens, improved = value, cand, True
        if not improved:
            factor = math.sqrt(factor)
            if factor < 1.0 + 1e-4:
                break
    return dens


def _capped_uniform(p: float, dims: Sequence[int], caps: Sequence[float]) -> list[float]:
    """Densities min(c_l, t) with t such that they keep p * sum(dims) weights (water filling): the
    uniform start where some cap is below p. Layers are filled in order of their caps."""
    budget, rest = p * sum(dims), float(sum(dims))
    out = [0.0] * len(dims)
    order = sorted(range(len(dims)), key=lambda i: caps[i])
    for pos, i in enumerate(order):
        level = budget / rest
        if caps[i] <= level:
            out[i] = caps[i]
            budget -= caps[i] * dims[i]
            rest -= dims[i]
            continue
        for k in order[pos:]:
            out[k] = level
        break
    return out


def _within_caps(p: float, dims: Sequence[int], point: tuple[float, float], caps: Sequence[float]) -> tuple[float, float]:
    """Two layers' densities moved along the budget line p0 d0 + p1 d1 = p (d0 + d1) to the nearest
    point with p0 <= c0 and p1 <= c1. On that line the objective is a function of p0 alone; for one
    with a single maximum the maximum within an interval is the unconstrained one moved into it."""
    d0, d1 = float(dims[0]), float(dims[1])
    keep = p * (d0 + d1)
    if point[0] > caps[0]:  # the first layer at its cap, the second takes the rest
        return caps[0], (keep - caps[0] * d0) / d1
    if point[1] > caps[1]:
        return (keep - caps[1] * d1) / d0, caps[1]
    return point


def choose_layer_densities(
    n: Sequence[int],
    p: float,
    dims: Sequence[int],
    pruned: Sequence[bool],
    method: str = "auto",
    rank_model: str = "binomial",
    fixed: Sequence[float] | None = None,
    seed: int = 0,
    caps: Sequence[float] | None = None,
) -> list[float]:
    """Densities for every weight matrix of n (len L) maximising ln E[UB] with the pruned layers
    keeping p * sum(dims of pruned layers) weights; unpruned layers keep `fixed` (default 1).

    method: lagrange3 (exactly two pruned layers, the paper's procedure), search (any number),
    auto (for two pruned layers both, keeping search's choice only where its bound is higher by more
    than `AUTO_MARGIN`, so that results where the two agree do not move; else search). lagrange3 alone
    missed the optimum search finds (40-100-100-10, classifier dense, density 0.01: ln E[UB] 134.664
    against 135.373, the brute-force maximum over the integer splits); since 2026-12-04.

    caps: an upper bound on every matrix's density (len L; only the pruned layers' are read), the
    fraction of its weights still alive at a later pruning event (masks only shrink). The choice is
    then the search's optimum subject to density <= cap: lagrange3's point moved along the budget line
    into the caps (`_within_caps`), the coordinate search within them. The bound's optimum is not
    monotone in p (40-256-256-10, classifier dense: (0.15, 0.15) at 0.15 but (0.386, 0.055) at 0.1), so
    an uncapped choice could ask a layer for more than it has left. Caps that do not bind (all 1 at a
    first event) leave the choice as it was; a budget the caps hold only in full (or not) keeps every
    layer at its cap (p d within one weight of the alive total, which round(p d) may still fit)."""
    idx = [i for i, flag in enumerate(pruned) if flag]
    base = list(fixed) if fixed is not None else [1.0] * len(pruned)
    pdims = [dims[i] for i in idx]

    def full(sub: Sequence[float]) -> list[float]:
        out = list(base)
        for i, v in zip(idx, sub):
            out[i] = v
        return out

    def objective(sub) -> float:
        return expected_bound(n, full(sub), rank_model=rank_model, seed=seed)

    pcaps = [1.0] * len(idx) if caps is None else [min(float(caps[i]), 1.0) for i in idx]
    if p * sum(pdims) >= sum(c * d for c, d in zip(pcaps, pdims)):  # all that is alive, or more: keep it all
        return full(pcaps)
    if method == "auto" and len(idx) == 2:
        paper = list(_within_caps(p, pdims, lagrange3(p, pdims, lambda a, b: objective([a, b])), pcaps))
        searched = coordinate_search(p, pdims, objective, caps=pcaps)
        return full(searched if objective(searched) > objective(paper) + AUTO_MARGIN else paper)
    if method == "lagrange3":
        if len(idx) != 2:
            raise ValueError(f"lagrange3 needs exactly two pruned layers, got {len(idx)}")
        return full(_within_caps(p, pdims, lagrange3(p, pdims, lambda a, b: objective([a, b])), pcaps))
    if len(idx) == 1:
        return full([p])
    return full(coordinate_search(p, pdims, objective, caps=pcaps))


# bound_search=auto keeps the coordinate search's choice over lagrange3's only where its ln E[UB] is higher
# by more than this: far above the float error of the bound's evaluation (1e-12 between its two
# implementations, docs/regions.md), far below the differences that matter (0.02 to 0.7 in the audit's cases)
AUTO_MARGIN = 1e-9
