"""Benchmark of the exact region counters (issue 4).

1. Exact `line` counting (breakpoint propagation) vs dense sampling along the same segment: the
   number of samples is doubled until the sampled count (1 + pattern changes between consecutive
   samples) reaches the exact count; prints both times and their ratio sampling / exact (same process,
   same segment; dense sampling is the baseline the exact count replaces).
2. Time of an exact `plane` count for a 784-64-64-10 MLP and for LeNet-5 (28x28 input): absolute
   times only, printed as such (no other method counts the regions of a plane exactly, so there is
   no baseline to divide by).

Each timed call is repeated --repeats times, the rounds interleaved over all cases and methods with
the order rotating from round to round (scripts/script_timing.py), after one untimed call each (the
counts and the sample-count search), and the medians printed, with the load average before and after.

    PYTHONPATH=$PWD python scripts/bench_regions.py [--quick] [--repeats 3]   (one torch thread)
"""

from __future__ import annotations

import argparse
import statistics

import torch

from prune_cli.analysis.regions.common import Tracer, pattern, prepare
from prune_cli.analysis.regions.line import count_line
from prune_cli.analysis.regions.plane import count_plane, make_plane
from prune_cli.models.cnn import build_lenet5
from prune_cli.models.mlp import MLP
from script_args import description, positive_int
from script_timing import interleaved, print_load, repeats_note


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

    variants = {"exact": lambda: count_line(net, a, b), "sampling": lambda: sampled_count(net, a, b, n)}

    def show(t: dict[str, float]) -> str:
        return (
            f"line  {name:28s} exact {exact:6d} regions in {t['exact']:8.3f} s | sampling {n:8d} points: {found:6d} "
            f"regions in {t['sampling']:8.3f} s | {'reached' if reached else 'NOT reached'} | "
            f"speed ratio (sampling/exact) {'' if reached else '>= '}{t['sampling'] / t['exact']:.1f}x"
        )

    return variants, show


def plane_case(name, net, plane):
    count = count_plane(net, plane).count

    variants = {"plane": lambda: count_plane(net, plane)}

    def show(t: dict[str, float]) -> str:
        return f"plane {name:28s} {count:7d} regions in {t['plane']:8.2f} s (absolute time: no baseline)"

    return variants, show


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--quick", action="store_true", help="skip the LeNet-5 runs")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds, interleaved over the cases (default 3)")
    args = parser.parse_args()
    # one thread, as the docs' table: torch's default threads spin against the machine's other work
    # (without OMP_NUM_THREADS=1 the MLP cases took 20-40x longer at load 2.5 on 2 cores)
    torch.set_num_threads(1)
    print("torch threads: 1")
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
    # every timed call of every case in one rotating interleave; the exact count, the search for the
    # sample count (ending with a sampled count at the chosen n) and the first plane count were each
    # variant's untimed warm-up call
    flat = {(i, key): fn for i, (variants, _show) in enumerate(cases) for key, fn in variants.items()}
    print_load("before")
    times = interleaved(flat, args.repeats, warmup=False)
    print(f"{args.repeats} interleaved rounds, order rotating; {repeats_note(args.repeats)}")
    for i, (variants, show) in enumerate(cases):
        print(show({key: statistics.median(times[(i, key)]) for key in variants}), flush=True)
    print_load("after")


if __name__ == "__main__":
    main()
