"""Overrides of options that do nothing in the composed config: rejected before any work.

Every key of prune-cli's config has a schema, so a typo stops the run (prune_cli/run/prevalidate.py);
but a valid key can still be one the rest of the config never reads. `method.nm_n=1` without
`method.structure=nm` prunes unstructured; `train.milestones=[20,30]` without
`train.lr_schedule=multistep` keeps the cosine schedule; `metrics.hessian.top_k=20` without
`metrics.hessian.enabled=true` computes no spectrum. The run would go ahead as if the option were
honoured (under a run id of its own, docs/robustness.md "Bad input"). So an override of an option
that does nothing is an error naming the key, its value and what it would need.

Which options do nothing comes from the plugins and schemas themselves, never from a list here:
- a schema's `unused(cfg, key)` hook (prune_cli/core/config_base.py `collect_unused`): a dataset's
  `longtail_ratio` without `imbalance=longtail`, a schedule's `rewind_epoch` without rewinding, SGD's
  `momentum` under Adam, `sparsity` under `schedule=layer_pruning`, ...;
- the `method.*` options an allocation or a structure declares (its options class, `options=` of
  `register_allocation` / `register_structure`) while another one is chosen, and what the chosen
  ones' options classes name in their `unused(cfg, key)` hooks;
- every option of an optional metric whose `enabled` is false;
- `accel.channels_last` on a model without convolution weights, and what a schema's
  `unused_for_model(cfg, key, model)` names (`bn_mode` on a model without BatchNorm or dropout), from
  the pre-run pass's model;
- the method at `sparsity=0` where no weight is pruned (`_nothing_pruned`), also under a training-time
  schedule whose schema declares `method_unread_unpruned` (minmax, admm, autoprune; not GReg);
- `method.reinit` when the schedule's plan loads every weight again right after each pruning event
  (lottery tickets restarting from the rewound weights);
- the whole `finetune` node when the schedule's plan never trains with it (at_init, lottery tickets,
  gradual, post_prune_reinit): a *note*, not an error, because researchers keep one set of training overrides
  (`train.epochs=... finetune.epochs=...`) across schedules, and nothing they meant is lost.

A sweep (`-m`) is rejected for an override only when no job of the sweep uses it: in
`-m method.structure=unstructured,nm method.nm_n=1` the nm jobs read `nm_n`, and each unstructured
job notes in its log that it does not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..core.checks import check
from ..core.config_base import Config, collect_unused, may_zero_weights
from ..core.errors import ConfigError, PruneCliError
from .prevalidate import checked_model, running_metric_schemas, schema_of

# Nodes whose schema may declare unused options (by their schema type, as the pre-run pass's checks).
NODES = ("dataset", "model", "method", "schedule", "train", "finetune", "data_pruning")


@dataclass(frozen=True)
class UnusedOverride:
    """An override (`key=value` as typed) whose key the composed config never reads, and why."""

    key: str
    value: str
    why: str
    error: bool  # False: a note (the finetune node of a schedule that never fine-tunes)

    def message(self) -> str:
        return f"Override '{self.key}={self.value}' has no effect in this run: {self.why}."


class UnusedOptionError(ConfigError):
    """An override of an option that does nothing in this run (see the module docstring)."""

    def __init__(self, found: UnusedOverride):
        self.key, self.value, self.allowed = found.key, found.value, f"no override: {found.why}"
        PruneCliError.__init__(self, found.message() + " Leave it out, or choose what it applies to.")


def _method_options(cfg: DictConfig) -> dict[str, str]:
    """`method.<option>` -> why, for the options some allocation or structure declares and the chosen
    ones do not; and what the chosen ones' options classes name in their `unused(cfg, key)` hooks.
    The declarations are read from the plugins' source (prune_cli/core/plugins.py `plugin_options`):
    nothing is imported but the chosen allocation and structure."""
    from ..core import plugins
    from ..pruning import ALLOCATIONS, STRUCTURES

    m = cfg.method
    declared = plugins.plugin_options()
    used = {o for (kind, name), d in declared.items() if m[kind] == name for o in d.names()}
    found: dict[str, str] = {}
    for label in ("allocation", "structure"):
        owners: dict[str, list[str]] = {}
        for (kind, name), decl in declared.items():
            if kind == label:
                for option in decl.names():
                    owners.setdefault(option, []).append(name)
        for option, names in owners.items():
            if option not in used:
                which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
                found[f"method.{option}"] = f"it applies only with method.{label}={which}; here method.{label}={m[label]}"
    chosen = (ALLOCATIONS.get(m.allocation), STRUCTURES.get(m.structure))
    for options in dict.fromkeys(p.options for p in chosen if p.options is not None):
        found.update(collect_unused(options, cfg, "method"))
    return found


# What decides the prunable weights (prune_cli/pruning/pruner.py select_prunable), which a run reads also where
# nothing is pruned: the cost metrics (params_prunable), the pruning-limit metric, a training-time method's penalty
EXCLUSIONS = ("exclude", "exclude_first", "exclude_classifier")


def _nothing_pruned(cfg: DictConfig, plan: list) -> dict[str, str]:
    """The method (its choice and its options) where the run zeroes no weight (`may_zero_weights`:
    `sparsity=0` under a schedule that prunes to `sparsity`, without threshold_impl=strict_kth): each
    mask keeps every weight whatever the scores, allocation and structure, and the scores draw from
    streams of their own, so `method=random sparsity=0` trained the same model as `method=magnitude
    sparsity=0` under another run id (configs audit, sixth session of 2026-12-03). Every run records its
    dense model's rows (phase `dense`) anyway. Not the options that decide which weights are prunable
    (`EXCLUSIONS`, nor a method choice that sets them), and nothing where the run still acts on the
    prunable weights: `method.reinit` (it re-draws the survivors, all of them here, from a seed the
    scores' and shuffle's draws move) and a training-time method's steps that read the method where nothing is
    pruned (GReg-2's penalty), unless the schedule's schema declares they do not (`method_unread_unpruned`: min-max's
    attack never reads it, ADMM's projection and AutoPrune's frozen gates keep every weight at density 1)."""
    from ..schedules.steps import TrainWithHook

    m = cfg.method
    hooked = any(isinstance(step, TrainWithHook) for step in plan)
    if may_zero_weights(cfg) or m.reinit or (hooked and not getattr(schema_of(cfg, "schedule"), "method_unread_unpruned", False)):
        return {}
    why = (
        f"no weight is pruned here (sparsity={cfg.sparsity} with schedule={cfg.schedule.name}): every mask keeps all "
        "weights whatever the method's scores, allocation and structure (only method.exclude* and method.reinit act), "
        "and each run records its dense model's rows (phase dense), so a sweep over methods needs no sparsity=0 job"
    )
    found = {f"method.{key}": why for key in m if key not in (*EXCLUSIONS, "reinit")}
    # an entry for the choice would cover every method.* key, the exclusions too (`_covering`): none where any
    # exclusion is set (by the chosen method's own config, region_bound's, or typed beside it)
    if not any(m[key] for key in EXCLUSIONS):
        found["method"] = why
    return found


def _tolerance_only_logged(cfg: DictConfig) -> dict[str, str]:
    """method.sparsity_tolerance where a miss of the target is only logged, never refused (pruning/pruner.py
    `check_masks`): Bernoulli sampling, and an allocation that does not promise the exact total
    (uniform_plus with faithful_uniform_plus=true). Unstructured only: a structure's reach is checked
    against the tolerance before the run."""
    from ..pruning import ALLOCATIONS, SCORES

    m = cfg.method
    if m.structure != "unstructured":
        return {}
    if SCORES.get(m.score).selection(m) == "bernoulli":
        return {
            "method.sparsity_tolerance": "with method.sampling=bernoulli the number kept is random and a miss of the target "
            "is only logged, whatever the tolerance"
        }
    if not ALLOCATIONS.get(m.allocation).exact_total(m):
        return {
            "method.sparsity_tolerance": f"method.allocation={m.allocation} does not promise round((1 - sparsity) N) kept "
            "here, so a miss of the target is only logged, whatever the tolerance"
        }
    return {}


def _rounds_of_one_mask(cfg: DictConfig) -> dict[str, str]:
    """`method.rounds` when the score is the same in every round (magnitude), the allocation's counts
    depend on the scores and shapes only, and each round keeps the top of the last one's survivors
    (single weights, no inversion, exact selection): the rounds end with the one-round mask
    (tests/test_unused_options.py computes it for global, layerwise and erk)."""
    from ..pruning import ALLOCATIONS, SCORES, STRUCTURES

    m = cfg.method
    score = SCORES.get(m.score)
    if m.rounds == 1 or m.invert or not STRUCTURES.get(m.structure).single_weights:
        return {}
    if not ALLOCATIONS.get(m.allocation).counts_from_scores_only:  # matched, region_bound: read the survivors
        return {}
    if not score.same_every_round or score.selection(m) != "exact":
        return {}
    return {
        "method.rounds": f"method.score={m.score} gives the survivors the same scores in every round of a pruning event, "
        f"so each round keeps the top of the last one's and {m.rounds} rounds end with the one round mask"
    }


def _metric_options(cfg: DictConfig) -> dict[str, str]:
    """Every option of an optional metric whose `enabled` is false; for a metric that runs, those its
    schema's `unused` hook names (the regions metric's options of another counting method)."""
    found: dict[str, str] = {}
    for name in cfg.metrics:
        node = cfg.metrics._get_node(name)
        if not isinstance(node, DictConfig):
            continue
        if "enabled" in node and not node.enabled:
            for option in node:
                if option != "enabled":
                    found[f"metrics.{name}.{option}"] = f"metrics.{name}.enabled is false: the metric does not run"
        elif dataclasses.is_dataclass(OmegaConf.get_type(node)):
            found.update(collect_unused(OmegaConf.get_type(node), cfg, f"metrics.{name}"))
    return found


def _model_options(cfg: DictConfig) -> dict[str, str]:
    """`accel.channels_last` on a model without 4-D weights: NHWC is a layout of convolution weights and
    image batches (prune_cli/core/accel.py); a fully connected model computes the same in either. The
    model is the pre-run pass's (built on the CPU once, kept on the meta device)."""
    if not OmegaConf.select(cfg, "accel.channels_last", default=False):
        return {}
    checked = checked_model(cfg)
    if checked is None or any(p.dim() == 4 for p in checked.model.parameters()):
        return {}
    return {"accel.channels_last": f"model={cfg.model.name} has no 4-D (convolution) weights, whose memory layout it sets"}


def _schemas(cfg: DictConfig):
    """(dotted key, schema) of the run's config nodes and of every metric that runs."""
    for key in NODES:
        yield key, schema_of(cfg, key)
    yield from running_metric_schemas(cfg)


def _for_model(cfg: DictConfig) -> dict[str, str]:
    """What the schemas' `unused_for_model(cfg, key, model)` hooks name for the run's model, the
    pre-run pass's (meta device): `bn_mode` or LAP-BN's `bn` on a model without BatchNorm."""
    found: dict[str, str] = {}
    for key, schema in _schemas(cfg):
        hooks = [vars(k)["unused_for_model"] for k in reversed(schema.__mro__) if "unused_for_model" in vars(k)]
        checked = checked_model(cfg) if hooks else None
        for hook in hooks if checked is not None else ():
            found.update(hook.__get__(None, schema)(cfg, key, checked.model))
    return found


def _from_the_plan(cfg: DictConfig) -> tuple[dict[str, str], dict[str, str]]:
    """What the schedule's plan (prune_cli/schedules) never uses: ({key: why} errors, {key: why} notes).

    - error `method.reinit` when every pruning event is followed, before any training, by a restart
      that loads other weights (init, rewind, reinit): the survivors it re-drew are replaced before
      they are trained; only the `pruned` phase's evaluation would see them (lottery tickets: the
      re-initialisation control is schedule.restart_from=reinit);
    - note `finetune` when no step trains with the finetune config, and the training-only options of a
      config no step trains with for an epoch (`_never_trained`)."""
    from ..schedules import SCHEDULES
    from ..schedules.steps import Prune, Record, Restart

    plan = SCHEDULES.get(cfg.schedule.name)(cfg)
    errors: dict[str, str] = {}

    def replaced_after(i: int) -> bool:
        after = next((step for step in plan[i + 1 :] if not isinstance(step, Record)), None)
        return isinstance(after, Restart) and after.source != "trained"

    prunes = [i for i, step in enumerate(plan) if isinstance(step, Prune)]
    if prunes and all(replaced_after(i) for i in prunes):
        source = cfg.schedule.restart_from
        errors["method.reinit"] = (
            f"schedule={cfg.schedule.name} with schedule.restart_from={source} loads every weight again after each "
            "pruning event, so the re-drawn survivors are never trained (only the `pruned` phase's evaluation sees them)"
            + ("" if source == "reinit" else "; the re-initialisation control is schedule.restart_from=reinit")
        )
    errors.update(_finetune_schedule_never_reached(cfg, plan))
    errors.update(_nothing_pruned(cfg, plan))
    notes: dict[str, str] = _never_trained(cfg, plan)
    if not any(getattr(step, "which", None) == "finetune" for step in plan):
        notes["finetune"] = f"schedule={cfg.schedule.name} never fine-tunes (its training steps use the train config)"
    return errors, notes


def _finetune_phases(plan: list) -> list[tuple[str, int]] | None:
    """The phases of `plan` that train with the finetune config under its LR schedule, as (name, epochs):
    a plain `Train` step trains finetune.epochs (None stands for it here); a training-time method's step
    (`TrainWithHook`) at most its own number of epochs (AutoPrune's gating phase with stop_at_target ends
    once the gates reach the target), or none under the schedule where it holds the LR constant
    (`constant_lr`: ADMM's and GReg's regularization phases). None when not even a bound is known before
    the run (a hook step of epochs=-1 without constant_lr)."""
    from ..schedules.steps import Train, TrainWithHook

    phases = []
    for step in plan:
        if getattr(step, "which", None) != "finetune":
            continue
        if isinstance(step, Train):
            phases.append(("fine-tuning", None))
        elif isinstance(step, TrainWithHook) and step.constant_lr:
            continue
        elif isinstance(step, TrainWithHook) and step.epochs >= 0:
            phases.append((f"phase '{step.phase}'", int(step.epochs)))
        else:
            return None
    return phases


def _finetune_schedule_never_reached(cfg: DictConfig, plan: list) -> dict[str, str]:
    """The fine-tuning LR schedule's options when it never acts in any phase that trains with the
    finetune config under its schedule (`_finetune_phases`: plain fine-tuning's finetune.epochs, a
    training-time method's phase of its own length, such as AutoPrune's schedule.prune_epochs or
    min-max's adversarial fine-tuning): no multistep milestone below the longest phase (a decay that
    never happens), or a warm-up as long as every phase (lr_factor returns the warm-up ratio for every
    epoch). A warm-up longer than every phase is a ConfigError (the LR never reaches finetune.lr), as
    training.TrainConfig.check makes one of a warm-up longer than dense training; one longer than a
    shorter phase only still acts in the longer one (AutoPrune's gating phase of 2 epochs and 6 of
    fine-tuning under a warm-up of 3). A phase's length is an upper bound (`_finetune_phases`), which
    each of these conclusions survives. The train config has its own check (training.TrainConfig.unused).
    Phases that hold the LR constant (`constant_lr`) do not read the schedule; a plan with a phase of
    no known bound is left alone."""
    node = cfg.finetune
    phases = _finetune_phases(plan)
    if not phases:
        return {}
    phases = [(name, node.epochs if epochs is None else epochs) for name, epochs in phases]
    phases = [(name, epochs) for name, epochs in phases if epochs > 0]
    if not phases:
        return {}
    name, longest = max(phases, key=lambda phase: phase[1])
    where = f"the {longest} epochs of {name} of schedule={cfg.schedule.name}, its longest phase"
    if name == "fine-tuning":
        where = f"finetune.epochs={longest}"
    check(
        node.warmup_epochs <= longest,
        "finetune.warmup_epochs",
        node.warmup_epochs,
        f"at most {where} (a longer warm-up never reaches finetune.lr and the schedule never runs)",
    )
    trains = " and ".join(f"{epochs} epochs of {name}" for name, epochs in phases)
    found = {}
    if node.warmup_epochs >= longest and node.lr_schedule != "constant":
        why = f"finetune.warmup_epochs={node.warmup_epochs} covers all {trains}, so the schedule never starts"
        found.update({"finetune.lr_schedule": why})
        if node.lr_schedule == "multistep":
            found.update({"finetune.milestones": why, "finetune.gamma": why})
    elif node.lr_schedule == "multistep" and all(m >= longest for m in node.milestones):
        why = f"no milestone falls inside the {trains} (finetune.milestones={list(node.milestones)})"
        found.update({"finetune.milestones": why, "finetune.gamma": why})
    return found


# What a training config sets only for the epochs trained with it (not eval_batch_size, which evaluation
# reads). weight_decay and l1 are also read outside training, from the train config only, by some runs
# (`_read_outside_training`).
TRAINING_ONLY = (
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "lr_schedule",
    "milestones",
    "gamma",
    "warmup_epochs",
    "l1",
)


def _read_outside_training(cfg: DictConfig, key: str) -> set[str]:
    """The options of the `key` training config that something other than its training reads in this
    run: an interpolation elsewhere in the config (`lam: ${train.weight_decay}` of method=undecayed,
    configs/method/undecayed.yaml; `finetune.lr=${train.lr}`, which the other phase trains with) and the
    pruning-limit metric's L1 term (`ctx.train.l1`, prune_cli/metrics/pruning_limit.py). Nothing outside
    training reads the finetune config's options but eval_batch_size."""
    import re

    read: set[str] = set()
    pattern = re.compile(r"\$\{\s*" + key + r"\.(\w+)")
    whole = re.compile(r"\$\{\s*" + key + r"\s*\}")  # `${train}`: every option

    def found_in(text: str) -> None:
        read.update(TRAINING_ONLY if whole.search(text) else pattern.findall(text))

    def scan(node, path: str) -> None:
        if path in (key, "hydra"):  # its own training reads it; Hydra's settings are not the run's
            return
        if node._is_interpolation():  # a whole node interpolated, or a value
            found_in(str(node._value()))
        elif isinstance(node, DictConfig):
            for name in node.keys():
                scan(node._get_node(name), f"{path}.{name}" if path else str(name))
        elif isinstance(node, ListConfig):
            for i in range(len(node)):
                scan(node._get_node(i), f"{path}[{i}]")
        else:
            found_in(str(node._value()))

    scan(cfg, "")
    if key == "train" and OmegaConf.select(cfg, "metrics.pruning_limit.enabled", default=False):
        read.add("l1")
    return read


def _never_trained(cfg: DictConfig, plan: list) -> dict[str, str]:
    """The training-only options of `train` / `finetune` when no step of the plan trains with that config
    for an epoch (`finetune.epochs=0`: its learning rate changes nothing but the run id). Notes, like the
    finetune node of a schedule that never fine-tunes: `epochs=0` is how a phase is switched off while
    a researcher's usual training overrides stay on the command line. A data pruning rule's proxy or
    query models train with the train config (`train_config_epochs`; none for random, class_balanced
    and GraNd at initialisation; a rule that does not declare it is taken to train)."""
    from ..data.pruning import train_config_epochs
    from ..schedules.steps import Dense, Gradual, Train, TrainWithHook

    proxies = train_config_epochs(cfg)
    epochs = {"train": 1 if proxies is None else proxies, "finetune": 0}  # None: it may train, for all we know
    for step in plan:
        if isinstance(step, (Dense, Gradual)):
            epochs["train"] += cfg.train.epochs
        elif isinstance(step, Train):
            epochs[step.which] += cfg[step.which].epochs
        elif isinstance(step, TrainWithHook):
            epochs[step.which] += step.epochs if step.epochs >= 0 else 1  # -1: as many as the method needs
    found = {}
    for key, n in epochs.items():
        if n == 0 and any(getattr(s, "which", None) == key or (key == "train" and isinstance(s, Dense)) for s in plan):
            why = f"no step of this run trains with the {key} config ({key}.epochs={cfg[key].epochs})"
            read = _read_outside_training(cfg, key)
            found.update({f"{key}.{option}": why for option in TRAINING_ONLY if option not in read})
    return found


def unused_options(cfg: DictConfig, method_keys: bool = True, model_keys: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """({dotted key: why} of options that do nothing in `cfg`, {key: why} of notes). `cfg` has passed
    the pre-run pass (prune_cli/run/prevalidate.py `validate`). `method_keys`, `model_keys`: also the
    method options no allocation or structure reads, and the schemas' `unused_for_model` findings."""
    found: dict[str, str] = {}
    for key in NODES:
        found.update(collect_unused(schema_of(cfg, key), cfg, key))
    for field in dataclasses.fields(Config):  # top-level nodes with a schema (dense_cache, accel)
        node = cfg.get(field.name)
        if isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            found.update(collect_unused(OmegaConf.get_type(node), cfg, field.name))
    found.update(_metric_options(cfg))
    found.update(_model_options(cfg))
    if method_keys:
        found.update(_method_options(cfg))
        found.update(_rounds_of_one_mask(cfg))
        found.update(_tolerance_only_logged(cfg))
    if model_keys:
        found.update(_for_model(cfg))
    plan_errors, notes = _from_the_plan(cfg)
    return {**found, **plan_errors}, notes


def _parsed(overrides: list[str]) -> list[tuple[str, str]]:
    """(key, value as typed) of each `key=value` override, Hydra's own `hydra.*` settings left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element().lstrip("+~")
        if not key.startswith("hydra.") and key != "hydra":
            found.append((key, (override.input_line or "").partition("=")[2]))
    return found


def _covering(key: str, table: dict[str, str]) -> str | None:
    """The entry of `table` for `key` or for a node above it (`finetune` covers `finetune.epochs`)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        why = table.get(".".join(parts[:end]))
        if why is not None:
            return why
    return None


def unused_overrides(cfg: DictConfig, overrides: list[str]) -> list[UnusedOverride]:
    """The overrides among `overrides` (as Hydra records them: cfg.hydra.overrides.task) whose keys
    do nothing in `cfg`, errors first."""
    given = _parsed(overrides)
    if not given:  # the range checks that need the plan still apply (a config file's finetune.warmup_epochs)
        from ..schedules import SCHEDULES

        _finetune_schedule_never_reached(cfg, SCHEDULES.get(cfg.schedule.name)(cfg))
        return []
    method_keys = any(k.startswith("method.") for k, _ in given)
    model_keys = method_keys or any(k.startswith("metrics.") for k, _ in given)  # the hooks judge method and metric options
    errors, notes = unused_options(cfg, method_keys, model_keys)
    found = []
    for key, value in given:
        why = _covering(key, errors)
        if why is not None:
            found.append(UnusedOverride(key, value, why, True))
        elif (why := _covering(key, notes)) is not None:
            found.append(UnusedOverride(key, value, why, False))
    return sorted(found, key=lambda u: not u.error)


def task_overrides(cfg: DictConfig) -> list[str]:
    """The task overrides Hydra recorded in a composed config (none for a config composed without it)."""
    from .prevalidate import recorded_overrides

    return recorded_overrides(cfg)


def reject_unused_overrides(cfg: DictConfig, single_run: bool = True) -> None:
    """Raise UnusedOptionError for the first override of a single run that does nothing (the notes
    are logged by the run itself, prune_cli/cli.py `hydra_main`), and ConfigError for a launcher other than
    the basic one that a config file (a preset) chose for a single run, which would train here as one
    typed would. `single_run=False` (`--cfg job`, which shows one job's config and runs nothing, also of a
    sweep): the sweep-only settings and a launcher are not refused."""
    overrides = task_overrides(cfg)
    for key, value in _parsed(overrides) if single_run else []:
        if key in SWEEP_ONLY:
            raise UnusedOptionError(UnusedOverride(key, value, SWEEP_ONLY[key], True))
    from .prevalidate import recorded_overrides

    for key, value in _parsed(recorded_overrides(cfg, "hydra")) if single_run else []:
        if key == "hydra/launcher" and value.strip("'\"") != "basic":  # Hydra launches sweeps only; 'basic' quoted is basic
            raise UnusedOptionError(UnusedOverride(key, value, SINGLE_RUN_LAUNCHER, True))
    chosen = OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}
    launcher = chosen.get("hydra/launcher")
    if single_run and launcher not in (None, "basic"):  # chosen by a config file (a preset's defaults), not typed
        raise ConfigError(
            "hydra/launcher",
            launcher,
            "the basic launcher in a single run (no -m)",
            f"A config file of this command chose it (override /hydra/launcher: {launcher}, in a preset's defaults), and "
            f"{SINGLE_RUN_LAUNCHER}.",
        )
    for one in unused_overrides(cfg, overrides):
        if one.error:
            raise UnusedOptionError(one)


# Settings of what a sweep does after a failed run: a single run stops at its failure and exits non-zero.
SWEEP_ONLY = {
    key: "it applies to sweeps (-m): a single run stops at its failure and exits non-zero either way"
    for key in ("fail_fast", "allow_failures")
}


# Hydra hands a sweep's jobs to the launcher; a single run runs in the calling process whatever it names.
SINGLE_RUN_LAUNCHER = (
    "a launcher runs the jobs of a sweep (-m); a single run trains here, in this process "
    "(on a cluster: the login node); add -m to hand it to the launcher as a sweep of one job"
)


def jobs_unused(jobs: list[tuple[list[str], DictConfig]]) -> list[list[UnusedOverride]]:
    """Each job's unused overrides (`unused_overrides`), for `sweep_unused` and `sweep_duplicates`."""
    return [unused_overrides(job, overrides) for overrides, job in jobs]


def sweep_unused(jobs: list[tuple[list[str], DictConfig]], per_job: list[list[UnusedOverride]] | None = None) -> list[UnusedOverride]:
    """The error-level unused overrides of a sweep: those of an override key that no job uses
    (`jobs`: each job's overrides and its validated config; `per_job`: `jobs_unused(jobs)` when
    computed already). One entry per key."""
    given: dict[str, int] = {}
    unused: dict[str, list[tuple[str, UnusedOverride]]] = {}
    common = set.intersection(*(set(o) for o, _ in jobs)) if len(jobs) > 1 else set()
    per_job = jobs_unused(jobs) if per_job is None else per_job
    for (overrides, job), found in zip(jobs, per_job):
        for key, _ in _parsed(overrides):
            given[key] = given.get(key, 0) + 1
        label = " ".join(o for o in overrides if o not in common)  # what tells this job apart
        for one in found:
            if one.error:
                unused.setdefault(one.key, []).append((label, one))
    found = []
    for key, ones in unused.items():
        if len(ones) < given[key]:
            continue
        reasons: dict[str, str] = {}
        for label, one in ones:
            reasons.setdefault(one.why, label)  # each reason once, with the first job that gives it
        first = ones[0][1]
        if len(reasons) > 1:  # the jobs ignore it for different reasons: each one's
            why = "; ".join(f"with {label}: {reason}" for reason, label in reasons.items())
            first = dataclasses.replace(first, why=why)
        found.append(first)
    return found


def sweep_duplicates(jobs: list[tuple[list[str], DictConfig]], per_job: list[list[UnusedOverride]]) -> str | None:
    """Why the sweep would run one experiment twice, or None: two jobs whose overrides differ only in
    keys that do nothing in either (`-m metrics.ntk.enabled=true,false metrics.ntk.num_inputs=8,16`: the
    two jobs without the NTK metric) but whose run ids differ, because a disabled built-in metric's node
    stays in the run id (prune_cli/core/identity.py, so that run ids from before metric plugins are kept).
    Each would be computed and append its rows to the shared tables, and prune-report would count the
    experiment's seed twice. Jobs that share a run id run once (the second finds the run complete)."""
    from ..core.identity import run_id

    common = set.intersection(*(set(o) for o, _ in jobs)) if len(jobs) > 1 else set()
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    for (overrides, job), found in zip(jobs, per_job):
        idle = {one.key for one in found}  # notes too (finetune.* under a schedule that never fine-tunes)
        acting = tuple(sorted(f"{key}={value}" for key, value in _parsed(overrides) if key not in idle))
        rid, label = run_id(job), " ".join(o for o in overrides if o not in common)
        if acting not in seen:
            seen[acting] = (rid, label)
            continue
        if seen[acting][0] != rid:
            why = "; ".join(dict.fromkeys(f"{one.key}: {one.why}" for one in found))
            return (
                f"the jobs '{seen[acting][1]}' and '{label}' are the same experiment under two run ids ({why}), so it "
                "would be computed twice and its seed counted twice by prune-report; sweep those options only in jobs "
                "where they act (e.g. one sweep with the option's values, another without it)"
            )
    return None
