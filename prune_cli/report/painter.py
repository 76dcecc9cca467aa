"""Drawing prune-report's figures in a second process while the first computes the statistics.

Importing matplotlib and drawing the figures took about half of `prune-report`'s time on a
100-run folder, and the statistics (pandas, scipy) the other half (scripts/bench_report.py,
docs/report.md). A `Painter` forks one worker process when the report starts (after the imports
of pandas and scipy.special, which it shares with the parent instead of importing them again, and
before scipy.stats, which only the parent's comparisons need: prune_cli/report/compare.py imports it
when a comparison has enough seeds for the Wilcoxon test or the resampled bootstrap): the worker
imports matplotlib while the parent reads the folder, and then draws each figure as soon as the
parent hands it the figure's data (build.py hands over every figure's data before it computes the
comparisons), so on two cores the two halves overlap.

The worker is forked (not spawned), so it starts with every module the parent has already
imported and with the parent's warning filters: a warning raised while drawing is raised as it
would be in-process. A figure's exception is raised again in the parent by `result()`. Where
fork is not available or only one CPU is usable, or with `parallel=False`, each figure is drawn
in this process when it is submitted: the same functions, the same files. By default the worker is
used when a CPU is idle (`idle_cpu`)."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Optional

PLOTS = "prune_cli.report.plots"
SCALING = "prune_cli.report.scaling"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cpu() -> bool:
    """Whether a second process would find CPU time: more than one usable CPU and a 1-minute load
    average below 1.5 per CPU. The worker imports pandas and matplotlib itself (about 5 % more CPU
    time in all); on a machine whose CPUs are all busy it only takes CPU time from the report. On 2
    CPUs, 100 runs: at load 2.6 the report took 2.2 s with the worker and 3.4 s without; at load 8.5
    the command with a worker took 20.1 s, the previous version in one process 16.6 s
    (scripts/bench_report.py, docs/report.md)."""
    cpus = usable_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        load = 0.0
    return cpus > 1 and load < 1.5 * cpus


def _warm_up() -> None:
    """The worker's first task: import matplotlib (Agg) and the plotting module before any figure arrives."""
    importlib.import_module(PLOTS)


def _draw(module: str, function: str, args: tuple, kwargs: dict) -> Any:
    return getattr(importlib.import_module(module), function)(*args, **kwargs)


class Painter:
    """Figures drawn by a forked worker process (or in this process): `submit(module, function,
    *args)` returns a Future of the function's return value (a figure's path or None)."""

    def __init__(self, parallel: Optional[bool] = None) -> None:
        if parallel is None:
            parallel = idle_cpu()
        self._pool: Optional[ProcessPoolExecutor] = None
        if parallel and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
            with warnings.catch_warnings():
                # Python 3.12+ warns when a process with threads forks (numpy's BLAS threads, when a
                # library caller has imported it): the worker only imports modules and draws.
                warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning)
                self._pool.submit(_warm_up)  # the fork happens here

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def submit(self, module: str, function: str, *args, **kwargs) -> Future:
        if self._pool is not None:
            return self._pool.submit(_draw, module, function, args, kwargs)
        done: Future = Future()
        try:
            done.set_result(_draw(module, function, args, kwargs))
        except Exception as e:  # raised by result(), as from the worker
            done.set_exception(e)
        return done

    def close(self) -> None:
        """Wait for the figures already submitted and end the worker (cancelling the rest after an error)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
