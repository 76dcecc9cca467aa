"""Training loop: masks stay exactly zero, LR schedules follow their formulas, divergence stops."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.training import TrainConfig
from prune_cli.core.errors import TrainingDiverged
from prune_cli.models.mlp import MLP
from prune_cli.training import evaluate, lr_factor, train


def train_cfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), kw)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pruned_weights_stay_exactly_zero(tiny_data, optimizer):
    torch.manual_seed(0)
    net = MLP(4, [16], 3)
    masks = {"net.1.weight": torch.rand(16, 4) > 0.7, "net.3.weight": torch.rand(3, 16) > 0.7}
    cfg = train_cfg(epochs=3, batch_size=8, optimizer=optimizer, lr=0.05, weight_decay=0.01, nesterov=False)
    train(net, tiny_data, cfg, torch.Generator().manual_seed(0), "finetuned", masks)
    for name, param in net.named_parameters():
        if name in masks:
            assert torch.all(param[~masks[name]] == 0)
            assert torch.all(param[masks[name]] != 0)


def test_lr_schedules_match_formulas():
    cos = train_cfg(epochs=10, lr_schedule="cosine")
    assert lr_factor(cos, 0) == pytest.approx(1.0)
    assert lr_factor(cos, 5) == pytest.approx(0.5)
    assert lr_factor(cos, 2.5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    step = train_cfg(epochs=10, lr_schedule="multistep", milestones=[3, 6], gamma=0.1)
    assert [lr_factor(step, e) for e in (0, 2.9, 3, 5.9, 6, 9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = train_cfg(epochs=10, lr_schedule="cosine", warmup_epochs=2)
    assert lr_factor(warm, 1.0) == pytest.approx(0.5)
    assert lr_factor(warm, 2.0) == pytest.approx(1.0)  # cosine starts after warm-up
    assert lr_factor(warm, 6.0) == pytest.approx(0.5)
    assert lr_factor(train_cfg(), 7.3) == 1.0


def test_divergence_names_the_epoch(tiny_data):
    torch.manual_seed(0)
    net = MLP(4, [16], 3)
    with torch.no_grad():
        net.net[1].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(net, tiny_data, train_cfg(epochs=2, batch_size=8), torch.Generator().manual_seed(0), "dense")


def test_training_learns_and_is_seed_deterministic(tiny_data):
    def fit(seed):
        torch.manual_seed(seed)
        net = MLP(4, [32], 3)
        history = train(net, tiny_data, train_cfg(epochs=15, batch_size=8, lr=0.1), torch.Generator().manual_seed(seed), "dense")
        return net, history

    net, h1 = fit(0)
    _, h2 = fit(0)
    assert [r["train_loss"] for r in h1] == [r["train_loss"] for r in h2]
    assert h1[-1]["train_loss"] < 0.5 * h1[0]["train_loss"]
    ev = evaluate(net, tiny_data.train_x, tiny_data.train_y, 16)
    assert (ev.predictions == ev.targets).float().mean() > 0.8


def test_training_steps_follow_the_lr_schedule(tiny_data):
    """The LR used by the last step of each epoch is base x factor(step / steps_per_epoch)."""
    torch.manual_seed(0)
    cfg = train_cfg(epochs=4, batch_size=8, lr=0.2, lr_schedule="cosine", warmup_epochs=1)
    history = train(MLP(4, [8], 3), tiny_data, cfg, torch.Generator().manual_seed(0), "dense")
    steps_per_epoch = 5  # 40 examples / batch 8
    for row in history:
        last_step = row["epoch"] * steps_per_epoch - 1
        assert row["lr"] == pytest.approx(0.2 * lr_factor(cfg, last_step / steps_per_epoch))


@pytest.mark.parametrize("node", ["train", "finetune"])
def test_nesterov_without_momentum_is_rejected_before_any_work(node):
    """Nesterov momentum needs momentum (Sutskever et al., ICML 2013): torch's SGD raises
    "Nesterov momentum requires a momentum and zero dampening" when the optimizer is built, i.e.
    after the dense phase's set-up; validation must stop it first, naming the key and the value."""
    from prune_cli.core.errors import ConfigError
    from tests.helpers import validated

    with pytest.raises(ConfigError, match=rf"{node}\.nesterov.*momentum > 0"):
        validated(f"{node}.momentum=0", f"{node}.nesterov=true")
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):  # the failure it prevents
        torch.optim.SGD(MLP(4, [4], 3).parameters(), lr=0.1, momentum=0.0, nesterov=True)
    validated(f"{node}.momentum=0.5", f"{node}.nesterov=true")
