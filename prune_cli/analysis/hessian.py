"""Hessian of the training loss: HVPs, Lanczos, Hutchinson trace and stochastic Lanczos quadrature.

The Hessian is over the weights and biases of the Linear/Conv layers (BatchNorm excluded, run in
eval mode, as the fundamental-limit code), restricted to the free coordinates: weights removed by
a mask are fixed at zero, so H acts on the subspace of unmasked entries (probes are zero on the
masked entries and H v is projected back). D = the number of free coordinates.

Cost: one HVP = one backward through each chunk's gradient graph (`hvp="reuse_graph"`, about 2
gradients, memory grows with the number of examples) or a fresh double backward per chunk
(`hvp="recompute"`, about 3 gradients, memory of one chunk); ratios from scripts/bench_analysis.py
(MLP, 2-core CPU). Lanczos with full re-orthogonalisation stores `iters` vectors of length D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..models.base import PRUNABLE_TYPES

HVP_MODES = ("reuse_graph", "recompute")


def hessian_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights and biases of the Linear/Conv layers, by parameter name, in registration order."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            for pname, p in module.named_parameters(recurse=False):
                out[f"{name}.{pname}" if name else pname] = p
    return out


class HessianOperator:
    """v -> H v for the mean cross-entropy over (x, y), on the flattened free coordinates."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        masks: Optional[dict[str, torch.Tensor]] = None,
        hvp: str = "reuse_graph",
        loss_fn: Callable = nn.functional.cross_entropy,
    ):
        if hvp not in HVP_MODES:
            raise ValueError(f"hvp must be one of {HVP_MODES}, got {hvp!r}")
        self.model, self.loss_fn, self.mode = model, loss_fn, hvp
        named = hessian_parameters(model)
        self.names = list(named)
        self.params = list(named.values())
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        device = self.params[0].device
        self.dtype = self.params[0].dtype
        masks = masks or {}
        self.free = torch.cat(
            [
                masks[n].to(device=device, dtype=self.dtype).flatten()
                if n in masks
                else torch.ones(p.numel(), device=device, dtype=self.dtype)
                for n, p in named.items()
            ]
        )
        self.full_dim = self.free.numel()
        self.dim = int(self.free.sum())
        self.chunks = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]
        self.weights = [len(cy) / len(y) for _, cy in self.chunks]
        model.eval()
        self.graphs = [self._gradient(cx, cy) for cx, cy in self.chunks] if hvp == "reuse_graph" else None

    def _gradient(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        loss = self.loss_fn(self.model(x), y)
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        v = v * self.free
        parts = [t.view(s) for t, s in zip(torch.split(v, self.sizes), self.shapes)]
        total = torch.zeros_like(v)
        for i, ((cx, cy), w) in enumerate(zip(self.chunks, self.weights)):
            grads = self.graphs[i] if self.graphs is not None else self._gradient(cx, cy)
            hv = torch.autograd.grad(grads, self.params, grad_outputs=parts, retain_graph=self.graphs is not None, allow_unused=True)
            total += w * torch.cat([(h if h is not None else torch.zeros_like(p)).flatten() for h, p in zip(hv, self.params)])
        return total * self.free

    def rademacher(self, gen: torch.Generator) -> torch.Tensor:
        """A +-1 vector on the free coordinates (0 on masked ones)."""
        z = torch.randint(0, 2, (self.full_dim,), generator=gen).to(self.free.device, self.dtype) * 2 - 1
        return z * self.free


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    v0: torch.Tensor,
    iters: int,
    gen: torch.Generator,
    project: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lanczos with full re-orthogonalisation (Golub & Van Loan, ch. 10; docs/analysis.md). Returns Ritz values theta (ascending)
    and quadrature weights tau = (first component of each Ritz vector)^2, which sum to 1.

    On breakdown (beta = 0: an invariant subspace was found) it restarts with a random vector
    orthogonal to the previous ones and records beta = 0, so T stays block tridiagonal."""
    basis = [v0 / v0.norm()]
    alphas, betas = [], []
    for i in range(iters):
        w = matvec(basis[i])
        scale = float(w.norm())
        alpha = torch.dot(w, basis[i])
        alphas.append(alpha)
        if i == iters - 1:
            break
        w = w - alpha * basis[i] - (betas[-1] * basis[i - 1] if i > 0 else 0)
        stack = torch.stack(basis)
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w = w - stack.T @ (stack @ w)
        beta = w.norm()
        tol = 1e3 * torch.finfo(w.dtype).eps
        if beta <= tol * max(scale, 1e-30):
            beta = torch.zeros((), dtype=w.dtype, device=w.device)
            w = torch.randn(w.shape, generator=gen).to(w)
            if project is not None:
                w = w * project
            start = float(w.norm())
            for _ in range(2):
                w = w - stack.T @ (stack @ w)
            if w.norm() <= tol * start:  # the basis already spans the whole space
                break
            basis.append(w / w.norm())
        else:
            basis.append(w / beta)
        betas.append(beta)
    a = torch.stack(alphas).double().cpu()
    b = torch.stack(betas[: len(alphas) - 1]).double().cpu() if len(alphas) > 1 else torch.zeros(0, dtype=torch.float64)
    t = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
    theta, u = torch.linalg.eigh(t)
    return theta, u[0] ** 2


@dataclass
class Spectrum:
    dim: int  # free coordinates D
    nodes: list[torch.Tensor]  # Ritz values per probe (float64, CPU)
    weights: list[torch.Tensor]  # quadrature weights per probe (each sums to 1)
    trace_hutchinson: float
    trace_hutchinson_se: float  # standard error over the Hutchinson probes

    def quadrature(self, g: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """SLQ estimate of (1/D) sum_i g(lambda_i), averaged over the probes."""
        return float(sum((w * g(n)).sum() for n, w in zip(self.nodes, self.weights)) / len(self.nodes))

    def top_eigenvalues(self, k: int) -> list[float]:
        """The k largest Ritz values of the probe whose run reached the largest one."""
        best = max(self.nodes, key=lambda n: float(n.max()))
        return best.flip(0)[:k].tolist()

    def density(self, points: int, bandwidth: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian-smoothed spectral density on a grid (kernel std = bandwidth x Ritz range),
        normalised to integrate to 1."""
        all_nodes = torch.cat(self.nodes)
        lo, hi = float(all_nodes.min()), float(all_nodes.max())
        sigma = bandwidth * max(hi - lo, 1e-12)
        grid = torch.linspace(lo - 4 * sigma, hi + 4 * sigma, points, dtype=torch.float64)
        dens = torch.zeros_like(grid)
        for n, w in zip(self.nodes, self.weights):
            dens += (w[None, :] * torch.exp(-0.5 * ((grid[:, None] - n[None, :]) / sigma) ** 2)).sum(1)
        dens /= len(self.nodes) * sigma * math.sqrt(2 * math.pi)
        dens /= torch.trapezoid(dens, grid)
        return grid, dens


def hutchinson(op: HessianOperator, probes: int, gen: torch.Generator) -> tuple[float, float]:
    """Tr(H) estimated by mean z^T H z over Rademacher z, with its standard error."""
    values = []
    for _ in range(probes):
        z = op.rademacher(gen)
        values.append(float(torch.dot(z, op(z))))
    t = torch.tensor(values, dtype=torch.float64)
    se = float(t.std() / math.sqrt(probes)) if probes > 1 else float("nan")
    return float(t.mean()), se


def spectrum(op: HessianOperator, lanczos_iter: int, lanczos_num: int, hutchinson_probes: int, gen: torch.Generator) -> Spectrum:
    """SLQ (lanczos_num Rademacher probes, min(lanczos_iter, D) steps each) and Hutchinson's trace.

    Hutchinson's probes come from a stream of their own, seeded from `gen`'s state before SLQ draws anything:
    Lanczos draws a new random direction at each breakdown, and on a low-rank Hessian (a pruned
    model) whether a step counts as one can flip on last-bit differences, which would otherwise move
    every later probe and the trace estimate with it (an accel.compile run differed by 30 %)."""
    fork = torch.Generator().set_state(gen.get_state())  # SLQ's own draws stay as they were
    hutchinson_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=fork)))
    iters = min(lanczos_iter, op.dim)
    nodes, weights = [], []
    for _ in range(lanczos_num):
        theta, tau = lanczos(op, op.rademacher(gen), iters, gen, project=op.free)
        nodes.append(theta)
        weights.append(tau)
    trace, se = hutchinson(op, hutchinson_probes, hutchinson_gen)
    return Spectrum(op.dim, nodes, weights, trace, se)


def training_subset(x: torch.Tensor, y: torch.Tensor, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded subset of `samples` examples (all of them when samples is 0 or at least len(y))."""
    if not samples or samples >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)
    return x[idx], y[idx]
