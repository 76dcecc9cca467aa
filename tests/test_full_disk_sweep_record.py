"""A full disk while a sweep's job appends its line to the sweep's record (prune_cli/run/sweep_record.py,
docs/robustness.md "a full disk"): the write's `OSError(28)` named no file and escaped the job (a
traceback, whatever the run's own outcome), and a short write left a torn line that the next job's
line was glued to, so every later read of the record (the sweep's summary) failed with a JSONDecodeError.
Now the job warns, naming the record, and goes on; a torn line is ended and skipped by the reader."""

from __future__ import annotations

import errno
import json
import logging
import os

from prune_cli.run import sweep_record


def _record(tmp_path, monkeypatch):
    path = tmp_path / "sweep.jsonl"
    path.write_text("")
    monkeypatch.setenv(sweep_record.SWEEP_RECORD_ENV, str(path))
    return path


def test_a_full_disk_refusing_the_line_is_a_warning_naming_the_record(tmp_path, monkeypatch, caplog):
    path = _record(tmp_path, monkeypatch)

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep_record.os, "write", no_space)
    with caplog.at_level(logging.WARNING, logger=sweep_record.__name__):
        sweep_record.record_outcome(tmp_path / "run-a", "started")  # raised OSError(28), naming nothing
    monkeypatch.undo()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and str(path) in said[0] and "No space left on device" in said[0], said
    assert path.read_text() == ""


def test_a_torn_line_of_a_short_write_is_ended_and_skipped(tmp_path, monkeypatch, caplog):
    path = _record(tmp_path, monkeypatch)
    real_write = os.write

    def half(fd, data):  # a full disk takes part of the line (os.write returns fewer bytes)
        return real_write(fd, data[: len(data) // 2] if len(data) > 1 else data)

    sweep_record.record_outcome(tmp_path / "run-a", "started")
    monkeypatch.setattr(sweep_record.os, "write", half)
    with caplog.at_level(logging.WARNING, logger=sweep_record.__name__):
        sweep_record.record_outcome(tmp_path / "run-a", "completed")
    monkeypatch.setattr(sweep_record.os, "write", real_write)
    sweep_record.record_outcome(tmp_path / "run-b", "started")  # another job's line, after the torn one
    assert any(str(path) in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert [(x["run_dir"], x["status"]) for x in sweep_record.outcomes(path)] == [
        (str(tmp_path / "run-a"), "started"),
        (str(tmp_path / "run-b"), "started"),
    ]


def test_the_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "sweep.jsonl"
    whole = json.dumps({"run_dir": "r1", "status": "failed", "reason": "x", "pid": 1})
    path.write_text(whole + "\n" + whole[:20])  # a job killed mid-write, or a full disk
    assert [x["run_dir"] for x in sweep_record.outcomes(path)] == ["r1"]
    assert sweep_record.running(path) == {}


def test_a_torn_line_whose_newline_did_not_fit_keeps_the_next_job_s_line(tmp_path, monkeypatch):
    """On a real full disk the newline that ends a short write does not fit either (it needs the next page),
    so the next job's whole line is glued to the torn one: it was skipped with it (a `failed` line lost, a
    completed run summarised as killed). The reader now keeps the whole line at the end of a torn one."""
    path = _record(tmp_path, monkeypatch)
    real_write = os.write
    calls = []

    def short_then_full(fd, data):
        calls.append(data)
        if len(calls) == 1:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep_record.os, "write", short_then_full)
    sweep_record.record_outcome(tmp_path / "run-a", "failed", RuntimeError("boom"))
    monkeypatch.setattr(sweep_record.os, "write", real_write)
    sweep_record.record_outcome(tmp_path / "run-b", "failed", RuntimeError("bust"))
    assert [(x["run_dir"], x["status"]) for x in sweep_record.outcomes(path)] == [(str(tmp_path / "run-b"), "failed")]


def test_a_failed_line_the_disk_refused_still_stops_a_fail_fast_sweep(tmp_path, monkeypatch):
    """fail_fast reads the failure from the sweep's record: a `failed` line the full disk refused let the
    later jobs run (documented as not handled until 2026-12-03). The failing job's process remembers it, and
    an empty mark beside the record (a file needs no data block) tells the other workers."""
    path = _record(tmp_path, monkeypatch)
    monkeypatch.setattr(sweep_record, "_FAILED_HERE", {}, raising=False)
    real_write = os.write

    def no_space(fd, data):
        if b'"failed"' in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(sweep_record.os, "write", no_space)
    sweep_record.record_outcome(tmp_path / "run-a", "started")
    sweep_record.record_outcome(tmp_path / "run-a", "failed", ValueError("diverged"))
    monkeypatch.setattr(sweep_record.os, "write", real_write)
    assert [json.loads(x)["status"] for x in path.read_text().splitlines()] == ["started"]  # the line is not there
    mark = tmp_path / (path.name + ".failed")
    assert mark.read_text() == str(tmp_path / "run-a")
    mark.unlink()  # this process remembers the failure without the mark
    assert sweep_record.failed_in_this_sweep() == str(tmp_path / "run-a")
    mark.write_text(str(tmp_path / "run-a"))
    monkeypatch.setattr(sweep_record, "_FAILED_HERE", {}, raising=False)  # another worker process: the mark alone
    assert sweep_record.failed_in_this_sweep() == str(tmp_path / "run-a")
    sweep_record._FAILED_HERE[str(path)] = str(tmp_path / "run-a")
    sweep_record.remove(str(path))
    assert not tmp_path.exists()  # the record, its mark and then its folder removed
    assert str(path) not in sweep_record._FAILED_HERE  # a later sweep that gets the same record's name starts clean
