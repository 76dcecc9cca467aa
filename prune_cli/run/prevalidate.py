"""The pre-run pass: register every schema with Hydra, then check the composed config before
Hydra creates a run directory or any data is loaded.

Hydra/OmegaConf already reject unknown keys and wrong types and name the key. `validate` adds
the keys a `+` override slipped in, range, choice and cross-field checks. Each node's checks are
chosen by its schema type: the `check` methods its schema class and their bases declare
(prune_cli/core/config_base.py), never a list of option names or the keys a node happens to have.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Callable, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..core.checks import check, choice, fraction, seed_option, usable_directory
from ..core import plugins
from ..core.paths import configs_dir
from ..core.accel import AccelConfig, checks_this_machine
from ..core.config_base import (
    Config,
    declared_input,
    declared_test_examples,
    declared_train_examples,
    may_zero_weights,
    prunes_to_sparsity,
    run_checks,
)
from ..core.errors import ConfigError, UnknownKeyError
from ..core.identity import safe_name
from ..core.threads import valid_setting as valid_threads
from .composition_errors import unresolvable_interpolation
from .config_values import check_list_elements, check_signed_zeros
from .launcher_values import check_joblib_values, check_submitit_values


def register_schemas() -> None:
    """Let Hydra find every schema: the root `config_schema` in the ConfigStore, each plugin's
    `schema/<group>/<name>` through the plugin source (imported when an option chooses it)."""
    from .plugin_source import register

    register()
    ConfigStore.instance().store(name="config_schema", node=Config)


# ----------------------------------------------------------------------------- validation


def prunes_once(cfg: DictConfig, schedule: type) -> bool:
    """Whether the run has a single pruning event: one scoring round and a schedule (schema `schedule`)
    that prunes once."""
    return cfg.method.rounds == 1 and schedule.single_event(cfg)


def _validate_allocation_structure(cfg: DictConfig, schedule: type) -> None:
    """method.* keys of allocations, structures and ablations (docs/allocation.md). What a particular
    allocation or structure needs is its plugin's: the `check` of its options class and its `check`
    hook (prune_cli/pruning/allocations/, prune_cli/pruning/structures/, or a plugin from outside);
    what is checked here holds for all of them."""
    from ..pruning import ALLOCATIONS, SCORES, STRUCTURES

    m = cfg.method
    allocation, structure = ALLOCATIONS.get(m.allocation), STRUCTURES.get(m.structure)
    fraction(cfg, "method.sparsity_tolerance", 0.0, 1.0, hi_open=False)
    check_exclusive_options(cfg)
    for options in dict.fromkeys(p.options for p in (allocation, structure) if p.options is not None):
        run_checks(options, cfg, "method")
    for plugin in (allocation, structure):
        if plugin.check is not None:
            plugin.check(cfg)
    normalised = SCORES.get(m.score).layer_normalised(m)
    # a layer-local structure's masks follow each layer's own ranking (channel_group's groups sum scores of two layers)
    if normalised is not None and allocation.counts_from_shapes(m) and structure.layer_local:
        check(
            False,
            normalised,
            OmegaConf.select(cfg, normalised),
            f"the score without its per-layer normalisation, or method.allocation=global: with method.allocation="
            f"{m.allocation} the layer shapes fix each layer's count and method.structure={m.structure} chooses within "
            "each layer from its own scores, where dividing a layer's scores by their norm changes nothing (the masks "
            "are the unnormalised score's, under another run id); the normalisation is for one ranking across layers",
        )
    bernoulli = SCORES.get(m.score).selection(m) == "bernoulli"  # as the pruner decides it
    if not structure.single_weights:
        check(
            not bernoulli,
            "method.sampling",
            "bernoulli",
            f"exact with method.structure={m.structure} (Bernoulli sampling picks single weights)",
        )
        check(
            not m.shuffle,
            "method.shuffle",
            True,
            f"false with method.structure={m.structure} (shuffling single positions would break the structure)",
        )
    if m.invert:
        check(
            not bernoulli,
            "method.invert",
            True,
            "false with method.sampling=bernoulli (inverting i.i.d. uniform scores changes nothing)",
        )
    single_event = prunes_once(cfg, schedule)
    if allocation.fixes_final_densities(m):
        fixed = (allocation.fixed_by, OmegaConf.select(cfg, allocation.fixed_by))
    elif structure.fixes_final_densities(m):
        fixed = ("method.structure", m.structure)
    else:
        fixed = None
    if fixed is not None:
        check(
            single_event,
            fixed[0],
            fixed[1],
            "a single pruning event (method.rounds=1 and a schedule with rounds=1, not gradual): it fixes "
            "the final per-layer densities, which intermediate sparsities cannot have",
        )


def check_exclusive_options(cfg: DictConfig) -> None:
    """An option an allocation or structure declares `exclusive` keeps its default unless that plugin
    is chosen: a value means the run was meant to use it (method.layer_densities without
    allocation=explicit, method.threshold_impl=lap_round under erk). Read from the plugins' declarations
    (prune_cli/core/plugins.py `plugin_options`), without importing the plugins not chosen."""
    m = cfg.method
    declared = plugins.plugin_options()
    chosen = {n for (kind, name), d in declared.items() if m[kind] == name for n in d.names()}
    owners: dict[str, list] = {}
    for decl in declared.values():
        for option in decl.exclusive:
            owners.setdefault(option, []).append(decl)
    for option, decls in owners.items():
        value = OmegaConf.select(cfg, f"method.{option}")
        default = decls[0].default(option)
        if option not in chosen and value != default:
            kind = decls[0].kind
            which = " or ".join(d.name for d in decls if d.kind == kind)
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            check(False, f"method.{option}", shown, f"{'null' if default is None else default} unless method.{kind}={which}")


# ----------------------------------------------------------------------------- unknown keys

GROUPS = ("dataset", "model", "method", "schedule", "train", "finetune", "metrics", "data_pruning")
GROUP_SCHEMA = {"finetune": "train"}  # finetune options use the train schema


def _group_schemas(group: str) -> list[type]:
    """Every schema of a group (imports the group's plugin modules: only for a node composed without one)."""
    if group == "metrics":
        from ..metrics import metrics_config

        return [metrics_config()]
    return list(plugins.schemas(GROUP_SCHEMA.get(group, group)).values())


def _fields(cls: type) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    """A schema's field types. The schemas' annotations are strings (`from __future__ import
    annotations`) that `typing.get_type_hints` evaluates anew on every call: once per class is
    enough, a fifth of a validation otherwise."""
    return typing.get_type_hints(cls)


def _unknown_keys(node: DictConfig, cls: type, prefix: str) -> list[tuple[str, Any, list[str]]]:
    """(dotted key, value, valid names at that level) for every key of `node` its schema lacks,
    descending into fields whose type is itself a schema (metrics.regions, ...)."""
    fields = _fields(cls)
    hints = _type_hints(cls)
    found = []
    for key in node.keys():
        if key not in fields:
            found.append((f"{prefix}{key}", OmegaConf.select(node, str(key), throw_on_missing=False), sorted(fields)))
            continue
        ftype = hints.get(key)
        sub = node._get_node(key)
        if isinstance(sub, DictConfig) and isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
            found += _unknown_keys(sub, ftype, f"{prefix}{key}.")
    return found


def _schema_of(node: DictConfig, group: str) -> tuple[type, list]:
    """The schema of a group's node and its unknown keys. Each option's YAML merges its schema first,
    so the composed node is typed with it (OmegaConf.get_type); a node composed without one (a user's
    --config-dir option without defaults) is checked against the group's schema leaving the fewest
    unknown keys."""
    typed = OmegaConf.get_type(node)
    if isinstance(typed, type) and dataclasses.is_dataclass(typed):
        return typed, _unknown_keys(node, typed, f"{group}.")
    candidates = _group_schemas(group)
    scored = [(len(_unknown_keys(node, c, f"{group}.")), -len(_fields(c)), i, c) for i, c in enumerate(candidates)]
    best = min(scored)[3]
    return best, _unknown_keys(node, best, f"{group}.")


def check_missing_values(cfg: DictConfig) -> None:
    """Every value is set: a schema field without a default (`???`) that neither the option's YAML nor the
    command line sets (an outside plugin's dataclass; a method plugin's `score`) stopped the run with
    OmegaConf's MissingMandatoryValue inside Hydra's traceback, exit 1. A disabled metric's node is not
    read by the run, so a field only its enabled form needs may stay unset there."""
    key = _first_missing(cfg, "")
    if key is None:
        return
    node = OmegaConf.select(cfg, key.rpartition(".")[0]) if "." in key else None
    schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    own = plugins.declared_class(schema) if isinstance(schema, type) and dataclasses.is_dataclass(schema) else None
    where = f" (the schema {own.__module__}.{own.__qualname__} has no default for it)" if own is not None else ""
    raise ConfigError(
        key, "???", f"a value: set it on the command line ({key}=...), in the option's YAML or as a default of its dataclass{where}"
    )


def _first_missing(node: DictConfig, prefix: str) -> str | None:
    """The dotted key of the first unset (`???`) value under `node`, Hydra's own node and disabled metrics'
    nodes left out; read without resolving anything (hydra.run.dir's resolution runs this pass)."""
    for k in node.keys():
        if not prefix and k == "hydra":
            continue
        child, key = node._get_node(k), f"{prefix}{k}"
        if child is None or child._is_interpolation():
            continue
        if child._is_missing():
            return key
        if isinstance(child, DictConfig) and not child._is_none():
            if prefix == "metrics." and child.get("enabled", True) is False:
                continue
            found = _first_missing(child, key + ".")
            if found is not None:
                return found
    return None


def check_interpolations(cfg: DictConfig) -> None:
    """Every interpolation of the config resolves (`sparsity=${missing}`, a cycle, `${oc.env:UNSET}`):
    the checks below read the values, and OmegaConf's error raised there named no key of the user's
    (hydra.run.dir, whose resolution runs this pass) and came with its traceback."""
    found = unresolvable_interpolation(cfg)
    if found is not None:
        raise found


def check_known_keys(cfg: DictConfig) -> None:
    """Every key of the composed config belongs to a schema: a typo added with `+` (Hydra's own
    hint after a rejected `train.epoch=50`) must stop the run, not train the default silently."""
    unknown = [
        (k, OmegaConf.select(cfg, k, throw_on_missing=False), sorted(_fields(Config)))
        for k in cfg.keys()
        if k != "hydra" and k not in _fields(Config)
    ]
    for group in GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            unknown += _schema_of(node, group)[1]
    for key, ftype in _type_hints(Config).items():  # top-level nodes with a schema (accel, dense_cache)
        node = cfg.get(key)
        if isinstance(node, DictConfig) and isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
            unknown += _unknown_keys(node, ftype, f"{key}.")
    for key, value, valid in unknown:
        leaf = key.rsplit(".", 1)[-1]
        parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
        close = [parent + c for c in difflib.get_close_matches(leaf, valid, n=3, cutoff=0.6)]
        if parent and leaf in _fields(Config):
            close.insert(0, leaf)  # a top-level key put under a group (+method.sparsity=0.5)
        raise UnknownKeyError(key, value, valid, close)


def recorded_overrides(cfg: DictConfig, which: str = "task") -> list[str]:
    """The overrides Hydra recorded in `hydra.overrides.<which>` (task or hydra) as typed: read without
    resolving, since iterating the node resolved a `${...}` inside an override's text (`hydra.sweep.subdir=
    job${hydra.job.num}`, which only the launcher sets, was a traceback; `${hydra.job.override_dirname}`
    became another override's text). None recorded (a config composed without Hydra): []."""
    node = OmegaConf.select(cfg, f"hydra.overrides.{which}", default=None)
    return overrides_as_typed(node) if node is not None else []


def overrides_as_typed(node: Any) -> list[str]:
    """A recorded list of overrides (a ListConfig of Hydra's config) as typed, its `${...}` unresolved."""
    return [str(o) for o in OmegaConf.to_container(node, resolve=False)]


def check_added_hydra_keys(cfg: DictConfig) -> None:
    """A key added to Hydra's own config with `+`/`++` (recorded in hydra.overrides.hydra) is one its
    schema declares: Hydra's nodes are dataclasses (JobConf, RunDir, the launcher's and the sweeper's
    config), and a key they lack was kept and ignored (`+hydra.job.chdri=true`, `+hydra.launcher.n_job=1`
    with joblib) or failed inside Hydra after the sweep's folders existed (the basic launcher's and
    sweeper's "unexpected keyword argument"). Below a plain mapping of that config (a field declared
    Dict: hydra.job.env_set, the SLURM launcher's additional_parameters, the logging configs) any key
    may be added: that is what those mappings are for."""
    recorded = recorded_overrides(cfg, "hydra")
    if not recorded or not isinstance(cfg.get("hydra"), DictConfig):
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(recorded):
        key = override.key_or_group
        if not (override.is_add() or override.is_force_add()) or "/" in key or override.package is not None:
            continue  # a config group (+hydra/sweeper=...), not a key
        parts = key.split(".")
        node: Any = cfg.hydra
        for i, part in enumerate(parts[1:], 1):
            typed = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
            if not (isinstance(typed, type) and dataclasses.is_dataclass(typed)):
                break  # a plain mapping (or a value): its keys are not declared
            fields = _fields(typed)
            if part not in fields:
                parent, rest = ".".join(parts[:i]), "".join(f".{p}" for p in parts[i + 1 :])
                close = [f"{parent}.{c}{rest}" for c in difflib.get_close_matches(part, list(fields), n=3, cutoff=0.6)]
                value = (override.input_line or "").partition("=")[2]
                raise UnknownKeyError(key, value, sorted(fields), close)
            node = node._get_node(part)


def check_job_chdir(cfg: DictConfig) -> None:
    """`hydra.job.chdir=true` runs each job inside its run directory: a relative results_dir (the default
    `results`), dense_cache.dir or dataset.root then lies inside the run directory, so the shared tables and
    the dense cache went to results/runs/<id>/results/..., silently. prune-run places every file from
    results_dir and never needs the change of directory: refused (a config's `hydra.job.chdir` too)."""
    chdir = OmegaConf.select(cfg, "hydra.job.chdir", default=None)
    check(
        chdir is None or chdir is False,
        "hydra.job.chdir",
        chdir,
        "false (prune-run's default): prune-run places every file from results_dir itself",
        "With true each job runs inside its run directory, so a relative results_dir (the default 'results'), "
        "dense_cache.dir or dataset.root would be read inside it: shared tables and the dense cache would land in "
        "results_dir/runs/<run id>/results/...",
    )


# Options of Hydra's joblib launcher (hydra/launcher=parallel or joblib) that change nothing in a sweep, and why
_LOKY = "always runs its jobs with joblib's loky backend (processes)"
_MEMMAP = "hands its jobs their configs, never numpy arrays, which are all joblib memory-maps (max_nbytes, mmap_mode, temp_folder)"
JOBLIB_IGNORED = {
    "hydra.launcher.backend": _LOKY,
    "hydra.launcher.prefer": _LOKY,
    "hydra.launcher.mmap_mode": _MEMMAP,
    "hydra.launcher.max_nbytes": _MEMMAP,
    "hydra.launcher.temp_folder": _MEMMAP,
}


def check_launcher_overrides(cfg: DictConfig) -> None:
    """The launcher's values, once per sweep before it is made: the numeric options of the submitit
    launchers (prune_cli/run/launcher_values.py); joblib's `n_jobs`, and an override of an option Hydra's
    joblib launcher ignores (`hydra.launcher.backend=threading`, `hydra.launcher.prefer=threads`):
    accepted and ignored before, as if the jobs ran otherwise."""
    target = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
    check_submitit_values(cfg, target)
    if "Joblib" not in target:
        return
    n_jobs = OmegaConf.select(cfg, "hydra.launcher.n_jobs", default=None)
    # joblib's own count: -1 = one per CPU, -2 = all but one, ...; 0 has no meaning (joblib's ValueError, exit 1)
    check(
        n_jobs is None or (isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs != 0),
        "hydra.launcher.n_jobs",
        n_jobs,
        "a nonzero integer: how many jobs run at once (-1: one per CPU, -2: all but one, as joblib counts)",
    )
    check_joblib_values(cfg)
    # joblib's `timeout` (https://joblib.readthedocs.io/en/stable/generated/joblib.Parallel.html): when one job
    # reaches it, joblib aborts the whole Parallel call and terminates every loky worker, each in the middle of
    # its job (a write included); the sweep then ended with an empty TimeoutError. Refused, from a config too.
    timeout = OmegaConf.select(cfg, "hydra.launcher.timeout", default=None)
    check(
        timeout is None,
        "hydra.launcher.timeout",
        timeout,
        "null (joblib's default; leave it out): joblib's timeout is not a limit per run; when one job reaches it, "
        "joblib kills every worker of the sweep at once, in the middle of whatever each job is writing",
        "To bound a local sweep's time, run it under timeout (timeout 2h prune-run -m ...): SIGTERM stops every running "
        "job at its next safe point with its checkpoint kept, and the same command resumes them; a SLURM sweep has "
        "hydra.launcher.timeout_min per job (requeued and resumed).",
    )
    from hydra.core.override_parser.overrides_parser import OverridesParser

    picked = (OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {}).get("hydra/launcher")
    chosen = f"hydra/launcher={picked}" if picked else "the sweep's launcher"
    for override in OverridesParser.create().parse_overrides(recorded_overrides(cfg, "hydra")):
        key = override.get_key_element().lstrip("+~")
        if key in JOBLIB_IGNORED:
            raise ConfigError(
                key,
                (override.input_line or "").partition("=")[2],
                f"no override: Hydra's joblib launcher ({chosen}) {JOBLIB_IGNORED[key]}, so {key} has no effect; "
                + ("leave it out" + (" (hydra.launcher.n_jobs sets how many run at once)" if JOBLIB_IGNORED[key] == _LOKY else "")),
            )


def check_shadowed_options(cfg: DictConfig) -> None:
    """A file of the user's --config-dir with the name of a packaged option it chose (model/mlp.yaml) is
    never read: Hydra's search path puts the packaged configs first, so `model=mlp` ran the packaged
    mlp and the user's file was ignored, silently. Such a file (unless it is a byte-identical copy) is
    a ConfigError naming it: it needs a name of its own. Hydra's order is kept rather than reversed: a
    packaged option's name means the same config in every results folder and report."""
    sources = OmegaConf.select(cfg, "hydra.runtime.config_sources", default=None) or []
    users = [Path(str(s.path)) for s in sources if s.get("provider") == "command-line" and s.get("schema") == "file"]
    if not users:
        return
    packaged = configs_dir()
    choices = dict(OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {})
    config_name = OmegaConf.select(cfg, "hydra.job.config_name", default=None)
    chosen = [(group, str(option)) for group, option in choices.items() if option is not None]
    chosen += [(group, base) for group, option in list(chosen) for base in _builds_on(packaged, group, option)]
    if config_name:
        chosen.append(("", str(config_name)))
    for user in users:
        for group, option in chosen:
            relative = Path(group, f"{option}.yaml") if group else Path(f"{option}.yaml")
            mine, theirs = user / relative, packaged / relative
            if mine.is_file() and theirs.is_file() and mine.read_bytes() != theirs.read_bytes():
                raise ConfigError(
                    group or "--config-name",
                    option,
                    f"a name no packaged config has, for your file {mine}: it shadows the packaged "
                    f"{'option ' + group + '=' + option if group else 'primary config ' + option}, which Hydra's "
                    "search path reads first, so your file would be ignored",
                    f"Give it another name (e.g. {mine.with_name(option + '_mine.yaml').name}) and choose that one.",
                )


def _builds_on(packaged: Path, group: str, option: str) -> list[str]:
    """The options of the same group a packaged option builds on through its defaults list (dataset/
    mnist1d_small.yaml: `defaults: [mnist1d, _self_]`), and theirs: Hydra reads those from the
    packaged folder first too, so a user's file of that name would be as ignored as a chosen one."""
    found: list[str] = []
    todo = [option]
    while todo:
        path = packaged / group / f"{todo.pop()}.yaml"
        if not path.is_file():
            continue
        defaults = (OmegaConf.load(path).get("defaults") or []) if path.stat().st_size else []
        for entry in defaults:
            if isinstance(entry, str) and entry != "_self_" and not entry.startswith("/") and "@" not in entry and entry not in found:
                found.append(entry)
                todo.append(entry)
    return found


# Groups whose `name` chooses the code that reads the node (a builder, a loader): a name with a schema of
# its own needs a node of that schema. (A method's code is chosen by method.score, not its name.)
NAMED_BY_SCHEMA = ("dataset", "model", "schedule", "data_pruning")


def check_name_matches_schema(cfg: DictConfig, group: str) -> None:
    """A node built on one option's schema and named another option that has a schema of its own (a
    user's model/mine.yaml on /schema/model/mlp with `name: cnn1d`) would be read by the other option's
    code, which asks for keys the node lacks (OmegaConf's "Key 'channels' not in 'MLPConfig'" with its
    traceback): ConfigError naming `<group>.name`."""
    node = cfg.get(group)
    typed = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    name = node.get("name") if isinstance(node, DictConfig) else None
    if not (isinstance(typed, type) and dataclasses.is_dataclass(typed)) or not isinstance(name, str):
        return
    if name not in plugins.schema_names(group):
        return  # an option without a schema of its own reads only the group's base options
    expected = plugins.schema(group, name)
    if issubclass(typed, expected):
        return
    same = [n for n in plugins.schema_names(group) if n != "base" and plugins.schema(group, n) is typed]
    raise ConfigError(
        f"{group}.name",
        name,
        f"the name of an option built on this node's schema {typed.__name__}" + (f": {', '.join(same)}" if same else ""),
        f"{name} is built from {expected.__name__}, whose options this node lacks; to build {name}, put "
        f"/schema/{group}/{name}@_here_ in the file's defaults list.",
    )


# ----------------------------------------------------------------------------- the pass


def schema_of(cfg: DictConfig, key: str) -> type:
    """The schema a node is checked against: its OmegaConf type (each option's YAML merges its
    schema first); for a group's node composed without one, the group's best-fitting schema."""
    node = OmegaConf.select(cfg, key)
    typed = OmegaConf.get_type(node)
    if isinstance(typed, type) and dataclasses.is_dataclass(typed):
        return typed
    # Untyped: the schema leaving the fewest unknown keys and, of those, the one whose options the
    # node holds (a larger schema's checks would read keys the node does not have).
    candidates = _group_schemas(key)
    scored = [(len(_unknown_keys(node, c, f"{key}.")), sum(f not in node for f in _fields(c)), i, c) for i, c in enumerate(candidates)]
    return min(scored)[3]


def validate_node(cfg: DictConfig, key: str, schema: type | None = None) -> None:
    """Run the checks of the node at `key`, chosen by its schema type (`check` along the MRO,
    prune_cli/core/config_base.py `run_checks`). For `method`, first check that the node carries the
    options of the score it selects."""
    if key == "method":
        from ..pruning import SCORES
        from ..pruning.scores.common import require_options

        require_options(cfg.method, SCORES.get(cfg.method.score).options)
    run_checks(schema or schema_of(cfg, key), cfg, key)


def _build(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int):
    from ..models import build_model

    try:
        return build_model(cfg.model, input_shape, num_classes)
    except (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError) as err:
        raise ConfigError("model", cfg.model.name, _fitting(cfg, input_shape), f"It cannot be built for them: {err}") from None


def _fitting(cfg: DictConfig, input_shape: tuple[int, ...]) -> str:
    return (
        f"a model that takes dataset={cfg.dataset.name}'s inputs of shape {tuple(input_shape)} "
        "(mlp and cnn1d take vectors; lenet5, conv6, vgg*, resnet* take images)"
    )


def _check_forward(cfg: DictConfig, model, input_shape: tuple[int, ...], num_classes: int, example) -> None:
    """Pass `example` (one input) through the model in eval mode: a model made for other inputs stops
    with one message instead of a traceback from deep inside training."""
    import torch

    try:
        with torch.no_grad():
            out = model.eval()(example)
        model.train()
    except RuntimeError as err:
        raise ConfigError(
            "model", cfg.model.name, _fitting(cfg, input_shape), f"Its forward pass fails: {str(err).splitlines()[0]}"
        ) from None
    if out.shape[-1] != num_classes:
        raise ConfigError(
            "model",
            cfg.model.name,
            f"a model with {num_classes} outputs, one per class of dataset={cfg.dataset.name}",
            f"It has {out.shape[-1]}.",
        )


def build_checked_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int, example):
    """Build the model and pass `example` (one input) through it: a model made for other inputs (a
    CNN on 1-D signals, an image model on vectors) stops with one message instead of a traceback
    from its constructor or deep inside training."""
    model = _build(cfg, input_shape, num_classes)
    _check_forward(cfg, model, input_shape, num_classes, example)
    return model


@dataclasses.dataclass(frozen=True)
class CheckedModel:
    """The run's model as the pre-run pass checked it: its layers on the meta device (shapes, no
    weights), for the checks of the method's layer options, and the multiply-accumulates of one
    example's forward pass, for the thread policy (prune_cli/core/threads.py)."""

    model: Any
    macs_per_example: int


# The most recent CheckedModel, keyed by the resolved model node and the declared input: the jobs of
# a sweep share it, and a run's thread choice reads it instead of building the model again.
_CHECKED: dict[tuple, CheckedModel] = {}


def checked_model(cfg: DictConfig) -> CheckedModel | None:
    """The model for the dataset's declared input shape and classes, built and passed one example
    (None when the dataset declares no input: it is checked once its data is loaded).

    Built on the CPU and passed a zero example there, with the global random streams left as they
    were and one intra-op thread, then moved to the meta device. Not built on the meta device:
    PyTorch 2's meta kernels of common ops (`mm`, `addmm`, convolutions when a model's constructor
    sizes its classifier with a dry run) are Python functions that import `torch._dynamo` (and with
    it sympy and the compiler stack) on first use, which took longer than importing torch itself
    (docs/performance.md, "Start-up"); one example through a small model on the CPU takes
    milliseconds (VGG-19 on CIFAR-100: 0.4 s to build, 0.2 s forward on one loaded core)."""
    spec = declared_input(cfg)
    if spec is None:
        return None
    shape, classes = spec
    key = (repr(OmegaConf.to_container(cfg.model, resolve=True)), tuple(shape), int(classes))
    found = _CHECKED.get(key)
    if found is None:
        found = _check_on_cpu(cfg, tuple(shape), int(classes))
        _CHECKED.clear()
        _CHECKED[key] = found
    return found


def _check_on_cpu(cfg: DictConfig, shape: tuple[int, ...], classes: int) -> CheckedModel:
    import torch

    from ..core.threads import counting_macs
    from ..models import isolated_cpu_build

    with isolated_cpu_build():
        model = _build(cfg, shape, classes)
        with counting_macs(model) as macs:
            _check_forward(cfg, model, shape, classes, torch.zeros(1, *shape))
    return CheckedModel(model.to_empty(device="meta"), macs.total)


def _check_model_against_data(cfg: DictConfig) -> None:
    """The checks that need the model's layers, before any data is loaded or directory created: the
    model is built for the dataset's declared input shape and classes (`checked_model`), then the
    method's layer options (method.exclude, method.layer_densities, match_masks shapes, N:M and
    channel constraints) are checked against its prunable layers."""
    checked = checked_model(cfg)
    if checked is None:
        return
    from ..pruning import ALLOCATIONS, select_prunable

    selected = select_prunable(checked.model, cfg.method)
    allocation = ALLOCATIONS.get(cfg.method.allocation)
    # densities given per layer contradict sparsity=0 unless all 1 (the pruner found it after dense training)
    if allocation.check_density is not None and (cfg.sparsity > 0 or allocation.fixes_final_densities(cfg.method)):
        allocation.check_density(checked.model, selected, cfg.method, 1.0 - cfg.sparsity)
    schedule = schema_of(cfg, "schedule")
    # threshold_impl=strict_kth prunes even at sparsity 0 (`may_zero_weights`, `_event_failure`)
    if may_zero_weights(cfg) and prunes_to_sparsity(cfg, schedule):
        events = planned_event_sparsities(cfg, schedule)
        if events is not None:  # gradual's events are known from the training split's size (check_data_sizes)
            check_event_reach(
                cfg, checked.model, selected, events, lambda s: planned_event_sparsities(_with_sparsity(cfg, s), schedule)
            )
    total = sum(p.numel() for p in selected.values())
    if total and cfg.sparsity > 0 and prunes_to_sparsity(cfg, schedule):
        _check_no_layer_emptied(cfg, checked.model, selected, allocation)
    if total and prunes_to_sparsity(cfg, schedule) and not cfg.method.allow_collapse and round((1.0 - cfg.sparsity) * total) == 0:
        check(
            False,
            "sparsity",
            cfg.sparsity,
            f"a sparsity that keeps at least one of the {total} prunable weights (round((1 - sparsity) x {total}) >= 1, "
            f"below about {1 - 0.5 / total:.6g}), or method.allow_collapse=true",
        )


def planned_event_sparsities(cfg: DictConfig, schedule: type) -> Optional[list[float]]:
    """The target sparsity of each pruning event of the run, in order: the `Prune` steps of the
    schedule's plan; [sparsity] for a schedule that prunes once without one (a training-time method's
    final masks); None for a schedule whose events depend on the training split's size
    (`event_sparsities(cfg, examples)`: gradual)."""
    if hasattr(schedule, "event_sparsities"):
        return None
    from ..schedules import SCHEDULES
    from ..schedules.steps import Prune

    events = [1.0 - step.density for step in SCHEDULES.get(cfg.schedule.name)(cfg) if isinstance(step, Prune)]
    return events or ([float(cfg.sparsity)] if prunes_once(cfg, schedule) else [])


def check_event_reach(
    cfg: DictConfig, model, selected: dict, events: list[float], events_of: Optional[Callable[[float], list[float]]] = None
) -> None:
    """Before any training: a structure whose kept totals are a fact of the layer shapes (its
    `check_density`: channel, block, bcr, channel_group) refuses a pruning event's target it cannot
    reach within method.sparsity_tolerance, naming the event when it is a schedule's intermediate
    target (a sparsity the user never gave), instead of the pruner after dense training. Every event is
    checked: exactly where the structure's reach does not depend on earlier masks
    (channel; block where a layer's blocks are all of one size) and at a first event made in one scoring
    round (it prunes the dense model; block with edge blocks of other sizes too, since its pruner reaches
    the count of every subset of blocks: docs/allocation.md); elsewhere (block, bcr, channel_group after an
    earlier event or scoring round) the dense layers' reach is a necessary condition, since a later event
    keeps sub-shapes or subsets of what an earlier one kept, whose totals the dense layers reach too.
    Only a first event was checked for those, so SynFlow's 100 rounds with channel_group at a target no
    dense choice meets trained first.

    The sparsities a refusal suggests pass this whole check at every event of their own schedule
    (`_passing_neighbours`, with `events_of(sparsity)`: the events a run to that sparsity would have).
    The nearest values of one event alone were suggested before: on a schedule of several events 85 of
    175 of them were refused again at an earlier event of their own schedule (audit of the pre-run checks)."""
    failure = _event_failure(cfg, model, selected, events)
    if failure is None:
        return
    _WITH_SPARSITY.clear()  # the copies the search makes are of this config as it is now, not as it was
    try:
        _refuse_event(cfg, model, selected, events, events_of, failure)
    finally:
        _WITH_SPARSITY.clear()  # and none outlives the refusal


def _refuse_event(cfg: DictConfig, model, selected: dict, events: list[float], events_of, failure: tuple) -> None:
    """`check_event_reach`'s refusal of `failure` = (event index, its sparsity, problem), with the
    suggestions whose every event passes."""
    i, sparsity, problem = failure
    if isinstance(problem, tuple):
        _refuse_totals(cfg, model, selected, events, events_of, i, sparsity, *problem)
    from ..pruning.structure import ReachRefusal

    last = abs(sparsity - cfg.sparsity) < 1e-12
    if not isinstance(problem, ReachRefusal):  # a plugin structure's own refusal: as it gave it
        if last:
            raise problem
        found, shown = None, ""
    else:
        found = _passing_neighbours(cfg, model, selected, events_of, (i, sparsity, problem))
        shown = _suggestion(cfg, model, selected, events_of, found, problem)
    if last:
        raise ConfigError("sparsity", problem.value, problem.before + shown + problem.after) from problem
    needs = problem.allowed if found is None else f"{problem.before.rstrip(': ')}; {shown}{problem.after}"
    raise ConfigError(
        "sparsity",
        cfg.sparsity,
        f"a sparsity whose every pruning event method.structure={cfg.method.structure} reaches: event {i + 1} of "
        f"{len(events)} of schedule={cfg.schedule.name} targets the intermediate sparsity {sparsity:.6f} on the "
        f"way to sparsity={cfg.sparsity:g} (known from the layer shapes before training), where the structure "
        f"needs {needs}; or fewer events",
    ) from problem


# Candidate sparsities checked on either side of a refused one for a suggestion whose every pruning event
# passes: each costs one pass over its schedule's events (stopping at the first refused), and a candidate
# refused at an event moves on to the first final sparsity whose event reaches the next total the structure reaches there.
SUGGESTION_PROBES = 60


def _event_failure(cfg: DictConfig, model, selected: dict, events: list[float]):
    """(index, sparsity, problem) of the first pruning event these checks refuse, None where all pass: the
    totals of per-layer counts fixed by the shapes (problem = (kept, reachable): `_shape_count_outcome`),
    then the structure's reach at each event (problem = its ConfigError, a `ReachRefusal` for the built-in
    ones)."""
    from ..pruning import ALLOCATIONS, STRUCTURES

    outcome = _shape_count_outcome(cfg, model, selected)
    # a bound (strict_kth): it prunes max(1, ceil((1 - d) n)) even at sparsity 0 (gradual's first event), which
    # the pruner checks like any other event; shape-fixed counts keep everything there
    at_zero = not ALLOCATIONS.get(cfg.method.allocation).counts_from_shapes(cfg.method)
    if outcome is not None:
        for i, sparsity in enumerate(events):
            if sparsity <= 0 and not at_zero:
                continue
            kept, reachable, missed, collapsed = outcome(sparsity)
            if missed and not collapsed:  # an emptied layer is the cause to name: the collapse check does
                return i, sparsity, (kept, reachable)
    structure = STRUCTURES.get(cfg.method.structure)
    if structure.check_density is None:
        return None
    for i, sparsity in enumerate(events):
        if sparsity <= 0:  # an event at sparsity 0 (gradual's first, initial_sparsity=0) prunes nothing
            continue
        try:
            structure.check_density(model, selected, cfg.method, 1.0 - sparsity)
        except ConfigError as err:
            return i, sparsity, err
    return None


def _candidate_failure(cfg: DictConfig, model, selected: dict, events_of, sparsity: float):
    """`_event_failure` of the schedule a run to `sparsity` would have (`events_of`), and the other pre-run
    checks of that target (the allocation's own, a layer left empty, no weight kept): (index, number of
    events, that event's sparsity, problem) of the first refusal, None where the whole pre-run check passes."""
    from ..pruning import ALLOCATIONS

    events = events_of(sparsity)
    failure = _event_failure(_with_sparsity(cfg, sparsity), model, selected, events)
    if failure is not None:
        return failure[0], len(events), failure[1], failure[2]
    candidate = _with_sparsity(cfg, sparsity)
    allocation = ALLOCATIONS.get(cfg.method.allocation)
    total = sum(p.numel() for p in selected.values())
    try:
        if allocation.check_density is not None:
            allocation.check_density(model, selected, candidate.method, 1.0 - sparsity)
        if total:
            _check_no_layer_emptied(candidate, model, selected, allocation)
    except ConfigError as err:
        return len(events) - 1, len(events), sparsity, err
    if not cfg.method.allow_collapse and round((1.0 - sparsity) * total) == 0:
        return len(events) - 1, len(events), sparsity, None
    return None


_WITH_SPARSITY: list = []  # [(cfg, its copy)]: the copy `_with_sparsity` reuses within one refusal


def _with_sparsity(cfg: DictConfig, sparsity: float) -> DictConfig:
    """A copy of `cfg` (one per config, reused) with `sparsity` set, for deriving and checking the pruning
    events of another target (its interpolations, such as a schedule's own sparsity keys, follow it)."""
    import copy

    if not _WITH_SPARSITY or _WITH_SPARSITY[0][0] is not cfg:
        copied = copy.deepcopy(cfg)
        OmegaConf.set_readonly(copied, False)
        OmegaConf.set_struct(copied, False)
        _WITH_SPARSITY[:] = [(cfg, copied)]
    copied = _WITH_SPARSITY[0][1]
    copied.sparsity = float(sparsity)
    return copied


def _passing_neighbours(cfg: DictConfig, model, selected: dict, events_of, first: tuple) -> Optional[list[float]]:
    """The nearest sparsities below and above cfg.sparsity whose every pruning event passes the pre-run
    check (`_candidate_failure`), walking outwards over candidates k / N (N prunable weights) from the
    refusal `first` = (event index, its sparsity, problem) of cfg.sparsity itself (`_next_candidate`). At most
    SUGGESTION_PROBES candidates on each side; None where there is no schedule to derive the events of
    another target from (`events_of`)."""
    from ..pruning.structure import every_layer_kept

    if events_of is None:
        return None
    with every_layer_kept():
        return sorted(_walk(cfg, model, selected, events_of, first))


def _walk(cfg: DictConfig, model, selected: dict, events_of, first: tuple) -> list[float]:
    """`_passing_neighbours`' walk on either side: the first candidate that passes on each."""
    n = sum(p.numel() for p in selected.values())
    found = []
    for direction in (-1, 1):
        s, failure = float(cfg.sparsity), (first[0], len(events_of(cfg.sparsity)), *first[1:])
        for _ in range(SUGGESTION_PROBES):
            s = _next_candidate(events_of, n, s, direction, failure, float(cfg.method.sparsity_tolerance))
            if s is None:
                break
            failure = _candidate_failure(cfg, model, selected, events_of, s)
            if failure is None:
                found.append(s)
                break
    return found


def _next_candidate(events_of, n: int, s: float, direction: int, failure: tuple, tolerance: float) -> Optional[float]:
    """The next candidate beyond the refused sparsity `s` (`direction` -1: below, 1: above), from its refusal
    (event index, number of events, that event's sparsity t, problem). Where the structure refused event i
    (a `ReachRefusal`), no candidate whose event i targets less far than the nearest total v it reaches
    beyond t, less method.sparsity_tolerance, can pass, so the walk moves to the first count whose event i
    targets that (found by bisection: the events of iterative and gradual grow with the final sparsity);
    the last event targets the sparsity itself, which moves to v, the total the structure reaches (what a
    refusal of a single event names). Where it reaches nothing beyond t, there is none. Otherwise (the
    totals of shape-fixed counts, another check) the next count."""
    from ..pruning.structure import ReachRefusal

    i, count, t, problem = failure
    k = round(s * n)
    step = k + direction
    if isinstance(problem, ReachRefusal):
        ahead = [v for v in problem.nearest if direction * (v - t) > 0]
        if not ahead:
            return None
        v = min(ahead, key=lambda x: abs(x - t))
        reached = round(v * n) if i == count - 1 else _count_reaching(events_of, i, v - direction * tolerance, k, direction, n)
        if reached is None:
            return None
        step = reached if direction * (reached - k) > 0 else step
    return step / n if 0 < step < n else None


def _count_reaching(events_of, i: int, v: float, k: int, direction: int, n: int) -> Optional[int]:
    """The count nearest beyond k (in `direction`) whose schedule's event i targets v or beyond, by bisection
    between k and the last count; None where even that one does not."""

    def reached(c: int) -> bool:
        events = events_of(c / n)
        return i < len(events) and direction * (events[i] - v) >= -1e-12

    end = n - 1 if direction > 0 else 1
    if direction * (end - k) <= 0 or not reached(end):
        return None
    before, after = k, end
    while abs(after - before) > 1:
        middle = (before + after) // 2
        before, after = (before, middle) if reached(middle) else (middle, after)
    return after


def _suggestion(cfg: DictConfig, model, selected: dict, events_of, found: Optional[list[float]], problem) -> str:
    """The words naming `found` (`_passing_neighbours`) in `problem`'s refusal: its own phrase where they are
    the values it names (a single event, or a schedule whose other events pass there too), printed with the
    digits that make them pass (`_round_trip`); where none was found, that no sparsity within the bound passes."""
    if found is None:
        return problem.phrase([f"{v:.6f}" for v in problem.nearest])

    from ..pruning.structure import every_layer_kept

    def passes(t: float) -> bool:
        with every_layer_kept():  # as `_passing_neighbours` found them
            return _candidate_failure(cfg, model, selected, events_of, t) is None

    named = [f"{v:.6f}" for v in problem.nearest]
    if [f"{v:.6f}" for v in found] == named and all(passes(float(t)) for t in named):
        return problem.phrase(named)  # what the structure names, as it names it
    shown = [_round_trip(v, passes) for v in found]
    if not shown:
        return f"no sparsity within {SUGGESTION_PROBES} candidates on either side passes every pruning event"
    if len(events_of(cfg.sparsity)) == 1:  # one event: the structure's own words, naming the values that pass
        return problem.phrase(shown)
    verb = "are" if len(shown) > 1 else "is"
    return f"the nearest whose every pruning event of schedule={cfg.schedule.name} passes {verb} {' and '.join(shown)}"


def _shape_count_outcome(cfg: DictConfig, model, selected: dict) -> Optional[Callable]:
    """Where an unstructured allocation's per-layer counts are a fact of the layer shapes
    (`counts_from_shapes`: layerwise's round(d n_l) per layer) and it promises the total (`exact_total`),
    the total those counts keep at each pruning event is known now: a sum of per-layer roundings more
    than method.sparsity_tolerance from round(d N) failed the pruner's check after dense training (a
    res_mlp of five 64-weight layers and a 24-weight classifier keeps 5 x 6 + 2 = 32 of 344 at sparsity
    0.9, not 34). Then `outcome(sparsity)` (below); None where this check does not apply.

    Where ties among the scores decide the counts but the most the allocation keeps is a fact of the shapes
    (its `kept_at_most`: threshold_impl=strict_kth, which keeps n - max(1, ceil((1 - d) n)) without ties and
    fewer with them, docs/allocation.md), that bound is `kept`, and only a shortfall is refused: a bound
    below round(d N) by more than the tolerance means every run misses at least as far (the FAST MLP with
    schedule=iterative kept 132 of 336 at event 2, not 134, and stopped after dense training), while a
    bound that passes leaves the ties to the pruner's check after training."""
    from types import SimpleNamespace

    import torch

    from ..pruning import ALLOCATIONS, SCORES
    from ..pruning.structure import residual_layers

    method = cfg.method
    allocation = ALLOCATIONS.get(method.allocation)
    if method.structure != "unstructured" or not allocation.exact_total(method):
        return None
    sizes = {n: p.numel() for n, p in selected.items()}
    exact = allocation.counts_from_shapes(method)
    if not exact and (allocation.kept_at_most is None or allocation.kept_at_most(sizes, method, 1.0) is None):
        return None
    if SCORES.get(method.score).selection(method) == "bernoulli":  # a miss is then a warning (pruner.py)
        return None
    scores = {n: torch.empty(p.shape, device="meta") for n, p in selected.items()}
    ctx = SimpleNamespace(model=model, method=method)
    total = sum(p.numel() for p in selected.values())
    tolerance = float(method.sparsity_tolerance)
    residual = residual_layers(model)

    def outcome(sparsity: float) -> tuple[int, int, bool, bool]:
        """(kept, the reachable count round(d N), whether they differ by more than the tolerance by the
        pruner's own comparison in floating point (pruner.check_masks: at a gap of exactly tolerance x N
        counts exact division passes where the pruner's subtraction refuses), whether a layer the
        collapse check (`_check_no_layer_emptied`) refuses keeps nothing)."""
        density = 1.0 - sparsity
        if not exact:  # the most it keeps: only too few is certain (the pruner's comparison grows as kept falls)
            kept, reachable = allocation.kept_at_most(sizes, method, density), round(total * density)
            missed = kept < reachable and abs((1.0 - kept / total) - (1.0 - reachable / total)) > tolerance
            return kept, reachable, missed, False  # the collapse check does not count these layers: refused here
        counts = allocation(scores, density, ctx)
        kept, reachable = sum(counts.values()), round(total * density)
        missed = abs((1.0 - kept / total) - (1.0 - reachable / total)) > tolerance
        collapsed = not method.allow_collapse and any(k == 0 and n not in residual for n, k in counts.items())
        return kept, reachable, missed, collapsed

    return outcome


def _refuse_totals(cfg: DictConfig, model, selected: dict, events, events_of, i: int, sparsity: float, kept: int, reachable: int):
    """The refusal of a pruning event whose shape-fixed per-layer counts miss the total (`_shape_count_outcome`),
    with the nearest sparsities whose every event passes: for a single event the counts k / N on either side
    that pass (`_nearest_passing`), for a schedule of several those of `_passing_neighbours`."""
    from ..pruning import ALLOCATIONS
    from ..pruning.structure import nearest_phrase

    method = cfg.method
    total = sum(p.numel() for p in selected.values())
    tolerance = float(method.sparsity_tolerance)
    if len(events) > 1:
        found = _passing_neighbours(cfg, model, selected, events_of, (i, sparsity, (kept, reachable)))

        def passes(t: float) -> bool:
            return _candidate_failure(cfg, model, selected, events_of, t) is None
    else:
        outcome = _shape_count_outcome(cfg, model, selected)

        def passes(t: float) -> bool:
            _, _, missed, collapsed = outcome(t)
            return not missed and not collapsed

        bound = not ALLOCATIONS.get(method.allocation).counts_from_shapes(method)  # strict_kth's k / N nearest may pass
        found = _nearest_passing(cfg.sparsity, total, passes, from_nearest=bound)
    where = (
        f"event {i + 1} of {len(events)} of schedule={cfg.schedule.name} targets {sparsity:.6f} "
        f"on the way to sparsity={cfg.sparsity:g}: "
        if len(events) > 1
        else ""
    )
    shown = [_round_trip(s, passes) for s in found or []]
    shown = sorted({t for t in shown if float(t) != float(cfg.sparsity)}, key=float)
    suggestion = f"{nearest_phrase(shown, ', ')}; " if shown else ""
    if found is not None and not found and len(events) > 1:
        suggestion = f"no sparsity within {SUGGESTION_PROBES} candidates on either side passes every pruning event; "
    if not ALLOCATIONS.get(method.allocation).counts_from_shapes(method):  # a bound (`_shape_count_outcome`): strict_kth
        if shown:  # they pass the bound; ties may still prune more there
            suggestion = f"{nearest_phrase(shown, ', ')} (where the counts without ties are within it); "
        _refuse_kept_at_most(cfg, model, selected, events, where, kept, reachable, suggestion)
    check(
        False,
        "sparsity",
        cfg.sparsity,
        f"a sparsity at which method.allocation={method.allocation}'s per-layer counts total round((1 - sparsity) N) "
        f"within method.sparsity_tolerance={tolerance:g}: {where}they keep {kept} of the N = {total} prunable weights, "
        f"{reachable} is the target (known from the layer shapes before training); {suggestion}or method.allocation=global, "
        "or a larger method.sparsity_tolerance",
    )


def _refuse_kept_at_most(cfg: DictConfig, model, selected: dict, events, where: str, kept: int, reachable: int, suggestion: str):
    """`_refuse_totals`' refusal where `kept` is the most the allocation keeps (its `kept_at_most`:
    threshold_impl=strict_kth without ties), naming method.threshold_impl=topk where its counts pass every
    event and leave no layer empty (`_topk_passes`)."""
    method = cfg.method
    total = sum(p.numel() for p in selected.values())
    layerwise = method.allocation == "layerwise"
    pruned = "max(1, ceil((1 - d) n)) of each layer's n weights" if layerwise else "max(1, ceil((1 - d) N)) of all N"
    rounded = "round(d n) kept in each layer" if layerwise else "round(d N) kept"
    topk = f"or method.threshold_impl=topk ({rounded}, ranked by score), " if _topk_passes(cfg, model, selected, events) else ""
    check(
        False,
        "sparsity",
        cfg.sparsity,
        f"a sparsity at which method.allocation={method.allocation} with method.threshold_impl=strict_kth can keep "
        f"round((1 - sparsity) N) within method.sparsity_tolerance={float(method.sparsity_tolerance):g}: {where}it prunes "
        f"{pruned} and ties among the scores prune more, so it keeps at most {kept} of the "
        f"N = {total} prunable weights, {reachable} is the target (known from the layer shapes before training); "
        f"{suggestion}{topk}or a larger method.sparsity_tolerance",
    )


def _topk_passes(cfg: DictConfig, model, selected: dict, events) -> bool:
    """Whether this run with method.threshold_impl=topk passes the totals at every event and leaves no layer
    empty at the last (`_event_failure`, `_check_no_layer_emptied`)."""
    import copy

    from ..pruning import ALLOCATIONS

    copied = copy.deepcopy(cfg)
    OmegaConf.set_readonly(copied, False)
    OmegaConf.set_struct(copied, False)
    copied.method.threshold_impl = "topk"
    if _event_failure(copied, model, selected, events) is not None:
        return False
    try:
        _check_no_layer_emptied(copied, model, selected, ALLOCATIONS.get(copied.method.allocation))
    except ConfigError:
        return False
    return True


def _round_trip(value: float, passes) -> str:
    """`value` printed with the fewest digits (6 at least) whose printed number itself `passes`: on a
    large model 6 digits can print the refused sparsity for a neighbour k / N."""
    for digits in range(6, 18):
        text = f"{value:.{digits}g}"
        if passes(float(text)):
            return text
    return repr(value)


def _nearest_passing(sparsity: float, total: int, passes, steps: int = 2000, from_nearest: bool = False) -> list[float]:
    """The nearest sparsities k / N below and above `sparsity` (within `steps` counts) that `passes`.
    `from_nearest`: the count k nearest `sparsity` is a candidate too, on its side, where it is not
    `sparsity` itself (strict_kth: global at 0.51 on N = 40 keeps at most 19 of 20, at 20 / 40 = 0.5 20 of 20)."""
    start = round(sparsity * total)
    found = []
    for direction in (-1, 1):
        first = 0 if from_nearest and direction * (start / total - sparsity) > 0 else 1
        for j in range(first, steps + 1):
            k = start + direction * j
            if not 0 < k < total:
                break
            if passes(k / total):
                found.append(k / total)
                break
    return sorted(found)


def _check_no_layer_emptied(cfg: DictConfig, model, selected: dict, allocation, events: Optional[list[float]] = None) -> None:
    """Where the allocation's per-layer counts are a fact of the layer shapes (`counts_from_shapes`:
    layerwise, ER/ERK, uniform_plus, explicit), or the layers it leaves no weight are known before the run
    (its `empties` hook: region_bound with the binomial rank model), and the structure keeps exactly those
    counts (unstructured), a layer the run's final pruning event leaves with no weight is known now: a
    layer collapse (Tanaka et al. 2020), refused here before any data or training rather than by the
    pruner after dense training (pruning/pruner.py `check_collapse`, which keeps the same exceptions: a
    residual section's layer, and method.allow_collapse=true). `events`: the sparsities of the run's pruning
    events where the schedule's plan does not give them (gradual, once the training split's size is known).

    block and bcr round each layer's count to one they reach and never empty a layer allocated weights
    (structure.py `first_option`), but a layer allocated 0 may be given some where the other layers' roundings
    miss the total (`_kept_empty`): with counts fixed by the shapes, the layers that balancing leaves empty
    are known now too. They returned early here, so explicit densities with a 0 and erk_plus with
    method.fc_density=0 trained the dense model before the pruner's collapse."""
    structure = cfg.method.structure
    if cfg.method.allow_collapse or structure not in ("unstructured", "block", "bcr"):
        return
    from types import SimpleNamespace

    import torch

    from ..pruning.pruner import sparing_allocations
    from ..pruning.structure import residual_layers

    if allocation.counts_from_shapes(cfg.method):
        scores = {n: torch.empty(p.shape, device="meta") for n, p in selected.items()}
        counts = allocation(scores, 1.0 - cfg.sparsity, SimpleNamespace(model=model, method=cfg.method))
        emptied = [n for n, k in counts.items() if k == 0]
        if emptied and structure != "unstructured":
            emptied = [n for n in emptied if n in _kept_empty(cfg, selected, counts)]
    elif allocation.empties is not None and structure == "unstructured":
        earlier = _earlier_allocations(cfg, sum(p.numel() for p in selected.values()), events)
        if earlier == ():
            found = allocation.empties(model, selected, cfg.method, 1.0 - cfg.sparsity)
        else:  # an allocation that reads the survivors (region_bound) replays them
            found = allocation.empties(model, selected, cfg.method, 1.0 - cfg.sparsity, earlier=earlier)
        emptied = [n for n in selected if n in (found or set())]
    else:
        return
    residual = residual_layers(model)
    empty = [n for n in emptied if n not in residual]
    if not empty:
        return
    allocation_name = cfg.method.allocation
    key, value = "sparsity", cfg.sparsity
    if allocation_name == "explicit":  # the given densities, not the sparsity, empty the layer
        key, value, remedy = "method.layer_densities", list(cfg.method.layer_densities), "a density above 0 for it"
    elif allocation_name == "erk_plus" and _classifier_given_none(cfg, model, selected, empty):
        # the classifier keeps round(fc_density x n) whatever the sparsity: only a larger fc_density helps
        n_fc = selected[_classifier(model, selected)].numel()
        key, value = "method.fc_density", cfg.method.fc_density
        remedy = f"a method.fc_density above {0.5 / n_fc:.6g} (the classifier keeps round(fc_density x {n_fc}) of its {n_fc} weights)"
    else:
        sparing = sparing_allocations(allocation_name)
        own = " or a larger method.fc_density (the classifier's density)" if allocation_name == "erk_plus" else ""
        remedy = f"a lower sparsity{own}, an allocation that spares small layers (e.g. method.allocation={sparing})"
    check(
        False,
        key,
        value,
        f"values with which method.allocation={allocation_name} leaves every prunable layer a weight: here "
        f"{', '.join(empty)} would keep none (a layer collapse, known from the layer shapes before training). Use "
        f"{remedy}, exclude the layer (method.exclude=[...]), or accept it with method.allow_collapse=true",
    )


def _classifier(model, selected: dict) -> Optional[str]:
    """The classifier's parameter name as erk_plus finds it (`layer_roles`), None where it is not pruned."""
    from types import SimpleNamespace

    from ..pruning.allocation import layer_roles

    return layer_roles(selected, SimpleNamespace(model=model))[1]


def _classifier_given_none(cfg: DictConfig, model, selected: dict, empty: list[str]) -> bool:
    """Whether the classifier is the only layer erk_plus leaves empty, because round(fc_density x its weights)
    is 0, which no sparsity changes (the other layers absorb the total: allocations/erk.py
    `allocate_erk_plus`): then method.fc_density, not the sparsity, is the value to name."""
    from ..pruning.allocation import round_half_even

    fc = _classifier(model, selected)
    return empty == [fc] and round_half_even(float(cfg.method.fc_density) * selected[fc].numel()) == 0


def _kept_empty(cfg: DictConfig, selected: dict, counts: dict) -> set[str]:
    """The layers allocated 0 that block or bcr keep empty at a first pruning event: their balancing
    (structure.py `balanced_choice`) over the counts each dense layer reaches (bcr: kr x kc per block,
    `_shape_counts`; block: every subset of its blocks, the counts the pruner offers where the top blocks
    miss the target) within `total_bounds`, then within every total the pruner accepts where that misses.
    A layer allocated 0 is given blocks only where the others' roundings miss the total (explicit
    [1, 0.55, 0] at 4x4 on a 2-16-16-3 MLP: the classifier keeps 12 so the total meets 173), so refusing
    every layer allocated 0 would refuse runs the pruner completes. Where the counts are too many to
    enumerate (over BITSET_SPAN weights), every layer allocated 0 counts as kept empty."""
    import torch

    from ..pruning.structure import BITSET_SPAN, accepted_window, balance_to_total, block_view, promises_total, total_bounds
    from ..pruning.structures.bcr import _shape_counts
    from ..pruning.structures.block import subset_sums

    zeros = [n for n, k in counts.items() if k == 0]
    sizes = {n: p.numel() for n, p in selected.items()}
    n_all = sum(sizes.values())
    if n_all > BITSET_SPAN:
        return set(zeros)
    r, c = (int(v) for v in cfg.method.block_shape)
    options = {}
    for name, p in selected.items():
        blocks = block_view(torch.zeros(tuple(p.shape)), r, c)
        if cfg.method.structure == "bcr":
            options[name] = sorted(set(_shape_counts(blocks, r, c).flatten().tolist()))
        else:
            bits = subset_sums((~torch.isnan(blocks)).flatten(2).sum(-1).flatten())[1]
            options[name] = [i for i, bit in enumerate(reversed(bin(bits)[2:])) if bit == "1"]
    density, tolerance = 1.0 - float(cfg.sparsity), float(cfg.method.sparsity_tolerance)
    at = balance_to_total(options, counts, sizes, total_bounds(sizes, counts, density, tolerance))
    if promises_total(cfg.method):
        lo, hi = accepted_window(n_all, density, tolerance)
        if not lo <= sum(options[n][at[n]] for n in options) <= hi:
            at = balance_to_total(options, counts, sizes, (lo, hi))
    return {n for n in zeros if options[n][at[n]] == 0}


def _earlier_allocations(cfg: DictConfig, total: int, events: Optional[list[float]] = None) -> Optional[tuple[float, ...]]:
    """The densities the run allocates at before its last allocation (to the final density): every
    scoring round (pruner.round_densities, from the density the previous event reached) of every pruning
    event of the schedule's plan, the last one's last round left out; () where the run allocates once,
    on the dense model; None where the events are not known (gradual before the training split's size,
    unless `events` gives their sparsities). The `empties` hook of an allocation that reads what earlier
    events left alive (region_bound caps each layer's density there) replays them."""
    from ..pruning.allocation import round_half_even
    from ..pruning.pruner import round_densities
    from ..schedules import SCHEDULES
    from ..schedules.steps import Prune

    if events is not None:  # the run prunes to 1 - sparsity at each (run/experiment.py _step_gradual)
        targets = [1.0 - s for s in events]
    elif hasattr(schema_of(cfg, "schedule"), "event_sparsities"):
        return None
    else:
        targets = [step.density for step in SCHEDULES.get(cfg.schedule.name)(cfg) if isinstance(step, Prune)]
    densities, start = [], 1.0
    for density in targets:
        if density >= 1.0:
            continue
        densities += round_densities(start, density, int(cfg.method.rounds), cfg.method.round_schedule)
        start = round_half_even(density * total) / total
    return tuple(densities[:-1])


def running_metric_schemas(cfg: DictConfig) -> list[tuple[str, type]]:
    """(dotted key, schema) of the metrics that run (metrics.<name> nodes with a dataclass type, enabled)."""
    found = []
    for name in cfg.metrics:
        node = cfg.metrics._get_node(name)
        if isinstance(node, DictConfig) and node.get("enabled", True) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            found.append((f"metrics.{name}", OmegaConf.get_type(node)))
    return found


def check_data_sizes(cfg: DictConfig, loaded: tuple[int, int, list[int], int] | None = None) -> None:
    """The checks that need the splits' sizes, before any training: a metric on an empty validation
    split (`check_val_split`), the method's, the schedule's and the running metrics' hooks
    `check_training_examples(cfg, examples, exact)` (gradual's event window in dense training's steps,
    ADMM's updates in its phase's steps, pruning_limit's epsilon batches; on the examples data pruning
    keeps) and `check_class_examples(cfg, counts, exact)` (training examples per class: GraSP's
    class-balanced batches; `check_class_sizes`), the schedule's `check_val_examples(cfg,
    examples)` (minmax's reference set), and the running metrics' `check_split_examples(cfg, key, sizes)`
    (the inputs metrics.regions draws from its split).

    `loaded`: (train, validation) sizes of the loaded splits, the training split's count per class and
    the test split's size, exact; the run calls this once the data is loaded, for what the declared sizes
    leave open (a random subset, a dataset that declares only its total). None: the pre-run pass, from the
    dataset's declared size (exact when it declares its per-class counts, otherwise an upper bound for the
    training split and unknown for validation; the test split's when the dataset declares it). With data
    pruning the counts are bounds until the rule has chosen (`check_class_sizes` once more then)."""
    from ..data.pruning import kept_examples
    from ..data.splits import planned_train_counts, planned_train_size, planned_val_size

    schedule = schema_of(cfg, "schedule")
    if loaded is None:
        spec = declared_train_examples(cfg.dataset)
        train = None if spec is None else planned_train_size(cfg.dataset, *spec)
        classes = None if spec is None else planned_train_counts(cfg.dataset, *spec)
        val = planned_val_size(cfg.dataset)
        test = declared_test_examples(cfg.dataset)
    else:
        train, val, classes, test = (loaded[0], True), loaded[1], (list(loaded[2]), True), loaded[3]
    check_val_split(cfg, val)
    _check_metric_splits(cfg, train, val, test)
    if train is not None:
        examples, exact = train
        if cfg.data_pruning.name != "none":
            rule_hook = getattr(schema_of(cfg, "data_pruning"), "check_training_split", None)
            if rule_hook is not None:  # a keep or offset that rounds to no change (KeepFractionConfig)
                rule_hook(cfg, examples, exact)
            examples = kept_examples(cfg.data_pruning.keep, examples)
        for schema in _size_hook_schemas(cfg):
            hook = getattr(schema, "check_training_examples", None)
            if hook is not None:
                hook(cfg, examples, exact)
        if exact and hasattr(schedule, "event_sparsities") and cfg.sparsity > 0 and prunes_to_sparsity(cfg, schedule):
            checked = checked_model(cfg)
            if checked is not None:
                from ..pruning import select_prunable

                selected = select_prunable(checked.model, cfg.method)
                events = schedule.event_sparsities(cfg, examples)
                check_event_reach(
                    cfg, checked.model, selected, events, lambda s: schedule.event_sparsities(_with_sparsity(cfg, s), examples)
                )
                from ..pruning import ALLOCATIONS

                allocation = ALLOCATIONS.get(cfg.method.allocation)
                if allocation.empties is not None and not allocation.counts_from_shapes(cfg.method):  # known now
                    _check_no_layer_emptied(cfg, checked.model, selected, allocation, events)
        counts, exact = classes
        if cfg.data_pruning.name != "none":  # which examples the rule keeps is known once it has chosen
            counts, exact = [min(n, examples) for n in counts], False
        check_class_sizes(cfg, counts, exact)
    val_hook = getattr(schedule, "check_val_examples", None)
    if val_hook is not None and val is not None:
        val_hook(cfg, val)


def _check_metric_splits(cfg: DictConfig, train: tuple[int, bool] | None, val: int | None, test: int | None) -> None:
    """The running metrics' `check_split_examples(cfg, key, sizes)`, given each split's (examples, exact)
    (None: unknown; an inexact size is an upper bound). The training split counts the examples data
    pruning keeps: the metrics see the split the run trains on."""
    if train is not None and cfg.data_pruning.name != "none":
        from ..data.pruning import kept_examples

        train = (kept_examples(cfg.data_pruning.keep, train[0]), train[1])
    sizes = {"train": train, "val": None if val is None else (val, True), "test": None if test is None else (test, True)}
    for key, schema in running_metric_schemas(cfg):
        hook = getattr(schema, "check_split_examples", None)
        if hook is not None:
            hook(cfg, key, sizes)


def _size_hook_schemas(cfg: DictConfig) -> tuple[type, ...]:
    """The schemas whose data-size hooks `check_data_sizes` calls: the method's, the schedule's and
    those of the metrics that run."""
    return (schema_of(cfg, "method"), schema_of(cfg, "schedule"), *(schema for _, schema in running_metric_schemas(cfg)))


def check_class_sizes(cfg: DictConfig, counts: list[int], exact: bool) -> None:
    """The hooks `check_class_examples(cfg, counts, exact)` of the method, the schedule and the running
    metrics, given the training split's examples per class: exact, or (`exact=False`) an upper bound on
    each class (a single value: on every class), so that a hook refuses only what is certain to fail.
    `check_data_sizes` calls it from the declared and the loaded sizes; the run once more after data
    pruning has chosen its examples (prune_cli/run/experiment.py), before dense training."""
    for schema in _size_hook_schemas(cfg):
        hook = getattr(schema, "check_class_examples", None)
        if hook is not None:
            hook(cfg, counts, exact)


def check_val_split(cfg: DictConfig, val_examples: int | None = None) -> None:
    """A metric asked to evaluate the validation split needs one. It is empty with
    dataset.val_fraction=0, or when the fraction rounds to no example in every class; a metric on it
    crashed (similarity, pruning_limit, regions), stopped after dense training (ntk) or wrote no rows
    (recall_distortion). Keys: metrics.splits and every enabled metric's split(s). `val_examples`:
    the split's size (`check_data_sizes`: as declared, or once loaded); None: unknown."""
    from ..data.splits import empty_val_reason

    if val_examples != 0:
        return
    keys = ["metrics.splits"]
    for name in cfg.metrics:
        node = cfg.metrics._get_node(name)
        if isinstance(node, DictConfig) and node.get("enabled", True):
            keys += [f"metrics.{name}.{option}" for option in ("split", "splits") if option in node]
    for key in keys:
        value = OmegaConf.select(cfg, key)
        chosen = [value] if isinstance(value, str) else list(value)
        check(
            "val" not in chosen,
            key,
            value,
            f"a split other than val: {empty_val_reason(cfg.dataset)}; or a larger dataset.val_fraction",
        )


def _declared(cfg: DictConfig, key: str) -> Any:
    """The type the schema declares for the dotted `key` (None when no schema says)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return None
    from .composition_errors import field_type

    return field_type(schema, leaf)


def _value_overrides(cfg: DictConfig):
    """(key, the type its schema declares, the value as parsed, the value as typed) of each single-value
    override Hydra recorded for this run (none for a config composed without Hydra). A value holding an
    interpolation (`${...}`) is left out: its text is not its value, which the schema's checks see."""
    recorded = recorded_overrides(cfg)
    if not recorded:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(recorded):
        key = override.get_key_element().lstrip("+~")
        if key.startswith("hydra") or "@" in key or override.is_sweep_override() or override.is_delete():
            continue
        typed = (override.input_line or "").partition("=")[2]
        if "${" in typed:
            continue
        yield key, _declared(cfg, key), override.value(), typed


def check_boolean_overrides(cfg: DictConfig) -> None:
    """An override of a bool option is `true` or `false`. OmegaConf also turns yes/no/on/off/y/n and
    any integer into a bool, so `train.nesterov=2` (a value meant for another key) ran as true under a
    run id of its own."""
    for key, declared, value, typed in _value_overrides(cfg):
        if declared in (bool, Optional[bool]):
            check(
                isinstance(value, bool) or (value is None and declared is not bool),
                key,
                typed,
                f"true or false ({key} is declared bool; yes, on or a number would be taken as a bool)",
            )


def check_text_overrides(cfg: DictConfig) -> None:
    """An override of a text option keeps the text typed: Hydra reads `name=1e3` as the number 1000.0 and
    `name=true` as a bool, and the option became '1000.0' or 'True' (the run id's label, a folder name)
    without a word. Such a value must be quoted (`name='1e3'`)."""
    for key, declared, value, typed in _value_overrides(cfg):
        if declared in (str, Optional[str]) and isinstance(value, (bool, int, float)) and str(value) != typed:
            raise ConfigError(
                key,
                typed,
                f"text kept as typed: Hydra reads {typed} as the {type(value).__name__} {value!r}, and {key} would be "
                f"{str(value)!r}; quote it ({key}='{typed}') to keep the text",
            )


def _sweep_element_texts(text: str) -> list[str]:
    """The elements of a sweep's value as typed (`a,1e3` or `choice(a, 1e3)`), split at the commas
    outside quotes and brackets."""
    if text.startswith("choice(") and text.endswith(")"):
        text = text[len("choice(") : -1]
    out, part, depth, quote = [], "", 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(part.strip())
            part = ""
            continue
        part += ch
    return [*out, part.strip()]


def text_changed_by_sweep(override: Any) -> list[tuple[str, Any]]:
    """(element as typed, value) of each element of a list sweep (`name=a,1e3`, `choice(...)`) that Hydra
    reads as a number or a bool whose text differs from the text typed. The sweeper hands each job its
    element re-encoded (`name=1000.0`, `name=True`), so the job's own check (`check_text_overrides`)
    cannot see what was typed."""
    from hydra.core.override_parser.types import ChoiceSweep

    sweep = override.value()
    if not isinstance(sweep, ChoiceSweep) or not override.input_line:
        return []
    typed = _sweep_element_texts(override.input_line.partition("=")[2].strip())
    if len(typed) != len(sweep.list):  # nested or unusual syntax: nothing to compare with
        return []
    encoded = list(override.sweep_string_iterator())
    return [(t, v) for t, v, e in zip(typed, sweep.list, encoded) if isinstance(v, (bool, int, float)) and e != t]


def check_text_sweep(cfg: DictConfig, override: Any) -> None:
    """A list sweep over a text option (`-m name=a,1e3`) whose element Hydra would hand its job as
    other text ('1000.0', 'True'): refused before any job, with the element quoted."""
    key = override.get_key_element().lstrip("+~")
    if _declared(cfg, key) not in (str, Optional[str]):
        return
    changed = text_changed_by_sweep(override)
    if changed:
        typed, value = changed[0]
        raise ConfigError(
            key,
            override.input_line.partition("=")[2],
            f"text kept as typed: Hydra's sweeper reads the element {typed} as the {type(value).__name__} {value!r}, and that "
            f"job's {key} would be {str(value)!r}; quote the element ('{typed}') to keep the text",
        )


def check_score_override(cfg: DictConfig) -> None:
    """`method.score=random` under method=magnitude ran random pruning recorded as magnitude (the run id,
    the method column): a method named after a score is that score with its defaults, and another
    score is chosen with its own method config. method.score stays for a method whose name is not a
    score (region_bound, lap_global_normalize: a score with an allocation) and for a plugin score that
    no method config names."""
    if not any(o.lstrip("+").startswith("method.score=") for o in recorded_overrides(cfg)):
        return
    m = cfg.method
    own = (configs_dir() / "method" / f"{m.score}.yaml").is_file() or m.score in plugins.schema_names("method")
    if m.name in plugins.names("score") and m.score != m.name and own:
        raise ConfigError(
            "method.score",
            m.score,
            f"the score of method={m.name} ({m.name}), which is that score with its defaults: another score would run "
            f"under the label {m.name}; choose it with method={m.score} (and its allocation or structure with "
            "method.allocation=..., method.structure=...)",
        )


def validate(cfg: DictConfig) -> None:
    """Check every value Hydra's type system cannot; raise ConfigError naming the key."""
    from ..data import DATASETS
    from ..data.pruning import DATA_PRUNING
    from ..models import MODELS
    from ..pruning import ALLOCATIONS, SCORES, STRUCTURES
    from ..schedules import SCHEDULES

    check_missing_values(cfg)
    check_interpolations(cfg)
    check_known_keys(cfg)
    check_list_elements(cfg)
    check_added_hydra_keys(cfg)
    check_job_chdir(cfg)
    check_shadowed_options(cfg)
    for group in NAMED_BY_SCHEMA:
        check_name_matches_schema(cfg, group)
    check_boolean_overrides(cfg)
    check_text_overrides(cfg)
    check_score_override(cfg)
    listed = [str(m) for m in cfg.get("plugins", [])]
    missing = [m for m in listed if m not in plugins.outside_modules()]
    check(
        not missing,
        "plugins",
        listed,
        "plugin modules given on the command line (prune-run plugins=[my_lab.scores]): "
        "they are indexed before the config is composed, so a config file cannot add them",
    )
    fraction(cfg, "sparsity", 0.0, 1.0)
    seed_option(cfg, "seed")
    choice(cfg, "device", {"auto", "cpu", "cuda"})
    threads = cfg.get("threads", "auto")
    check(valid_threads(threads), "threads", threads, "auto or a positive integer (torch intra-op threads)")
    usable_directory(cfg, "results_dir")
    if cfg.dense_cache.enabled:
        usable_directory(cfg, "dense_cache.dir")
    check(
        safe_name(cfg.name),
        "name",
        cfg.name,
        "a short label (1-64 characters: letters, digits, '.', '_', '+', '-', starting with a letter or digit; no '/' and no '..')",
    )
    DATASETS.get(cfg.dataset.name)
    validate_node(cfg, "dataset")
    MODELS.get(cfg.model.name)
    validate_node(cfg, "model")
    SCORES.get(cfg.method.score)
    ALLOCATIONS.get(cfg.method.allocation)
    STRUCTURES.get(cfg.method.structure)
    validate_node(cfg, "method")
    SCHEDULES.get(cfg.schedule.name)
    schedule = schema_of(cfg, "schedule")
    validate_node(cfg, "schedule", schedule)
    validate_node(cfg, "train")
    validate_node(cfg, "finetune")
    validate_node(cfg, "metrics")
    DATA_PRUNING.get(cfg.data_pruning.name)
    validate_node(cfg, "data_pruning")
    for name in cfg.metrics:  # each optional metric's node (metrics.regions, ...), by its type
        if cfg.metrics._get_node(name)._is_none():  # `metrics.X=null` skipped its checks, ran as disabled, changed the run id
            allowed = f"a mapping of the metric's options (null is no off switch: metrics.{name}.enabled=false)"
            check(False, f"metrics.{name}", None, allowed)
        typed = OmegaConf.get_type(cfg.metrics._get_node(name))
        if isinstance(typed, type) and dataclasses.is_dataclass(typed):
            validate_node(cfg, f"metrics.{name}", typed)
    check_signed_zeros(cfg)  # after the nodes' own checks: a fraction's refusal says more
    _validate_allocation_structure(cfg, schedule)
    _check_model_against_data(cfg)
    check_data_sizes(cfg)
    if cfg.device == "cuda" and checks_this_machine():  # a SLURM sweep's jobs check it on their nodes
        import torch

        check(torch.cuda.is_available(), "device", "cuda", "auto or cpu on this machine", "torch.cuda.is_available() is False here.")
    validate_node(cfg, "accel", AccelConfig)  # after the device: what the device supports
