"""Benchmark: one pruning event of `method.structure=channel_group` reading its channel flow from the
pruner's torch.fx trace (the LayerGraph keeps it) against the same event with a second trace of the
model (what the structure did before: `channel_flow(model)` traced it again).

Both run in this process, interleaved repeat by repeat after one untimed call each, the order
rotating from repeat to repeat (scripts/script_timing.py), on ResNet-20 and ResNet-56 (CIFAR shapes,
global magnitude, sparsity 0.5): the whole event (`prune`: trace, model check, scores, groups,
selection, masks) and the structure call alone. It prints the medians, the ratio retrace / reuse (the
baseline: reuse, what the structure does now) and the machine's load before and after.

    PYTHONPATH=$PWD python scripts/bench_channel_group_trace.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from prune_cli.models import graph
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.pruner import as_method_config
from prune_cli.pruning.registries import STRUCTURES
from prune_cli.pruning.structure import StructureContext
from script_args import positive_int
from script_timing import interleaved, print_load, repeats_note

METHOD = {"name": "b", "score": "magnitude", "allocation": "global", "structure": "channel_group", "sparsity_tolerance": 0.1}


def retracing(layers: graph.LayerGraph) -> graph.ChannelFlow:
    """The earlier behaviour: the channel flow from a fresh trace of the model."""
    return graph.channel_flow(layers.root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.repeats} interleaved rounds per model, order rotating; {repeats_note(args.repeats)}")
    print_load("before")
    reuse = graph.LayerGraph.channel_flow
    for depth in (20, 56):
        model = CifarResNet(depth, 3, 10).eval()
        ctx = PruneContext(method=as_method_config(METHOD), generator=torch.Generator().manual_seed(0))
        layers = graph.trace(model)
        scores = {f"{n}.weight": m.weight.detach().abs() for n, m in model.prunable_layers()}
        counts = {n: s.numel() // 2 for n, s in scores.items()}
        sctx = StructureContext(method=ctx.method, layers=layers, density=0.5)
        structure = STRUCTURES.get("channel_group").masks

        def variant(flow, fn):
            def run() -> None:
                graph.LayerGraph.channel_flow = flow
                try:
                    fn()
                finally:
                    graph.LayerGraph.channel_flow = reuse

            return run

        def event() -> None:
            prune(model, 0.5, ctx)

        def structure_call() -> None:
            structure(scores, counts, "exact", sctx)

        variants = {
            f"{part} {how}": variant(flow, fn)
            for part, fn in (("event", event), ("structure", structure_call))
            for how, flow in (("reuse", reuse), ("retrace", retracing))
        }
        times = interleaved(variants, args.repeats)  # one untimed call each, then rounds in a rotating order
        med = {k: statistics.median(v) for k, v in times.items()}
        for part in ("event", "structure"):
            print(
                f"resnet{depth} {part}: reuse {med[f'{part} reuse'] * 1e3:.1f} ms, retrace {med[f'{part} retrace'] * 1e3:.1f} ms, "
                f"retrace / reuse = {med[f'{part} retrace'] / med[f'{part} reuse']:.2f} ({repeats_note(args.repeats)})"
            )
    print_load("after")


if __name__ == "__main__":
    main()
