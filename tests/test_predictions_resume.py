"""The predictions file under a crash (docs/robustness.md): a run killed after some phases' parts
are written and started again ends with the same predictions.npz as an uninterrupted run, every
phase once, and no parts folder left. The reference is the uninterrupted run's own file."""

from __future__ import annotations

import numpy as np

from conftest import FAST
from prune_cli.core.predictions import PARTS_DIR, PREDICTIONS_FILE
from tests.helpers import crash_and_resume

# two pruning rounds instead of the schedule's five (each run three times: reference, crash, resume): the
# parts written before the crash are kept and merged once the same way whatever the number of rounds
ITERATIVE = [*FAST, "schedule=iterative", "schedule.rounds=2", "sparsity=0.8"]


def _arrays(run_dir):
    with np.load(run_dir / PREDICTIONS_FILE) as z:
        return {k: z[k] for k in z.files}


def test_a_run_crashed_between_recorded_phases_ends_with_the_uninterrupted_predictions(tmp_path, monkeypatch):
    def parts_of_the_crash(run_dir, _results):
        # the dense phase was recorded before the crash: its part is on disk, the merged file is not
        assert any((run_dir / PARTS_DIR).glob("dense_*.npz"))
        assert not (run_dir / PREDICTIONS_FILE).exists()

    reference, resumed = crash_and_resume(tmp_path, monkeypatch, ITERATIVE, ("finetuned", 1), after_crash=parts_of_the_crash)
    expected, got = _arrays(reference), _arrays(resumed)
    assert sorted(got) == sorted(expected) and any(k.startswith("pred_round_") or k.startswith("pred_finetuned") for k in got)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert not (resumed / PARTS_DIR).exists()
