"""The shared tables' transaction (prune_cli/run/shared_tables.py), in-process and with real kills:
every row exactly once whatever instant a writer dies at, tables that grow instead of failing on
new columns, torn tails repaired, symlinks refused."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pandas as pd
import pytest

from prune_cli.run import shared_tables
from prune_cli.core import crashpoints


def _run_dir(root: Path, name: str, extra_column: bool = False) -> Path:
    """A finished run directory with three tables (two core, one metric table)."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    metrics = pd.DataFrame({"run_id": name, "phase": ["dense", "finetuned"], "metric": "accuracy", "value": [0.1 + 0.2, 1 / 3]})
    if extra_column:
        metrics["new_metric_key"] = ["x", "y"]
    metrics.to_csv(d / "metrics.csv", index=False)
    pd.DataFrame({"run_id": name, "class": [0, 1], "recall": [0.7, 0.6]}).to_csv(d / "per_class.csv", index=False)
    pd.DataFrame({"run_id": [name], "count": [12]}).to_csv(d / "regions.csv", index=False)
    pd.DataFrame({"phase": ["dense"], "epoch": [1]}).to_csv(d / "history.csv", index=False)
    return d


def _rows(results: Path) -> dict[str, list[str]]:
    return {
        name: list(pd.read_csv(results / name).run_id)
        for name in ("runs.csv", "per_class.csv", "regions.csv")
        if (results / name).exists()
    }


def _append_in_child(results: Path, run_dir: Path, point: str | None) -> int:
    """Append in a forked process that dies (SIGKILL) at `point`; returns its exit code."""

    def child():
        if point:
            os.environ[crashpoints.ENV] = point
        shared_tables.append_run(results, run_dir, run_dir.name)

    proc = mp.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    return proc.exitcode


@pytest.mark.parametrize("point", [p for p in crashpoints.POINTS if p.startswith("shared-")])
def test_a_kill_at_any_point_of_an_append_leaves_each_row_exactly_once(tmp_path, point):
    results = tmp_path
    a, b = _run_dir(results, "run-a"), _run_dir(results, "run-b")
    shared_tables.append_run(results, a, "run-a")
    before = {p.name: p.read_bytes() for p in results.glob("*.csv")}
    assert _append_in_child(results, b, point) == -9  # really killed there
    # the next writer (here: run-b started again) finishes or undoes the killed append
    assert shared_tables.append_run(results, b, "run-b") in ("appended to 3 shared table(s)", "already in the shared tables")
    assert _rows(results) == {
        t: ["run-a"] * 2 + ["run-b"] * 2 if t != "regions.csv" else ["run-a", "run-b"]
        for t in ("runs.csv", "per_class.csv", "regions.csv")
    }
    assert not (results / shared_tables.JOURNAL_FILE).exists()
    # the earlier run's bytes are untouched (an append never rewrites what is there)
    for name, data in before.items():
        assert (results / name).read_bytes().startswith(data)


def test_a_rolled_back_append_leaves_tables_byte_identical(tmp_path):
    a, b = _run_dir(tmp_path, "run-a"), _run_dir(tmp_path, "run-b")
    shared_tables.append_run(tmp_path, a, "run-a")
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")}
    assert _append_in_child(tmp_path, b, "shared-tables-all") == -9
    assert shared_tables.recover(tmp_path).startswith("rolled back")
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")} == before


def test_two_processes_appending_the_same_run_append_it_once(tmp_path):
    run = _run_dir(tmp_path, "run-a")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=shared_tables.append_run, args=(tmp_path, run, "run-a")) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert _rows(tmp_path)["runs.csv"] == ["run-a", "run-a"]


def test_new_columns_grow_the_table_and_keep_old_values_exactly(tmp_path):
    a, b = _run_dir(tmp_path, "run-a"), _run_dir(tmp_path, "run-b", extra_column=True)
    shared_tables.append_run(tmp_path, a, "run-a")
    old_lines = (tmp_path / "runs.csv").read_text().splitlines()
    shared_tables.append_run(tmp_path, b, "run-b")
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    assert lines[0] == old_lines[0] + ",new_metric_key"
    assert lines[1:3] == [line + "," for line in old_lines[1:]]  # old rows: same text, an empty new cell
    table = pd.read_csv(tmp_path / "runs.csv")
    assert list(table.new_metric_key.fillna("")) == ["", "", "x", "y"]
    assert table.value.iloc[0] == 0.1 + 0.2 and table.value.iloc[1] == 1 / 3  # floats round-trip exactly
    # and a rebuild gives the same table (the same union of columns), saying what it did
    for run in (a, b):
        (run / "COMPLETE").write_text(run.name)
    report = shared_tables.rebuild(tmp_path)
    assert "runs.csv: 4 rows from 2 runs, 5 columns (the union of 2 column sets)" in report
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "runs.csv"), table)


def test_a_torn_last_line_is_cut_off_into_a_side_file(tmp_path):
    a, b = _run_dir(tmp_path, "run-a"), _run_dir(tmp_path, "run-b")
    shared_tables.append_run(tmp_path, a, "run-a")
    with open(tmp_path / "runs.csv", "a") as f:
        f.write("run-x,dense,accu")  # a writer killed mid-line
    shared_tables.append_run(tmp_path, b, "run-b")
    assert list(pd.read_csv(tmp_path / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2
    [side] = tmp_path.glob("runs.csv.torn-*")
    assert side.read_text() == "run-x,dense,accu"


def test_a_symlinked_shared_table_is_refused_and_nothing_is_written(tmp_path):
    a = _run_dir(tmp_path, "run-a")
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("run_id\n")
    (tmp_path / "runs.csv").symlink_to(elsewhere)
    with pytest.raises(shared_tables.SharedTableError, match="is a symlink"):
        shared_tables.append_run(tmp_path, a, "run-a")
    assert elsewhere.read_text() == "run_id\n"
    assert not (tmp_path / "per_class.csv").exists() and not (a / shared_tables.MARKER_FILE).exists()


def test_rebuild_command_says_what_it_did(tmp_path, capsys):
    from prune_cli.run.results import main

    for name in ("run-a", "run-b"):
        (_run_dir(tmp_path, name) / "COMPLETE").write_text(name)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "runs.csv: 4 rows from 2 runs" in out and "regions.csv: 2 rows from 2 runs" in out
    assert all((tmp_path / "runs" / n / shared_tables.MARKER_FILE).exists() for n in ("run-a", "run-b"))
    assert main([str(tmp_path / "missing")]) == 2


def test_a_rebuild_keeps_the_rows_of_a_run_that_appended_and_has_not_written_complete(tmp_path):
    """run-b appended (marker written) and has not written COMPLETE yet: killed there, or still between
    the two. The rebuild dropped its rows and its marker; a live run then wrote COMPLETE and never
    appended again, so its rows were missing until the same command ran once more (the race audit).
    Its rows are committed and its per-run files final before its append: the rebuild keeps both, and
    the run, completed (or started again and completed), does not append them twice."""
    _run_dir(tmp_path, "run-a")
    (tmp_path / "runs" / "run-a" / "COMPLETE").write_text("run-a")
    b = _run_dir(tmp_path, "run-b")
    shared_tables.append_run(tmp_path, b, "run-b")
    assert (b / shared_tables.MARKER_FILE).exists()
    shared_tables.rebuild(tmp_path)
    assert sorted(pd.read_csv(tmp_path / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2
    assert (b / shared_tables.MARKER_FILE).exists()
    (b / "COMPLETE").write_text("run-b")  # it completes: the append finds its marker
    shared_tables.append_run(tmp_path, b, "run-b")
    assert sorted(pd.read_csv(tmp_path / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2


def test_a_rebuild_waiting_for_the_lock_sees_the_run_that_appended_meanwhile(tmp_path):
    """The rebuild listed the finished runs before it took the results lock: a run that appended while
    the rebuild waited for the lock was rewritten out of every table, and its marker said its rows were
    there (the race audit lost them 1 time in 7). The listing is made under the lock."""
    import threading
    import time

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    (a / "COMPLETE").write_text("run-a")
    lock = shared_tables.results_lock(tmp_path)
    lock.acquire()  # as a run that is appending
    rebuild = threading.Thread(target=shared_tables.rebuild, args=(tmp_path,))
    rebuild.start()
    time.sleep(0.5)  # the rebuild is waiting for the lock (before the fix: it had listed the runs already)
    b = _run_dir(tmp_path, "run-b")  # the appending run's rows and marker, written while it holds the lock
    for table, rows in shared_tables.run_tables(b).items():
        shared = tmp_path / shared_tables.shared_name(table)
        pd.concat([pd.read_csv(shared, dtype=str), rows]).to_csv(shared, index=False)
    (b / shared_tables.MARKER_FILE).write_text("run-b\n")
    (b / "COMPLETE").write_text("run-b")
    lock.release()
    rebuild.join()
    assert sorted(pd.read_csv(tmp_path / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2


def test_a_rebuild_removes_shared_tables_no_completed_run_writes(tmp_path):
    """Every run with regions.csv was deleted: the rebuilt folder has no regions.csv (it kept the
    deleted runs' rows before); with no completed run at all, no shared table is left. A CSV that is
    not a shared table (its first column is not run_id) is never touched."""
    a, b = _run_dir(tmp_path, "run-a"), _run_dir(tmp_path, "run-b")
    for d in (a, b):
        shared_tables.append_run(tmp_path, d, d.name)
        (d / "COMPLETE").write_text(d.name)
    (tmp_path / "notes.csv").write_text("what,why\nx,y\n")
    (b / "regions.csv").unlink()
    import shutil

    shutil.rmtree(a)
    shared_tables.rebuild(tmp_path)
    assert not (tmp_path / "regions.csv").exists() and set(pd.read_csv(tmp_path / "runs.csv").run_id) == {"run-b"}
    shutil.rmtree(b)
    shared_tables.rebuild(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["notes.csv"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_rebuild_command_refuses_a_run_directory_and_changes_nothing(tmp_path, capsys):
    """`python -m prune_cli.results <a run directory>` took the run's own per-run CSVs (they start with
    run_id) for shared tables no completed run writes and deleted them: the source of truth was lost."""
    from prune_cli.run.results import main

    a = _run_dir(tmp_path, "run-a")
    (a / "config.yaml").write_text("seed: 0\n")
    shared_tables.append_run(tmp_path, a, "run-a")
    (a / "COMPLETE").write_text("run-a\n")
    before = _files(tmp_path)
    assert main([str(a)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(a) in err and "run directory" in err and str(tmp_path) in err
    assert _files(tmp_path) == before


def test_the_rebuild_command_refuses_a_folder_without_runs(tmp_path, capsys):
    """A folder whose runs/ was moved away (or that holds shared CSVs copied on their own) is one that
    load() reads from its shared CSVs; the rebuild deleted them all (nothing to rebuild them from)."""
    from prune_cli.run.results import main

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("runs.csv", "per_class.csv", "regions.csv"):
        (alone / name).write_bytes((tmp_path / name).read_bytes())
    before = _files(alone)
    assert main([str(alone)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(alone) in err and "runs" in err
    assert _files(alone) == before


def test_a_rebuild_leaves_the_users_csvs_alone_even_when_they_start_with_run_id(tmp_path, capsys):
    """A table the user saved next to the results (first column run_id, the natural first column) was
    removed as a 'shared table no completed run writes'. Only a name prune-run writes is removed."""
    from prune_cli.run.results import main

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    (a / "COMPLETE").write_text("run-a\n")
    summary = pd.read_csv(tmp_path / "runs.csv")[["run_id", "value"]]
    summary.to_csv(tmp_path / "my_accuracy_summary.csv", index=False)
    mine = (tmp_path / "my_accuracy_summary.csv").read_bytes()
    (a / "regions.csv").unlink()  # no completed run writes regions.csv any more: that one goes
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "my_accuracy_summary.csv").read_bytes() == mine
    assert not (tmp_path / "regions.csv").exists() and "regions.csv: removed" in out
    assert "my_accuracy_summary.csv" not in out or "left alone" in out


def test_every_built_in_metric_table_is_a_name_a_rebuild_knows():
    """A rebuild removes only tables prune-run writes; a built-in metric's table missing from the list
    would be kept after its last run is deleted (rows of deleted runs read as results)."""
    import re

    from prune_cli.core.tables import BUILTIN_METRIC_TABLES

    root = Path(shared_tables.__file__).resolve().parent.parent / "metrics"
    named = {m for f in root.glob("*.py") for m in re.findall(r'"([a-z_]+\.csv)"', f.read_text())}
    assert named and named <= BUILTIN_METRIC_TABLES


def test_a_rebuild_takes_a_copied_run_directory_once_and_names_the_copy(tmp_path):
    """`cp -a runs/<id> "runs/<id> (copy)"`: the rebuild took both, every row of the run twice."""
    import shutil

    for name in ("run-a", "run-b"):
        (_run_dir(tmp_path, name) / "COMPLETE").write_text(name + "\n")
    shutil.copytree(tmp_path / "runs" / "run-a", tmp_path / "runs" / "run-a (copy)")
    report = shared_tables.rebuild(tmp_path)
    per_run = pd.concat(pd.read_csv(tmp_path / "runs" / n / "metrics.csv") for n in ("run-a", "run-b"))
    assert sorted(pd.read_csv(tmp_path / "runs.csv").run_id) == sorted(per_run.run_id)
    assert any("run-a (copy)" in line and "left out" in line for line in report)


@pytest.mark.parametrize("damage", ["bom", "no header line", "duplicate column"])
def test_a_shared_table_whose_header_is_not_prune_runs_is_refused_not_grown(tmp_path, damage):
    """A UTF-8 BOM before run_id (saved as "CSV UTF-8" by a spreadsheet) made the append "grow" the table
    by a second run_id column that held the new rows' ids; a lost header line made the first data row the
    header and the table grew to twice its width, the new rows in other columns than the old ones."""
    a, b = _run_dir(tmp_path, "run-a"), _run_dir(tmp_path, "run-b")
    shared_tables.append_run(tmp_path, a, "run-a")
    path = tmp_path / "runs.csv"
    data = path.read_bytes()
    if damage == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + data)
    elif damage == "no header line":
        path.write_bytes(data.split(b"\n", 1)[1])
    else:
        path.write_bytes(data.replace(b",value\n", b",metric\n", 1))
    before = _files(tmp_path)
    with pytest.raises(shared_tables.SharedTableError) as err:
        shared_tables.append_run(tmp_path, b, "run-b")
    assert str(path) in str(err.value) and f"python -m prune_cli.results {tmp_path}" in str(err.value)
    assert _files(tmp_path) == before  # nothing grown, nothing appended, no marker
    with pytest.raises(shared_tables.SharedTableError, match="python -m prune_cli.results"):
        shared_tables.check_before_run(tmp_path)  # prune-run's check before training says the same


def test_a_symlinked_csv_of_the_users_does_not_block_runs(tmp_path):
    """The pre-run check refused every symlinked *.csv in results_dir, the user's own notes too, with the
    wrong advice that it could be rebuilt: every new run stopped (exit 2). Only prune-run's tables count."""
    _run_dir(tmp_path, "run-a")
    (tmp_path / "external_notes.txt").write_text("a,b\n")
    (tmp_path / "notes_link.csv").symlink_to(tmp_path / "external_notes.txt")
    shared_tables.check_before_run(tmp_path)  # the user's symlink: no error
    (tmp_path / "layers.csv").symlink_to(tmp_path / "external_notes.txt")  # a table prune-run writes
    with pytest.raises(shared_tables.SharedTableError, match="layers.csv is a symlink"):
        shared_tables.check_before_run(tmp_path)


def test_the_rebuild_command_answers_an_empty_per_run_csv_in_one_line(tmp_path, capsys):
    """A 0-byte per-run CSV of a completed run ended the rebuild in a pandas traceback naming neither the
    file nor the run."""
    from prune_cli.run.results import main

    for name in ("run-a", "run-b"):
        (_run_dir(tmp_path, name) / "COMPLETE").write_text(name + "\n")
    empty = tmp_path / "runs" / "run-b" / "regions.csv"
    empty.write_bytes(b"")
    before = _files(tmp_path)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(empty) in err and "Traceback" not in err
    after = _files(tmp_path)
    assert after.pop(shared_tables.LOCK_FILE) == b""  # the empty lock file it took is all it left
    assert after == before


def test_the_rebuild_command_answers_a_read_only_results_dir_in_one_line(tmp_path, capsys, monkeypatch):
    """On a read-only results_dir taking the results lock raised OSError (EROFS): a traceback, exit 1.
    The tests run as root, for whom a chmod does not make a folder read-only, so the lock's open fails
    here as it does on a read-only mount."""
    import errno

    from prune_cli.run.results import main

    (_run_dir(tmp_path, "run-a") / "COMPLETE").write_text("run-a\n")
    lock = tmp_path / shared_tables.LOCK_FILE

    def read_only(results_dir):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(lock))

    monkeypatch.setattr(shared_tables, "results_lock", read_only)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(lock) in err and "Read-only file system" in err


def test_the_rebuild_names_the_runs_it_left_out_and_why(tmp_path):
    """The rebuild said only "runs.csv: 126 rows from 2 runs": a killed run left out, or a run taken
    without COMPLETE (it had appended), could not be told from its output."""
    (_run_dir(tmp_path, "run-a") / "COMPLETE").write_text("run-a\n")
    b = _run_dir(tmp_path, "run-b")
    shared_tables.append_run(tmp_path, b, "run-b")  # appended, COMPLETE not written yet: kept
    _run_dir(tmp_path, "run-c")  # killed before its append
    d = _run_dir(tmp_path, "run-d")
    (d / "failed.json").write_text('{"error": "ValueError", "message": "layer collapse"}')
    report = shared_tables.rebuild(tmp_path)
    assert sorted(set(pd.read_csv(tmp_path / "runs.csv").run_id)) == ["run-a", "run-b"]
    assert "runs/run-c: left out (unfinished: no COMPLETE and no SHARED_APPENDED marker)" in report
    assert "runs/run-d: left out (failed: failed.json)" in report
    assert any(line.startswith("runs/run-b: taken") for line in report)


def test_a_shared_table_an_older_prune_cli_wrote_is_grown_not_refused(tmp_path):
    """The context columns have grown over versions (dense_cache, allocation, structure came later). The
    header check refused a shared table without today's full set, also after the rebuild it advised
    (which writes the run directories' own older columns): every new run in that results_dir stopped.
    An older header is prune-run's: it starts with run_id and names each column once, and the append
    grows it as before (the old rows' new cells empty, every value in its own column)."""
    from prune_cli.core.tables import CONTEXT_COLUMNS

    older = [c for c in CONTEXT_COLUMNS if c != "dense_cache"]
    old_row = {c: f"old-{c}" for c in older} | {"run_id": "run-old", "phase": "dense", "metric": "accuracy", "value": "0.5"}
    pd.DataFrame([old_row]).to_csv(tmp_path / "runs.csv", index=False)
    d = tmp_path / "runs" / "run-new"
    d.mkdir(parents=True)
    new_row = {c: f"new-{c}" for c in CONTEXT_COLUMNS} | {"run_id": "run-new", "phase": "dense", "metric": "accuracy", "value": "0.25"}
    pd.DataFrame([new_row]).to_csv(d / "metrics.csv", index=False)
    shared_tables.check_before_run(tmp_path)  # no error before the run
    shared_tables.append_run(tmp_path, d, "run-new")
    table = pd.read_csv(tmp_path / "runs.csv", dtype=str, keep_default_na=False)
    assert list(table.run_id) == ["run-old", "run-new"]
    assert table.loc[0, "dense_cache"] == "" and table.loc[1, "dense_cache"] == "new-dense_cache"
    for c in [*older, "phase", "metric", "value"]:
        assert table.loc[0, c] == str(old_row[c]) and table.loc[1, c] == str(new_row[c]), c


def test_a_run_id_already_in_the_tables_from_another_run_directory_is_not_appended_again(tmp_path):
    """The same run id run in a second directory (`hydra.run.dir=...`, or `-m hydra.sweep.dir=...`)
    has no marker of its own, so its rows went into the shared tables a second time: 132 rows of one
    run in runs.csv, every mean over the tables weighting it twice (README: exactly once, however
    many processes run the same config)."""
    first = _run_dir(tmp_path, "run-a")
    elsewhere = _run_dir(tmp_path / "elsewhere", "run-a")
    assert shared_tables.append_run(tmp_path, first, "run-a") == "appended to 3 shared table(s)"
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")}
    said = shared_tables.append_run(tmp_path, elsewhere, "run-a")
    assert said.startswith("already in the shared tables"), said
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")} == before
    assert shared_tables.appended_here(elsewhere / shared_tables.MARKER_FILE, tmp_path)  # not checked again
    other = _run_dir(tmp_path, "run-ab")  # a run id that another one starts with is a run of its own
    assert shared_tables.append_run(tmp_path, other, "run-ab") == "appended to 3 shared table(s)"
    assert _rows(tmp_path)["runs.csv"] == ["run-a", "run-a", "run-ab", "run-ab"]


@pytest.mark.parametrize("gone", ["one run's", "every run's"])
def test_the_rebuild_refuses_a_completed_run_without_metrics_csv_and_changes_nothing(tmp_path, capsys, gone):
    """A completed run whose metrics.csv was removed was taken without it: the rebuild printed
    "runs.csv: 2 rows from 1 runs" (the other run's rows, whose last copy runs.csv held, gone), and with
    every run's metrics.csv removed "runs.csv: removed (no completed run writes it)", exit 0. Every
    completed run writes metrics.csv (its runs.csv rows), so one without it is refused as an empty one is."""
    from prune_cli.run.results import main

    for name in ("run-a", "run-b"):
        shared_tables.append_run(tmp_path, _run_dir(tmp_path, name), name)
        (tmp_path / "runs" / name / "COMPLETE").write_text(name + "\n")
    names = ["run-b"] if gone == "one run's" else ["run-a", "run-b"]
    for name in names:
        (tmp_path / "runs" / name / "metrics.csv").unlink()
    before = _files(tmp_path)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    missing = tmp_path / "runs" / names[0] / "metrics.csv"
    assert len(err.splitlines()) == 1 and str(missing) in err and "Traceback" not in err, err
    assert "runs.csv" in err and "nothing was written" in err, err  # which shared table it feeds, and that nothing changed
    assert _files(tmp_path) == before


def test_an_append_refuses_a_run_directory_without_metrics_csv(tmp_path):
    """append_run globbed whatever CSVs a run directory held: one without metrics.csv (a copy that lost it)
    was appended without its runs.csv rows and its marker said the rows were in. Refused, nothing written."""
    _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, tmp_path / "runs" / "run-a", "run-a")
    b = _run_dir(tmp_path, "run-b")
    (b / "metrics.csv").unlink()
    before = _files(tmp_path)
    with pytest.raises(shared_tables.SharedTableError) as err:
        shared_tables.append_run(tmp_path, b, "run-b")
    assert str(b / "metrics.csv") in str(err.value) and "nothing was written" in str(err.value)
    assert _files(tmp_path) == before and not (b / shared_tables.MARKER_FILE).exists()


def test_a_grown_table_still_ends_with_provenance_and_a_rebuild_gives_the_same_order(tmp_path):
    """data_pruning.csv of a sweep over rules: each rule adds its own columns (quota, mean_el2n, ...),
    and the grown shared table had them after `timestamp`, in the order the rules happened to run
    (audit); README "CSV columns": every row of every table ends with provenance."""
    from prune_cli.core.tables import PROVENANCE_COLUMNS

    def run_dir(name: str, own: dict) -> Path:
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        row = {"run_id": name, "phase": "finetuned", "metric": "accuracy", "value": 0.5, **own}
        row |= {c: f"{c}-{name}" for c in PROVENANCE_COLUMNS}
        pd.DataFrame([row]).to_csv(d / "metrics.csv", index=False)
        (d / "COMPLETE").write_text(name)
        return d

    # arriving as c (mean_el2n, then quota), b (quota), a (neither): the rebuild takes them in name order
    runs = [run_dir("run-c", {"mean_el2n": 0.25, "quota": 4}), run_dir("run-b", {"quota": 3}), run_dir("run-a", {})]
    for d in runs:
        shared_tables.append_run(tmp_path, d, d.name)
    grown = pd.read_csv(tmp_path / "runs.csv", dtype=str)
    assert list(grown.columns) == ["run_id", "phase", "metric", "value", "mean_el2n", "quota", *PROVENANCE_COLUMNS]
    assert grown["quota"].fillna("").tolist() == ["4", "3", ""] and grown["mean_el2n"].fillna("").tolist() == ["0.25", "", ""]
    assert grown["timestamp"].tolist() == [f"timestamp-{d.name}" for d in runs]  # every value in its own column
    shared_tables.rebuild(tmp_path)
    rebuilt = pd.read_csv(tmp_path / "runs.csv", dtype=str)
    assert list(rebuilt.columns) == list(grown.columns)  # the same header whatever order the runs came in
    pd.testing.assert_frame_equal(rebuilt.set_index("run_id").loc[grown["run_id"]].reset_index(), grown)


def test_two_runs_with_columns_of_their_own_give_one_header_in_either_order(tmp_path):
    """Run b brings `y`, run a `x`: appended b then a the header read `value,y,x,git_sha`, rebuilt
    `value,x,y,git_sha` (review). Columns no header orders go alphabetically, so both read x, y."""
    from prune_cli.core.tables import PROVENANCE_COLUMNS, union_columns

    base = ["run_id", "phase", "value"]
    with_y, with_x = [*base, "y", *PROVENANCE_COLUMNS], [*base, "x", *PROVENANCE_COLUMNS]
    assert union_columns([with_y, with_x]) == union_columns([with_x, with_y]) == [*base, "x", "y", *PROVENANCE_COLUMNS]
    # an older header without a context column: the column goes where the newer header has it
    older, newer = ["run_id", "seed", "value"], ["run_id", "seed", "dense_cache", "value"]
    assert union_columns([older, newer]) == union_columns([newer, older]) == newer
    # an older grown table with provenance in the middle: provenance moves to the end, values keep their names
    assert union_columns([["run_id", "timestamp", "quota"], ["run_id", "mean_el2n", "timestamp"]]) == [
        "run_id",
        "mean_el2n",
        "quota",
        "timestamp",
    ]


def _dead_pid() -> int:
    """The pid of a process that has exited (a child started and waited for)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_whose_rows_a_stopped_rebuild_put_in_one_table_only_gets_them_in_every_table(tmp_path):
    """A rebuild stopped after its first table (a kill, a Ctrl-C, a full disk) left run-b's rows in per_class.csv
    only; run-b's append then saw them there, wrote its marker and appended nothing: runs.csv never got its rows
    (audit 2026-12-04). Now each table gets the run's rows it lacks, and none gets them twice."""
    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    b = _run_dir(tmp_path, "run-b")  # finished with shared_results=false: COMPLETE, no marker
    (b / "COMPLETE").write_text("run-b")
    # the state the stopped rebuild left: per_class.csv rebuilt (run-a's 2 rows, run-b's 2), the others not
    with open(tmp_path / "per_class.csv", "a") as f:
        f.write("run-b,0,0.7\nrun-b,1,0.6\n")
    said = shared_tables.append_run(tmp_path, b, "run-b")
    assert said == "appended to 2 shared table(s)", said
    rows = _rows(tmp_path)
    assert rows["runs.csv"] == ["run-a", "run-a", "run-b", "run-b"]  # 2 metrics rows each
    assert rows["per_class.csv"] == ["run-a", "run-a", "run-b", "run-b"]  # not 6: the rows present are not appended again
    assert rows["regions.csv"] == ["run-a", "run-b"]
    assert shared_tables.appended_here(b / shared_tables.MARKER_FILE, tmp_path)
    assert shared_tables.append_run(tmp_path, b, "run-b") == "already in the shared tables"


def test_a_rebuild_stopped_between_two_renames_is_made_whole_by_the_next_append(tmp_path, monkeypatch):
    """The one partial state the rebuild can still leave: a kill between two of its renames (stood in for by an
    exception at the second rename). The run not appended before gets its rows in every table at its append."""
    import prune_cli.core.atomic_io as atomic_io

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    b = _run_dir(tmp_path, "run-b")
    (b / "COMPLETE").write_text("run-b")
    renamed = []
    real_replace = os.replace

    def replace_then_die(src, dst):
        if Path(dst).suffix == ".csv" and renamed:
            raise SystemExit("killed between two renames")
        real_replace(src, dst)
        renamed.append(Path(dst).name)

    monkeypatch.setattr(atomic_io.os, "replace", replace_then_die)
    with pytest.raises(SystemExit):
        shared_tables.rebuild(tmp_path)
    monkeypatch.setattr(atomic_io.os, "replace", real_replace)
    assert renamed == ["per_class.csv"]  # sorted: per_class.csv, regions.csv, runs.csv
    for leftover in tmp_path.glob(".*.tmp"):  # the kill leaves the unrenamed tables' temporary files: a dead writer's
        leftover.rename(tmp_path / f".{leftover.name[1:].split('.')[0]}.csv.{_dead_pid()}.tmp")
    shared_tables.append_run(tmp_path, b, "run-b")
    rows = _rows(tmp_path)
    assert rows == {
        "runs.csv": ["run-a", "run-a", "run-b", "run-b"],
        "per_class.csv": ["run-a", "run-a", "run-b", "run-b"],
        "regions.csv": ["run-a", "run-b"],
    }
    assert not list(tmp_path.glob(".*.tmp"))  # removed under the lock: their writer is dead


def test_leftover_temporary_files_in_results_dir_are_removed_only_when_their_writer_is_dead(tmp_path):
    """A writer killed between its write and its rename (`_grow`, a rebuild, the journal) left `.runs.csv.<pid>.tmp`, a
    whole table's copy, for good: only run directories were cleaned. Now an append and a rebuild remove, under the
    results lock, those of a process that is not running; a live process's and the user's own files stay."""
    from prune_cli.run.results import main

    dead = _dead_pid()
    a = _run_dir(tmp_path, "run-a")
    (a / "COMPLETE").write_text("run-a")
    gone = [tmp_path / f".runs.csv.{dead}.tmp", tmp_path / f".{shared_tables.JOURNAL_FILE}.{dead}.tmp"]
    kept = [tmp_path / f".runs.csv.{os.getppid()}.tmp", tmp_path / f".notes.txt.{dead}.tmp"]  # a live writer's; the user's
    for path in gone + kept:
        path.write_text("x")
    shared_tables.append_run(tmp_path, a, "run-a")
    assert [p.exists() for p in gone + kept] == [False, False, True, True]
    (tmp_path / f".layers.csv.{dead}.tmp").write_text("x")
    assert main([str(tmp_path)]) == 0
    assert not (tmp_path / f".layers.csv.{dead}.tmp").exists() and all(p.exists() for p in kept)


def test_the_rebuild_command_answers_a_ctrl_c_in_one_line_exit_130_and_changes_nothing(tmp_path, capsys, monkeypatch):
    """A Ctrl-C during `python -m prune_cli.results` printed a KeyboardInterrupt traceback, and one while it wrote
    its second table left the first rebuilt and the others not. Now one line, exit 130, every table as it was."""
    import prune_cli.core.atomic_io as atomic_io
    from prune_cli.run.results import main

    a = _run_dir(tmp_path, "run-a")
    shared_tables.append_run(tmp_path, a, "run-a")
    b = _run_dir(tmp_path, "run-b")
    (b / "COMPLETE").write_text("run-b")
    before = _files(tmp_path)
    opened = []
    real_open = open

    def ctrl_c_at_second_table(file, mode="r", *args, **kwargs):
        if "w" in mode and ".csv." in Path(file).name:
            opened.append(file)
            if len(opened) == 2:
                raise KeyboardInterrupt
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic_io, "open", ctrl_c_at_second_table, raising=False)
    try:
        rc = main([str(tmp_path)])
    except KeyboardInterrupt:
        rc = "KeyboardInterrupt traceback"
    assert rc == 130
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "stopped by SIGINT" in err and "Traceback" not in err
    assert _files(tmp_path) == before  # per_class.csv too: 2 rows, not run-b's as well
    assert not list(tmp_path.glob(".*.tmp"))
