"""GraNd and forgetting scores (issue 13, data pruning): the vmap'd per-example gradient norms
against a brute-force loop of loss.backward(), the forgetting count against hand-worked correctness
sequences, each rule's selection on a tiny example, the pre-run checks of their options, and both
rules through the run layer's real proxy training (cached across `keep`)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn


from prune_cli.core.errors import ConfigError
from prune_cli.data.pruning import DataPruningContext
from prune_cli.data.pruning.forgetting import forgetting, forgetting_counts, select_most_forgotten
from prune_cli.data.pruning.grand import grand, per_example_gradient_norms
from prune_cli.data.splits import DataSplits
from tests.helpers import composed, validated


def _brute_force_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One backward pass per example, the norm over every trainable parameter."""
    model.eval()
    out = []
    for i in range(len(y)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())))
    return torch.stack(out)


def _tiny_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


def test_per_example_gradient_norms_match_a_backward_loop():
    torch.manual_seed(1)
    x, y = torch.randn(11, 5), torch.randint(0, 3, (11,))
    model = _tiny_mlp(0)
    expected = _brute_force_norms(model, x, y)
    got = per_example_gradient_norms(model, x, y, batch_size=4)  # three chunks, the last one short
    assert got.dtype == torch.float64 and got.shape == (11,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_per_example_gradient_norms_of_a_conv_net_with_batch_norm_use_running_statistics():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(1, 3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 4))
    model[1].running_mean.uniform_(-0.5, 0.5)  # non-trivial statistics: eval mode must use them
    model[1].running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(6, 1, 8), torch.randint(0, 4, (6,))
    model.train()
    expected = _brute_force_norms(model, x, y)
    model.train()
    got = per_example_gradient_norms(model, x, y)
    assert model.training  # restored
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def _data(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> DataSplits:
    return DataSplits(x, y, x[:0], y[:0], x[:0], y[:0], num_classes=num_classes)


def test_grand_keeps_the_largest_mean_gradient_norms_over_proxies():
    torch.manual_seed(3)
    x, y = torch.randn(12, 5), torch.arange(12) % 3
    proxies = [_tiny_mlp(10), _tiny_mlp(11)]
    requested = []

    def train_proxy(i, epochs, observe=None):
        requested.append((i, epochs))
        return proxies[i]

    ctx = DataPruningContext(_data(x, y, 3), torch.Generator().manual_seed(0), train_proxy, eval_batch_size=5)
    node = OmegaConf.create({"keep": 0.25, "proxies": 2, "proxy_epochs": 0, "offset": 0.0})
    sel = grand(ctx, node)
    assert requested == [(0, 0), (1, 0)]  # at initialisation, one model per proxy
    mean = (_brute_force_norms(proxies[0], x, y) + _brute_force_norms(proxies[1], x, y)) / 2
    top = sorted(range(12), key=lambda i: -float(mean[i]))
    assert sel.indices.tolist() == sorted(top[:3])
    assert [r["mean_grand"] for r in sel.per_class] == pytest.approx([float(mean[y == c].mean()) for c in range(3)])
    skipped = grand(ctx, OmegaConf.create({"keep": 0.25, "proxies": 2, "proxy_epochs": 0, "offset": 0.25}))
    assert skipped.indices.tolist() == sorted(top[3:6])


def test_forgetting_counts_by_hand():
    # rows: observations (epochs), columns: examples
    correct = torch.tensor(
        [
            [1, 0, 1, 0, 1],
            [0, 0, 1, 1, 1],
            [1, 0, 0, 0, 1],
            [0, 0, 1, 1, 1],
            [1, 0, 1, 1, 0],
        ]
    ).bool()
    # ex0: 1->0 at t1, 1->0 at t3: 2; ex1: never correct: T = 5; ex2: 1->0 at t2: 1;
    # ex3: 1->0 at t2: 1; ex4: 1->0 at t4: 1. The first observation is never an event.
    assert forgetting_counts(correct).tolist() == [2.0, 5.0, 1.0, 1.0, 1.0]
    assert forgetting_counts(torch.tensor([[0, 1], [1, 1]]).bool()).tolist() == [0.0, 0.0]  # learned, never forgotten


def test_select_most_forgotten_breaks_ties_with_the_generator():
    counts = torch.tensor([0.0, 3.0, 1.0, 1.0, 0.0, 1.0])
    kept = select_most_forgotten(counts, 3, torch.Generator().manual_seed(0)).tolist()
    assert 1 in kept and len(kept) == 3 and set(kept) - {1} < {2, 3, 5}
    # the same generator state gives the same choice; nested for a smaller keep
    assert select_most_forgotten(counts, 3, torch.Generator().manual_seed(0)).tolist() == kept
    assert set(select_most_forgotten(counts, 2, torch.Generator().manual_seed(0)).tolist()) < set(kept)
    # across seeds every tied example is chosen sometimes
    chosen = set()
    for seed in range(20):
        chosen |= set(select_most_forgotten(counts, 2, torch.Generator().manual_seed(seed)).tolist())
    assert chosen == {1, 2, 3, 5}


class _Lookup(nn.Module):
    """Returns the stored logits row of the example whose index is its input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = logits

    def forward(self, x):
        return self.table[x[:, 0].long()]


def test_forgetting_rule_counts_what_the_proxy_is_observed_to_predict():
    y = torch.tensor([0, 1, 0, 1])
    x = torch.arange(4, dtype=torch.float32)[:, None]
    # predicted class per epoch (rows) and example (columns); correctness vs y = [0, 1, 0, 1]
    predictions = [
        torch.tensor([[0, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1]]),  # proxy 0
        torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]]),  # proxy 1
    ]
    # proxy 0: ex0 1,0,1 -> 1; ex1 1,1,1 -> 0; ex2 never correct -> 3; ex3 1,0,1 -> 1
    # proxy 1: ex0 1,0,0 -> 1; ex1 0,1,1 -> 0; ex2 never -> 3; ex3 1,1,0 -> 1
    expected = [1.0, 0.0, 3.0, 1.0]

    def train_proxy(i, epochs, observe=None):
        assert epochs == 3
        for epoch, pred in enumerate(predictions[i], start=1):
            observe(_Lookup(nn.functional.one_hot(pred, 2).float()), epoch)
        return None

    ctx = DataPruningContext(_data(x, y, 2), torch.Generator().manual_seed(0), train_proxy, eval_batch_size=3)
    sel = forgetting(ctx, OmegaConf.create({"keep": 0.5, "proxies": 2, "proxy_epochs": 3, "observe": "epoch"}))
    # ex2 (3 events) first, then one of the tied ex0 / ex3 (1 event), never ex1 (0)
    assert 2 in sel.indices.tolist() and len(sel.indices) == 2 and 1 not in sel.indices.tolist()
    assert [r["mean_forgetting"] for r in sel.per_class] == pytest.approx(
        [(expected[0] + expected[2]) / 2, (expected[1] + expected[3]) / 2]
    )
    assert sel.summary["never_learned_fraction"] == 0.25 and sel.summary["unforgettable_fraction"] == 0.25


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data_pruning=grand", "data_pruning.proxies=0"], r"data_pruning\.proxies.*0"),
        (["data_pruning=grand", "data_pruning.proxy_epochs=-1"], r"data_pruning\.proxy_epochs.*-1"),
        (["data_pruning=grand", "data_pruning.keep=0.8", "data_pruning.offset=0.3"], r"data_pruning\.offset.*0\.3.*keep <= 1"),
        (["data_pruning=forgetting", "data_pruning.proxy_epochs=1"], r"data_pruning\.proxy_epochs.*1.*>= 2"),
        (["data_pruning=forgetting", "data_pruning.keep=0"], r"data_pruning\.keep.*0"),
        (["data_pruning=forgetting", "+data_pruning.offset=0.1"], r"offset"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validated(*overrides)


@pytest.mark.parametrize("rule,epochs", [("grand", 1), ("forgetting", 3)])
def test_rule_through_the_run_layer_trains_proxies_once_per_keep_sweep(tmp_path, rule, epochs):
    """Real proxies (the run layer's train_proxy, observed after each epoch for forgetting); the
    scores are cached beside the dense cache, so a second `keep` trains nothing."""
    import pandas as pd

    from prune_cli.run.data_selection import select_training_data
    from tests.helpers import counting_model_builder, proxy_scoring_splits

    build, built = counting_model_builder()
    data = proxy_scoring_splits()
    overrides = [
        "model=mlp",
        "model.widths=[8]",
        f"data_pruning={rule}",
        "data_pruning.proxies=2",
        f"data_pruning.proxy_epochs={epochs}",
        "train.batch_size=20",
        f"results_dir={tmp_path}",
    ]
    validated(*overrides)
    half = select_training_data(composed(*overrides, "data_pruning.keep=0.5"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 and len(half.train_y) == 30
    table = pd.read_csv(tmp_path / "data_pruning.csv")
    assert table.kept.sum() == 30 and table.available.tolist() == [20, 20, 20]
    assert f"mean_{rule}" in table.columns and table[f"mean_{rule}"].notna().all()
    third = select_training_data(composed(*overrides, "data_pruning.keep=0.3"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 and len(third.train_y) == 18  # loaded from the cache, no proxy trained
    assert len(list((tmp_path / "dense_cache" / "data_pruning").glob(f"{rule}-*.pt"))) == 1
