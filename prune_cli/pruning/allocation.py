"""Allocations: how many weights each layer keeps, given scores and a global density.

Signature: `fn(scores: {param name: tensor}, density: float, ctx: ScoreContext) -> {name: kept count}`.
Scores come in forward order; `ctx.model` is the network (for the first layer / classifier roles).
Every allocation here returns counts whose sum is `round(density * N)` (N = prunable weights),
except `explicit` and `matched`, which take their per-layer densities from the user / another
method, and the faithful (`method.faithful_uniform_plus=true`) variant of `uniform_plus`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..core.errors import ConfigError, PruneCliError
from ..core.paths import configs_dir
from . import ALLOCATIONS


def round_half_even(x: float) -> int:
    return int(round(x))  # Python's round is half-to-even, as in the LAP reference code


def counts_from_densities(densities: dict[str, float], sizes: dict[str, int], total: int,
                          frozen: tuple[str, ...] = ()) -> dict[str, int]:
    """Integer counts k_l ~ d_l * N_l with sum exactly `total` (largest-remainder rounding).

    `frozen` layers get round(d_l N_l) and absorb no rounding; ties in the remainders go to the
    earlier layer."""
    raw = {n: min(max(densities[n], 0.0), 1.0) * sizes[n] for n in sizes}
    counts = {n: (round_half_even(v) if n in frozen else math.floor(v)) for n, v in raw.items()}
    short = total - sum(counts.values())
    order = sorted((n for n in sizes if n not in frozen), key=lambda n: (-(raw[n] - counts[n]), list(sizes).index(n)))
    step = 1 if short > 0 else -1
    while short != 0:
        moved = False
        candidates = order if step > 0 else order[::-1]
        for n in candidates:
            if short == 0:
                break
            if (step > 0 and counts[n] < sizes[n]) or (step < 0 and counts[n] > 0):
                counts[n] += step
                short -= step
                moved = True
        if not moved:
            raise PruneCliError(f"cannot place {total} kept weights in layers of sizes {sizes}")
    return counts


def _total(scores, density: float) -> int:
    return round_half_even(density * sum(s.numel() for s in scores.values()))


def _roles(scores, ctx) -> tuple[str | None, str | None]:
    """Parameter names of the model's first prunable layer and classifier, if they are in the pool."""
    model = getattr(ctx, "model", None)
    if model is None:
        return None, None
    first = f"{model.prunable_layers()[0][0]}.weight"
    fc = f"{model.classifier}.weight"
    return (first if first in scores else None), (fc if fc in scores else None)


THRESHOLD_IMPLS = ("topk", "lap_round", "shrinkbench_quantile", "strict_kth")


def kept_count(values: torch.Tensor, density: float, impl: str = "topk") -> int:
    """How many of `values` a thresholding rule keeps (docs/allocation.md); the kept ones are
    always the highest, so the count determines the mask.

    topk / lap_round: round(d n), Python's half-to-even round (LAP's `round(surv * n)`);
    shrinkbench_quantile: keep s >= np.quantile(s, 1 - d) (linear interpolation; ties kept);
    strict_kth: n_prune = max(1, ceil((1 - d) n)), keep s > the n_prune-th smallest (ties pruned)."""
    n = values.numel()
    if impl in ("topk", "lap_round"):
        return round_half_even(density * n)
    v = values.flatten().double().cpu()
    finite = v[torch.isfinite(v)]
    floor = (finite.min() - 1) if finite.numel() else torch.tensor(0.0, dtype=torch.float64)
    v = torch.where(torch.isneginf(v), floor, v)  # already-pruned entries rank lowest
    if impl == "shrinkbench_quantile":
        thr = float(np.quantile(v.numpy(), 1.0 - density))
        return int((v >= thr).sum())
    if impl == "strict_kth":
        n_prune = max(1, math.ceil((1.0 - density) * n - 1e-9))
        if n_prune >= n:
            return 0
        thr = torch.sort(v).values[n_prune - 1]
        return int((v > thr).sum())
    raise ConfigError("method.threshold_impl", impl, "one of " + ", ".join(THRESHOLD_IMPLS))


@ALLOCATIONS.register("global")
def allocate_global(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """One ranking over all prunable weights; ties broken by flat index (lower index kept)."""
    flat = torch.cat([s.flatten().cpu() for s in scores.values()])
    keep = kept_count(flat, density, _impl(ctx))
    order = torch.sort(flat, descending=True, stable=True).indices[:keep]
    sizes = torch.tensor([s.numel() for s in scores.values()])
    layer_of = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    per_layer = torch.bincount(layer_of[order], minlength=len(sizes)).tolist()
    return dict(zip(scores, per_layer))


@ALLOCATIONS.register("layerwise")
def allocate_layerwise(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """The same density in every prunable layer."""
    return {name: kept_count(s, density, _impl(ctx)) for name, s in scores.items()}


def _impl(ctx) -> str:
    method = getattr(ctx, "method", None)
    return method.get("threshold_impl", "topk") if method is not None else "topk"


@ALLOCATIONS.register("explicit")
def allocate_explicit(scores: dict[str, torch.Tensor], density: float, ctx) -> dict[str, int]:
    """`method.layer_densities`: one density per prunable layer in forward order (k_l = round(d_l N_l))."""
    given = list(ctx.method.get("layer_densities") or [])
    names = list(scores)
    if len(given) != len(names):
        raise ConfigError("method.layer_densities", given,
                          f"a list of {len(names)} densities in [0, 1], one per prunable layer in forward "
                          f"order: {', '.join(names)}")
    return {n: round_half_even(float(d) * scores[n].numel()) for n, d in zip(names, given)}


def raw_erk(shape: torch.Size, kernel: bool, power: float = 1.0) -> float:
    """ER: (n_in + n_out) / (n_in n_out); ERK: sum(shape) / prod(shape) (equal for linear layers)."""
    dims = list(shape) if kernel else list(shape[:2])
    return (sum(dims) / math.prod(dims)) ** power


def erk_densities(shapes: dict[str, torch.Size], density: float, kernel: bool = True,
                  power: float = 1.0) -> dict[str, float]:
    """The epsilon loop of RigL's get_sparsities_erdos_renyi (Evci et al., ICML 2020; docs/allocation.md), in floats.

    d_l = eps * raw_l with eps chosen so that sum d_l N_l = density * sum N_l; a layer whose d_l
    would exceed 1 becomes dense (all layers tied at the largest raw density at once) and eps is
    recomputed over the others."""
    if density >= 1.0:
        return {n: 1.0 for n in shapes}
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: raw_erk(shapes[n], kernel, power) for n in shapes}
    dense: set[str] = set()
    while True:
        live = [n for n in shapes if n not in dense]
        if not live:
            raise PruneCliError(f"ERK at density {density}: every layer would have to be dense, so this "
                                "density cannot be reached; use a lower density (higher sparsity).")
        rhs = sum(density * sizes[n] for n in live) - sum((1 - density) * sizes[n] for n in dense)
        eps = rhs / sum(raw[n] * sizes[n] for n in live)
        top = max(raw[n] for n in live)
        if eps * top > 1 + 1e-12:  # the margin only absorbs float error at exactly 1
            dense |= {n for n in live if raw[n] == top}
            continue
        break
    if eps < 0:
        raise PruneCliError(f"ERK at density {density}: the dense layers hold more weights than the budget.")
    return {n: (1.0 if n in dense else eps * raw[n]) for n in shapes}


def _erk_counts(scores, density: float, ctx, kernel: bool) -> dict[str, int]:
    shapes = {n: s.shape for n, s in scores.items()}
    dens = erk_densities(shapes, density, kernel, float(ctx.method.get("erk_power", 1.0)))
    return counts_from_densities(dens, {n: s.numel() for n, s in scores.items()}, _total(scores, density))


@ALLOCATIONS.register("er")
def allocate_er(scores, density: float, ctx) -> dict[str, int]:
    """Erdos-Renyi: d_l proportional to (n_in + n_out) / (n_in n_out), kernel size ignored."""
    return _erk_counts(scores, density, ctx, kernel=False)


@ALLOCATIONS.register("erk")
def allocate_erk(scores, density: float, ctx) -> dict[str, int]:
    """Erdos-Renyi-Kernel: d_l proportional to sum(shape) / prod(shape) (RigL, Liu et al. 2022)."""
    return _erk_counts(scores, density, ctx, kernel=True)


@ALLOCATIONS.register("erk_plus")
def allocate_erk_plus(scores, density: float, ctx) -> dict[str, int]:
    """ERK over all layers but the classifier, which gets `method.fc_density` (Random_Pruning ImageNet)."""
    _, fc = _roles(scores, ctx)
    if fc is None:
        return _erk_counts(scores, density, ctx, kernel=True)
    fc_density = float(ctx.method.get("fc_density", 1.0))
    n_fc, n_all = scores[fc].numel(), sum(s.numel() for s in scores.values())
    rest = (density * n_all - fc_density * n_fc) / (n_all - n_fc) if n_all > n_fc else 0.0
    if not 0.0 <= rest <= 1.0:
        raise ConfigError("method.fc_density", fc_density,
                          f"a classifier density that leaves the other layers a density in [0, 1] at "
                          f"density {density} (they would get {rest:.4f})")
    others = {n: s for n, s in scores.items() if n != fc}
    counts = _erk_counts(others, rest, ctx, kernel=True) if others else {}
    k_fc = round_half_even(fc_density * n_fc)
    # the others absorb the rounding so the total is exactly round(density * N)
    counts = counts_from_densities({n: counts[n] / others[n].numel() for n in others},
                                   {n: others[n].numel() for n in others}, _total(scores, density) - k_fc)
    return {n: (k_fc if n == fc else counts[n]) for n in scores}


@ALLOCATIONS.register("uniform_plus")
def allocate_uniform_plus(scores, density: float, ctx) -> dict[str, int]:
    """First layer dense; classifier at 0.2 when density < 0.2; the rest uniform (Random_Pruning CIFAR).

    Default: the rest is re-balanced so the total equals the target,
    d' = (d N_all - N_first - 0.2 N_fc) / (N_all - N_first - N_fc) (fc term only when d < 0.2).
    `method.faithful_uniform_plus=true` reproduces the reference code: d' = (d N_all - N_first
    - 0.2 N_fc) / N_all when d < 0.2, else plain d (the realised density then differs from d)."""
    first, fc = _roles(scores, ctx)
    sizes = {n: s.numel() for n, s in scores.items()}
    n_all = sum(sizes.values())
    fixed: dict[str, float] = {}
    if first is not None:
        fixed[first] = 1.0
    if fc is not None and fc != first and density < 0.2:
        fixed[fc] = 0.2
    rest = [n for n in sizes if n not in fixed]
    n_rest = sum(sizes[n] for n in rest)
    if ctx.method.get("faithful_uniform_plus", False):
        if density < 0.2:
            d_rest = (density * n_all - sum(fixed[n] * sizes[n] for n in fixed)) / n_all
        else:
            d_rest = density
        dens = {**{n: d_rest for n in rest}, **fixed}
        return {n: round_half_even(min(max(dens[n], 0.0), 1.0) * sizes[n]) for n in sizes}
    kept_fixed = sum(fixed[n] * sizes[n] for n in fixed)
    d_rest = (density * n_all - kept_fixed) / n_rest if n_rest else 0.0
    if not 0.0 <= d_rest <= 1.0 + 1e-12:
        raise PruneCliError(
            f"uniform_plus at density {density}: the dense first layer{' and the 0.2-density classifier' if fc in fixed else ''} "
            f"hold {kept_fixed:.0f} of the {density * n_all:.0f} weights the target allows, leaving the other layers "
            f"density {d_rest:.4f}. Use a higher density, method.allocation=layerwise, or exclude the first layer.")
    dens = {**{n: d_rest for n in rest}, **fixed}
    return counts_from_densities(dens, sizes, _total(scores, density), frozen=tuple(fixed))


@ALLOCATIONS.register("matched")
def allocate_matched(scores, density: float, ctx) -> dict[str, int]:
    """The per-layer counts another method chose (ShrinkBench's same-proportion baseline).

    `method.match_masks`: a masks.pt of another run (its per-layer counts, target must agree);
    `method.match_method`: another method config (configs/method/<name>.yaml, its score, options and
    allocation; `method.match_allocation` overrides the allocation) computed here on the same model
    and data. The run's own score (e.g. random) then picks the positions."""
    method = ctx.method
    path = method.get("match_masks")
    if path:
        from ..models.masks import read_masks_file

        other = read_masks_file(path)
        missing = sorted(set(scores) - set(other))
        if missing:
            raise ConfigError("method.match_masks", path, "masks for every prunable layer of this run; missing "
                              + ", ".join(missing))
        for n, s in scores.items():
            if tuple(other[n].shape) != tuple(s.shape):
                raise ConfigError("method.match_masks", path, f"a mask of shape {tuple(s.shape)} for {n} "
                                  f"(found {tuple(other[n].shape)})")
        return {n: int(other[n].sum()) for n in scores}
    import dataclasses

    from . import SCORES

    root = method._get_root()
    other = method_option(method.get("match_method"), root if root is not method else None)
    if method.get("match_allocation"):
        other.allocation = method.match_allocation
    if other.allocation == "matched":
        raise ConfigError("method.match_allocation", other.allocation, "an allocation other than matched")
    octx = dataclasses.replace(ctx, method=other)
    other_scores = SCORES.get(other.score).fn(ctx.model, _params_of(ctx, scores), octx)
    other_scores = {n: other_scores[n].detach().float().cpu() for n in scores}
    if ctx.masks:
        for n, s in other_scores.items():
            if n in ctx.masks:
                s.masked_fill_(~ctx.masks[n].cpu(), float("-inf"))
    return ALLOCATIONS.get(other.allocation)(other_scores, density, octx)


def method_options() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "method").glob("*.yaml"))


def method_option(name: str, root: DictConfig | None = None) -> DictConfig:
    """The method config `configs/method/<name>.yaml` on top of its schema's defaults (what
    `method=<name>` would compose), for computing another method's scores in-process. With the
    run's `root` config, interpolations such as ${train.weight_decay} resolve against this run."""
    from ..core.config_base import SCHEMAS

    path = configs_dir() / "method" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError("method.match_method", name, "a method config name: one of " + ", ".join(method_options()))
    raw = OmegaConf.load(path)
    schema = "base"
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/method/"):
            schema = entry[len("/schema/method/"):].split("@")[0]
    body = OmegaConf.masked_copy(raw, [k for k in raw if k != "defaults"])
    node = OmegaConf.structured(SCHEMAS["method"][schema])
    if root is None:
        return OmegaConf.merge(node, body)
    full = OmegaConf.create(OmegaConf.to_container(root, resolve=False))
    full.method = node
    return OmegaConf.merge(full, {"method": body}).method


def _params_of(ctx, scores) -> dict:
    named = dict(ctx.model.named_parameters())
    return {n: named[n] for n in scores}
