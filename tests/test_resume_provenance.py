"""A run resumed by another version of the code, of torch, or on another device says so
(README "Resume", docs/robustness.md): a requeued cluster job after a `git pull` must not mix two
versions' numbers silently. The rows keep the provenance of the process that started the run;
provenance.json lists every process that resumed it, and a warning names each field that differs."""

from __future__ import annotations

import json
import logging

import pandas as pd

from conftest import FAST
from tests.helpers import resume_after_crash

OVERRIDES = [*FAST, "dense_cache.enabled=false"]


def _resume(tmp_path, monkeypatch, caplog, changed: dict):
    """Crash after the first dense epoch, then resume in an environment whose provenance differs by
    `changed`; the run directory."""
    import prune_cli.run.results as results

    def after_crash(run_dir, results_dir):
        started = json.loads((run_dir / "provenance.json").read_text())
        real = results.provenance
        monkeypatch.setattr(results, "provenance", lambda device: {**real(device), **changed})
        after_crash.started = started

    with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
        run_dir = resume_after_crash(tmp_path, monkeypatch, OVERRIDES, ("dense", 1), after_crash)
    return run_dir, after_crash.started


def test_a_run_resumed_by_other_code_warns_and_records_both(tmp_path, monkeypatch, caplog):
    run_dir, started = _resume(tmp_path, monkeypatch, caplog, {"git_sha": "feedbeef" * 5, "torch_version": "9.9.9"})
    warning = caplog.text
    assert f"git_sha: {started['git_sha']} -> {'feedbeef' * 5}" in warning
    assert f"torch_version: {started['torch_version']} -> 9.9.9" in warning
    assert "prune_cli_version" not in warning  # only the fields that differ
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["git_sha"] == started["git_sha"] and record["torch_version"] == started["torch_version"]
    (resume,) = record["resumed"]
    assert resume["git_sha"] == "feedbeef" * 5 and resume["torch_version"] == "9.9.9"
    assert resume["at_step"] == "dense"
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert set(rows.git_sha) == {started["git_sha"]}  # the rows keep the starting process's provenance


def test_an_uninterrupted_run_has_no_resumes(shared_run):
    """The same environment resuming is checked in tests/test_schedules.py's real kill."""
    assert json.loads((shared_run.run_dir / "provenance.json").read_text())["resumed"] == []


def test_a_run_resumed_with_another_torch_thread_count_says_so(tmp_path, monkeypatch, caplog):
    """On a CPU the number of torch intra-op threads changes how sums are split, so the last digits of a
    resumed run's losses differed from an uninterrupted run's (resume-audit: train_loss
    1.733663909483956 vs 1.7336640451364773 after `threads=1` -> `threads=2`) without a word, although
    `threads` is left out of the run id as a key that only changes speed. The thread count is recorded
    in provenance.json and a resume under another one is warned about like another torch version."""
    import torch

    before = torch.get_num_threads()

    def more_threads(run_dir, results_dir):
        torch.set_num_threads(before + 1)

    try:
        with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
            run_dir = resume_after_crash(tmp_path, monkeypatch, OVERRIDES, ("dense", 1), more_threads)
    finally:
        torch.set_num_threads(before)
    assert f"torch_threads: {before} -> {before + 1}" in caplog.text
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["torch_threads"] == before and record["resumed"][0]["torch_threads"] == before + 1
