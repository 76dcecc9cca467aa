"""prune-report draws its figures in a forked worker process while it computes the statistics
(prune_cli/report/painter.py): the files are byte for byte those of drawing in-process, the figures
are really drawn by another process, and an error or a warning raised while drawing reaches the
caller (nothing silent)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from prune_cli.report import build_report
from prune_cli.report import plots as plotting
from prune_cli.report import painter
from test_report_card import LEVELS, _run

needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method here")


def _folder(root, levels=LEVELS, seeds=3):
    """Two methods x `levels` x `seeds` of one dataset, with per-class recalls and region counts (so
    the accuracy, recall-change and regions figures are all drawn; with five levels, the scaling law too)."""
    rng = np.random.default_rng(0)
    for score in ("magnitude", "random"):
        for s in levels:
            for seed in range(seeds):
                _run(root, "synthetic", "mlp", score, s, seed)
                run_dir = next(d for d in (root / "runs").iterdir() if d.name.endswith(f"-{score}-s{s:g}-seed{seed}"))
                ctx = pd.read_csv(run_dir / "metrics.csv").iloc[0].drop(["phase", "split", "metric", "value", "dense_value"])
                dense = rng.uniform(0.6, 0.9, 3)
                per_class = [
                    {**ctx, "phase": phase, "split": "test", "class": c, "recall": r, "precision": r, "support": 30}
                    for phase, recalls in (("dense", dense), ("finetuned", dense - rng.uniform(0, s / 4, 3)))
                    for c, r in enumerate(recalls)
                ]
                pd.DataFrame(per_class).to_csv(run_dir / "per_class.csv", index=False)
                regions = [{**ctx, "phase": "finetuned", "lr_count": int(100 * (1 - s)) + seed + 1, "ub_serra": 500.0}]
                pd.DataFrame(regions).to_csv(run_dir / "regions.csv", index=False)
    return root


@needs_fork
def test_worker_draws_the_same_files_as_in_process(tmp_path, monkeypatch):
    root = _folder(tmp_path / "r", seeds=2)
    drawn_by = tmp_path / "pids"
    drawn_by.mkdir()
    save = plotting._save

    def recording_save(fig, path, **layout):
        (drawn_by / path.name).write_text(str(os.getpid()))
        return save(fig, path, **layout)

    monkeypatch.setattr(plotting, "_save", recording_save)  # a forked worker inherits the patch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel = build_report(root, tmp_path / "parallel", parallel=True)
    pids = {p.name: int(p.read_text()) for p in drawn_by.iterdir()}
    for p in drawn_by.iterdir():
        p.unlink()
    serial = build_report(root, tmp_path / "serial", parallel=False)
    assert {"accuracy_vs_compression.png", "recall_change_vs_dense.png", "regions_vs_sparsity.png", "scaling_fit.png"} <= set(pids)
    assert all(pid != os.getpid() for pid in pids.values()), "the figures were drawn in this process"
    assert {int(p.read_text()) for p in drawn_by.iterdir()} == {os.getpid()}
    assert list(parallel) == list(serial)  # the same artifacts, in the same order
    for name, path in parallel.items():
        assert path.read_bytes() == serial[name].read_bytes(), name


@needs_fork
@pytest.mark.parametrize("kind", ["error", "warning"])
def test_an_error_or_warning_while_drawing_reaches_the_caller(tmp_path, monkeypatch, kind):
    root = _folder(tmp_path / "r", levels=(0.5, 0.9), seeds=2)

    def failing(*args, **kwargs):
        if kind == "error":
            raise RuntimeError("the figure could not be drawn")
        warnings.warn("a warning while drawing", UserWarning)

    monkeypatch.setattr(plotting, "regions_vs_sparsity", failing)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the worker is forked with these filters
        with pytest.raises(RuntimeError if kind == "error" else UserWarning, match="could not be drawn|while drawing"):
            build_report(root, tmp_path / "out", parallel=True)


def test_the_entry_point_checks_its_arguments_before_the_heavy_imports():
    """`import prune_cli.report` (what the prune-report entry point loads) imports neither pandas,
    scipy nor matplotlib: those come with build.py, after the arguments are checked."""
    code = "import sys, prune_cli.report; print(sorted(m for m in ('pandas', 'scipy', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_cli_report_with_and_without_plots(tmp_path, capsys):
    from prune_cli.report import main

    root = _folder(tmp_path / "r", levels=(0.5, 0.9), seeds=2)
    main([str(root), "--out", str(tmp_path / "a")])
    main([str(root), "--out", str(tmp_path / "b"), "--no-plots"])
    assert (tmp_path / "a" / "recall_change_vs_dense.png").exists() and not list((tmp_path / "b").glob("*.png"))
    for name in ("summary.csv", "worst_class.csv", "comparisons.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_worker_is_used_only_when_a_cpu_is_idle(monkeypatch):
    monkeypatch.setattr(painter, "usable_cpus", lambda: 2)
    for load, idle in ((0.3, True), (2.9, True), (3.0, False), (8.5, False)):
        monkeypatch.setattr(painter.os, "getloadavg", lambda load=load: (load, load, load))
        assert painter.idle_cpu() is idle, load
    monkeypatch.setattr(painter, "usable_cpus", lambda: 1)
    monkeypatch.setattr(painter.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not painter.idle_cpu()
    with painter.Painter(parallel=False) as serial:  # drawn here; an exception comes back through result()
        assert not serial.parallel
        future = serial.submit("builtins", "divmod", 7, 0)
        with pytest.raises(ZeroDivisionError):
            future.result()
