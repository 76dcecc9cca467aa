"""Runs that differ only in how they prune see the same training after pruning (docs/robustness.md,
"Random streams").

"Is A better than B?" is answered seed by seed (prune-report's paired comparisons): with the same
seed, the two runs share the dense model, and their difference should come from the pruning alone.
A pruning method that draws random numbers (random scores, SNIP's batches, `method.shuffle`) must
therefore not move the fine-tuning's batch order, and one that draws nothing must not either. Each
pruning event draws from a generator of its own, derived from the seed and the event's number, and
the process-wide streams (a model's dropout) are put back as they were before the event.

The test records the batch order of every fine-tuning epoch (the indices of each mini-batch) for
several methods at the same seed, with the dense model from a shared cache, and compares them with
magnitude pruning's: identical, whatever the method drew.
"""

from __future__ import annotations

import pytest
import torch

from conftest import FAST
from tests.helpers import compose

OVERRIDES = [*FAST, "train.epochs=1", "finetune.epochs=2", "sparsity=0.5"]


def _finetune_orders(tmp_path, extra: list[str], cache, monkeypatch, name: str) -> list[list[int]]:
    """The mini-batch indices of every training epoch after the dense phase (the dense model comes
    from `cache`, so every recorded epoch is a fine-tuning one)."""
    import prune_cli.training as training
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    real = training.shuffled_batches
    epochs: list[list[int]] = []

    def recording(*args, **kwargs):
        epochs.append([])
        for idx, xb, yb in real(*args, **kwargs):
            epochs[-1].extend(idx.tolist())
            yield idx, xb, yb

    results = tmp_path / name
    cfg = compose([*OVERRIDES, *extra, f"dense_cache.dir={cache}"], results)
    with monkeypatch.context() as patch:
        patch.setattr(training, "shuffled_batches", recording)
        run(cfg, results / "runs" / run_id(cfg))
    return epochs


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A dense cache holding the seed-0 dense model, so that the compared runs train none."""
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run

    folder = tmp_path_factory.mktemp("paired_cache")
    cfg = compose([*OVERRIDES, f"dense_cache.dir={folder / 'cache'}"], folder / "results")
    run(cfg, folder / "results" / "runs" / run_id(cfg))
    return folder / "cache"


@pytest.mark.parametrize(
    "method",
    [
        ["method=random"],
        ["method=random", "method.sampling=bernoulli"],
        ["method=snip"],
        ["method=magnitude", "method.shuffle=true"],
    ],
    ids=["random", "random-bernoulli", "snip", "magnitude-shuffled"],
)
def test_fine_tuning_batch_order_does_not_depend_on_the_pruning_method(tmp_path, warm_cache, monkeypatch, method):
    reference = _finetune_orders(tmp_path, ["method=magnitude"], warm_cache, monkeypatch, "magnitude")
    orders = _finetune_orders(tmp_path, method, warm_cache, monkeypatch, "other")
    assert len(reference) == 2 and len(orders) == 2  # the two fine-tuning epochs, no dense training
    assert orders == reference


def test_iterative_rounds_draw_different_random_scores_and_share_the_fine_tuning(tmp_path, warm_cache, monkeypatch):
    """Iterative random pruning: each round's scores come from a generator of its own (a round does not
    replay the previous round's draws), and the fine-tuning between rounds is magnitude's."""
    import dataclasses

    from prune_cli.pruning.registries import SCORES

    iterative = ["schedule=iterative", "schedule.rounds=2"]
    reference = _finetune_orders(tmp_path, [*iterative, "method=magnitude"], warm_cache, monkeypatch, "magnitude")

    entry = SCORES.get("random")
    drawn: list[torch.Tensor] = []

    def recording(model, params, ctx):
        scores = entry.fn(model, params, ctx)
        drawn.append(torch.cat([s.flatten() for s in scores.values()]))
        return scores

    monkeypatch.setitem(SCORES._entries, "random", dataclasses.replace(entry, fn=recording))
    orders = _finetune_orders(tmp_path, [*iterative, "method=random"], warm_cache, monkeypatch, "random")
    assert len(reference) == 4 and orders == reference  # two rounds of two fine-tuning epochs
    assert len(drawn) == 2 and not torch.equal(drawn[0], drawn[1])
