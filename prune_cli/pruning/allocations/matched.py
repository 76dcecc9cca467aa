"""`method.allocation=matched`: the per-layer counts another method chose, filled by this run's
own score (ShrinkBench's same-proportion baseline, Blalock et al., MLSys 2020; docs/allocation.md).
Separates "which layers" from "which weights": e.g. random positions at SNIP's layer densities."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from omegaconf import DictConfig, OmegaConf

from ...core import plugins
from ...core.checks import check
from ...core.errors import ConfigError
from ...core.paths import configs_dir
from ..allocation import check_implied_sparsity, register_allocation, round_half_even


@dataclass
class MatchedOptions:
    match_masks: Optional[str] = None  # masks.pt of another run (its per-layer counts)
    match_method: Optional[str] = None  # a method config (configs/method/<name>.yaml) run here
    match_allocation: Optional[str] = None  # with match_method: override that method's allocation (null = its own)

    exclusive: ClassVar[tuple] = ("match_masks", "match_method")  # a source without allocation=matched is a mistake
    in_every_run_id: ClassVar[bool] = True  # MethodConfig fields before allocations declared their options


# Not offered as method.match_allocation: matched itself, and explicit, whose densities come from
# method.layer_densities, a key the matched method's config does not set and this run's is refused.
UNMATCHABLE = ("matched", "explicit")


def check_matched(cfg: DictConfig) -> None:
    """Exactly one source; a named method must exist and not be matched itself; a masks file must be
    readable (a missing or corrupt file stops the run before any work). An overriding match_allocation
    must be one that can run on the matched method's config (not explicit: `UNMATCHABLE`)."""
    from ..registries import ALLOCATIONS

    m = cfg.method
    check(
        bool(m.match_masks) != bool(m.match_method),
        "method.match_masks / method.match_method",
        [m.match_masks, m.match_method],
        "exactly one of them set with method.allocation=matched",
    )
    if m.match_method:
        check(
            m.match_method in method_options(),
            "method.match_method",
            m.match_method,
            "a method config name: one of " + ", ".join(method_options()),
        )
        if m.match_allocation is not None:
            choices = [a for a in ALLOCATIONS.names() if a not in UNMATCHABLE]
            check(
                m.match_allocation in choices,
                "method.match_allocation",
                m.match_allocation,
                "null (the matched method's own allocation) or one of "
                + ", ".join(choices)
                + " (not explicit: the matched method's config sets no method.layer_densities, and this run's are not passed on)",
            )
        other = method_option(m.match_method)
        check(other.allocation != "matched", "method.match_method", m.match_method, "a method whose own allocation is not matched")
    if m.match_masks:
        from ...models.masks import read_masks_file

        check(
            m.match_allocation is None,
            "method.match_allocation",
            m.match_allocation,
            "null with method.match_masks (the file's masks fix every layer's count)",
        )
        read_masks_file(m.match_masks)


def check_matched_density(model, selected: dict, method: DictConfig, density: float) -> None:
    """The masks file's sparsity over this run's prunable weights is the run's (as the pruner holds
    it, within method.sparsity_tolerance of the reachable count); found before dense training. With
    match_method: the target leaves the matched method's own layers something to keep (`matched_density`),
    and its allocation's `check_density` accepts their density, on the config `method=<name>` composes."""
    if method.match_method:
        other, own, dense = matched_layers(model, selected, method)
        d = matched_density(selected, own, dense, method, density)
        hook = _allocation(other).check_density
        if hook is not None:
            with _refusal_as(method, other, "sparsity", round(1.0 - density, 12), d):
                hook(model, own, other, d)
        return
    if not method.match_masks:
        return
    from ...models.masks import read_masks_file

    other = read_masks_file(method.match_masks)
    if any(n not in other for n in selected):
        return  # check_matched_model names the missing layers
    kept = sum(int(other[n].sum()) for n in selected)
    check_implied_sparsity(kept, sum(p.numel() for p in selected.values()), density, method, "of method.match_masks")


def check_matched_model(model, selected: dict, method: DictConfig) -> None:
    """The masks file holds a mask of the right shape for every prunable weight of this run. With
    match_method: the matched method prunes some layer this run prunes (`matched_layers`), and its
    allocation's `check_model` accepts the model (region_bound refuses a residual one) on its own layers."""
    if method.match_method:
        other, own, _ = matched_layers(model, selected, method)
        hook = _allocation(other).check_model
        if hook is not None:
            with _refusal_as(method, other, _source_key(method), _source_value(method)):
                hook(model, own, other)
        return
    if not method.match_masks:
        return
    from ...models.masks import read_masks_file

    path = method.match_masks
    other = read_masks_file(path)
    bad = [n for n in selected if n not in other or tuple(other[n].shape) != tuple(selected[n].shape)]
    if bad:
        raise ConfigError(
            "method.match_masks",
            path,
            "masks with the shapes of this run's prunable weights; missing or mis-shaped: " + ", ".join(bad),
        )


def matched_config(method, root: DictConfig | None = None) -> DictConfig:
    """The matched method's config as `method=<match_method>` composes it, with method.match_allocation's
    allocation where one is given. `root`: the run's config (interpolations resolve against it); by
    default the root of `method` where it is a node of one."""
    if root is None and isinstance(method, DictConfig):
        found = method._get_root()
        root = found if found is not method and isinstance(found, DictConfig) and "method" in found else None
    other = method_option(method.match_method, root)
    if method.match_allocation:
        other.allocation = method.match_allocation
    return other


def matched_layers(model, selected: dict, method, root: DictConfig | None = None) -> tuple[DictConfig, dict, list[str]]:
    """(the matched method's config, the weights it prunes on this model, this run's prunable weights
    it keeps dense). Its layers are those `method=<name>` selects (pruner.select_prunable's rule: its own
    `exclude` / `exclude_first` / `exclude_classifier`) with this run's exclusions added: a layer this run
    excludes drops out of both (the fair-comparison setup, first or last layer dense for every method);
    one this run prunes but the matched method excludes keeps all its weights (region_bound keeps the
    classifier dense, so matching it keeps this run's classifier dense too)."""
    name = method.match_method
    other = matched_config(method, root)
    layers = model.prunable_layers()
    names = [n for n, _ in layers]
    excluded = set(other.exclude or [])
    unknown = sorted(excluded - set(names))
    if unknown:
        raise ConfigError(
            "method.match_method",
            name,
            f"a method whose method.exclude names prunable layers of this model ({', '.join(names)}); "
            f"configs/method/{name}.yaml excludes {unknown}",
        )
    if other.exclude_first:
        excluded.add(names[0])
    if other.exclude_classifier:
        excluded.add(model.classifier)
    own = {f"{n}.weight": module.weight for n, module in layers if n not in excluded and f"{n}.weight" in selected}
    if not own:
        raise ConfigError(
            "method.match_method",
            name,
            f"a method that prunes some layer this run prunes (method={name} excludes all of them: "
            f"{', '.join(w.removesuffix('.weight') for w in selected)})",
        )
    return other, own, [n for n in selected if n not in own]


def matched_density(selected: dict, own: dict, dense: list[str], method, density: float) -> float:
    """The density the matched method prunes its own layers to. The run's sparsity is over this run's
    prunable weights, as with match_masks (docs/allocation.md): it keeps round(d N) of them. Where the
    matched method keeps some of them dense (its exclude options), those keep all their weights and its
    own layers the rest, so the counts are those `method=<name>` chooses at the sparsity over its own
    layers that keeps the same total; that rest must leave each of its layers a weight (unless
    method.allow_collapse). Where both prune the same layers the density is the run's, unchanged."""
    if not dense:
        return density
    n = sum(p.numel() for p in selected.values())
    fixed = sum(selected[w].numel() for w in dense)
    kept = round_half_even(density * n)
    least = fixed + (0 if method.allow_collapse else len(own))
    if kept < least:
        layers = ", ".join(w.removesuffix(".weight") for w in dense)
        mine = ", ".join(w.removesuffix(".weight") for w in own)
        each = "" if method.allow_collapse else f" and at least one weight in each of its {len(own)} pruned layers ({mine})"
        raise ConfigError(
            "sparsity",
            round(1.0 - density, 12),
            f"at most {_largest_sparsity(n, least)} with method.match_method={method.match_method}: that method keeps {layers} "
            f"dense ({fixed} of this run's {n} prunable weights){each}, {least} weights, more than this target keeps ({kept}); "
            f"or exclude {layers} here too (method.exclude)"
            + ("" if method.allow_collapse else ", or accept empty layers with method.allow_collapse=true"),
        )
    return (kept - fixed) / sum(p.numel() for p in own.values())


def _largest_sparsity(n: int, least: int) -> str:
    """The largest sparsity with six decimals at which round(d n) (half to even, d = 1 - sparsity) keeps
    at least `least` of n weights: the bound a refusal names, which itself passes."""
    s = math.floor((1.0 - (least - 0.5) / n) * 1e6) / 1e6
    while s > 0 and round_half_even((1.0 - s) * n) < least:
        s = round(s - 1e-6, 6)
    return f"{max(s, 0.0):.6f}".rstrip("0").rstrip(".")


def _allocation(other: DictConfig):
    from ..registries import ALLOCATIONS

    return ALLOCATIONS.get(other.allocation)


def _source_key(method) -> str:
    return "method.match_allocation" if method.match_allocation else "method.match_method"


def _source_value(method) -> str:
    return method.match_allocation or method.match_method


@contextlib.contextmanager
def _refusal_as(method, other: DictConfig, key: str, value, density: float | None = None):
    """The matched allocation's own check refusing, told under this run's keys: the words it used name
    the matched method's options (method.fc_density, ...), which this run cannot set."""
    try:
        yield
    except ConfigError as err:
        via = f" with method.match_allocation={method.match_allocation}" if method.match_allocation else ""
        which = f"method.match_method={method.match_method}{via} (allocation {other.allocation})"
        if key == "sparsity":
            allowed = f"a sparsity that {which} reaches on this model; or another method.match_allocation or method.match_method"
            where = f" at density {density:.6g} of the layers it prunes"
            # its reason only: its remedies (e.g. uniform_plus's method.exclude_first=true) need not fix this run's
            # target, whose sparsity is over this run's prunable weights
            said = getattr(err, "hint", "") or str(err)
        else:
            allowed = f"a matched method and allocation that fit this model: {which} does not"
            where = ""
            said = str(err)
        raise ConfigError(
            key,
            value,
            allowed,
            f"Its check{where}, on the config method={method.match_method} composes with this run's exclusions added "
            f"(this run's other method.* options do not reach it), says: {said}",
        ) from None


@register_allocation(
    "matched",
    options=MatchedOptions,
    check=check_matched,
    check_model=check_matched_model,
    check_density=check_matched_density,
    fixes_final_densities=lambda method: bool(method.match_masks),
    counts_without_score_values=lambda method: bool(method.match_masks),  # match_method scores another method here
    fixed_by="method.match_masks",
    inexact_hint="The matched masks have a different sparsity; use the sparsity of the run they come from.",
)
def allocate_matched(scores, density: float, ctx) -> dict[str, int]:
    """The per-layer counts another method chose (ShrinkBench's same-proportion baseline).

    `method.match_masks`: a masks.pt of another run (its per-layer counts, target must agree);
    `method.match_method`: another method config (configs/method/<name>.yaml, its score, options,
    exclusions and allocation; `method.match_allocation` overrides the allocation) computed here on the
    same model and data over the layers it prunes (the layers it excludes keep all their weights:
    `matched_layers`, `matched_density`), over its own rounds when it has several (on a copy of the
    model). The run's own score (e.g. random) then picks the positions."""
    method = ctx.method
    path = method.match_masks
    if path:
        from ...models.masks import read_masks_file

        other = read_masks_file(path)
        missing = sorted(set(scores) - set(other))
        if missing:
            raise ConfigError("method.match_masks", path, "masks for every prunable layer of this run; missing " + ", ".join(missing))
        for n, s in scores.items():
            if tuple(other[n].shape) != tuple(s.shape):
                raise ConfigError(
                    "method.match_masks", path, f"a mask of shape {tuple(s.shape)} for {n} (found {tuple(other[n].shape)})"
                )
        return {n: int(other[n].sum()) for n in scores}
    import dataclasses

    from ..registries import ALLOCATIONS, SCORES

    params = _params_of(ctx, scores)
    other, own, dense = matched_layers(ctx.model, params, method, ctx.config)
    if other.allocation == "matched":
        raise ConfigError("method.match_allocation", other.allocation, "an allocation other than matched")
    own_density = matched_density(params, own, dense, method, density)
    fixed = {n: scores[n].numel() for n in dense}  # layers the matched method does not prune
    octx = dataclasses.replace(ctx, method=other)
    if other.rounds > 1:  # its scores change as its masks grow (SynFlow's 100 rounds): its own pruning, on a copy
        import copy

        from ..pruner import prune_to_density

        masks = prune_to_density(copy.deepcopy(ctx.model), own_density, dataclasses.replace(octx, graph=None))
        return {n: int(masks[n].sum()) if n in masks else scores[n].numel() for n in scores}
    other_scores = SCORES.get(other.score).fn(ctx.model, _params_of(ctx, own), octx)
    # a copy: the other score may share storage with the weights, and the -inf below is written in place
    other_scores = {n: other_scores[n].detach().float().cpu().clone() for n in own}
    if ctx.masks:
        for n, s in other_scores.items():
            if n in ctx.masks:
                s.masked_fill_(~ctx.masks[n].cpu(), float("-inf"))
    counts = {**ALLOCATIONS.get(other.allocation)(other_scores, own_density, octx), **fixed}
    return {n: counts[n] for n in scores}


def method_options() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "method").glob("*.yaml"))


def method_option(name: str, root: DictConfig | None = None) -> DictConfig:
    """The method config `configs/method/<name>.yaml` on top of its schema's defaults (what
    `method=<name>` would compose), for computing another method's scores in-process. With the
    run's `root` config, interpolations such as ${train.weight_decay} resolve against this run."""
    path = configs_dir() / "method" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError("method.match_method", name, "a method config name: one of " + ", ".join(method_options()))
    raw = OmegaConf.load(path)
    schema = "base"
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/method/"):
            schema = entry[len("/schema/method/") :].split("@")[0]
    body = OmegaConf.masked_copy(raw, [k for k in raw if k != "defaults"])
    node = OmegaConf.structured(plugins.schema("method", schema))
    if root is None:
        return OmegaConf.merge(node, body)
    full = OmegaConf.create(OmegaConf.to_container(root, resolve=False))
    full.method = node
    return OmegaConf.merge(full, {"method": body}).method


def _params_of(ctx, scores) -> dict:
    named = dict(ctx.model.named_parameters())
    return {n: named[n] for n in scores}
