"""The depth exponent of the pruning scaling law on a finished `scaling_mnist1d_depth` sweep
(Rosenfeld, Frankle, Carbin and Shavit, ICML 2021; docs/scaling_law.md, "Density, depth and width").

prune-report fits the joint form m* = l^phi w^psi d to the whole folder. This script prints that
fit again and the comparisons docs/scaling_law.md reports beside it, all with prune-report's own
fitting code (prune_cli/report/scaling.py) on subsets of the same seed-mean points:

- seed noise: the standard deviation of a seed's relative deviation from its point's seed mean
  (what a perfect law would leave as sigma);
- each architecture alone (Equation 1; pooled mu and sigma of delta);
- the joint fit without the depth exponent (phi = 0; each (l, w) keeps its eps_np);
- depth alone at each width (phi) and width alone at each depth (psi);
- the count of remaining weights as the invariant: m = d * N(l, w) with N the prunable weights of
  the architecture (the run's `params_prunable`), its exponent fitted. An exponent near 1 and a
  fit error near the joint form's would mean that depth and width act only through how many
  weights are left.

A folder can hold several experiment families (prune-report's: runs that differ in a config key
other than the law's scales, e.g. another method or train.epochs; docs/scaling_law.md): each family
is analysed on its own, under a heading naming it and the keys that tell it apart, never averaged
with another as extra seeds of one point.

    PYTHONPATH=. python scripts/scaling_depth_analysis.py /tmp/scaling_depth
(after `PRESET=scaling_mnist1d_depth bash scripts/scaling_law_mnist1d.sh /tmp/scaling_depth`)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from prune_cli.report.load import load_results
from prune_cli.report.scaling import fit_families, fit_scaling_law, scaling_points


def seed_means(points: pd.DataFrame) -> pd.DataFrame:
    """The report's points: per (family, width, depth, density) the seed-mean error, eps_np per (family,
    width, depth). Runs of different families (another method, train.epochs, ...) are never one point."""
    by = ["family", "width", "depth", "density"]
    mean = (
        points.groupby(by).agg(error=("error", "mean"), n_seeds=("seed", "nunique"), target=("target_density", "first")).reset_index()
    )
    eps_np = points.groupby(["family", "width", "depth"])["eps_np"].mean().rename("eps_np").reset_index()
    return mean.merge(eps_np, on=["family", "width", "depth"])


def describe(label: str, fit) -> str:
    if fit.status != "fitted":
        return f"{label}: not fitted ({fit.reason})"
    row = fit.row()
    params = ", ".join(f"{k} = {v:.3g} ± {fit.stderr.get(k, np.nan):.2g}" for k, v in fit.params.items())
    note = f" ({fit.reason})" if fit.reason else ""
    return f"{label}: {params}; mu = {row['mean_rel_deviation']:.2%}, sigma = {row['std_rel_deviation']:.2%}, n = {fit.n_points}{note}"


def main(root: Path) -> None:
    folder = load_results(root)
    metrics = folder.table("metrics.csv")
    points = scaling_points(metrics, folder.configs)
    print(f"{len(points)} completed runs; failed: {len(folder.failed)}; unfinished: {len(folder.unfinished)}")
    table, fitted = fit_families(points)
    print("prune-report's fit (scaling_fit.csv):")
    print(table.drop(columns=["equation"]).T.to_string())
    if len(fitted):
        delta = fitted.assign(delta=fitted.predicted / fitted.error - 1).groupby(["family", "depth"])["delta"]
        print("its relative deviation delta per family and depth (mu, sigma):")
        print(delta.agg(mu="mean", sigma=lambda x: x.std(ddof=0)).round(4).to_string())

    settings = dict(zip(table["family"], table["setting"])) if {"family", "setting"} <= set(table.columns) else {}
    families = sorted(points["family"].unique()) if len(points) else []
    for family in families:
        own = points[points["family"] == family]
        if len(families) > 1:
            setting = settings.get(family, "")
            setting = f" ({setting})" if isinstance(setting, str) and setting else ""
            print(f"\n=== family {family}{setting}: {len(own)} runs, analysed apart from the other {len(families) - 1} ===")
        analyse(own, metrics)


def analyse(points: pd.DataFrame, metrics: pd.DataFrame) -> None:
    """The comparisons of the module docstring on the runs of one family."""
    mean = seed_means(points)
    rel = points.merge(
        mean[["family", "width", "depth", "density", "error"]], on=["family", "width", "depth", "density"], suffixes=("", "_mean")
    )
    spread = (rel.error / rel.error_mean - 1).std()
    n = int(mean.n_seeds.median())
    # a seed's deviation from the mean of n has variance s^2 (n - 1) / n, the mean s^2 / n: the ratio is n - 1
    print(f"\nseed noise: std of a seed's relative deviation from its seed mean = {spread:.2%}")
    print(f"noise of a seed mean of {n} (the sigma a perfect law would leave) = {spread / np.sqrt(max(n - 1, 1)):.2%}")
    print("dense error eps_np per (width, depth):")
    print(mean.groupby(["width", "depth"])["eps_np"].first().unstack().round(3).to_string())
    print("seed-mean error per (width, depth) (rows) and target density (columns; the achieved one differs by rounding):")
    print(mean.pivot_table(index=["width", "depth"], columns="target", values="error").round(3).to_string())

    deltas = []
    for (w, l), part in mean.groupby(["width", "depth"]):
        fit = fit_scaling_law(part)
        print(describe(f"Eq. 1, width {w:g}, depth {l:g}", fit))
        if fit.status == "fitted":
            deltas.append(fit.relative_errors)
    if deltas:
        pooled = np.concatenate(deltas)
        print(f"each architecture alone, pooled: mu = {pooled.mean():.2%}, sigma = {pooled.std():.2%}")
    print(describe("joint, depth exponent left out (phi = 0)", fit_scaling_law(mean, ["width"])))
    for w, part in mean.groupby("width"):
        print(describe(f"depth alone at width {w:g}", fit_scaling_law(part, ["depth"])))
    for l, part in mean.groupby("depth"):
        print(describe(f"width alone at depth {l:g}", fit_scaling_law(part, ["width"])))

    dense = metrics[(metrics.phase == "dense") & (metrics.metric == "params_prunable")].drop_duplicates("run_id")
    count = points.merge(dense[["run_id", "value"]], on="run_id").groupby(["width", "depth"])["value"].first()
    print("prunable weights N(l, w):")
    print(count.unstack().to_string())
    by_count = mean.join(count.rename("weights"), on=["width", "depth"]).drop(columns=["width"]).rename(columns={"weights": "width"})
    fit = fit_scaling_law(by_count, ["width"])
    print(describe("invariant d * N(l, w)^e (psi_width is e)", fit))


if __name__ == "__main__":
    from script_args import require_runs  # scripts/ is on sys.path when the script runs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path, default=Path("results/scaling_depth"), help="the sweep's results_dir")
    results = parser.parse_args().results
    require_runs(parser, results, "results", ("runs",))
    main(results)
