"""The test suite's pytest-xdist hooks (docs/performance.md#test-suite), imported by tests/conftest.py;
they import neither torch nor the package at import time, so that a pytest session of its own can use
them cheaply (tests/test_parallel_suite.py).

The whole suite (`pytest` with no paths: the testpaths) runs in pytest-xdist workers, one per usable
CPU, unless the command line chooses (`-n 0` or `-p no:xdist`: serial; `-n 4`: four workers). Naming
files or tests (`pytest tests/test_x.py`) stays serial: starting workers (each imports torch and
collects) costs more than it saves on a few tests.

`xdist_group` with pytest 9:

pytest-xdist's `--dist loadgroup` sends the tests whose node id ends in `@<group>` to one worker; its
workers add that suffix by assigning `item._nodeid`, which pytest 9 no longer reads (a node's id is a
structured `NodeId` in `item._id`, its text cached in `_str_cache`). The suffix never reached the
scheduler, so the tests of a group ran on any worker and their session fixture was built on each.
`add_group_suffix` puts the suffix where pytest 9 reads it; with a pytest or xdist that already shows it
in `item.nodeid` it changes nothing.

The suite's default invocation chooses `--dist loadgroup` in `pytest_cmdline_main` below;
xdist's workers parse the original command line again (without it), so xdist never told them to add
the suffix either: the controller sets an environment variable the workers inherit."""

from __future__ import annotations

import os

import pytest

LOADGROUP_VARIABLE = "PRUNE_CLI_TESTS_LOADGROUP"  # set by the hook below for its workers


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput") or "PYTEST_XDIST_WORKER" in os.environ


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Turn on `-n auto --dist loadgroup` for the default invocation (before xdist reads its options)."""
    if not config.pluginmanager.hasplugin("xdist") or _is_xdist_worker(config):
        return
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    chosen = config.option.numprocesses is not None or config.option.dist != "no" or config.option.tx
    if whole_suite and not chosen and not config.option.usepdb and not config.option.collectonly:
        config.option.numprocesses = "auto"
        config.option.dist = "loadgroup"  # like `load`, but tests marked xdist_group share a worker
        # Workers parse the original command line (no --dist): tell them (add_group_suffix).
        os.environ[LOADGROUP_VARIABLE] = "1"


@pytest.hookimpl(trylast=True)  # after xdist's own attempt (the module's docstring says why it fails)
def pytest_collection_modifyitems(config, items):
    add_group_suffix(config, items, os.environ.get(LOADGROUP_VARIABLE) == "1")


def pytest_configure(config):
    """xdist declares its `xdist_group` mark only when it is loaded; serial runs (`-p no:xdist`) would warn.
    pandas' warnings of what its next major version refuses (a str filled into a float column) fail the
    test that triggers them, where this pandas has them (pandas 3: the project's range includes pandas 4)."""
    config.addinivalue_line("markers", "xdist_group(name): tests that share a fixture run in one xdist worker")
    import pandas.errors

    if hasattr(pandas.errors, "Pandas4Warning"):
        config.addinivalue_line("filterwarnings", "error::pandas.errors.Pandas4Warning")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown without it (-p no:xdist)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may use (affinity, cgroup quota, SLURM: the same rule
    as prune-run's threads=auto, prune_cli/core/threads.py), or PYTEST_XDIST_AUTO_NUM_WORKERS."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    from prune_cli.core.threads import usable_cpus

    return usable_cpus(os.environ)[0]


def add_group_suffix(config, items, loadgroup: bool = False) -> None:
    """In a loadgroup worker, make `item.nodeid` end in `@<group>` for every test marked xdist_group.
    `loadgroup`: the controller chose `--dist loadgroup` itself (tests/conftest.py's default
    invocation); its workers parse the original command line, which does not say so."""
    if not (loadgroup or getattr(config.option, "loadgroup", False)) or not hasattr(config, "workerinput"):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid:
            continue
        node_id = getattr(item, "_id", None)
        if node_id is None or not hasattr(node_id, "_str_cache"):
            continue  # a pytest whose node ids this does not know: leave them
        object.__setattr__(node_id, "_str_cache", f"{item.nodeid}@{'_'.join(names)}")
