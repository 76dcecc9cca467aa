"""Measured vs theoretical speedup against sparsity, per structure and execution path (docs/speedup.md).

Structures: unstructured, N:M (where 1 - N/M is the sparsity), 4x4 and 16x16 blocks, BCR with 4x4
and 16x16 blocks, and channel pruning (whose extra path `compact_dense` is the compacted MLP).

An MLP with 1024-4096-wide layers (input 1024, hidden [4096, 4096], 1024 outputs; `--quick`: hidden
[1024, 1024], 4 sparsities, no 16x16 block structure) is pruned by weight magnitude (layerwise allocation) with each
structure, at each sparsity, and every execution path of prune_cli/models/sparse.py is timed against
the dense model in the same process: the models are interleaved repeat by repeat, the order rotating
with the repeat (metrics/latency.py time_models: a fixed order, dense first, favoured the later
sparse paths), and each ratio is dense median / path median, printed with the interquartile range of
the per-repeat ratios dense / path (the repeats are paired in time) as its spread. Theoretical
speedup = dense / kept multiply-accumulates (the FLOPs ratio of prune_cli/metrics/cost.py). The
machine's 1-minute load average is printed before and after the run and around every timing (also
in the CSV): the numbers are measurements on a shared machine, never thresholds.

`--convnets` measures VGG-11 and ResNet-20 on CIFAR-shaped 3x32x32 inputs instead (batch sizes 1
and 16): VGG-11 pruned by the channel structure (masked, compacted, im2col CSR), ResNet-20 with
channel masks coupled across its residual groups (built here: see coupled_channel_masks; compacted
through the joins), with `method.structure=channel_group` (the structure that prunes such coupled
groups, layerwise; compacted), and with unstructured (also `im2col_dense`: the im2col path with dense weights,
what im2col alone costs) and 4x4 block masks (im2col CSR / BSR).

    PYTHONPATH=. python scripts/bench_speedup.py --quick              # a couple of minutes
    PYTHONPATH=. python scripts/bench_speedup.py --convnets --quick   # about six minutes
    PYTHONPATH=. python scripts/bench_speedup.py --threads 1 --csv speedup_bench.csv
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from prune_cli.metrics.cost import layer_table
from prune_cli.metrics.latency import load_average, time_models
from prune_cli.models.compact import compact
from prune_cli.models.graph import channel_flow
from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet
from prune_cli.models.sparse import SparseConv, SparseLinear, to_sparse
from prune_cli.models.vgg import PLANS, VGG
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.pruner import LayerCollapse
from script_args import positive_int, sparsity_arg


def nm_for(sparsity: float) -> tuple[int, int] | None:
    """N:M with 1 - N/M = sparsity and M a power of two up to 16 (2:4, 1:4, 1:8, 1:16), else None."""
    for n, m in ((2, 4), (1, 4), (1, 8), (1, 16)):
        if abs(1 - n / m - sparsity) < 1e-9:
            return n, m
    return None


def masked_model(dense: torch.nn.Module, structure: str, sparsity: float, block: list[int]) -> torch.nn.Module | str | None:
    method = {
        "score": "magnitude",
        "allocation": "layerwise",
        "structure": structure,
        "block_shape": block,
        "sparsity_tolerance": 0.05 if structure in ("channel", "channel_group") else 0.02,
    }
    if structure == "nm":
        nm = nm_for(sparsity)
        if nm is None:
            return None
        method.update(nm_n=nm[0], nm_m=nm[1])
    if structure == "bcr" and sparsity > 1 - 1 / (block[0] * block[1]):
        return "unreachable"  # every BCR block keeps at least one row x one column
    model = copy.deepcopy(dense)
    masks = prune(
        model, sparsity, PruneContext(method=OmegaConf.create({"name": "bench", **method}), generator=torch.Generator().manual_seed(0))
    )
    with torch.no_grad():
        apply_masks(model, masks)
    return model.eval()


def time_interleaved(models: dict, x: torch.Tensor, warmup: int, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per forward pass of each model in every repeat: the metrics' own timing
    (prune_cli/metrics/latency.py time_models), which interleaves the models repeat by repeat and
    rotates their order. This script's copy ran the dense model first in every repeat, so whatever
    favours the later calls of a repeat (a warm cache, a frequency ramp) always favoured the paths."""
    return time_models(models, x, warmup, repeats)


def ratio_stats(times: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Per path (every model but `dense`): dense median / path median, and the 25th and 75th
    percentiles of the per-repeat ratios dense / path (paired: the repeats interleave them), the
    spread printed beside the median on this shared machine."""
    base = float(np.median(times["dense"]))
    out = {}
    for name, t in times.items():
        if name != "dense":
            paired = times["dense"] / t
            out[name] = (base / float(np.median(t)), float(np.percentile(paired, 25)), float(np.percentile(paired, 75)))
    return out


def timed_rows(paths: dict, x: torch.Tensor, warmup: int, repeats: int, context: dict) -> list[dict]:
    """One row per path (not `dense`): medians, the median ratio, its spread and the load around the timing."""
    before = load_average()
    times = time_interleaved(paths, x, warmup, repeats)
    after = load_average()
    dense_ms = float(np.median(times["dense"])) * 1e3
    return [
        {
            **context,
            "path": name,
            "dense_ms": dense_ms,
            "path_ms": float(np.median(times[name])) * 1e3,
            "measured_speedup": ratio,
            "speedup_q25": q25,
            "speedup_q75": q75,
            "load_before": before,
            "load_after": after,
        }
        for name, (ratio, q25, q75) in ratio_stats(times).items()
    ]


def summary(done: list[dict]) -> str:
    """`path@batch 1.23x [1.10-1.31]` per row (median ratio [interquartile range of the per-repeat
    ratios]), then the load average before the first and after the last timing."""
    text = ", ".join(
        f"{r['path']}@{r['batch']} {r['measured_speedup']:.2f}x [{r['speedup_q25']:.2f}-{r['speedup_q75']:.2f}]" for r in done
    )
    if done:
        text += f"; load {done[0]['load_before']:.2f} -> {done[-1]['load_after']:.2f}"
    return text


def coupled_channel_masks(model: torch.nn.Module, keep_fraction: float) -> dict[str, torch.Tensor]:
    """Channel masks coupled across residual groups (DepGraph's grouping, Fang et al. CVPR 2023):
    the channels tied together by additions (prune_cli/models/graph.py channel_flow) are ranked by
    the summed L1 norm of the filters that produce them; every producing layer keeps
    round(keep_fraction * n) of the channels it introduces (a stage's new channels; the ones it
    shares with an earlier stage were decided there), and every layer reading a removed channel
    loses that input. The classifier keeps its outputs."""
    flow = channel_flow(model)
    modules = dict(model.named_modules())
    norm: dict[int, float] = {}
    for name, ids in flow.produces.items():
        rows = modules[name].weight.detach().abs().flatten(1).sum(1).tolist()
        for i, r in zip(ids, rows):
            norm[i] = norm.get(i, 0.0) + r
    decided: dict[int, bool] = {i: True for i in flow.pinned}
    for ids in flow.produces.values():
        new = [i for i in dict.fromkeys(ids) if i not in decided]
        ranked = sorted(new, key=lambda i: -norm[i])
        kept = max(1, round(keep_fraction * len(new))) if new else 0
        decided.update({i: rank < kept for rank, i in enumerate(ranked)})
    masks = {}
    for name, module in model.prunable_layers():
        mask = torch.ones_like(module.weight, dtype=torch.bool)
        mask[~torch.tensor([decided[i] for i in flow.produces[name]])] = False
        source = flow.reads.get(name)
        if source is not None:
            ids, per = source
            mask[:, ~torch.tensor([decided[i] for i in ids]).repeat_interleave(per)] = False
        masks[f"{name}.weight"] = mask
    return masks


def im2col_dense(model: torch.nn.Module) -> torch.nn.Module:
    """The sparse_csr path's computation (im2col, then one matmul per layer) with dense weights:
    separates what im2col costs from what the sparse kernel saves."""
    copied, _ = to_sparse(model, "csr")
    for m in copied.modules():
        if isinstance(m, (SparseConv, SparseLinear)):
            m.weight = m.weight.to_dense()
    return copied


def conv_model(dense: torch.nn.Module, structure: str, sparsity: float, block: list[int]):
    """The masked conv net: `channel` through the channel structure for chains (VGG), coupled
    residual-group masks for ResNets; other structures as for the MLP."""
    if structure == "channel" and isinstance(dense, CifarResNet):
        model = copy.deepcopy(dense)
        masks = coupled_channel_masks(model, (1 - sparsity) ** 0.5)  # inputs and outputs both shrink
        with torch.no_grad():
            apply_masks(model, masks)
        return model.eval()
    return masked_model(dense, structure, sparsity, block)


CONV_MODELS = ("vgg11", "resnet20")  # conv_rows' nets: --models is checked against them before any work
CONV_STRUCTURES = {"channel": [4, 4], "channel_group": [4, 4], "unstructured": [4, 4], "block": [4, 4]}


def conv_rows(args, sparsities: list[float], warmup: int, repeats: int, started: float) -> list[dict]:
    """Measured vs theoretical speedup of CIFAR-shaped (3x32x32) VGG-11 and ResNet-20: channel
    pruning (masked, compacted, im2col CSR) and, for ResNet-20, unstructured and 4x4 block masks
    (im2col CSR / BSR). Theoretical speedup: dense / kept multiply-accumulates (metrics/cost.py)."""
    torch.manual_seed(0)
    nets = {"vgg11": VGG(PLANS["vgg11"], 3, 10), "resnet20": CifarResNet(20, 3, 10)}
    structures = dict(CONV_STRUCTURES)
    rows = []
    for net_name, dense in nets.items():
        if args.models and net_name not in args.models:
            continue
        with torch.no_grad():  # BatchNorm statistics of real activations, not the init's 0 / 1
            dense.train()
            dense(torch.randn(64, 3, 32, 32))
        dense.eval()
        prunable = [f"{n}.weight" for n, _ in dense.prunable_layers()]
        for sparsity in sorted(sparsities):
            for structure, block in structures.items():
                if args.structures and structure not in args.structures:
                    continue
                if net_name == "vgg11" and structure != "channel" and not args.structures:
                    continue  # by default VGG-11 is for channel pruning and compaction; ResNet-20 covers the rest
                try:
                    model = conv_model(dense, structure, sparsity, block)
                except LayerCollapse as err:
                    print(f"  {net_name} {structure} s={sparsity}: skipped, the structure disconnects the network ({err})"[:240])
                    continue
                table = layer_table(model, prunable, (3, 32, 32))
                theory = sum(r["flops_dense"] for r in table) / sum(r["flops_sparse"] for r in table)
                kept = sum(r["nonzero"] for r in table) / sum(r["params"] for r in table)
                paths = {"dense": dense, "masked_dense": model, "sparse_csr": to_sparse(model, "csr")[0]}
                if structure == "block":
                    paths["sparse_bsr"] = to_sparse(model, "bsr", tuple(block))[0]
                if structure == "unstructured":
                    paths["im2col_dense"] = im2col_dense(model)
                if structure in ("channel", "channel_group"):
                    small, report = compact(model)
                    paths["compact_dense"] = small
                    if report.dense_zero_rows:
                        print(f"  {net_name}: {report.describe()}")
                for batch in args.conv_batch:
                    x = torch.randn(batch, 3, 32, 32)
                    with torch.no_grad():
                        ref = model(x)
                        for name, m in paths.items():
                            if name != "dense":
                                assert torch.allclose(m(x), ref, rtol=1e-3, atol=1e-3), (net_name, structure, sparsity, name)
                    context = {
                        "structure": f"{net_name} {structure}",
                        "sparsity": round(1 - kept, 4),
                        "batch": batch,
                        "theoretical_speedup": theory,
                    }
                    rows += timed_rows(paths, x, warmup, repeats * 3 if batch == 1 else repeats, context)
                done = [r for r in rows if r["structure"] == f"{net_name} {structure}" and r["sparsity"] == round(1 - kept, 4)]
                print(
                    f"  {net_name} {structure} s={1 - kept:.3f} (theory {theory:.2f}x): {summary(done)} "
                    f"[{time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="hidden [1024, 1024], 4 sparsities, fewer repeats")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--batch", type=positive_int, nargs="+", default=[1, 256], help="batch sizes (default 1 256)")
    parser.add_argument("--structures", nargs="+", help="only these structures (names as printed)")
    parser.add_argument("--sparsities", type=sparsity_arg, nargs="+", help="override the sparsity list")
    parser.add_argument("--csv", default="", help="also write the table to this CSV file")
    parser.add_argument("--convnets", action="store_true", help="VGG-11 and ResNet-20 on 3x32x32 inputs instead of the MLP")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=CONV_MODELS,
        help="only these convnets (vgg11, resnet20); needs --convnets (the MLP benchmark has one model: refused without it)",
    )
    parser.add_argument(
        "--conv-batch", type=positive_int, nargs="+", default=[1, 16], help="with --convnets: batch sizes (default 1 16)"
    )
    args = parser.parse_args()
    if args.models and not args.convnets:  # it was silently ignored: the MLP benchmark ran
        parser.error(f"argument --models: {' '.join(args.models)}: applies only with --convnets (models: {', '.join(CONV_MODELS)})")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden = [1024, 1024] if args.quick else [4096, 4096]
    sparsities = [0.5, 0.75, 0.9, 0.99] if args.quick else [0.5, 0.75, 0.875, 0.9, 0.9375, 0.95, 0.98, 0.99]
    structures = {
        "unstructured": [4, 4],
        "nm": [4, 4],
        "block": [4, 4],
        "block16": [16, 16],
        "bcr": [4, 4],
        "bcr16": [16, 16],
        "channel": [4, 4],
    }
    if args.quick:
        del structures["block16"]
    if args.structures:
        known = CONV_STRUCTURES if args.convnets else structures  # the MLP's and the convnets' lists differ
        unknown = sorted(set(args.structures) - set(known))
        if unknown:  # an empty table failed later with a pandas KeyError
            where = "with --convnets" if args.convnets else "for the MLP (channel_group: with --convnets)"
            raise SystemExit(f"bench_speedup.py: error: --structures {' '.join(unknown)}: not one of {', '.join(known)} {where}")
        structures = {k: v for k, v in structures.items() if k in args.structures}
    if args.sparsities:
        sparsities = args.sparsities
    warmup, repeats = (1, 5) if args.quick else (2, 9)
    if args.convnets:
        load_before = os.getloadavg()
        print(
            f"VGG-11 and ResNet-20 on 3x32x32, threads={args.threads}, batches={args.conv_batch}, load average before: {load_before}"
        )
        conv_sparsities = args.sparsities or ([0.5, 0.75, 0.9] if args.quick else [0.5, 0.75, 0.9, 0.95, 0.99])
        report(conv_rows(args, conv_sparsities, warmup, repeats, time.perf_counter()), args.csv)
        return
    dense = MLP(1024, hidden, 1024).eval()
    load_before = os.getloadavg()
    print(f"MLP 1024 -> {hidden} -> 1024, threads={args.threads}, batches={args.batch}, load average before: {load_before}")
    rows = []
    started = time.perf_counter()
    for sparsity in sorted(sparsities):
        for label, block in structures.items():
            structure = label.rstrip("0123456789")
            model = masked_model(dense, structure, sparsity, block)
            if model is None:  # N:M only where 1 - N/M is the sparsity
                continue
            if isinstance(model, str):
                print(f"  {label} s={sparsity}: below the structure's minimum density, skipped")
                continue
            kept = sum(int(torch.count_nonzero(m.weight)) for m in model.net if isinstance(m, torch.nn.Linear))
            total = sum(m.weight.numel() for m in model.net if isinstance(m, torch.nn.Linear))
            paths = {"dense": dense, "masked_dense": model, "sparse_csr": to_sparse(model, "csr")[0]}
            if structure in ("block", "bcr"):
                paths["sparse_bsr"] = to_sparse(model, "bsr", tuple(block))[0]
            if structure == "channel":
                paths["compact_dense"] = compact(model)[0]
            for batch in args.batch:
                x = torch.randn(batch, 1024)
                with torch.no_grad():
                    ref = model(x)
                    for name, m in paths.items():
                        if name != "dense":
                            assert torch.allclose(m(x), ref, rtol=1e-3, atol=1e-3), (label, sparsity, name)
                # batch-1 passes take well under a millisecond: ten times the repeats for a stable median
                sparse = round(1 - kept / total, 4)
                context = {"structure": label, "sparsity": sparse, "batch": batch, "theoretical_speedup": total / kept}
                rows += timed_rows(paths, x, warmup, repeats * 10 if batch == 1 else repeats, context)
            done = [r for r in rows if r["structure"] == label and r["sparsity"] == round(1 - kept / total, 4)]
            print(
                f"  {label} s={sparsity} (theory {total / kept:.2f}x): {summary(done)} [{time.perf_counter() - started:.0f} s]",
                flush=True,
            )
    report(rows, args.csv)
    print(f"total {time.perf_counter() - started:.0f} s")


def report(rows: list[dict], csv: str) -> None:
    """Print the pivot table (measured speedup per path and batch) and the load average after."""
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    table = df.pivot_table(
        index=["structure", "sparsity", "theoretical_speedup"], columns=["path", "batch"], values="measured_speedup"
    )
    print(table.round(2).to_string())
    df["spread"] = [f"{a:.2f}-{b:.2f}" for a, b in zip(df.speedup_q25, df.speedup_q75)]
    spread = df.pivot_table(
        index=["structure", "sparsity", "theoretical_speedup"], columns=["path", "batch"], values="spread", aggfunc="first"
    )
    print("interquartile range of the per-repeat ratios dense / path:")
    print(spread.to_string())
    df = df.drop(columns="spread")
    dense = df.groupby(["structure", "batch"]).dense_ms.median().round(2)
    print("dense median ms per structure and batch:", dense.to_dict())
    if csv:
        df.to_csv(csv, index=False)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
