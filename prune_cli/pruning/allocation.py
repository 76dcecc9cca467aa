"""Allocations: how many weights each layer keeps, given scores and a global density.

An allocation is a plugin module in prune_cli/pruning/allocations/ declaring
`@register_allocation("name", ...)` on `fn(scores: {param name: tensor}, density: float, ctx) ->
{name: kept count}`. Scores come in forward order; `ctx.model` is the network (for the first layer
/ classifier roles). The registry holds an `Allocation`: the function plus the hooks the pre-run
pass calls (prune_cli/run/prevalidate.py), so an allocation's checks live in its own file. Its own
`method.<option>` keys are a dataclass passed as `options=` (prune_cli/core/plugins.py, "Options of an
allocation or a structure"): fields with defaults, and a `check(cfg, key)` / `unused(cfg, key)` as any
schema has, run when the allocation is chosen.

Every built-in allocation returns counts whose sum is `round(density * N)` (N = prunable weights),
except `explicit` and `matched`, which take their per-layer densities from the user / another
method, and the faithful (`method.faithful_uniform_plus=true`) variant of `uniform_plus`. This
module holds what several allocations share: rounding, thresholding rules, the layer roles.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from ..core.errors import ConfigError, PruneCliError
from .registries import ALLOCATIONS


def _never(method: DictConfig) -> bool:
    return False


def _always(method: DictConfig) -> bool:
    return True


@dataclass(frozen=True)
class Allocation:
    """A registered allocation and what the pre-run pass asks of it."""

    name: str
    fn: Callable  # (scores, density, ctx) -> {param name: kept count}
    # Its own method.* options: a dataclass (fields with defaults, optional check/unused hooks), added to
    # every method schema; setting one while another allocation is chosen is rejected
    # (prune_cli/run/unused_options.py). None: it has none.
    options: Optional[type] = None
    # Config-only checks, run when it is chosen: check(cfg) (cfg = the whole config).
    check: Optional[Callable[[DictConfig], None]] = None
    # Checks against the model (meta device, before any data): check_model(model, selected, method).
    check_model: Optional[Callable] = None
    # Checks that also need the target: check_density(model, selected, method, density), run by the
    # pre-run pass at the run's final density (the smallest any pruning event of the run reaches).
    check_density: Optional[Callable] = None
    # Whether the final per-layer densities are fixed in advance (then only a single pruning event fits).
    fixes_final_densities: Callable[[DictConfig], bool] = _never
    fixed_by: str = "method.allocation"  # the key the error names when a gradual schedule meets fixed densities
    inexact_hint: str = ""  # why the achieved sparsity may differ from the target, for the error message
    # Whether it promises exactly round(density * N) kept weights (if not, a miss is a warning, not an error).
    exact_total: Callable[[DictConfig], bool] = _always
    # Whether its counts at a density depend only on the scores and the layer shapes, not on the current
    # masks (matched and region_bound read the survivors): then rounds of unchanged scores (magnitude)
    # keep nested sets and end with the one-round mask (run/unused_options.py).
    counts_from_scores_only: bool = False
    # Whether its counts are a fact of the layer shapes and the method's options alone (not of the
    # scores' values or the current masks): then the pre-run pass computes them on the meta model and
    # refuses a layer the run would leave empty (prune_cli/run/prevalidate.py `_check_no_layer_emptied`)
    # before dense training, instead of the pruner after it.
    counts_from_shapes: Callable[[DictConfig], bool] = _never
    # Whether its counts, though not `counts_from_shapes`, do not depend on the scores' values either (the layer
    # shapes, the current masks, its options or a file decide them: region_bound, matched with match_masks): then
    # a score may ask for them before it scores, with any scores of the right shapes (greedy_forward's unit budget).
    counts_without_score_values: Callable[[DictConfig], bool] = _never
    # Where its counts are not `counts_from_shapes` but which layers they leave with no weight is known before
    # the run: empties(model, selected, method, density) -> the names of those weights, or None where the
    # run decides (region_bound with the binomial rank model: its densities are a fact of the widths and its
    # options). The block and bcr pre-run checks then count an empty layer only there
    # (prune_cli/pruning/structure.py `may_empty`); without it any layer may be left none (global). The
    # pre-run collapse check also passes `earlier=`, the densities of the run's allocations before this one
    # (earlier events and scoring rounds; None where not known before the run), where there are any.
    empties: Optional[Callable] = None
    # Where its counts are not `counts_from_shapes` (ties among the scores decide them) but the most it can keep
    # is a fact of the layer shapes: kept_at_most(sizes, method, density) -> that total ({name: numel} of the
    # prunable weights), or None where no such bound is known (threshold_impl=strict_kth, whose ties only prune
    # more: `strict_kth_pruned`). The pre-run pass refuses a pruning event where even that many kept miss
    # round(d N) by more than method.sparsity_tolerance (prune_cli/run/prevalidate.py `_shape_count_outcome`).
    kept_at_most: Optional[Callable] = None

    def __call__(self, scores, density: float, ctx) -> dict[str, int]:
        try:
            counts = self.fn(scores, density, ctx)
        except PruneCliError as err:
            label = f"method.allocation={self.name}"
            if type(err) is not PruneCliError or label in str(err) or str(err).startswith(f"{self.name} "):
                raise  # a ConfigError names its key already; a message naming the allocation needs no prefix
            # a helper's refusal (counts_from_densities: "cannot place 34 kept weights in layers of sizes ...")
            # named neither the allocation whose densities it could not place nor the options that set them
            raise PruneCliError(f"{label}{self._options_in(ctx)}: {err}") from err
        return checked_counts(counts, scores, self.name)

    def _options_in(self, ctx) -> str:
        """` (method.fc_keep=1.0)`: this allocation's own options as the run sets them, or ""."""
        method = getattr(ctx, "method", None)
        if self.options is None or method is None:
            return ""
        missing = object()  # ctx.method: the run's DictConfig, or a MethodConfig (tests, scripts)
        values = [(f.name, getattr(method, f.name, missing)) for f in dataclasses.fields(self.options)]
        shown = [f"method.{name}={value!r}" for name, value in values if value is not missing]
        return f" ({', '.join(shown)})" if shown else ""


def checked_counts(counts, scores: dict, name: str) -> dict[str, int]:
    """An allocation's result, held to the contract every allocation (also a plugin's) keeps: an int
    in [0, numel] for every scored weight. A float or missing count crashed inside the structure,
    reported as a bug in prune-cli; now the message names the allocation and the weight."""
    from .registries import PluginResultError, check_per_weight

    label = f"method.allocation={name}"
    contract = (
        "an allocation returns {weight name: number of weights to keep, an int from 0 to the weight's size} for every prunable weight"
    )
    check_per_weight(counts, scores, label, "count", contract)
    for n, s in scores.items():
        k = counts[n]
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise PluginResultError(label, f"{n}: {k!r} (a {type(k).__name__})", contract)
        if not 0 <= int(k) <= s.numel():
            what = f"{n}: {int(k)}, more than its {s.numel()} weights" if k > 0 else f"{n}: {int(k)}, below 0"
            raise PluginResultError(label, what, contract)
    return {n: int(counts[n]) for n in scores}


def register_allocation(*names: str, **hooks):
    """Register `fn` as the allocation(s) `names`; `hooks` are Allocation fields (options, check, check_model, ...)."""

    def decorator(fn: Callable) -> Callable:
        for name in names:
            checked_options("allocation", name, hooks.get("options"))
            ALLOCATIONS.register(name)(Allocation(name, fn, **hooks))
        return fn

    return decorator


def checked_options(kind: str, name: str, options) -> None:
    """An allocation's or structure's `options=`: a dataclass whose fields are those the plugin index
    read from its source without importing it (prune_cli/core/plugins.py `plugin_options`), which
    the method schema was built with."""
    from ..core import plugins

    if options is None:
        return
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise PruneCliError(
            f"{kind} {name}: options= is the plugin's own options dataclass (fields with defaults: "
            f"`@dataclass class Options: x: float = 1.0`), not {options!r} (docs/architecture.md, 'Plugins')"
        )
    read = plugins.plugin_options().get((kind, name))
    declared = [
        (f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory()) for f in dataclasses.fields(options)
    ]
    if read is None or [(f, d) for f, _, d in read.fields] != declared:
        raise PruneCliError(
            f"{kind} {name}: its options class {options.__qualname__} declares {declared}, but the plugin index read "
            f"{None if read is None else [(f, d) for f, _, d in read.fields]} from the source: name the class on the "
            f"decorator (options=ClassName) and give every field a literal default"
        )


@dataclass
class ThresholdOptions:
    """The options of global and layerwise: the rule that turns a density into a kept count."""

    # topk (round-half-even count, index tie-break) | lap_round (same count, LAP) | shrinkbench_quantile
    # (keep s >= np.quantile(s, 1-d)) | strict_kth (prune ceil((1-d)n), ties pruned)
    threshold_impl: str = "topk"

    exclusive: ClassVar[tuple] = ("threshold_impl",)  # another rule than topk needs global or layerwise
    in_every_run_id: ClassVar[bool] = True  # a MethodConfig field before allocations declared their options

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        from ..core.checks import check, choice
        from .registries import STRUCTURES

        choice(cfg, f"{key}.threshold_impl", set(THRESHOLD_IMPLS))
        m = cfg[key]
        if m.threshold_impl != "topk":
            check(
                STRUCTURES.get(m.structure).uses_counts,
                f"{key}.threshold_impl",
                m.threshold_impl,
                f"topk with method.structure={m.structure} (its masks do not follow the allocation's counts, which the rule sets)",
            )


def round_half_even(x: float) -> int:
    return int(round(x))  # Python's round is half-to-even, as in the LAP reference code


def counts_from_densities(
    densities: dict[str, float],
    sizes: dict[str, int],
    total: int,
    frozen: tuple[str, ...] = (),
    limits: Optional[dict[str, int]] = None,
) -> dict[str, int]:
    """Integer counts k_l ~ d_l * N_l with sum exactly `total` (largest-remainder rounding).

    `frozen` layers get round(d_l N_l) and absorb no rounding; ties in the remainders go to the
    earlier layer. `limits`: at most so many in a layer (default its size), such as the weights still
    alive at a later pruning event (region_bound)."""
    limits = sizes if limits is None else limits
    raw = {n: min(min(max(densities[n], 0.0), 1.0) * sizes[n], limits[n]) for n in sizes}
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
            if (step > 0 and counts[n] < limits[n]) or (step < 0 and counts[n] > 0):
                counts[n] += step
                short -= step
                moved = True
        if not moved:
            raise PruneCliError(f"cannot place {total} kept weights in layers of sizes {sizes}")
    return counts


def check_implied_sparsity(kept: int, total: int, density: float, method, source: str) -> None:
    """Before the run, for an allocation whose counts a config fixes (explicit densities, another
    run's masks): those `kept` of `total` prunable weights against the target's round(d N), held to
    method.sparsity_tolerance as the pruner holds the masks after pruning (pruner.check_masks)."""
    from ..core.checks import check

    achieved, reachable = 1.0 - kept / total, 1.0 - round_half_even(total * density) / total
    check(
        abs(achieved - reachable) <= float(method.sparsity_tolerance),
        "sparsity",
        round(1.0 - density, 12),
        f"{achieved:.6g}, the sparsity {source} over this run's {total} prunable weights "
        f"(within method.sparsity_tolerance={method.sparsity_tolerance})",
    )


def total_kept(scores, density: float) -> int:
    return round_half_even(density * sum(s.numel() for s in scores.values()))


def layer_roles(scores, ctx) -> tuple[str | None, str | None]:
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
        n_prune = strict_kth_pruned(n, density)
        if n_prune >= n:
            return 0
        thr = torch.sort(v).values[n_prune - 1]
        return int((v > thr).sum())
    raise ConfigError("method.threshold_impl", impl, "one of " + ", ".join(THRESHOLD_IMPLS))


def strict_kth_pruned(n: int, density: float) -> int:
    """threshold_impl=strict_kth's n_prune = max(1, ceil((1 - d) n)) of n scores (LOMP's rule, docs/allocation.md;
    the 1e-9 absorbs the floating-point error of (1 - d) n at a whole number)."""
    return max(1, math.ceil((1.0 - density) * n - 1e-9))


def strict_kth_kept_at_most(n: int, density: float) -> int:
    """The most strict_kth keeps of n scores: n - n_prune, what it keeps without ties. It keeps the scores above
    the n_prune-th smallest, and at least n_prune scores (that one and those below or tied with it) are not
    above it, so ties (also the -inf of weights an earlier event pruned) can only keep fewer."""
    return max(0, n - strict_kth_pruned(n, density))


def threshold_impl(ctx) -> str:
    method = getattr(ctx, "method", None)
    return method.threshold_impl if method is not None else "topk"
