"""`method.allocation=matched`: the per-layer counts another method chose, filled by this run's
own score (ShrinkBench's same-proportion baseline, Blalock et al., MLSys 2020; docs/allocation.md).
Separates "which layers" from "which weights": e.g. random positions at SNIP's layer densities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from omegaconf import DictConfig, OmegaConf

from ...core import plugins
from ...core.checks import check
from ...core.errors import ConfigError
from ...core.paths import configs_dir
from ..allocation import check_implied_sparsity, register_allocation


@dataclass
class MatchedOptions:
    match_masks: Optional[str] = None  # masks.pt of another run (its per-layer counts)
    match_method: Optional[str] = None  # a method config (configs/method/<name>.yaml) run here
    match_allocation: Optional[str] = None  # with match_method: override that method's allocation (null = its own)

    exclusive: ClassVar[tuple] = ("match_masks", "match_method")  # a source without allocation=matched is a mistake
    in_every_run_id: ClassVar[bool] = True  # MethodConfig fields before allocations declared their options


def check_matched(cfg: DictConfig) -> None:
    """Exactly one source; a named method must exist and not be matched itself; a masks file must be
    readable (a missing or corrupt file stops the run before any work)."""
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
            choices = [a for a in ALLOCATIONS.names() if a != "matched"]
            check(
                m.match_allocation in choices,
                "method.match_allocation",
                m.match_allocation,
                "null (the matched method's own allocation) or one of " + ", ".join(choices),
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
    it, within method.sparsity_tolerance of the reachable count); found before dense training."""
    if not method.match_masks:
        return
    from ...models.masks import read_masks_file

    other = read_masks_file(method.match_masks)
    if any(n not in other for n in selected):
        return  # check_matched_model names the missing layers
    kept = sum(int(other[n].sum()) for n in selected)
    check_implied_sparsity(kept, sum(p.numel() for p in selected.values()), density, method, "of method.match_masks")


def check_matched_model(model, selected: dict, method: DictConfig) -> None:
    """The masks file holds a mask of the right shape for every prunable weight of this run."""
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
    `method.match_method`: another method config (configs/method/<name>.yaml, its score, options and
    allocation; `method.match_allocation` overrides the allocation) computed here on the same model
    and data, over its own rounds when it has several (on a copy of the model). The run's own score
    (e.g. random) then picks the positions."""
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

    other = method_option(method.match_method, ctx.config)
    if method.match_allocation:
        other.allocation = method.match_allocation
    if other.allocation == "matched":
        raise ConfigError("method.match_allocation", other.allocation, "an allocation other than matched")
    octx = dataclasses.replace(ctx, method=other)
    if other.rounds > 1:  # its scores change as its masks grow (SynFlow's 100 rounds): its own pruning, on a copy
        import copy

        from ..pruner import prune_to_density

        masks = prune_to_density(copy.deepcopy(ctx.model), density, dataclasses.replace(octx, graph=None))
        return {n: int(masks[n].sum()) if n in masks else scores[n].numel() for n in scores}
    other_scores = SCORES.get(other.score).fn(ctx.model, _params_of(ctx, scores), octx)
    # a copy: the other score may share storage with the weights, and the -inf below is written in place
    other_scores = {n: other_scores[n].detach().float().cpu().clone() for n in scores}
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
