"""Named instants at which the fault-injection tests kill the process (SIGKILL, no clean-up) or hold it.

`PRUNE_CLI_CRASH_AT=<name>` makes the process die the moment it reaches that point; unset (always,
outside the tests) a point costs one dictionary look-up. The tests kill a run at every point and
check that starting it again gives exactly the rows of an uninterrupted run (docs/robustness.md).

`PRUNE_CLI_HOLD_AT=<name>` makes the process wait at that point until a stop signal arrives (at
most HOLD_S seconds), so a test's signal lands where it means to, however fast or loaded the
machine: the signal tests hold a run after its first checkpoint instead of racing its training.
`PRUNE_CLI_HOLD_RELEASE=<file>` also ends the wait once that file exists: a test that signals one
worker of a parallel sweep lets the other worker's job go on, unsignalled, when it chooses.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "PRUNE_CLI_CRASH_AT"
HOLD_ENV = "PRUNE_CLI_HOLD_AT"
RELEASE_ENV = "PRUNE_CLI_HOLD_RELEASE"
HOLD_S = 120.0

POINTS = (
    "checkpoint-write",  # state.pt written to its temporary file, not yet renamed into place
    "cache-stored",  # the dense model is complete in the dense cache, the run has not recorded it
    "shared-journal",  # the append journal is written, no shared table touched yet
    "shared-table-1",  # the first shared table has the run's rows, the others do not
    "shared-tables-all",  # every shared table has the rows, the run's marker is not yet written
    "shared-marker",  # the marker is written, the journal not yet removed
    "before-complete",  # shared rows committed, COMPLETE not yet written
)
HOLD_POINTS = (
    "checkpoint-saved",  # state.pt renamed into place (after every epoch and plan step)
    "sweep-started",  # a local sweep's record and signal handling are in place, no job launched yet
)


def reached(name: str) -> None:
    """Die here if the tests asked for it."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def hold(name: str) -> None:
    """Wait here for a stop signal (prune_cli/core/interrupts.py), or for the release file, if the tests
    asked for it."""
    if os.environ.get(HOLD_ENV) != name:
        return
    from . import interrupts

    release = os.environ.get(RELEASE_ENV)
    deadline = time.monotonic() + HOLD_S
    while interrupts.requested() is None and not (release and os.path.exists(release)) and time.monotonic() < deadline:
        time.sleep(0.01)
