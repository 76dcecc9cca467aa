"""scripts/check_gpu_run.py (step 2 of scripts/gpu_check.sh) names each thing wrong with a GPU run's
results folder: checked on hand-made folders, since no GPU run happens here."""

from __future__ import annotations

import pandas as pd

import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
from check_gpu_run import FAMILIES, problems


def results_folder(folder, device="cuda:NVIDIA H200", value=0.5, drop=(), tables=("per_class.csv", "regions.csv")):
    rows = [{"phase": "finetuned", "split": "test", "metric": m, "value": value, "device": device} for m in FAMILIES.values()]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r for r in rows if r["metric"] not in drop]).to_csv(folder / "runs.csv", index=False)
    for table in tables:
        pd.DataFrame({"phase": ["finetuned"], "value": [1.0]}).to_csv(folder / table, index=False)
    return folder


def test_a_complete_gpu_run_passes(tmp_path):
    assert problems(results_folder(tmp_path)) == []


def test_each_fault_is_named(tmp_path):
    assert problems(results_folder(tmp_path / "a", device="cpu")) == ["runs.csv device column is ['cpu'], expected cuda"]
    nan = problems(results_folder(tmp_path / "b", value=float("nan")))
    assert len(nan) == len(FAMILIES) and nan[0].startswith("non-finite value: finetuned/test/accuracy")
    assert problems(results_folder(tmp_path / "c", drop=("ntk_rel_dist_dense",))) == ["no NTK row (ntk_rel_dist_dense)"]
    assert problems(results_folder(tmp_path / "d", tables=("per_class.csv",))) == ["regions.csv is missing or empty"]
