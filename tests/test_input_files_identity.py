"""Files a run reads by name (run-id audit of 2026-12-03): `method.match_masks` (a masks file) and
`method.match_method` (configs/method/<name>.yaml) are hashed into the run id by name, not content (README,
"Every run gets its own directory"). A changed file under the same name was "already complete" with the first
file's numbers. A run records each file's digest (provenance.json `input_files`); a later command for its run
id whose file holds other bytes is refused before anything is written, naming the key."""

from __future__ import annotations

import shutil

import torch

from conftest import FAST, run_cli, snapshot
from prune_cli.core.paths import input_file_digests


def _masks(tmp_path, allocation: str):
    """A masks file of a FAST run at sparsity 0.5 with `allocation` (layerwise and global keep other counts)."""
    results = tmp_path / f"made_{allocation}"
    run_cli([*FAST, "sparsity=0.5", f"method.allocation={allocation}"], results)
    (run,) = (results / "runs").iterdir()
    return run / "masks.pt"


def test_a_masks_file_changed_under_its_name_is_refused_not_taken_for_the_finished_run(tmp_path):
    layerwise, global_ = _masks(tmp_path, "layerwise"), _masks(tmp_path, "global")
    counts = [int(m.sum()) for m in torch.load(layerwise).values()], [int(m.sum()) for m in torch.load(global_).values()]
    assert counts[0] != counts[1]  # two experiments
    here = tmp_path / "m.pt"
    shutil.copyfile(layerwise, here)
    results = tmp_path / "r"
    args = [*FAST, "method=random", "sparsity=0.5", "method.allocation=matched", f"method.match_masks={here}"]
    run_cli(args, results)
    shutil.copyfile(global_, here)  # the other masks under the same name
    before = snapshot(results)
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'method.match_masks'" in proc.stderr and "another file under this name" in proc.stderr, proc.stderr
    assert snapshot(results) == before
    shutil.copyfile(layerwise, here)  # the same bytes again: the finished run
    proc = run_cli(args, results)
    assert "already complete" in proc.stdout + proc.stderr


def test_the_method_config_match_method_names_is_recorded_by_its_bytes():
    from omegaconf import OmegaConf

    from prune_cli.core.paths import configs_dir

    digests = input_file_digests(OmegaConf.create({"method": {"match_method": "magnitude", "match_masks": None}}))
    import hashlib

    expected = hashlib.sha256((configs_dir() / "method" / "magnitude.yaml").read_bytes()).hexdigest()
    assert digests == {"method.match_method": expected}
