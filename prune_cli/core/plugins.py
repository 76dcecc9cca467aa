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
- the modules named by installed packages in the `prune_cli.plugins` entry-point group.

Adding a plugin therefore edits no existing file. This module imports nothing from the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

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


def declarations(source: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(kind, name)], [(schema group, name)]) declared by the decorator lines of `source`."""
    kinds, schemas = [], []
    for m in _DECORATOR.finditer(source):
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

    def scan_file(self, path: Path, module: str) -> None:
        kinds, schemas = declarations(path.read_text(encoding="utf-8"))
        for key in kinds:
            self._add(self.kinds, key, module)
        for key in schemas:
            self._add(self.schemas, key, module)

    @staticmethod
    def _add(table: dict, key: tuple[str, str], module: str) -> None:
        old = table.get(key)
        if old is not None and old != module:
            kind, name = key
            raise ConfigError(
                "plugins",
                module,
                f"modules that do not redeclare a built-in or already loaded name: {kind} '{name}' is declared by {old} too",
            )
        table[key] = module


def _module_file(module: str) -> Path:
    """The source file of `module`, found without importing it (its parent packages are imported)."""
    try:
        spec = importlib.util.find_spec(module)
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
        add_modules(_entry_point_modules())
        add_modules(m for m in os.environ.get(LAUNCHED_ENV, "").split(",") if m)
    return _INDEX


def pass_to_launched_processes(modules: list[str]) -> None:
    """Name the command line's plugin modules in the environment of every process started from here."""
    if modules:
        os.environ[LAUNCHED_ENV] = ",".join(modules)
    else:
        os.environ.pop(LAUNCHED_ENV, None)


def _entry_point_modules() -> list[str]:
    from importlib.metadata import entry_points

    return sorted({ep.value.split(":")[0] for ep in entry_points(group=ENTRY_POINT_GROUP)})


def add_modules(modules) -> None:
    """Index plugin modules from outside the repository (`plugins=[my_lab.scores]`, entry points):
    their decorator lines are read now, the module is imported when one of its names is chosen."""
    idx = index()
    for module in modules:
        module = str(module)
        if module in idx.outside:
            continue
        idx.scan_file(_module_file(module), module)
        idx.outside.append(module)


def outside_modules() -> list[str]:
    return list(index().outside)


def module_file(module: str) -> Path:
    """The source file of an importable module, without importing it (the dense cache's key)."""
    return _module_file(module)


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
        if module == "prune_cli" or module.startswith("prune_cli."):
            raise  # a built-in module that does not import is a bug of prune-cli: its traceback
        raise ConfigError(
            "plugins", module, f"a module that imports (it provides {provides}; importing it raised {type(err).__name__}: {err})"
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
        return SCHEMAS[group][name]
    except KeyError:
        raise ConfigError(group, name, "one of " + ", ".join(schema_names(group))) from None


def schemas(group: str) -> dict[str, type]:
    """Every schema of `group` (imports their modules: used only for a node composed without one)."""
    return {name: schema(group, name) for name in schema_names(group)}
