"""Runs whose model draws from the process-wide random streams stay exact (docs/robustness.md).

prune-cli's own code draws from generators it owns (batch order, random scores, augmentation), but a
researcher's model usually does not: `nn.Dropout` draws from torch's global generator, a noise layer
written with numpy from numpy's, and so on. Two promises must hold for such a model too:

- a run killed during training and started again equals an uninterrupted run (so the checkpoint
  holds and restores every global stream, not only torch's);
- a run whose dense model comes from the dense cache equals one that trained it (so every global
  stream restarts at the same point after the dense phase, as the run's own generator does).

The `noisy_model` fixture makes the MLP draw from all three streams (torch, numpy, Python's `random`)
in training mode only; each test fails if any one stream is left out (checked by removing each in turn).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import FAST
from tests.helpers import assert_same_run, compose, crash_and_resume

OVERRIDES = [*FAST, "train.epochs=2", "finetune.epochs=2", "sparsity=0.5"]


@pytest.fixture
def noisy_model(monkeypatch):
    """The built-in MLP, drawing from the three global streams while training, as researchers' own
    models do: torch dropout, numpy noise, Python's random. (Patched in, not a plugins=[...] module:
    an outside module's registrations would outlive the test in this process.)"""
    import random

    import numpy as np
    import torch.nn.functional as F

    from prune_cli.models.mlp import MLP

    def forward(self, x):
        if self.training:
            noise = torch.from_numpy(np.random.standard_normal(tuple(x.shape))).to(x)
            x = F.dropout(x, 0.3) * (1 + 0.1 * noise) * (0.9 + 0.2 * random.random())
        return self.net(x)

    monkeypatch.setattr(MLP, "forward", forward)


ON_A_GPU = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")]


@pytest.mark.parametrize(
    "crash_at, device",
    [(("dense", 1), "cpu"), (("finetuned", 1), "cpu"), pytest.param(("dense", 1), "cuda", marks=ON_A_GPU)],
)
def test_a_run_killed_while_training_a_model_with_dropout_resumes_exactly(tmp_path, monkeypatch, noisy_model, crash_at, device):
    """On a GPU, dropout draws from the CUDA generator: its state must be in the checkpoint too."""
    overrides = [*OVERRIDES, "dense_cache.enabled=false", f"device={device}"]
    reference, resumed = crash_and_resume(tmp_path, monkeypatch, overrides, crash_at)
    assert_same_run(reference, resumed, ("metrics.csv", "history.csv"))


def test_dense_cache_hit_and_miss_agree_for_a_model_with_dropout(tmp_path, noisy_model):
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    dirs = {}
    for kind in ("miss", "hit"):  # the first run trains and stores the dense model, the second loads it
        results = tmp_path / kind
        cfg = compose([*OVERRIDES, cache], results)
        dirs[kind] = run(cfg, results / "runs" / run_id(cfg))
    runs = {kind: pd.read_csv(tmp_path / kind / "runs.csv") for kind in dirs}
    assert set(runs["miss"].dense_cache) == {"miss"} and set(runs["hit"].dense_cache) == {"hit"}
    assert runs["hit"].value.equals(runs["miss"].value)
    a, b = (torch.load(d / "model_finetuned.pt", weights_only=True) for d in dirs.values())
    assert all(torch.equal(a[k], b[k]) for k in a)


def _draws() -> tuple:
    import random

    import numpy as np

    return torch.rand(3).tolist(), np.random.standard_normal(3).tolist(), [random.random() for _ in range(3)]


def test_a_capture_read_back_like_a_checkpoint_replays_the_same_draws(tmp_path):
    """Through torch.save and the checkpoint's safe loader (weights_only), every stream continues."""
    from prune_cli.core import random_streams

    random_streams.seed_all(123)
    _draws()
    torch.save(random_streams.capture(), tmp_path / "streams.pt")
    expected = _draws()
    random_streams.seed_all(7)  # anything else
    random_streams.restore(torch.load(tmp_path / "streams.pt", weights_only=True))
    assert _draws() == expected


def test_a_checkpoint_with_only_torchs_state_still_restores_it():
    """Checkpoints written before the other streams were saved hold only torch's state."""
    from prune_cli.core import random_streams

    random_streams.seed_all(5)
    state = {"torch": torch.get_rng_state()}
    expected = torch.rand(4)
    random_streams.restore(state)
    assert torch.equal(torch.rand(4), expected)


def test_cuda_states_that_cannot_be_restored_are_named_in_a_warning(monkeypatch, caplog):
    from prune_cli.core import random_streams

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state = {**random_streams.capture(), "cuda": [torch.zeros(16, dtype=torch.uint8)] * 2}
    with caplog.at_level("WARNING", logger="prune_cli.core.random_streams"):
        random_streams.restore(state)
    assert "holds the random states of 2 CUDA device(s) but this machine has 0" in caplog.text


def test_draws_between_two_captures_are_noticed():
    import numpy as np

    from prune_cli.core import random_streams

    for draw in (lambda: torch.rand(1), lambda: np.random.rand(), lambda: __import__("random").random()):
        before = random_streams.capture()
        assert random_streams.same(before, random_streams.capture())
        draw()
        assert not random_streams.same(before, random_streams.capture())
