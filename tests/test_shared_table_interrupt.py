"""A second Ctrl-C (KeyboardInterrupt) in the middle of a run's append to the shared tables (exact-resume
audit of 2026-12-03): the append was rolled back at once only for an OSError (a full disk), so the
interrupted run's first table kept its rows and the journal stayed until the next writer undid them; a
plain `pd.read_csv` of the table in between read rows of a run that had not finished. Now every error
of the append before its marker undoes it at once (docs/robustness.md, "stopped with Ctrl-C")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prune_cli.run import shared_tables


def _run_dir(root: Path, name: str) -> Path:
    d = root / "runs" / name
    d.mkdir(parents=True)
    pd.DataFrame({"run_id": name, "phase": ["dense", "finetuned"], "metric": "accuracy", "value": [0.25, 0.5]}).to_csv(
        d / "metrics.csv", index=False
    )
    pd.DataFrame({"run_id": name, "class": range(3), "recall": 0.125}).to_csv(d / "per_class.csv", index=False)
    return d


def _interrupt_at(monkeypatch, point: str) -> None:
    real = shared_tables.crashpoints.reached

    def reached(name: str) -> None:
        if name == point:
            raise KeyboardInterrupt  # what a second SIGINT raises at any instant
        real(name)

    monkeypatch.setattr(shared_tables.crashpoints, "reached", reached)


def _files(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(results.iterdir()) if p.is_file() and p.name != shared_tables.LOCK_FILE}


@pytest.mark.parametrize("point", ["shared-table-1", "shared-tables-all"])
def test_a_second_ctrl_c_mid_append_leaves_the_tables_as_before(tmp_path, monkeypatch, point):
    results = tmp_path
    a, b = _run_dir(results, "run-a"), _run_dir(results, "run-b")
    shared_tables.append_run(results, a, "run-a")
    before = _files(results)
    _interrupt_at(monkeypatch, point)
    with pytest.raises(KeyboardInterrupt):
        shared_tables.append_run(results, b, "run-b")
    assert _files(results) == before  # no row of run-b, no journal left for the next writer
    assert not (b / shared_tables.MARKER_FILE).exists()
    monkeypatch.undo()  # the run is started again: its rows go in once
    shared_tables.append_run(results, b, "run-b")
    assert list(pd.read_csv(results / "per_class.csv").run_id) == ["run-a"] * 3 + ["run-b"] * 3


def test_a_ctrl_c_after_the_marker_keeps_the_committed_rows(tmp_path, monkeypatch):
    """After its marker the append has committed: an interrupt there leaves the journal, which the next
    writer finds committed and keeps (the rows are not removed)."""
    results = tmp_path
    a = _run_dir(results, "run-a")
    _interrupt_at(monkeypatch, "shared-marker")
    with pytest.raises(KeyboardInterrupt):
        shared_tables.append_run(results, a, "run-a")
    monkeypatch.undo()
    assert shared_tables.recover(results).startswith("an interrupted append of run run-a had committed")
    assert list(pd.read_csv(results / "per_class.csv").run_id) == ["run-a"] * 3
