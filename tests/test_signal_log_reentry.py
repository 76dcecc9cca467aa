"""A stop signal that arrives while the stop signal handler is writing its own log line (a Ctrl-C to a
parallel sweep's process group, then the sweep passing SIGTERM on to its workers): the second handler call
logged again from inside the first one's write, and Python's file object refused the nested flush
("RuntimeError: reentrant call inside <_io.BufferedWriter ...prune-run.log>", printed by logging as
"--- Logging error ---" with a traceback on stderr; seen in tests/test_launchers.py's SIGINT-to-the-group
case). The handler now never logs from inside its own log call."""

from __future__ import annotations

import logging
import signal

from prune_cli.core import interrupts


class _SignalDuringWrite(logging.Handler):
    """A handler whose first write is interrupted by a second stop signal (the handler run re-entrantly,
    as Python runs a signal handler between two bytecodes of whatever is executing)."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.deepest = 0
        self.messages: list[str] = []

    def emit(self, record):
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        try:
            self.messages.append(record.getMessage())
            if len(self.messages) == 1:
                interrupts._handler(signal.SIGTERM, None)  # the second signal arrives mid-write
        finally:
            self.depth -= 1


def test_a_second_stop_signal_during_the_first_one_s_log_line_does_not_log_inside_it(monkeypatch):
    monkeypatch.setattr(interrupts, "_requested", None)
    handler = _SignalDuringWrite()
    interrupts.log.addHandler(handler)
    try:
        interrupts._handler(signal.SIGINT, None)
    finally:
        interrupts.log.removeHandler(handler)
    assert interrupts.requested() == signal.SIGINT  # the first signal decides the stop
    assert handler.deepest == 1, handler.messages  # no log call inside a log call
    assert handler.messages == ["received SIGINT: stopping at the next safe point (the checkpoint stays valid)"]


def test_a_second_stop_signal_after_the_log_line_is_still_reported(monkeypatch):
    monkeypatch.setattr(interrupts, "_requested", None)
    handler = _SignalDuringWrite()
    handler.messages.append("earlier")  # no nested signal from this handler
    interrupts.log.addHandler(handler)
    try:
        interrupts._handler(signal.SIGINT, None)
        interrupts._handler(signal.SIGTERM, None)
    finally:
        interrupts.log.removeHandler(handler)
    assert handler.messages[1:] == [
        "received SIGINT: stopping at the next safe point (the checkpoint stays valid)",
        "received SIGTERM: already stopping at the next safe point",
    ]
