"""scripts/bench_report.py's synthesised folder: each of its N runs is a run of its own. `synthesise` copied
the template's COMPLETE, whose first line is the template's run id, into every clone, so prune-report read
one directory of the N (prune_cli.core.tables.one_per_run_id, N - 1 warnings) and the benchmark timed a
one-run folder. A fabricated template (write_run), no training."""

from __future__ import annotations

import os
import runpy
import sys
import warnings

import numpy as np

from conftest import REPO
from prune_cli.core.predictions import merge_parts, save_phase
from prune_cli.report import build_report
from prune_cli.results import load
from test_report_experiments import write_run


def test_every_synthesised_run_is_read(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the script imports script_args from its folder
    synthesise = runpy.run_path(str(REPO / "scripts" / "bench_report.py"), run_name="bench_report")["synthesise"]
    template = tmp_path / "template" / "runs" / write_run(tmp_path / "template", 0, "magnitude", 0.5, 2, 0.8)
    labels = np.array([0, 1, 2, 1])
    save_phase(template, "dense", {"test": (labels, labels)}, 3)
    save_phase(template, "finetuned", {"test": (labels, labels)}, 3)
    merge_parts(template)
    root = tmp_path / "bench"
    synthesise(template, root, 7)
    dirs = sorted(d.name for d in (root / "runs").iterdir())
    assert len(dirs) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a directory left out is a warning
        res = load(root)
    assert sorted(res.runs["run_id"]) == dirs and not res.skipped
    assert sorted(res.metrics["run_id"].unique()) == dirs  # each run's rows carry its own id
    md = build_report(root, plots=False)["summary.md"].read_text()
    assert "Completed runs: 7;" in md


OPENED: list[str] | None = None  # while a list, the audit hook below records the files opened


def _record_opens(event, args):
    if OPENED is not None and event == "open" and isinstance(args[0], (str, os.PathLike)):
        OPENED.append(str(args[0]))


sys.addaudithook(_record_opens)  # an audit hook stays for the process: it records only while OPENED is a list


def test_the_load_case_reads_what_the_floor_reads(tmp_path, monkeypatch):
    """The `load` case timed prune_cli.results.load, which reads the per-run tables only when one is
    asked for (Results.table), against a floor that read every CSV: `load 0.2x floor` compared reading
    the configs with reading everything. The two cases now open the same CSV and YAML files (the
    synthesised runs have every table of the template but history.csv)."""
    global OPENED
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    cases = runpy.run_path(str(REPO / "scripts" / "bench_report.py"), run_name="bench_report")["cases"]
    template = tmp_path / "template" / "runs" / write_run(tmp_path / "template", 0, "magnitude", 0.5, 2, 0.8)
    (template / "per_class.csv").write_text("run_id,seed,phase,split,class,recall\nx,0,dense,test,0,0.5\n")
    (template / "history.csv").write_text("epoch,loss\n0,1.0\n")
    root = tmp_path / "bench"
    synthesise = runpy.run_path(str(REPO / "scripts" / "bench_report.py"), run_name="bench_report")["synthesise"]
    synthesise(template, root, 3)
    opened = {}
    for name in ("floor", "load"):
        OPENED = []
        try:
            cases(root, tmp_path / "out")[name]()
        finally:
            files, OPENED = OPENED, None
        opened[name] = sorted({f for f in files if f.startswith(str(root)) and f.endswith((".csv", ".yaml"))})
    assert len(opened["floor"]) == 3 * 3  # metrics.csv, per_class.csv and config.yaml of 3 runs
    assert opened["load"] == opened["floor"]
