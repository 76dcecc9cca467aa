"""SIGTERM, SIGUSR2 and SIGINT stop a run at the next safe point instead of wherever they land.

SLURM sends SIGUSR2 (with `--signal`) before a time limit and SIGTERM on preemption or `scancel`;
a person presses Ctrl-C. In every case the run's last checkpoint (`state.pt`, written atomically
after every epoch and every plan step) stays valid, the process stops at the next safe point,
prints one line naming the run directory and how to resume, and exits 128 + signal.

Safe points (`check()`): every training batch, every plan step, before every metric
(prune_cli/metrics/__init__.py `register_metric`), and inside the long metrics between their pieces
of work: region counting's segments and planes and the exact count's MILP solves, every Hessian-vector product of the Hessian and
pruning-limit metrics, the pruning-limit sweep's evaluations, and the latency and speedup timing
repeats; and the waits for another process's lock (a run's, prune_cli/run/experiment.py; a dense-cache
entry's or data-pruning scores', prune_cli/run/dense_cache.py `waiting_lock`: `StoppedWaiting`). A phase's
rows are kept only once all its metrics are done, so stopping inside a metric loses that phase's
metrics and nothing else: the resumed run records the phase again from the checkpoint before it, with
the same results.
A second Ctrl-C stops at once; a SIGTERM or SIGUSR2 while stopping changes nothing (a sweep's process
passes a Ctrl-C on to its workers as SIGTERM: prune_cli/run/sweep_stop.py). Where another handler is
already installed for a signal (submitit installs its own SIGUSR2 handler that checkpoints and requeues
the job), that handler is kept. In a job submitit runs, that includes its SIGTERM handler, which ignores
the signal: on a preemption SLURM can send SIGTERM first and the `--signal` (SIGUSR2) after it, and
stopping at SIGTERM would end the job before submitit requeues it (tried and reverted on 2026-12-02); a
`scancel` ends such a job with SIGKILL after the grace time, and the same command resumes the run from
its last checkpoint.
"""

from __future__ import annotations

import logging
import signal
from typing import Callable, Optional

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)
_requested: Optional[int] = None


class Interrupted(BaseException):
    """Raised at a safe point after a stop signal; BaseException so no `except Exception` eats it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StoppedWaiting(Interrupted):
    """A stop signal while this process waited for the lock of a run another process is running
    (prune_cli/run/experiment.py `run`): this process stops; the other goes on with the run, or
    (`other_stopped`: the signal reached both, and the other freed the lock) has stopped too."""

    def __init__(self, signum: int, other_stopped: bool = False):
        super().__init__(signum)
        self.other_stopped = other_stopped


_logging = False  # the handler is writing its log line: a signal arriving meanwhile must not log inside it


def _say(message: str, signum: int) -> None:
    """The handler's log line, never from inside its own: a second signal during the first one's write (a
    Ctrl-C to a sweep's process group, then the sweep's SIGTERM to its workers) logged again re-entrantly,
    and the log file refused the nested flush ("RuntimeError: reentrant call inside <_io.BufferedWriter>",
    a traceback on stderr). The nested signal's line is dropped: the stop it asks for is already under way."""
    global _logging
    if _logging:
        return
    _logging = True
    try:
        log.warning(message, signal.Signals(signum).name)
    finally:
        _logging = False


def _handler(signum, frame) -> None:
    if _requested is not None and signum == signal.SIGINT:
        raise KeyboardInterrupt  # a second Ctrl-C: the person wants out now
    if _requested is not None:  # already stopping: e.g. a Ctrl-C to the whole group, then the sweep's process
        _say("received %s: already stopping at the next safe point", signum)  # passing it on
        return
    request(signum)


def request(signum: int) -> None:
    """What a stop signal does: the next safe point raises Interrupted (also set by a local sweep's own
    handler, prune_cli/run/sweep_stop.py, for the job running in its process)."""
    global _requested
    _requested = signum
    _say("received %s: stopping at the next safe point (the checkpoint stays valid)", signum)


def install() -> None:
    """Take over the stop signals in this process (main thread only), unless someone else has."""
    for sig in SIGNALS:
        try:
            current = signal.getsignal(sig)
            if callable(current) and current not in (signal.default_int_handler, _handler):
                continue  # e.g. submitit's requeue handler
            signal.signal(sig, _handler)
        except ValueError:  # not the main thread (a launcher running jobs in threads)
            return


def requested() -> Optional[int]:
    return _requested


def check() -> None:
    """A safe point: raise Interrupted if a stop signal arrived."""
    if _requested is not None:
        raise Interrupted(_requested)


def reset() -> None:
    global _requested
    _requested = None


def acquire_waiting(lock, announce: Callable[[], None], stopped: Callable[[int, bool], BaseException]) -> bool:
    """Take `lock` (a filelock.FileLock) that another process may hold: `announce()` once when it does, then
    wait with a safe point every half second, where a stop signal raises `stopped(signum, False)` (this
    process holds nothing). A lock that comes free after the signal (the same Ctrl-C to the process group
    stopped the other process too) is freed again and `stopped(signum, True)` raised, so this process never
    starts the work it was told to stop. Whether it waited. The run lock's wait (prune_cli/run/experiment.py)
    and a cache entry's (prune_cli/run/dense_cache.py `waiting_lock`)."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
        return False
    except Timeout:
        announce()
    while True:
        signum = requested()
        if signum is not None:
            raise stopped(signum, False)
        try:
            lock.acquire(timeout=0.5)
        except Timeout:
            continue
        signum = requested()
        if signum is not None:
            lock.release()
            raise stopped(signum, True)
        return True
