"""A run computes the same numbers in a new interpreter as in this one (docs/robustness.md).

A real crash resumes in a new interpreter, with another hash seed (string hashing, so the order of
sets of layer or metric names). The crash tests kill in-process or forked runs, which share this
process's hash seed, so they cannot see a result that depends on it; this check can. Slow (a new
interpreter imports torch): `pytest -m slow`."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import FAST, run_cli

TIMING = ("timestamp", "wall_s", "median_ms", "p10_ms", "p90_ms")  # measured times differ run to run


@pytest.mark.slow
def test_a_new_interpreter_with_another_hash_seed_writes_the_same_rows(tmp_path):
    args = [*FAST, "method=random", "sparsity=0.5", "metrics.membership.enabled=true", "metrics.similarity.enabled=true"]
    (tmp_path / "here").mkdir()
    here = run_cli(args, tmp_path / "here" / "results")
    assert here.returncode == 0
    env = {"PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "prune_cli.cli", *args, f"results_dir={tmp_path / 'there' / 'results'}"]
    (tmp_path / "there").mkdir()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path / "there")
    assert done.returncode == 0, done.stderr
    tables = sorted(p.name for p in (tmp_path / "here" / "results").glob("*.csv"))
    assert tables == sorted(p.name for p in (tmp_path / "there" / "results").glob("*.csv"))
    for name in tables:
        a, b = (pd.read_csv(tmp_path / side / "results" / name, dtype=str) for side in ("here", "there"))
        keep = [c for c in a.columns if c not in TIMING]
        pd.testing.assert_frame_equal(a[keep], b[keep], obj=name)
