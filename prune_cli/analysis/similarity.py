"""Representation similarity between the dense and the current (pruned / fine-tuned) model, per layer.

Representations: the OUTPUT of every Linear/Conv layer (pre-activation, the classifier's logits last),
captured with forward hooks on a fixed, seeded batch of inputs that is the same in every phase. Layer
outputs are used rather than ReLU outputs because every model has exactly one per prunable layer (a ReLU
module may be shared or applied functionally), and they are the quantities pruning edits directly.
Conv outputs are flattened to (examples, channels x positions).

- Linear CKA (Kornblith et al. 2019): <K, L>_F / (||K||_F ||L||_F) with K = Xc Xc^T, L = Yc Yc^T the
  Gram matrices of the column-centred representations. 1 for identical representations; invariant to
  orthogonal transforms and isotropic scaling.
- SVCCA (Raghu et al. 2017): keep the top singular directions of each centred representation (enough to
  explain `svcca_variance` of the variance, at most `svcca_max_dims`), then CCA between the two reduced
  representations; reported as the mean canonical correlation. The CCA step uses that the reduced data
  are U_k S_k, whose column space has the orthonormal basis U_k: the canonical correlations are the
  singular values of U_kx^T U_ky. U and S^2 are the eigenvectors and eigenvalues of the Gram matrix.

Cost per phase: one forward pass of each model on `num_samples` (N) inputs; per layer of D output
features an N x N Gram product (O(N^2 D), float64, on the run's device) and an N x N eigendecomposition
(O(N^3), CPU). Memory: two N x N matrices per layer, never the N x D activations of all layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.base import PRUNABLE_TYPES


def gram(x: torch.Tensor) -> torch.Tensor:
    """K = Xc Xc^T (float64, N x N) of the column-centred representation (one row per example).

    Both similarity measures need only K: CKA directly, SVCCA through K's eigenvectors (the left
    singular vectors of Xc) and eigenvalues (its squared singular values). Keeping N x N Gram matrices
    instead of N x D activations bounds memory for wide conv layers."""
    x = x.reshape(len(x), -1).double()
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def cka_from_grams(k: torch.Tensor, l_: torch.Tensor) -> float:
    denom = torch.linalg.norm(k) * torch.linalg.norm(l_)
    return float((k * l_).sum() / denom) if denom > 0 else math.nan


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same examples (rows); NaN if either is constant."""
    return cka_from_grams(gram(x), gram(y))


def directions_from_gram(k: torch.Tensor, variance: float, max_dims: int) -> torch.Tensor:
    """Orthonormal basis (N x k) of the top principal directions: enough to explain `variance` of the
    total variance, at most `max_dims`, never past the numerical rank."""
    energy, u = torch.linalg.eigh(k.cpu())
    energy, u = energy.flip(0).clamp(min=0), u.flip(1)
    total = energy.sum()
    if total <= 0:
        return u[:, :0]
    rank = int((energy > energy[0] * len(energy) * torch.finfo(energy.dtype).eps).sum())
    needed = int(torch.searchsorted(torch.cumsum(energy, 0) / total, torch.tensor([variance], dtype=energy.dtype))[0]) + 1
    return u[:, : max(1, min(needed, max_dims, rank))]


def svcca_directions(x: torch.Tensor, variance: float, max_dims: int) -> torch.Tensor:
    return directions_from_gram(gram(x), variance, max_dims)


def dims_exceed_samples(dims_dense: int, dims: int, num_samples: int) -> bool:
    """Whether SVCCA's two kept subspaces must share directions whatever the models: both lie in the
    (N - 1)-dimensional space of centred N-vectors, so when their dimensions sum to more than N - 1 they
    intersect in at least dims_dense + dims - (N - 1) dimensions, and that many canonical correlations are 1
    (two independent random 64-feature representations on N=30 inputs scored 0.977 with 27 and 28 kept)."""
    return dims_dense + dims > num_samples - 1


def svcca_from_grams(k: torch.Tensor, l_: torch.Tensor, variance: float = 0.99, max_dims: int = 32) -> dict[str, float]:
    """Mean SVCCA correlation, the dimensions kept of each side and whether they exceed what the batch
    separates (`dims_exceed_samples`: the score is then pushed towards 1); NaN if either side is constant."""
    ux, uy = directions_from_gram(k, variance, max_dims), directions_from_gram(l_, variance, max_dims)
    dims = {"svcca_dims_dense": ux.shape[1], "svcca_dims": uy.shape[1]}
    dims["svcca_dims_exceed_samples"] = dims_exceed_samples(ux.shape[1], uy.shape[1], len(k))
    if ux.shape[1] == 0 or uy.shape[1] == 0:
        return {"svcca": math.nan, **dims}
    rho = torch.linalg.svdvals(ux.T @ uy).clamp(max=1.0)
    return {"svcca": float(rho.mean()), **dims}


def svcca(x: torch.Tensor, y: torch.Tensor, variance: float = 0.99, max_dims: int = 32) -> dict[str, float]:
    """SVCCA of two representations of the same examples (rows)."""
    return svcca_from_grams(gram(x), gram(y), variance, max_dims)


@torch.no_grad()
def layer_outputs(model: nn.Module, x: torch.Tensor, transform=lambda o: o.detach().cpu()) -> dict[str, torch.Tensor]:
    """transform(output) of every Linear/Conv layer for inputs x, in forward order."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, _n=name: outputs.__setitem__(_n, transform(o)))
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE_TYPES)
    ]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return outputs


def fixed_batch(x: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """The same `num_samples` inputs every time for a given seed (own generator: the run's RNG is untouched)."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(x), generator=g)[:num_samples]
    return x[index.to(x.device)]


MIN_SAMPLES = 3  # with 2 examples the centred representations are rank 1: linear CKA is 1 for any two models


def compare(dense: nn.Module, model: nn.Module, x: torch.Tensor, variance: float, max_dims: int) -> list[dict]:
    """One row per layer: linear CKA and SVCCA between the dense and the other model's layer outputs.

    Fewer than MIN_SAMPLES inputs: NaN rows (no dimensions kept), not the 1.0 two centred examples give
    every pair of models, nor the NaN-or-1 of a single one; the caller says so in the log."""
    features = layer_outputs(dense, x[:1], lambda o: o.shape[1:].numel())  # an empty batch too
    if len(x) < MIN_SAMPLES:
        undefined = {"cka_linear": math.nan, "svcca": math.nan, "svcca_dims_dense": 0, "svcca_dims": 0}
        return [
            {"layer": name, "features": n, "num_samples": len(x), **undefined, "svcca_dims_exceed_samples": False}
            for name, n in features.items()
        ]
    a = layer_outputs(dense, x, lambda o: gram(o).cpu())
    b = layer_outputs(model, x, lambda o: gram(o).cpu())
    return [
        {
            "layer": name,
            "features": features[name],
            "num_samples": len(x),
            "cka_linear": cka_from_grams(a[name], b[name]),
            **svcca_from_grams(a[name], b[name], variance, max_dims),
        }
        for name in a
    ]
