"""Benchmark of the exact region counters (issue 4).

1. Exact `line` counting (breakpoint propagation) vs dense sampling along the same segment: the
   number of samples is doubled until the sampled count (1 + pattern changes between consecutive
   samples) reaches the exact count; prints both times and their ratio (same process, same segment).
2. Time of an exact `plane` count for a 784-64-64-10 MLP and for LeNet-5 (28x28 input).

Each case is timed --repeats times, the rounds interleaved over the cases, and the medians printed,
with the load average before and after.

    PYTHONPATH=$PWD python scripts/bench_regions.py [--quick] [--repeats 3]   (one torch thread)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from prune_cli.analysis.regions.common import Tracer, pattern, prepare
from prune_cli.analysis.regions.line import count_line
from prune_cli.analysis.regions.plane import count_plane, make_plane
from prune_cli.models.cnn import build_lenet5
from prune_cli.models.mlp import MLP
from script_args import description, positive_int


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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def line_case(name, net, a, b, max_samples):
    """The exact line count, and the number of samples at which dense sampling first reaches it (the
    search doubles from 1024, not timed); then one timed round of both."""
    exact = count_line(net, a, b).count
    n, found = 1024, 0
    while n <= max_samples:
        found = sampled_count(net, a, b, n)
        if found >= exact or n * 2 > max_samples:
            break
        n *= 2
    reached = found >= exact

    def once() -> dict[str, float]:
        return {"exact": timed(lambda: count_line(net, a, b)), "sampling": timed(lambda: sampled_count(net, a, b, n))}

    def show(t: dict[str, float]) -> str:
        return (
            f"line  {name:28s} exact {exact:6d} regions in {t['exact']:8.3f} s | sampling {n:8d} points: {found:6d} "
            f"regions in {t['sampling']:8.3f} s | {'reached' if reached else 'NOT reached'} | "
            f"speed ratio (sampling/exact) {'' if reached else '>= '}{t['sampling'] / t['exact']:.1f}x"
        )

    return once, show


def plane_case(name, net, plane):
    count = count_plane(net, plane).count

    def once() -> dict[str, float]:
        return {"plane": timed(lambda: count_plane(net, plane))}

    def show(t: dict[str, float]) -> str:
        return f"plane {name:28s} {count:7d} regions in {t['plane']:8.2f} s"

    return once, show


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--quick", action="store_true", help="skip the LeNet-5 runs")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds, interleaved over the cases (default 3)")
    args = parser.parse_args()
    # one thread, as the docs' table: torch's default threads spin against the machine's other work
    # (without OMP_NUM_THREADS=1 the MLP cases took 20-40x longer at load 2.5 on 2 cores)
    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; torch threads: 1", flush=True)
    torch.manual_seed(0)
    mnist_like = torch.zeros(3, 1, 28, 28)
    mnist_like[:, :, 6:22, 6:22] = torch.rand(3, 1, 16, 16)  # constant background like MNIST
    cases = []
    for widths in ([64, 64], [256, 256, 256]):
        net = prepare(MLP(784, widths, 10))
        a, b = mnist_like[0].flatten().double(), mnist_like[1].flatten().double()
        cases.append(line_case(f"MLP 784-{'-'.join(map(str, widths))}-10", net, a, b, 2**22))
    lenet = prepare(build_lenet5(None, (1, 28, 28), 10))
    if not args.quick:
        cases.append(line_case("LeNet-5", lenet, mnist_like[0].double(), mnist_like[1].double(), 2**17))
    mlp = prepare(MLP(784, [64, 64], 10))
    cases.append(plane_case("MLP 784-64-64-10, box [0,1]", mlp, make_plane(mnist_like.reshape(3, -1), "box", box=(0.0, 1.0))))
    if not args.quick:
        for radius in (0.05, 0.2):
            cases.append(plane_case(f"LeNet-5, square R={radius}", lenet, make_plane(mnist_like, "square", radius=radius)))
    rounds: list[list[dict[str, float]]] = [[] for _ in cases]
    for _ in range(args.repeats):  # interleaved: each round times every case once
        for i, (once, _show) in enumerate(cases):
            rounds[i].append(once())
    print(f"medians of {args.repeats} interleaved rounds (the search for the sample count and a first count untimed)")
    for (_once, show), times in zip(cases, rounds):
        print(show({k: statistics.median(t[k] for t in times) for k in times[0]}), flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
