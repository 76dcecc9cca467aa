"""Command-line overrides that Hydra accepts but that would change or mislabel an experiment silently.

Checked on `prune-run`'s arguments before Hydra composes anything, so a rejected override exits 2 with
one line and creates nothing (docs/robustness.md, "Bad input"):

- a key given twice with two values (`sparsity=0.5 ... sparsity=0.8`): Hydra keeps the last one without
  a word, so a forgotten earlier value changes the run; one value per key (a sweep is
  `-m sparsity=0.5,0.8`); the same value twice changes nothing and passes; a dict value sets each of
  its keys (`train.epochs=2 train={epochs:3}` gives train.epochs twice);
- a deletion (`~dense_cache`, `~method`): every key of prune-cli's config has a schema and a default,
  and code that finds a key missing either falls back to that default unseen or fails after the
  run directory exists; a key is set, never deleted (Hydra's own `~hydra.*` settings excepted: deleting
  one that no chosen config sets is named as such, prune_cli/run/composition_errors.py);
- `<group>.name=X` for a group whose option is chosen by name (`method.name=snip`): it relabels the
  option without choosing it (a magnitude run recorded as snip) or leaves the schema of one option
  under another's name; the option is chosen with `<group>=X`;
- a config group given something other than one option's name (`method=null`, `model=123`,
  `method=[magnitude,random]`, or such a value in a sweep): Hydra stops on null, numbers and booleans
  with a ValueError traceback, and composes a list as several options merged, the last one winning;
- a sweep over a Hydra config group (`hydra/launcher=parallel,slurm`): Hydra runs the whole sweep with
  one launcher and drops the other values, a misspelt one included (Hydra refuses sweeps over its
  `hydra.*` keys, but not over its groups);
- a sweep over `results_dir`: Hydra resolves the sweep's folder with the default results_dir, so the
  sweep's runs/multirun.yaml went to ./results (overwriting one there) while the runs went elsewhere;
- a value for `hydra.sweeper.params` (a traceback inside Hydra when no preset sets it): a sweep on the
  command line is its values given directly, `-m seed=0,1`.
"""

from __future__ import annotations

import contextlib
import functools
import io

from ..core.errors import ConfigError, PruneCliError

# Groups whose option (its YAML, its schema and its code) is chosen by `<group>=<option>`; the option's
# `name` is its own label, set by its YAML.
NAMED_GROUPS = ("dataset", "model", "method", "schedule", "data_pruning")
ENV_SET = "hydra.job.env_set."  # environment variables a launcher sets for each job: strings only


def _parsed(args: list[str]):
    """Hydra's argument parser's reading of `args`; None when it does not parse (`--version`, which
    argparse prints and exits on, and a malformed flag are Hydra's parser's to report)."""
    from hydra._internal.utils import get_args_parser

    try:  # quietly
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return get_args_parser().parse_known_args(args)[0]
    except SystemExit:
        return None


def _overrides(args: list[str]) -> list:
    """Hydra's parse of the override arguments among `args` (its own argument parser and override
    grammar); nothing when they do not parse: Hydra reports that itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known = _parsed(args)
    if known is None:
        return []
    try:
        return OverridesParser.create().parse_overrides(list(known.overrides or []))
    except Exception:  # noqa: BLE001 - an override Hydra cannot parse: reported by Hydra's path (exit 2)
        return []


def check_overrides(args: list[str]) -> None:
    """Raise ConfigError for the first override among `args` that repeats a key with another value,
    deletes a key, sets a named group's `name`, or gives an environment variable a value that is not
    text; or PruneCliError for `--experimental-rerun`."""
    known = _parsed(args)
    if known is not None and known.experimental_rerun is not None:
        # Hydra reruns a job from the config.pickle its PickleJobInfoCallback writes; prune-run does not
        # install that callback, so no run directory has one (it failed with Hydra's traceback)
        raise PruneCliError(
            f"--experimental-rerun {known.experimental_rerun}: prune-run does not support Hydra's experimental rerun "
            "(its runs save no config.pickle). To run an experiment again, repeat its command (the overrides are in "
            "the run directory's .hydra/overrides.yaml): a finished run is kept, an unfinished one resumes from state.pt"
        )
    seen: dict[str, tuple] = {}  # key -> (the override as typed, its value as typed or None, its value parsed)
    for override in _overrides(args):
        key = override.get_key_element().lstrip("+~")
        text = override.input_line or key
        if not override.key_or_group:  # `=0.5`: Hydra's defaults list failed on it with a ValueError traceback
            raise PruneCliError(
                f"Invalid override {text!r}: it names no key before '='; an override is key=value (sparsity=0.5), "
                "+key=value to add a key, or group=option (model=mlp)"
            )
        value = text.partition("=")[2]
        if override.is_delete() and not key.startswith("hydra"):
            raise ConfigError(
                key,
                text,
                f"a value: prune-cli does not delete config keys; set {key} to the value you want, or leave it out for its default",
            )
        if (
            key.startswith(ENV_SET)
            and not override.is_sweep_override()
            and not override.is_delete()
            and not isinstance(override.value(), str)
        ):
            raise ConfigError(
                key,
                value,
                f"a quoted string: environment variables hold text, and Hydra reads {value} as "
                f"{type(override.value()).__name__} (the job would fail inside the launcher); write ++{key}='2' "
                "(++: whether or not the launcher's config sets it)",
            )
        _check_group_value(override, key, value)
        _check_not_sweeper_params(override, key, value)
        if key.startswith("hydra/") and override.is_sweep_override() and not _one_choice(override):
            raise ConfigError(
                key,
                value,
                f"one option per sweep: Hydra runs the whole sweep with one {key.partition('/')[2]} and drops the other "
                "values without a word (a misspelt one included); run one sweep per option",
            )
        if key == "results_dir" and override.is_sweep_override():
            raise ConfigError(
                key,
                value,
                "one folder per sweep: a sweep keeps its record (runs/multirun.yaml, the end-of-sweep summary) in "
                "the results_dir it starts with, which a sweep over results_dir would leave in ./results; run one "
                "sweep per results_dir",
            )
        parsed = None if override.is_sweep_override() or override.is_delete() else override.value()
        # a dict value sets each of its keys (`train={epochs:3}` sets train.epochs): they count as typed
        given = _leaves(key, parsed) if isinstance(parsed, dict) else [(key, value, parsed)]
        for one, _, as_value in given:  # `method={name:snip}` relabels as `method.name=snip` does
            group, _, leaf = one.partition(".")
            if group in NAMED_GROUPS and leaf == "name":
                label = value if one == key else as_value
                raise ConfigError(
                    one,
                    label,
                    f"no override: {one} is the label its option's YAML sets; choose the option itself with "
                    f"{group}={label} (prune-run --help lists the options of each group)",
                )
        for one, as_text, as_value in given:
            if one in seen and _differ(seen[one][1:], (as_text, as_value)):
                prefix = text[: len(text) - len(text.lstrip("+~"))]  # `+experiment` is swept as typed
                hint = f" (a sweep over values is -m {prefix}{one}=a,b)"
                if one == "results_dir":
                    hint = ""
                elif one == "experiment":  # a preset carries its own sweep, which a sweep over presets would drop
                    hint = " (one preset per command; a preset's own sweep runs with -m +experiment=NAME)"
                raise ConfigError(one, f"{seen[one][0]} and then {text}", f"one value per key: give {one} once{hint}")
            seen[one] = (text, as_text, as_value)


def _one_choice(override) -> bool:
    """A sweep of a single value (`choice(parallel)`): nothing for Hydra to drop."""
    from hydra.core.override_parser.types import ChoiceSweep

    given = override.value()
    return isinstance(given, ChoiceSweep) and len(given.list) == 1


SWEEPER_PARAMS = "hydra.sweeper.params"


def _check_not_sweeper_params(override, key: str, value: str) -> None:
    """`hydra.sweeper.params` set on the command line (`+hydra.sweeper.params={seed:'0,1'}`,
    `hydra.sweeper.params.seed='0,1'`): the node is null unless a config file (a preset) sets its sweep
    there, and Hydra failed with OmegaConf's AttributeError or its own AssertionError traceback. A sweep
    typed on the command line is its values given directly (`-m seed=0,1`), which also replace a preset's
    values for the same key (docs/report.md, "Experiment presets"): one way to type a sweep. Only
    `hydra.sweeper.params=null` (run a preset without its own sweep) and deletions
    (`~hydra.sweeper.params.seed`: one dimension of it) are kept: they set no value."""
    if (key != "hydra" and not key.startswith("hydra.")) or override.is_delete():
        return  # `~hydra.sweeper.params.seed` drops a dimension of a preset's sweep: it sets no value
    parsed = None if override.is_sweep_override() else override.value()
    given = _leaves(key, parsed) if isinstance(parsed, dict) else [(key, value, parsed)]
    if not any(one == SWEEPER_PARAMS or one.startswith(SWEEPER_PARAMS + ".") for one in (key, *(g[0] for g in given))):
        return
    if key == SWEEPER_PARAMS and parsed is None and not override.is_sweep_override():
        return  # hydra.sweeper.params=null
    typed = [
        f"{one.removeprefix(SWEEPER_PARAMS + '.')}={as_value if isinstance(as_value, str) else text or as_value}"
        for one, text, as_value in given
        if one.startswith(SWEEPER_PARAMS + ".")
    ]
    raise ConfigError(
        key,
        value,
        "no command-line value: hydra.sweeper.params is where a config file (a preset) keeps its sweep; on the "
        f"command line give the values to sweep directly, -m {' '.join(typed) or 'seed=0,1'} (they also replace a preset's "
        "values for the same key; hydra.sweeper.params=null runs a preset without its own sweep)",
    )


@functools.lru_cache(maxsize=1)
def _config_groups() -> frozenset[str]:
    """The config groups of prune-cli's configs (a folder of option YAMLs: `method`, `hydra/launcher`,
    ...), and Hydra's own launcher group."""
    from ..core.paths import configs_dir

    root = configs_dir()
    found = {str(d.relative_to(root)) for d in root.rglob("*") if d.is_dir() and any(d.glob("*.yaml"))}
    return frozenset(found | {"hydra/launcher"})


def _check_group_value(override, key: str, value: str) -> None:
    """ConfigError where a config group is given anything but option names (one, or a sweep of them)
    or a dict of its keys."""
    if "." in key or override.is_delete() or key not in _config_groups():
        return
    from hydra.core.override_parser.types import ChoiceSweep, Glob

    given = override.value()
    if isinstance(given, Glob):
        return  # glob(...) matches option names
    if override.is_sweep_override() and not isinstance(given, ChoiceSweep):
        shown = "a range() or interval() sweep gives numbers, never option names"  # range(0,2)
    else:
        values = given.list if isinstance(given, ChoiceSweep) else [given]
        # a dict sets keys of the group's node (`train={epochs:3}`), which Hydra composes as such
        bad = next((v for v in values if not isinstance(v, (str, dict))), _NONE)
        if bad is _NONE:
            return
        text = "null" if bad is None else str(bad).lower() if isinstance(bad, bool) else str(bad)
        shown = f"{text} ({type(bad).__name__}) is not one"
    raise ConfigError(
        key,
        value,
        f"an option name of the config group '{key}' ({key}=<option>, or -m {key}=a,b for a sweep; "
        f"prune-run --help lists them): {shown}",
    )


_NONE = object()


def _leaves(key: str, value: dict) -> list[tuple[str, None, object]]:
    """(dotted key, no text, value) of every key a dict override sets."""
    found = []
    for name, leaf in value.items():
        if isinstance(leaf, dict):
            found += _leaves(f"{key}.{name}", leaf)
        else:
            found.append((f"{key}.{name}", None, leaf))
    return found


def _differ(a: tuple, b: tuple) -> bool:
    """Whether two values of one key differ: as typed when both were typed alone (`sparsity=0.5` twice
    passes), as parsed when one came from a dict override."""
    if a[0] is not None and b[0] is not None:
        return a[0] != b[0]
    return a[1] != b[1]


def last_value_wins(args: list[str]) -> list[str]:
    """`args` with each override key once, at its first place, holding its last value: for a script
    that adds a user's overrides to its own (`scripts/*.py ... train.epochs=10`), where the later
    value is meant to replace the earlier (prune-run itself rejects a key given two values)."""

    def key(arg: str) -> str | None:
        return arg.split("=", 1)[0].lstrip("+") if "=" in arg and not arg.startswith("-") else None

    last = {key(a): a for a in args if key(a) is not None}
    kept, seen = [], set()
    for arg in args:
        k = key(arg)
        if k is None:
            kept.append(arg)
        elif k not in seen:
            seen.add(k)
            kept.append(last[k])
    return kept
