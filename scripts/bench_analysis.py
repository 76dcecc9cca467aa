"""Benchmarks behind the cost statements in docs/analysis.md, as ratios measured in one process.

1. Empirical NTK: torch.func (vmap of jacrev) vs a per-sample autograd loop, same kernel.
2. Hessian-vector product: `reuse_graph` and `recompute` HVPs vs one plain gradient, same data.

The variants of each part run interleaved (each repeat times every variant once, the order rotating
from repeat to repeat: scripts/script_timing.py), after one untimed call each; the script prints the
median seconds of each variant, the ratio of the medians to the baseline measured in the same process
(the loop NTK against torch.func; each HVP against the gradient), the range of the per-repeat ratios,
and the load average before and after, since the machine may be shared.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench_analysis.py [--repeats 11] [--examples 2048] [--threads 1]

The script sets torch's threads itself (`--threads`, default 1, as docs/analysis.md states): with torch's
default threads on a shared 2-core machine the ratios differ (the NTK loop / torch.func ratio 5.43x at two
threads against 2.34x at one, load average about 5, 2026-12-02).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from prune_cli.analysis.hessian import HessianOperator
from prune_cli.analysis.ntk import empirical_ntk
from prune_cli.models.mlp import MLP
from script_args import positive_int
from script_timing import interleaved, print_load, ratio_lines, repeats_note


def report(times: dict[str, list[float]], baseline: str) -> None:
    """Median of each variant and its ratio to the named baseline's median; the per-round ratios' range."""
    print("\n".join(ratio_lines(times, baseline)))


def loop_ntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    params = list(model.parameters())
    rows = []
    for xi in x:
        g = torch.autograd.grad(model(xi.unsqueeze(0)).sum(), params)
        rows.append(torch.cat([t.flatten() for t in g]))
    j = torch.stack(rows)
    return j @ j.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=11, help="timed rounds per part (default 11)")
    parser.add_argument("--examples", type=positive_int, default=2048, help="examples of the gradient and the HVPs (default 2048)")
    parser.add_argument("--ntk-inputs", type=positive_int, default=64, help="inputs of the NTK (default 64)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1, as docs/analysis.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}; {args.repeats} interleaved rounds, order rotating; {repeats_note(args.repeats)}")
    print_load("before")
    torch.manual_seed(0)
    model = MLP(40, [256, 256], 10).eval()
    x = torch.randn(args.ntk_inputs, 40)
    assert torch.allclose(empirical_ntk(model, x), loop_ntk(model, x), rtol=1e-4, atol=1e-3)
    print(f"NTK, MLP 40-256-256-10, {args.ntk_inputs} inputs:")
    ntk = {"torch.func": lambda: empirical_ntk(model, x), "per-sample loop": lambda: loop_ntk(model, x)}
    report(interleaved(ntk, args.repeats), "torch.func")

    xs, ys = torch.randn(args.examples, 40), torch.randint(0, 10, (args.examples,))
    params = list(model.parameters())

    def gradient():
        return torch.autograd.grad(nn.functional.cross_entropy(model(xs), ys), params)

    v = torch.randn(sum(p.numel() for p in params))
    ops = {mode: HessianOperator(model, xs, ys, args.examples, hvp=mode) for mode in ("reuse_graph", "recompute")}
    print(f"HVP vs one gradient, {args.examples} examples:")
    report(
        interleaved({"gradient": gradient, **{f"HVP {mode}": (lambda op=op: op(v)) for mode, op in ops.items()}}, args.repeats),
        "gradient",
    )
    print_load("after")


if __name__ == "__main__":
    main()
