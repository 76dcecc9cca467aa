"""Plugin discovery without importing: which module provides which score, allocation, structure,
schedule, dataset, model, metric and config schema.

A plugin is one module that declares what it provides with literal names on its decorators
(docs/architecture.md, "Plugins"):

    @config_schema("method", "taylor")          # the option's config dataclass
    @register_score("taylor", options=...)       # the function, under one or more names

The index reads those decorators from the source text (one regular-expression pass per file, no
import; the names may be wrapped onto the lines after the decorator's parenthesis), so start-up
costs a few milliseconds however many plugins exist, and a plugin's module (with its heavy
dependencies: scipy, torchvision, matplotlib) is imported only when a config chooses one of its
names (`Registry.get`, `schema`). Three places are scanned:

- the built-in plugin packages of prune-cli (data, data/pruning, models, pruning/scores, pruning/allocations,
  pruning/structures, pruning/train_time, schedules, metrics) and the schemas of training.py;
- the modules given on the command line, `prune-run plugins=[my_lab.scores]` (`add_modules`);
- the modules named by installed packages in the `prune_cli.plugins` entry-point group. One that cannot be
  indexed (a missing module, a package whose `__init__.py` raises, a clash with a built-in name) is skipped
  with a warning naming the entry point and its distribution, never refused (`_add_entry_points`).

In a module from outside prune-cli only the lines that are decorators of its syntax tree count (`_decorators`):
a docstring's example `@register_score("magnitude")` declares nothing.

Adding a plugin therefore edits no existing file. This module imports nothing from the package.

Options of an allocation or a structure. Such a plugin declares its own `method.<option>` keys in
its file, as a dataclass passed to its decorator:

    @dataclass
    class FcFracOptions:
        fc_keep: float = 1.0                     # becomes method.fc_keep
        @staticmethod
        def check(cfg, key): ...                 # as any schema's check (key = "method")

    @register_allocation("fc_frac", options=FcFracOptions)

Every method schema carries the options of every indexed allocation and structure
(`with_plugin_options`), so Hydra types and checks them when the config
is composed, whichever allocation an override chooses. Their names, types and defaults are read
from the source here, without importing the plugin (`plugin_options`): the class's annotated fields,
each with a literal default (or `field(default_factory=lambda: <literal>)`), its bases found in the
same file or imported by name (`from ..structure import GroupNormOptions`), and its literal class
attributes (`exclusive`, `in_every_run_id`). When the module is imported, its registration checks
that the class has exactly the fields read here.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .file_digest import tree_digest

PACKAGE = Path(__file__).resolve().parent.parent  # prune_cli/
# Built-in plugin folders (relative to prune_cli/) and the dotted package each one is.
BUILTIN_DIRS = (
    "data",
    "data/pruning",
    "models",
    "pruning/scores",
    "pruning/allocations",
    "pruning/structures",
    "pruning/train_time",
    "schedules",
    "metrics",
)
BUILTIN_FILES = ("training.py",)  # not a plugin folder, but declares the train schema
ENTRY_POINT_GROUP = "prune_cli.plugins"
# The command line's `plugins=[...]` modules, for the processes a launcher starts (joblib's workers,
# SLURM jobs): they compose their job before prune-run's task function runs, from the environment
# the launching process gave them (`pass_to_launched_processes`).
LAUNCHED_ENV = "_PRUNE_CLI_COMMAND_LINE_PLUGINS"

# The decorator that declares each kind. `X.register` forms are accepted too.
DECORATOR_KINDS = {
    "register_score": "score",
    "SCORES.register": "score",
    "register_allocation": "allocation",
    "ALLOCATIONS.register": "allocation",
    "register_structure": "structure",
    "STRUCTURES.register": "structure",
    "register_schedule": "schedule",
    "SCHEDULES.register": "schedule",
    "register_dataset": "dataset",
    "DATASETS.register": "dataset",
    "register_model": "model",
    "MODELS.register": "model",
    "register_data_pruning": "data_pruning",
    "DATA_PRUNING.register": "data_pruning",
    "register_train_hook": "train_hook",
    "TRAIN_HOOKS.register": "train_hook",
    "register_metric": "metric",
    "METRICS.register": "metric",
}
_DECORATOR = re.compile(r"^[ \t]*@[ \t]*([\w.]+)[ \t]*\((.*)$", re.M)
_LITERAL = re.compile(r"""\s*(['"])([A-Za-z0-9_.+-]+)\1\s*(,|\))""")


def _literal_names(args: str) -> list[str]:
    """The leading string literals of a decorator's argument text: `"gp", "gm", options=X)` -> [gp, gm]."""
    names = []
    while True:
        m = _LITERAL.match(args)
        if not m:
            return names
        names.append(m.group(2))
        if m.group(3) != ",":
            return names
        args = args[m.end() :]


# Kinds whose plugins may declare their own method options (`options=<dataclass>` on the decorator).
OPTION_KINDS = ("allocation", "structure")
_OPTIONS_ARG = re.compile(r"\boptions\s*=\s*([A-Za-z_]\w*)\s*[,)]")


def _call_text(args: str) -> str:
    """The argument text of a decorator call up to its closing parenthesis (string literals skipped)."""
    depth, i, quote = 1, 0, None
    while i < len(args):
        c = args[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return args[: i + 1]
        i += 1
    return args


@functools.lru_cache(maxsize=64)
def _decorator_lines(source: str) -> frozenset[int] | None:
    """The line numbers of the real decorators of `source` (its syntax tree), or None where it does not parse
    (its import then fails, named by `import_plugin`)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    nodes = (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
    return frozenset(d.lineno for n in nodes for d in n.decorator_list)


def _decorators(source: str, outside: bool):
    """The decorator lines `_DECORATOR` finds in `source`. For a module from outside prune-cli (`outside`), only
    those that are decorators of its syntax tree: a docstring's example line `    @register_score("magnitude")`
    was indexed as a declaration, and the module refused as redeclaring the built-in score. prune-cli's own
    modules keep the one regular-expression pass (parsing every built-in file would cost tens of milliseconds
    at every start; their docstrings show decorators unindented in prose, and tests/test_plugins.py checks the
    index against what they register)."""
    lines = _decorator_lines(source) if outside else None
    for m in _DECORATOR.finditer(source):
        if lines is None or source.count("\n", 0, m.start()) + 1 in lines:
            yield m


def option_declarations(source: str, outside: bool = False) -> list[tuple[str, str, str]]:
    """[(kind, name, options class name)] of the allocations and structures `source` registers with
    `options=<ClassName>` (`outside`: see `_decorators`)."""
    found = []
    for m in _decorators(source, outside):
        short = m.group(1).rsplit(".", 2)
        short = ".".join(short[-2:]) if m.group(1).endswith(".register") else short[-1]
        kind = DECORATOR_KINDS.get(short)
        if kind not in OPTION_KINDS:
            continue
        args = _call_text(source[m.start(2) : m.start(2) + 2000])
        options = _OPTIONS_ARG.search(args)
        if options:
            found += [(kind, n, options.group(1)) for n in _literal_names(args)]
    return found


def declarations(source: str, outside: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(kind, name)], [(schema group, name)]) declared by the decorator lines of `source` (`outside`: a
    module from outside prune-cli, see `_decorators`)."""
    kinds, schemas = [], []
    for m in _decorators(source, outside):
        decorator = m.group(1)
        args = source[m.start(2) : m.start(2) + 500]  # the names may follow on the next lines (a formatter's wrap)
        short = decorator.rsplit(".", 2)
        short = ".".join(short[-2:]) if decorator.endswith(".register") else short[-1]
        names = _literal_names(args)
        if short == "config_schema" and len(names) == 2:
            schemas.append((names[0], names[1]))
        elif short in DECORATOR_KINDS:
            kinds += [(DECORATOR_KINDS[short], n) for n in names]
    return kinds, schemas


@dataclass
class PluginIndex:
    """(kind, name) -> module and (schema group, name) -> module, built by scanning source files."""

    kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    schemas: dict[tuple[str, str], str] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)  # modules added with plugins=[...] or entry points
    # module -> "entry point `x = my_lab.scores` of distribution my-lab", for the modules entry points name
    entry_points: dict[str, str] = field(default_factory=dict)
    # (allocation | structure, name) -> (module, its file, the options class named on its decorator)
    options: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)

    def scan_file(self, path: Path, module: str) -> None:
        source = path.read_text(encoding="utf-8")
        outside = not _built_in(module)
        kinds, schemas = declarations(source, outside)
        for table, keys in ((self.kinds, kinds), (self.schemas, schemas)):  # every clash first: a refused module adds nothing
            for key in keys:
                self._clash(table, key, module)
        for table, keys in ((self.kinds, kinds), (self.schemas, schemas)):
            table.update(dict.fromkeys(keys, module))
        for kind, name, cls in option_declarations(source, outside):
            self.options[(kind, name)] = (module, str(path), cls)

    @staticmethod
    def _clash(table: dict, key: tuple[str, str], module: str) -> None:
        old = table.get(key)
        if old is not None and old != module:
            kind, name = key
            raise ConfigError(
                "plugins",
                module,
                f"modules that do not redeclare a built-in or already loaded name: {kind} '{name}' is declared by {old} too",
            )


def _built_in(module: str) -> bool:
    return module == "prune_cli" or module.startswith("prune_cli.")


def _find_spec(module: str):
    """`importlib.util.find_spec(module)`, which imports its parent packages. A package whose `__init__.py`
    raises something else than ImportError (a RuntimeError, a SyntaxError) is named, not a traceback: it
    escaped as one from prune-run's indexing (exit 1), and from every command where an entry point named it."""
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        raise
    except Exception as err:
        raise ConfigError(
            "plugins",
            module,
            f"a module that imports (finding {module} imports its package, which raised {type(err).__name__}: {err})",
        ) from err


def _module_file(module: str) -> Path:
    """The source file of `module`, found without importing it (its parent packages are imported)."""
    try:
        spec = _find_spec(module)
    except (ImportError, ValueError) as err:
        spec, reason = None, str(err)
    else:
        reason = "no such module"
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ConfigError(
            "plugins", module, "importable Python modules (a dotted name on sys.path, e.g. my_lab.scores)", f"{module}: {reason}"
        )
    return Path(spec.origin)


_INDEX: PluginIndex | None = None


def index() -> PluginIndex:
    """The index of the built-in plugins and the installed entry points (built once per process)."""
    global _INDEX
    if _INDEX is None:
        idx = PluginIndex()
        for rel in BUILTIN_DIRS:
            folder = PACKAGE / rel
            dotted = "prune_cli." + rel.replace("/", ".")
            for path in sorted(folder.glob("*.py")):
                if path.stem != "__init__":  # a package's __init__ holds the registry, not plugins
                    idx.scan_file(path, f"{dotted}.{path.stem}")
        for rel in BUILTIN_FILES:
            idx.scan_file(PACKAGE / rel, "prune_cli." + rel.removesuffix(".py").replace("/", "."))
        _INDEX = idx
        _add_entry_points()
        add_modules((m for m in os.environ.get(LAUNCHED_ENV, "").split(",") if m), must_declare=False)  # checked by the parent
    return _INDEX


def pass_to_launched_processes(modules: list[str]) -> None:
    """Name the command line's plugin modules in the environment of every process started from here."""
    if modules:
        os.environ[LAUNCHED_ENV] = ",".join(modules)
    else:
        os.environ.pop(LAUNCHED_ENV, None)


def _entry_point_modules() -> dict[str, str]:
    """module -> what names it: "entry point `x = my_lab.scores` of distribution my-lab" (the first, where
    several entry points name one module)."""
    from importlib.metadata import entry_points

    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        name = (dist.name if dist is not None else None) or "(unknown)"
        found.setdefault(ep.value.split(":")[0].strip(), f"entry point `{ep.name} = {ep.value}` of distribution {name}")
    return dict(sorted(found.items()))


# Digests of the skipped entry points' warnings already said, so that the processes a launcher starts do not say them again.
ENTRY_POINTS_SAID_ENV = "_PRUNE_CLI_SKIPPED_ENTRY_POINTS_SAID"


def _add_entry_points() -> None:
    """Index the modules of the `prune_cli.plugins` entry points. One that cannot be indexed (its module is
    missing, its package raises on import, it redeclares a built-in name) is skipped with a warning on stderr
    naming the entry point and its distribution, not refused: the installed package is not part of the
    command, and refusing it stopped every command (`--help` included) until it was uninstalled, with a
    message blaming the `plugins` key the user never set. Its names are then unknown, as if not installed."""
    idx = index()
    skipped = []
    for module, where in _entry_point_modules().items():
        try:
            add_modules([module], must_declare=False)
        except ConfigError as err:
            skipped.append(f"{where}: {err.hint or err.allowed}")
        else:
            idx.entry_points[module] = where
    for line in skipped:
        warn_skipped_entry_point(line)


def warn_skipped_entry_point(line: str) -> None:
    """One warning on stderr for a skipped entry point (`line`: what names it and why), said once across the
    processes a launcher starts: the environment they inherit holds a digest of each line already said, so a
    worker whose installed packages differ (a SLURM node exporting the submit host's environment) still says
    the entry points it skips that the submitting process did not."""
    import hashlib
    import sys

    digest = hashlib.sha256(line.encode()).hexdigest()[:16]
    said = set(filter(None, os.environ.get(ENTRY_POINTS_SAID_ENV, "").split(",")))
    if digest in said:
        return
    os.environ[ENTRY_POINTS_SAID_ENV] = ",".join(sorted(said | {digest}))
    tail = "its plugins stay unavailable until it is fixed or uninstalled"
    print(f"prune-cli: warning: skipped the {ENTRY_POINT_GROUP} {line}; {tail}", file=sys.stderr)


def add_modules(modules, must_declare: bool = True) -> None:
    """Index plugin modules from outside the repository (`plugins=[my_lab.scores]`, entry points):
    their decorator lines are read now, the module is imported when one of its names is chosen.
    `must_declare`: a module that declares nothing is refused; it would never be imported, so listing
    it (the package `my_lab` instead of its plugin module `my_lab.scores`) did nothing, without a word.
    So are a @config_schema of a group no config reads (`_refuse_unknown_schema_groups`) and a metric
    without its schema (`_refuse_metrics_without_schema`): both declared something that could never be
    used. An installed entry point is not refused (that would stop every command until it is uninstalled):
    `_add_entry_points` skips one that any refusal here (it cannot be found, it redeclares a built-in name)
    refuses, with a warning naming it and its distribution."""
    idx = index()
    found: dict[str, Path] = {}
    declared: dict[str, tuple[list, list]] = {}  # each module's (kinds, schemas), read once for the refusals
    for module in modules:
        module = str(module)
        if module in idx.outside or module in found:
            continue
        path = _module_file(module)
        if must_declare:
            _refuse_declaring_nothing(path, module)
            declared[module] = declarations(path.read_text(encoding="utf-8"), outside=True)
            _refuse_unknown_schema_groups(declared[module][1], module)
        _refuse_built_in_yaml_options(path, module)
        _refuse_metrics_named_as_base_options(path, module)
        found[module] = path
    if must_declare:
        _refuse_metrics_without_schema(declared)
    for module, path in found.items():
        idx.scan_file(path, module)
        idx.outside.append(module)


def _refuse_declaring_nothing(path: Path, module: str) -> None:
    source = path.read_text(encoding="utf-8")
    kinds, schemas = declarations(source, outside=True)
    if kinds or schemas or option_declarations(source, outside=True):
        return
    raise ConfigError(
        "plugins",
        module,
        'modules that declare a plugin with a decorator line (@register_score("name"), @config_schema("group", '
        f'"name"), ...; docs/architecture.md, Plugins): {module} declares none ({path}); list the module that '
        "holds the decorators (e.g. my_lab.scores, not my_lab)",
    )


# The config groups an outside module's @config_schema may add an option to (docs/architecture.md, Plugins: the
# table's "its options" row). Another group name (`methods`, a typo) declared a schema nothing ever reads: the
# option then composed as unknown, with a message naming neither the module nor the misspelt group.
SCHEMA_GROUPS = ("data_pruning", "dataset", "method", "metric", "model", "schedule")


def _refuse_unknown_schema_groups(schemas: list[tuple[str, str]], module: str) -> None:
    import difflib

    for group, name in schemas:
        if group not in SCHEMA_GROUPS:
            close = difflib.get_close_matches(group, SCHEMA_GROUPS, n=1, cutoff=0.6)
            meant = f" (did you mean @config_schema('{close[0]}', '{name}')?)" if close else ""
            raise ConfigError(
                "plugins",
                module,
                f"modules whose @config_schema groups are ones a plugin adds options to ({', '.join(SCHEMA_GROUPS)}): "
                f"{module} declares @config_schema('{group}', '{name}'){meant}, which no config reads "
                "(docs/architecture.md, Plugins)",
            )


def _refuse_metrics_without_schema(sources: dict[str, tuple[list, list]]) -> None:
    """A metric runs only where `metrics.<name>.enabled` is true, a key of its @config_schema("metric", name)
    (prune_cli/metrics/__init__.py `metrics_config`, as every built-in metric declares it): a module that
    registers a metric without one (in it, in another module given with it, or already indexed) was accepted,
    and the metric could never be enabled (metrics.<name>.enabled was an unknown key naming no module)."""
    declared = set(index().schemas)
    for _, schemas in sources.values():
        declared.update(schemas)
    for module, (kinds, _) in sources.items():
        for kind, name in kinds:
            if kind == "metric" and ("metric", name) not in declared:
                raise ConfigError(
                    "plugins",
                    module,
                    f"modules whose metrics have their options' schema: {module} registers metric '{name}' but no "
                    f"@config_schema('metric', '{name}') declares its options, so metrics.{name}.enabled could never "
                    f"turn it on; add a dataclass with `enabled: bool = False` decorated @config_schema('metric', "
                    f"'{name}') (docs/architecture.md, Plugins)",
                )


def _refuse_built_in_yaml_options(path: Path, module: str) -> None:
    """A schema declared for an option prune-cli ships as YAML only (`configs/method/magnitude.yaml`,
    whose schema is `method/base`): Hydra finds the YAML first, so the plugin's schema would be silently
    ignored (the run used the YAML's options, and the plugin's own field was an unknown key)."""
    from .paths import configs_dir

    _, schemas = declarations(path.read_text(encoding="utf-8"), outside=True)
    for group, name in schemas:
        yaml = configs_dir() / group / f"{name}.yaml"
        if (group, name) not in index().schemas and yaml.exists():
            raise ConfigError(
                "plugins",
                module,
                f"modules that do not redeclare a built-in or already loaded name: schema {group} '{name}' is the "
                f"built-in option configs/{group}/{name}.yaml (choose another name)",
            )


def base_metrics_options() -> tuple[str, ...]:
    """The always-on options of `metrics` (BaseMetricsConfig's fields: splits, per_class, layers)."""
    from .config_base import BaseMetricsConfig

    return tuple(f.name for f in dataclasses.fields(BaseMetricsConfig))


def metric_named_as_base_option(module: str, name: str) -> ConfigError:
    return ConfigError(
        "plugins",
        module,
        f"modules that do not redeclare a built-in or already loaded name: schema metric '{name}' is the built-in "
        f"option metrics.{name} (the always-on options: {', '.join(base_metrics_options())}; choose another name)",
    )


def _refuse_metrics_named_as_base_options(path: Path, module: str) -> None:
    """A metric schema named after an always-on option (`@config_schema("metric", "layers")`) replaced that
    option's field in the metrics schema (prune_cli/metrics/__init__.py `metrics_config`): every run then
    failed composing `metrics/default` with an OmegaConf merge error naming neither the module nor the clash."""
    _, schemas = declarations(path.read_text(encoding="utf-8"), outside=True)
    for group, name in schemas:
        if group == "metric" and name in base_metrics_options():
            raise metric_named_as_base_option(module, name)


def outside_modules() -> list[str]:
    return list(index().outside)


def plugin_module_raising(err: BaseException) -> tuple[str, str, int] | None:
    """(module, file, line) of the outside plugin module (`outside_modules`) where `err` was raised, or None:
    the innermost frame of its traceback that is prune-cli's or an outside module's, so a plugin whose
    call into torch or numpy raises is named too. prune-run then reports an error in that plugin, not a bug
    of prune-cli (prune_cli/cli.py `_fail`; docs/architecture.md, Plugins)."""
    import sys
    import traceback

    files: dict[Path, str] = {}
    for module in outside_modules():
        loaded = sys.modules.get(module)
        path = getattr(loaded, "__file__", None) if loaded is not None else None
        if path:
            files[Path(path).resolve()] = module
    if not files:
        return None
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        path = Path(frame.filename).resolve()
        if path in files:
            return files[path], frame.filename, frame.lineno or 0
        if path.is_relative_to(PACKAGE):
            return None
    return None


def module_file(module: str) -> Path:
    """The source file of an importable module, without importing it."""
    return _module_file(module)


def source_digest(module: str) -> str:
    """The source an outside plugin module's behaviour depends on, read without importing it (the dense
    cache's key, provenance.json): every .py file of its top-level package, since a plugin imports
    helpers from its own package (`my_lab/tinynet.py` doing `from my_lab.netlib import ACT`); a top-level
    module that is one file (`my_scores.py`) is that file. Code it imports from another top-level package
    or module is not covered (docs/architecture.md, "Plugins")."""
    _module_file(module)  # a module that cannot be found: the same message as when it was indexed
    top = module.partition(".")[0]
    spec = _find_spec(top)
    if spec is not None and spec.submodule_search_locations:  # a package (a namespace package: each folder)
        digest = hashlib.sha256()
        for folder in sorted(spec.submodule_search_locations):
            digest.update(tree_digest(folder, ".py").encode())  # not the folder's path: a moved copy is the same code
        return digest.hexdigest()
    return hashlib.sha256(_module_file(top).read_bytes()).hexdigest()


def names(kind: str) -> list[str]:
    """Every name of `kind` the index knows (without importing the modules)."""
    return sorted(n for k, n in index().kinds if k == kind)


def import_plugin(module: str, provides: str) -> None:
    """Import a module that declares a plugin. One outside prune-cli that fails to import (a syntax
    error, a missing dependency) is a config error naming it and what it provides; before, it surfaced
    as a traceback from inside Hydra's resolution of the run directory."""
    try:
        importlib.import_module(module)
    except Exception as err:
        if _built_in(module):
            raise  # a built-in module that does not import is a bug of prune-cli: its traceback
        where = index().entry_points.get(module)  # an installed package's: the user never named it in `plugins`
        named = f", named by the {ENTRY_POINT_GROUP} {where}" if where else ""
        raise ConfigError(
            "plugins",
            module,
            f"a module that imports (it provides {provides}{named}; importing it raised {type(err).__name__}: {err})",
        ) from err


def load(kind: str, name: str) -> bool:
    """Import the module that declares `name` of `kind`; False when no module declares it."""
    module = index().kinds.get((kind, name))
    if module is None:
        return False
    import_plugin(module, f"{kind} '{name}'")
    return True


def schema_names(group: str) -> list[str]:
    from .config_base import SCHEMAS

    return sorted({n for g, n in index().schemas if g == group} | set(SCHEMAS.get(group, {})))


def schema(group: str, name: str) -> type:
    """The config dataclass of option `name` in `group` (importing its module if need be)."""
    from .config_base import SCHEMAS

    if name not in SCHEMAS.get(group, {}):
        module = index().schemas.get((group, name))
        if module is not None:
            import_plugin(module, f"the schema of {group}={name}")
    try:
        found = SCHEMAS[group][name]
    except KeyError:
        raise ConfigError(group, name, "one of " + ", ".join(schema_names(group))) from None
    if group == "method":  # with the options of every allocation and structure
        return with_plugin_options(found)
    return found


def schemas(group: str) -> dict[str, type]:
    """Every schema of `group` (imports their modules: used only for a node composed without one)."""
    return {name: schema(group, name) for name in schema_names(group)}


# ----------------------------------------------------------------------------- options, read statically


@dataclass(frozen=True)
class PluginOptions:
    """The options an allocation or structure declares, as read from its source (no import)."""

    kind: str  # allocation | structure
    name: str  # the plugin's name (method.allocation=<name>)
    module: str
    cls: str  # the options class's name
    fields: tuple[tuple[str, Any, Any], ...]  # (option, type, default), bases first
    attrs: dict  # the class's literal attributes (exclusive, in_every_run_id)

    @property
    def label(self) -> str:
        return f"method.{self.kind}={self.name}"

    def names(self) -> list[str]:
        return [f for f, _, _ in self.fields]

    def default(self, option: str) -> Any:
        return next(d for f, _, d in self.fields if f == option)

    @property
    def in_every_run_id(self) -> bool:
        """Options that were central before plugins declared them stay in every run id (at any value)."""
        return bool(self.attrs.get("in_every_run_id", False))

    @property
    def exclusive(self) -> tuple[str, ...]:
        """Options that must keep their default unless this plugin is chosen (a value is an error,
        not just an unused override: a list of layer densities without allocation=explicit)."""
        return tuple(self.attrs.get("exclusive", ()))


# The names an option's type may use: those OmegaConf can type a config field with (not Literal), bare or
# through the typing module (`typing.Optional[float]`).
_TYPE_NAMES: dict[str, Any] = {n: getattr(typing, n) for n in ("Any", "Optional", "Union", "List", "Dict", "Tuple", "ClassVar")}
_TYPE_NAMES.update({"list": list, "dict": dict, "tuple": tuple, "int": int, "float": float, "str": str, "bool": bool, "None": None})
_TYPE_NAMES["typing"] = type("typing", (), dict(_TYPE_NAMES))  # typing.<name> of the same names only


def _bad_options(module: str, cls: str, what: str) -> ConfigError:
    return ConfigError(
        "plugins",
        module,
        f"an options class {cls} whose fields prune-cli can read without importing the module: {what} "
        "(docs/architecture.md, 'Options of an allocation or a structure')",
    )


@functools.lru_cache(maxsize=None)
def _source(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


_IMPORT_FROM = re.compile(r"^from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)
_TOP_LEVEL = re.compile(r"^(?![ \t#)\n])", re.M)  # a line that starts a new top-level statement


def _class_node(path: str, cls: str) -> ast.ClassDef | None:
    """The syntax tree of top-level class `cls` of the file (only its lines are parsed: a few
    milliseconds for every plugin's options instead of tens for whole files)."""
    source = _source(path)
    m = re.search(rf"^class[ \t]+{re.escape(cls)}\b", source, re.M)
    if m is None:
        return None
    end = _TOP_LEVEL.search(source, source.index("\n", m.end()) + 1 if "\n" in source[m.end() :] else len(source))
    node = ast.parse(source[m.start() : end.start() if end else len(source)]).body[0]
    return node if isinstance(node, ast.ClassDef) else None


def _imported(path: str, name: str) -> tuple[int, str, str] | None:
    """(relative level, module, name there) of a top-level `from X import name [as ...]` of the file."""
    for m in _IMPORT_FROM.finditer(_source(path)):
        for item in m.group(3).strip("()").replace("\n", " ").split(","):
            parts = item.split("#")[0].split()
            if parts and (parts[-1] == name):
                return len(m.group(1)), m.group(2), parts[0]
    return None


def _source_of(module: str, package: str, level: int, name: str | None) -> tuple[str, str]:
    """(module, file) of an imported module, without importing it (prune-cli's own by its path)."""
    target = importlib.util.resolve_name("." * level + (name or ""), package) if level else name
    if target == "prune_cli" or target.startswith("prune_cli."):
        parts = target.split(".")[1:]
        path = PACKAGE.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = PACKAGE.joinpath(*parts, "__init__.py")
        return target, str(path)
    return target, str(_module_file(target))


def _default(node: ast.expr | None, module: str, cls: str, option: str) -> Any:
    if node is None:
        raise _bad_options(module, cls, f"{option} has no default")
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "field":
        for kw in node.keywords:
            if kw.arg == "default":
                node = kw.value
                break
            if kw.arg == "default_factory":
                node = kw.value.body if isinstance(kw.value, ast.Lambda) else kw.value
                if isinstance(node, ast.Name) and node.id in ("list", "dict"):
                    return [] if node.id == "list" else {}
                break
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _bad_options(module, cls, f"the default of {option} is not a literal ({ast.unparse(node)})") from None


def _read_class(module: str, path: str, cls: str, seen: tuple = ()) -> tuple[list, dict]:
    """(fields, literal class attributes) of class `cls` of `module` (file `path`), bases first."""
    if (module, cls) in seen:
        raise _bad_options(module, cls, "its bases form a cycle")
    try:
        node = _class_node(path, cls)
    except SyntaxError as err:  # the module's import would fail the same way: named, not a traceback
        raise ConfigError(
            "plugins",
            module,
            f"a module that parses (its options class {cls} has a syntax error: {err.msg}, line {err.lineno} of the class in {path})",
        ) from None
    if node is None:
        imported = _imported(path, cls)  # `from ..structure import GroupNormOptions`
        if imported is None:
            raise _bad_options(module, cls, "no class of that name is defined or imported by name (from ... import) in the module")
        level, name, real = imported
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        other, other_path = _source_of(module, package, level, name or None)
        return _read_class(other, other_path, real, (*seen, (module, cls)))
    fields: dict[str, tuple[Any, Any]] = {}
    attrs: dict = {}
    for base in node.bases:
        if not isinstance(base, ast.Name):
            raise _bad_options(module, cls, f"its base {ast.unparse(base)} is not a class named in the module")
        base_fields, base_attrs = _read_class(module, path, base.id, (*seen, (module, cls)))
        fields.update({f: (t, d) for f, t, d in base_fields})
        attrs.update(base_attrs)
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            option, annotation = stmt.target.id, ast.unparse(stmt.annotation).strip("'\"")
            if annotation.startswith(("ClassVar", "typing.ClassVar")):
                if stmt.value is not None:
                    attrs[option] = _default(stmt.value, module, cls, option)
                continue
            try:
                declared = eval(annotation, {"__builtins__": {}}, _TYPE_NAMES)  # noqa: S307 - type names only
            except Exception:  # noqa: BLE001
                allowed = ", ".join(n for n in _TYPE_NAMES if n != "typing")
                raise _bad_options(module, cls, f"the type of {option} ({annotation}) uses names other than {allowed}") from None
            fields[option] = (declared, _default(stmt.value, module, cls, option))
    return [(f, t, d) for f, (t, d) in fields.items()], attrs


def plugin_options() -> dict[tuple[str, str], PluginOptions]:
    """(allocation | structure, name) -> the options it declares, for every indexed plugin that
    declares some, read from the source files without importing them."""
    return dict(_read_options(tuple(sorted(index().options.items()))))


@functools.lru_cache(maxsize=16)
def plugin_options_with(modules: tuple[str, ...]) -> dict[tuple[str, str], PluginOptions]:
    """`plugin_options()` as a process that loaded the outside `modules` too (a saved run's `plugins`),
    read on a copy of the index, so this process's plugins do not change; a module that cannot be
    found or read here is left out (its options then stay in what the caller compares)."""
    idx = copy.deepcopy(index())
    for module in modules:
        if module in idx.outside:
            continue
        try:
            idx.scan_file(_module_file(module), module)
        except (ConfigError, OSError, UnicodeDecodeError):
            continue
        idx.outside.append(module)
    try:
        return dict(_read_options(tuple(sorted(idx.options.items()))))
    except (ConfigError, SyntaxError, OSError):
        return plugin_options()


@functools.lru_cache(maxsize=8)
def _read_options(declared: tuple) -> tuple:
    found = []
    for (kind, name), (module, path, cls) in declared:
        fields, attrs = _read_class(module, path, cls)
        found.append(((kind, name), PluginOptions(kind, name, module, cls, tuple(fields), attrs)))
    return tuple(found)


_WITH_OPTIONS: dict[tuple, type] = {}


def with_plugin_options(base: type) -> type:
    """The method schema `base` with the options of every indexed allocation and structure added as
    fields (`method.<option>`), read from their source without importing them
    (prune_cli/core/plugins.py `plugin_options`). One option declared by several plugins (group_norm
    by channel, block and bcr) must have one type and default; a method schema cannot declare an
    option of an allocation or structure itself. The class is made once per set of options; it is
    named after `base` and importable from this module by its qualified name (pickle)."""
    own = {f.name for f in dataclasses.fields(base)}
    options: dict[str, tuple[Any, Any, str]] = {}
    for decl in plugin_options().values():
        for option, declared, default in decl.fields:
            if option in own:
                raise ConfigError(
                    "plugins",
                    decl.module,
                    f"options that no method schema declares: method.{option} of {decl.label} is a field of {base.__qualname__} too",
                )
            if option in options and options[option][:2] != (declared, default):
                raise ConfigError(
                    "plugins",
                    decl.module,
                    f"one type and default for method.{option}: {decl.label} declares {declared} = {default!r}, "
                    f"{options[option][2]} {options[option][0]} = {options[option][1]!r}",
                )
            options.setdefault(option, (declared, default, decl.label))
    key = (base, tuple((o, repr(t), repr(d)) for o, (t, d, _) in sorted(options.items())))
    made = _WITH_OPTIONS.get(key)
    if made is None:
        specs = [
            (o, t, field(default_factory=functools.partial(copy.deepcopy, d)) if isinstance(d, (list, dict)) else field(default=d))
            for o, (t, d, _) in sorted(options.items())
        ]
        digest = hashlib.sha256(repr((base.__module__, base.__qualname__, key[1:])).encode()).hexdigest()[:12]
        qualname = f"{base.__name__}_with_plugin_options_{digest}"
        made = dataclasses.make_dataclass(base.__name__, specs, bases=(base,), namespace={"__doc__": base.__doc__})
        made.__module__, made.__qualname__ = __name__, qualname
        globals()[qualname] = made
        _WITH_OPTIONS[key] = made
    return made


def declared_class(schema: type) -> type:
    """The schema class a plugin declared: `with_plugin_options` makes a subclass of it, which messages
    should not name."""
    return next((c for c in schema.__mro__ if "_with_plugin_options_" not in c.__qualname__), schema)


def __getattr__(name: str):
    """A method schema with options made in another process (a launcher's worker unpickling a job's
    config): made here again from the same declarations, which give it the same name."""
    if "_with_plugin_options_" in name:
        for method in schema_names("method"):
            schema("method", method)
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
