"""Which trace bounds of the pruning-limit prediction are bounds (docs/analysis.md, `metrics.pruning_limit`).

rho_pred(R) = f + (1 - f) * mean over probes of sum_k tau_k g(|theta_k|), g(m) = 2 eps / (2 eps + R^2 m),
is an average of the convex g over |theta|, so Jensen puts g(mean |theta|) (`bound_abs`) below it for every
spectrum, negative eigenvalues included, and its crossing with rho below rho_hat. `bound_hutch` uses
Tr(H) / D instead: with negative eigenvalues Tr(H) / D < mean |theta| and g of it can lie above rho_pred;
and Hutchinson's trace is a random estimate, so even for a PSD H one draw below Tr|H| can put its
crossing above rho_hat (it is a bound whenever the estimate is at least Tr|H|).
The formulas are recomputed here in numpy, independently of prune_cli.analysis.limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prune_cli.analysis.hessian import Spectrum
from prune_cli.analysis.limit import prediction, ratio_grid


def own_distances(flat: np.ndarray, rhos: np.ndarray) -> np.ndarray:
    """||w* - w_rho||: global magnitude pruning keeps the round((1 - rho) N) largest |w|."""
    sq = np.sort(flat**2)[::-1]  # largest first
    return np.array([np.sqrt(sq[int(round((1 - r) * len(flat))) :].sum()) for r in rhos])


def own_rho_pred(r: np.ndarray, eps: float, nodes, weights, f: float) -> np.ndarray:
    out = np.zeros_like(r)
    for theta, tau in zip(nodes, weights):
        out += (tau[None, :] * (2 * eps) / (2 * eps + r[:, None] ** 2 * np.abs(theta)[None, :])).sum(1)
    return f + (1 - f) * out / len(nodes)


def own_crossing(rhos: np.ndarray, curve: np.ndarray) -> float:
    return float(rhos[int(np.argmin(np.abs(curve - rhos)))])


def spectrum(nodes, weights, trace_hutchinson: float, dim: int) -> Spectrum:
    return Spectrum(
        dim,
        [torch.tensor(n, dtype=torch.float64) for n in nodes],
        [torch.tensor(w, dtype=torch.float64) for w in weights],
        trace_hutchinson,
        0.0,
    )


@pytest.mark.parametrize("seed", range(40))
def test_bound_abs_is_a_lower_bound_of_rho_pred_and_rho_hat_on_random_spectra(seed):
    rng = np.random.default_rng(seed)
    probes = int(rng.integers(1, 4))
    k = int(rng.integers(2, 30))
    # eigenvalues of both signs, spanning several decades
    nodes = [rng.choice([-1.0, 1.0], k, p=[0.4, 0.6]) * 10 ** rng.uniform(-3, 2, k) for _ in range(probes)]
    weights = [rng.dirichlet(np.ones(k)) for _ in range(probes)]
    eps = float(10 ** rng.uniform(-3, 0))
    f = float(rng.choice([0.0, rng.uniform(0, 0.5)]))
    flat = rng.standard_normal(int(rng.integers(50, 2000))) * 10 ** rng.uniform(-2, 0)
    rhos = np.arange(200) / 200
    dim = 1000

    mean_abs = np.mean([(w * np.abs(n)).sum() for n, w in zip(nodes, weights)])
    r = own_distances(flat, rhos)
    pred = own_rho_pred(r, eps, nodes, weights, f)
    bound_abs = own_rho_pred(r, eps, [np.array([mean_abs])], [np.array([1.0])], f)

    # a Hutchinson trace at or above Tr|H|: g is decreasing, so bound_hutch is then a bound too (and no tighter)
    hutch_mean = mean_abs * (1 + float(rng.uniform(0, 2)))
    bound_hutch = own_rho_pred(r, eps, [np.array([hutch_mean])], [np.array([1.0])], f)
    spec = spectrum(nodes, weights, hutch_mean * dim, dim)
    out = prediction([torch.tensor(flat.reshape(-1, 1))], ratio_grid(200), eps, spec, f)
    np.testing.assert_allclose(out["R"].numpy(), r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["rho_pred"].numpy(), pred, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out["bound_abs"].numpy(), bound_abs, rtol=1e-12, atol=1e-15)
    assert out["rho_hat"] == own_crossing(rhos, pred)
    assert out["rho_hat_bound_abs"] == own_crossing(rhos, bound_abs)
    assert out["trace_abs_slq"] == pytest.approx(mean_abs * dim, rel=1e-12)
    # Jensen, pointwise and at the crossing
    assert bool((bound_abs <= pred + 1e-12).all())
    assert out["rho_hat_bound_abs"] <= out["rho_hat"]
    np.testing.assert_allclose(out["bound_hutch"].numpy(), bound_hutch, rtol=1e-12, atol=1e-15)
    assert out["rho_hat_bound_hutch"] == own_crossing(rhos, bound_hutch) <= out["rho_hat_bound_abs"]


def test_bound_hutch_can_exceed_rho_hat_with_negative_eigenvalues():
    # Tr(H) / D = 0.3*-3 + 0.2*-1 + 0.2*0.5 + 0.3*4 = 0.2 < mean |theta| = 2.4: g(0.2) lies above rho_pred
    flat = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
    th, tau = np.array([-3.0, -1.0, 0.5, 4.0]), np.array([0.3, 0.2, 0.2, 0.3])
    dim, eps = 1000, 0.05
    out = prediction([flat], ratio_grid(100), eps, spectrum([th], [tau], float((tau * th).sum()) * dim, dim))
    rhos = np.arange(100) / 100
    r = own_distances(flat.double().flatten().numpy(), rhos)
    pred = own_rho_pred(r, eps, [th], [tau], 0.0)
    hutch = own_rho_pred(r, eps, [np.array([0.2])], [np.array([1.0])], 0.0)
    np.testing.assert_allclose(out["bound_hutch"].numpy(), hutch, rtol=1e-12)
    assert (out["rho_hat"], out["rho_hat_bound_abs"], out["rho_hat_bound_hutch"]) == (0.10, 0.09, 0.17)
    assert out["rho_hat_bound_hutch"] == own_crossing(rhos, hutch) > out["rho_hat"] == own_crossing(rhos, pred)
    assert float((hutch - pred).max()) > 0.1  # above rho_pred, not by rounding


def test_bound_hutch_of_a_psd_hessian_exceeds_rho_hat_when_the_estimate_falls_short():
    # PSD spectrum: with the exact trace the Hutchinson bound is a bound; an estimate 20 % low (one draw of
    # a random estimator can be) moves its crossing above rho_hat
    flat = torch.randn(50, 20, generator=torch.Generator().manual_seed(0))
    th, tau = np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.4, 0.3])
    dim, eps = 1000, 0.05
    exact = float((tau * th).sum()) * dim
    good = prediction([flat], ratio_grid(1000), eps, spectrum([th], [tau], exact, dim))
    low = prediction([flat], ratio_grid(1000), eps, spectrum([th], [tau], 0.8 * exact, dim))
    assert good["rho_hat_bound_hutch"] == good["rho_hat_bound_abs"] <= good["rho_hat"] < low["rho_hat_bound_hutch"]
