"""Config errors that Hydra finds while it composes the config, as prune-cli config errors.

Hydra rejects a value of the wrong type (`train.epochs=abc`), a key no schema has when it is given
without `+` (`train.epoch=5`), an option that does not exist (`model=nope`) and an override its
grammar cannot parse (`train.epochs=[1`) before the pre-run pass sees the config. Its message names
the key, but it exits with status 1, the status of a crash; every other config error exits with 2
(docs/robustness.md). `prune_cli/cli.py` catches these errors and reports them through `as_config_error`:
one `prune-run: error:` line naming the key, the value and what is allowed, then exit 2.

What is allowed comes from the schema the value was merged into: the type of the field in its
dataclass (prune_cli/core/config_base.py and each plugin's config class), the fields of that
dataclass for an unknown key, the options of the config group for a missing option.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, OmegaConfBaseException

from ..core.errors import ConfigError, PruneCliError, UnknownKeyError

# What Hydra raises for a config it cannot compose (MissingConfigException is a ConfigCompositionException).
COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException)

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"

# (one value, several values) in words, for the types config fields are declared with.
_WORDS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
    str: ("a string", "strings"),
}


def describe_type(tp: Any) -> str:
    """What a value of a field declared `tp` may be, in words ("an integer", "a list of numbers or null")."""
    if tp in _WORDS:
        return _WORDS[tp][0]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(m.name for m in tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__}'s options"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        kinds = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in args else "")
    if origin in (list, tuple) or tp in (list, tuple):
        inner = args[0] if args else None
        example = "[a,b]" if inner is str else "[true,false]" if inner is bool else "[1,2]"
        return f"a list of {_WORDS[inner][1]}, e.g. {example}" if inner in _WORDS else "a list, e.g. [a,b]"
    if origin is dict or tp is dict:
        return "a mapping, e.g. {a: 1}"
    return f"a value of type {getattr(tp, '__name__', tp)}"


INTERPOLATION_ALLOWED = (
    "a value, or an interpolation that resolves: ${other.key} naming a key of the config that does not refer back "
    "to this one, ${oc.env:VAR} naming a set environment variable (or ${oc.env:VAR,default})"
)


def interpolation_error(err: InterpolationResolutionError, key: str, value: Any) -> ConfigError:
    """ConfigError for the interpolation `value` of `key` that OmegaConf could not resolve (`err`)."""
    reason = str(err.msg if err.msg is not None else err).strip().splitlines()
    return ConfigError(key, value, INTERPOLATION_ALLOWED, f"It cannot be resolved: {reason[0] if reason else type(err).__name__}.")


def unresolvable_interpolation(cfg: DictConfig, skip: tuple[str, ...] = ("hydra",)) -> ConfigError | None:
    """The first interpolation of `cfg` (outside its `skip` nodes) that cannot be resolved, as a
    ConfigError naming its dotted key and the interpolation as given; None when every one resolves."""

    def walk(node: DictConfig | ListConfig, prefix: str) -> ConfigError | None:
        if node._is_none() or node._is_missing() or node._is_interpolation():
            return None
        listed = isinstance(node, ListConfig)
        for k in range(len(node)) if listed else list(node.keys()):
            if not prefix and k in skip:
                continue
            key = f"{prefix}[{k}]" if listed else f"{prefix}.{k}" if prefix else str(k)
            child = node._get_node(k)
            if child is None:
                continue
            if child._is_interpolation():
                try:
                    node[k]
                except InterpolationResolutionError as err:
                    return interpolation_error(err, key, child._value())
            elif isinstance(child, (DictConfig, ListConfig)):
                found = walk(child, key)
                if found is not None:
                    return found
        return None

    return walk(cfg, "")


def yaml_error(err: Exception) -> PruneCliError:
    """A config file that PyYAML cannot read (`widths: [8` without its `]`), found while Hydra loads it:
    the file, the line and PyYAML's reason, instead of its traceback."""
    context, problem = getattr(err, "context", None), getattr(err, "problem", None)
    context_mark, problem_mark = getattr(err, "context_mark", None), getattr(err, "problem_mark", None)
    mark = problem_mark or context_mark
    marked = ((context, context_mark), (problem, problem_mark))
    parts = [f"{text} at line {m.line + 1}, column {m.column + 1}" for text, m in marked if text and m]
    reason = "; ".join(parts) or " ".join(str(err).split())
    where = f"Config file {mark.name}" if mark is not None and mark.name else "A config file"
    return PruneCliError(f"{where} is not valid YAML: {reason}. Fix its syntax (a list is [a, b], a mapping {{a: 1}}).")


def config_dir_error(err: Exception) -> PruneCliError:
    """Hydra's SearchPathException for a --config-dir that is not a folder, in prune-cli's words."""
    text = str(err)
    folder = text.split("'")[1] if text.count("'") >= 2 else text
    return PruneCliError(
        f"Invalid value for --config-dir: {folder!r}. Allowed: an existing folder of your config files "
        "(<group>/<option>.yaml, e.g. model/wide.yaml, or a primary config chosen with --config-name). It is not there."
    )


def _override_value(key: str, overrides: list[str]) -> str | None:
    """The text the user gave for `key` on the command line (the last override of it wins)."""
    found = None
    for arg in overrides:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~").rstrip("@") == key:
            found = value
    return found


def _override_below(key: str, overrides: list[str]) -> tuple[str, str] | None:
    """(the key typed, its value) of the last override below node `key` (`metrics.regoins.enabled=true`
    for the unknown node `metrics.regoins`), or None."""
    found = None
    for arg in overrides:
        name, sep, value = arg.partition("=")
        name = name.lstrip("+~").rstrip("@")
        if sep and name.startswith(key + "."):
            found = (name, value)
    return found


def field_type(cls: Any, name: str) -> Any:
    """The type a dataclass declares for its field `name` (None when its hints cannot be resolved)."""
    try:
        return typing.get_type_hints(cls).get(name)
    except (TypeError, NameError):
        return None


def _from_omegaconf(err: OmegaConfBaseException, overrides: list[str], where: str = "") -> PruneCliError | None:
    """The key, value and allowed values of OmegaConf's error (the cause Hydra wraps); `where`: the config
    (`model/wide`) that set the key, when Hydra names one."""
    key, cls = err.full_key, err.object_type
    in_file = f"It is set in config '{where}'." if where else ""
    if not key:
        return None
    element = re.fullmatch(r"(.+)\[(\d+)\]", key)
    if element and typing.get_origin(_without_none(err.ref_type)) in (list, tuple):
        # an element of a list field (model.widths=[16.5]): the field, the list as typed, the element at fault
        listed = element.group(1)
        return ConfigError(
            listed,
            err.value if where else _override_value(listed, overrides) or err.value,  # a file's list: its element
            f"{describe_type(err.ref_type)} ({listed} is declared {_type_name(err.ref_type)})",
            f"Element {element.group(2)} ({err.value!r}) is not one. {in_file}".strip(),
        )
    value = err.value if err.value is not None else _override_value(key, overrides)
    fields = [f.name for f in dataclasses.fields(cls)] if isinstance(cls, type) and dataclasses.is_dataclass(cls) else []
    if isinstance(err, (ConfigAttributeError, ConfigKeyError)) and fields:
        leaf, parent = key.rsplit(".", 1)[-1], key.rsplit(".", 1)[0] + "." if "." in key else ""
        close = [parent + c for c in difflib.get_close_matches(leaf, fields, n=3, cutoff=0.6)]
        given = _override_below(key, overrides) if err.value is None else None
        if given is not None:  # the unknown key is a node the override reaches into: name what was typed
            typed, value = given
            close = [c + typed[len(key) :] for c in close]
            key = typed
        return UnknownKeyError(key, value, sorted(fields), close, where if given is None else "")
    declared = field_type(cls, err.key) if fields else None
    if declared is None:
        return None
    allowed = f"{describe_type(declared)} ({cls.__name__}.{err.key} is declared {_type_name(declared)})"
    return ConfigError(key, value, allowed, in_file)


def _without_none(tp: Any) -> Any:
    """`list[int]` for `Optional[list[int]]` (an optional list field's elements are checked like a list's)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(tp) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else tp
    return tp


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


# The plugin kind (prune_cli/core/plugins.py DECORATOR_KINDS) whose name a config group's option is, where the
# two differ: `method=taylor` chooses the score registered as "taylor" (@register_score), whose options are its
# @config_schema("method", "taylor"). The other groups' options are plugins of the group's own name (dataset,
# model, schedule, data_pruning); allocations and structures are values of method.allocation and
# method.structure, not groups, and their options come with their decorator (options=), never a schema.
GROUP_KINDS = {"method": "score"}


def _no_schema_hint(group: str, option: str) -> str:
    """When a plugin registers `option` as a `group` plugin but no schema declares it (so Hydra has no
    option to compose): say so, instead of listing options that do not include it."""
    from ..core import plugins

    from ..core.paths import configs_dir

    kind = GROUP_KINDS.get(group, group)
    module = plugins.index().kinds.get((kind, option))
    if module is None or option in plugins.schema_names(group) or (configs_dir() / group / f"{option}.yaml").is_file():
        return ""  # a YAML option (method=magnitude: configs/method/magnitude.yaml on schema method/base) has one
    return (
        f"Plugin module {module} registers {kind} '{option}', but no schema declares it: add a dataclass "
        f"decorated @config_schema('{group}', '{option}') to that module (docs/architecture.md, Plugins)."
    )


# The config groups whose options outside plugin modules can add (@config_schema, docs/architecture.md "Plugins").
PLUGIN_GROUPS = ("dataset", "model", "method", "schedule", "data_pruning")


def _outside_plugin_hint(group: str, option: str, options: list[str], overrides: list[str]) -> str:
    """An option no module prune-run indexed declares may be an outside plugin's whose module was not
    given: the check of `plugins` (prune_cli/run/prevalidate.py) that says a config file cannot add plugin
    modules is never reached, since composition fails first (a preset with `plugins: [my_lab.taylor]` and
    `override /method: taylor` was told only the built-in options). Not where the option is close to one
    that exists (`method=magnitde`: a typo, named as such) or where `plugins=` is on the command line
    already (its modules' options are among those allowed). The "Did you mean" of a close option is for every
    group (docs audit of 2026-12-03: `metrics=ful`, `+experiment=lotery_ticket`, `hydra/launcher=paralel` got
    none); the outside-plugin hint only for the groups plugins add options to."""
    close = difflib.get_close_matches(option, options, n=2, cutoff=0.75)
    if close:
        added = "+" if any(o.startswith(f"+{group}=") for o in overrides) else ""
        return "Did you mean " + " or ".join(f"'{added}{group}={c}'" for c in close) + "?"
    if group not in PLUGIN_GROUPS or any(o.lstrip("+").partition("=")[0] == "plugins" for o in overrides):
        return ""
    return (
        f"An outside plugin's option is found only when its module is given on the command line "
        f"(prune-run plugins=[my_lab.module] {group}={option}): a config file cannot add plugin modules "
        "(docs/architecture.md, Plugins)."
    )


# The launcher options the [cluster] extra's plugins add to Hydra's group under their own names.
PLUGIN_LAUNCHERS = ("submitit_local", "submitit_slurm", "joblib")
LAUNCHER_PLUGINS = "hydra/launcher/"
CLUSTER_EXTRA = (
    'pip install "prune-cli[cluster]" (pip install -e ".[cluster]" in a checkout) installs the pinned '
    "joblib (parallel) and submitit (slurm, submitit_local) launchers."
)  # configs of Hydra's launcher plugins (the [cluster] extra)


# Config groups under configs/ that are not prune-run's: `expected` holds prune-report's reference numbers
# (`prune-report --expect`, docs/report.md); `--help` does not list it (hydra_patches.py).
NOT_PRUNE_RUN_GROUPS = ("expected",)


def _other_tool_s_group(overrides: list[str]) -> ConfigError | None:
    """An override choosing an option of a group that is not prune-run's (`+expected=expect_mnist1d`)."""
    from ..core.paths import configs_dir

    for arg in overrides:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if sep and group in NOT_PRUNE_RUN_GROUPS:
            presets = sorted(p.stem for p in (configs_dir() / group).glob("*.yaml"))
            use = value if value in presets else "<" + " | ".join(presets) + ">"
            return ConfigError(
                group,
                value,
                "nothing: prune-run has no such group",
                f"configs/{group}/ holds prune-report's presets: use `prune-report --expect {use}` on the results.",
            )
    return None


def as_config_error(err: Exception, overrides: list[str]) -> PruneCliError:
    """A prune-cli error for one of Hydra's COMPOSITION_ERRORS: ConfigError (key, value, allowed)
    where Hydra's error says which key, otherwise Hydra's own message."""
    other = _other_tool_s_group(overrides)
    if other is not None:
        return other
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        if group:
            hint = _no_schema_hint(group, option) or _outside_plugin_hint(group, option, list(err.options), overrides)
            if group == "hydra/launcher" and option in PLUGIN_LAUNCHERS:  # a plugin's own option, plugin absent
                hint = f"{option} is an option of a Hydra launcher plugin that is not installed: {CLUSTER_EXTRA}"
            return ConfigError(
                group,
                option,
                "one of " + ", ".join(err.options) + f" (the options of config group '{group}')",
                hint,
            )
    if isinstance(err, MissingConfigException) and str(err.missing_cfg_file or "").startswith(LAUNCHER_PLUGINS):
        chosen = next((o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("hydra/launcher=")), "")
        return ConfigError(
            "hydra/launcher",
            chosen or str(err.missing_cfg_file).rpartition("/")[2],
            "a launcher whose Hydra plugin is installed",
            f"Hydra cannot load {err.missing_cfg_file}, the plugin config this launcher builds on: {CLUSTER_EXTRA}",
        )
    if isinstance(err, OverrideParseException) and err.override:
        key, sep, value = str(err.override).partition("=")
        reason = str(err.message).splitlines()[0] if err.message else "it does not parse"
        return ConfigError(
            key.lstrip("+~") if sep else str(err.override),
            value if sep else str(err.override),
            f"a value in Hydra's override grammar ({GRAMMAR}): a number, a string (quoted if it holds "
            "special characters), a list [a,b], or a sweep a,b with -m",
            f"Hydra cannot parse the override {err.override!r}: {reason}.",
        )
    deleted = re.match(r"Could not delete from config\. '([^']+)' does not exist\.", str(err))
    if deleted:  # `~hydra.job.env_set.OMP_NUM_THREADS` with a launcher config that sets none
        return _nothing_to_delete(deleted.group(1), overrides)
    # Hydra raises a config file's error (a key or value set in `model/wide.yaml`) without `from`: its
    # OmegaConf error is the context, and Hydra's message names the file ("In 'model/wide': ...").
    cause = err.__cause__ if err.__cause__ is not None else err.__context__
    if isinstance(cause, OmegaConfBaseException):
        named = re.match(r"In '([^']+)':", str(err))
        found = _from_omegaconf(cause, overrides, named.group(1) if named else "")
        if found is not None:
            return found
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(cause, OmegaConfBaseException) and cause.msg:
        text += " " + " ".join(line.strip() for line in str(cause.msg).splitlines() if line.strip())
    return PruneCliError(text or type(err).__name__)


def _nothing_to_delete(key: str, overrides: list[str]) -> ConfigError:
    """A deletion (`~key`, only of Hydra's own settings: prune_cli/run/override_checks.py) of a key that the
    chosen configs do not set."""
    typed = next((o for o in overrides if o.startswith("~") and o[1:].partition("=")[0] == key), f"~{key}")
    hint = ""
    if key == "hydra.job.env_set.OMP_NUM_THREADS":
        hint = (
            "Only hydra/launcher=slurm sets OMP_NUM_THREADS per job; without it, threads=auto gives each run its share "
            "of the usable CPUs (a local parallel sweep's per-job share included), and threads=N sets a number."
        )
    return ConfigError(
        key, typed, f"a deletion of a key the chosen configs set: none sets {key}, so there is nothing to delete; leave it out", hint
    )
