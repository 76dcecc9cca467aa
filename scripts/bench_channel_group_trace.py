"""Benchmark: one pruning event of `method.structure=channel_group` reading its channel flow from the
pruner's torch.fx trace (the LayerGraph keeps it) against the same event with a second trace of the
model (what the structure did before: `channel_flow(model)` traced it again).

Both run in this process, interleaved repeat by repeat, on ResNet-20 and ResNet-56 (CIFAR shapes,
global magnitude, sparsity 0.5): the whole event (`prune`: trace, model check, scores, groups,
selection, masks) and the structure call alone. It prints the medians, the ratio retrace / reuse and
the machine's load before and after.

    PYTHONPATH=$PWD python scripts/bench_channel_group_trace.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from prune_cli.models import graph
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.pruner import as_method_config
from prune_cli.pruning.registries import STRUCTURES
from prune_cli.pruning.structure import StructureContext
from script_args import positive_int

METHOD = {"name": "b", "score": "magnitude", "allocation": "global", "structure": "channel_group", "sparsity_tolerance": 0.1}


def retracing(layers: graph.LayerGraph) -> graph.ChannelFlow:
    """The earlier behaviour: the channel flow from a fresh trace of the model."""
    return graph.channel_flow(layers.root)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load before: {os.getloadavg()}")
    reuse = graph.LayerGraph.channel_flow
    for depth in (20, 56):
        model = CifarResNet(depth, 3, 10).eval()
        ctx = PruneContext(method=as_method_config(METHOD), generator=torch.Generator().manual_seed(0))
        layers = graph.trace(model)
        scores = {f"{n}.weight": m.weight.detach().abs() for n, m in model.prunable_layers()}
        counts = {n: s.numel() // 2 for n, s in scores.items()}
        sctx = StructureContext(method=ctx.method, layers=layers, density=0.5)
        structure = STRUCTURES.get("channel_group").masks
        times: dict[str, list[float]] = {k: [] for k in ("event reuse", "event retrace", "structure reuse", "structure retrace")}
        for _ in range(args.repeats):
            for how, flow in (("reuse", reuse), ("retrace", retracing)):
                graph.LayerGraph.channel_flow = flow
                try:
                    times[f"event {how}"].append(timed(lambda: prune(model, 0.5, ctx)))
                    times[f"structure {how}"].append(timed(lambda: structure(scores, counts, "exact", sctx)))
                finally:
                    graph.LayerGraph.channel_flow = reuse
        med = {k: statistics.median(v) for k, v in times.items()}
        for part in ("event", "structure"):
            print(
                f"resnet{depth} {part}: reuse {med[f'{part} reuse'] * 1e3:.1f} ms, retrace {med[f'{part} retrace'] * 1e3:.1f} ms, "
                f"retrace / reuse = {med[f'{part} retrace'] / med[f'{part} reuse']:.2f} (medians of {args.repeats})"
            )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
