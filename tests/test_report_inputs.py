"""prune-report's input checks (docs/report.md "Bad input"): a folder that is not a results_dir (a
run directory, a runs/ folder, an empty folder, a file) or an unusable --out stops before any work,
with exit code 2 and one message naming the argument, the value and what is allowed; the folder
given and everything around it stay byte for byte as they were, and nothing is created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune_cli.report import build_report, main
from test_report import _write_run


def _results(root: Path) -> Path:
    """A results_dir with one completed run (hand-written CSVs, test_report.py)."""
    _write_run(root, "magnitude", "magnitude", 0.5, 0, 0.6)
    return root


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (and root itself) with its bytes; None for a folder."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in [root, *root.rglob("*")]}


def _refused(argv: list[str], capsys) -> str:
    """prune-report `argv` exits 2 with a one-line argparse error (no traceback); returns that line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("prune-report: error: "), err
    return last


def test_runs_folder_is_refused_and_names_its_results_dir(tmp_path, capsys):
    results = _results(tmp_path / "results")
    before = _snapshot(tmp_path)
    line = _refused([str(results / "runs"), "--no-plots"], capsys)
    assert str(results / "runs") in line and "runs/ folder" in line
    assert "runs/<run id>/" in line and "runs.csv" in line  # what a results_dir holds
    assert f"prune-report {results}" in line  # the folder to give instead
    assert _snapshot(tmp_path) == before


def test_run_directory_is_refused_and_names_its_results_dir(tmp_path, capsys):
    results = _results(tmp_path / "results")
    run_dir = next((results / "runs").iterdir())
    before = _snapshot(tmp_path)
    line = _refused([str(run_dir), "--no-plots"], capsys)
    assert str(run_dir) in line and "run directory" in line and "runs/<run id>/" in line
    assert f"prune-report {results}" in line
    assert _snapshot(tmp_path) == before  # no report/ inside the completed run


def test_failed_run_directory_is_refused_too(tmp_path, capsys):
    run_dir = tmp_path / "results" / "runs" / "fx-broken"
    run_dir.mkdir(parents=True)
    (run_dir / "failed.json").write_text(json.dumps({"status": "failed", "error_type": "TrainingDiverged"}))
    before = _snapshot(tmp_path)
    line = _refused([str(run_dir)], capsys)
    assert "run directory" in line and f"prune-report {tmp_path / 'results'}" in line
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("layout", ["empty", "empty runs/", "unrelated files"])
def test_folder_without_runs_is_refused(tmp_path, capsys, layout):
    folder = tmp_path / "folder"
    folder.mkdir()
    if layout == "empty runs/":
        (folder / "runs").mkdir()
    if layout == "unrelated files":
        (folder / "notes.csv").write_text("a,b\n1,2\n")
    before = _snapshot(tmp_path)
    line = _refused([str(folder), "--no-plots"], capsys)
    assert str(folder) in line and "holds no runs" in line
    assert "runs/<run id>/" in line and "runs.csv" in line
    assert "prune-report " not in line.removeprefix("prune-report: error: ")  # no results_dir to suggest
    assert _snapshot(tmp_path) == before


def test_file_is_not_called_missing(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("run_id\nx\n")
    line = _refused([str(path)], capsys)
    assert str(path) in line and "is a file, not a results folder" in line and "does not exist" not in line
    assert "runs/<run id>/" in line
    assert sorted(tmp_path.iterdir()) == [path] and path.read_text() == "run_id\nx\n"


def test_missing_folder_says_what_is_expected(tmp_path, capsys):
    line = _refused([str(tmp_path / "nowhere")], capsys)
    assert "does not exist" in line and "runs/<run id>/" in line
    assert not (tmp_path / "nowhere").exists()


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    results = _results(tmp_path / "results")
    out = tmp_path / "out.txt"
    out.write_text("keep me\n")
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", str(out), "--no-plots"], capsys)
    assert f"--out {out}" in line and "is a file" in line and "writable" in line and "can be created" in line
    assert _snapshot(tmp_path) == before


def test_out_below_a_file_is_refused(tmp_path, capsys):
    results = _results(tmp_path / "results")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", str(blocker / "report"), "--no-plots"], capsys)
    assert f"--out {blocker / 'report'}" in line and f"{blocker} is a file" in line and "can be created" in line
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_out_that_cannot_be_created_is_refused(tmp_path, capsys):
    """/proc accepts no new folders, even from root (os.access says it is writable)."""
    results = _results(tmp_path / "results")
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", "/proc/x/y", "--no-plots"], capsys)
    assert "--out /proc/x/y cannot be created" in line and "writable" in line
    assert _snapshot(tmp_path) == before and not Path("/proc/x").exists()


def test_default_out_that_is_a_file_is_refused(tmp_path, capsys):
    results = _results(tmp_path / "results")
    (results / "report").write_text("not a folder\n")
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--no-plots"], capsys)
    assert f"--out {results / 'report'}" in line and "is a file" in line
    assert _snapshot(tmp_path) == before


def test_build_report_refuses_a_run_directory(tmp_path):
    """The library call gives the same answer (ValueError) and writes nothing either."""
    run_dir = next((_results(tmp_path / "results") / "runs").iterdir())
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="run directory"):
        build_report(run_dir, plots=False)
    with pytest.raises(ValueError, match="--out"):
        build_report(tmp_path / "results", run_dir / "metrics.csv", plots=False)
    assert _snapshot(tmp_path) == before


def test_folder_with_only_failed_runs_is_still_reported(tmp_path, capsys):
    """A results_dir whose runs all failed is a results_dir: the report lists them."""
    failed = tmp_path / "results" / "runs" / "fx-broken"
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"status": "failed", "error_type": "TrainingDiverged"}))
    main([str(tmp_path / "results"), "--no-plots"])
    assert "fx-broken" in capsys.readouterr().out
    assert (tmp_path / "results" / "report" / "standards.txt").exists()


def test_empty_out_is_refused_not_the_current_directory(tmp_path, capsys, monkeypatch):
    """`--out ""` wrote the report into the current directory (Path("") is "."), exit 0."""
    results = _results(tmp_path / "results")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", "", "--no-plots"], capsys)
    assert "--out" in line and "empty" in line
    assert _snapshot(tmp_path) == before and not any(cwd.iterdir())
    with pytest.raises(ValueError, match="--out.*empty"):
        build_report(results, "", plots=False)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["runs/myreport", "runs", "runs/nested/deeper", "relative"])
def test_out_inside_the_runs_folder_is_refused(tmp_path, capsys, monkeypatch, where):
    """--out RESULTS_DIR/runs/myreport succeeded, and every later prune-report listed `myreport` as an
    unfinished run of the folder. Refused, also given relative to the current directory."""
    results = _results(tmp_path / "results")
    out = results / where if where != "relative" else "runs/myreport"
    if where == "relative":
        monkeypatch.chdir(results)
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", str(out), "--no-plots"], capsys)
    assert f"--out {out}" in line and "runs/" in line and "unfinished run" in line
    assert _snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="unfinished run"):
        build_report(results, out, plots=False)
    assert _snapshot(tmp_path) == before


def test_out_inside_another_results_folders_runs_folder_is_refused(tmp_path, capsys):
    """--out OTHER/runs/report_of_a, OTHER another results folder: accepted, and every later report of
    OTHER listed the report as an unfinished run of its own. Refused like the folder's own runs/."""
    results = _results(tmp_path / "results")
    other = _results(tmp_path / "other")
    out = other / "runs" / "report_of_results"
    before = _snapshot(tmp_path)
    line = _refused([str(results), "--out", str(out), "--no-plots"], capsys)
    assert f"--out {out}" in line and str(other / "runs") in line and "unfinished run" in line, line
    assert _snapshot(tmp_path) == before
    plain = tmp_path / "elsewhere" / "runs" / "report"  # a folder named runs/ that is no results folder's
    for _ in range(2):  # the same command again: the report written there first makes it no run folder
        main([str(results), "--out", str(plain), "--no-plots"])
    assert (plain / "summary.md").exists()


def test_out_beside_the_runs_folder_is_allowed(tmp_path, capsys):
    """A folder named like runs/ elsewhere, or RESULTS_DIR/runs_report, is no run folder."""
    results = _results(tmp_path / "results")
    main([str(results), "--out", str(results / "runs_report"), "--no-plots"])
    assert (results / "runs_report" / "summary.md").exists()


def test_an_error_inside_the_report_keeps_its_traceback_not_a_usage_line(tmp_path, monkeypatch):
    """Any ValueError raised while building the report was printed as "prune-report: error: ..." with exit
    2, as if an argument were wrong: a bug in a figure (a `$` in a legend) looked like bad input."""
    from prune_cli.report import build

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(build, "build_report", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main([str(_results(tmp_path / "results")), "--no-plots"])


@pytest.mark.parametrize("arg", ["--baseline=nosuchmethod", "--split=train", "--expect=BINARY"])
def test_bad_arguments_found_while_building_are_still_one_line(tmp_path, capsys, arg):
    """The report's own checks of its arguments (ReportInputError) stay usage errors, exit 2."""
    results = _results(tmp_path / "results")
    if arg == "--expect=BINARY":
        (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
        arg = f"--expect={tmp_path / 'binary.yaml'}"
    line = _refused([str(results), "--no-plots", arg], capsys)
    assert arg.split("=")[0] in line, line
    assert "binary.yaml" not in line or "is not a text file" in line, line


@pytest.mark.parametrize("column", ["schedule", "target_sparsity", "seed", "value"])
def test_shared_runs_csv_without_a_context_column_is_refused_naming_it(tmp_path, capsys, column):
    """A folder of shared CSVs alone whose runs.csv lacks a column the report keys on (hand-made, or
    another tool's) stopped prune-report with a KeyError traceback after it had begun."""
    import pandas as pd

    results = _results(tmp_path / "results")
    shared = tmp_path / "shared"
    shared.mkdir()
    runs = pd.concat(pd.read_csv(p) for p in results.glob("runs/*/metrics.csv"))
    runs.drop(columns=column).to_csv(shared / "runs.csv", index=False)
    before = _snapshot(tmp_path)
    line = _refused([str(shared)], capsys)
    assert str(shared) in line and f"lacks the column(s) {column};" in line and "as prune-run writes it" in line
    assert _snapshot(tmp_path) == before
    runs.to_csv(shared / "runs.csv", index=False)  # the whole table is reported
    main([str(shared), "--no-plots"])
    assert (shared / "report" / "summary.md").exists()


def test_out_inside_another_hydra_apps_runs_folder_is_allowed(tmp_path):
    """`hydra.run.dir=runs/${now:...}` of any Hydra app leaves `.hydra/` folders in a runs/ folder: it
    was taken for a results folder of prune-run's and the report refused (review). Only prune-run's own
    files, or its shared runs.csv, make one."""
    results = _results(tmp_path / "results")
    (tmp_path / "app" / "runs" / "2026-12-02_10-00-00" / ".hydra").mkdir(parents=True)
    (tmp_path / "app" / "runs.csv").write_text("when,loss\n1,0.5\n")
    out = tmp_path / "app" / "runs" / "report_x"
    main([str(results), "--out", str(out), "--no-plots"])
    assert (out / "summary.md").exists()
