"""Empirical neural tangent kernel with torch.func (vmap over inputs of jacrev over parameters).

Theta(x, x') = sum over unmasked parameters of df(x)/dtheta * df(x')/dtheta. Masked weights are
fixed at zero by pruning, so they are not parameters of the pruned network: their Jacobian
entries are multiplied by the mask before contracting.

Cost: one vectorised reverse pass per input (per logit for output="trace") and N x K x P floats
for the Jacobian (N inputs, K = 1 or the number of logits, P parameters).
"""

from __future__ import annotations

import math

from typing import Optional

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

OUTPUTS = ("sum", "index", "trace")


def empirical_ntk(
    model: nn.Module, x: torch.Tensor, masks: Optional[dict[str, torch.Tensor]] = None, output: str = "sum", output_index: int = 0
) -> torch.Tensor:
    """(N, N) kernel of `model` on the inputs `x` (N, ...), in eval mode (BatchNorm uses running stats).

    output: "sum" uses f = sum of the outputs, "index" f = output[output_index], "trace" the sum over
    outputs of the per-output kernels (the trace of the (K x K) block kernel)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    was_training = model.training
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0).reshape(-1)
        if output == "sum":
            return out.sum()
        if output == "index":
            return out[output_index]
        return out

    try:
        jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    finally:
        model.train(was_training)
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=x.dtype, device=x.device)
    for name, j in jac.items():
        j = j.reshape(n, -1, params[name].numel()) if output == "trace" else j.reshape(n, 1, -1)
        if masks is not None and name in masks:
            j = j * masks[name].to(device=j.device, dtype=j.dtype).reshape(1, 1, -1)
        kernel += torch.einsum("nkp,mkp->nm", j, j)
    return kernel


def kernel_comparison(theta: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Relative Frobenius distance, elementwise mean ratio and trace ratio of `theta` to `reference`.

    The elementwise mean ratio is Yang & Wang's (AISTATS 2023; about q^L for an unrescaled randomly pruned MLP), over
    the entries where the reference is not 0 (so a kernel's ratio to itself is 1); the
    trace ratio uses only the diagonal, which is always positive, so it stays defined when
    off-diagonal reference entries are near zero (trained nets)."""
    ref_norm = torch.linalg.matrix_norm(reference)
    nonzero = reference != 0  # a ReLU net without biases has exact zeros (inputs where every unit is off): 0/0
    return {
        "rel_dist": float(torch.linalg.matrix_norm(theta - reference) / ref_norm),
        "mean_ratio": float((theta[nonzero] / reference[nonzero]).mean()) if bool(nonzero.any()) else math.nan,
        "trace_ratio": float(theta.diagonal().sum() / reference.diagonal().sum()),
    }
