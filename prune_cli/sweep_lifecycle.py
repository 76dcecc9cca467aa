"""A sweep's start and end in this process (`prune-run -m`): `SweepSummary`, the callback that
configs/config.yaml names in `hydra.callbacks` ("N of M runs failed" at the end, and the exit code);
the record of what a sweep's start made (results_dir/.sweeps, runs/multirun.yaml, the launcher's own
files), put back when the sweep is rejected or its launcher fails before any job ran; and the reports
of a sweep stopped by a signal and of a launcher that failed. For a launcher whose jobs run on other
machines (SLURM), the jobs it submitted (`_CLUSTER`): the sweep's record stays while any of them may
still run. Also the errors that carry a rejected config or a failed launcher past Hydra to `main`
(`_PastHydra`), and `_reject_composition`, which puts back what a sweep's start made and exits 2.

Hydra imports the callback by its dotted name while `python -m prune_cli.cli` runs the entry point's
file as `__main__`; this module is never `__main__`, so both see one copy of the sweep's state."""

from __future__ import annotations

import datetime as _dt
import logging
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
from .core.errors import ConfigError, PruneCliError, cannot_use
from .core.writable import directory_problem
from .run import sweep_record, sweep_stop
from .run.composition_errors import as_config_error
from .run_directories import _CREATED, _reject, _remove_if_scaffolding, reject_results_dir, usable_results_dir

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
# The jobs a launcher that runs them elsewhere (`_runs_elsewhere`) submitted in the current sweep: "jobs"
# (submitit's Job objects, every one submitted), "running" (those not known to have ended) and
# "submitting" (True while its executor submits them). Filled by the wrapper of `_follow_cluster_jobs`.
_CLUSTER: dict[str, Any] = {}
# The run directories the current sweep's jobs make that did not exist when every job was checked: removed,
# where they hold only the scaffolding Hydra made (its log file, its .hydra record), when the sweep ends
# before any job started (`_undo_sweep_start`). Filled by hydra_patches.py `_validate_every_sweep_job_first`.
_SWEEP_RUN_DIRS: list[Path] = []
# results_dir/.sweeps of the current local sweep, until its earlier killed sweeps' records are removed (remove_stale_records)
_STALE_RECORDS_IN: list[Path] = []


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


def _runs_elsewhere(cfg: DictConfig) -> bool:
    """Whether the config's launcher runs the jobs on other machines (SLURM): their device is checked
    there, by each job, and they go on running when this process stops waiting for them."""
    return "SlurmLauncher" in str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))


def _runs_on_this_host(config: DictConfig) -> bool:
    """Whether the sweep's jobs run on this host, in processes that end with the sweep's (Hydra's basic
    launcher, joblib) or that it started (submitit's local launcher): its record can be found stale by
    a later sweep (sweep_record.remove_stale). Not SLURM's, nor a launcher prune-cli does not know."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    return any(name in target for name in ("BasicLauncher", "JoblibLauncher", "submitit_launcher.LocalLauncher"))


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
    _CLUSTER.clear()
    if _runs_elsewhere(config):
        _CLUSTER["sweep"] = True
        _follow_cluster_jobs(config.hydra.launcher)


def _follow_cluster_jobs(launcher: DictConfig) -> None:
    """Wrap the launcher class's `launch` once. hydra-submitit-launcher (1.2.0, pinned by the [cluster]
    extra) submits the array with its executor's `map_array`, then waits with `[j.results()[0] for j in
    jobs]`, which raises at the first job that was killed or raised while the others are still queued or
    running. The wrapper notes the jobs `map_array` submits (`_CLUSTER`) and, when `launch` raises, waits
    for every job before the error goes on, so the report knows each job's outcome and the sweep's
    record is removed only when no job can write to it any more. A job that cannot be waited for (the
    cluster cannot be asked) stays in `_CLUSTER["running"]`: its outcome is unknown."""
    cls = sweep_stop.launcher_class(launcher)
    if cls is None or getattr(cls.launch, "_prune_cli_follows_jobs", False):
        return
    original = cls.launch

    def launch(self, job_overrides, initial_job_idx):
        import submitit

        executor_class = submitit.AutoExecutor
        own, submit = executor_class.__dict__.get("map_array"), executor_class.map_array

        def map_array(executor, fn, *iterables):
            _CLUSTER["submitting"] = True  # stays so if a Ctrl-C stops the submission: jobs may be queued
            try:
                jobs = submit(executor, fn, *iterables)
            except Exception:
                _CLUSTER["submitting"] = False  # sbatch refused the array: none of its jobs was submitted
                _CLUSTER["refused"] = True
                raise
            _CLUSTER["submitting"] = False
            _CLUSTER.setdefault("jobs", []).extend(jobs)
            _CLUSTER.setdefault("running", []).extend(jobs)
            return jobs

        executor_class.map_array = map_array
        try:
            returns = original(self, job_overrides, initial_job_idx)
        except Exception as err:
            _wait_for_the_running_jobs(err)
            raise
        finally:
            if own is None:
                del executor_class.map_array
            else:
                executor_class.map_array = own
        _CLUSTER["running"] = []  # the launcher waited for every job
        return returns

    launch._prune_cli_follows_jobs = True  # type: ignore[attr-defined]
    cls.launch = launch


def _wait_for_the_running_jobs(err: Exception) -> None:
    """After a job's error: wait until every other submitted job has ended (as the launcher would have
    without the error). A job the cluster cannot be asked about any more stays running (outcome unknown)."""
    running = _CLUSTER.get("running", [])
    if len(running) > 1:
        first = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        print(f"prune-run: a job of the sweep did not end normally ({first}); waiting for the other jobs to end", file=sys.stderr)
    try:
        for job in list(running):
            job.wait()
            running.remove(job)
    except Exception:  # noqa: BLE001 - the submit host cannot follow the jobs: their outcome stays unknown
        pass


def _jobs_may_still_run() -> bool:
    """Whether jobs this sweep submitted to other machines may still be queued or running (or being
    submitted): their record must stay, they write to it."""
    return bool(_CLUSTER.get("running")) or bool(_CLUSTER.get("submitting"))


def _how_to_collect_or_cancel(
    path: str | None, lead: str = "prune-run: the jobs still queued or running on the cluster go on and"
) -> str:
    """What becomes of the jobs left on the cluster, how to collect their runs, how to cancel them."""
    ids = sorted({str(job.job_id).split("_")[0] for job in _CLUSTER.get("running", [])})
    cancel = f"scancel {' '.join(ids)}" if ids else "scancel <job id> (squeue -u $USER lists them)"
    kept = f" (their sweep record {path} stays for them: remove it once they have ended)" if path else ""
    return (
        f"{lead} complete their runs{kept}; "
        f"run the same command again later to collect them and finish the rest (completed runs are not repeated), "
        f"or cancel them: {cancel}"
    )


def _report_interrupted_cluster_sweep() -> bool:
    """A Ctrl-C (KeyboardInterrupt) on the submit host of a sweep whose jobs run elsewhere: one line, no
    traceback, exit 130. The jobs already submitted keep running on the cluster and write to the sweep's
    record, which stays; before any job was submitted, the results folder is put back as it was. False
    (nothing said) outside such a sweep: the interrupt goes on as before."""
    if not _CLUSTER.get("sweep"):
        return False
    path = os.environ.get(sweep_record.SWEEP_RECORD_ENV)
    if _CLUSTER.get("running"):
        print(
            _how_to_collect_or_cancel(
                path, "prune-run: interrupted (SIGINT): the jobs already submitted keep running on the cluster and"
            ),
            file=sys.stderr,
        )
    elif _CLUSTER.get("submitting"):
        print(
            "prune-run: interrupted (SIGINT) while its jobs were being submitted: any job already submitted runs on the cluster "
            f"and writes to the sweep's record {path}, which stays; squeue -u $USER lists them, scancel <job id> cancels them, "
            "and the same command run again later collects their runs and finishes the rest",
            file=sys.stderr,
        )
    elif _CLUSTER.get("jobs"):  # between batches (hydra.sweeper.max_batch_size): the earlier ones have ended
        os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
        sweep_record.remove(path)  # no job left to write to it
        print(
            f"prune-run: interrupted (SIGINT) between batches of the sweep: the {len(_CLUSTER['jobs'])} jobs submitted so far "
            "have ended and the rest were not submitted; run the same command again to run them (completed runs are not repeated)",
            file=sys.stderr,
        )
    else:
        _undo_sweep_start()
        print("prune-run: interrupted (SIGINT): no job of the sweep was submitted; the results folder is as it was", file=sys.stderr)
    _MULTIRUN_YAML.clear()
    _LAUNCHER.clear()
    sys.exit(130)


def remove_stale_records() -> None:
    """Once a local sweep is sure to run (every job passed the checks before the first run: a rejected
    sweep changes nothing in results_dir), remove the records of earlier local sweeps of this host that
    were killed (SIGKILL) and never reached their end, which removes a record; one line each."""
    for folder in _STALE_RECORDS_IN:
        for stale, pid in sweep_record.remove_stale(folder):
            print(f"prune-run: removed the record of an earlier sweep whose process ({pid}) is gone: {stale}", file=sys.stderr)
    _STALE_RECORDS_IN.clear()


class SweepSummary(Callback):
    """At the end of a multirun: "N of M runs failed" with each failed run directory and reason,
    and a non-zero exit (cluster scripts check it) unless `allow_failures=true`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = user_path(config.results_dir) / ".sweeps"
        problem = usable_results_dir(str(config.results_dir)) if config.results_dir else "it is empty"
        if problem is not None:  # before the sweeper writes multirun.yaml (a hydra.sweep.dir of its own
            reject_results_dir(config.results_dir, problem)  # never resolves `${runs_dir:}`, which said it)
        _SWEEP_CREATED[:] = [d for d in (folder.parent, folder) if not d.exists()]  # none made yet
        _SWEEP_RUN_DIRS.clear()  # another command's sweep in this process (tests, tools) is not this one
        sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
        _check_the_sweep_dir(sweep_dir)
        _SWEEP_CREATED.extend(d for d in (sweep_dir, *sweep_dir.parents) if not d.exists())  # the sweeper makes it next
        record = sweep_dir / "multirun.yaml"  # Hydra's sweeper rewrites it next
        _MULTIRUN_YAML[:] = [(record, record.read_bytes() if record.is_file() else None)]
        _note_the_launcher(config)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        local = _runs_on_this_host(config)
        path = (folder / (sweep_record.local_name(stamp) if local else f"{stamp}-{os.getpid()}.jsonl")).resolve()
        _STALE_RECORDS_IN[:] = [folder] if local else []  # removed once every job passed its checks
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
        remove_stale_records()  # a sweeper that does not check its jobs (hydra_patches.py) ran them all the same
        signum = sweep_stop.stopped_by()
        sweep_stop.restore_signals()
        _SWEEP_JOBS.clear()  # copies no launcher asked for (a sweeper that does not check its batches)
        _CLUSTER.clear()  # the launcher returned: every job it submitted has ended
        path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
        lines = sweep_record.outcomes(path) if path and Path(path).exists() else None
        stopping = lines is not None and sweep_record.stopping(path)
        if lines is not None:
            sweep_record.remove(path)
        if (stopping or signum is not None) and not any(x["status"] not in ("skipped", "not-started") for x in lines or []):
            # stopped before its first run: the results folder as the sweep found it (an earlier sweep's
            # multirun.yaml back, the folders this sweep made removed; docs/robustness.md)
            _undo_sweep_start()
        _SWEEP_RUN_DIRS.clear()  # the sweep ran: its jobs' directories are theirs
        _MULTIRUN_YAML.clear()  # the sweep ran: its multirun.yaml stays
        _LAUNCHER.clear()
        if lines is None:
            return
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
            print(
                f"prune-run: {len(skipped)} run{'s' if len(skipped) > 1 else ''} not started after the failure (fail_fast=true):",
                file=sys.stderr,
            )
            for x in skipped:
                print(f"  {Path(x['run_dir']).name}", file=sys.stderr)
        if not config.get("allow_failures", False):
            sys.exit(1)


def _check_the_sweep_dir(sweep_dir: Path) -> None:
    """`hydra.sweep.dir`, tried before the sweep makes anything (the sweeper makes it next): a file, a
    folder under a file or one that cannot be created (`/proc/x`) made the sweeper's mkdir raise
    FileExistsError, NotADirectoryError or FileNotFoundError with Hydra's traceback, exit 1, after the
    sweep's record was written into results_dir. Now one message naming the key, exit 2, and the results
    folder as it was (`_reject_composition`), as for an unusable results_dir."""
    problem = directory_problem(str(sweep_dir), try_create=True)
    if problem is not None:  # a BaseException: Hydra's callbacks turn an Exception into a warning
        raise _CompositionRejected(
            ConfigError(
                "hydra.sweep.dir",
                str(sweep_dir),
                "a directory prune-run can write or create",
                f"Here {problem}; the sweep's record (multirun.yaml) and, by default, its runs go there "
                "(leave hydra.sweep.dir out for results_dir/runs).",
            )
        )


def _report_stopped_sweep(outcomes: list[dict], signum: int | None) -> None:
    """The end of a local sweep a signal stopped (prune_cli/run/sweep_stop.py): which runs stopped
    (each kept its last checkpoint), how many queued runs did not start, how to resume; exit 128 +
    signal like one run."""
    started = [x for x in outcomes if x["status"] not in ("skipped", "not-started")]
    unfinished = [x for x in started if x["status"] != "completed" and not (Path(x["run_dir"]) / "COMPLETE").exists()]
    signum = signum or _signal_of(unfinished)
    name, done = signal.Signals(signum).name, len(started) - len(unfinished)
    if started:
        print(f"prune-run: sweep stopped by {name}: {done} of the {len(started)} runs that started completed", file=sys.stderr)
    else:
        print(f"prune-run: sweep stopped by {name} before any run had started", file=sys.stderr)
    for x in unfinished:
        print(f"  {x['run_dir']}: {_how_it_stopped(x)}", file=sys.stderr)
    skipped = sum(x["status"] == "skipped" for x in outcomes)
    given = sweep_stop.jobs_given()  # every job of every batch; 0 when unknown: those recorded as not started
    queued = given - len(started) - skipped if given else len(outcomes) - len(started) - skipped
    if queued:
        print(f"prune-run: {queued} queued run{'s were' if queued > 1 else ' was'} not started", file=sys.stderr)
    print("prune-run: run the same command again to resume the sweep (completed runs are not repeated)", file=sys.stderr)
    sys.exit(128 + signum)


def _stop_signal_name(outcome: dict) -> str | None:
    """The signal's name in a stopped job's record: "Interrupted: SIGTERM", and "StoppedWaiting: SIGINT" or
    "StoppedWaitingForCache: SIGINT" for a job stopped while it waited for another run's lock; None otherwise."""
    _, _, name = outcome["reason"].partition(": ")
    return name if outcome["status"] == "stopped" and name in signal.Signals.__members__ else None


def _signal_of(outcomes: list[dict]) -> int:
    """The signal a worker's job was stopped by, from its record (`_stop_signal_name`), else SIGTERM."""
    for x in outcomes:
        name = _stop_signal_name(x)
        if name is not None:
            return int(signal.Signals[name])
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
    multirun.yaml, the files its launcher wrote (submitit's pickled jobs and sbatch script), the run
    directories Hydra made for jobs that never started where they hold only its scaffolding (a job's
    `.hydra` record that did not fit on a full disk, docs/robustness.md) and the folders this process created."""
    _SWEEP_JOBS.clear()
    _STALE_RECORDS_IN.clear()
    path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    started = bool(path and Path(path).is_file() and Path(path).read_text().strip())
    if started:  # a job started: its run and the sweep's multirun.yaml stay
        _MULTIRUN_YAML.clear()
        _LAUNCHER.clear()
    elif path and Path(path).is_file():
        Path(path).unlink()
    for run_dir in [] if started else _SWEEP_RUN_DIRS:
        _remove_if_scaffolding(run_dir)
    _SWEEP_RUN_DIRS.clear()
    for record, before in _MULTIRUN_YAML:  # the sweeper wrote it before it composed the jobs
        if before is None:
            record.unlink(missing_ok=True)
        elif not record.is_file() or record.read_bytes() != before:
            _put_back(record, before)
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


def _put_back(record: Path, before: bytes) -> None:
    """The earlier sweep's multirun.yaml over this sweep's, atomically. On a full disk (the reason the sweep
    could not start, docs/robustness.md "a full disk") there may be no room for the temporary copy: where
    the earlier record is no longer than the file there, it is written over that file's own space instead
    (the file already holds the wrong record, so a kill during it loses nothing the atomic write kept)."""
    try:
        atomic_write_bytes(record, before)
    except OSError as err:
        try:
            if record.is_file() and record.stat().st_size >= len(before):
                with open(record, "r+b") as f:
                    f.write(before)
                    f.truncate(len(before))
                return
        except OSError:
            pass
        # no room either way: the sweep's own line still follows, this one says what stayed
        logging.getLogger(__name__).warning(
            "could not put the earlier sweep's %s back (%s): it holds this sweep's, which did not start",
            record,
            err.strerror or err,
        )


def _launcher_failed(err: Exception) -> bool:
    """Whether `err` came out of the launcher of a sweep under way."""
    from hydra.plugins.launcher import Launcher

    if not _MULTIRUN_YAML:  # no sweep under way (its end clears the record)
        return False
    return any(isinstance(frame.f_locals.get("self"), Launcher) for frame, _ in traceback.walk_tb(err.__traceback__))


def _report_launcher_failure(err: Exception) -> None:
    """The launcher's own reason (sbatch's error is in it), exit 1. Before any job was submitted or
    started, the results folder is put back as it was; after, the runs stay and each one that did not
    complete is named. Jobs that may still run on the cluster keep the sweep's record."""
    name = _LAUNCHER.pop("name", "the launcher")
    reason = f"{type(err).__name__}: {err}".strip()
    unusable = _a_sweep_s_file_refused(err)  # a full disk, say
    if unusable:  # Hydra could not write a job's directory (its .hydra record) before the job started
        reason = cannot_use(err.filename, err)
    path = os.environ.get(sweep_record.SWEEP_RECORD_ENV)
    outcomes = sweep_record.outcomes(path) if path and Path(path).is_file() else []
    submitted = _CLUSTER.get("jobs", [])
    if not outcomes and not submitted:
        _undo_sweep_start()
        if unusable:  # the environment's refusal, as for a single run (docs/robustness.md, "a full disk")
            _reject(reason)
        print(f"prune-run: error: {name} could not start the sweep; no job ran and nothing was kept: {reason}", file=sys.stderr)
        sys.exit(1)
    logs = _LAUNCHER.get("folder")
    ran = {Path(x["run_dir"]) for x in outcomes}
    for run_dir in [] if submitted else _SWEEP_RUN_DIRS:  # a local job whose directory Hydra could not write
        if run_dir not in ran:  # never started: no run there (a cluster's job may be starting in its own)
            _remove_if_scaffolding(run_dir)
    _SWEEP_RUN_DIRS.clear()
    os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    _MULTIRUN_YAML.clear()  # jobs ran: the sweep's multirun.yaml stays
    _LAUNCHER.clear()
    if _jobs_may_still_run():
        _report_jobs_left_on_the_cluster(name, reason, outcomes, path)
    sweep_record.remove(path)
    unfinished = [x for x in outcomes if x["status"] != "completed"]
    counts = f"{len(outcomes) - len(unfinished)} of the {len(outcomes)} runs that started completed"
    if _CLUSTER.get("refused"):  # sbatch refused a later batch (hydra.sweeper.max_batch_size): no job failed
        print(f"prune-run: error: {name} could not submit the sweep's next jobs: {reason}", file=sys.stderr)
        counts = (
            f"the {len(submitted)} jobs submitted before have ended; {counts}; the sweep's other runs were not submitted: "
            "run the same command again to run them (completed runs are not repeated)"
        )
    elif submitted:
        print(f"prune-run: error: {name}: a job of the sweep did not end normally: {reason}", file=sys.stderr)
        counts = f"all {len(submitted)} jobs of the sweep have ended; {counts}"
    else:
        print(f"prune-run: error: {name} stopped the sweep: {reason}", file=sys.stderr)
    if unfinished:
        counts += "; these did not (run the same command again to resume them; completed runs are not repeated):"
    print(f"prune-run: {counts}", file=sys.stderr)
    for x in unfinished:
        print(f"  {x['run_dir']}: {_how_it_ended(x)}", file=sys.stderr)
    never = len(submitted) - len(outcomes)
    if never > 0:
        where = f": their logs are in {logs}" if logs else ""
        print(f"prune-run: {never} job{'s' if never > 1 else ''} ended without starting a run{where}", file=sys.stderr)
    sys.exit(1)


def _a_sweep_s_file_refused(err: Exception) -> bool:
    """Whether the launcher's error is an OSError naming a file in the sweep's folder or in a job's run
    directory (a `.hydra` record on a full disk), not one of the launcher's own (sbatch not found)."""
    if not isinstance(err, OSError) or isinstance(err, PruneCliError) or not err.filename:
        return False
    folders = [record.parent for record, _ in _MULTIRUN_YAML] + _SWEEP_RUN_DIRS
    return any(Path(os.path.abspath(str(err.filename))).is_relative_to(folder) for folder in folders)


def _how_it_ended(outcome: dict) -> str:
    """A run that did not complete: its reason, or for a stopped one the signal and its checkpoint."""
    how = _how_it_stopped(outcome)
    name = _stop_signal_name(outcome)
    return f"{name}: {how}" if name is not None else how


def _report_jobs_left_on_the_cluster(name: str, reason: str, outcomes: list[dict], path: str | None) -> None:
    """The launcher raised while jobs it submitted may still be queued or running elsewhere (the submit
    host cannot follow them any more): what is known, the runs whose outcome is unknown (not "killed":
    they may still be running), how many jobs had not started, what becomes of them; exit 1. The sweep's
    record stays: those jobs write to it."""
    started = [x for x in outcomes if x["status"] not in ("skipped", "not-started")]
    done = sum(x["status"] == "completed" for x in started)
    queued = len(_CLUSTER.get("jobs", [])) - len(outcomes)
    print(f"prune-run: error: {name} stopped following the sweep's jobs: {reason}", file=sys.stderr)
    line = f"prune-run: {done} of the {len(started)} runs that started had completed"
    if queued > 0:
        line += f"; {queued} queued job{'s' if queued > 1 else ''} had not started"
    print(line + ":" if len(started) > done else line, file=sys.stderr)
    for x in outcomes:
        if x["status"] == "started":
            print(f"  {x['run_dir']}: outcome unknown (still running on the cluster, or ended without an outcome)", file=sys.stderr)
        elif x["status"] != "completed":
            print(f"  {x['run_dir']}: {_how_it_ended(x)}", file=sys.stderr)
    print(_how_to_collect_or_cancel(path), file=sys.stderr)
    sys.exit(1)
