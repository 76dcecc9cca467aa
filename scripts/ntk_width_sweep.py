"""Random-pruning NTK width sweep (Yang & Wang, AISTATS 2023; docs/analysis.md).

For each width, pruning probability p and seed: an NTK-parameterised ReLU MLP (prune_cli's
`ntk_mlp` model: 3 weight layers, input dim 16, scalar output, W ~ N(0, 1)) is pruned at
initialisation by prune_cli's random pruner (Bernoulli masks, keep probability q = 1 - p in every
layer), and its empirical NTK (prune_cli.analysis.ntk, torch.func) on 6 inputs with ||x||^2 = 16 is
compared with the dense NTK of the same weights, with and without the 1/sqrt(q) multiplier.
Columns: relative Frobenius distance and mean entry ratio (mean +- sd over seeds); q^L for reference.

    PYTHONPATH=. python scripts/ntk_width_sweep.py [--widths 256 512 1024 2048 4096] [--seeds 3] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from ntk_random import random_pruning_ntk, unit_scaled_inputs  # scripts/ntk_random.py (the script's own folder)
from prune_cli.analysis.ntk import empirical_ntk, kernel_comparison
from prune_cli.models.ntk_mlp import NTKMLP
from script_args import description, positive_int, refuse_repeated, sparsity_arg, writable_file


def calibration(width: int, depth: int, seed: int) -> float:
    """Relative distance between the dense NTKs of two independent initialisations (finite-width noise)."""
    x = unit_scaled_inputs(6, 16, seed + 10_000)
    kernels = []
    for s in (seed, seed + 1):
        torch.manual_seed(s)
        kernels.append(empirical_ntk(NTKMLP(16, [width] * (depth - 1), 1), x))
    return kernel_comparison(kernels[1], kernels[0])["rel_dist"]


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--widths", type=positive_int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--ps", type=sparsity_arg, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--depth", type=positive_int, default=3, help="weight layers")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per point (default 3)")
    parser.add_argument("--csv", type=writable_file, default=None, help="also write the per-seed rows here")
    args = parser.parse_args()
    # a repeated width or p ran the same configuration again and its groupby pooled the copies as extra seeds
    refuse_repeated(parser, "--widths", args.widths)
    refuse_repeated(parser, "--ps", args.ps)
    rows = []
    start = time.perf_counter()
    for width in args.widths:
        calib = statistics.mean(calibration(width, args.depth, s) for s in range(args.seeds))
        for p in args.ps:
            for seed in range(args.seeds):
                r = random_pruning_ntk(width, args.depth, p, seed)
                for arm in ("rescale", "none"):
                    rows.append(
                        {
                            "width": width,
                            "depth": args.depth,
                            "p": p,
                            "seed": seed,
                            "rescale": arm,
                            "realised_density": r["realised_density"],
                            "ntk_rel_err_dense": r[arm]["rel_dist"],
                            "ntk_mean_ratio": r[arm]["mean_ratio"],
                            "calibration_dense_vs_dense": calib,
                        }
                    )
        print(f"# width {width} done ({time.perf_counter() - start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)

    def fmt(s: pd.Series) -> str:
        return f"{s.mean():.3f} +- {s.std(ddof=1) if len(s) > 1 else 0:.3f}"

    table = []
    for (width, p), g in df.groupby(["width", "p"]):
        on, off = g[g.rescale == "rescale"], g[g.rescale == "none"]
        table.append(
            {
                "width": width,
                "p": p,
                "q^L": f"{(1 - p) ** args.depth:.4g}",
                "dist rescale": fmt(on.ntk_rel_err_dense),
                "mean ratio rescale": fmt(on.ntk_mean_ratio),
                "dist none": fmt(off.ntk_rel_err_dense),
                "mean ratio none": f"{off.ntk_mean_ratio.mean():.4g}",
                "dense vs dense": f"{g.calibration_dense_vs_dense.iloc[0]:.3f}",
            }
        )
    print(pd.DataFrame(table).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(table).to_string(index=False))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
