"""Runs whose model draws from the process-wide random streams stay exact (docs/robustness.md).

prune-cli's own code draws from generators it owns (batch order, random scores, augmentation), but a
researcher's model usually does not: `nn.Dropout` draws from torch's global generator, a noise layer
written with numpy from numpy's, and so on. Two promises must hold for such a model too:

- a run killed during training and started again equals an uninterrupted run (so the checkpoint
  holds and restores every global stream, not only torch's);
- a run whose dense model comes from the dense cache equals one that trained it (so every global
  stream restarts at the same point after the dense phase, as the run's own generator does).

`_noisy_forward` makes the MLP draw from all three streams (torch, numpy, Python's `random`)
in training mode only; each test fails if any one stream is left out (checked by removing each in turn).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import FAST
from tests.helpers import assert_same_run, compose, crash_and_resume, resume_after_crash

OVERRIDES = [*FAST, "train.epochs=2", "finetune.epochs=2", "sparsity=0.5"]


def _noisy_forward(self, x):
    """The built-in MLP, drawing from the three global streams while training, as researchers' own
    models do: torch dropout, numpy noise, Python's random. (Patched in, not a plugins=[...] module:
    an outside module's registrations would outlive the test in this process.)"""
    import random

    import numpy as np
    import torch.nn.functional as F

    if self.training:
        noise = torch.from_numpy(np.random.standard_normal(tuple(x.shape))).to(x)
        x = F.dropout(x, 0.3) * (1 + 0.1 * noise) * (0.9 + 0.2 * random.random())
    return self.net(x)


def _patch_noisy(monkeypatch) -> None:
    from prune_cli.models.mlp import MLP

    monkeypatch.setattr(MLP, "forward", _noisy_forward)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the noisy model that trained its dense model (a dense-cache miss):
    its run directory and its cache, which the other runs compare with and hit."""
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    folder = tmp_path_factory.mktemp("noisy_reference")
    with pytest.MonkeyPatch.context() as patch:
        _patch_noisy(patch)
        cfg = compose([*OVERRIDES, f"dense_cache.dir={folder / 'cache'}"], folder / "results")
        return run(cfg, folder / "results" / "runs" / run_id(cfg)), folder / "cache"


@pytest.mark.xdist_group("global_rng_reference")  # the cases share the reference run
@pytest.mark.parametrize("crash_at", [("finetuned", 1)])  # inside fine-tuning: after the reseed at the end of the dense phase
def test_a_run_killed_while_training_a_model_with_dropout_resumes_exactly(tmp_path, monkeypatch, reference, crash_at):
    _patch_noisy(monkeypatch)
    overrides = [*OVERRIDES, f"dense_cache.dir={tmp_path / 'cache'}"]  # its own cache: it trains the dense model too
    resumed = resume_after_crash(tmp_path, monkeypatch, overrides, crash_at)
    assert_same_run(reference[0], resumed, ("metrics.csv", "history.csv"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")
def test_a_run_killed_while_training_a_model_with_dropout_on_a_gpu_resumes_exactly(tmp_path, monkeypatch):
    """On a GPU, dropout draws from the CUDA generator: its state must be in the checkpoint too."""
    _patch_noisy(monkeypatch)
    overrides = [*OVERRIDES, "dense_cache.enabled=false", "device=cuda"]
    reference, resumed = crash_and_resume(tmp_path, monkeypatch, overrides, ("dense", 1))
    assert_same_run(reference, resumed, ("metrics.csv", "history.csv"))


@pytest.mark.xdist_group("global_rng_reference")
def test_dense_cache_hit_and_miss_agree_for_a_model_with_dropout(tmp_path, monkeypatch, reference):
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    _patch_noisy(monkeypatch)
    miss, cache = reference
    cfg = compose([*OVERRIDES, f"dense_cache.dir={cache}"], tmp_path / "results")
    hit = run(cfg, tmp_path / "results" / "runs" / run_id(cfg))
    runs = {"miss": pd.read_csv(miss.parent.parent / "runs.csv"), "hit": pd.read_csv(tmp_path / "results" / "runs.csv")}
    assert set(runs["miss"].dense_cache) == {"miss"} and set(runs["hit"].dense_cache) == {"hit"}
    assert runs["hit"].value.equals(runs["miss"].value)
    a, b = (torch.load(d / "model_finetuned.pt", weights_only=True) for d in (miss, hit))
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


ON_A_GPU = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_A_GPU)])
def test_data_pruning_leaves_every_global_stream_as_it_found_it(tmp_path, monkeypatch, device):
    """Its proxies train (and draw, with dropout) on the run's device; whether their scores were
    computed or read from the cache, the run's model must start from the same streams."""
    import dataclasses

    from prune_cli.core import random_streams
    from prune_cli.run.data_selection import select_training_data
    from tests.helpers import composed, counting_model_builder, proxy_scoring_splits

    _patch_noisy(monkeypatch)
    build, built = counting_model_builder()
    overrides = ["model=mlp", "model.widths=[8]", "data_pruning=el2n", "data_pruning.keep=0.5", "data_pruning.proxies=2"]
    cfg = composed(*overrides, "data_pruning.proxy_epochs=1", "train.batch_size=20", f"results_dir={tmp_path}", f"device={device}")
    splits = proxy_scoring_splits()
    data = dataclasses.replace(
        splits, **{f.name: getattr(splits, f.name).to(device) for f in dataclasses.fields(splits) if f.name.endswith(("_x", "_y"))}
    )
    random_streams.seed_all(3)
    before = random_streams.capture(cuda=device == "cuda")
    select_training_data(cfg, data, torch.device(device), build, tmp_path)
    assert len(built) == 2  # the proxies trained, drawing from the streams
    assert random_streams.same(before, random_streams.capture(cuda=device == "cuda"))
