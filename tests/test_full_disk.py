"""A full disk while a run fails (audit of docs/robustness.md's fault table): the run's error became
three chained `OSError: [Errno 28]` tracebacks, the last from writing failed.json itself, with no
`prune-run:` line, and the atomic write left its half-written temporary file behind. Now the run's one
line and exit status stand, failed.json is left out where it cannot be written (the line says so for a
bug), and a failed atomic write removes its temporary file."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prune_cli import cli
from prune_cli.core import atomic_io
from prune_cli.core.errors import PruneCliError


def _no_space(path: Path):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_failed_atomic_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "failed.json"
    target.write_text("earlier")

    def half_then_full(f):
        f.write(b'{\n  "status"')
        _no_space(target)

    with pytest.raises(OSError) as err:
        atomic_io._write(target, half_then_full, durable=False)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.json"]  # no .failed.json.<pid>.tmp left
    assert target.read_text() == "earlier"


HYDRA = OmegaConf.create({"overrides": {"task": ["sparsity=0.6"]}, "job": {"num": None}})


def _disk_full_for_failed_json(monkeypatch):
    monkeypatch.setattr(cli, "atomic_write_text", lambda path, text, durable=False: _no_space(path))


def test_a_refused_run_on_a_full_disk_says_its_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    _disk_full_for_failed_json(monkeypatch)
    run_dir = tmp_path / "runs" / "run-x"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("phase\n")  # results of its own: the directory stays
    err = PruneCliError(f"cannot use {run_dir / 'state.pt'}: No space left on device")
    with pytest.raises(SystemExit) as stop:
        cli._fail(err, run_dir, HYDRA, OmegaConf.create({}), in_sweep=False)
    assert stop.value.code == 2
    said = capsys.readouterr().err
    assert said.strip().splitlines() == [f"prune-run: error: cannot use {run_dir / 'state.pt'}: No space left on device"], said
    assert not (run_dir / "failed.json").exists()


def test_a_bug_on_a_full_disk_does_not_point_at_a_failed_json_it_could_not_write(tmp_path, monkeypatch, capsys):
    _disk_full_for_failed_json(monkeypatch)
    run_dir = tmp_path / "runs" / "run-x"
    run_dir.mkdir(parents=True)
    written, why_not = cli._record_failure(ValueError("boom"), run_dir, HYDRA, OmegaConf.create({}))
    assert written is False and why_not == "failed.json could not be written (No space left on device)"
    cli._fail(ValueError("boom"), run_dir, HYDRA, OmegaConf.create({}), in_sweep=False)
    said = capsys.readouterr().err
    assert "internal error in run" in said and "failed.json could not be written (No space left on device)" in said, said
    assert "please report it with" not in said


class _FullDiskStream:
    """A file on a full disk (or over its quota): every write fails."""

    def write(self, text: str):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        pass


def test_a_log_file_that_cannot_be_written_is_one_line_not_a_traceback_per_record(tmp_path, monkeypatch):
    """The run's log file (prune-run.log) on a full disk: Python's logging printed "--- Logging error ---"
    and a 45-line traceback for each of the default run's 16 log records (750 lines of stderr), burying
    everything else. Now the first failure is one prune-run line naming the file and the reason, the
    file is left alone after it, and the run goes on (its records still reach the console)."""
    import logging

    from conftest import FAST, run_cli

    monkeypatch.setattr(logging.FileHandler, "_open", lambda handler: _FullDiskStream())
    results = tmp_path / "results"
    proc = run_cli(FAST, results, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [run] = [p for p in (results / "runs").iterdir() if p.is_dir()]
    unwritable = [line for line in proc.stderr.splitlines() if "log" in line and "No space left on device" in line]
    assert unwritable == [
        f"prune-run: cannot write the log file {run / 'prune-run.log'} (No space left on device); "
        "the run goes on, its log lines only on the console"
    ], proc.stderr[-3000:]
    assert (run / "COMPLETE").exists()


def test_a_refused_run_on_a_full_disk_logs_no_second_line_about_failed_json(tmp_path, monkeypatch, caplog):
    """The one line is the whole answer: the warning a sweep's job logs when failed.json cannot be written
    is not logged by a single run (it reached the console as a second line, via Hydra's stdout handler)."""
    _disk_full_for_failed_json(monkeypatch)
    run_dir = tmp_path / "runs" / "run-x"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("phase\n")
    with caplog.at_level("DEBUG"), pytest.raises(SystemExit):
        cli._fail(PruneCliError("cannot use state.pt: No space left on device"), run_dir, HYDRA, OmegaConf.create({}), in_sweep=False)
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


def test_a_write_that_fails_for_want_of_space_names_the_file_it_was_writing(tmp_path):
    """On a real full disk torch.save fails with its own RuntimeError ("unexpected pos"), raised while
    handling the OSError of its write, and closing the file raises OSError(28) again: none of them names
    a file, so the run called it a bug in prune-cli (exit 1, a traceback). The write now ends in an
    OSError naming the file it was writing, which the run reports as its one line."""
    target = tmp_path / "state.pt"

    def torch_like(f):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 23680 vs 23568")  # noqa: B904

    with pytest.raises(OSError) as err:
        atomic_io._write(target, torch_like, durable=False)
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):  # an error with no OSError behind it stays what it is
        atomic_io._write(target, lambda f: (_ for _ in ()).throw(RuntimeError("bug")), durable=False)


def test_a_run_on_a_really_full_disk_is_one_line_exit_2(tmp_path):
    """End to end on a 48 KiB tmpfs (where this machine lets the tests mount one): the run's checkpoint
    does not fit; before, `internal error ... this is a bug in prune-cli`, exit 1, three tracebacks."""
    import subprocess

    from conftest import FAST, run_cli

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        proc = run_cli(FAST, disk / "results", check=False)
        [run] = [p for p in (disk / "results" / "runs").iterdir() if p.is_dir()]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"prune-run: error: cannot use {run}") and line.endswith(": No space left on device"), line
