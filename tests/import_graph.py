#!/usr/bin/env python3
"""Intra-package import graph: every import, cycles, layer violations, import-time closure.

Standalone (standard library only: `ast`); reads the source, imports nothing from the package.

    python import_graph.py PACKAGE_DIR [--layers target|current|FILE.json] [--closure MODULE ...]

`--layers` defaults to `target`, the layer map of docs/architecture.md; `current` is the map of the
layout before the issue-11 refactor, kept for reference (many of its module names no longer exist).

For each import statement between modules of the package it records where it is (module level, or
inside a function / method: imported only when that code runs), whether it sits under
`if TYPE_CHECKING:` (never executed), and resolves `from pkg import name` to the submodule
`pkg.name` when such a module exists, else to `pkg` itself (a name defined in `pkg/__init__.py`).

Checks (each is a plain function returning data, so a pytest test is a few lines; see
`violations`):
  - cycles: strongly connected components (Tarjan) of the module graph, twice: over module-level
    imports only (what runs at import time) and over all imports (the dependency structure);
  - layers: a dict {module prefix: layer number}; the longest matching prefix gives a module's
    layer (the bare package name matches only its __init__); an import from layer a to layer
    b > a is an upward import, also when it sits inside a function; a module no prefix matches is
    reported as unassigned; `implicit_upward` adds the parent-package __init__ Python runs first;
  - closure: what `import MODULE` loads at import time (module-level imports, transitively, plus
    the parent packages Python runs first) and which third-party top-level packages that pulls in
    (e.g. whether `prune_cli.report` reaches torch).

As a pytest test (after the refactor, with the target layer map):

    from import_graph import violations, TARGET_LAYERS
    def test_layers():
        assert violations("prune_cli", TARGET_LAYERS, forbid_external={"prune_cli.report": {"torch"}}) == []
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

# --------------------------------------------------------------------------------------------- layer maps
# Lower number = lower layer. An import may point to the same or a lower layer, never higher.
# Longest prefix wins, so a sub-package can be given its own layer.

# The modules of main at c185496, layered by the package they lived in then. Where a module
# is in the wrong package today (regions math under metrics/, a script helper under analysis/),
# the import it causes shows up as upward here and disappears when the module moves.
CURRENT_LAYERS: dict[str, int] = {
    # 0 core: should import nothing from the package
    "prune_cli": 0,  # the package __init__ (version string only)
    "prune_cli.errors": 0,
    "prune_cli.registry": 0,
    "prune_cli.stats": 0,
    "prune_cli.config": 0,  # today: base classes AND feature schemas AND validation (bottom and top)
    "prune_cli.analysis.settings": 0,  # schema-only dataclasses config.py imports
    "prune_cli.io_utils": 0,  # results integrity (c185496): atomic writes
    "prune_cli.crashpoints": 0,  # results integrity (c185496): fault injection points
    "prune_cli.interrupts": 0,  # results integrity (c185496): signal handling
    # 1-6 features
    "prune_cli.data": 1,
    "prune_cli.models": 2,
    "prune_cli.analysis": 3,
    "prune_cli.training": 4,
    "prune_cli.pruning.masks": 4,  # used by training; lives in pruning/ today
    "prune_cli.pruning": 5,
    "prune_cli.schedules": 5,
    "prune_cli.metrics": 6,
    # 7 run layer
    "prune_cli.results": 7,
    "prune_cli.shared_tables": 7,  # results integrity (c185496)
    "prune_cli.dense_cache": 7,
    "prune_cli.experiment": 7,
    # 8 entry points
    "prune_cli.cli": 8,
    "prune_cli.report": 8,
    "prune_cli.plots": 8,
}

# The layered layout of docs/architecture.md (the target of the issue-11 refactor; used by tests/test_layers.py).
TARGET_LAYERS: dict[str, int] = {
    "prune_cli": 0,
    "prune_cli.core": 0,  # errors, registry, atomic_io, config_base, stats, validation, plugins
    "prune_cli.data": 1,
    "prune_cli.models": 2,  # incl. models/graph.py (the one layer graph)
    "prune_cli.analysis": 3,  # ntk, hessian, limit, similarity, recall_distortion, regions/*
    "prune_cli.training": 4,
    "prune_cli.train_hooks": 4,  # TrainHook, the training loop's extension points (docs/training_time.md)
    "prune_cli.pruning": 5,
    "prune_cli.schedules": 5,
    "prune_cli.metrics": 6,
    "prune_cli.run": 7,  # prevalidate, experiment, checkpoint, recorder, dense_cache, results, shared_tables
    "prune_cli.results": 7,  # load() (tidy frames, no torch) and `python -m prune_cli.results`
    "prune_cli.cli": 8,
    "prune_cli.run_directories": 8,  # the run directory's resolvers and the checks before Hydra creates it
    "prune_cli.sweep_lifecycle": 8,  # SweepSummary, a sweep's state, what a rejected sweep puts back
    "prune_cli.hydra_patches": 8,  # prune-run's changes to Hydra's composition, sweeper and help
    "prune_cli.report": 8,  # report/ package: loading, summaries, plots (no torch)
}

# --------------------------------------------------------------------------------------------- collection


@dataclass(frozen=True)
class Import:
    src: str  # importing module, dotted ("prune_cli.pruning.allocation")
    dst: str  # imported module of the same package
    line: int
    in_function: bool  # inside a def / lambda body: runs only when called
    type_checking: bool  # under `if TYPE_CHECKING:`: never runs
    text: str  # the statement as written (first line)
    file: str = ""  # path of the importing file, relative to the package's parent directory

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def kind(self) -> str:
        return "type-only" if self.type_checking else ("function" if self.in_function else "module")


@dataclass
class Graph:
    package: str
    modules: dict[str, Path]  # dotted name -> file
    imports: list[Import] = field(default_factory=list)
    external: dict[str, dict[str, str]] = field(default_factory=dict)  # module -> {top-level pkg: kind}
    dynamic: list[tuple[str, int, str]] = field(default_factory=list)  # importlib.import_module / __import__

    def edges(self, function_level: bool = True) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            if imp.type_checking or (imp.in_function and not function_level):
                continue
            out[imp.src].add(imp.dst)
        return out


def discover(package_dir: Path) -> tuple[str, dict[str, Path]]:
    package_dir = Path(package_dir).resolve()
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return package_dir.name, modules


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))  # Python >= 3.10


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Visitor(ast.NodeVisitor):
    def __init__(self, graph: Graph, module: str, is_package: bool, lines: list[str], file: str):
        self.g, self.module, self.is_package, self.lines, self.file = graph, module, is_package, lines, file
        self.depth = 0  # function nesting
        self.tc = 0  # TYPE_CHECKING nesting

    # scopes ----------------------------------------------------------------------------------
    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If):
        if _is_type_checking(node.test):
            self.tc += 1
            for n in node.body:
                self.visit(n)
            self.tc -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    # imports ---------------------------------------------------------------------------------
    def _base(self, level: int) -> str:
        parts = self.module.split(".")
        if not self.is_package:
            parts = parts[:-1]
        if level > 1:
            parts = parts[: len(parts) - (level - 1)]
        return ".".join(parts)

    def _add(self, node, target: str):
        if target in self.g.modules:
            text = self.lines[node.lineno - 1].strip()
            self.g.imports.append(Import(self.module, target, node.lineno, self.depth > 0, self.tc > 0, text, self.file))

    def _external(self, name: str):
        top = name.split(".")[0]
        if top == self.g.package or top == "__future__" or top in _STDLIB:
            return
        kind = "type-only" if self.tc else ("function" if self.depth else "module")
        known = self.g.external.setdefault(self.module, {})
        rank = {"module": 0, "function": 1, "type-only": 2}
        if top not in known or rank[kind] < rank[known[top]]:  # the most eager use wins
            known[top] = kind

    def _longest_module(self, dotted: str) -> Optional[str]:
        parts = dotted.split(".")
        while parts:
            cand = ".".join(parts)
            if cand in self.g.modules:
                return cand
            parts.pop()
        return None

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == self.g.package:
                target = self._longest_module(alias.name)
                if target:
                    self._add(node, target)
            else:
                self._external(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if node.level == 0:
            base = node.module or ""
            if base.split(".")[0] != self.g.package:
                self._external(base)
                return
        else:
            base = self._base(node.level) + (("." + node.module) if node.module else "")
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in self.g.modules:
                self._add(node, sub)  # a submodule
            else:
                target = self._longest_module(base)
                if target:
                    self._add(node, target)  # a name defined in that module

    def visit_Call(self, node: ast.Call):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else (f.id if isinstance(f, ast.Name) else "")
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            what = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "<computed>"
            self.g.dynamic.append((self.module, node.lineno, what))
        self.generic_visit(node)


def collect(package_dir: str | Path) -> Graph:
    """Every intra-package import of the package at `package_dir`."""
    package, modules = discover(Path(package_dir))
    graph = Graph(package, modules)
    root = Path(package_dir).resolve().parent
    for name, path in modules.items():
        source = path.read_text()
        tree = ast.parse(source, filename=str(path))
        rel = str(path.relative_to(root))
        _Visitor(graph, name, path.name == "__init__.py", source.splitlines(), rel).visit(tree)
    unique = {(i.src, i.line, i.dst): i for i in graph.imports}  # `from x import a, b` -> one edge
    graph.imports = sorted(unique.values(), key=lambda i: (i.src, i.line, i.dst))
    return graph


# --------------------------------------------------------------------------------------------- checks


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's SCCs with more than one module (or a self-import), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def cycle_edges(graph: Graph, component: list[str], function_level: bool = True) -> list[Import]:
    """The import statements inside one strongly connected component."""
    comp = set(component)
    return [
        i for i in graph.imports if i.src in comp and i.dst in comp and not i.type_checking and (function_level or not i.in_function)
    ]


def collapse(graph: Graph, prefixes: Iterable[str]) -> dict[str, set[str]]:
    """The graph between groups of modules (e.g. the layer-map prefixes): a module belongs to its
    longest matching prefix; edges inside a group are dropped."""
    prefixes = sorted(prefixes, key=len, reverse=True)

    def group(m: str) -> str:
        return next((p for p in prefixes if m == p or m.startswith(p + ".")), m)

    out: dict[str, set[str]] = {}
    for imp in graph.imports:
        if imp.type_checking:
            continue
        a, b = group(imp.src), group(imp.dst)
        out.setdefault(a, set())
        out.setdefault(b, set())
        if a != b:
            out[a].add(b)
    return out


def layer_of(module: str, layers: dict[str, int]) -> Optional[int]:
    best = None
    for prefix, layer in layers.items():
        # a top-level key ("prune_cli") names the package __init__ only, so that a module the
        # map forgot is reported as unassigned instead of silently landing in layer 0
        if module == prefix or ("." in prefix and module.startswith(prefix + ".")):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Upward:
    imp: Import
    src_layer: int
    dst_layer: int

    def __str__(self) -> str:
        i = self.imp
        return f"{i.where} [{i.kind}] {i.src} (L{self.src_layer}) -> {i.dst} (L{self.dst_layer}): {i.text}"


def upward_imports(graph: Graph, layers: dict[str, int], function_level: bool = True) -> list[Upward]:
    out = []
    for imp in graph.imports:
        if imp.type_checking or (imp.in_function and not function_level):
            continue
        a, b = layer_of(imp.src, layers), layer_of(imp.dst, layers)
        if a is not None and b is not None and b > a:
            out.append(Upward(imp, a, b))
    return out


def unassigned(graph: Graph, layers: dict[str, int]) -> list[str]:
    return [m for m in graph.modules if layer_of(m, layers) is None]


def implicit_upward(graph: Graph, layers: dict[str, int]) -> list[tuple[Import, str, int, int]]:
    """Module-level imports whose target's parent packages (run by Python first) sit higher than
    the importer: `from ..pruning.masks import x` in training (L4) also runs pruning/__init__ (L5)."""
    out, seen = [], set()
    for imp in graph.imports:
        if imp.kind != "module":
            continue
        a = layer_of(imp.src, layers)
        parts = imp.dst.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            b = layer_of(parent, layers)
            if (
                parent in graph.modules
                and a is not None
                and b is not None
                and b > a
                and not imp.src.startswith(parent + ".")
                and (imp.src, parent) not in seen
            ):
                seen.add((imp.src, parent))
                out.append((imp, parent, a, b))
    return out


def package_of(module: str, depth: int = 2) -> str:
    """`prune_cli.pruning.scores.gp` -> `prune_cli.pruning` (depth 2); top-level modules stay."""
    return ".".join(module.split(".")[:depth])


def package_edges(graph: Graph, depth: int = 2, function_level: bool = True) -> dict[str, dict[str, list[Import]]]:
    """{package: {imported package: [import statements]}} between top-level packages/modules."""
    out: dict[str, dict[str, list[Import]]] = {}
    for imp in graph.imports:
        if imp.type_checking or (imp.in_function and not function_level):
            continue
        a, b = package_of(imp.src, depth), package_of(imp.dst, depth)
        out.setdefault(a, {})
        out.setdefault(b, {})
        if a != b:
            out[a].setdefault(b, []).append(imp)
    return out


def import_closure(graph: Graph, module: str) -> tuple[list[str], dict[str, list[str]]]:
    """Modules `import module` executes (module-level imports, parents first) and, for every
    third-party top-level package reached, the modules that import it at module level."""
    seen: set[str] = set()
    todo = [module]
    edges = graph.edges(function_level=False)
    while todo:
        m = todo.pop()
        if m in seen or m not in graph.modules:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]  # parent packages run first
        todo += sorted(edges.get(m, ()))
    ext: dict[str, list[str]] = {}
    for m in sorted(seen):
        for top, kind in graph.external.get(m, {}).items():
            if kind == "module":
                ext.setdefault(top, []).append(m)
    return sorted(seen), dict(sorted(ext.items()))


def violations(package_dir: str | Path, layers: dict[str, int], forbid_external: Optional[dict[str, set[str]]] = None) -> list[str]:
    """Everything a layering test should fail on, one line each (empty list = clean):
    cycles over all imports, upward imports (module- or function-level), modules with no layer,
    and third-party packages a module must not load at import time ({"prune_cli.report": {"torch"}})."""
    graph = collect(package_dir)
    out = []
    for comp in strongly_connected(graph.edges(function_level=True)):
        out.append("cycle: " + " <-> ".join(comp))
    out += [f"upward: {u}" for u in upward_imports(graph, layers)]
    out += [f"no layer: {m}" for m in unassigned(graph, layers)]
    for module, banned in (forbid_external or {}).items():
        _, ext = import_closure(graph, module)
        for top in sorted(set(ext) & set(banned)):
            out.append(f"import {module} loads {top} (via {', '.join(ext[top][:3])})")
    return out


def violation_keys(package_dir: str | Path, layers: dict[str, int]) -> set[str]:
    """Line-number-free keys of the violations, for a ratchet test that allows today's and fails on
    any new one: "cycle-edge: a -> b" (an import inside a cycle), "upward: a -> b", "no-layer: m"."""
    graph = collect(package_dir)
    keys = set()
    for comp in strongly_connected(graph.edges(function_level=True)):
        keys |= {f"cycle-edge: {i.src} -> {i.dst}" for i in cycle_edges(graph, comp)}
    keys |= {f"upward: {u.imp.src} -> {u.imp.dst}" for u in upward_imports(graph, layers)}
    keys |= {f"no-layer: {m}" for m in unassigned(graph, layers)}
    return keys


# --------------------------------------------------------------------------------------------- report


def report(package_dir: str | Path, layers: dict[str, int], closures: list[str]) -> str:
    g = collect(package_dir)
    lines: list[str] = []
    w = lines.append
    n_mod = sum(1 for i in g.imports if i.kind == "module")
    n_fn = sum(1 for i in g.imports if i.kind == "function")
    n_tc = sum(1 for i in g.imports if i.kind == "type-only")
    w(f"# import graph of {g.package} ({len(g.modules)} modules)")
    w(
        f"intra-package imports (module -> module per statement): {len(g.imports)} "
        f"(module level {n_mod}, inside functions {n_fn}, TYPE_CHECKING {n_tc})"
    )
    w("layer map: " + json.dumps(layers))
    w("")

    # -- summary at package level (prune_cli.<package or module>) --------------------------------
    pkg = package_edges(g)
    pkg_sets = {a: set(bs) for a, bs in pkg.items()}
    comps = strongly_connected(pkg_sets)
    w("## 0. summary between top-level packages/modules (prune_cli.X), all imports")
    w(f"cycles: {len(comps)}")
    for comp in comps:
        w(f"  cycle: {' <-> '.join(comp)}")
        for a in comp:
            for b in comp:
                if b in pkg.get(a, {}):
                    imps = pkg[a][b]
                    kinds = sorted({i.kind for i in imps})
                    w(f"      {a} -> {b}: {len(imps)} import(s) [{', '.join(kinds)}], e.g. {imps[0].where}")
    ups = []
    for a, targets in pkg.items():
        for b, imps in targets.items():
            la, lb = layer_of(a, layers), layer_of(b, layers)
            if la is not None and lb is not None and lb > la:
                ups.append((a, b, la, lb, imps))
    w(f"upward package edges: {len(ups)}")
    for a, b, la, lb, imps in sorted(ups):
        w(f"  {a} (L{la}) -> {b} (L{lb}): " + "; ".join(f"{i.where} [{i.kind}]" for i in imps))
    w("")

    w("## 1. imports per module   [M] = module level, [F] = inside a function, [T] = TYPE_CHECKING")
    by_src: dict[str, list[Import]] = {}
    for i in g.imports:
        by_src.setdefault(i.src, []).append(i)
    for m in sorted(g.modules):
        imps = by_src.get(m, [])
        ext = g.external.get(m, {})
        ext_txt = ", ".join(f"{k}{'' if v == 'module' else '[F]'}" for k, v in sorted(ext.items()))
        w(f"{m}  (L{layer_of(m, layers)})  third-party: {ext_txt or '-'}")
        for i in imps:
            tag = {"module": "M", "function": "F", "type-only": "T"}[i.kind]
            w(f"    [{tag}] line {i.line:4d} -> {i.dst}")
    w("")

    w("## 2. function-level intra-package imports (deferred imports; each hides a dependency)")
    for i in g.imports:
        if i.kind == "function":
            w(f"  {i.where}: {i.text}   -> {i.dst}")
    w("")

    if g.dynamic:
        w("## 2b. dynamic imports (importlib.import_module / __import__)")
        for m, line, what in g.dynamic:
            w(f"  {m}:{line}: {what}")
        w("")

    for title, fl in (
        ("module-level imports only (import-time cycles)", False),
        ("all imports, incl. function-level (dependency cycles)", True),
    ):
        comps = strongly_connected(g.edges(function_level=fl))
        w(f"## 3{'a' if not fl else 'b'}. module cycles over {title}: {len(comps)} strongly connected component(s)")
        for k, comp in enumerate(comps, 1):
            w(f"  SCC {k} ({len(comp)} modules): {', '.join(comp)}")
            for i in cycle_edges(g, comp, fl):
                w(f"      [{i.kind[0].upper()}] {i.where} -> {i.dst}   {i.text}")
        w("")

    w("## 3c. cycles between layer groups (modules collapsed to their layer-map prefix; all imports)")
    comps = strongly_connected(collapse(g, layers))
    w(f"  {len(comps)} component(s)")
    for comp in comps:
        w(f"  {' <-> '.join(comp)}")
    w("")

    ups = upward_imports(g, layers)
    distinct = {(u.imp.src, u.imp.dst) for u in ups}
    w(
        f"## 4. upward imports against the layer map: {len(ups)} statement(s), {len(distinct)} distinct "
        f"module edges ({sum(1 for u in ups if u.imp.in_function)} statements inside functions)"
    )
    for u in ups:
        w(f"  {u}")
    un = unassigned(g, layers)
    if un:
        w(f"modules with no layer: {', '.join(un)}")
    w("")

    imp_up = implicit_upward(g, layers)
    w(f"## 4b. implicit upward imports: importing a submodule first runs its parent package's __init__ ({len(imp_up)})")
    for i, parent, a, b in imp_up:
        w(f"  {i.where}: {i.src} (L{a}) -> {i.dst} also runs {parent}/__init__ (L{b})")
    w("")

    w("## 5. import-time closure (module-level imports, transitively, parent packages included)")
    for target in closures:
        mods, ext = import_closure(g, target)
        w(f"import {target}: {len(mods)} package modules; third-party: {', '.join(ext) or '-'}")
        for top in ("torch", "torchvision", "hydra", "scipy", "matplotlib", "pandas"):
            if top in ext:
                w(f"    {top} via {', '.join(ext[top][:6])}{' ...' if len(ext[top]) > 6 else ''}")
    w("")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package_dir")
    p.add_argument(
        "--layers",
        default="target",
        help="target (docs/architecture.md's layers; default) | current (before the refactor) | a JSON file {module prefix: layer}",
    )
    p.add_argument("--closure", nargs="*", default=None, help="modules whose import-time closure to list (default: the entry points)")
    p.add_argument("--check", action="store_true", help="print only violations; exit 1 if any")
    args = p.parse_args(argv)
    layers = {"current": CURRENT_LAYERS, "target": TARGET_LAYERS}.get(args.layers)
    if layers is None:
        layers = json.loads(Path(args.layers).read_text())
    if args.check:
        found = violations(args.package_dir, layers)
        print("\n".join(found) or "clean")
        return 1 if found else 0
    pkg = Path(args.package_dir).resolve().name
    closures = (
        args.closure
        if args.closure is not None
        else [
            f"{pkg}.cli",
            f"{pkg}.report",
            f"{pkg}.config",
            f"{pkg}.results",
            f"{pkg}.training",
            f"{pkg}.pruning.scores.magnitude",
            f"{pkg}.models.mlp",
            f"{pkg}.data.synthetic",
        ]
    )
    print(report(args.package_dir, layers, closures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
