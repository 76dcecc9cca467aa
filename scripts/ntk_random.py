"""The random-pruning NTK experiment (Yang & Wang, AISTATS 2023; docs/analysis.md).

An NTK-parameterised ReLU MLP (prune_cli.models.ntk_mlp) is pruned at initialisation by the
project's random pruner (Bernoulli masks, the same keep probability q = 1 - p in every layer) and
its empirical NTK is compared with the dense NTK of the same weights, with the 1/sqrt(q) rescale
multiplier on and off. A research helper, not part of the package: used by scripts/ntk_width_sweep.py
(which runs from scripts/) and by tests/test_ntk.py (through tests/helpers.py). Run on its own, it
prints this text: the sweep is `python scripts/ntk_width_sweep.py`.
"""

from __future__ import annotations

import argparse
import copy
import math

import torch
from omegaconf import OmegaConf

from prune_cli.analysis.ntk import empirical_ntk, kernel_comparison
from prune_cli.models.masks import apply_masks, count
from prune_cli.models.ntk_mlp import NTKMLP
from prune_cli.pruning import PruneContext, prune


def unit_scaled_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    """n Gaussian inputs rescaled to ||x||^2 = dim (the paper's input kind)."""
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(dim)


def random_pruning_ntk(width: int, depth: int, p: float, seed: int, n_inputs: int = 6, input_dim: int = 16) -> dict:
    """Kernel distance and mean ratio to the dense NTK (same W) with and without the rescale.

    depth = number of weight layers (all masked, scalar output). Returns realised_density and, per
    arm ("rescale", "none"), rel_dist and mean_ratio."""
    torch.manual_seed(seed)
    model = NTKMLP(input_dim, [width] * (depth - 1), 1, rescale=True)
    x = unit_scaled_inputs(n_inputs, input_dim, seed + 10_000)
    dense = empirical_ntk(model, x)
    method = OmegaConf.create(
        {
            "name": "random",
            "score": "random",
            "allocation": "layerwise",
            "structure": "unstructured",
            "sampling": "bernoulli",
            "exclude": [],
            "exclude_classifier": False,
            "exclude_first": False,
            "allow_collapse": False,
        }
    )
    # A seed different from the init's: torch.rand and torch.randn drawn from the same seed are
    # correlated (randn transforms the same uniform stream), which would tie masks to weight signs.
    masks = prune(model, p, PruneContext(method=method, generator=torch.Generator().manual_seed(seed + 1_000_003)))
    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    kept, total = count(masks)
    out = {"realised_density": kept / total}
    for arm, rescale in (("rescale", True), ("none", False)):
        pruned.set_rescale(rescale)
        cmp = kernel_comparison(empirical_ntk(pruned, x, masks=masks), dense)
        out[arm] = {"rel_dist": cmp["rel_dist"], "mean_ratio": cmp["mean_ratio"]}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    parser.print_help()  # nothing to run: a helper of ntk_width_sweep.py and the tests
