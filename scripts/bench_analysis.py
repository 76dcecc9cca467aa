"""Benchmarks behind the cost statements in docs/analysis.md, as ratios measured in one process.

1. Empirical NTK: torch.func (vmap of jacrev) vs a per-sample autograd loop, same kernel.
2. Hessian-vector product: `reuse_graph` and `recompute` HVPs vs one plain gradient, same data.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench_analysis.py
"""

from __future__ import annotations

import time

import torch
from torch import nn

from prune_cli.analysis.hessian import HessianOperator
from prune_cli.analysis.ntk import empirical_ntk
from prune_cli.models.mlp import MLP


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def loop_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    params = list(model.parameters())
    rows = []
    for xi in x:
        g = torch.autograd.grad(model(xi.unsqueeze(0)).sum(), params)
        rows.append(torch.cat([t.flatten() for t in g]))
    j = torch.stack(rows)
    return j @ j.T


def main() -> None:
    torch.manual_seed(0)
    model = MLP(40, [256, 256], 10).eval()
    x = torch.randn(64, 40)
    assert torch.allclose(empirical_ntk(model, x), loop_ntk(model, x), rtol=1e-4, atol=1e-3)
    t_func, t_loop = best_of(lambda: empirical_ntk(model, x)), best_of(lambda: loop_ntk(model, x))
    print(
        f"NTK, MLP 40-256-256-10, 64 inputs: torch.func {t_func * 1e3:.1f} ms, per-sample loop "
        f"{t_loop * 1e3:.1f} ms, loop / func = {t_loop / t_func:.2f}x"
    )

    xs, ys = torch.randn(2048, 40), torch.randint(0, 10, (2048,))
    params = list(model.parameters())

    def gradient():
        return torch.autograd.grad(nn.functional.cross_entropy(model(xs), ys), params)

    v = torch.randn(sum(p.numel() for p in params))
    t_grad = best_of(gradient)
    for mode in ("reuse_graph", "recompute"):
        op = HessianOperator(model, xs, ys, 2048, hvp=mode)
        t = best_of(lambda: op(v))
        print(f"HVP ({mode}) / gradient, 2048 examples: {t / t_grad:.2f}x")


if __name__ == "__main__":
    main()
