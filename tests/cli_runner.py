"""`prune-run` inside the test process: the same console entry point (`prune_cli.cli.main`) with
`sys.argv`, stdout, stderr and the exit code of a real invocation, without a new interpreter.

A subprocess costs 5-14 s of start-up before any work (importing torch and Hydra, issue 12); most
CLI tests only read the run's files and messages, which do not depend on the process. What a
process owns and a run may change is saved before the call and put back after it, so that no run
changes the tests that follow (tests/test_cli_in_process.py checks each item):

- `sys.argv`, the working directory and `os.environ` (prune-run sets `OMP_WAIT_POLICY`, a sweep
  sets its record file's variable);
- torch's intra-op threads (`threads=auto|N`), default dtype and the torch / numpy / Python RNGs;
- the signal handlers of SIGTERM, SIGUSR2 and SIGINT (prune_cli/core/interrupts.py installs its
  own) and the interrupt flag;
- logging: Hydra configures logging with `logging.config.dictConfig`, which removes and closes every
  existing handler (pytest's capture handlers included) and opens `<run dir>/prune-run.log`; the
  handlers and levels of every logger are restored and the run's own handlers closed;
- warnings: shown on stderr with a fresh interpreter's filters, as in a real run (pytest would
  otherwise record them instead), and the filters restored after;
- Hydra's GlobalHydra (cleared) and prune_cli.cli's record of the folders it created;
- the plugin index (prune_cli/core/plugins.py), which `plugins=[...]` extends.

What cannot be undone in-process, and therefore runs in a real process (`conftest.run_cli` chooses):
outside plugin modules (`plugins=[...]`: once imported, their registrations stay), a changed
`PYTHONPATH` (it only applies to a new interpreter), and anything where the process is the point
(exit codes of the console script under signals, locks between processes, launchers that start
workers, thread environment variables read when torch loads).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)

# The warning filters of a fresh `python -m prune_cli.cli` (Python's defaults, no -W, no PYTHONWARNINGS).
FRESH_INTERPRETER_FILTERS = (
    ("ignore", DeprecationWarning),
    ("ignore", PendingDeprecationWarning),
    ("ignore", ImportWarning),
    ("ignore", ResourceWarning),
)


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's own warning display, on the (redirected) stderr of the run."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _logger_states() -> dict:
    loggers = {"": logging.getLogger()}
    loggers.update({name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)})
    return {name: (lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for name, lg in loggers.items()}


@contextlib.contextmanager
def _saved_logging():
    """Keep the handlers that exist now out of reach of dictConfig's clean-up (it closes every handler
    in logging's global list), then close the run's handlers and put every logger back."""
    before = _logger_states()
    handler_list = list(logging._handlerList)  # noqa: SLF001 - the list dictConfig shuts down
    named = dict(logging._handlers)  # noqa: SLF001 - and the named handlers it forgets
    logging._handlerList[:] = []  # noqa: SLF001
    try:
        yield
    finally:
        after = _logger_states()
        old_handlers = {id(h) for _, handlers, *_ in before.values() for h in handlers}
        for _, handlers, *_ in after.values():
            for h in handlers:
                if id(h) not in old_handlers:
                    h.close()  # e.g. the FileHandler of <run dir>/prune-run.log
        for name, (lg, *_rest) in after.items():
            if name not in before:
                lg.handlers[:] = []
        for lg, handlers, level, propagate, disabled in before.values():
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled
        logging._handlerList[:] = handler_list  # noqa: SLF001
        logging._handlers.clear()  # noqa: SLF001
        logging._handlers.update(named)  # noqa: SLF001


@contextlib.contextmanager
def _saved_warnings():
    with warnings.catch_warnings():  # restores filters and showwarning on exit
        warnings.resetwarnings()
        for action, category in FRESH_INTERPRETER_FILTERS:
            warnings.filterwarnings(action, category=category)
        warnings.showwarning = _show_on_stderr
        yield


@contextlib.contextmanager
def process_state_restored():
    """Everything of the process a prune-run invocation may change, saved and put back."""
    from hydra.core.global_hydra import GlobalHydra

    import prune_cli.cli  # noqa: F401 - the entry point's setup (Hydra's changes, resolvers)
    from prune_cli import run_directories
    from prune_cli.core import interrupts, plugins

    argv, cwd, environ = list(sys.argv), os.getcwd(), dict(os.environ)
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    index = copy.deepcopy(plugins.index())
    try:
        with _saved_logging(), _saved_warnings():
            GlobalHydra.instance().clear()
            run_directories._CREATED.clear()  # noqa: SLF001 - folders "this process" created, per invocation
            yield
    finally:
        GlobalHydra.instance().clear()
        run_directories._CREATED.clear()  # noqa: SLF001
        plugins._INDEX = index  # noqa: SLF001
        interrupts.reset()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        sys.argv[:] = argv


def _exit_status(code) -> tuple[int, str]:
    """The status a process exiting with SystemExit(code) would have, and what it would print."""
    if code is None:
        return 0, ""
    if isinstance(code, int):
        return code, ""
    return 1, f"{code}\n"


def run_in_process(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`prune-run argv...` in this process, in `cwd` with `env` added to the environment: exit code,
    stdout and stderr as a CompletedProcess, like subprocess.run(capture_output=True, text=True)."""
    import prune_cli.cli as cli

    out, err = io.StringIO(), io.StringIO()
    with process_state_restored():
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv[:] = ["prune-run", *argv]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as stop:
                code, message = _exit_status(stop.code)
                err.write(message)
            except Exception:  # noqa: BLE001 - an uncaught exception: a process prints it and exits 1
                traceback.print_exc()
                code = 1
    return subprocess.CompletedProcess(["prune-run", *argv], code, out.getvalue(), err.getvalue())


class ForkedRun:
    """`prune-run argv...` in a child process forked from this one: a real process (its own pid,
    signals, kills, exit status, locks between processes) without a new interpreter's start-up, which
    costs 5-14 s on a loaded 2-core machine (torch and Hydra imported again). The child starts from a
    fresh interpreter's state where a run could tell the difference: default SIGTERM/SIGUSR2 handlers
    and Python's SIGINT handler, a fresh interpreter's warning filters, no Hydra instance, no folders
    recorded as created, one torch thread (OpenMP's thread pool does not survive a fork); stdout and
    stderr go to unlinked temporary files (nothing is left anywhere), read by `communicate`. The subset of subprocess.Popen
    the tests use: pid, poll, wait, communicate, send_signal, returncode.

    Only for the built-in plugins: the child inherits this process's imports and caches (the plugin
    index, the metrics schema), which equal a new interpreter's only as long as no outside plugin is
    involved. Not for what a fresh interpreter is the point of either: environment variables read
    when torch loads (OMP_*), import side effects. Those stay subprocesses."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str | None]) -> None:
        self._out, self._err = _unlinked_file(), _unlinked_file()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.dup2(self._out, 1)
            os.dup2(self._err, 2)
            _run_child(argv, cwd, env)
        self.args = ["prune-run", *argv]
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return _read_all(self._out), _read_all(self._err)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def __del__(self) -> None:
        for fd in (self._out, self._err):
            with contextlib.suppress(OSError):
                os.close(fd)


def _unlinked_file() -> int:
    """A temporary file with no name (removed at once; the descriptor keeps it until closed)."""
    fd, path = tempfile.mkstemp(prefix="prune-run-forked-")
    os.unlink(path)
    return fd


def _read_all(fd: int) -> str:
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    return data.decode(errors="replace")


def _run_child(argv: list[str], cwd: Path, env: dict[str, str | None]) -> None:
    """The forked child: prune-run's entry point, then os._exit with the status a process would have
    (os._exit: no pytest clean-up, atexit handlers or inherited buffers run in the child)."""
    code = 1
    try:
        from hydra.core.global_hydra import GlobalHydra

        import prune_cli.cli as cli
        from prune_cli import run_directories

        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the child
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        warnings.resetwarnings()
        for action, category in FRESH_INTERPRETER_FILTERS:
            warnings.filterwarnings(action, category=category)
        warnings.showwarning = _show_on_stderr
        torch.set_num_threads(1)
        GlobalHydra.instance().clear()
        run_directories._CREATED.clear()  # noqa: SLF001
        for key, value in env.items():  # None: not set in the child
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.chdir(cwd)
        sys.argv[:] = ["prune-run", *argv]
        try:
            cli.main()
            code = 0
        except SystemExit as stop:
            code, message = _exit_status(stop.code)
            sys.stderr.write(message)
    except BaseException:  # noqa: BLE001 - an uncaught exception: a process prints it and exits 1
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def start_forked(
    argv: list[str],
    results_dir: Path,
    cwd: Path | None = None,
    env: dict[str, str | None] | None = None,
) -> ForkedRun:
    """`prune-run argv... results_dir=<results_dir>` forked (ForkedRun), from `cwd` (default: results_dir's
    parent), with one OpenMP thread and Hydra's short error messages like conftest.run_cli, and `env`
    added (a value None removes the variable)."""
    from prune_cli.run.override_checks import last_value_wins

    full_env = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return ForkedRun(last_value_wins([*argv, f"results_dir={results_dir}"]), cwd or results_dir.parent, full_env)
