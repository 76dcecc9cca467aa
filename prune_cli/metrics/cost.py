"""Achieved sparsity, parameter counts, compression and FLOPs (dense vs sparse).

FLOPs are counted as multiply-accumulates of Linear/Conv weights per input example (the
ShrinkBench convention; biases, norms and activations excluded). A pruned weight saves its
multiply-accumulate at every output position where it is applied.
"""

from __future__ import annotations


import torch
from torch import nn

from ..models.base import PRUNABLE_TYPES, output_positions


def layer_table(model: nn.Module, prunable: list[str], input_shape: tuple[int, ...]) -> list[dict]:
    """One row per Linear/Conv layer: shape, density, FLOPs, and whether this run may prune it
    (`prunable` holds the parameter names the method selected, e.g. "net.1.weight"). A layer that
    forward never calls (a plugin model's spare module) costs no FLOPs; its weights still count."""
    positions = output_positions(model, input_shape)
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES):
            continue
        weight = module.weight.detach()
        params, nonzero = weight.numel(), int(torch.count_nonzero(weight))
        rows.append(
            {
                "layer": name,
                "kind": type(module).__name__,
                "shape": "x".join(map(str, weight.shape)),
                "prunable": f"{name}.weight" in prunable,
                "params": params,
                "nonzero": nonzero,
                "density": nonzero / params,
                "flops_dense": params * positions.get(name, 0),
                "flops_sparse": nonzero * positions.get(name, 0),
            }
        )
    return rows


def theoretical_speedup(flops_dense: float, flops_sparse: float) -> float:
    """Dense / sparse multiply-accumulates; inf when nothing is left (every weight pruned, possible only with
    method.allow_collapse=true): dividing by max(sparse, 1) reported the dense FLOP count itself as a finite
    speedup (336x for a 2-16-16-3 MLP)."""
    return flops_dense / flops_sparse if flops_sparse else float("inf")


def model_cost_metrics(model: nn.Module, prunable: list[str], layers: list[dict]) -> list[dict]:
    """Whole-model rows: sparsity over prunable weights and over all parameters, compression, FLOPs.

    Nonzero counts are read from the weights themselves, not from the masks."""
    named = dict(model.named_parameters())
    total = sum(p.numel() for p in named.values())
    total_nonzero = sum(int(torch.count_nonzero(p.detach())) for p in named.values())
    prunable_params = sum(named[n].numel() for n in prunable)
    prunable_nonzero = sum(int(torch.count_nonzero(named[n].detach())) for n in prunable)
    flops_dense = sum(r["flops_dense"] for r in layers)
    flops_sparse = sum(r["flops_sparse"] for r in layers)
    values = {
        "params_total": total,
        "params_nonzero": total_nonzero,
        "params_prunable": prunable_params,
        "prunable_nonzero": prunable_nonzero,
        "sparsity_prunable": 1 - prunable_nonzero / prunable_params,
        "sparsity_total": 1 - total_nonzero / total,
        "compression_ratio": total / max(total_nonzero, 1),
        "flops_dense": flops_dense,
        "flops_sparse": flops_sparse,
        "theoretical_speedup": theoretical_speedup(flops_dense, flops_sparse),
    }
    return [{"split": "model", "metric": k, "value": float(v)} for k, v in values.items()]
