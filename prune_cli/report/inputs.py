"""prune-report's checks of its two folders, before any work (docs/report.md "Bad input"): RESULTS_DIR
must be the results_dir of prune-run, --out a directory it can write. Each check returns why not, as
one line naming the argument, the value and what is allowed, or None. Standard library only: the
command runs them before it imports pandas (prune_cli/report/__init__.py)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from ..core.writable import directory_problem

__all__ = ["RESULTS_DIR_EXPECTED", "OUT_ALLOWED", "ReportInputError", "confidence_problem", "results_dir_problem", "out_problem"]


class ReportInputError(ValueError):
    """A bad argument or input file of prune-report, found by its own checks: the command prints the
    message as one line and exits 2. Any other error is a bug and keeps its traceback (a ValueError from
    inside the report was printed as a usage error, hiding where it came from)."""


RESULTS_DIR_EXPECTED = (
    "expected the results_dir of prune-run: a folder holding run directories (runs/<run id>/) "
    "or the shared CSVs (runs.csv, per_class.csv, layers.csv)"
)
OUT_ALLOWED = "allowed: a directory that exists and is writable, or one that can be created"

# What only a run directory holds (prune_cli/cli.py, prune_cli/run/experiment.py): COMPLETE is written
# last, failed.json by a failed run, the others from a run's start.
RUN_DIR_MARKERS = ("COMPLETE", "failed.json", "provenance.json", "prune-run.log", ".hydra", "state.pt")


def confidence_problem(confidence: float) -> Optional[str]:
    """Why `confidence` (--confidence c) cannot be used, or None. c must be in (0, 1), and so must the test level
    1 - c as floating point computes it, and the upper quantile (1 + c) / 2 of the Student-t intervals must be
    below 1, where the quantile at the fewest degrees of freedom (1, two seeds) is finite: 1 - 1e-320 is 1.0, which
    tested at level 1 and claimed a direction at p = 0.13; (1 + 0.9999999999999999) / 2 is 1.0, whose quantile is
    infinite and gave the interval [-inf, +inf]; below 2**-53 (1.1e-16) (1 + c) / 2 is 0.5, a zero quantile: the interval
    [mean, mean]. Allowed: about 1.2e-16 <= c <= 0.9999999999999998."""
    c = confidence
    if not (0 < c < 1 and 0 < 1 - c < 1 and 0.5 < (1 + c) / 2 < 1 and 0.5 + c / 2 < 1):
        return (
            f"--confidence must be in (0, 1), with the test level 1 - c inside (0, 1) and a finite t quantile in "
            f"floating point (about 1.2e-16 <= c <= 0.9999999999999998), got {c!r}"
        )
    return None


def _is_run_dir(d: Path) -> bool:
    return any((d / m).exists() for m in RUN_DIR_MARKERS)


def _has_run_dirs(runs: Path) -> bool:
    """`runs` holds at least one run directory (completed, failed or unfinished: prune-report lists them all)."""
    try:
        return any(d.is_dir() and not d.name.startswith(".") for d in runs.iterdir())
    except OSError:  # no such folder, or not a folder
        return False


def _has_shared_csv(root: Path) -> bool:
    """A non-empty CSV in `root` whose header has a run_id column (what prune_cli.results.load reads
    when there are no run directories)."""
    for path in root.glob("*.csv"):
        try:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        if "run_id" in header:
            return True
    return False


def _named(path: Path) -> Path:
    """`path` with a name of its own, so that its parents are real folders (".", ".." resolved)."""
    return path if path.name not in ("", "..") else path.resolve()


def results_dir_problem(root: Path) -> Optional[str]:
    """Why `root` is not a results_dir prune-report can read, or None. A results_dir holds run
    directories in runs/, or (run directories left on a cluster) the shared CSVs; a run directory or
    a runs/ folder given instead is named as such, with the results_dir to give."""
    root = Path(root)
    if not root.exists():
        return f"results_dir {root} does not exist; {RESULTS_DIR_EXPECTED}"
    if not root.is_dir():
        return f"results_dir {root} is a file, not a results folder; {RESULTS_DIR_EXPECTED}"
    if _has_run_dirs(root / "runs"):
        return None
    named = _named(root)
    if _is_run_dir(root):
        hint = f"; its results_dir is {named.parent.parent}: prune-report {named.parent.parent}" if named.parent.name == "runs" else ""
        return f"results_dir {root} is a run directory, not a results folder; {RESULTS_DIR_EXPECTED}{hint}"
    if _has_shared_csv(root):
        return _shared_runs_problem(root / "runs.csv")
    if named.name == "runs" or any(d.is_dir() and _is_run_dir(d) for d in root.iterdir()):
        return (
            f"results_dir {root} is a runs/ folder, not a results folder; {RESULTS_DIR_EXPECTED}; "
            f"its results_dir is {named.parent}: prune-report {named.parent}"
        )
    return f"results_dir {root} holds no runs (no run directory in runs/, no shared CSV); {RESULTS_DIR_EXPECTED}"


# The columns of runs.csv that a report of shared CSVs alone reads (prune-run has written them since its
# first version): without run directories the experiment keys come from them.
SHARED_RUNS_COLUMNS = ("run_id", "seed", "dataset", "model", "method", "score", "schedule", "target_sparsity")
SHARED_RUNS_COLUMNS += ("phase", "split", "metric", "value")


def _shared_runs_problem(path: Path) -> Optional[str]:
    """Why the shared runs.csv of a folder without run directories cannot be reported, or None: a file
    missing context columns (hand-made, or another tool's) stopped the report with a KeyError."""
    try:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
    except FileNotFoundError:
        return None  # per_class.csv or layers.csv alone: the report says what the folder holds
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return f"results_dir {path.parent}: its runs.csv cannot be read ({type(e).__name__}: {e}); {RESULTS_DIR_EXPECTED}"
    missing = [c for c in SHARED_RUNS_COLUMNS if c not in header]
    if not missing or not header:
        return None
    return (
        f"results_dir {path.parent} has no run directories and its runs.csv lacks the column(s) {', '.join(missing)}; "
        f"allowed: a runs.csv as prune-run writes it (columns {', '.join(SHARED_RUNS_COLUMNS)}, ...), or the run directories"
    )


def _inside(path: Path, folder: Path) -> bool:
    """`path` is `folder` or lies below it, symbolic links and relative parts resolved (neither needs to exist)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


# Files only prune-run writes in a run directory (a `.hydra/` or a `state.pt` may be any Hydra app's)
PRUNE_RUN_FILES = ("COMPLETE", "SHARED_APPENDED", "provenance.json", "prune-run.log", "failed.json")


def _starts_with_run_id(path: Path) -> bool:
    """`path` is a file whose first line starts with `run_id`, as prune-run's shared CSVs do."""
    try:
        with open(path, newline="") as f:
            return f.readline().startswith("run_id")
    except OSError:
        return False


def _results_runs_above(out: Path) -> Optional[Path]:
    """The runs/ folder of a results folder (one whose runs/ holds a run directory, holding a file only
    prune-run writes, or that holds prune-run's shared runs.csv) that `out` lies in, or None: a report written there
    is read as a run by every later report of that folder. A folder named runs/ that no results folder
    owns is a plain folder (a report written there before does not make it one)."""
    for folder in [out.resolve(), *out.resolve().parents]:
        if folder.name != "runs" or not folder.is_dir():
            continue
        try:
            if _starts_with_run_id(folder.parent / "runs.csv") or any(
                d.is_dir() and any((d / m).exists() for m in PRUNE_RUN_FILES) for d in folder.iterdir()
            ):
                return folder
        except OSError:  # an unreadable folder: the write check below names it
            continue
    return None


def out_problem(out, default: bool = False, root: Optional[Path] = None) -> Optional[str]:
    """Why prune-report cannot write into `out`, or None: it must be a writable directory, or one that
    can be created, tried rather than guessed (prune_cli/core/writable.py: os.access says yes to root
    even where nothing can be created, /proc). `default`: `out` is RESULTS_DIR/report, not given by --out.
    An empty `out` (Path("") is the current directory) is refused, and so is a folder in the runs/
    folder of the results_dir `root`: every folder there is a run, and later reports would list the
    report as an unfinished one."""
    if isinstance(out, str) and not out:
        return (
            "--out is empty (''): it would write the report into the current directory; give a folder, "
            f"or leave --out out for RESULTS_DIR/report; {OUT_ALLOWED}"
        )
    out = Path(out)
    if root is not None and _inside(out, Path(root) / "runs"):
        return (
            f"--out {out} lies inside {Path(root) / 'runs'}, the runs/ folder of the results_dir, where every folder is a run: "
            "every later prune-report would list the report as an unfinished run; "
            f"give a folder outside runs/ (the default is {Path(root) / 'report'})"
        )
    other = _results_runs_above(out)
    if other is not None:
        return (
            f"--out {out} lies inside {other}, the runs/ folder of the results folder {other.parent}, where every folder is a run: "
            f"every later prune-report of {other.parent} would list the report as an unfinished run; give a folder outside it"
        )
    name = f"--out {out}" + (" (the default, RESULTS_DIR/report)" if default else "")
    if out.is_symlink() and not out.exists():
        return f"{name} is a broken symbolic link; {OUT_ALLOWED}"
    problem = directory_problem(str(out), try_create=True)  # starts with the path
    default_note = " (the default, RESULTS_DIR/report)" if default else ""
    return f"--out {problem}{default_note}; {OUT_ALLOWED}" if problem else None
