"""The test suite's own machinery for speed (docs/performance.md#test-suite): the default invocation
runs in pytest-xdist workers, session fixtures are made once across workers, and prune-run's kills and
signals run in forked children. Each check is against what it replaces: xdist's own options, a count
of calls, a process's exit status."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

import conftest
from cli_runner import start_forked


class _Plugins:
    def __init__(self, xdist: bool) -> None:
        self.xdist = xdist

    def hasplugin(self, name: str) -> bool:
        return name == "xdist" and self.xdist


def _config(source=pytest.Config.ArgsSource.TESTPATHS, xdist=True, **option):
    """The parts of a pytest Config the hook reads, as pytest and xdist leave them when `pytest` is run
    with no options (numprocesses None, dist "no", tx [])."""
    defaults = dict(numprocesses=None, dist="no", tx=[], usepdb=False, collectonly=False)
    return SimpleNamespace(args_source=source, pluginmanager=_Plugins(xdist), option=SimpleNamespace(**{**defaults, **option}))


def test_the_whole_suite_runs_in_workers_by_default(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    config = _config()
    conftest.pytest_cmdline_main(config)
    assert (config.option.numprocesses, config.option.dist) == ("auto", "loadgroup")


@pytest.mark.parametrize(
    "config",
    [
        _config(numprocesses=0),  # -n 0
        _config(numprocesses=4),  # -n 4 (xdist's --dist default then applies)
        _config(dist="loadfile"),  # --dist loadfile
        _config(xdist=False),  # -p no:xdist, or xdist not installed
        _config(source=pytest.Config.ArgsSource.ARGS),  # pytest tests/test_x.py
        _config(usepdb=True),  # --pdb needs one process
        _config(collectonly=True),
    ],
    ids=["n0", "n4", "dist", "no-xdist", "named-files", "pdb", "collect-only"],
)
def test_a_command_line_choice_is_kept(monkeypatch, config):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    before = dict(vars(config.option))
    conftest.pytest_cmdline_main(config)
    assert vars(config.option) == before


def test_a_worker_never_starts_workers(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    config = _config()
    conftest.pytest_cmdline_main(config)
    assert config.option.numprocesses is None


def test_auto_is_the_usable_cpus_or_the_variable(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert conftest.pytest_xdist_auto_num_workers(None) <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert conftest.pytest_xdist_auto_num_workers(None) == 1
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    assert conftest.pytest_xdist_auto_num_workers(None) == 3


def _make_in_worker(base, worker: str, calls) -> None:
    """One xdist worker asking for the shared thing (a fake tmp_path_factory whose base folder is the
    worker's own folder under the session's common one, as xdist lays them out)."""
    os.environ["PYTEST_XDIST_WORKER"] = worker
    factory = SimpleNamespace(getbasetemp=lambda: base / f"popen-{worker}")

    def make(folder):
        calls.put(worker)
        (folder / "made").write_text(worker)
        return subprocess.CompletedProcess(["x"], 0, "out", "err")

    folder, proc = conftest.made_once(factory, "thing", make)
    assert (folder / "made").exists() and (proc.returncode, proc.stdout, proc.stderr) == (0, "out", "err")


def test_made_once_across_workers(tmp_path):
    """Four workers at once ask for the same session fixture: it is made once, and all see it."""
    ctx = mp.get_context("fork")
    calls = ctx.Queue()
    workers = [ctx.Process(target=_make_in_worker, args=(tmp_path, f"gw{i}", calls)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    made_by = [calls.get(timeout=5)]
    assert calls.empty() and (tmp_path / "thing" / "made").read_text() == made_by[0]


def test_a_forked_run_is_a_process_of_its_own(tmp_path):
    """Exit status, output and signals of a forked prune-run, as of a subprocess: a rejected config
    exits 2 with the message on stderr; SIGKILL gives -9."""
    rejected = start_forked(["sparsity=2"], tmp_path / "results")
    out, err = rejected.communicate(timeout=120)
    assert rejected.returncode == 2 and err.startswith("prune-run: error:") and "'sparsity'" in err, err
    assert not (tmp_path / "results").exists() and list(tmp_path.iterdir()) == []  # no output files left behind
    running = start_forked(["--help"], tmp_path / "results")
    running.send_signal(signal.SIGKILL)
    assert running.wait(60) in (-signal.SIGKILL, 0)  # killed, unless --help was already done


def test_a_failed_make_fails_the_other_workers_clearly(tmp_path, monkeypatch):
    """The worker that makes the fixture fails; a later worker gets an error saying so instead of
    reading a half-made folder."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    factory = SimpleNamespace(getbasetemp=lambda: tmp_path / "popen-gw0")

    def broken(folder):
        raise ValueError("the run failed")

    with pytest.raises(ValueError, match="the run failed"):
        conftest.made_once(factory, "thing", broken)
    with pytest.raises(RuntimeError, match="the worker that made it first failed"):
        conftest.made_once(factory, "thing", broken)


GROUPED = """
import os
import pytest

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / f"grouped-{i}").write_text(os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
"""


# The inner suite's conftest: this suite's own hooks.
SUITE_HOOKS = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
from parallel_hooks import pytest_cmdline_main, pytest_collection_modifyitems, pytest_configure, pytest_xdist_auto_num_workers
"""


def test_tests_of_an_xdist_group_share_one_worker(tmp_path):
    """`--dist loadgroup` sends the tests of one `xdist_group` to one worker, so that they build their
    session fixture once. With pytest 9 xdist's own grouping (it rewrites `item._nodeid`, which pytest 9
    no longer reads) had no effect, and in the suite's default invocation (`pytest` alone: the hooks of
    tests/conftest.py choose loadgroup) the workers were not even told; tests/parallel_hooks.py puts the
    group into the node id where pytest 9 keeps it. Six grouped tests of an inner suite with this suite's
    hooks, run as `pytest` alone with two workers, all record the same worker (and the run used workers)."""
    pytest.importorskip("xdist")
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_grouped.py").write_text(GROUPED)
    (folder / "pytest.ini").write_text("[pytest]\ntestpaths = test_grouped.py\n")
    tests = conftest.REPO / "tests"
    (folder / "conftest.py").write_text(SUITE_HOOKS.format(repo=str(conftest.REPO), tests=str(tests)))
    base = tmp_path / "base"
    env = {**os.environ, "PYTEST_XDIST_AUTO_NUM_WORKERS": "2"}
    for name in (conftest.LOADGROUP_VARIABLE, "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        env.pop(name, None)  # a new session of its own, even when this test runs in a worker
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={base}"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 passed" in proc.stdout, proc.stdout
    workers = {p.read_text() for p in base.glob("grouped-*")}
    assert len(list(base.glob("grouped-*"))) == 6 and len(workers) == 1, workers
