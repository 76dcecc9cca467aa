"""Console entry point `prune-run`: compose the config (Hydra), validate it, run the experiment.

Where things can go wrong, and what the user sees (docs/robustness.md):
- a rejected single run (bad value, unknown key, unsafe `name`, unusable `results_dir`) is
  caught while Hydra resolves the run directory, before Hydra creates it: one message, exit 2,
  nothing created anywhere; a dataset file found unreadable as the run loads its data is the same
  (core/errors.py InputError);
- a sweep with any job the pre-run pass rejects runs no job (one message listing them, exit 2);
- in a sweep a run that fails while it works writes `failed.json` in its run directory and the sweep goes on; at the
  end the sweep lists every failed run and exits 1 (`allow_failures=true`: 0);
- SIGTERM / SIGUSR2 / SIGINT stop at the next safe point with one line and exit 128 + signal;
- a Ctrl-C on a SLURM sweep's submit host: one line on what becomes of the jobs submitted, exit 130;
- an unexpected exception (a bug) keeps its traceback and names the run directory.

The entry point's parts live in modules of their own: run_directories.py (the run directory's
resolvers, the checks before Hydra creates it), sweep_lifecycle.py (a sweep's start, end and what is
put back when it is rejected) and hydra_patches.py (prune-run's changes to Hydra's own steps).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from . import hydra_patches
from .core import interrupts, plugins, threads
from .core.notices import log_file_failures_said_once, say
from .core.atomic_io import atomic_write_text
from .core.errors import ConfigError, InputError, PruneCliError, cannot_use
from .core.paths import hydra_config_path
from .run import sweep_record, sweep_stop
from .run.composition_errors import COMPOSITION_ERRORS
from .run.override_checks import check_overrides
from .run.prevalidate import checked_model, overrides_as_typed, register_schemas, validate
from .run.unused_options import unused_overrides
from .run_directories import _keep_a_finished_run_s_record, _reject, _remove_if_scaffolding, _run_id, _runs_dir
from .sweep_lifecycle import (
    _CLUSTER,
    _LAUNCHER,
    _MULTIRUN_YAML,
    _SWEEP_RUN_DIRS,
    _CompositionRejected,
    _LauncherFailed,
    _reject_composition,
    _jobs_may_still_run,
    _report_interrupted_cluster_sweep,
    _report_launcher_failure,
)

log = logging.getLogger("prune_cli")

FAILED_FILE = "failed.json"  # written into the run directory of a run that stopped with an error

hydra_patches.install()
register_schemas()
for _name, _fn in (("run_id", _run_id), ("runs_dir", _runs_dir)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn, use_cache=False)


# --------------------------------------------------------------------------- the job


def command_line_plugins(args: list[str]) -> list[str]:
    """The modules of a `plugins=[my_lab.scores, ...]` override among `args` (Hydra's own parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: list[str] = []
    for arg in args:
        if not arg.lstrip("+").startswith("plugins="):
            continue
        override = OverridesParser.create().parse_override(arg)
        value = None if override.is_sweep_override() else override.value()
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError("plugins", arg.split("=", 1)[1], "a list of module names, e.g. plugins=[my_lab.scores]")
        found += value
    return found


def _check_named_metric_schemas(named: list[str]) -> None:
    """A metric schema of a module the command names that the `metrics` schema cannot use (no `enabled: bool`)
    is refused here, before Hydra: found while composing, it surfaced as a traceback from `--help`. Only where a
    named module declares a metric schema: assembling the schema imports every metric adapter."""
    if any(plugins.index().schemas.get(("metric", name)) in named for group, name in plugins.index().schemas if group == "metric"):
        from .metrics import metrics_config

        metrics_config()


def main() -> None:
    """`prune-run`: index the plugin modules named on the command line (their options must be known
    before Hydra composes the config), then compose, validate and run. OpenMP's wait policy is set
    first: it is read when torch loads (prune_cli/core/threads.py)."""
    threads.quiet_openmp_wait(os.environ)
    _MULTIRUN_YAML.clear()  # another command's sweep in this process (tests, tools) is not this one
    _SWEEP_RUN_DIRS.clear()
    _LAUNCHER.clear()
    _CLUSTER.clear()
    try:
        check_overrides(sys.argv[1:])
        named = command_line_plugins(sys.argv[1:])
        plugins.add_modules(named)
        _check_named_metric_schemas(named)
        plugins.pass_to_launched_processes(named)
    except PruneCliError as err:
        _reject(str(err))
    try:
        hydra_main()
    except _LauncherFailed as failed:
        _report_launcher_failure(failed.error)
    except _CompositionRejected as rejected:
        _reject_composition(rejected.error)
    except hydra_patches.JobNotStarted as unwritten:
        _job_not_started(unwritten.error, Path(unwritten.run_dir))
    except SystemExit as stop:
        # Where Hydra still reports an error while composing itself (`--info`, which calls its own
        # reference to `run_and_report`): printed, then exit 1 from inside its `except` clause, so
        # the error is the exit's implicit context (Python's exception chaining).
        if stop.code == 1 and isinstance(stop.__context__, COMPOSITION_ERRORS):
            _reject_composition(stop.__context__)
        raise
    except KeyboardInterrupt:  # a Ctrl-C on a SLURM sweep's submit host (a run handles its own: interrupts.py)
        if not _report_interrupted_cluster_sweep():
            if sweep_stop.stopped_by() is None:  # no sweep was stopping: a Ctrl-C Python itself turned into this
                raise
            _report_sweep_stopped_at_once()
    except COMPOSITION_ERRORS as err:  # HYDRA_FULL_ERROR=1: Hydra re-raises it instead; `--info`: Hydra reports nothing
        if hydra_patches.full_error_wanted():
            traceback.print_exc()
        _reject_composition(err)
    except ValueError as err:  # Hydra's refusals of its flags: usage errors, not bugs
        if str(err).startswith("The --resolve flag"):  # `--resolve` alone
            _reject("--resolve applies only with --cfg (job, hydra or all) or --help: e.g. prune-run --cfg job --resolve")
        if not str(err).startswith("Only one of --run, --multirun"):
            raise
        _reject(f"{err} (e.g. -m and --cfg job together; --cfg job prints one job's config: give it without -m)")
    finally:  # a sweep stopped by a signal never reached its summary, the record's only reader
        sweep_stop.restore_signals()
        record = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
        if not _jobs_may_still_run():  # jobs still queued or running on a cluster write to it
            sweep_record.remove(record)


def _job_not_started(err: Exception, run_dir: Path) -> None:
    """A single run whose directory Hydra could not write before the job started (its `.hydra` record on a
    full disk, hydra_patches.py `JobNotStarted`): one line naming the file, exit 2, as for a run that stops
    on a full disk (docs/robustness.md, "a full disk"). The directory goes if it holds only the
    scaffolding Hydra made (a run with results, or a folder of the user's, stays), and a finished run's
    record, partly rewritten by this command, is put back; the same command runs once space is freed."""
    try:
        _keep_a_finished_run_s_record(run_dir)
    except OSError:  # still no space: the record stays as Hydra's atomic writes left it, each file whole
        pass
    _remove_if_scaffolding(run_dir)
    _reject(str(_as_expected(err)))


def _report_sweep_stopped_at_once() -> None:
    """A second Ctrl-C to a local sweep (prune_cli/run/sweep_stop.py raises KeyboardInterrupt): the job
    running in this process has said where its run stopped (`_job`); one line for the sweep, exit 130,
    no traceback (it printed 74 lines). The jobs of a parallel sweep got the same Ctrl-C through the
    process group and stop as its runs do; the same command resumes every stopped run."""
    line = (
        "prune-run: sweep stopped at once by a second SIGINT: each run that was running keeps its last checkpoint "
        "and no queued run was started; run the same command again to resume the sweep"
    )
    say(log, line)
    sys.exit(128 + signal.SIGINT)


@hydra.main(version_base="1.3", config_path=hydra_config_path(), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    in_loky_worker = hydra_cfg.mode == RunMode.MULTIRUN and sweep_stop.runs_jobs_in_loky_workers(hydra_cfg.launcher)
    with sweep_stop.orphan_watch(in_loky_worker):  # a worker whose sweep's process was killed stops its job
        _job(cfg, hydra_cfg)


def _job(cfg: DictConfig, hydra_cfg) -> None:
    """One job: a single run, or one of a sweep's jobs (in the sweep's process or a launcher's worker)."""
    from .run.experiment import run

    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    log_file_failures_said_once()
    interrupts.install()  # keeps a local sweep's own handler (prune_cli/run/sweep_stop.py)
    local_sweep = in_sweep and sweep_stop.handles(hydra_cfg.launcher)
    if in_sweep and sweep_stop.runs_jobs_in_loky_workers(hydra_cfg.launcher) and not sweep_record.stopping():
        interrupts.reset()  # a reused worker: the signal that stopped its previous job is not this job's
    _keep_a_finished_run_s_record(run_dir)
    if in_sweep and sweep_record.stopping() and not (run_dir / "COMPLETE").exists():
        _remove_if_scaffolding(run_dir)  # a queued job that starts while a signal stops the sweep
        sweep_record.record_outcome(run_dir, "not-started")
        return
    if in_sweep and cfg.get("fail_fast", False) and not (run_dir / "COMPLETE").exists():
        failed = sweep_record.failed_in_this_sweep()
        if failed is not None:  # a parallel launcher started this job after another one failed
            _remove_if_scaffolding(run_dir)
            sweep_record.record_outcome(run_dir, "skipped")
            print(f"prune-run: {run_dir.name} not started: {Path(failed).name} failed and fail_fast=true", file=sys.stderr)
            return
    if in_sweep:  # a job killed from outside (OOM killer, a node) records nothing else: the summary names it
        sweep_record.record_outcome(run_dir, "started")
    try:
        interrupts.check()
        if in_sweep:  # a launcher's worker process: index the job's plugin modules again
            plugins.add_modules(cfg.plugins)
        validate(cfg)
        for one in unused_overrides(cfg, overrides_as_typed(hydra_cfg.overrides.task)):  # a note, or a sweep job that ignores it
            log.warning(one.message())
        if not in_sweep and hydra_cfg.sweeper.get("params"):
            log.warning(_sweep_not_run(hydra_cfg.sweeper.params, hydra_cfg.overrides.task))
        _limit_threads(cfg, hydra_cfg)
        run(cfg, run_dir, on_found_complete=lambda: _keep_a_finished_run_s_record(run_dir))
        interrupts.check()  # the signal came during the last step: the run is done, stop the sweep here
    except interrupts.Interrupted as stop:
        _stopped(stop, run_dir, in_local_sweep=local_sweep)
    except KeyboardInterrupt:  # a second Ctrl-C before the safe point (interrupts.py): stopped where it landed
        if in_sweep:  # the run's line here; the sweep's process then ends with its own (`main`), exit 130
            _stopped(interrupts.Interrupted(signal.SIGINT), run_dir, at_once=True, in_local_sweep=True)
            raise
        _stopped(interrupts.Interrupted(signal.SIGINT), run_dir, at_once=True)
    except Exception as err:  # noqa: BLE001 - every failure is recorded; the sweep decides whether to go on
        if _out_of_requeues(err):  # SLURM's signal with no requeue left: stopped, as by a signal, not failed
            _stopped_without_requeue(err, run_dir)
            return
        err = _as_expected(err)
        sweep_record.record_outcome(run_dir, "failed", err)
        if not in_sweep or cfg.get("fail_fast", False):
            _fail(err, run_dir, hydra_cfg, cfg, in_sweep)
            if not (in_sweep and isinstance(err, PruneCliError)):
                raise  # errors that are not PruneCliError: a bug, its traceback
            return  # a fail-fast sweep: the jobs that start after this one see the failure and stop
        recorded, _ = _record_failure(err, run_dir, hydra_cfg, cfg)
        details = f"; details in {run_dir / FAILED_FILE}" if recorded else ""
        say(
            log,
            f"prune-run: error in {run_dir.name}: {err} (the sweep goes on; fail_fast=true stops it)",
            level=logging.ERROR,
            log_line=f"run {run_dir.name} failed ({type(err).__name__}: {err}){details}; the sweep goes on (fail_fast=true stops it)",
        )
    else:
        (run_dir / FAILED_FILE).unlink(missing_ok=True)  # an earlier attempt failed; this one completed
        sweep_record.record_outcome(run_dir, "completed")


def _sweep_not_run(params, task_overrides) -> str:
    """The warning for a single run of a config that defines a sweep (a preset's hydra.sweeper.params):
    without -m Hydra runs one job and drops the sweep without a word."""
    swept = ", ".join(f"{k}: {v}" for k, v in params.items())
    given = " ".join(overrides_as_typed(task_overrides))
    return (
        f"this config defines a sweep ({swept}) but prune-run ran without -m: only this one job runs "
        f"({given or 'the defaults'}); add -m for the sweep"
    )


def _as_expected(err: Exception) -> Exception:
    """An OS error on a named file (disk full, permission denied) is the environment, not a bug."""
    if isinstance(err, OSError) and not isinstance(err, PruneCliError) and err.filename:
        clean = PruneCliError(cannot_use(err.filename, err))
        clean.__cause__ = err
        return clean
    return err


def _stopped(stop: interrupts.Interrupted, run_dir: Path, in_local_sweep: bool = False, at_once: bool = False) -> None:
    """One line naming the run and how to resume, exit 128 + signal. A job of a local sweep (basic or
    parallel launcher) instead marks the sweep as stopping and ends normally: the sweep's process says
    the rest at its end (prune_cli/run/sweep_stop.py). `at_once`: a second Ctrl-C stopped the run where
    it was, not at a safe point; its checkpoint is as a kill at that instant leaves it (written
    atomically, so the last one stays whole; docs/robustness.md)."""
    from .run.dense_cache import StoppedWaitingForCache  # loaded with the run (`_job`)

    name = f"at once by a second {stop}" if at_once else f"by {stop}"
    if isinstance(stop, StoppedWaitingForCache):  # waited for another run's dense model or scores: this run's own state
        # what the other run does is not known here: the signal may or may not have reached it too
        other = (
            f"was {stop.doing} and has freed it (stopped too, or finished)"
            if stop.other_stopped
            else f"is {stop.doing} (it goes on unless the signal reached it too)"
        )
        kept = (
            "keeps its last checkpoint (state.pt); run the same command again to resume it"
            if (run_dir / "state.pt").exists()  # e.g. a run whose own dense training was stopped, resumed
            else "has no checkpoint yet; run the same command again to start it"
        )
        line = f"prune-run: stopped {name} while waiting for {stop.what}, which another run {other}; run {run_dir} {kept}"
    elif isinstance(stop, interrupts.StoppedWaiting) and stop.other_stopped:  # both got it (a Ctrl-C to the group)
        line = (
            f"prune-run: stopped {name} while waiting for run {run_dir}, which another process was running and has "
            "stopped too; run the same command again to resume it"
        )
    elif isinstance(stop, interrupts.StoppedWaiting):  # this process never ran it: the other one goes on
        line = (
            f"prune-run: stopped {name} while waiting for run {run_dir}, which another process is running; "
            "that process goes on with it"
        )
    elif (run_dir / "COMPLETE").exists():
        line = f"prune-run: stopped {name}; run {run_dir} is complete"
    elif not (run_dir / "state.pt").exists():  # stopped before the first checkpoint (an epoch's end)
        line = (
            f"prune-run: stopped {name}; run {run_dir} has no checkpoint yet (stopped before the end "
            f"of its first epoch); run the same command again to start it"
        )
    else:
        line = (
            f"prune-run: stopped {name}; run {run_dir} keeps its last checkpoint (state.pt); run the same command again to resume it"
        )
    say(log, line)
    sweep_record.record_outcome(run_dir, "stopped", stop)
    if in_local_sweep:
        sweep_record.mark_stopping(sweep_record.current())
        return
    sys.exit(stop.exit_code)


def _out_of_requeues(err: Exception) -> bool:
    """Whether `err` is submitit's "Job not requeued because: timed-out too many times." (or "... not
    checkpointable"): raised by its SIGUSR2 handler (`checkpoint_and_try_requeue`) in a job that has no
    requeue left (`hydra.launcher.max_num_timeout`), wherever the job then was. Not its FailedJobError, which
    the submitting side raises about a job's result. submitit is optional: without it, never."""
    utils = sys.modules.get("submitit.core.utils")  # imported by the job that raised it, if any
    if utils is None:
        return False
    uncompleted, failed = getattr(utils, "UncompletedJobError", None), getattr(utils, "FailedJobError", None)
    return uncompleted is not None and isinstance(err, uncompleted) and not (failed is not None and isinstance(err, failed))


def _stopped_without_requeue(err: Exception, run_dir: Path) -> None:
    """The line of a run stopped by a signal (`_stopped`) for a SLURM job stopped at its time limit with no
    requeue left: it said only "error in <run>: Job not requeued because: timed-out too many times.
    (fail_fast: sweep stopped)" and wrote failed.json, although the run keeps its last checkpoint and the
    same command resumes it. Recorded as stopped; the sweep's summary lists it and exits 1, and a fail-fast
    sweep goes on (a time limit is not a failure of the run)."""
    why = f"by SIGUSR2 with no requeue left (submitit: {err})"
    if (run_dir / "COMPLETE").exists():
        line = f"prune-run: stopped {why}; run {run_dir} is complete"
    elif not (run_dir / "state.pt").exists():
        line = f"prune-run: stopped {why}; run {run_dir} has no checkpoint yet; run the same command again to start it"
    else:
        line = (
            f"prune-run: stopped {why}; run {run_dir} keeps its last checkpoint (state.pt); run the same command again "
            "to resume it (hydra.launcher.max_num_timeout: how many times a job is requeued)"
        )
    say(log, line)
    sweep_record.record_outcome(run_dir, "stopped", err)


def _fail(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig, in_sweep: bool) -> None:
    """A single run stops as before: bad input (a rejected config, an unreadable data file) leaves no
    directory when nothing but the run's scaffolding is there yet, prune-cli errors exit 2."""
    removed = isinstance(err, InputError) and not in_sweep and _remove_if_scaffolding(run_dir)
    unwritten = ""
    if not removed:  # a directory that stays (a sweep's job, a run with results, a folder of the user's) says why
        _, unwritten = _record_failure(err, run_dir, hydra_cfg, cfg, warn=False)  # its one line says it
    if isinstance(err, PruneCliError) and not in_sweep:
        log.debug("stopping: %s", err)  # keeps the reason in the run's log file
        print(f"prune-run: error: {err}", file=sys.stderr)
        sys.exit(2)
    if in_sweep:
        say(
            log,
            f"prune-run: error in {run_dir.name}: {err} (fail_fast: sweep stopped)",
            level=logging.ERROR,
            log_line=f"run {run_dir.name} failed ({type(err).__name__}: {err}); fail_fast=true: stopping the sweep",
        )
        # Every launcher: the jobs already running finish; those that start later (with the basic launcher,
        # every later job) find this failure in the sweep's record and do not run (_job,
        # sweep_record.failed_in_this_sweep), and the sweep ends with its summary and exit code
        # (SweepSummary: exit 1, or 0 with allow_failures=true). The basic launcher used to exit 1 here,
        # from inside the job: no summary, no list of the runs not started, allow_failures ignored.
    else:
        raised_in = plugins.plugin_module_raising(err)
        if raised_in is not None:  # a plugin's own code raised: its author's to fix, not a bug of prune-cli
            module, file, line = raised_in
            kept = f"details in {run_dir / FAILED_FILE}" if not unwritten else unwritten
            print(
                f"prune-run: error in plugin module {module} ({file}, line {line}) in run {run_dir} "
                f"({type(err).__name__}: {err}); fix the plugin; {kept} (traceback below)",
                file=sys.stderr,
            )
            return
        report = f"please report it with {run_dir / FAILED_FILE}" if not unwritten else f"please report it ({unwritten})"
        print(
            f"prune-run: internal error in run {run_dir} ({type(err).__name__}); this is a bug in prune-cli, "
            f"{report} (traceback below)",
            file=sys.stderr,
        )


def _record_failure(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig, warn: bool = True) -> tuple[bool, str]:
    """`_write_failure`: whether failed.json was written, and why not where the disk refused it (full, say),
    so that the run's own error, not the failure to record it, is what the sweep and the user are told.
    `warn`: log the reason (a sweep's job); a single run's one line (`_fail`) says it instead, or not at all."""
    try:
        return _write_failure(err, run_dir, hydra_cfg, cfg), ""
    except OSError as full:
        unwritten = f"{FAILED_FILE} could not be written ({full.strerror or full})"
        if warn:
            log.warning("%s in %s", unwritten, run_dir)
        return False, unwritten


def _write_failure(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig) -> bool:
    """failed.json in the run directory: what failed and how, for the sweep summary and prune-report; whether it
    was written. Not in a directory that holds another, finished run, nor for a refusal (a PruneCliError) in a
    completed run's directory (a copied run whose per-run tables cannot be appended): the finished run did not
    fail, and its directory stays as it was (the error message, and in a sweep its record, name the failure)."""
    from .core.errors import AnotherRunsDirectory

    if isinstance(err, AnotherRunsDirectory) or (isinstance(err, PruneCliError) and (run_dir / "COMPLETE").is_file()):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "failed",
        "run_dir": str(run_dir),
        "error_type": type(err).__name__,
        "message": str(err),
        "config_error": isinstance(err, ConfigError),
        "overrides": overrides_as_typed(hydra_cfg.overrides.task),
        "job_num": hydra_cfg.job.get("num"),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "traceback": traceback.format_exc(),
    }
    atomic_write_text(run_dir / FAILED_FILE, json.dumps(record, indent=2, default=str))
    return True


def _limit_threads(cfg: DictConfig, hydra_cfg) -> None:
    """Give torch the intra-op threads of `threads=auto|N` (prune_cli/core/threads.py): the user's
    OMP_NUM_THREADS when set (also per job, hydra.job.env_set: torch sized its pool before Hydra set it,
    so it is applied here; not the one loky sets in its workers), otherwise one thread for a small model
    and the usable CPUs (a local sweep's per-job share) for a large one; the choice and its reason go to
    the log."""
    import torch

    setting = cfg.get("threads", "auto")
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    n_jobs, batch = threads.local_sweep_jobs(hydra_cfg.launcher, os.environ) if in_sweep else (None, None)
    usable = threads.usable_cpus(os.environ, n_jobs=n_jobs, batch=batch)
    env = threads.users_env(os.environ, hydra_cfg.job.env_set, hydra_cfg.launcher) if in_sweep else os.environ  # not loky's
    needs_size = setting == "auto" and threads.explicit_omp_threads(env) is None
    choice = threads.choose_threads(setting, env, usable, _macs_per_batch(cfg) if needs_size else None)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    log.info("torch intra-op threads: %d (%s)", torch.get_num_threads(), choice.reason)


def _macs_per_batch(cfg: DictConfig) -> int | None:
    """Forward multiply-accumulates of one training batch, counted by the pre-run pass on the model it
    built for the dataset's declared input (`checked_model`: built once per model config and process);
    None when the dataset declares no input shape."""
    checked = checked_model(cfg)
    return None if checked is None else checked.macs_per_example * int(cfg.train.batch_size)


hydra_patches.TASK_FUNCTIONS.append(hydra_main)  # an error raised in a run is the run's, not Hydra's composition's


if __name__ == "__main__":
    main()
