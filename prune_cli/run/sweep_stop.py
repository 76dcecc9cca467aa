"""Stopping a local sweep with a signal, as one run stops: Hydra's basic launcher (jobs one after another
in the sweep's process), hydra/launcher=parallel (joblib's loky worker processes) and
hydra/launcher=submitit_local (each job in a process of its own, below a controller process of submitit's).

A single run handles SIGTERM, SIGUSR2 and SIGINT in its process (prune_cli/core/interrupts.py). A sweep
needs more: under joblib the sweep's own process only waits for its workers, and a signal to it (SLURM's
SIGTERM or SIGUSR2 to a batch job running the sweep, `kill`) killed it at once, left the workers running
their jobs as orphans and lost the queued jobs without a word; under the basic launcher the stopped job
ended the sweep without naming the jobs that never ran. Now the sweep's process, from the sweep's start
(`install`, by `SweepSummary.on_multirun_start`),

1. marks the sweep as stopping (`sweep_record.mark_stopping`): a job that starts after that does not
   run (recorded as not started, its directory removed);
2. stops launching: the launcher's list of jobs (`job_overrides` of its `launch`, on the stack the signal
   interrupted) is emptied, so no further job is handed out (a parallel sweep hands out up to twice its
   workers ahead: those come back as not started);
3. reaches every running job: the job running in this process (basic launcher) through the flag its
   safe points check; joblib's workers running a job get SIGTERM or SIGUSR2 passed on, and SIGTERM for
   a SIGINT: a Ctrl-C (at a terminal, or `timeout -s INT`) goes to the whole process group, workers
   included, and a second SIGINT would make them stop at once, while a SIGTERM after it changes
   nothing (prune_cli/core/interrupts.py: the first signal stops the run, only a second SIGINT stops it
   at once); a `kill -INT` to the sweep's process alone reaches them so. submitit's local jobs
   (hydra/launcher=submitit_local: processes of their own, which used to run on as orphans) get SIGINT,
   once: submitit's handlers in them ignore SIGTERM and requeue on SIGUSR2. Each job stops at its next
   safe point, keeps its checkpoint, and ends normally, so the launcher's batch ends as usual (killing
   the workers instead would leave their semaphores behind);
4. at the sweep's end, says which runs stopped, how many queued runs did not start and how to resume,
   and exits 128 + signal (prune_cli/sweep_lifecycle.py `SweepSummary`).

A signal to one worker alone stops that worker's job and, through the mark, the queued jobs; the other
running jobs finish. A second Ctrl-C to the sweep's process stops at once.

SIGKILL cannot be caught: a sweep's process killed with it (the OOM killer, `kill -9`) cannot pass
anything on, and its loky workers used to run their jobs to the end as orphans, then idle for loky's
300 s. So each worker watches its parent (`orphan_watch`): once the sweep's process is gone, the job
running there stops at its next safe point as on SIGTERM (its checkpoint kept, the sweep marked as
stopping), and the worker exits; the same command run again resumes the stopped runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Iterator, Optional

from ..core import interrupts
from . import sweep_record

_stopping: Optional[int] = None
_record: Optional[str] = None
_forward = False  # pass the signal on to joblib's workers
_local_jobs = False  # pass the signal on to submitit's local job processes (hydra/launcher=submitit_local)
_passed_to: set[int] = set()  # the submitit local job processes the signal was passed on to
_jobs_given = 0  # the jobs handed to the launcher's `launch` in this sweep (every batch), stopped or not
_before: dict[int, object] = {}  # the handlers `install` replaced, put back by `restore_signals`
SWEEP_PID_ENV = "PRUNE_CLI_SWEEP_PID"  # the sweep's process, set by `install`: the parent a worker watches
_watcher: Optional[threading.Thread] = None  # a loky worker's watch on the sweep's process (`orphan_watch`)
_job_running = threading.Event()  # set while this worker runs a job
ORPHAN_POLL_S = 1.0  # how often a worker looks at its parent


def runs_jobs_in_loky_workers(launcher) -> bool:
    """Whether a launcher config runs its jobs in joblib's loky worker processes (hydra/launcher=parallel
    as configured: `prefer: processes`, no other backend)."""
    target = str(launcher.get("_target_", ""))
    backend = launcher.get("backend", None)
    return "JoblibLauncher" in target and backend in (None, "loky") and launcher.get("prefer", None) != "threads"


def runs_jobs_in_submitit_local_processes(launcher) -> bool:
    """Whether a launcher config runs its jobs through submitit's local executor (hydra/launcher=
    submitit_local): each job in a process of its own, started by a controller process of submitit's."""
    return "submitit_launcher.LocalLauncher" in str(launcher.get("_target_", ""))


def handles(launcher) -> bool:
    """Whether a sweep with this launcher config is stopped here: the basic launcher, joblib's loky
    workers and submitit's local jobs (a SLURM array's jobs run on other machines and get their signals
    from SLURM)."""
    return (
        "BasicLauncher" in str(launcher.get("_target_", ""))
        or runs_jobs_in_loky_workers(launcher)
        or runs_jobs_in_submitit_local_processes(launcher)
    )


def install(record: str, launcher) -> None:
    """In the sweep's process, at the sweep's start. A handler someone else installed for a signal (a
    program calling prune-cli's main) is kept, as `interrupts.install` keeps it."""
    global _stopping, _record, _forward, _jobs_given, _local_jobs
    _stopping, _record, _forward, _jobs_given = None, record, runs_jobs_in_loky_workers(launcher), 0
    _local_jobs = runs_jobs_in_submitit_local_processes(launcher)
    _passed_to.clear()
    os.environ[SWEEP_PID_ENV] = str(os.getpid())  # inherited by the workers started from now on
    _guard(launcher)
    _before.clear()
    for sig in interrupts.SIGNALS:
        current = signal.getsignal(sig)
        if callable(current) and current not in (signal.default_int_handler, interrupts._handler):  # noqa: SLF001
            continue
        _before[sig] = current
        signal.signal(sig, _on_signal)


def launcher_class(launcher) -> type | None:
    """The class of the sweep's launcher (`hydra.launcher._target_`), whose `launch` prune-run wraps; None
    when it cannot be imported (Hydra then fails with its own reason)."""
    from hydra.utils import get_class

    try:
        return get_class(str(launcher.get("_target_", "")))
    except Exception:  # noqa: BLE001 - a launcher that cannot be imported fails in Hydra, with its reason
        return None


def _guard(launcher) -> None:
    """Wrap the launcher class's `launch` once: it counts the jobs it is given, and hands out none once
    the sweep is stopping (a signal during the whole-sweep check before the first batch, or a later
    batch of `hydra.sweeper.max_batch_size`: every job would otherwise be set up only to be declined)."""
    cls = launcher_class(launcher)
    if cls is None or getattr(cls.launch, "_prune_cli_stop_guard", False):
        return
    original = cls.launch

    def launch(self, job_overrides, initial_job_idx):
        global _jobs_given
        if _record is not None:
            _jobs_given += len(job_overrides)
            if _stopping is not None:
                return []
        return original(self, job_overrides, initial_job_idx)

    launch._prune_cli_stop_guard = True
    cls.launch = launch


def stopped_by() -> Optional[int]:
    """The signal the sweep's process received (None: none)."""
    return _stopping


def jobs_given() -> int:
    """How many jobs the launcher was given in this sweep, stopped batches included (0: unknown)."""
    return _jobs_given


def restore_signals() -> None:
    """The sweep is over: this process's signals behave as before it (tests run many sweeps in one process)."""
    global _record, _stopping
    if _record is None:
        return
    _record, _stopping = None, None
    os.environ.pop(SWEEP_PID_ENV, None)
    for sig, before in _before.items():
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, before)
    _before.clear()


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    global _stopping
    if _stopping is not None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the person wants out now
        _pass_on(signum)  # a job that started since the first signal (a worker's stops once: interrupts.py)
        return
    _stopping = signum
    name = signal.Signals(signum).name
    print(f"prune-run: received {name}: stopping the sweep at its running jobs' next safe point", file=sys.stderr)
    interrupts.request(signum)  # the job running in this process (basic launcher) stops at its next safe point
    if _record is None:
        return
    sweep_record.mark_stopping(_record)
    _stop_launching(frame)
    _pass_on(signum)


def _pass_on(signum: int) -> None:
    """The signal to the processes running the sweep's jobs (see the module's docstring): to joblib's
    workers SIGTERM or SIGUSR2 as received, and SIGTERM for a SIGINT (a worker that got the same Ctrl-C
    from the terminal keeps stopping at its safe point: only a second SIGINT stops it at once); to
    submitit's local jobs SIGINT, once (submitit's own handlers in them ignore SIGTERM and requeue on
    SIGUSR2)."""
    if _record is None or not (_forward or _local_jobs):
        return
    workers = _joblib_workers() if _forward else set()
    for pid in sweep_record.running(_record).values():
        if _forward and pid in workers:  # a worker running a job has prune-run's handler (a fresh one would die of it)
            _kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
        elif _local_jobs and pid not in _passed_to and _started_by_this_process(pid):
            _passed_to.add(pid)
            _kill(pid, signal.SIGINT)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _started_by_this_process(pid: int, levels: int = 4) -> bool:
    """Whether `pid` runs below this process (submitit's local job: this process started its controller,
    maybe through a shell, which started the job), from Linux's /proc; False where it cannot be read."""
    for _ in range(levels):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == os.getpid():
            return True
    return False


def _stop_launching(frame: Optional[FrameType]) -> None:
    """Empty the list of jobs the launcher's `launch(..., job_overrides, ...)` is working through (Hydra's
    basic launcher loops over it; joblib's Parallel draws from a generator over it), so no further job
    is handed out (`_guard` counted them when the batch began)."""
    while frame is not None:
        jobs = frame.f_locals.get("job_overrides") if frame.f_code.co_name == "launch" else None
        if isinstance(jobs, list):
            del jobs[:]
            return
        frame = frame.f_back


def retire_earlier_workers(launcher) -> None:
    """At a sweep's start, before its first job: shut down joblib's reusable loky executor if an earlier
    sweep (or other code) in this process left one. Its idle workers would be reused for up to 300 s,
    and a worker keeps the environment of its start, so it would record this sweep's jobs in the earlier
    sweep's record (removed when that sweep ended: the job failed with FileNotFoundError). The next batch
    starts fresh workers, with this sweep's environment. Nothing to do in a new process (`prune-run`)."""
    if runs_jobs_in_loky_workers(launcher):
        retire_idle_loky_workers()


def retire_idle_loky_workers() -> None:
    """Shut down joblib's reusable loky executor, if this process has one: the next batch of jobs starts
    fresh workers, with the environment the sweep's process has now (a worker keeps the one of its
    start). Also between a sweep's batches of different sizes (hydra.sweeper.max_batch_size): the workers
    of a batch of 2 told the last job, alone in its batch, that it shared the CPUs with another."""
    if "joblib.externals.loky.reusable_executor" not in sys.modules:
        return
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # noqa: SLF001 - loky keeps its reusable executor here
    if executor is not None:
        executor.shutdown(wait=True)


def _joblib_workers() -> set[int]:
    """The process ids of the workers of joblib's reusable loky executor (the one the launcher uses)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # noqa: SLF001 - loky keeps its reusable executor here
    return set(getattr(executor, "_processes", None) or {}) if executor is not None else set()


def _sweep_process_of_this_worker() -> Optional[int]:
    """The sweep's process when this process is one of its workers (its direct child), else None. A
    joblib launcher runs its jobs in the sweep's own process when it has one job at a time
    (`n_jobs=1`, or -1 on one CPU): there the parent is the shell or a driver script, whose exit (a
    `nohup` sweep after a logout) must not stop the sweep."""
    sweep = os.environ.get(SWEEP_PID_ENV, "")
    return int(sweep) if sweep.isdigit() and int(sweep) == os.getppid() else None


@contextlib.contextmanager
def orphan_watch(active: bool) -> Iterator[None]:
    """Around a job of a joblib sweep (`active`), in a loky worker of the sweep's process: the first
    job starts a daemon thread that watches the worker's parent, the sweep's process. When that process
    is gone (SIGKILL: nothing reached the workers), the running job is sent SIGTERM, so it stops at its
    next safe point with its checkpoint, and once no job runs the worker exits: nobody is left to hand
    it jobs or read its results. A job run in the sweep's own process watches nothing."""
    global _watcher
    sweep = _sweep_process_of_this_worker() if active else None
    if sweep is None:
        yield
        return
    if _watcher is None:
        _watcher = threading.Thread(target=_watch_parent, args=(sweep,), name="prune-cli-orphan-watch", daemon=True)
        _watcher.start()
    _job_running.set()
    try:
        yield
    finally:
        _job_running.clear()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    if _job_running.is_set():
        print(
            f"prune-run: the sweep's process ({parent}) is gone: stopping this worker's job at its next safe point",
            file=sys.stderr,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # prune-run's handler: the job stops as on a SIGTERM to it
        while _job_running.is_set():
            time.sleep(ORPHAN_POLL_S)
    os._exit(0)
