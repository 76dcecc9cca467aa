"""A sweep over a config group's options with an option those options declare (`-m method=snip,grasp
method.batches=2`): Hydra composes the sweep's master config with the group's default option, which
lacks the key, so the whole sweep was refused as "Unknown config key 'method.batches'" although every
job declares it (prune_cli/hydra_patches.py `_compose_group_sweeps_with_their_options`)."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import FAST, run_cli, snapshot
from prune_cli.core.identity import run_id
from tests.helpers import composed

ONE_EPOCH = [a for a in FAST if not a.startswith(("train.epochs", "finetune.epochs"))] + ["train.epochs=1", "finetune.epochs=1"]
QUIET = ["metrics.regions.enabled=false"]


def test_an_option_every_swept_group_option_declares_runs_each_job_with_it(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, "method=snip,grasp", "method.batches=2"], results)
    assert "all 2 runs of the sweep completed" in proc.stderr
    expected = {run_id(composed(ONE_EPOCH, *QUIET, f"method={m}", "method.batches=2")) for m in ("snip", "grasp")}
    assert {p.name for p in (results / "runs").iterdir() if p.is_dir()} == expected
    runs = pd.read_csv(results / "runs.csv")
    assert set(runs["method"]) == {"snip", "grasp"}


@pytest.mark.parametrize("methods, job", [("snip,magnitude", "job 2 of 2"), ("magnitude,snip", "job 1 of 2")])
def test_an_option_one_swept_group_option_lacks_stops_the_sweep_naming_it(finished_results, methods, job):
    # magnitude first: the sweep's master config was composed with magnitude only, so the refusal was the
    # bare "Unknown config key 'method.batches'", naming neither the job nor snip, which declares it
    before = snapshot(finished_results)
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, f"method={methods}", "method.batches=2"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{job} (method=magnitude): Unknown config key 'method.batches'" in proc.stderr
    assert "1 of 2 jobs of the sweep rejected" in proc.stderr
    assert "Traceback" not in proc.stderr and snapshot(finished_results) == before


@pytest.mark.parametrize("key", ["method.batchez", "data_pruning.proxies"])
def test_a_key_no_swept_option_declares_is_still_unknown(finished_results, key):
    before = snapshot(finished_results)
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, "method=snip,grasp", f"{key}=2"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"Unknown config key '{key}'" in proc.stderr
    assert snapshot(finished_results) == before
