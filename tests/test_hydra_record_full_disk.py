"""Hydra's own record of a run (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) on a full disk
(docs/robustness.md, "a full disk"): Hydra wrote each file in place, so a disk that filled up left a
truncated `hydra.yaml` (0 or 4096 bytes) and an empty prune-run.log behind, and the write's
`OSError: [Errno 28]`, naming no file, came out as Hydra's traceback, exit 1. Now each file is written
atomically (the old one, or none, stays whole), and a single run stops with prune-run's one line naming
the file, exit 2, leaving no directory that holds only its scaffolding."""

from __future__ import annotations

import builtins
import errno
import io
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import prune_cli.cli  # noqa: F401 - installs prune-run's changes to Hydra (hydra_patches.install)
from conftest import FAST, run_cli


def _disk_full_for(monkeypatch, name: str) -> None:
    """Writes to files named `name` (or a temporary file of one: `.name.<pid>.tmp`) fail as a real full
    disk makes them fail: part of the data lands, then OSError(ENOSPC) naming no file."""
    real_open = builtins.open

    class FullFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            self._f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()
            return False

        def __getattr__(self, attr):
            return getattr(self._f, attr)

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        base = Path(str(file)).name
        if ("w" in str(mode)) and (base == name or base.startswith(f".{name}.")):
            return FullFile(f)
        return f

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)  # OmegaConf.save's


def test_hydra_s_record_is_written_atomically_and_a_full_disk_names_the_file(tmp_path, monkeypatch):
    from hydra.core import utils as hydra_utils

    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    (hydra_dir / "hydra.yaml").write_text("earlier: record\n")
    _disk_full_for(monkeypatch, "hydra.yaml")
    with pytest.raises(OSError) as err:
        hydra_utils._save_config(OmegaConf.create({"a": 1}), "hydra.yaml", hydra_dir)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(hydra_dir / "hydra.yaml")
    assert sorted(p.name for p in hydra_dir.iterdir()) == ["hydra.yaml"]  # no temporary file left
    assert (hydra_dir / "hydra.yaml").read_text() == "earlier: record\n"  # not truncated


def test_hydra_s_record_written_as_hydra_writes_it(tmp_path):
    from hydra.core import utils as hydra_utils

    cfg = OmegaConf.create({"a": 1, "b": ["x", "é"]})
    hydra_utils._save_config(cfg, "config.yaml", tmp_path / ".hydra")
    assert (tmp_path / ".hydra" / "config.yaml").read_bytes() == OmegaConf.to_yaml(cfg).encode("utf-8")
    assert getattr(hydra_utils._save_config, "writes_atomically", False)  # the wrapper still applies


def test_a_single_run_whose_hydra_record_does_not_fit_is_one_line_exit_2(tmp_path, monkeypatch):
    """Before: Hydra's traceback ending in `OSError: [Errno 28] No space left on device`, exit 1, and
    the run directory with a truncated .hydra/hydra.yaml and an empty prune-run.log."""
    _disk_full_for(monkeypatch, "hydra.yaml")
    results = tmp_path / "results"
    proc = run_cli([*FAST, "threads=1"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"prune-run: error: cannot use {results / 'runs'}"), lines
    assert lines[0].endswith("/.hydra/hydra.yaml: No space left on device"), lines
    # only the run's scaffolding was there: removed, with the folders made for it
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())
    monkeypatch.undo()  # space freed: the same command runs
    assert run_cli([*FAST, "threads=1"], results).returncode == 0


def test_a_single_run_on_a_really_full_disk_before_its_hydra_record_is_one_line_exit_2(tmp_path):
    """End to end on a 8 KiB tmpfs (where this machine lets the tests mount one): Hydra's record does not
    fit. Before: Hydra's traceback, exit 1, a truncated .hydra/hydra.yaml and an empty prune-run.log."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        proc = run_cli([*FAST, "threads=1"], disk / "results", check=False)
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"prune-run: error: cannot use {disk / 'results'}") and line.endswith(": No space left on device"), line
    assert not [p for p in left if p.endswith(".tmp")], left
    assert not [p for p in left if "runs/" in p], left  # the run's scaffolding removed


@pytest.mark.parametrize("name", ["multirun.yaml", "hydra.yaml"])
def test_a_sweep_whose_start_does_not_fit_is_one_line_exit_2_and_keeps_nothing(tmp_path, monkeypatch, name):
    """The sweep's multirun.yaml, or its first job's .hydra record, on a full disk. Before: Hydra's
    traceback and a truncated multirun.yaml (exit 1); or "could not start the sweep; no job ran and nothing
    was kept: OSError: [Errno 28] No space left on device" (exit 1) naming no file, with the job's run
    directory left behind (a truncated .hydra/hydra.yaml, an empty prune-run.log)."""
    _disk_full_for(monkeypatch, name)
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "threads=1", "seed=0,1"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("prune-run")]
    assert lines == [lines[0]] and lines[0].startswith(f"prune-run: error: cannot use {results / 'runs'}"), proc.stderr
    assert lines[0].endswith(f"{name}: No space left on device"), lines
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [], left  # no run directory, no multirun.yaml, no sweep record
    monkeypatch.undo()  # space freed: the same command runs
    assert run_cli(["-m", *FAST, "threads=1", "seed=0,1"], results).returncode == 0


def _no_room_for_a_copy(monkeypatch, record, before: bytes) -> None:
    """A sweep that wrote `record` over an earlier one (`before`), on a disk with no room for an atomic copy."""
    from prune_cli import sweep_lifecycle

    def full(path, data, durable=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sweep_lifecycle, "atomic_write_bytes", full)
    monkeypatch.setattr(sweep_lifecycle, "_MULTIRUN_YAML", [(record, before)])


def test_a_sweep_start_undone_on_a_full_disk_puts_the_earlier_multirun_yaml_back(tmp_path, monkeypatch):
    """The sweep wrote its (longer) multirun.yaml over an earlier sweep's, then could not go on (a job's
    .hydra record did not fit): the earlier one is put back, though the disk has no room for a temporary
    copy of it. Before: the atomic write's `OSError: [Errno 28]` escaped as a traceback (exit 1) and the
    new multirun.yaml stayed."""
    from prune_cli import sweep_lifecycle

    record = tmp_path / "multirun.yaml"
    record.write_bytes(b"new sweep: " + b"y" * 3000)
    before = b"earlier sweep: " + b"x" * 1000

    _no_room_for_a_copy(monkeypatch, record, before)
    sweep_lifecycle._undo_sweep_start()
    assert record.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multirun.yaml"]


def test_a_launcher_s_own_missing_file_is_still_the_launcher_s_failure(tmp_path, monkeypatch, capsys):
    """Only a file of the sweep (its folder, a job's run directory) is reported as the disk's refusal: a
    launcher's own OSError naming a file outside them (a missing `sbatch`) keeps its line and exit 1."""
    from prune_cli import sweep_lifecycle
    from prune_cli.run import sweep_record

    monkeypatch.delenv(sweep_record.SWEEP_RECORD_ENV, raising=False)
    monkeypatch.setattr(sweep_lifecycle, "_MULTIRUN_YAML", [(tmp_path / "runs" / "multirun.yaml", None)])
    monkeypatch.setattr(sweep_lifecycle, "_LAUNCHER", {"name": "hydra/launcher=slurm"})
    with pytest.raises(SystemExit) as stop:
        sweep_lifecycle._report_launcher_failure(FileNotFoundError(errno.ENOENT, "No such file or directory", "sbatch"))
    said = capsys.readouterr().err
    assert stop.value.code == 1 and "hydra/launcher=slurm could not start the sweep" in said and "'sbatch'" in said, said


def test_an_earlier_multirun_yaml_that_cannot_be_put_back_is_a_warning_not_a_traceback(tmp_path, monkeypatch, caplog):
    """Where the earlier record is longer than the one there (or the file system writes in place into new
    space), neither the atomic write nor the overwrite fits: the OSError escaped the sweep's one line as a
    traceback (review finding). Now a warning names the record, and the sweep's own line still follows."""
    import logging

    from prune_cli import sweep_lifecycle

    record = tmp_path / "multirun.yaml"
    record.write_bytes(b"new: " + b"y" * 10)
    before = b"earlier sweep: " + b"x" * 1000

    _no_room_for_a_copy(monkeypatch, record, before)
    with caplog.at_level(logging.WARNING):
        sweep_lifecycle._undo_sweep_start()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(record) in w and "No space left on device" in w for w in warned), warned
