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

import pandas as pd
import pytest
import yaml

from prune_cli.report import build_report
from test_report_audit_fixes import _fail, _two_methods, _unfinish
from test_report_experiments import write_run

REPO = Path(__file__).resolve().parents[1]

# A report whose last step (report.html) waits until it is signalled: it says so in `ready` first. It starts
# as from a terminal, SIGTERM and SIGHUP at their defaults and unblocked, whatever this process inherited: under
# `nohup pytest` SIGHUP is ignored, and the report rightly leaves an ignored signal alone (nothing to stop it).
_BLOCKED = """
import signal, sys, time
from pathlib import Path
for signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGHUP})
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
    (a shared file system) or of another pid namespace of this host name (a container sharing the host's
    name, where a pid free here may be a running report's) are left alone."""
    root = _two_methods(tmp_path / "res")
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    here = f"{host}~{namespace}"
    dead = out / f".prune-report-{_dead_pid()}@{here}@abc"
    alive = out / f".prune-report-{os.getpid()}@{here}@abc"
    other = out / ".prune-report-1@elsewhere.example~1@abc"
    container = out / f".prune-report-{_dead_pid()}@{host}~{namespace}0@abc"  # another pid namespace
    unknown = out / f".prune-report-{_dead_pid()}@{host}@abc"  # no namespace: cannot be judged
    for folder in (dead, alive, other, container, unknown):
        folder.mkdir()
        (folder / "summary.csv").write_text("half")
    build_report(root, out, plots=False)
    assert not dead.exists() and alive.exists() and other.exists() and container.exists() and unknown.exists()
    left = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert left == sorted([alive.name, other.name, container.name, unknown.name])


def test_expect_does_not_count_a_failed_run_of_another_configuration_as_a_lost_seed(tmp_path):
    """random seed 3 with train.lr=1e12 diverged (failed.json): --expect counted it as a lost seed of the
    random point (matching on method and sparsity only) and of the dense point (lr=1e12 trains another
    dense model), and --expect-strict refused both, while the verdicts rightly named nothing: no
    completed run has that configuration. --expect now counts only failed runs of a configuration some
    completed run has, as the verdicts do."""
    from prune_cli.report import main as report_main

    root = _two_methods(tmp_path / "res")
    run = write_run(root, 3, "random", 0.5, 10, 0.7)
    path = root / "runs" / run / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["train"]["lr"] = 1e12
    path.write_text(yaml.safe_dump(config))
    _fail(root, run, "TrainingDiverged")
    spec = tmp_path / "exp.yaml"
    points = [
        {"method": "magnitude", "sparsity": 0.5, "value": 0.81, "band": 0.05},
        {"method": "random", "sparsity": 0.5, "value": 0.72, "band": 0.05},
        {"sparsity": 0.5, "phase": "dense", "value": 0.9, "band": 0.05},
    ]
    spec.write_text(yaml.safe_dump({"name": "run", "points": points}))
    report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])  # no SystemExit(1)
    rows = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert list(rows["seeds_lost"]) == [0, 0, 0] and list(rows["note"]) == ["", "", ""], rows


def test_a_completed_run_left_out_for_its_config_is_named_as_left_out_not_as_never_run(tmp_path):
    """random seed 2 completed but its config.yaml was deleted: the header counted it as left out (no
    config.yaml), yet the verdict said "seed 2 of magnitude has no run of random to pair with", as if it
    had never run, and --expect's random point counted no lost seed. The run's own metrics.csv names
    its method, seed and sparsity: the seed is now named as left out for that reason, in the verdict and
    in expect.csv."""
    root = _two_methods(tmp_path / "res")
    run = next(p for p in (root / "runs").iterdir() if "-random-" in p.name and "-seed2-" in p.name)
    (run / "config.yaml").unlink()
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "random", "sparsity": 0.5, "value": 0.72, "band": 0.05}]}))
    written = build_report(root, plots=False, expect=str(spec))
    c = pd.read_csv(written["comparisons.csv"], keep_default_na=False)
    (verdict,) = c["verdict"]
    assert "no run of random to pair with" not in verdict and "no run of random to pair with" not in c["unpaired"][0], verdict
    assert verdict.endswith("; left out: seed 2 of random left out (no config.yaml)"), verdict
    (row,) = pd.read_csv(written["expect.csv"], keep_default_na=False).to_dict(orient="records")
    assert row["seeds_lost"] == 1 and row["note"] == "left out: seed 2 of random left out (no config.yaml)", row


def test_a_method_none_of_whose_runs_finished_has_a_line_beside_the_verdicts(tmp_path):
    """Every run of random at 0.5 failed: summary.md said "not compared, every run failed: ...". Every run
    of random at 0.9 did not finish, or one failed and the others did not finish: summary.md counted them
    in its header and said nothing beside the verdicts. It now says so in the same place."""
    root = tmp_path / "res"
    runs = {}
    for sparsity in (0.5, 0.9, 0.7):
        for seed in range(2):
            write_run(root, seed, "magnitude", sparsity, 10, 0.8)
            runs[sparsity, seed] = write_run(root, seed, "random", sparsity, 10, 0.7)
    for seed in range(2):
        _fail(root, runs[0.5, seed], "LayerCollapse")
        _unfinish(root, runs[0.9, seed])
    _fail(root, runs[0.7, 0], "LayerCollapse")
    _unfinish(root, runs[0.7, 1])
    md = build_report(root, plots=False)["summary.md"].read_text()
    lines = [line for line in md.splitlines() if "random at sparsity" in line]
    assert any(
        "random at sparsity 0.5 (comparison" in x and "not compared, every run failed: seed 0 (LayerCollapse), seed 1" in x
        for x in lines
    ), lines
    assert any(
        "random at sparsity 0.9 (comparison" in x
        and x.endswith("not compared, no run finished: seed 0 did not finish, seed 1 did not finish")
        for x in lines
    ), lines
    assert any(
        "random at sparsity 0.7 (comparison" in x
        and x.endswith("not compared, no run finished: seed 0 (LayerCollapse), seed 1 did not finish")
        for x in lines
    ), lines


def test_compare_by_names_a_run_left_out_for_its_config_as_left_out(tmp_path):
    """--compare-by train.epochs: seed 2's run at 20 epochs completed but lost its config.yaml; the
    verdict said "seed 2 of magnitude [train.epochs=10] has no run of magnitude [train.epochs=20] to
    pair with", as if it had never run (the method comparisons already said "left out")."""
    root = tmp_path / "res"
    for seed in range(3):
        for epochs in (10, 20):
            write_run(root, seed, "magnitude", 0.5, epochs, 0.8 + 0.01 * seed + epochs / 1000)
    run = next(p for p in (root / "runs").iterdir() if "-seed2-" in p.name and "-e20-" in p.name)
    (run / "config.yaml").unlink()
    written = build_report(root, plots=False, compare_by="train.epochs")
    (verdict,) = pd.read_csv(written["comparisons_by.csv"], keep_default_na=False)["verdict"]
    assert "to pair with" not in verdict, verdict
    assert verdict.endswith("left out: seed 2 of magnitude [train.epochs=20] left out (no config.yaml)"), verdict


def test_a_staging_folder_named_with_a_pid_no_process_can_have_is_left_alone(tmp_path):
    """A pid too large for the system call (os.kill raised OverflowError) stopped the report; such a
    name cannot be a report's, and is left alone like every name that cannot be judged."""
    from prune_cli.core import processes

    root = _two_methods(tmp_path / "res")
    out = tmp_path / "out"
    odd = out / f".prune-report-{'9' * 20}@{processes.here()}@abc"
    odd.mkdir(parents=True)
    build_report(root, out, plots=False)
    assert odd.is_dir() and (out / "summary.md").exists()
