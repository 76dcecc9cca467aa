"""A line for the researcher, said once on the terminal and kept in the run's log file.

prune-run says what a researcher must not miss (a run kept though other code made it, classes left
without training examples, where a stopped run keeps its checkpoint) on stderr, so that it shows when
stdout goes to a file. The same line also goes to the run's log (`<run dir>/prune-run.log`, Hydra's
job logging). Hydra's job logging has a console handler too (stdout), so on a terminal each such line
was printed twice. `say` marks its log record; the console handlers leave marked records to the
stderr line, and the log file keeps them.
"""

from __future__ import annotations

import functools
import logging
import sys

_SAID_ON_STDERR = "prune_cli_said_on_stderr"


class _LeftToStderr(logging.Filter):
    """Drops the records `say` has also printed on stderr (console handlers only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, _SAID_ON_STDERR, False)


def _console_handlers_leave_said_lines_to_stderr() -> None:
    """Hydra configures the job's logging afresh for every job of a sweep, so the filter is added to the
    root logger's console handlers (StreamHandlers to stdout or stderr, subclasses such as colorlog's
    included; a FileHandler is a StreamHandler too, and keeps every record) each time, once per handler."""
    for handler in logging.getLogger().handlers:
        to_file = isinstance(handler, logging.FileHandler)
        console = isinstance(handler, logging.StreamHandler) and not to_file and handler.stream in (sys.stdout, sys.stderr)
        if console and not any(isinstance(f, _LeftToStderr) for f in handler.filters):
            handler.addFilter(_LeftToStderr())


def _drops_every_record(record: logging.LogRecord) -> bool:
    return False


def _log_file_lost(handler: logging.FileHandler, record: logging.LogRecord) -> None:
    """`handleError` of a log file handler: an OSError (a full disk, a quota) is said once, and the handler
    then drops every record (a filter: removing it from the logger would skip the next handler for this
    record); any other error is Python's usual report."""
    error = sys.exc_info()[1]
    if not isinstance(error, OSError):
        logging.FileHandler.handleError(handler, record)
        return
    handler.addFilter(_drops_every_record)
    print(
        f"prune-run: cannot write the log file {handler.baseFilename} ({error.strerror or error}); "
        "the run goes on, its log lines only on the console",
        file=sys.stderr,
    )


def log_file_failures_said_once() -> None:
    """A run's log file (`<run dir>/prune-run.log`) that cannot be written printed Python's "--- Logging
    error ---" and a traceback for every record (750 lines of stderr in the default run), burying the
    run's own messages; the run itself can go on (a checkpoint it cannot write then stops it with one
    line). Hydra configures the job's logging afresh for every job, so this is applied at each job's
    start, to the root logger's file handlers."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handleError = functools.partial(_log_file_lost, handler)


def say(log: logging.Logger, line: str, *, level: int = logging.WARNING, log_line: str | None = None) -> None:
    """Print `line` on stderr and log `log_line` (default: `line` without its "prune-run: " prefix, which
    the log record's own header replaces) to the log file, not a second time on the console."""
    _console_handlers_leave_said_lines_to_stderr()
    log.log(level, line.removeprefix("prune-run: ") if log_line is None else log_line, extra={_SAID_ON_STDERR: True})
    print(line, file=sys.stderr)
