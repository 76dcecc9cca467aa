"""Pruning-limit prediction of Zhang et al., "How Sparse Can We Prune A Deep Network" (docs/analysis.md).

As the authors' public code computes it: the loss tolerance epsilon is the std over
minibatches of the training objective; the sublevel set {D : 1/2 D^T H D <= eps} has semi-axes
r_i = sqrt(2 eps / |lambda_i|); seen from distance R = ||w* - w_rho|| (w_rho = one-shot global
magnitude pruning at ratio rho) the predicted ratio is

    rho_pred(R) = f + (1 - f) * sum_k tau_k * 2 eps / (2 eps + R^2 |theta_k|)

with SLQ nodes/weights (theta_k, tau_k) and flat fraction f. The predicted limit rho_hat is the
grid ratio where rho_pred(R(rho)) crosses rho. Since g(m) = 2 eps / (2 eps + R^2 m) is convex and
decreasing in m >= 0, Jensen puts g(mean |eigenvalue|) (Tr|H| / D from the SLQ nodes, `bound_abs`)
below rho_pred for every spectrum, so its crossing is a lower bound of rho_hat. `bound_hutch` puts
Tr(H) / D from Hutchinson in its place and is a heuristic, not a bound: with negative eigenvalues
Tr(H) / D < mean |lambda| and its curve can lie above rho_pred (its crossing above rho_hat), and
Hutchinson's trace is a separate random estimate, so even for H without negative eigenvalues
(Tr H = Tr|H|) only its expected value gives the Jensen bound: one draw below Tr|H| can put the
crossing above rho_hat. It is a lower bound (no tighter than `bound_abs`) whenever
Tr(H)_Hutchinson >= Tr|H|_SLQ, g being decreasing (tests/test_limit_bounds.py).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..data.batches import iterate_batches
from .hessian import Spectrum


def ratio_grid(points: int) -> torch.Tensor:
    """rho = i / points for i = 0 .. points - 1 (the code's 1000-level grid for points = 1000)."""
    return torch.arange(points, dtype=torch.float64) / points


def keep_counts(rhos: torch.Tensor, total: int) -> list[int]:
    """Weights kept at each ratio, rounded as the project's global allocation (half to even)."""
    return [int(round((1.0 - float(r)) * total)) for r in rhos]


def magnitude_order(weights: list[torch.Tensor]) -> torch.Tensor:
    """Flat indices by decreasing |w|; ties keep the lower flat index (as allocation `global`)."""
    flat = torch.cat([w.detach().flatten().double().cpu().abs() for w in weights])
    return torch.sort(flat, descending=True, stable=True).indices


def distances(weights: list[torch.Tensor], rhos: torch.Tensor) -> torch.Tensor:
    """R(rho) = ||w* - w_rho||_2 = sqrt(sum of the squared weights global magnitude pruning removes)."""
    flat = torch.cat([w.detach().flatten().double().cpu() for w in weights])
    order = magnitude_order(weights)
    tail = torch.cat(
        [torch.flip(torch.cumsum(torch.flip(flat[order] ** 2, [0]), 0), [0]), torch.zeros(1, dtype=torch.float64)]
    )  # tail[k] = sum of squares ranked k.. (pruned)
    return torch.sqrt(tail[keep_counts(rhos, flat.numel())])


def predicted_ratio(
    r: torch.Tensor, eps: float, nodes: list[torch.Tensor], weights: list[torch.Tensor], flat_fraction: float = 0.0
) -> torch.Tensor:
    """rho_pred(R) for each R, averaged over SLQ probes; rho_pred(0) = 1."""
    r2 = (r.double() ** 2)[:, None]
    total = torch.zeros_like(r.double())
    for theta, tau in zip(nodes, weights):
        den = 2 * eps + r2 * theta.abs()[None, :]
        term = torch.where(den > 0, (2 * eps) / den.clamp_min(1e-300), torch.ones_like(den))
        total += (tau[None, :] * term).sum(1)
    return flat_fraction + (1 - flat_fraction) * total / len(nodes)


def jensen_bound(r: torch.Tensor, eps: float, mean_eigenvalue: float, flat_fraction: float = 0.0) -> torch.Tensor:
    """f + (1 - f) * 2 eps / (2 eps + R^2 * mean_eigenvalue): a lower bound of rho_pred when
    mean_eigenvalue is at least the spectrum's mean |lambda| (Jensen; the Hutchinson Tr(H) / D of
    `bound_hutch` is not, in general: see the module docstring)."""
    ones = torch.ones(1, dtype=torch.float64)
    return predicted_ratio(r, eps, [torch.tensor([float(mean_eigenvalue)], dtype=torch.float64)], [ones], flat_fraction)


def crossing(rhos: torch.Tensor, predicted: torch.Tensor) -> int:
    """Index of argmin |predicted(rho) - rho| over the grid (first on ties), the self-consistent ratio."""
    return int(torch.argmin((predicted - rhos).abs()))


def tolerance_key(d: float) -> str:
    """The row name of tolerance `d` (points): `tol_<d:g>pp`. Two tolerances printed alike (0.1234567 and
    0.1234568 are both 0.123457) would name one row, so PruningLimitConfig.check refuses them (it
    formats the names the same way, without importing this module)."""
    return f"tol_{d:g}pp"


def actual_limits(rhos: torch.Tensor, accuracy: torch.Tensor, tolerances_pp: list[float]) -> dict[str, float]:
    """`strict`: the largest ratio whose accuracy is strictly above the ratio-0 accuracy (0 if none),
    as cal_sparse_rate; `tol_<d>pp`: the largest ratio whose accuracy is >= accuracy(0) - d points."""
    acc0 = float(accuracy[0])
    out = {}

    def largest(ok: torch.Tensor) -> float:
        idx = torch.nonzero(ok).flatten()
        return float(rhos[idx.max()]) if len(idx) else 0.0

    out["strict"] = largest(accuracy > acc0)
    for d in tolerances_pp:
        out[tolerance_key(d)] = largest(accuracy >= acc0 - d / 100.0 - 1e-12)
    return out


@torch.no_grad()
def loss_std(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gen: torch.Generator,
    augment: bool = False,
    penalty: Optional[Callable[[], torch.Tensor]] = None,
) -> float:
    """epsilon: population std over shuffled minibatches of the per-batch objective (mean CE plus
    `penalty()`, e.g. the L1 term), model in eval mode, augmentation as in training (utils.cal_loss)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ce = [float(nn.functional.cross_entropy(model(xb), yb)) for xb, yb in iterate_batches(x, y, batch_size, gen, augment)]
        # the penalty is added in float64: in float32 the sum (loss + a large L1 term) would be
        # rounded to a grid coarser than the spread of the losses this std is meant to measure
        extra = float(penalty()) if penalty is not None else 0.0
    model.train(was_training)
    t = torch.tensor(ce, dtype=torch.float64) + extra
    return float(t.std(correction=0)) if len(t) > 1 else 0.0


def prediction(weights: list[torch.Tensor], rhos: torch.Tensor, eps: float, spec: Spectrum, flat_fraction: float = 0.0) -> dict:
    """R(rho), rho_pred, the Jensen lower bound `bound_abs` and the heuristic `bound_hutch` on the grid,
    with their self-consistent crossings."""
    r = distances(weights, rhos)
    pred = predicted_ratio(r, eps, spec.nodes, spec.weights, flat_fraction)
    mean_abs = spec.quadrature(torch.abs)
    bound_abs = jensen_bound(r, eps, mean_abs, flat_fraction)
    bound_hutch = jensen_bound(r, eps, max(spec.trace_hutchinson / spec.dim, 0.0), flat_fraction)
    i = crossing(rhos, pred)
    return {
        "R": r,
        "rho_pred": pred,
        "bound_abs": bound_abs,
        "bound_hutch": bound_hutch,
        "rho_hat": float(rhos[i]),
        "R_at_rho_hat": float(r[i]),
        "rho_hat_bound_abs": float(rhos[crossing(rhos, bound_abs)]),
        "rho_hat_bound_hutch": float(rhos[crossing(rhos, bound_hutch)]),
        "trace_abs_slq": mean_abs * spec.dim,
    }


def masks_at(weights: list[torch.Tensor], order: torch.Tensor, keep: int) -> list[torch.Tensor]:
    """Per-tensor boolean masks keeping the `keep` largest |w| (order from magnitude_order)."""
    flat = torch.zeros(sum(w.numel() for w in weights), dtype=torch.bool)
    flat[order[:keep]] = True
    out, start = [], 0
    for w in weights:
        out.append(flat[start : start + w.numel()].view(w.shape))
        start += w.numel()
    return out
