"""How a local sweep ends: fail_fast under every local launcher (the same summary and exit codes),
the help text's groups, and sweep records left by a killed sweep (docs/robustness.md)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli

JOBLIB = "hydra_plugins.hydra_joblib_launcher"
NEEDS = "the launcher plugins are optional: pip install 'prune-cli[cluster]' (the [test] extra has them)"


@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=parallel", "hydra.launcher.n_jobs=1"]], ids=["basic", "joblib"])
def test_fail_fast_ends_with_the_same_summary_under_every_local_launcher(tmp_path, launcher, allow):
    """With the basic launcher a fail_fast failure used to exit 1 from inside the job: no end summary,
    no list of the runs not started, and allow_failures=true ignored (the parallel launcher had all
    three). Now both go through the sweep's summary, with the same exit codes."""
    if launcher:
        pytest.importorskip(JOBLIB, reason=NEEDS)
    results = tmp_path / "results"
    args = ["-m", *launcher, *FAST, "train.lr=1e30,0.05", "fail_fast=true", f"allow_failures={str(allow).lower()}"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == (0 if allow else 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "prune-run: 1 of 2 runs failed:" in proc.stderr, proc.stderr
    assert "prune-run: 1 run not started after the failure (fail_fast=true):" in proc.stderr, proc.stderr
    assert not list(results.glob("runs/*/COMPLETE"))  # the second run never ran
    assert not (results / ".sweeps").exists()
