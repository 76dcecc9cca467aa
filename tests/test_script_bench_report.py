"""scripts/bench_report.py's synthesised folder: each of its N runs is a run of its own. `synthesise` copied
the template's COMPLETE, whose first line is the template's run id, into every clone, so prune-report read
one directory of the N (prune_cli.core.tables.one_per_run_id, N - 1 warnings) and the benchmark timed a
one-run folder. A fabricated template (write_run), no training."""

from __future__ import annotations

import runpy
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
