"""GraNd's per-example gradient norms (prune_cli/data/pruning/grand.py: torch.func vmap(grad) over
functional_call, in chunks) against the baseline of one loss.backward() per example, on the
default MLP (MNIST-1D shape, 40-256-256-10) in one process, interleaved and repeated (one untimed
call each first, the order rotating from round to round: scripts/script_timing.py); prints the median
seconds of each, the ratio loop / vmap, the machine's load before and after the timing, and checks
that both give the same norms.

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench_grand.py --examples 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from prune_cli.data.pruning.grand import per_example_gradient_norms
from script_args import description, positive_int
from script_timing import interleaved, print_load, repeats_note


def backward_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())))
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--examples", type=positive_int, default=1024)
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    x, y = torch.randn(args.examples, 40), torch.randint(0, 10, (args.examples,))
    torch.testing.assert_close(per_example_gradient_norms(model, x, y), backward_loop(model, x, y), rtol=1e-5, atol=1e-7)
    threads = torch.get_num_threads()
    print(f"examples {args.examples}, torch threads {threads}; {args.repeats} interleaved rounds, {repeats_note(args.repeats)}")
    print_load("before")
    # the baseline (loop) named before timing; one untimed call each, then rounds in a rotating order
    variants = {"loop": lambda: backward_loop(model, x, y), "vmap": lambda: per_example_gradient_norms(model, x, y)}
    times = interleaved(variants, args.repeats)
    print_load("after")
    vmap, loop = statistics.median(times["vmap"]), statistics.median(times["loop"])
    print(f"backward loop (baseline) median {loop:.3f} s, vmap median {vmap:.3f} s, loop / vmap = {loop / vmap:.1f}x")


if __name__ == "__main__":
    main()
