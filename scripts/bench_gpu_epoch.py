"""Benchmark: one ResNet-20 epoch on CIFAR-10-shaped data through prune-cli's training loop vs a
bare PyTorch loop on the same device, for fp32, bf16 autocast, channels-last and both
(`accel.*`, prune_cli/core/accel.py; docs/performance.md "GPU").

Synthetic data (default 5,000 images 3x32x32, 10 classes) lives on the device as in a run. Both
loops use the same model architecture, batch size, SGD with momentum and index-permutation
shuffling; the bare loop applies autocast and the memory format by hand. Epochs are interleaved:
each repeat is a round over every variant's two sides (the variant that goes first rotates, and the
side that goes first alternates), so machine noise and drift affect all alike. Printed per variant:
the median times, runner / bare (the loop's overhead, 1.00 = none) and the bare loop's speedup over
bare fp32 (what the setting buys on this device), both as medians of the ratios within each round,
and images per second; the load average before and after. Measurements, never thresholds. (Until
2026-12-02, each variant's repeats ran one variant after another and the speedup divided medians of
epochs timed minutes apart.)

    PYTHONPATH=. python scripts/bench_gpu_epoch.py                      # CUDA if available
    PYTHONPATH=. python scripts/bench_gpu_epoch.py --device cpu         # smoke check: 64 images, 3 repeats
    PYTHONPATH=. python scripts/bench_gpu_epoch.py --variants fp32 bf16 --repeats 7 --csv gpu_epoch.csv
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.core.accel import Accel, bf16_support
from prune_cli.data.splits import DataSplits
from prune_cli.models import build_model
from prune_cli.training import TrainConfig, train
from script_args import description, nonnegative_int, positive_int
from script_timing import print_load, repeats_note, rotated

VARIANTS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "channels_last": ("fp32", True),
    "bf16+channels_last": ("bf16", True),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epoch(model, x, y, batch_size, optimizer, gen, device, precision, channels_last) -> None:
    """A hand-written epoch: what a researcher's own script does with the same settings."""
    order = torch.randperm(len(y), generator=gen).to(device, non_blocking=True)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()  # the runner reads its epoch loss once: both sides end synchronised


def resnet20(device: torch.device, channels_last: bool, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(OmegaConf.create({"name": "resnet20"}), (3, 32, 32), 10).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


class Sides:
    """One variant's two loops, built once and timed epoch by epoch: the runner's model and config, the
    bare loop's model and optimizer (each side keeps training its own model across repeats)."""

    def __init__(self, variant: str, args, device: torch.device, data: DataSplits):
        self.precision, self.channels_last = VARIANTS[variant]
        self.args, self.device, self.data = args, device, data
        self.accel = Accel(device_type=device.type, precision=self.precision, channels_last=self.channels_last)
        self.cfg = OmegaConf.merge(
            OmegaConf.structured(TrainConfig), {"epochs": 1, "batch_size": args.batch_size, "lr": 0.01, "momentum": 0.9}
        )
        self.runner_model, self.bare_model = resnet20(device, self.channels_last), resnet20(device, self.channels_last)
        self.bare_opt = torch.optim.SGD(self.bare_model.parameters(), lr=0.01, momentum=0.9)
        self.gen_runner, self.gen_bare = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)

    def runner(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        train(self.runner_model, self.data, self.cfg, self.gen_runner, "bench", accel=self.accel)
        sync(self.device)
        return time.perf_counter() - start

    def bare(self) -> float:
        d = self.data
        sync(self.device)
        start = time.perf_counter()
        bare_epoch(
            self.bare_model, d.train_x, d.train_y, self.args.batch_size, self.bare_opt, self.gen_bare, self.device,
            self.precision, self.channels_last,
        )  # fmt: skip
        sync(self.device)
        return time.perf_counter() - start


def measure(variants: list[str], args, device: torch.device, data: DataSplits) -> list[dict]:
    """Every variant's runner and bare epochs, interleaved: after one warm-up epoch per side and
    variant, each repeat is a round over all variants (the variant that goes first rotates, and so
    does the side within a variant), so a drift of the machine between rounds affects every variant
    alike. Per variant: the median times, and runner / bare and the bare loop's speedup over bare fp32
    as medians of the ratios within each round (times of the same round)."""
    sides = {v: Sides(v, args, device, data) for v in variants}
    for side in sides.values():  # warm-up: cuDNN plans, allocator, autocast caches
        side.runner(), side.bare()
    times = {v: {"runner": [], "bare": []} for v in variants}
    for i in range(args.repeats):
        for v in rotated(variants, i):
            order = (("runner", sides[v].runner), ("bare", sides[v].bare))
            for which, timed in order if i % 2 == 0 else order[::-1]:
                times[v][which].append(timed())
    fp32 = times["fp32"]["bare"] if "fp32" in times else None
    rows = []
    for v in variants:
        runner, bare = times[v]["runner"], times[v]["bare"]
        rows.append(
            {
                "variant": v,
                "runner_s": statistics.median(runner),
                "bare_s": statistics.median(bare),
                "runner_over_bare": statistics.median(r / b for r, b in zip(runner, bare)),
                "speedup_vs_fp32": statistics.median(f / b for f, b in zip(fp32, bare)) if fp32 else float("nan"),
                "images_per_s": len(data.train_y) / statistics.median(runner),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="auto (CUDA if available), cuda or cpu")
    ap.add_argument("--samples", type=positive_int, help="training images (default 5000 on CUDA, 64 on CPU)")
    ap.add_argument("--repeats", type=positive_int, help="timed rounds: epochs per side and variant (default 5 on CUDA, 3 on CPU)")
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        help="default: all on CUDA; fp32 and channels_last on CPU (bf16 is emulated on most CPUs, and much slower there)",
    )
    ap.add_argument("--threads", type=nonnegative_int, default=0, help="torch intra-op threads on CPU (0: torch's default)")
    ap.add_argument("--csv", default="", help="also write the table to this CSV file")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("argument --device: 'cuda': no CUDA GPU is available here (allowed: auto or cpu)")
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    )
    on_gpu = device.type == "cuda"
    args.samples = args.samples if args.samples is not None else (5000 if on_gpu else 64)
    args.repeats = args.repeats if args.repeats is not None else (5 if on_gpu else 3)
    args.variants = args.variants or (list(VARIANTS) if on_gpu else ["fp32", "channels_last"])
    if args.threads:
        torch.set_num_threads(args.threads)
    ok, reason = bf16_support(device.type)
    variants = [v for v in args.variants if ok or VARIANTS[v][0] == "fp32"]
    if len(variants) < len(args.variants):
        print(f"skipping the bf16 variants: {reason}")
    name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}")
    print(f"{args.samples} images 3x32x32, batch {args.batch_size}, {args.repeats} rounds of one timed epoch per side and variant")
    print(f"{repeats_note(args.repeats)}; baselines: bare fp32 (speedup), the bare loop (runner / bare)")
    print_load("before")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.samples, 3, 32, 32, generator=g), torch.randint(0, 10, (args.samples,), generator=g)
    empty = torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)
    data = DataSplits(*(t.to(device) for t in (x, y, *empty, x[:1], y[:1])), num_classes=10)
    rows = measure(variants, args, device, data)
    print(f"{'variant':<20}{'runner s':>10}{'bare s':>10}{'runner/bare':>13}{'speedup vs fp32':>17}{'images/s':>11}")
    for r in rows:
        print(
            f"{r['variant']:<20}{r['runner_s']:>10.3f}{r['bare_s']:>10.3f}{r['runner_over_bare']:>13.3f}"
            f"{r['speedup_vs_fp32']:>17.2f}{r['images_per_s']:>11.0f}"
        )
    print_load("after")
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
