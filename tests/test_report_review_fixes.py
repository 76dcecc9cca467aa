"""prune-report on folders built by hand in prune-run's formats (write_run, no training): a report stopped
by SIGTERM or SIGHUP, --expect beside a failed run of another configuration, a completed run left out for
its config.yaml, and a method none of whose runs finished."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from pathlib import Path

import pytest

from prune_cli.report import build_report
from test_report_audit_fixes import _two_methods

REPO = Path(__file__).resolve().parents[1]

# A report whose last step (report.html) waits until it is signalled: it says so in `ready` first.
_BLOCKED = """
import sys, time
from pathlib import Path
from prune_cli.report import build as b, main
def blocked(*args, **kwargs):
    Path(sys.argv[3]).write_text("ready")
    time.sleep(600)
b.write_html = blocked
main([sys.argv[1], "--out", sys.argv[2], "--no-plots"])
"""


def _stopped_report(root: Path, out: Path, ready: Path, signum: int) -> int:
    """Run the blocked report in a process of its own, send it `signum` once it waits, return its exit code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_BLOCKED), str(root), str(out), str(ready)], env=env)
    try:
        while not ready.exists():  # polled, no fixed sleep: the report has written its staging folder
            assert proc.poll() is None, "the report ended before it was signalled"
            time.sleep(0.05)
        proc.send_signal(signum)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_report_stopped_by_sigterm_or_sighup_removes_its_hidden_folder(tmp_path, signum):
    """The staging folder was removed in a `finally`, which an exception or Ctrl-C reaches but SIGTERM's
    and SIGHUP's default action (a SLURM time limit, a closed terminal) does not: each stopped report left
    a `.prune-report-*` folder of half-written tables in --out. The signal now ends the report through
    its clean-up, with the shell's exit code 128 + signal."""
    root = _two_methods(tmp_path / "res")
    out = tmp_path / "out"
    ready = tmp_path / "ready"
    code = _stopped_report(root, out, ready, signum)
    assert code == 128 + signum
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_report_removes_hidden_folders_of_reports_no_longer_running_on_this_host(tmp_path):
    """A report killed outright (SIGKILL) cannot remove its staging folder, and every later report left it
    there. A report now removes the staging folders in --out of reports on this host whose process has
    ended; those of a report still running (another report into the same folder) or of another host
    (a shared file system) are left alone."""
    root = _two_methods(tmp_path / "res")
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    dead = out / f".prune-report-{_dead_pid()}@{host}@abc"
    alive = out / f".prune-report-{os.getpid()}@{host}@abc"
    other = out / ".prune-report-1@elsewhere.example@abc"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "summary.csv").write_text("half")
    build_report(root, out, plots=False)
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == sorted([alive.name, other.name])
