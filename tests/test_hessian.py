"""HVPs, Lanczos, SLQ and Hutchinson against the eigendecomposition of an explicit Hessian
(torch.autograd.functional.hessian) of a tiny net; the `hessian` metric end to end."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import functional_call

from conftest import FAST, run_cli
from prune_cli.analysis.hessian import HessianOperator, hutchinson, lanczos, spectrum
from prune_cli.core.errors import ConfigError
from prune_cli.run.prevalidate import validate
from tests.helpers import composed


def tiny_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    return model, x, y


def explicit_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense D x D Hessian of the mean cross-entropy w.r.t. all parameters, flattened in order."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(v):
        parts = torch.split(v, [s.numel() for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


@pytest.mark.parametrize("mode,batch", [("reuse_graph", 7), ("recompute", 7), ("reuse_graph", 20)])
def test_hvp_matches_explicit_hessian(mode, batch):
    model, x, y = tiny_problem()
    h = explicit_hessian(model, x, y)
    op = HessianOperator(model, x, y, batch, hvp=mode)
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op(v), h @ v, rtol=1e-10, atol=1e-12)
    assert op.dim == h.shape[0] == 3 * 4 + 4 + 4 * 3 + 3


def test_masked_hvp_is_the_projected_hessian():
    model, x, y = tiny_problem(1)
    mask = torch.rand(3, 4) > 0.5
    with torch.no_grad():
        model[2].weight.mul_(mask)
    h = explicit_hessian(model, x, y)
    op = HessianOperator(model, x, y, 8, masks={"2.weight": mask})
    p = op.free
    v = torch.randn(op.full_dim, dtype=torch.float64)
    torch.testing.assert_close(op(v), p * (h @ (p * v)), rtol=1e-10, atol=1e-12)
    assert op.dim == 3 * 4 + 4 + int(mask.sum()) + 3


def test_lanczos_full_run_recovers_the_eigendecomposition():
    model, x, y = tiny_problem(2)
    h = explicit_hessian(model, x, y)
    lam, u = torch.linalg.eigh(h)
    op = HessianOperator(model, x, y, 20)
    gen = torch.Generator().manual_seed(0)
    v0 = op.rademacher(gen)
    theta, tau = lanczos(op, v0, op.dim, gen)
    assert float(theta.max()) == pytest.approx(float(lam.max()), rel=1e-8)
    assert float(theta.min()) == pytest.approx(float(lam.min()), rel=1e-6, abs=1e-8)
    assert float(tau.sum()) == pytest.approx(1.0, abs=1e-12)
    # Gauss quadrature with m = D is exact for any g: sum tau g(theta) = v^T g(H) v / |v|^2.
    v = v0 / v0.norm()
    for g in (torch.abs, lambda t: t**3, torch.exp):
        want = float(v @ (u @ torch.diag(g(lam)) @ u.T) @ v)
        assert float((tau * g(theta)).sum()) == pytest.approx(want, rel=1e-7, abs=1e-10)


def test_lanczos_restarts_on_an_invariant_subspace():
    """Repeated eigenvalues make the Krylov space smaller than D: the restart must still find them all."""
    lam = torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0, 5.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    h = q @ torch.diag(lam) @ q.T
    v0 = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    theta, tau = lanczos(lambda v: h @ v, v0, 6, torch.Generator().manual_seed(5))
    torch.testing.assert_close(theta.sort().values, lam, rtol=1e-8, atol=1e-8)
    v = v0 / v0.norm()
    assert float((tau * theta).sum()) == pytest.approx(float(v @ h @ v), rel=1e-10)


def test_slq_and_hutchinson_trace_and_top_eigenvalues():
    model, x, y = tiny_problem(3)
    h = explicit_hessian(model, x, y)
    lam = torch.linalg.eigvalsh(h)
    # one batch of all 20 examples (the HVP is the same for any batching, test_hvp_matches_explicit_hessian):
    # the same spectrum as batches of 10 at half the cost of each of the 2800 HVPs
    op = HessianOperator(model, x, y, 20)
    spec = spectrum(op, lanczos_iter=12, lanczos_num=200, hutchinson_probes=400, gen=torch.Generator().manual_seed(0))
    trace = float(lam.sum())
    assert spec.quadrature(lambda t: t) * spec.dim == pytest.approx(trace, rel=0.1)
    assert spec.quadrature(torch.abs) * spec.dim == pytest.approx(float(lam.abs().sum()), rel=0.1)
    assert abs(spec.trace_hutchinson - trace) < 4 * spec.trace_hutchinson_se
    assert spec.trace_hutchinson == pytest.approx(trace, rel=0.1)
    top = spec.top_eigenvalues(2)
    assert top[0] == pytest.approx(float(lam[-1]), rel=1e-6)
    assert top[1] == pytest.approx(float(lam[-2]), rel=1e-3)
    grid, density = spec.density(2000, 0.005)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-9)
    assert float(torch.trapezoid(grid * density, grid)) == pytest.approx(spec.quadrature(lambda t: t), rel=1e-3, abs=1e-4)


def test_hutchinson_on_a_known_matrix():
    model, x, y = tiny_problem(4)
    h = explicit_hessian(model, x, y)
    op = HessianOperator(model, x, y, 20)
    est, se = hutchinson(op, 300, torch.Generator().manual_seed(1))
    # Rademacher variance of z^T H z is 2 * sum_{i != j} H_ij^2: check the estimate and its standard error.
    var = 2 * float((h**2).sum() - (h.diagonal() ** 2).sum())
    assert se == pytest.approx((var / 300) ** 0.5, rel=0.3)
    assert abs(est - float(h.trace())) < 4 * (var / 300) ** 0.5


def test_hessian_metric_end_to_end(tmp_path):
    run_cli(
        FAST
        + [
            "metrics.hessian.enabled=true",
            "metrics.hessian.samples=64",
            "metrics.hessian.lanczos_iter=20",
            "metrics.hessian.hutchinson_probes=4",
            "metrics.hessian.density_points=50",
            "metrics.hessian.lanczos_num=2",
        ],
        tmp_path / "r",
    )
    df = pd.read_csv(tmp_path / "r" / "runs.csv")
    rows = df[df.metric.str.startswith("hessian_")]
    assert set(rows.phase) == {"dense", "pruned", "finetuned"} and (rows.split == "train").all()
    dense = rows[rows.phase == "dense"].set_index("metric").value
    pruned = rows[rows.phase == "pruned"].set_index("metric").value
    assert dense["hessian_top_eig_1"] >= dense["hessian_top_eig_2"] >= dense["hessian_top_eig_3"]
    assert pruned["hessian_dim"] < dense["hessian_dim"]  # masked weights are not free coordinates
    assert dense["hessian_samples"] == 64 and dense["hessian_lanczos_iter"] == 20
    density = pd.read_csv(tmp_path / "r" / "hessian_density.csv")
    assert len(density) == 3 * 50 and {"grid", "density", "phase", "run_id"} <= set(density.columns)
    nodes = pd.read_csv(tmp_path / "r" / "hessian_slq_nodes.csv")
    sums = nodes.groupby(["phase", "probe"]).weight.sum()
    assert len(sums) == 6 and ((sums - 1).abs() < 1e-9).all()


@pytest.mark.parametrize(
    "override,key",
    [
        ("metrics.hessian.hvp=fast", "metrics.hessian.hvp"),
        ("metrics.hessian.lanczos_iter=0", "metrics.hessian.lanczos_iter"),
        ("metrics.hessian.samples=0", "metrics.hessian.samples"),
        ("metrics.hessian.density_bandwidth=0", "metrics.hessian.density_bandwidth"),
    ],
)
def test_bad_hessian_config_is_rejected(override, key):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))  # the group choices composed once per process (prune_cli/run/composition_memo.py)
    assert key in str(err.value)


def test_hutchinson_probes_do_not_depend_on_lanczos_restarts_or_settings():
    """Hutchinson's probes come from their own stream, drawn before SLQ: a Lanczos run that restarts
    once more after a breakdown (a last-bit difference in a low-rank Hessian: a pruned model, an
    accel.compile run) or a different lanczos_num/lanczos_iter must not change the trace estimate."""

    class LowRank:
        """A rank-2 6x6 operator: Lanczos from a random start breaks down after 2 steps and restarts."""

        def __init__(self):
            u = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
            self.h = u @ u.T
            self.dim = self.full_dim = 6
            self.free = torch.ones(6, dtype=torch.bool)
            self.dtype = torch.float64

        def __call__(self, v):
            return self.h @ v

        def rademacher(self, gen):
            return HessianOperator.rademacher(self, gen)

    op = LowRank()
    traces = {
        (iters, num): spectrum(op, iters, num, hutchinson_probes=5, gen=torch.Generator().manual_seed(0)).trace_hutchinson
        for iters in (1, 6)
        for num in (1, 3)
    }
    assert len(set(traces.values())) == 1, traces
    # and it is still the Hutchinson estimate: the mean of z^T H z over 5 Rademacher z (E = Tr H)
    assert min(traces.values()) > 0
