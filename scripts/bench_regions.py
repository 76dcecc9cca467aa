"""Benchmark of the exact region counters (issue 4).

1. Exact `line` counting (breakpoint propagation) vs dense sampling along the same segment: the
   number of samples is doubled until the sampled count (1 + pattern changes between consecutive
   samples) reaches the exact count; prints both times and their ratio (same process, same segment).
2. Time of an exact `plane` count for a 784-64-64-10 MLP and for LeNet-5 (28x28 input).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/bench_regions.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from prune_cli.analysis.regions.common import Tracer, pattern, prepare
from prune_cli.analysis.regions.line import count_line
from prune_cli.analysis.regions.plane import count_plane, make_plane
from prune_cli.models.cnn import build_lenet5
from prune_cli.models.mlp import MLP


def sampled_count(net, a, b, n: int, batch: int = 8192) -> int:
    tracer = Tracer(net)
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    changes, prev = 0, None
    for s in range(0, n, batch):
        x = a[None] + t[s : s + batch].reshape(-1, *[1] * a.dim()) * (b - a)[None]
        with torch.no_grad():
            p = pattern(tracer, x)
        if prev is not None:
            p = torch.cat([prev, p])
        changes += int((p[1:] != p[:-1]).any(dim=1).sum())
        prev = p[-1:]
    return 1 + changes


def bench_line(name, net, a, b, max_samples):
    start = time.perf_counter()
    exact = count_line(net, a, b).count
    t_exact = time.perf_counter() - start
    n, found, t_sample, tried = 1024, 0, 0.0, 0
    while n <= max_samples:
        start = time.perf_counter()
        found = sampled_count(net, a, b, n)
        t_sample, tried = time.perf_counter() - start, n  # time of this sampling run alone
        if found >= exact:
            break
        n *= 2
    n = tried
    reached = found >= exact
    ratio = t_sample / t_exact
    print(
        f"line  {name:28s} exact {exact:6d} regions in {t_exact:8.3f} s | sampling {n:8d} points: {found:6d} "
        f"regions in {t_sample:8.3f} s | {'reached' if reached else 'NOT reached'} | "
        f"speed ratio (sampling/exact) {'' if reached else '>= '}{ratio:.1f}x",
        flush=True,
    )


def bench_plane(name, net, plane):
    start = time.perf_counter()
    result = count_plane(net, plane)
    print(f"plane {name:28s} {result.count:7d} regions in {time.perf_counter() - start:8.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the LeNet-5 runs")
    args = parser.parse_args()
    torch.manual_seed(0)
    mnist_like = torch.zeros(3, 1, 28, 28)
    mnist_like[:, :, 6:22, 6:22] = torch.rand(3, 1, 16, 16)  # constant background like MNIST
    for widths in ([64, 64], [256, 256, 256]):
        net = prepare(MLP(784, widths, 10))
        bench_line(
            f"MLP 784-{'-'.join(map(str, widths))}-10", net, mnist_like[0].flatten().double(), mnist_like[1].flatten().double(), 2**22
        )
    lenet = prepare(build_lenet5(None, (1, 28, 28), 10))
    if not args.quick:
        bench_line("LeNet-5", lenet, mnist_like[0].double(), mnist_like[1].double(), 2**17)
    mlp = prepare(MLP(784, [64, 64], 10))
    bench_plane("MLP 784-64-64-10, box [0,1]", mlp, make_plane(mnist_like.reshape(3, -1), "box", box=(0.0, 1.0)))
    if not args.quick:
        for radius in (0.05, 0.2):
            bench_plane(f"LeNet-5, square R={radius}", lenet, make_plane(mnist_like, "square", radius=radius))


if __name__ == "__main__":
    main()
