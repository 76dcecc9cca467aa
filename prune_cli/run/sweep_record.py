"""A sweep's record: one JSON line per job event, appended by the jobs, read by the sweep's process.

Every job of a multirun appends `{"run_dir", "status", "reason"}` when it starts ("started") and when
it ends ("completed", "failed", "stopped", or "skipped" after a fail-fast failure) to the file named
by SWEEP_RECORD_ENV, whichever process it runs in (the sweep's own for Hydra's basic launcher, joblib's
workers, SLURM's nodes). The sweep's process reads it at the end (the summary of failed runs), when
its launcher fails, and when a signal stops it (prune_cli/run/sweep_stop.py). A job with only its
start recorded was killed from outside. Lines are written with one O_APPEND write, so the lines of
parallel jobs never interleave (docs/robustness.md). A line the disk cannot take (full) is a warning,
and the job goes on; a torn line (a short write on a full disk) is skipped by the reader.

A job whose record is gone (its folder removed by hand, or by an older prune-cli whose submit host
stopped waiting while array jobs were still queued) still does its run: it logs a warning and records
nothing. The record is not made again: nobody would read it, and it would stay in results_dir/.sweeps.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

from ..core.processes import alive as _alive, here as _here

log = logging.getLogger(__name__)

SWEEP_RECORD_ENV = "PRUNE_CLI_SWEEP_RECORD"  # jobs of a sweep append their outcome here (one JSON line)
FAILED_SUFFIX = ".failed"  # beside the record when a job's `failed` line did not fit (a full disk): fail_fast reads it
_FAILED_HERE: dict[str, str] = {}  # sweep record -> the run directory of a job of this process that failed in it
STOP_SUFFIX = ".stop"  # beside the record while a signal stops the sweep: a job starting then does not run

_WARNED: set = set()  # records found gone (a path), or not writable ((path, "write")), by this process: said once

NO_OUTCOME = (
    "it ended without recording an outcome (killed: out of memory, a time limit, a lost node?); "
    "run the same command again to resume it"
)


def current() -> str | None:
    """This sweep's record (None outside a sweep)."""
    return os.environ.get(SWEEP_RECORD_ENV)


def record_outcome(run_dir: Path, status: str, err: BaseException | None = None) -> None:
    """One line per job event in the sweep's record; nothing outside a sweep, nor when the record is
    gone (a warning, once per record: the job goes on with its run)."""
    path = current()
    if not path:
        return
    if status == "failed":
        _FAILED_HERE.setdefault(path, str(run_dir))
    reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}" if err is not None else ""
    line = json.dumps({"run_dir": str(run_dir), "status": status, "reason": reason, "pid": os.getpid()}) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # never O_CREAT: the sweep's start made it
    except FileNotFoundError:
        if path not in _WARNED:
            _WARNED.add(path)
            log.warning(
                "the sweep's record %s is gone (its sweep's process no longer follows it): run %s goes on "
                "without recording its outcome there",
                path,
                run_dir,
            )
        return
    data = line.encode()
    try:
        written = os.write(fd, data)  # one write with O_APPEND: lines of parallel jobs never interleave
        if written < len(data):  # a full disk took part of the line: end it, so the next job's line stands alone
            os.write(fd, b"\n")
            raise OSError(errno.ENOSPC, f"only {written} of the line's {len(data)} bytes were written")
    except OSError as err:
        _not_written(path, run_dir, status, err)
        if status == "failed":
            _mark_failed(path, run_dir)
    finally:
        os.close(fd)


def _mark_failed(path: str, run_dir: Path) -> None:
    """A `failed` line the disk refused: an empty file beside the record (a name needs no data block, where
    a full disk may still hold it; the run directory written into it when that fits too), so that a fail-fast
    sweep's later jobs in other workers still find the failure (`failed_in_this_sweep`)."""
    try:
        fd = os.open(path + FAILED_SUFFIX, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        os.write(fd, str(run_dir).encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _not_written(path: str, run_dir: Path, status: str, err: OSError) -> None:
    """A line the record cannot take (a full disk, docs/robustness.md): a warning naming the record, once
    per record, and the job goes on, as when the record is gone. Its write's `OSError(28)` names no file
    and escaped the job: a traceback in place of the run's own outcome (its one line, its failed.json)."""
    if (path, "write") in _WARNED:
        return
    _WARNED.add((path, "write"))
    log.warning(
        "the sweep's record %s cannot be written (%s): run %s goes on without its %r line there; "
        "the sweep's summary may list it as ended without an outcome",
        path,
        err.strerror or err,
        run_dir,
        status,
    )


_LINE_START = '{"run_dir": '  # every line `record_outcome` writes starts so (json.dumps keeps the key order)


def _lines(path: str | Path) -> list[dict]:
    """The record's lines; a torn one (a short write on a full disk: `record_outcome`) is skipped:
    a strict prefix of a JSON object never parses. On a real full disk the newline that should end it
    does not fit either, so the next job's whole line follows the torn one on the same line: that
    line, from its own start, is kept."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                log.debug("skipped a torn line of the sweep's record %s: %r", path, line)
                start = line.rfind(_LINE_START)
                if start > 0:
                    try:
                        out.append(json.loads(line[start:]))
                    except ValueError:
                        pass
    return out


def _last(path: str | Path) -> dict[str, dict]:
    """The last record of each job (run directory), in the order the jobs started."""
    return {one["run_dir"]: one for one in _lines(path)}


def outcomes(path: str | Path) -> list[dict]:
    """The last record of each job, in the order the jobs started (a requeued job starts again; a job
    with only its start recorded was killed from outside and gets NO_OUTCOME)."""
    return [x if x["status"] != "started" else {**x, "reason": NO_OUTCOME} for x in _last(path).values()]


def running(path: str | Path) -> dict[str, int]:
    """The jobs that started and have not recorded an outcome yet: run directory -> the process id of
    the worker running it."""
    return {run_dir: int(x.get("pid", 0)) for run_dir, x in _last(path).items() if x["status"] == "started"}


def failed_in_this_sweep() -> str | None:
    """The run directory of a job of this sweep that failed (None: none yet): from the record, else a job of
    this process that failed, else the mark a `failed` line the disk refused left beside the record
    (`_mark_failed`; its run directory, or a phrase when even that did not fit)."""
    path = current()
    if not path or not Path(path).exists():
        return None
    found = next((x["run_dir"] for x in _lines(path) if x["status"] == "failed"), None) or _FAILED_HERE.get(path)
    if found is None and Path(path + FAILED_SUFFIX).exists():
        try:
            found = Path(path + FAILED_SUFFIX).read_text().strip()
        except OSError:
            found = ""
        found = found or "a job whose 'failed' line the full disk refused"
    return found


def stopping(path: str | None = None) -> bool:
    """Whether a signal is stopping this sweep (its process marked it: prune_cli/run/sweep_stop.py)."""
    path = path or current()
    return bool(path) and Path(path + STOP_SUFFIX).exists()


def mark_stopping(path: str | None) -> None:
    """Mark the sweep as stopping (nothing outside a sweep); also when the signal came before the sweep's
    record (its folder) was made."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path + STOP_SUFFIX).touch()


def remove(path: str | None) -> None:
    """Remove a sweep's record (and its stop and failed marks), and results_dir/.sweeps when no other sweep's
    record is in it."""
    if not path:
        return
    Path(path).unlink(missing_ok=True)
    Path(path + STOP_SUFFIX).unlink(missing_ok=True)
    Path(path + FAILED_SUFFIX).unlink(missing_ok=True)
    _FAILED_HERE.pop(path, None)  # a later sweep of this process may get the same record's name (same second)
    try:
        Path(path).parent.rmdir()
    except OSError:
        pass  # another sweep's record is still there


def local_name(stamp: str) -> str:
    """The record's file name for a sweep whose jobs run on this host (basic, joblib, submitit's local
    launcher): `<stamp>-<pid>@<host>~<pid namespace>.jsonl`, so a later local sweep of the same host and
    pid namespace can tell that its process is gone (`remove_stale`). A SLURM sweep's record has no host
    (`<stamp>-<pid>.jsonl`): its jobs outlive the submit host's process and write to it, so it is never
    removed as stale."""
    return f"{stamp}-{os.getpid()}@{_here()}.jsonl"


def remove_stale(folder: Path) -> list[tuple[Path, int]]:
    """At a local sweep's start: remove the records in results_dir/.sweeps of local sweeps of this host
    and pid namespace whose process was killed (SIGKILL: the OOM killer, `kill -9`), so it never reached its end, which
    removes the record; a record stays while its sweep's process or any job it records as running is
    alive (submitit's local jobs outlive a killed sweep). The records removed, with their sweep's pid."""
    host = _here()
    removed: list[tuple[Path, int]] = []
    if not folder.is_dir():
        return removed
    for record in sorted(folder.glob("*@*.jsonl")):
        stem, _, its_host = record.name[: -len(".jsonl")].partition("@")
        pid = stem.rsplit("-", 1)[-1]
        if its_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            jobs = running(record).values()
        except (OSError, ValueError):  # being removed by its own sweep's end, or a torn last line
            continue
        if any(_alive(job) for job in jobs if job):
            continue
        record.unlink(missing_ok=True)
        Path(str(record) + STOP_SUFFIX).unlink(missing_ok=True)
        Path(str(record) + FAILED_SUFFIX).unlink(missing_ok=True)
        _FAILED_HERE.pop(str(record), None)
        removed.append((record, int(pid)))
    return removed
