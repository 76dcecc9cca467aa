"""The in-process `prune-run` of the tests (tests/cli_runner.py): it must answer like the console
command in a new interpreter, and leave nothing behind that could change a later test."""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runner import STOP_SIGNALS, run_in_process
from conftest import FAST, REJECTED, REJECTED_RESULTS_DIR, run_cli

ONE_EPOCH = [a for a in FAST if not a.startswith(("train.epochs", "finetune.epochs"))] + ["train.epochs=1", "finetune.epochs=1"]


def _process_state() -> dict:
    from hydra.core.global_hydra import GlobalHydra

    from prune_cli.core import interrupts, plugins

    root = logging.getLogger()
    return {
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "environ": dict(os.environ),
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "signals": {sig: signal.getsignal(sig) for sig in STOP_SIGNALS},
        "interrupt": interrupts.requested(),
        "root handlers": list(root.handlers),
        "root level": root.level,
        "prune_cli logger": (list(logging.getLogger("prune_cli").handlers), logging.getLogger("prune_cli").level),
        "handler list": len(logging._handlerList),  # noqa: SLF001
        "warning filters": list(warnings.filters),
        "showwarning": warnings.showwarning,
        "hydra initialized": GlobalHydra.instance().is_initialized(),
        "outside plugins": plugins.outside_modules(),
    }


def _open_files_under(folder: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to list open files")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_a_sweep_in_process_leaves_the_process_as_it_found_it(tmp_path, caplog):
    """A sweep (of one run) with `threads=2` changes torch's threads, the signal handlers, logging (Hydra's
    dictConfig and each run's log file) and the environment (OMP_WAIT_POLICY, the sweep record);
    afterwards all of it is as before, and pytest's log capture still works."""
    before = _process_state()
    results = tmp_path / "results"
    proc = run_cli(["-m", *ONE_EPOCH, "threads=2", "sparsity=0.5"], results)
    assert "all 1 runs of the sweep completed" in proc.stderr
    [log] = [p.read_text() for p in results.glob("runs/*/prune-run.log")]
    assert "torch intra-op threads: 2 (threads=2)" in log  # it changed torch's threads in this process
    after = _process_state()
    for key, value in before.items():
        assert after[key] == value, key
    assert _open_files_under(tmp_path) == []  # the runs' log files are closed
    logging.getLogger("prune_cli.test").warning("after the run")
    assert "after the run" in caplog.text


def test_rngs_continue_where_the_test_left_them(tmp_path):
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    expected = (torch.rand(4), np.random.rand(4), random.random())
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    run_cli([*ONE_EPOCH, "seed=3"], tmp_path / "results")  # seeds torch, numpy and random with 3
    got = (torch.rand(4), np.random.rand(4), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_in_process_answers_like_the_console_command_to_a_config_error(tmp_path, rejected_console_run):
    """A config error (`sparsity=2`: one line, exit 2, nothing created): exit code, stdout, stderr and the
    files left behind are those of `python -m prune_cli.cli` in a new interpreter (conftest's
    `rejected_console_run`, made once per session: test_robustness reads it too)."""
    work = tmp_path / "work"
    work.mkdir()
    inside = run_in_process([*REJECTED, REJECTED_RESULTS_DIR], cwd=work, env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
    outside = rejected_console_run.proc
    normalise = lambda text: text.replace(str(work), "X").replace(str(rejected_console_run.work), "X")  # noqa: E731
    assert outside.returncode == 2
    assert inside.returncode == outside.returncode
    assert normalise(inside.stdout) == normalise(outside.stdout)
    assert normalise(inside.stderr) == normalise(outside.stderr)
    created = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert created == rejected_console_run.created == ["work"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--cfg", "job", "dataset=synthetic"], marks=pytest.mark.slow),  # prints the config
        pytest.param(["method=foo"], marks=pytest.mark.slow),  # found by Hydra while composing: exit 2
    ],
    ids=["cfg-job", "unknown-option"],
)
def test_in_process_answers_like_the_console_command(tmp_path, args):
    """Exit code, stdout and stderr are those of `python -m prune_cli.cli` in a new interpreter."""
    for side in "ab":
        (tmp_path / side).mkdir()
    inside = run_cli(args, tmp_path / "a" / "results", check=False)
    outside = run_cli(args, tmp_path / "b" / "results", check=False, separate_process=True)
    normalise = lambda text: text.replace(str(tmp_path / "a"), "X").replace(str(tmp_path / "b"), "X")  # noqa: E731
    assert inside.returncode == outside.returncode
    assert normalise(inside.stdout) == normalise(outside.stdout)
    assert normalise(inside.stderr) == normalise(outside.stderr)
    assert not (tmp_path / "a" / "results").exists() and not (tmp_path / "b" / "results").exists()


def test_warnings_reach_stderr_every_time(tmp_path, monkeypatch):
    """A run's Python warnings are printed on its stderr, as in a new interpreter, also when an earlier
    in-process run already showed the same warning (pytest would otherwise record them instead)."""
    import prune_cli.cli as cli

    def warn_then_reject(*args, **kwargs):
        warnings.warn("a warning of the run", UserWarning)
        raise SystemExit(2)

    monkeypatch.setattr(cli, "hydra_main", warn_then_reject)
    for attempt in range(2):
        proc = run_cli(ONE_EPOCH, tmp_path / f"r{attempt}", check=False)
        assert proc.returncode == 2 and "UserWarning: a warning of the run" in proc.stderr, attempt


def test_outside_plugins_run_in_a_new_interpreter(tmp_path, monkeypatch):
    """`plugins=[...]` imports modules whose registrations cannot be undone, and a PYTHONPATH set by
    the test only reaches a new interpreter: such runs go to a subprocess (here the module is
    importable only there, so the run succeeds only there) and this process never imports it."""
    from prune_cli.core import plugins

    lab = tmp_path / "src" / "lab_in_process"
    lab.mkdir(parents=True)
    (lab / "__init__.py").write_text("")
    (lab / "named.py").write_text(
        "from prune_cli.pruning.scores import register_score\n\n\n"
        '@register_score("named_score")\n'
        "def named_score(model, params, ctx):\n"
        "    return {n: params[n].detach().abs() for n in params}\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = run_cli(["--cfg", "job", "plugins=[lab_in_process.named]", "method.score=named_score"], tmp_path / "results")
    assert "score: named_score" in proc.stdout
    assert "lab_in_process.named" not in plugins.outside_modules()
    assert "lab_in_process" not in sys.modules
