"""Exactly-once, all-or-nothing appends of one run's rows to the shared CSVs in `results_dir`.

The per-run CSVs are the source of truth; the shared tables (`runs.csv`, `per_class.csv`,
`layers.csv` and one per metric table) are their concatenation, kept so that a sweep can be read
with one `pd.read_csv`. One duplicated row would silently double a run's weight in every mean, so
an append is a small transaction (docs/robustness.md):

1. Everything happens under one file lock in `results_dir`; the run's marker (`SHARED_APPENDED`
   in its run directory) is checked under that lock, so two processes never both append.
2. Every table is checked before any is written: a symlinked table is refused, a torn last line
   (a writer killed mid-line, a full disk) is cut off into a side file, a table whose header is
   not prune-run's (a byte-order mark, no header line, a repeated name) is refused, a table with
   other columns is rewritten as the union of both column sets (values kept byte for byte).
3. A journal records each table's size before the append; then the rows are appended, the
   marker is written and the journal removed. Whoever takes the lock next finds a journal left
   by a killed writer and either keeps the rows (the marker exists: the append had committed) or
   truncates every table back to its recorded size. An append whose write fails (a full disk) rolls
   back at once, the same way, and its error names the table (docs/robustness.md, "a full disk").

Values travel as the text of the per-run files (read with `dtype=str`), so the shared rows equal
the per-run rows to the character and a rebuild reproduces them exactly.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import mmap
import os
from pathlib import Path
from typing import Optional

import pandas as pd
from filelock import FileLock

from ..core import crashpoints
from ..core.atomic_io import atomic_write_bytes, atomic_write_text, atomic_write_texts, remove_leftovers, sync_folder
from ..core.errors import PruneCliError
from ..core.tables import (
    ALWAYS_WRITTEN,
    BUILTIN_METRIC_TABLES,
    CONTEXT_COLUMNS,
    NOT_SHARED,
    RUN_TABLES,
    dir_run_id,
    one_per_run_id,
    shared_name,
    union_columns,
)

log = logging.getLogger(__name__)

LOCK_FILE = ".results.lock"
JOURNAL_FILE = ".append-journal.json"
MARKER_FILE = "SHARED_APPENDED"


class SharedTableError(PruneCliError):
    """A shared table cannot be used as it is (a symlink, not a CSV); nothing was written."""


def results_lock(results_dir: Path) -> FileLock:
    return FileLock(str(Path(results_dir) / LOCK_FILE))


def run_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The run's per-run tables as text (every value exactly as written), by per-run file name. A run
    directory without a table every run writes (ALWAYS_WRITTEN: metrics.csv) is a SharedTableError naming
    it: taken as it is, its rows of that table would be missing from the shared one without a word."""
    for name in ALWAYS_WRITTEN:
        path = Path(run_dir) / name
        if not path.is_file():
            raise SharedTableError(
                f"run directory {run_dir} has no {name} (every run writes it; the shared {shared_name(name)} takes its rows "
                f"from it), so the run's rows cannot be taken from that directory: restore {path}, or move that run "
                f"directory out of runs/ (or run it again); nothing was written"
            )
    out = {}
    for path in sorted(Path(run_dir).glob("*.csv")):
        if path.name not in NOT_SHARED:
            out[path.name] = read_text_table(path)
    return out


def read_text_table(path: Path) -> pd.DataFrame:
    """A per-run table as text; one that cannot be read as a CSV table (empty, cut, not UTF-8) is a
    SharedTableError naming it, not a parser's traceback."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SharedTableError(
            f"per-run table {path} cannot be read as a CSV table ({str(err).strip().splitlines()[0]}); the run's rows "
            f"cannot be taken from it: restore it, or move that run directory out of runs/ (or run it again); nothing was written"
        ) from None


def refuse_symlinks(results_dir: Path, tables) -> None:
    """A shared table that is a symlink would make appends write somewhere else: refuse it. `tables`: the
    per-run tables about to be appended, or shared tables' names (never the user's own CSVs)."""
    for name in sorted({shared_name(t) for t in tables}):
        path = Path(results_dir) / name
        if path.is_symlink():
            raise SharedTableError(
                f"shared table {path} is a symlink (to {os.readlink(path)}); prune-run only appends to regular "
                f"files in results_dir. Replace it with a regular file or remove it (it can be rebuilt with "
                f"`python -m prune_cli.results {results_dir}`)."
            )


def marker_text(run_id: str, results_dir: Path) -> str:
    """The marker: the run id, then the results_dir whose shared tables hold the run's rows."""
    return f"{run_id}\n{Path(results_dir).resolve()}\n"


def appended_here(marker: Path, results_dir: Path) -> bool:
    """Whether the run's marker says its rows are in the shared tables of `results_dir`. A marker names
    the results_dir it was written for, so a run directory copied into another results_dir is appended
    there; a marker without one (written before it recorded it) counts for any results_dir."""
    try:
        lines = Path(marker).read_text().splitlines()
    except FileNotFoundError:
        return False
    return len(lines) < 2 or not lines[1].strip() or lines[1].strip() == str(Path(results_dir).resolve())


def _has_rows_of(path: Path, run_id: str) -> bool:
    """Whether a shared table has a row of `run_id`: a line starting with the run id and a comma (the
    first column is run_id, and a run id is a plain name that CSV never quotes). A byte search, not a
    CSV parse: it runs for every append, on tables that grow with the sweep."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b"\n" + run_id.encode() + b",") >= 0


def recover(results_dir: Path) -> Optional[str]:
    """Finish or undo the append a killed writer left (call under the lock); returns what was done."""
    journal = Path(results_dir) / JOURNAL_FILE
    if not journal.exists():
        return None
    record = json.loads(journal.read_text())
    marker = Path(record["marker"]) if record.get("marker") else None
    if marker is not None and appended_here(marker, results_dir):
        journal.unlink()
        return f"an interrupted append of run {record['run_id']} had committed; kept its rows"
    for name, size in record["sizes"].items():
        path = Path(results_dir) / name
        if size is None:
            path.unlink(missing_ok=True)
        elif path.exists() and path.stat().st_size > size:
            os.truncate(path, size)
    journal.unlink()
    return f"rolled back an interrupted append of run {record['run_id']} (no rows of it are in the shared tables)"


def _ours(name: str) -> bool:
    """Whether `name` is a file prune-run writes in results_dir under the results lock (a table, a torn tail's
    side file, the journal): its temporary files are the ones `remove_leftovers` may take there."""
    return name == JOURNAL_FILE or name.endswith(".csv") or ".csv.torn-" in name


def _remove_leftovers(results_dir: Path) -> None:
    """Remove (call under the lock) the temporary files a killed writer left in results_dir between a write and its
    rename (`.runs.csv.<pid>.tmp`: a whole table's copy, from `_grow`, a rebuild or the journal): nothing else
    removed them. Only those of prune-run's names whose process is not running (`remove_leftovers`)."""
    for tmp in remove_leftovers(results_dir, dead_only=True, names=_ours):
        log.info("shared tables in %s: removed %s, left by a writer killed mid-write", results_dir, tmp.name)


def _named(err: OSError, path: Path) -> OSError:
    """The error of a write to a shared table, naming the table: a full disk's write fails with an
    `OSError(28)` that names no file, which the run would take for a bug (docs/robustness.md, "a full disk")."""
    return err if err.filename else OSError(err.errno, err.strerror or str(err), str(path))


def _roll_back(results_dir: Path) -> None:
    """Undo a failed append at once (call under the lock, its journal written): every table truncated to
    its recorded size, the journal removed, as the next append's `recover` would do, so a full disk leaves
    no torn row and no row of the failed run (docs/robustness.md, "a full disk"). Truncating needs no
    space. A rollback that fails itself leaves the journal to the next append or rebuild."""
    try:
        done = recover(results_dir)
    except (OSError, ValueError) as err:
        log.warning(
            "shared tables in %s: the failed append could not be rolled back (%s); the next append or rebuild does it",
            results_dir,
            err,
        )
        return
    if done:
        log.info("shared tables in %s: %s", results_dir, done)


def _repair_torn_tail(path: Path) -> Optional[Path]:
    """A last line without its newline was cut mid-write: move it to a side file, keep the rest."""
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        f.seek(0)
        data = f.read()
    keep = data.rfind(b"\n") + 1  # 0 when even the header was cut
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    side = path.with_name(f"{path.name}.torn-{stamp}")
    atomic_write_bytes(side, data[keep:])  # a full disk: no half side file, and the error names it (docs/robustness.md)
    os.truncate(path, keep)
    log.warning(
        "%s ended in a torn line (%d bytes, a writer was killed or the disk was full); moved it to %s", path, size - keep, side
    )
    return side


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def check_header(results_dir: Path, path: Path, columns: Optional[list[str]] = None) -> None:
    """Refuse a shared table whose header is not prune-run's: it must start with the column the rows start
    with (`columns`' first; run_id, the first context column, when not given) and name each column once.
    A byte-order mark, a lost header line (a data row read as the header) or a repeated name would
    otherwise be "grown" into a table whose new rows sit in other columns than the old ones. A header of
    an older prune-cli, with fewer context columns (dense_cache, allocation and structure came later), is
    prune-run's: the append grows it, as the rebuild of its run directories would write it."""
    header = _header(path)
    first = (columns or CONTEXT_COLUMNS)[0]
    if header and header[0] == first and len(set(header)) == len(header):
        return
    if header and header[0].startswith("\ufeff"):
        why = "a byte-order mark (BOM) before its first column name, as a spreadsheet saving 'CSV UTF-8' writes"
    elif not header or header[0] != first:
        why = f"its first line is not the header (its first column is named {header[0] if header else ''!r}, not {first!r})"
    else:
        why = f"it names a column twice ({', '.join(sorted({c for c in header if header.count(c) > 1}))})"
    raise SharedTableError(
        f"shared table {path} cannot take more rows: {why}; appending would put rows in the wrong columns. Rebuild "
        f"it from the run directories with `python -m prune_cli.results {results_dir}` (or move it away); nothing was written."
    )


def check_before_run(results_dir: Path) -> None:
    """prune-run's check of results_dir before a run does any work: every shared table it may append to
    is a regular file with prune-run's header, so a run never trains only to be refused at its append."""
    results_dir = Path(results_dir)
    names = tables_present(results_dir)
    refuse_symlinks(results_dir, names)
    for name in names:
        path = results_dir / name
        if path.is_file() and b"\n" in _first_bytes(path):  # a header cut mid-line is a torn tail, repaired at the append
            check_header(results_dir, path)


def _first_bytes(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _grow(path: Path, header: list[str], union: list[str]) -> None:
    """Rewrite a shared table with more columns: old rows keep every value byte for byte, new
    cells are empty; `union` is `union_columns` order (provenance last)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    index = {c: i for i, c in enumerate(header)}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(union)
    for row in rows:
        writer.writerow([row[index[c]] if c in index and index[c] < len(row) else "" for c in union])
    atomic_write_text(path, buf.getvalue(), durable=True)
    log.info(
        "%s: grew from %d to %d columns (added %s) to take a run with new columns",
        path,
        len(header),
        len(union),
        ", ".join(c for c in union if c not in index),
    )


def _plan(results_dir: Path, frames: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Check every table before touching any; returns the header each shared table will have."""
    refuse_symlinks(results_dir, frames)
    headers = {}
    for table, df in frames.items():
        path = results_dir / shared_name(table)
        columns = list(df.columns)
        if path.exists() and path.stat().st_size > 0:
            _repair_torn_tail(path)
        if path.exists() and path.stat().st_size > 0:
            check_header(results_dir, path, columns)
            old = _header(path)
            headers[table] = union_columns([old, columns]) if set(columns) - set(old) else old
        else:
            headers[table] = columns
    return headers


def append_run(results_dir: Path, run_dir: Path, run_id: str) -> str:
    """Append the run's per-run tables to the shared ones exactly once; returns what happened."""
    return append(results_dir, run_tables(run_dir), run_id, marker=Path(run_dir) / MARKER_FILE)


def append(results_dir: Path, frames: dict[str, pd.DataFrame], run_id: str, marker: Optional[Path] = None) -> str:
    """Append `frames` (per-run table name -> rows) to the shared tables as one transaction.

    With a `marker`, the append happens at most once per results_dir: the marker is checked and written
    under the lock, and names the results_dir (`appended_here`). A marker naming another results_dir (a
    run directory copied here) appends the rows, unless a table here already holds the run id (the
    results_dir was moved or renamed): then nothing is written. Without one (library use),
    each call appends; a killed call is still rolled back."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    with results_lock(results_dir):
        done = recover(results_dir)
        if done:
            log.warning("shared tables in %s: %s", results_dir, done)
        _remove_leftovers(results_dir)
        if marker is not None and appended_here(marker, results_dir):
            return "already in the shared tables"
        headers = _plan(results_dir, frames)
        if marker is not None:
            # this run id's rows may be here already although its marker does not say so: run again in another
            # directory (hydra.run.dir, hydra.sweep.dir: no marker), or this results_dir was moved or renamed from
            # the one its marker names. Every table is asked, not just one: a rebuild stopped between two tables
            # (before 2026-12-04 it wrote one table at a time; now a kill between two renames) leaves the run's rows
            # in some tables only, and a hit in layers.csv alone once made the run append nothing to runs.csv
            missing = [t for t in frames if len(frames[t]) and not _has_rows_of(results_dir / shared_name(t), run_id)]
            held = [t for t in frames if len(frames[t]) and t not in missing]
            if held and missing:  # append only the tables that lack the run's rows: no row twice, none lost
                log.warning(
                    "run %s: its rows are already in %s of %s but not in %s (a rebuild stopped partway, or a table was "
                    "edited); appending them to those only",
                    run_id,
                    ", ".join(shared_name(t) for t in held),
                    results_dir,
                    ", ".join(shared_name(t) for t in missing),
                )
                frames = {t: frames[t] for t in missing}
                headers = {t: headers[t] for t in missing}
            elif held and not marker.exists():
                atomic_write_text(marker, marker_text(run_id, results_dir), durable=True)
                log.warning(
                    "run %s: its rows are already in the shared tables of %s (appended from another run directory "
                    "of this run id); not appended again (%s holds this run's own rows)",
                    run_id,
                    results_dir,
                    marker.parent,
                )
                return f"already in the shared tables (appended from another run directory of {run_id})"
            elif marker.exists():  # its marker names another results_dir
                named = marker.read_text().splitlines()[1]
                if held:  # (the marker is left as it is: a rerun that finds the run finished changes nothing)
                    return f"already in the shared tables (appended when the results_dir was {named})"
                log.info("run %s was appended to the shared tables of %s, not yet to those of %s", run_id, named, results_dir)
        for table, header in headers.items():
            path = results_dir / shared_name(table)
            if path.exists() and path.stat().st_size > 0 and _header(path) != header:
                _grow(path, _header(path), header)
        sizes = {
            shared_name(t): (results_dir / shared_name(t)).stat().st_size if (results_dir / shared_name(t)).exists() else None
            for t in frames
        }
        atomic_write_text(
            results_dir / JOURNAL_FILE,
            json.dumps({"run_id": run_id, "marker": str(marker.resolve()) if marker else None, "sizes": sizes}),
            durable=True,
        )
        crashpoints.reached("shared-journal")
        try:
            for i, (table, df) in enumerate(frames.items(), 1):
                path = results_dir / shared_name(table)
                fresh = sizes[shared_name(table)] in (None, 0)
                text = df.reindex(columns=headers[table], fill_value="").to_csv(index=False, header=fresh)
                try:
                    with open(path, "a", newline="") as f:
                        f.write(text)
                        f.flush()
                        os.fsync(f.fileno())
                except OSError as err:
                    raise _named(err, path) from err
                if i == 1:
                    crashpoints.reached("shared-table-1")
            sync_folder(results_dir)  # a table the append created has its entry on disk before the marker
            crashpoints.reached("shared-tables-all")
            if marker is not None:
                atomic_write_text(marker, marker_text(run_id, results_dir), durable=True)
        except BaseException:  # a full disk (a quota, an I/O error) or a second Ctrl-C (KeyboardInterrupt) before the
            _roll_back(results_dir)  # marker: undo the append now, not at the next one (a reader in between saw its rows)
            raise
        crashpoints.reached("shared-marker")
        (results_dir / JOURNAL_FILE).unlink()
    return f"appended to {len(frames)} shared table(s)"


def is_shared_table(path: Path) -> bool:
    """A CSV in results_dir whose first column is run_id, as every shared table's (it starts with the run
    context, prune_cli/core/tables.py). Only together with a name in `table_names` is it prune-run's."""
    with open(path, newline="") as f:
        return f.readline().split(",", 1)[0].strip() == "run_id"


def table_names(results_dir: Path) -> set[str]:
    """The names of the tables prune-run writes in results_dir: the built-in per-run and shared tables,
    the built-in metrics' tables and those the run directories under runs/ hold (a plugin metric's).
    Any other CSV there is the user's: never removed, never checked."""
    held = {shared_name(p.name) for p in Path(results_dir).glob("runs/*/*.csv")}
    return (set(RUN_TABLES) | set(BUILTIN_METRIC_TABLES) | held) - set(NOT_SHARED)


def tables_present(results_dir: Path) -> list[str]:
    """The CSVs in results_dir that are tables prune-run writes (those `table_names` lists), found
    without listing every run directory's files: a built-in name, or a name some run directory holds
    (the scan stops at the first). The check before every run calls it: `table_names` read all of
    runs/*/ twice (0.2 s per run start in a results_dir of 3000 runs; 0.04 s now, with two user CSVs)."""
    builtin = (set(RUN_TABLES) | set(BUILTIN_METRIC_TABLES)) - set(NOT_SHARED)
    return [p.name for p in sorted(Path(results_dir).glob("*.csv")) if p.name in builtin or _held_by_a_run(results_dir, p.name)]


def _held_by_a_run(results_dir: Path, name: str) -> bool:
    """Whether some run directory holds a per-run table `name` (not a built-in name: the same in both)."""
    try:
        with os.scandir(Path(results_dir) / "runs") as entries:
            return any(e.is_dir() and os.path.isfile(os.path.join(e.path, name)) for e in entries)
    except OSError:
        return False


RUN_FILES = ("config.yaml", "COMPLETE", "provenance.json", MARKER_FILE)  # files a run directory holds


def check_rebuild_folder(results_dir: Path) -> None:
    """Refuse a folder a rebuild would damage: a run directory (its per-run CSVs, the source of truth,
    would be taken for shared tables and removed) or a folder without runs/ (nothing to rebuild from:
    its shared tables are the only copy of the rows)."""
    results_dir = Path(results_dir)
    held = [f for f in RUN_FILES if (results_dir / f).exists()]
    if results_dir.resolve().parent.name == "runs" or held:
        where = results_dir.resolve().parent.parent if results_dir.resolve().parent.name == "runs" else None
        raise SharedTableError(
            f"{results_dir} is a run directory ({'it holds ' + ', '.join(held) if held else 'it is inside a runs/ folder'}), "
            f"not a results_dir; give the results_dir that holds runs/<run id>/ folders"
            + (f" (here: {where})" if where else "")
            + "; nothing was changed"
        )
    if not (results_dir / "runs").is_dir():
        raise SharedTableError(
            f"{results_dir} has no runs/ folder, so there is nothing to rebuild its shared tables from (they are the only "
            f"copy of their rows there); give a results_dir that holds runs/<run id>/ folders; nothing was changed"
        )


def ignored_run_files(results_dir: Path) -> list[str]:
    """A line when runs/ itself holds a run's files (`RUN_FILES`), which a rebuild never reads (it reads
    runs/<run id>/): `hydra.sweep.subdir=''`, refused since 2026-12-04, put a run there, and the rebuild then
    rewrote the shared tables without its rows and said nothing of them."""
    runs = Path(results_dir) / "runs"
    held = [f for f in RUN_FILES if (runs / f).exists()]
    if not held:
        return []
    return [
        f"runs/: left out (it holds {', '.join(held)}: a run's files in runs/ itself, which the rebuild never reads; "
        "move them into a folder runs/<run id>/ of their own to include them)"
    ]


def rebuild(results_dir: Path) -> list[str]:
    """Recreate every shared table from the finished run directories (union of their columns);
    returns one line per table saying what was written. A run is finished for the shared tables once
    it appended (its marker: its per-run files were final before its append) or completed: a run
    between its append and COMPLETE (killed there, or still running) keeps its rows and its marker,
    so it never appends them twice and never loses them. A shared table no finished run writes is
    removed (its rows were of runs deleted since) if its name is one prune-run writes (`table_names`);
    any other CSV is the user's and stays. A run directory, or a folder without runs/, is refused
    (`check_rebuild_folder`) before anything is changed. The runs are listed under the results lock: a run
    that appends while the rebuild waits for the lock is in the rebuilt tables."""
    results_dir = Path(results_dir)
    check_rebuild_folder(results_dir)
    report = []
    with results_lock(results_dir):
        done = recover(results_dir)
        if done:
            report.append(done)
        _remove_leftovers(results_dir)
        complete = sorted({p.parent for pattern in ("COMPLETE", MARKER_FILE) for p in results_dir.glob(f"runs/*/{pattern}")})
        complete, skipped = one_per_run_id(complete)
        report += [f"runs/{name}: left out ({why})" for name, why in skipped.items()]
        report += ignored_run_files(results_dir)
        for run_dir in sorted(d for d in results_dir.glob("runs/*") if d.is_dir() and not d.name.startswith(".")):
            if run_dir in complete and not (run_dir / "COMPLETE").exists():
                report.append(
                    f"runs/{run_dir.name}: taken without COMPLETE (it had appended its rows: killed after, or still running)"
                )
            elif run_dir not in complete and run_dir.name not in skipped:
                why = (
                    "failed: failed.json"
                    if (run_dir / "failed.json").exists()
                    else "unfinished: no COMPLETE and no SHARED_APPENDED marker"
                )
                report.append(f"runs/{run_dir.name}: left out ({why})")
        per_table: dict[str, list[pd.DataFrame]] = {}
        for run_dir in complete:
            for table, df in run_tables(run_dir).items():
                per_table.setdefault(shared_name(table), []).append(df)
        refuse_symlinks(results_dir, per_table)
        # every table written to its temporary file before any is renamed into place: a stop while writing (a full
        # disk, a Ctrl-C, a kill) leaves every table as it was; before 2026-12-04 one table at a time, so a stop left
        # some rebuilt and some not. A kill between two renames still can; `append` handles that state (each table
        # gets the run's rows it lacks), and the same rebuild run again finishes it
        texts = {}
        for name, parts in sorted(per_table.items()):
            columns = union_columns(df.columns for df in parts)
            schemas = len({tuple(df.columns) for df in parts})
            table = pd.concat([df.reindex(columns=columns, fill_value="") for df in parts], ignore_index=True)
            texts[results_dir / name] = table.to_csv(index=False)
            report.append(
                f"{name}: {len(table)} rows from {len(parts)} runs, {len(columns)} columns"
                + (f" (the union of {schemas} column sets)" if schemas > 1 else "")
            )
        atomic_write_texts(texts, durable=True)
        ours = table_names(results_dir)
        for path in sorted(results_dir.glob("*.csv")):
            if path.name in per_table or path.is_symlink() or not is_shared_table(path):
                continue
            if path.name in ours:
                path.unlink()
                report.append(f"{path.name}: removed (no completed run writes it)")
            else:
                report.append(f"{path.name}: left alone (not a table prune-run writes: the user's)")
        for run_dir in complete:
            atomic_write_text(run_dir / MARKER_FILE, marker_text(dir_run_id(run_dir), results_dir), durable=True)
    return report
