"""Every shell script answers -h/--help with its usage and exit 0, without starting any work, and
refuses a first argument that starts with `-` (it used to take `--help` for the results folder and
start a sweep into a folder named `--help`). The shell scripts run here with PYTHON set to a
stand-in that only leaves a marker file, so a script that would start prune-run is caught at once.
The Python scripts' --help, and bench_speedup.py's refusal of a structure it cannot measure, run in
tests/test_script_arguments.py's driver (one interpreter for many cases)."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import REPO

SHELL = {
    "report_demo_mnist1d.sh": "usage: scripts/report_demo_mnist1d.sh [RESULTS_DIR]",
    "scaling_law_mnist1d.sh": "usage: [PRESET=NAME] scripts/scaling_law_mnist1d.sh [RESULTS_DIR]",
    "gpu_check.sh": "usage: [PYTHON=PATH] [GPU_CHECK_OUT=DIR] scripts/gpu_check.sh",
}


def _shell(tmp_path, script: str, *args: str) -> tuple[subprocess.CompletedProcess, bool]:
    """Run scripts/`script` `args` in tmp_path; returns the process and whether it started python."""
    marker = tmp_path / "python-was-started"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/sh\ntouch "{marker}"\nexit 0\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake)}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    return proc, marker.exists()


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", sorted(SHELL))
def test_shell_script_help(tmp_path, script, flag):
    proc, started = _shell(tmp_path, script, flag)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines()[0] == SHELL[script]
    assert not started and sorted(p.name for p in tmp_path.iterdir()) == ["fake-python"]


@pytest.mark.parametrize("script", sorted(SHELL))
def test_shell_script_refuses_an_unknown_option(tmp_path, script):
    proc, started = _shell(tmp_path, script, "--results")
    assert proc.returncode == 2 and not started
    assert proc.stdout == "" and proc.stderr.splitlines()[-1] == f"{script}: unknown option --results; " + SHELL[script]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-python"]


@pytest.mark.parametrize("script", ["report_demo_mnist1d.sh", "scaling_law_mnist1d.sh"])
@pytest.mark.parametrize("extra", ["train.epochs=1", "--quick"])
def test_shell_script_refuses_an_argument_after_the_results_folder(tmp_path, script, extra):
    """`scaling_law_mnist1d.sh DIR train.epochs=1` ran the full sweep without the override: the scripts
    read their first argument only and dropped the rest."""
    proc, started = _shell(tmp_path, script, "out", extra)
    assert proc.returncode == 2 and not started
    expected = f"{script}: unexpected argument {extra} (the only argument is RESULTS_DIR); " + SHELL[script]
    assert proc.stdout == "" and proc.stderr.splitlines()[-1] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-python"]


@pytest.mark.parametrize("code, fits", [(0, True), (1, True), (2, False), (130, False)])
def test_scaling_law_fits_only_after_a_sweep_that_ran(tmp_path, code, fits):
    """The script fitted after any prune-run status (`prune-run ... || echo "some runs failed"`): after
    a refused sweep (2) or a Ctrl-C (130) too. It fits after 0 and 1 (some runs failed: their points
    are left out) and passes any other status through."""
    calls = tmp_path / "calls"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nif [ "$2" = prune_cli.cli ]; then exit {code}; fi\nexit 0\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "scaling_law_mnist1d.sh"), str(tmp_path / "r")],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": str(fake)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    started = [line.split()[1] if line.startswith("-m") else line.split()[0] for line in calls.read_text().splitlines()]
    assert proc.returncode == (0 if fits else code), proc.stderr
    assert started == (["prune_cli.cli", "prune_cli.report", "-"] if fits else ["prune_cli.cli"])
