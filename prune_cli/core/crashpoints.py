"""Named instants at which the fault-injection tests kill the process (SIGKILL, no clean-up).

`PRUNE_CLI_CRASH_AT=<name>` makes the process die the moment it reaches that point; unset (always,
outside the tests) a point costs one dictionary look-up. The tests kill a run at every point and
check that starting it again gives exactly the rows of an uninterrupted run (docs/robustness.md).
"""

from __future__ import annotations

import os
import signal

ENV = "PRUNE_CLI_CRASH_AT"

POINTS = (
    "checkpoint-write",  # state.pt written to its temporary file, not yet renamed into place
    "cache-stored",  # the dense model is complete in the dense cache, the run has not recorded it
    "shared-journal",  # the append journal is written, no shared table touched yet
    "shared-table-1",  # the first shared table has the run's rows, the others do not
    "shared-tables-all",  # every shared table has the rows, the run's marker is not yet written
    "shared-marker",  # the marker is written, the journal not yet removed
    "before-complete",  # shared rows committed, COMPLETE not yet written
)


def reached(name: str) -> None:
    """Die here if the tests asked for it."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
