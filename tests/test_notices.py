"""prune_cli/core/notices.py: a line said on stderr is not printed a second time by a console log handler,
and the log file keeps it."""

from __future__ import annotations

import logging
import sys

import pytest


class _ColourStreamHandler(logging.StreamHandler):
    """A console handler of another class (colorlog's ColoredFormatter comes with such a StreamHandler
    subclass, chosen by `hydra/job_logging=colorlog`)."""


@pytest.mark.parametrize("handler_class", [logging.StreamHandler, _ColourStreamHandler], ids=["plain", "subclass"])
def test_a_said_line_reaches_the_terminal_once_and_the_log_file(handler_class, tmp_path, capsys):
    from prune_cli.core.notices import say

    root = logging.getLogger()
    console = handler_class(sys.stdout)
    log_file = logging.FileHandler(tmp_path / "prune-run.log")
    root.addHandler(console)
    root.addHandler(log_file)
    try:
        say(logging.getLogger("prune_cli.test"), "prune-run: run r1 is kept")
        log_file.flush()
    finally:
        root.removeHandler(console)
        root.removeHandler(log_file)
        log_file.close()
    out, err = capsys.readouterr()
    assert err == "prune-run: run r1 is kept\n" and "run r1 is kept" not in out, (out, err)
    assert "run r1 is kept" in (tmp_path / "prune-run.log").read_text()
