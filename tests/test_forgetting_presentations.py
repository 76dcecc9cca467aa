"""Forgetting scores per presentation (Toneva et al., ICLR 2019; issue 13): the counts the rule
computes through the run layer's real proxy training equal a brute-force count over an independent
replay of the same training (same seeds, same batches, a hand-written SGD loop recording each
example's correctness at each of its presentations, before the step's update); the per-epoch
protocol against the same replay's end-of-epoch classifications; no second forward pass per
presentation; and the option's pre-run check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import counting_model_builder, proxy_scoring_splits
from prune_cli.core.errors import ConfigError
from prune_cli.models import build_model
from prune_cli.core.random_streams import derived_seed
from prune_cli.run.data_selection import select_training_data
from tests.helpers import composed, validated

EPOCHS, BATCH = 4, 8
OVERRIDES = [
    "model=mlp",
    "model.widths=[8]",
    "data_pruning=forgetting",
    f"data_pruning.proxy_epochs={EPOCHS}",
    "data_pruning.keep=0.5",
    f"train.batch_size={BATCH}",
    "train.lr=0.5",  # a large step: the tiny proxy forgets often
    "train.lr_schedule=constant",
    "seed=3",
]


def _replay(cfg, data) -> tuple[list[list[bool]], list[list[bool]]]:
    """Proxy 0 trained again by hand: per example, its correctness at each presentation (from the
    forward that trains on it) and at the end of each epoch (the whole split, after the epoch)."""
    torch.manual_seed(derived_seed(cfg.seed, "data-pruning-proxy-0"))
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    gen = torch.Generator().manual_seed(derived_seed(cfg.seed, "data-pruning-batches-0"))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)
    x, y = data.train_x, data.train_y
    presented: list[list[bool]] = [[] for _ in y]
    after_epoch: list[list[bool]] = [[] for _ in y]
    for _ in range(EPOCHS):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), BATCH):
            idx = order[start : start + BATCH]
            logits = model(x[idx])
            for i, ok in zip(idx.tolist(), (logits.argmax(1) == y[idx]).tolist()):
                presented[i].append(ok)
            opt.zero_grad()
            nn.functional.cross_entropy(logits, y[idx]).backward()
            opt.step()
        with torch.no_grad():
            for i, ok in enumerate((model(x).argmax(1) == y).tolist()):
                after_epoch[i].append(ok)
    return presented, after_epoch


def _count_by_hand(sequence: list[bool]) -> int:
    """Transitions correct -> incorrect; never correct: the number of observations."""
    if not any(sequence):
        return len(sequence)
    return sum(1 for before, now in zip(sequence, sequence[1:]) if before and not now)


def _rule_counts(tmp_path, observe: str) -> tuple[torch.Tensor, int]:
    """The rule's counts through select_training_data (read from its cache) and the number of
    forward passes of the proxy model."""
    build, _ = counting_model_builder()
    calls = []

    def counting_build(cfg, data):
        model = build(cfg, data)
        model.register_forward_hook(lambda *_: calls.append(1))
        return model

    overrides = [*OVERRIDES, f"data_pruning.observe={observe}", f"results_dir={tmp_path}"]
    validated(*overrides)
    select_training_data(composed(*overrides), proxy_scoring_splits(), torch.device("cpu"), counting_build, tmp_path)
    (cache,) = (tmp_path / "dense_cache" / "data_pruning").glob("forgetting-*.pt")
    return torch.load(cache, weights_only=True)["scores"], len(calls)  # the file holds its key beside the counts


def test_presentation_counts_equal_a_brute_force_count_over_a_replay(tmp_path):
    counts, forwards = _rule_counts(tmp_path, "presentation")
    cfg, data = composed(*OVERRIDES), proxy_scoring_splits()
    presented, after_epoch = _replay(cfg, data)
    assert all(len(seq) == EPOCHS for seq in presented)
    expected = [_count_by_hand(seq) for seq in presented]
    assert counts.tolist() == expected
    # the case is not trivial: forgetting events and never-learned examples both occur, and the
    # end-of-epoch protocol counts differently on it (so the test tells the two apart)
    assert any(0 < c < EPOCHS for c in expected) and EPOCHS in expected
    assert expected != [_count_by_hand(seq) for seq in after_epoch]
    # one forward per training step and the validation pass of each epoch: no second pass
    steps = -(-len(data.train_y) // BATCH)
    assert forwards == EPOCHS * (steps + 1)


def test_epoch_counts_equal_a_brute_force_count_over_end_of_epoch_classifications(tmp_path):
    counts, forwards = _rule_counts(tmp_path, "epoch")
    cfg, data = composed(*OVERRIDES), proxy_scoring_splits()
    _, after_epoch = _replay(cfg, data)
    assert counts.tolist() == [_count_by_hand(seq) for seq in after_epoch]
    steps = -(-len(data.train_y) // BATCH)
    assert forwards == EPOCHS * (steps + 2)  # plus one pass over the training split per epoch


def test_the_observation_protocol_is_checked_before_the_run():
    with pytest.raises(ConfigError, match=r"data_pruning\.observe.*step.*epoch, presentation"):
        validated("data_pruning=forgetting", "data_pruning.observe=step")
