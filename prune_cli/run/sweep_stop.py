"""Stopping a local parallel sweep (hydra/launcher=parallel, joblib) with a signal, as one run stops.

A single run and Hydra's basic launcher handle SIGTERM, SIGUSR2 and SIGINT in the process that runs
the job (prune_cli/core/interrupts.py). Under joblib the jobs run in worker processes and the sweep's
own process only waits for them: a signal to it (SLURM's SIGTERM or SIGUSR2 to a batch job running
the sweep, `kill`) killed it at once, left the workers running their jobs as orphans, and lost the
queued jobs without a word. Now a stop signal, to the sweep's process or to one of its workers,

1. marks the sweep as stopping (`sweep_record.mark_stopping`): a queued job a worker takes up then
   does not run, and is recorded as not started;
2. reaches every running job: the sweep's process passes its signal on to the workers running a job
   (a Ctrl-C at a terminal already reached every process of the foreground group and is not passed
   on: a second SIGINT would make them stop at once). Each job stops at its next safe point and keeps
   its checkpoint, exactly as a run given the signal itself, and ends normally, so joblib's batch ends
   as usual (killing the workers instead would leave their semaphores behind);
3. at the sweep's end, `prune-run` says which runs stopped, how many queued runs did not start and how
   to resume, and exits 128 + signal (prune_cli/cli.py `SweepSummary`).

A second Ctrl-C to the sweep's process stops at once (joblib then kills the workers; their
checkpoints stay valid, docs/robustness.md).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Optional

from ..core import interrupts
from . import sweep_record

_stopping: Optional[int] = None
_record: Optional[str] = None


def runs_jobs_in_loky_workers(launcher) -> bool:
    """Whether a launcher config runs its jobs in joblib's loky worker processes (hydra/launcher=parallel
    as configured: `prefer: processes`, no other backend)."""
    target = str(launcher.get("_target_", ""))
    backend = launcher.get("backend", None)
    return "JoblibLauncher" in target and backend in (None, "loky") and launcher.get("prefer", None) != "threads"


def forward_stop_signals(record: str) -> None:
    """In the sweep's process, for a launcher whose jobs run in joblib's loky workers."""
    global _stopping, _record
    _stopping, _record = None, record
    for sig in interrupts.SIGNALS:
        signal.signal(sig, _on_signal)


def stopped_by() -> Optional[int]:
    """The signal the sweep's process received (None: none)."""
    return _stopping


def restore_signals() -> None:
    """The sweep is over: this process's signals behave as before it (tests run many sweeps in one process)."""
    global _record, _stopping
    if _record is None:
        return
    _record, _stopping = None, None
    for sig in interrupts.SIGNALS:
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)


def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
    global _stopping
    if _stopping is not None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the person wants out now
        return
    _stopping = signum
    name = signal.Signals(signum).name
    print(f"prune-run: received {name}: stopping the sweep's running jobs at their next safe point", file=sys.stderr)
    if _record is None:
        return
    sweep_record.mark_stopping(_record)
    if signum == signal.SIGINT and _the_terminal_sent_it_to_every_process():
        return
    workers = _joblib_workers()
    for pid in sweep_record.running(_record).values():
        if pid in workers:  # a worker running a job has prune-run's handler (a fresh one would die of it)
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def _joblib_workers() -> set[int]:
    """The process ids of the workers of joblib's reusable loky executor (the one the launcher uses)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor  # noqa: SLF001 - loky keeps its reusable executor here
    return set(getattr(executor, "_processes", None) or {}) if executor is not None else set()


def _the_terminal_sent_it_to_every_process() -> bool:
    """Whether this process is in its terminal's foreground process group (a Ctrl-C reaches them all)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False  # no terminal: the signal was sent to this process alone
