"""The `regions` metric: counts (line / plane / sample / exact) with bounds, into regions.csv.

The counting and the bounds are in prune_cli/analysis/regions/; this module turns them into rows.

On in every run (configs/metrics/default.yaml: a few `line` segments and the binomial expected
bound, a budget of a few percent of a default run); settings in `metrics.regions.*` (RegionsConfig
below). A model the counter does not support (a module other than affine/ReLU/max-pool, or more
ReLU/max-pool units than `metrics.regions.max_line_units` for `line`) gets one
"not counted: <reason>" row instead of failing the run. Segments and planes are drawn from
`metrics.regions.seed` alone, so the dense, pruned and fine-tuned models are counted on the same
inputs.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..core import interrupts
from ..core.checks import check, finite, seed_option
from ..core.config_base import config_schema
from . import MetricContext, MetricResult, register_metric

METHODS = ("line", "plane", "sample", "exact")

log = logging.getLogger(__name__)


def bound_columns(model: nn.Module, n0: int, node: DictConfig) -> dict:
    """Serra et al. (2018) and expected rank-aware bounds for a counting domain of dimension n0.

    Applies to fully connected networks (every Linear/Conv layer is Linear); the rank models use
    each layer's real shape and density, and the recursion starts from d = n0 (the domain's
    dimension bounds the rank of the restricted first layer)."""
    from ..analysis.regions.bounds import (
        binomial_rank_log_probs,
        expected_bound_from_probs,
        montecarlo_rank_log_probs,
        rank_ub,
        serra2018,
    )

    outside = no_bound_scope(model)
    if outside is not None:
        return {"bound_scope": outside}
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if not node.include_output_layer:
        layers = layers[:-1]
    widths = [m.out_features for m in layers]
    shapes = [(m.out_features, m.in_features) for m in layers]
    densities = [float(torch.count_nonzero(m.weight)) / m.weight.numel() for m in layers]
    ranks = [int(torch.linalg.matrix_rank(m.weight.detach().double().cpu())) for m in layers]
    serra = serra2018(n0, widths)
    row = {
        "bound_scope": "fully connected" + (", output layer rectified" if node.include_output_layer else ""),
        "domain_dim": n0,
        "bound_widths": "-".join(map(str, widths)),
        "layer_densities": "-".join(f"{d:.6g}" for d in densities),
        "bound_ln_serra": math.log(serra),
        "serra_integer": str(serra),
        "bound_ln_rank_actual": math.log(rank_ub(n0, widths, ranks)),
    }
    n = [n0] + widths
    empty = [i for i, d in enumerate(densities) if d == 0.0]
    if empty:  # the binomial model drops P(rank = 0) (the authors' code): nothing is left for such a layer
        row["bound_scope"] += f"; layer {empty[0]} has density 0: no binomial expected bound"
    for rank_model in node.rank_models:
        if rank_model == "binomial":
            probs = [binomial_rank_log_probs(r, c, p) for (r, c), p in zip(shapes, densities)]
        else:
            probs = [montecarlo_rank_log_probs(r, c, p, node.seed, node.mc_sample_factor) for (r, c), p in zip(shapes, densities)]
        value = expected_bound_from_probs(n, probs)
        row[f"bound_ln_expected_{rank_model}"] = math.nan if value == -math.inf else value
    return row


def no_bound_scope(model: nn.Module) -> Optional[str]:
    """The `bound_scope` of a model no bound covers (None when the bounds apply): one predicate for the rows
    (`bound_columns`) and for the bound options refused as having no effect (`RegionsConfig.unused_for_model`)."""
    if any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules()):
        return "none (bounds apply to fully connected networks)"
    if hasattr(model, "residual_sections"):  # the skips add the stream back: not a chain of rectified layers
        return "none (bounds apply to plain fully connected chains; model has residual connections)"
    return None


def _box(ctx, node) -> tuple[float, float]:
    if node.box is not None:
        return float(node.box[0]), float(node.box[1])
    x = ctx.data.train_x
    return float(x.min()), float(x.max())


@config_schema("metric", "regions")
@dataclass
class RegionsConfig:
    """Linear-region counting (prune_cli/analysis/regions, metric prune_cli/metrics/regions.py; docs/regions.md)."""

    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)

    enabled: bool = False
    method: str = "line"  # line | plane | sample | exact
    split: str = "test"  # inputs the segments / planes pass through: test | val | train
    seed: int = 0  # which inputs and directions; counts are deterministic given it
    segments: int = 10  # method=line: number of seeded segments
    segment_kind: str = "pairs"  # pairs (between two inputs) | direction (through an input, random direction)
    # direction: length; null = the median of the 64x64 matrix of distances between 64 inputs of split,
    # self-distances included: a little below the median pairwise distance (docs/regions.md)
    segment_length: Optional[float] = None
    planes: int = 1  # method=plane: planes through three inputs each
    domain: str = "box"  # plane/sample: box (valid input range) | square ([-R, R]^2 in plane coordinates)
    box: Optional[list[float]] = None  # [lo, hi]; null = min and max of the training inputs
    square_radius: Optional[float] = None  # null = 1.5 x the farthest of the three inputs from their centroid
    plot: bool = True  # method=plane: PNG of every slice, dense vs this phase
    samples: int = 10000  # method=sample: points (box or plane, by domain)
    max_units: int = 64  # method=exact: budget on hidden units
    max_line_units: int = 200000  # method=line: ReLU units + max-pool windows per input beyond which a run writes "not counted"
    max_regions: int = 100000  # plane/exact: stop with an error beyond this many regions
    tol: float = 1e-9  # plane: a line cuts a polygon when vertex values exceed tol x max|value| on both sides
    eps_area: float = 1e-12  # plane: pieces below this area are not split off
    f_tol: float = 1e-6  # exact: a pattern counts when its margin f exceeds f_tol
    rank_models: list[str] = field(default_factory=lambda: ["binomial", "montecarlo"])
    include_output_layer: bool = True  # bounds treat the output layer as rectified (authors' code)
    mc_sample_factor: int = 48  # Monte Carlo rank model stopping rule

    # The counting methods that read each method-specific option (`_count` below); the rest are read by all.
    READ_BY: ClassVar[dict[str, tuple[str, ...]]] = {
        "segments": ("line",),
        "segment_kind": ("line",),
        "segment_length": ("line",),
        "max_line_units": ("line",),
        "planes": ("plane",),
        "plot": ("plane",),
        "tol": ("plane",),
        "eps_area": ("plane",),
        "samples": ("sample",),
        "max_units": ("exact",),
        "f_tol": ("exact",),
        "max_regions": ("plane", "exact"),
        "domain": ("plane", "sample"),
        "square_radius": ("plane", "sample"),
        "box": ("plane", "sample", "exact"),
    }

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """Options of another counting method, and those a choice within this one switches off."""
        node = OmegaConf.select(cfg, key)
        found = {}
        for option, methods in RegionsConfig.READ_BY.items():
            if node.method not in methods:
                found[f"{key}.{option}"] = f"it applies only with {key}.method={' or '.join(methods)}; here {key}.method={node.method}"
        if node.segment_kind != "direction":
            found.setdefault(
                f"{key}.segment_length",
                f"it applies only with {key}.segment_kind=direction; here {key}.segment_kind={node.segment_kind}",
            )
        if node.method in ("plane", "sample"):
            off = "square_radius" if node.domain == "box" else "box"
            found[f"{key}.{off}"] = (
                f"it applies only with {key}.domain={'square' if off == 'square_radius' else 'box'}; here {key}.domain={node.domain}"
            )
        if "montecarlo" not in node.rank_models:
            found[f"{key}.mc_sample_factor"] = f"it applies only when {key}.rank_models has montecarlo; here {list(node.rank_models)}"
        if node.method == "exact" or (node.method == "sample" and node.domain == "box"):
            found[f"{key}.split"] = (
                f"{key}.method={node.method} counts over the input box (from the training inputs or {key}.box), "
                "not at inputs drawn from a split"
            )
        if node.method == "exact" and "montecarlo" not in node.rank_models:
            found[f"{key}.seed"] = f"{key}.method=exact draws nothing at random (the seed feeds only the montecarlo rank model)"
        return found

    @staticmethod
    def unused_for_model(cfg: DictConfig, key: str, model) -> dict[str, str]:
        """The bounds' options on a model no bound covers (`no_bound_scope`: convolutions, or residual
        connections as in res_mlp, which was let through): only the bound reads them (`bound_columns`),
        and its rows then say bound_scope none."""
        scope = no_bound_scope(model)
        if scope is None:
            return {}
        if any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules()):
            why = f"the region bounds apply to fully connected networks, and model={cfg.model.name} has convolutions"
            why += " (bound_scope none)"
        else:
            why = (
                f"the region bounds apply to plain fully connected chains, and model={cfg.model.name} has residual connections "
                "(bound_scope none)"
            )
        return {f"{key}.{option}": why for option in ("include_output_layer", "rank_models", "mc_sample_factor")}

    @staticmethod
    def check_split_examples(cfg: DictConfig, key: str, sizes: dict[str, Optional[tuple[int, bool]]]) -> None:
        """The split the counter draws its inputs from holds as many as the method draws at once
        (`inputs_needed`); with fewer the count crashed after dense training (prune_cli/run/prevalidate.py
        `check_data_sizes`: from the declared sizes, and once the data is loaded). `sizes`: split ->
        (examples, exact) or None when unknown; an inexact size is an upper bound, so a refusal is certain."""
        node = OmegaConf.select(cfg, key)
        needed = inputs_needed(node)
        size = sizes.get(node.split)
        if needed is None or size is None:
            return
        examples, exact = size
        need, what = needed
        check(
            examples >= need,
            f"{key}.split",
            node.split,
            f"a split of at least {need} examples: {key}.method={node.method} {what}, and the {node.split} split holds "
            f"{'' if exact else 'at most '}{examples} (another split, or more examples in this one)",
        )

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = OmegaConf.select(cfg, key)
        key = key + "."
        check(node.method in METHODS, key + "method", node.method, "one of " + ", ".join(METHODS))
        check(node.split in ("train", "val", "test"), key + "split", node.split, "one of test, train, val")
        check(node.segment_kind in ("pairs", "direction"), key + "segment_kind", node.segment_kind, "one of direction, pairs")
        check(node.domain in ("box", "square"), key + "domain", node.domain, "one of box, square")
        for name in ("segments", "planes", "samples", "max_units", "max_line_units", "max_regions", "mc_sample_factor"):
            value = node[name]
            check(isinstance(value, int) and value >= 1, key + name, value, "an integer >= 1")
        seed_option(cfg, key + "seed")
        for name in ("tol", "eps_area", "f_tol"):
            value = node[name]
            check(finite(value) and value >= 0, key + name, value, "a finite number >= 0")
        for name in ("segment_length", "square_radius"):
            value = node[name]
            check(value is None or (finite(value) and value > 0), key + name, value, "null or a number > 0")
        box = None if node.box is None else list(node.box)
        check(
            box is None or (len(box) == 2 and all(finite(v) for v in box) and box[0] < box[1]),
            key + "box",
            box,
            "null (the training inputs' range) or [lo, hi] with lo < hi",
        )
        models = list(node.rank_models)
        check(
            set(models) <= {"binomial", "montecarlo"} and len(set(models)) == len(models),
            key + "rank_models",
            models,
            "a list drawn from [binomial, montecarlo], each once (a repeated model would only change the run id)",
        )


def inputs_needed(node: DictConfig) -> Optional[tuple[int, str]]:
    """(the fewest inputs of `split` the counting method can use, what it draws), or None for the methods
    that draw no input (`exact`, box `sample`). A segment joins two distinct inputs; a direction segment
    passes through one, but its default length (`default_segment_length`) is the lower middle value of
    the n x n distances with the n self-distances 0 among them, which is 0 for n < 3; a plane passes
    through three."""
    if node.method == "line" and node.segment_kind == "pairs":
        return 2, "draws segments between two distinct inputs"
    if node.method == "line" and node.segment_length is None:
        return 3, (
            "with segment_kind=direction and segment_length=null takes the segments' length from the median distance "
            "among the inputs, self-distances included, which is 0 with fewer than 3"
        )
    if node.method == "line":
        return 1, "draws segments through one input"
    if node.method == "plane" or (node.method == "sample" and node.domain == "square"):
        return 3, "draws planes through three distinct inputs"
    return None


@register_metric("regions")
def regions(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """Count activation regions of the current model; one regions.csv row per segment/plane/count,
    or one "not counted: <reason>" row when the model is outside the counter's scope."""
    from ..analysis.regions.common import RegionsError, model_hash  # analysis math: only when counting

    base = {"method": node.method, "split": node.split, "seed": node.seed, "model_hash": model_hash(ctx.model)}
    try:
        return _count(ctx, phase, node, base)
    except RegionsError as err:
        return not_counted(base, str(err), phase)


def _count(ctx: MetricContext, phase: str, node: DictConfig, base: dict) -> MetricResult:
    from ..analysis.regions.common import RegionsError, prepare
    from ..analysis.regions.line import count_line
    from ..analysis.regions.sample import box_points, distinct_patterns, plane_points

    x = ctx.data.split(node.split)[0].detach().double()
    needed = inputs_needed(node)
    if needed is not None and len(x) < needed[0]:  # refused before the run (check_split_examples); never a crash here
        raise RegionsError(
            f"the {node.split} split has {len(x)} example(s), fewer than {needed[0]}: metrics.regions.method={node.method} {needed[1]}"
        )
    gen = torch.Generator().manual_seed(node.seed)
    shape = tuple(x.shape[1:])
    n_in = math.prod(shape)
    rows: list[dict] = []
    net = prepare(ctx.model)
    if node.method == "line":
        units = nonlinear_units(net, x[:1].to(ctx.device))
        if units > node.max_line_units:
            raise RegionsError(f"{units} ReLU/max-pool units per input > metrics.regions.max_line_units={node.max_line_units}")
    if node.method == "line":
        bounds = bound_columns(ctx.model, 1, node)
        pairs = torch.stack([torch.randperm(len(x), generator=gen)[:2] for _ in range(node.segments)])
        directions = torch.randn(node.segments, *shape, generator=gen, dtype=torch.float64)
        length = node.segment_length
        if node.segment_kind == "direction" and length is None:
            length = default_segment_length(x, gen)
        for i in range(node.segments):
            interrupts.check()  # a safe point between segments (prune_cli/core/interrupts.py)
            if node.segment_kind == "pairs":
                a, b = x[pairs[i, 0]], x[pairs[i, 1]]
                idx = f"{int(pairs[i, 0])}-{int(pairs[i, 1])}"
            else:
                d = directions[i] / directions[i].norm()
                a, b = x[pairs[i, 0]] - 0.5 * length * d, x[pairs[i, 0]] + 0.5 * length * d
                idx = str(int(pairs[i, 0]))
            start = time.perf_counter()
            result = count_line(net, a.to(ctx.device), b.to(ctx.device))
            rows.append(
                {
                    **base,
                    "counts": "activation_regions",
                    "item": i,
                    "indices": idx,
                    "domain": f"segment_{node.segment_kind}",
                    "count": result.count,
                    "measure": result.length,
                    "measure_kind": "length",
                    "count_density": result.count / result.length if result.length > 0 else None,
                    "wall_s": time.perf_counter() - start,
                    **bounds,
                }
            )
    elif node.method in ("plane", "sample") and not (node.method == "sample" and node.domain == "box"):
        from ..analysis.regions.plane import count_plane, make_plane  # scipy: only for the methods that use it

        bounds = bound_columns(ctx.model, 2, node)
        box = _box(ctx, node)
        count = node.planes if node.method == "plane" else 1
        triples = [torch.randperm(len(x), generator=gen)[:3] for _ in range(count)]
        for i, idx in enumerate(triples):
            interrupts.check()  # a safe point between planes
            plane = make_plane(x[idx].cpu(), node.domain, box=box, radius=node.square_radius)
            start = time.perf_counter()
            common = {
                **base,
                "item": i,
                "indices": "-".join(str(int(v)) for v in idx),
                "domain": f"plane_{node.domain}",
                "box": f"{box[0]:.6g},{box[1]:.6g}" if node.domain == "box" else "",
                "square_radius": plane.square_radius,  # the R used: given, or 1.5 x the farthest input from the centroid
                **bounds,
            }
            if node.method == "plane":
                result = count_plane(net, plane, node.tol, node.eps_area, max_regions=node.max_regions)
                rows.append(
                    {
                        **common,
                        "counts": "activation_regions",
                        "count": result.count,
                        "measure": result.area,
                        "measure_kind": "area",
                        "count_density": result.count / result.area,
                        "tol": node.tol,
                        "eps_area": node.eps_area,
                        "wall_s": time.perf_counter() - start,
                    }
                )
                if node.plot:
                    _plot(ctx, phase, i, result, net, plane, node)
            else:
                pts = plane_points(node.samples, plane, gen).to(ctx.device)
                n_patterns = distinct_patterns(net, pts)
                rows.append(
                    {
                        **common,
                        "counts": "distinct_patterns_lower_bound",
                        "count": n_patterns,
                        "measure": node.samples,
                        "measure_kind": "points",
                        "count_density": None,
                        "wall_s": time.perf_counter() - start,
                    }
                )
    elif node.method == "sample":
        bounds = bound_columns(ctx.model, n_in, node)
        box = _box(ctx, node)
        start = time.perf_counter()
        pts = box_points(node.samples, shape, box, gen).to(ctx.device)
        rows.append(
            {
                **base,
                "counts": "distinct_patterns_lower_bound",
                "item": 0,
                "domain": "input_box",
                "box": f"{box[0]:.6g},{box[1]:.6g}",
                "count": distinct_patterns(net, pts),
                "measure": node.samples,
                "measure_kind": "points",
                "count_density": None,
                "wall_s": time.perf_counter() - start,
                **bounds,
            }
        )
    else:  # exact
        from ..analysis.regions.exact import count_exact  # scipy.optimize (seconds to import): only for exact

        bounds = bound_columns(ctx.model, n_in, node)
        box = _box(ctx, node)
        start = time.perf_counter()
        result = count_exact(net, shape, box, node.max_units, node.max_regions, node.f_tol)
        rows.append(
            {
                **base,
                "counts": "activation_regions",
                "item": 0,
                "domain": "input_box",
                "box": f"{box[0]:.6g},{box[1]:.6g}",
                "count": result.count,
                "measure": result.volume,
                "measure_kind": "volume",
                "count_density": result.count / result.volume,
                "f_tol": node.f_tol,
                "min_margin": result.min_margin,
                "milp_solves": result.solves,
                "wall_s": time.perf_counter() - start,
                **bounds,
            }
        )
    return MetricResult(scalars=_summary(rows, node), tables={"regions.csv": rows})


def nonlinear_units(net: nn.Module, example: torch.Tensor) -> int:
    """ReLU inputs plus max-pool windows of one input: the number of hyperplanes a segment can cross
    per layer position, which sets the line counter's cost (docs/regions.md)."""
    from ..analysis.regions.common import Tracer

    units = 0
    for module, inp, out in Tracer(net).run(example):
        units += inp[0].numel() if isinstance(module, nn.ReLU) else out[0].numel()
    return units


def not_counted(base: dict, reason: str, phase: str) -> MetricResult:
    """One regions.csv row saying why nothing was counted (no metrics.csv rows): region counts are
    on in every run, and a model outside the counter's scope must not fail the run."""
    log.warning("regions (%s): not counted: %s", phase, reason)
    row = {**base, "counts": f"not counted: {reason}", "item": 0, "count": None, "measure": None, "measure_kind": None}
    return MetricResult(scalars=[], tables={"regions.csv": [row]})


def default_segment_length(x: torch.Tensor, gen: torch.Generator) -> float:
    """segment_kind=direction's length when segment_length is null (docs/regions.md): torch.median
    (the lower middle value) of the 64x64 matrix of distances between 64 inputs drawn with `gen`,
    self-distances included (fewer inputs if the split has fewer). For 64 distinct inputs that is
    the 992nd smallest of the 2016 pairwise distances, where their median lies between the 1008th
    and the 1009th: a little below the median pairwise distance. Kept as it is, so runs already in
    a results folder keep their lengths under an unchanged run id."""
    sample = x[torch.randperm(len(x), generator=gen)[:64]].reshape(-1, math.prod(x.shape[1:]))
    return float(torch.cdist(sample, sample).median())


def _summary(rows: list[dict], node) -> list[dict]:
    """metrics.csv rows: mean/std of the counts and densities, and the bounds (same for every row)."""
    prefix = f"regions_{node.method}"
    counts = [float(r["count"]) for r in rows]
    out = [{"split": node.split, "metric": f"{prefix}_mean", "value": statistics.fmean(counts)}]
    if len(counts) > 1:
        out.append({"split": node.split, "metric": f"{prefix}_std", "value": statistics.stdev(counts)})
    dens = [r["count_density"] for r in rows if r.get("count_density") is not None]
    if dens:
        out.append({"split": node.split, "metric": f"{prefix}_density_mean", "value": statistics.fmean(dens)})
    for key in ("bound_ln_serra", "bound_ln_rank_actual", "bound_ln_expected_binomial", "bound_ln_expected_montecarlo"):
        if key in rows[0]:
            out.append({"split": node.split, "metric": f"{prefix}_{key}", "value": float(rows[0][key])})
    return out


def _plot(ctx, phase, i, result, net, plane, node) -> None:
    """PNG per plane: this phase beside the dense model (counted once, at the dense phase)."""
    from ..analysis.regions.common import prepare
    from ..analysis.regions.plane import count_plane  # scipy, matplotlib: only when plotting
    from ..analysis.regions.plot import plot_slices

    cache = ctx.state.setdefault("dense_planes", {})  # counted once per run, at the dense phase
    if phase == "dense":
        cache[i] = result
        panels = [("dense", result)]
    else:
        if i not in cache and ctx.has_dense:
            cache[i] = count_plane(prepare(ctx.dense()), plane, node.tol, node.eps_area, max_regions=node.max_regions)
        panels = ([("dense", cache[i])] if i in cache else []) + [(phase, result)]
    plot_slices(panels, ctx.run_dir / f"regions_plane{i}_{phase}.png", seed=node.seed)
