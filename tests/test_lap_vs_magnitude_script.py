"""scripts/lap_vs_magnitude.py's dense line: one dense model per seed and dense configuration.
Every run of a sweep records the dense phase of the model it pruned, and runs of one seed share
that model (the dense cache), so counting runs counted one model three times (`n=3` with one seed)."""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import yaml

import tests.helpers  # noqa: F401  (puts scripts/ on sys.path: main() imports script_args and script_tables from it)
from conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("lap_vs_magnitude", REPO / "scripts" / "lap_vs_magnitude.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(root, dense_by_config):
    """Runs of the script's three settings at sparsity 0.98 for each (widths, seed, dense accuracy)."""
    rows = []
    for widths, seed, dense in dense_by_config:
        for method, allocation in (("lookahead", "layerwise"), ("magnitude", "layerwise"), ("magnitude", "global")):
            run_id = f"{method}-{allocation}-w{widths[0]}-s{seed}"
            config = {"dataset": {"name": "mnist1d"}, "model": {"name": "mlp", "widths": widths}, "train": {"epochs": 20}}
            config.update(seed=seed, method={"name": method, "allocation": allocation}, sparsity=0.98)
            (root / "runs" / run_id).mkdir(parents=True)
            (root / "runs" / run_id / "config.yaml").write_text(yaml.safe_dump(config))
            ctx = dict(run_id=run_id, seed=seed, dataset="mnist1d", model="mlp", method=method, allocation=allocation)
            ctx.update(target_sparsity=0.98, split="test", metric="accuracy", device="cpu")
            rows += [{**ctx, "phase": "dense", "value": dense}, {**ctx, "phase": "pruned", "value": 0.2}]
            rows.append({**ctx, "phase": "finetuned", "value": 0.4})
    pd.DataFrame(rows).to_csv(root / "runs.csv", index=False)


def _dense_lines(tmp_path, monkeypatch, capsys, dense_by_config) -> list[str]:
    _folder(tmp_path / "res", dense_by_config)
    monkeypatch.setattr(sys, "argv", ["lap_vs_magnitude.py", "--results-dir", str(tmp_path / "res"), "--table-only"])
    _script().main()
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("dense")]


def test_one_dense_model_per_seed(tmp_path, monkeypatch, capsys):
    """Two seeds, three runs each: the dense accuracies 0.50 and 0.70, mean 60.00, sd 14.14, n=2 (not 6)."""
    lines = _dense_lines(tmp_path, monkeypatch, capsys, [([256, 256], 0, 0.5), ([256, 256], 1, 0.7)])
    assert lines == ["dense: 60.00 ± 14.14 (n=2)"]


def test_one_line_per_dense_configuration(tmp_path, monkeypatch, capsys):
    """A second width in the same folder is another dense model, shown on its own line."""
    lines = _dense_lines(tmp_path, monkeypatch, capsys, [([256, 256], 0, 0.5), ([256, 256], 1, 0.7), ([64, 64], 0, 0.3)])
    assert lines == ["dense model.widths=[256, 256]: 60.00 ± 14.14 (n=2)", "dense model.widths=[64, 64]: 30.00 (n=1)"]


def test_the_docstring_names_the_default_mlp():
    """The docstring called [100, 100] the default MLP; configs/model/mlp.yaml has been [256, 256]."""
    import re

    widths = yaml.safe_load((REPO / "configs" / "model" / "mlp.yaml").read_text())["widths"]
    named = re.findall(r"default (?:MLP )?\[(\d+), (\d+)\]", " ".join(_script().__doc__.split()))
    assert named and all([int(a), int(b)] == widths for a, b in named), named


def test_table_only_refuses_a_run_option_on_a_folder_of_runs(tmp_path, monkeypatch, capsys):
    """--table-only printed the table of the folder's runs and ignored `--seeds 5` (and every other
    option only a run uses): now it stops with the option, its value and why, before printing."""
    import pytest

    _folder(tmp_path / "res", [([256, 256], 0, 0.5)])
    argv = ["lap_vs_magnitude.py", "--results-dir", str(tmp_path / "res"), "--table-only", "--seeds", "5"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        _script().main()
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and out == ""
    assert err.splitlines()[-1].startswith("lap_vs_magnitude.py: error: argument --seeds: '5': allowed: only without --table-only")
