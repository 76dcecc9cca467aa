"""Provenance of the rows, and the shared CSVs: transactional appends and `python -m prune_cli.results`.

Per-run files (in the run directory) are the source of truth; their columns are in
`prune_cli/core/tables.py` and the run id in `prune_cli/core/identity.py`. The shared CSVs in
`results_dir` are their concatenation, appended exactly once per run (prune_cli/run/shared_tables.py),
and can always be rebuilt from the per-run files with `rebuild_shared`.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import prune_cli

from . import shared_tables
from ..core.atomic_io import atomic_write_text
from ..core.errors import PruneCliError
from ..core.paths import is_source_checkout
from ..core.tables import PROVENANCE_FILE


def _run_git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git(*args: str) -> str | None:
    """git's answer about the package's own source checkout, or None. Asked only where the package's parent is
    a prune-cli source checkout (its pyproject.toml names the project: prune_cli/core/paths.py
    `is_source_checkout`): git looks upwards, so a package installed (not editable) into
    myproject/.venv/.../site-packages described myproject's commit and dirty flag in provenance.json and every
    CSV row. A checkout kept inside a larger repository (a monorepo) is still asked: that repository's commit
    is the one holding this code."""
    source = Path(prune_cli.__file__).resolve().parent.parent
    return _run_git(source, *args) if is_source_checkout(source) else None


def provenance(device: torch.device) -> dict[str, Any]:
    """Where the numbers came from: code version, library versions, device, time."""
    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": sha or "unknown",
        "git_dirty": bool(dirty) if sha else None,
        "prune_cli_version": prune_cli.__version__,
        "torch_version": torch.__version__,
        "device": str(device) if device.type != "cuda" else f"cuda:{torch.cuda.get_device_name(device)}",
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# What makes two processes compute different numbers for the same run (the timestamp does not).
RESUME_CHECKED = ("git_sha", "git_dirty", "prune_cli_version", "torch_version", "device")


# What tells the code that computed a finished run from this process's (device and dirty flag aside).
CODE_FIELDS = ("git_sha", "prune_cli_version", "torch_version")


def source_record() -> dict[str, Any]:
    """The code itself, which a commit and a dirty flag do not pin down (an edit in a tree that was
    already dirty, a plugin module outside the repository): the package's source digest and each
    outside plugin module's (its top-level package's), as the dense cache's key holds them
    (prune_cli/run/dense_cache.py)."""
    from . import dense_cache

    return {"prune_cli_source": dense_cache.package_digest(), "plugin_sources": dense_cache.outside_digest()}


def source_differences(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """ "prune_cli_source: old -> new" and "plugin <module>: old -> new" (digests shortened to 12
    characters; 'absent' for a module one side did not load) where the source records differ; nothing
    for a record without them (runs from before they were recorded)."""
    out = []
    if then.get("prune_cli_source") and now.get("prune_cli_source") and then["prune_cli_source"] != now["prune_cli_source"]:
        out.append(f"prune_cli_source: {then['prune_cli_source'][:12]} -> {now['prune_cli_source'][:12]}")
    old, new = then.get("plugin_sources"), now.get("plugin_sources")
    if isinstance(old, dict) and isinstance(new, dict):
        for module in sorted(set(old) | set(new)):
            if old.get(module) != new.get(module):
                out.append(f"plugin {module}: {(old.get(module) or 'absent')[:12]} -> {(new.get(module) or 'absent')[:12]}")
    return out


def code_differences(run_dir: Path) -> list[str]:
    """ "field: then -> now" for each of CODE_FIELDS in which the process that started the finished run in
    `run_dir` (its provenance.json) differs from this one, and for the package's and plugins' sources
    (`source_differences`); fields unknown on either side are skipped. Run ids hash the config, not the
    code, so this is the only sign that a kept run predates a change. (`finished_run_code` also says
    when provenance.json cannot be read.)"""
    return finished_run_code(run_dir)[0]


def finished_run_code(run_dir: Path) -> tuple[list[str], str | None]:
    """`code_differences`, and a note when the run's provenance.json is missing or unreadable: the
    comparison then falls back to the CODE_FIELDS columns of its per-run CSVs (the source digests are not
    there, so an uncommitted edit cannot be seen), or, without those, cannot be made."""
    path = Path(run_dir) / PROVENANCE_FILE
    try:
        then = json.loads(path.read_text())
        if not isinstance(then, dict):
            raise ValueError("not a JSON object")
        note = None
    except (OSError, ValueError) as err:
        state = "missing" if isinstance(err, FileNotFoundError) else f"unreadable ({type(err).__name__})"
        then, table = _csv_provenance(Path(run_dir))
        if table is None:
            return [], f"its {path} is {state}, so the code that made it cannot be compared with this one's"
        note = (
            f"its {path} is {state}; its code was compared by the {', '.join(CODE_FIELDS)} columns of its {table.name} "
            "(an edit not committed cannot be seen there)"
        )
    now = {"git_sha": _git("rev-parse", "HEAD"), "prune_cli_version": prune_cli.__version__, "torch_version": torch.__version__}
    unknown = (None, "", "unknown")
    return [
        f"{k}: {then.get(k)} -> {now[k]}"
        for k in CODE_FIELDS
        if then.get(k) not in unknown and now[k] not in unknown and then.get(k) != now[k]
    ] + source_differences(then, source_record()), note


def _csv_provenance(run_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """The CODE_FIELDS of the first row of the first per-run CSV (metrics.csv first) that has them all."""
    import pandas as pd

    tables = sorted(run_dir.glob("*.csv"), key=lambda p: (p.name != "metrics.csv", p.name))
    for table in tables:
        try:
            rows = pd.read_csv(table, dtype=str, keep_default_na=False, nrows=1)
        except (OSError, ValueError):
            continue
        if len(rows) and all(k in rows.columns for k in CODE_FIELDS):
            return {k: rows[k].iloc[0] for k in CODE_FIELDS}, table
    return {}, None


def write_start_record(run_dir: Path, run_provenance: dict[str, Any], data_folders: dict[str, dict] | None = None) -> None:
    """provenance.json of a run started from the beginning: this process's environment, no resumes, and
    `data_folders`, where its data was read from ({"data_location": {"dataset.root": folder}, "data_folder_id":
    {"dataset.root": [device, inode]}}; data options only: prune_cli/core/paths.py `data_locations`), which a
    later command for the same run id checks (`other_data_folder`)."""
    record = {**environment_record(run_provenance), "resumed": []}
    record.update({k: dict(v) for k, v in (data_folders or {}).items() if v})
    atomic_write_text(run_dir / PROVENANCE_FILE, json.dumps(record, indent=2))


def write_resume_record(run_dir: Path, started: dict[str, Any], current: dict[str, Any], at_step: str) -> list[str]:
    """Add this process to provenance.json's `resumed` list (the starting process's record stays on
    top, as its provenance stays in the rows) and return "field: old -> new" for each field of
    RESUME_CHECKED that differs from the process that started the run, and for torch's intra-op thread
    count on a CPU (it changes how sums are split, so the last digits of the numbers)."""
    path = run_dir / PROVENANCE_FILE
    try:
        record = json.loads(path.read_text())
        record.setdefault("resumed", [])
    except (OSError, ValueError):  # missing or torn: rebuild the top from the checkpoint's provenance
        record = {**dict(started), "resumed": []}
    here = environment_record(current)
    record["resumed"].append({"at_step": at_step, **here})
    atomic_write_text(path, json.dumps(record, indent=2))
    differences = [f"{k}: {started.get(k)} -> {current.get(k)}" for k in RESUME_CHECKED if started.get(k) != current.get(k)]
    differences += source_differences(record, here)
    threads = record.get("torch_threads")  # the starting process's (absent in runs started before it was recorded)
    if str(current.get("device", "")).startswith("cpu") and threads is not None and threads != here["torch_threads"]:
        differences.append(f"torch_threads: {threads} -> {here['torch_threads']}")
    return differences


def earlier_code_differences(run_dir: Path) -> list[str]:
    """ "field: then -> now" for each field of RESUME_CHECKED and each source digest in which any earlier
    process of the run (the one that started it, those that resumed it before) differs from the process
    that just resumed it, the last of provenance.json's `resumed` list (`write_resume_record`): the work
    restored from the checkpoint was partly done by that code. Empty when the record cannot be read."""
    try:
        record = json.loads((Path(run_dir) / PROVENANCE_FILE).read_text())
        *before, now = [record, *record.get("resumed", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return []
    out: list[str] = []
    for then in before:
        found = [f"{k}: {then.get(k)} -> {now.get(k)}" for k in RESUME_CHECKED if then.get(k) != now.get(k)]
        out += [d for d in found + source_differences(then, now) if d not in out]
    return out


def same_sources(run_dir: Path) -> bool:
    """Whether every process of the run (provenance.json: the one that started it and each that resumed
    it) recorded the package's source digest and the same one, with the same plugin sources: then a
    git commit or a dirty file elsewhere (docs, tests) changed nothing the run computed."""
    try:
        record = json.loads((Path(run_dir) / PROVENANCE_FILE).read_text())
        processes = [record, *record.get("resumed", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    sources = {p.get("prune_cli_source") if isinstance(p, dict) else None for p in processes}
    plugins = {json.dumps(p.get("plugin_sources"), sort_keys=True) if isinstance(p, dict) else None for p in processes}
    return len(sources) == 1 and None not in sources and "" not in sources and len(plugins) == 1


def environment_record(run_provenance: dict[str, Any]) -> dict[str, Any]:
    """Saved as provenance.json in the run dir: the rows' provenance plus the rest of the environment."""
    import hydra
    import numpy
    import pandas

    record = dict(run_provenance)
    record.update(
        torch_threads=torch.get_num_threads(),  # on a CPU it changes the last digits of sums (not in the run id)
        python=platform.python_version(),
        platform=platform.platform(),
        numpy=numpy.__version__,
        pandas=pandas.__version__,
        hydra=hydra.__version__,
    )
    record["torchvision"] = _torchvision_version()
    record.update(source_record())
    return record


def _torchvision_version() -> str | None:
    """torchvision.__version__ (with its build label, e.g. 0.29.1+cu130) without importing torchvision,
    which takes a second or more and only the vision datasets need: it is read from the package's
    version.py; the distribution's version (no build label) if that file is not there."""
    import importlib.metadata
    import importlib.util
    import re

    if "torchvision" in sys.modules:
        return sys.modules["torchvision"].__version__
    spec = importlib.util.find_spec("torchvision")  # locates the package without importing it
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        path = Path(folder) / "version.py"
        found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", path.read_text(), re.M) if path.is_file() else None
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


def append_shared(results_dir: Path, frames: dict, marker: Path | None = None, run_id: str = "") -> str:
    """Append tables (per-run file name -> DataFrame) to the shared CSVs as one transaction."""
    return shared_tables.append(Path(results_dir), frames, run_id, marker)


def rebuild_shared(results_dir: Path) -> list[str]:
    """Recreate the shared CSVs from every completed run directory under results_dir/runs."""
    return shared_tables.rebuild(Path(results_dir))


def main(argv: list[str] | None = None) -> int:
    """`python -m prune_cli.results RESULTS_DIR`: rebuild the shared tables and say what was done."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m prune_cli.results",
        description="Rebuild the shared tables (runs.csv, per_class.csv, layers.csv, ...) of RESULTS_DIR from the per-run "
        "files of its completed runs (RESULTS_DIR/runs/*), and print what was written (README.md, docs/robustness.md).",
    )
    parser.add_argument(
        "results_dir", nargs="?", default="results", metavar="RESULTS_DIR", help="a prune-run results_dir (default: results)"
    )
    results_dir = Path(parser.parse_args(sys.argv[1:] if argv is None else argv).results_dir)
    if not results_dir.is_dir():
        print(f"prune_cli.results: error: {results_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        lines = rebuild_shared(results_dir)
    except PruneCliError as err:
        print(f"prune_cli.results: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (the tables are renamed into place only once all are written)
        print(
            f"prune_cli.results: stopped by SIGINT; the shared tables in {results_dir} may not be rebuilt (all, or some of "
            f"them if stopped while they were renamed into place): run the same command again to finish the rebuild",
            file=sys.stderr,
        )
        return 130
    except OSError as err:  # a read-only results_dir, a file that cannot be read or written
        where = err.filename or results_dir
        print(
            f"prune_cli.results: error: cannot rebuild the shared tables in {results_dir}: {where}: {err.strerror or err}",
            file=sys.stderr,
        )
        return 2
    for line in lines or ["no completed runs under " + str(results_dir / "runs")]:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
