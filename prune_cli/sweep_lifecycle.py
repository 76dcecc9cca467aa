"""A sweep's start and end in this process (`prune-run -m`): `SweepSummary`, the callback that
configs/config.yaml names in `hydra.callbacks` ("N of M runs failed" at the end, and the exit code);
the record of what a sweep's start made (results_dir/.sweeps, runs/multirun.yaml, the launcher's own
files), put back when the sweep is rejected or its launcher fails before any job ran; and the reports
of a sweep stopped by a signal and of a launcher that failed. Also the errors that carry a rejected
config or a failed launcher past Hydra to `main` (`_PastHydra`), and `_reject_composition`, which puts
back what a sweep's start made and exits 2.

Hydra imports the callback by its dotted name while `python -m prune_cli.cli` runs the entry point's
file as `__main__`; this module is never `__main__`, so both see one copy of the sweep's state."""

from __future__ import annotations

import datetime as _dt
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .core import crashpoints
from .core.atomic_io import atomic_write_bytes
from .core.paths import user_path
from .core.errors import PruneCliError
from .run import sweep_record, sweep_stop
from .run.composition_errors import as_config_error
from .run_directories import _CREATED, _reject, reject_results_dir, usable_results_dir

_SWEEP_CREATED: list[Path] = []  # results_dir and results_dir/.sweeps when the current sweep created them
# (runs/multirun.yaml, its bytes before the current sweep or None): a rejected sweep puts them back
_MULTIRUN_YAML: list[tuple[Path, bytes | None]] = []
# The current sweep's launcher: its choice (`hydra/launcher=slurm`), and its own folder (submitit's
# `submitit_folder` up to the job id) with the names in it before the sweep (None: the folder was not there)
_LAUNCHER: dict[str, Any] = {}
# Sweep jobs composed by the sweeper's check, for the launcher: (loader id, master config id, overrides)
# -> (master config, a copy of the job's config). Bounded (SWEEP_JOBS_KEPT); emptied at the end of every
# sweep. Filled by hydra_patches.py `_compose_each_sweep_job_once`.
_SWEEP_JOBS: dict[tuple, tuple[DictConfig, DictConfig]] = {}


class _PastHydra(BaseException):
    """An error on its way to `main` past Hydra's `except Exception` (which would print its traceback)."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


class _CompositionRejected(_PastHydra):
    """A config Hydra could not compose."""


class _LauncherFailed(_PastHydra):
    """A sweep's launcher raised (no SLURM here, sbatch refused the array job, a parallel worker was
    killed)."""


def _note_the_launcher(config: DictConfig) -> None:
    """What `_undo_sweep_start` needs to put back if the launcher fails before any job ran: its name,
    and the files in its own folder (submitit's `submitit_folder`, up to the first `%` placeholder)."""
    choice = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/launcher")
    _LAUNCHER.clear()
    _LAUNCHER["name"] = f"hydra/launcher={choice}" if choice else "the launcher"
    own = OmegaConf.select(config, "hydra.launcher.submitit_folder", default=None)
    if own:
        parts = Path(str(own)).parts
        folder = Path(*parts[: next((i for i, p in enumerate(parts) if "%" in p), len(parts))])
        _LAUNCHER["folder"] = folder
        _LAUNCHER["before"] = {p.name for p in folder.iterdir()} if folder.is_dir() else None
        _LAUNCHER["created"] = [d for d in (folder, *folder.parents) if not d.exists()]


class SweepSummary(Callback):
    """At the end of a multirun: "N of M runs failed" with each failed run directory and reason,
    and a non-zero exit (cluster scripts check it) unless `allow_failures=true`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = user_path(config.results_dir) / ".sweeps"
        problem = usable_results_dir(str(config.results_dir)) if config.results_dir else "it is empty"
        if problem is not None:  # before the sweeper writes multirun.yaml (a hydra.sweep.dir of its own
            reject_results_dir(config.results_dir, problem)  # never resolves `${runs_dir:}`, which said it)
        _SWEEP_CREATED[:] = [d for d in (folder.parent, folder) if not d.exists()]
        sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
        _SWEEP_CREATED.extend(d for d in (sweep_dir, *sweep_dir.parents) if not d.exists())  # the sweeper makes it next
        record = sweep_dir / "multirun.yaml"  # Hydra's sweeper rewrites it next
        _MULTIRUN_YAML[:] = [(record, record.read_bytes() if record.is_file() else None)]
        _note_the_launcher(config)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        path = (folder / f"{stamp}-{os.getpid()}.jsonl").resolve()
        os.environ[sweep_record.SWEEP_RECORD_ENV] = str(path)
        sweep_stop.retire_earlier_workers(config.hydra.launcher)  # they know an earlier sweep's record
        if sweep_stop.handles(config.hydra.launcher):  # before the record exists: a signal from then on is handled
            sweep_stop.install(str(path), config.hydra.launcher)
        for attempt in range(3):  # another sweep's end removes the folder when it finds it empty
            folder.mkdir(parents=True, exist_ok=True)
            try:
                path.touch()
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        crashpoints.hold("sweep-started")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        signum = sweep_stop.stopped_by()
        sweep_stop.restore_signals()
        _SWEEP_JOBS.clear()  # copies no launcher asked for (a sweeper that does not check its batches)
        _MULTIRUN_YAML.clear()  # the sweep ran: its multirun.yaml stays
        _LAUNCHER.clear()
        path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
        if not path or not Path(path).exists():
            return
        lines = sweep_record.outcomes(path)
        stopping = sweep_record.stopping(path)
        sweep_record.remove(path)
        if stopping or signum is not None:
            _report_stopped_sweep(lines, signum)
        failed = [x for x in lines if x["status"] not in ("completed", "skipped")]
        skipped = [x for x in lines if x["status"] == "skipped"]
        if not failed and not skipped:
            print(f"prune-run: all {len(lines)} runs of the sweep completed", file=sys.stderr)
            return
        print(f"prune-run: {len(failed)} of {len(lines)} runs failed:", file=sys.stderr)
        for x in failed:
            print(f"  {x['run_dir']}: {x['reason']}", file=sys.stderr)
        if skipped:
            print(f"prune-run: {len(skipped)} runs not started after the failure (fail_fast=true):", file=sys.stderr)
            for x in skipped:
                print(f"  {Path(x['run_dir']).name}", file=sys.stderr)
        if not config.get("allow_failures", False):
            sys.exit(1)


def _report_stopped_sweep(outcomes: list[dict], signum: int | None) -> None:
    """The end of a local sweep a signal stopped (prune_cli/run/sweep_stop.py): which runs stopped
    (each kept its last checkpoint), how many queued runs did not start, how to resume; exit 128 +
    signal like one run."""
    started = [x for x in outcomes if x["status"] not in ("skipped", "not-started")]
    unfinished = [x for x in started if x["status"] != "completed" and not (Path(x["run_dir"]) / "COMPLETE").exists()]
    signum = signum or _signal_of(unfinished)
    name, done = signal.Signals(signum).name, len(started) - len(unfinished)
    print(f"prune-run: sweep stopped by {name}: {done} of the {len(started)} runs that started completed", file=sys.stderr)
    for x in unfinished:
        print(f"  {x['run_dir']}: {_how_it_stopped(x)}", file=sys.stderr)
    skipped = sum(x["status"] == "skipped" for x in outcomes)
    given = sweep_stop.jobs_given()  # every job of every batch; 0 when unknown: those recorded as not started
    queued = given - len(started) - skipped if given else len(outcomes) - len(started) - skipped
    if queued:
        print(f"prune-run: {queued} queued run{'s were' if queued > 1 else ' was'} not started", file=sys.stderr)
    print("prune-run: run the same command again to resume the sweep (completed runs are not repeated)", file=sys.stderr)
    sys.exit(128 + signum)


def _signal_of(outcomes: list[dict]) -> int:
    """The signal a worker's job was stopped by, from its record ("Interrupted: SIGTERM")."""
    for x in outcomes:
        if x["status"] == "stopped" and x["reason"].startswith("Interrupted: SIG"):
            return int(signal.Signals[x["reason"].split(": ", 1)[1]])
    return int(signal.SIGTERM)


def _how_it_stopped(outcome: dict) -> str:
    if outcome["status"] != "stopped":
        return outcome["reason"] or outcome["status"]
    if (Path(outcome["run_dir"]) / "state.pt").exists():
        return "stopped at a safe point; its checkpoint (state.pt) is kept"
    return "stopped before its first checkpoint"


def _reject_composition(err: Exception) -> None:
    """A config Hydra could not compose (prune_cli/run/composition_errors.py): exit 2 like every config
    error, and remove what a sweep had made before its sweeper composed the jobs, so a rejected config
    creates nothing."""
    _undo_sweep_start()
    _reject(str(err if isinstance(err, PruneCliError) else as_config_error(err, sys.argv[1:])))


def _undo_sweep_start() -> None:
    """Put the results folder back as a sweep that ran no job found it: the sweep's record,
    multirun.yaml, the files its launcher wrote (submitit's pickled jobs and sbatch script) and the
    folders this process created."""
    _SWEEP_JOBS.clear()
    path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    if path and Path(path).is_file():
        if Path(path).read_text().strip():  # a job started: its run and the sweep's multirun.yaml stay
            _MULTIRUN_YAML.clear()
            _LAUNCHER.clear()
        else:
            Path(path).unlink()
    for record, before in _MULTIRUN_YAML:  # the sweeper wrote it before it composed the jobs
        if before is None:
            record.unlink(missing_ok=True)
        elif not record.is_file() or record.read_bytes() != before:
            atomic_write_bytes(record, before)
    _MULTIRUN_YAML.clear()
    folder, before = _LAUNCHER.pop("folder", None), _LAUNCHER.pop("before", None)
    if folder is not None and folder.is_dir():
        for one in folder.iterdir():
            if one.is_file() and (before is None or one.name not in before):
                one.unlink()
    for made in sorted({*_CREATED, *_SWEEP_CREATED, *_LAUNCHER.pop("created", [])}, key=lambda p: -len(p.parts)):
        try:  # deepest first
            made.rmdir()
        except OSError:
            pass  # not empty: a run or another sweep's record is in it
    _SWEEP_CREATED.clear()


def _launcher_failed(err: Exception) -> bool:
    """Whether `err` came out of the launcher of a sweep under way."""
    from hydra.plugins.launcher import Launcher

    if not _MULTIRUN_YAML:  # no sweep under way (its end clears the record)
        return False
    return any(isinstance(frame.f_locals.get("self"), Launcher) for frame, _ in traceback.walk_tb(err.__traceback__))


def _report_launcher_failure(err: Exception) -> None:
    """The launcher's own reason (sbatch's error is in it), exit 1. Before any job started, the results
    folder is put back as it was; after, the runs stay and each one that did not complete is named."""
    name = _LAUNCHER.pop("name", "the launcher")
    reason = f"{type(err).__name__}: {err}".strip()
    path = os.environ.get(sweep_record.SWEEP_RECORD_ENV)
    outcomes = sweep_record.outcomes(path) if path and Path(path).is_file() else []
    if not outcomes:
        _undo_sweep_start()
        print(f"prune-run: error: {name} could not start the sweep; no job ran and nothing was kept: {reason}", file=sys.stderr)
        sys.exit(1)
    os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    sweep_record.remove(path)
    _MULTIRUN_YAML.clear()  # jobs ran: the sweep's multirun.yaml stays
    _LAUNCHER.clear()
    unfinished = [x for x in outcomes if x["status"] != "completed"]
    print(f"prune-run: error: {name} stopped the sweep: {reason}", file=sys.stderr)
    print(
        f"prune-run: {len(outcomes) - len(unfinished)} of the {len(outcomes)} runs that started completed; "
        f"these did not (run the same command again to resume them; completed runs are not repeated):",
        file=sys.stderr,
    )
    for x in unfinished:
        print(f"  {x['run_dir']}: {x['reason'] or x['status']}", file=sys.stderr)
    sys.exit(1)
