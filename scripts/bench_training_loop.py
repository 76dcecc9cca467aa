"""Benchmark: one epoch of prune-cli's training loop vs a bare PyTorch loop, same process.

Same model, data, batch size and optimizer (SGD with momentum); the bare loop shuffles by index
permutation as well. Epochs are interleaved (the side that goes first alternates, scripts/script_timing.py)
and the median of the repeats is compared, so machine noise affects both sides alike; the load average
(with the CPU count) is printed before and after, and one repeat is labelled a single repeat (no median).
Target: ratio <= 1.10.

    python scripts/bench_training_loop.py [--repeats 7] [--width 512] [--masked]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.training import TrainConfig
from prune_cli.data.splits import DataSplits
from prune_cli.models.mlp import MLP
from prune_cli.training import train
from script_args import description, positive_int
from script_timing import SINGLE, print_load, repeats_note, rounds


def bare_epoch(model, x, y, batch_size, optimizer, gen, masks):
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(y), generator=gen)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        loss = loss_fn(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if masks:
            with torch.no_grad():
                for p, m in masks:
                    p.mul_(m)


def summary(runner: list[float], bare: list[float]) -> list[str]:
    """The printed comparison of the epochs' seconds: medians and their ratio, labelled by `repeats_note`
    (one repeat printed "median" and a ratio to quote, docs/performance.md says it must say it is a single
    repeat)."""
    r, b = statistics.median(runner), statistics.median(bare)
    note = repeats_note(len(runner))
    what = "epoch" if len(runner) == 1 else "epoch median"
    lines = [
        f"runner {what} {r * 1e3:.1f} ms, bare PyTorch {what} {b * 1e3:.1f} ms ({note})",
        f"ratio runner/bare = {r / b:.3f}  (target <= 1.10)",
    ]
    if len(runner) == 1:
        lines.append(f"{SINGLE}: one noisy sample on a shared machine; rerun with --repeats 3 before quoting the ratio")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--repeats", type=positive_int, default=7)
    ap.add_argument("--width", type=positive_int, default=256)
    ap.add_argument("--samples", type=positive_int, default=8000)
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--masked", action="store_true", help="both loops keep a 90 %% sparse mask enforced")
    args = ap.parse_args()
    print_load("before")
    torch.manual_seed(0)
    x, y = torch.randn(args.samples, 40), torch.randint(0, 10, (args.samples,))
    empty = torch.zeros(0, 40), torch.zeros(0, dtype=torch.long)
    data = DataSplits(x, y, *empty, x[:1000], y[:1000], num_classes=10)
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 1, "batch_size": args.batch_size, "lr": 0.01, "momentum": 0.9})

    runner_model, bare_model = MLP(40, [args.width] * 2, 10), MLP(40, [args.width] * 2, 10)
    masks = {n: torch.rand_like(p) > 0.9 for n, p in runner_model.named_parameters() if n.endswith("weight")}
    bare_masks = [(p, masks[n].float()) for n, p in bare_model.named_parameters() if n in masks] if args.masked else []
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9)
    gen_runner, gen_bare = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)

    def time_runner():
        start = time.perf_counter()
        train(runner_model, data, cfg, gen_runner, "bench", masks if args.masked else None)
        return time.perf_counter() - start

    def time_bare():
        start = time.perf_counter()
        bare_epoch(bare_model, x, y, args.batch_size, bare_opt, gen_bare, bare_masks)
        return time.perf_counter() - start

    time_runner(), time_bare()  # warm-up
    timed = {"runner": time_runner, "bare": time_bare}
    times: dict[str, list[float]] = {"runner": [], "bare": []}
    for _, side in rounds(timed, args.repeats):  # the side that goes first alternates, so neither gets a systematic edge
        times[side].append(timed[side]())
    print_load("after")
    print(
        f"threads={torch.get_num_threads()} model=MLP(40-{args.width}-{args.width}-10) samples={args.samples} "
        f"batch={args.batch_size} masked={args.masked}"
    )
    for line in summary(times["runner"], times["bare"]):
        print(line)


if __name__ == "__main__":
    main()
