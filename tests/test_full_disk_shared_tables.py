"""A full disk while a run appends its rows to the shared tables (docs/robustness.md, "a full disk"):
the append wrote with a plain `open(path, "a")`, so the write's `OSError(28)` named no file and the run
called itself a bug (exit 1, tracebacks), and the failed run's rows stayed in the shared tables, the last
one torn, with the journal left until the next append. Now the append rolls back at once (every table
truncated to its size before the append, the journal removed) and its error names the table."""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from prune_cli.run import shared_tables


def _run_dir(root: Path, name: str, classes: int = 2) -> Path:
    """A finished run directory with three tables, `classes` rows in per_class.csv."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    pd.DataFrame({"run_id": name, "phase": ["dense", "finetuned"], "metric": "accuracy", "value": [0.1 + 0.2, 1 / 3]}).to_csv(
        d / "metrics.csv", index=False
    )
    pd.DataFrame({"run_id": name, "class": range(classes), "recall": 0.123456789}).to_csv(d / "per_class.csv", index=False)
    pd.DataFrame({"run_id": [name], "count": [12]}).to_csv(d / "regions.csv", index=False)
    return d


class _HalfThenFull:
    """A table opened for appending on a disk that fills mid-write: half the text is written, then the
    write fails as a real full disk's does, with no file name."""

    def __init__(self, f):
        self.f = f

    def write(self, text):
        self.f.write(text[: len(text) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _full_at_second_append(monkeypatch, results: Path) -> list[Path]:
    """The second table appended to in `results` fills the disk mid-write; returns the tables opened."""
    opened: list[Path] = []
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "a" in mode and Path(file).parent == results and Path(file).suffix == ".csv":
            opened.append(Path(file))
            if len(opened) == 2:
                return _HalfThenFull(f)
        return f

    monkeypatch.setattr(shared_tables, "open", fake_open, raising=False)
    return opened


def _tables(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(results.iterdir()) if p.is_file() and p.name != shared_tables.LOCK_FILE}


def test_a_full_disk_mid_append_rolls_back_at_once_and_names_the_table(tmp_path, monkeypatch):
    results = tmp_path
    a, b = _run_dir(results, "run-a"), _run_dir(results, "run-b")
    shared_tables.append_run(results, a, "run-a")
    before = _tables(results)
    opened = _full_at_second_append(monkeypatch, results)
    with pytest.raises(OSError) as err:
        shared_tables.append_run(results, b, "run-b")
    assert len(opened) == 2, opened
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(opened[1]), repr(err.value)
    assert _tables(results) == before  # no torn row, no row of run-b, no journal
    assert not (results / shared_tables.JOURNAL_FILE).exists()
    assert not (b / shared_tables.MARKER_FILE).exists()
    monkeypatch.undo()  # space freed: the same append goes through, each row once
    shared_tables.append_run(results, b, "run-b")
    assert list(pd.read_csv(results / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2
    assert list(pd.read_csv(results / "per_class.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2


def test_a_fresh_table_the_failed_append_created_is_removed(tmp_path, monkeypatch):
    """The first run's append creates the tables: one that fails leaves none of them (as a rebuild would)."""
    results = tmp_path
    a = _run_dir(results, "run-a")
    _full_at_second_append(monkeypatch, results)
    with pytest.raises(OSError):
        shared_tables.append_run(results, a, "run-a")
    assert sorted(_tables(results)) == []


def test_an_append_on_a_really_full_disk_rolls_back_and_names_the_table(tmp_path):
    """On a small tmpfs (where this machine lets the tests mount one), filled to leave a few pages: the
    journal fits, the run's large per_class rows do not."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        results = disk / "results"
        results.mkdir()
        a, b = _run_dir(results, "run-a"), _run_dir(tmp_path, "run-b", classes=2000)  # b's files off the small disk
        shared_tables.append_run(results, a, "run-a")
        before = _tables(results)
        stat = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 3 * 4096))
        with pytest.raises(OSError) as err:
            shared_tables.append_run(results, b, "run-b")
        after = _tables(results)
        journal = (results / shared_tables.JOURNAL_FILE).exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(results / "per_class.csv"), repr(err.value)
    assert after == before and not journal


def test_a_run_whose_append_fills_the_disk_says_its_one_line_exit_2_and_resumes(finished_results, monkeypatch):
    """The run's outcome (in-process): before, `internal error in run ... (OSError); this is a bug in
    prune-cli`, exit 1, tracebacks, and the run's rows left in the shared tables with a torn last one."""
    from conftest import FAST, run_cli

    results = finished_results
    before = _tables(results)
    opened = _full_at_second_append(monkeypatch, results)
    proc = run_cli([*FAST, "seed=1"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [f"prune-run: error: cannot use {opened[1]}: No space left on device"], proc.stderr
    assert _tables(results) == before
    monkeypatch.undo()  # space freed: the same command resumes and appends the run's rows once
    run_cli([*FAST, "seed=1"], results)
    runs = pd.read_csv(results / "runs.csv")
    assert runs.groupby("run_id").size().nunique() == 1 and runs.run_id.nunique() == 2


def test_a_marker_the_full_disk_refuses_rolls_the_append_back(tmp_path, monkeypatch):
    """The rows fit but the run's marker (the commit point) does not: the rows go, as the next append's
    recovery would take them out; the error is the marker's own (its atomic write names it)."""
    results = tmp_path
    a, b = _run_dir(results, "run-a"), _run_dir(results, "run-b")
    shared_tables.append_run(results, a, "run-a")
    before = _tables(results)
    real = shared_tables.atomic_write_text

    def no_room_for_the_marker(path, text, durable=False):
        if Path(path).name == shared_tables.MARKER_FILE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, text, durable)

    monkeypatch.setattr(shared_tables, "atomic_write_text", no_room_for_the_marker)
    with pytest.raises(OSError) as err:
        shared_tables.append_run(results, b, "run-b")
    assert err.value.filename == str(b / shared_tables.MARKER_FILE)
    assert _tables(results) == before and not (b / shared_tables.MARKER_FILE).exists()


def test_a_torn_tail_the_full_disk_cannot_set_aside_leaves_the_table_and_names_the_side_file(tmp_path, monkeypatch):
    """A torn last line (an older prune-cli's full disk) is moved to a side file before the append; a
    side file the disk cannot take was left half-written and its unnamed `OSError(28)` made the run a bug."""
    import io

    results = tmp_path
    a, b = _run_dir(results, "run-a"), _run_dir(results, "run-b")
    shared_tables.append_run(results, a, "run-a")
    with open(results / "per_class.csv", "a") as f:
        f.write("run-x,0,0.12")  # torn
    before = _tables(results)
    real_open = io.open

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _HalfThenFull(f) if ".torn-" in str(file) and "w" in mode else f

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(OSError) as err:
        shared_tables.append_run(results, b, "run-b")
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC and ".torn-" in str(err.value.filename), repr(err.value)
    assert Path(err.value.filename).parent == results
    assert _tables(results) == before  # no side file, no temporary file, the table as it was


class _Full(_HalfThenFull):
    """A file on a disk that is full: its write fails as a real full disk's does, with no file name."""

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_rebuild_the_disk_stops_at_its_second_table_leaves_every_table_as_it_was(tmp_path, monkeypatch, capsys):
    """A rebuild wrote one table at a time: on a full disk (reproduced on a 2 MiB tmpfs) layers.csv was rewritten
    and regions.csv refused, so the tables were from two rebuilds, and a run whose rows only the rewritten one held
    then appended nothing (audit 2026-12-04). Now every table is written before any is renamed into place."""
    from prune_cli.core import atomic_io
    from prune_cli.run.results import main

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    (_run_dir(tmp_path, "run-b") / "COMPLETE").write_text("run-b")  # finished, not appended: the rebuild adds its rows
    before = _tables(tmp_path)
    opened: list[str] = []
    real_open = builtins.open

    def full_at_second_table(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).parent == tmp_path and ".csv." in Path(file).name:
            opened.append(Path(file).name)
            if len(opened) == 2:
                return _Full(f)
        return f

    monkeypatch.setattr(atomic_io, "open", full_at_second_table, raising=False)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(tmp_path / "regions.csv") in err and "No space left" in err, err
    assert _tables(tmp_path) == before  # per_class.csv still holds run-a's 2 rows only, not run-b's 2 as well
    monkeypatch.setattr(atomic_io, "open", real_open, raising=False)
    assert main([str(tmp_path)]) == 0  # space freed: the same command rebuilds every table
    assert [len(pd.read_csv(tmp_path / n)) for n in ("runs.csv", "per_class.csv", "regions.csv")] == [4, 4, 2]
