"""The --out folder of prune-report (docs/report.md "Output folder"): a report rewrites the files a
report writes and removes those of an earlier report that it does not write again; any other file
in the folder is left alone."""

from __future__ import annotations

import shutil

import pandas as pd

from prune_cli.report import build_report
from prune_cli.report.build import REPORT_FILES
from test_report_experiments import write_run

EXPECTED = """name: run
source: hand-made for this test
metric: accuracy
split: test
phase: final
points:
  - {method: magnitude, sparsity: 0.5, value: 0.8, band: 0.01}
"""


def _first_report(tmp_path, plots: bool):
    """Three seeds of magnitude and random, and a first report with --expect: (results, out, its files)."""
    root, out = tmp_path / "res", tmp_path / "out"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8)
        write_run(root, seed, "random", 0.5, 10, 0.6)
    (tmp_path / "expected.yaml").write_text(EXPECTED)
    return root, out, build_report(root, out, plots=plots, expect=str(tmp_path / "expected.yaml"))


def test_a_rerun_removes_the_files_of_an_earlier_report_it_does_not_write(tmp_path):
    """First report: magnitude and random, plots, --expect. Second, into the same folder: the random
    runs removed, no plots, no --expect. Before, comparisons.csv (random vs magnitude), the PNGs and
    expect.csv of the first stayed behind."""
    root, out, first = _first_report(tmp_path, plots=True)
    assert {"comparisons.csv", "expect.csv", "accuracy_vs_compression.png"} <= set(first)
    assert set(first) <= set(REPORT_FILES)  # what a later report removes covers what this one wrote
    out.joinpath("notes.txt").write_text("mine\n")  # not a report's file: kept
    out.joinpath("figure.png").write_bytes(b"not a report figure")
    out.joinpath("drafts").mkdir()
    out.joinpath("drafts", "summary.md").write_text("a report's name, in a subfolder: kept\n")
    for run in root.glob("runs/*-random-*"):
        shutil.rmtree(run)
    second = build_report(root, out, plots=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "drafts",
        "figure.png",
        "intensification.csv",
        "notes.txt",
        "per_class_summary.csv",
        "report.html",
        "report_card.csv",
        "scaling_fit.csv",
        "standards.txt",
        "summary.csv",
        "summary.md",
        "worst_class.csv",
    ]
    assert set(second) == {p.name for p in out.iterdir()} - {"drafts", "figure.png", "notes.txt"}
    assert out.joinpath("notes.txt").read_text() == "mine\n" and out.joinpath("figure.png").read_bytes() == b"not a report figure"
    assert out.joinpath("drafts", "summary.md").exists()
    assert set(pd.read_csv(out / "summary.csv")["method"]) == {"magnitude"}


def test_a_report_that_fails_part_way_leaves_the_earlier_report(tmp_path, monkeypatch, capsys):
    """The earlier report's files were removed before anything was written, so a report interrupted
    or failing part-way left the folder empty where the earlier complete report had been (diff
    audit: `timeout -s INT 1.3 prune-report` emptied 14 files). Files of an earlier report that this
    one does not write are removed only once it has written its own, and the removal is said."""
    import pytest

    from prune_cli.report import build as build_module

    root, out, first = _first_report(tmp_path, plots=False)
    assert "expect.csv" in first

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    with monkeypatch.context() as patch:
        patch.setattr(build_module, "write_html", broken)
        with pytest.raises(RuntimeError):
            build_report(root, out, plots=False)
    assert {"expect.csv", "report.html", "comparisons.csv"} <= {p.name for p in out.iterdir()}
    capsys.readouterr()
    build_report(root, out, plots=False)
    assert not out.joinpath("expect.csv").exists()
    assert "removed expect.csv of an earlier report" in capsys.readouterr().err
