"""Membership inference: AUC against brute-force pair counting, 0.5 for identically distributed
members/non-members, clearly above 0.5 for an overfit model; the metric's wiring."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.data.splits import DataSplits
from tests.helpers import metric_context
from prune_cli.metrics import METRICS
from prune_cli.analysis.membership import auc, balanced_accuracy, best_threshold, membership_attack
from prune_cli.models.mlp import MLP


def _auc_pairs(m, n):
    """P(member > non-member) + P(tie)/2 by comparing every pair."""
    m, n = np.asarray(m)[:, None], np.asarray(n)[None, :]
    return float(((m > n).sum() + 0.5 * (m == n).sum()) / (m.size * n.size))


def test_auc_against_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        m, n = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)
        assert auc(m, n) == pytest.approx(_auc_pairs(m, n), abs=1e-12)
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0


def test_best_threshold_by_hand():
    members, nonmembers = np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.1, 0.3, 0.2, 0.75])
    tau = best_threshold(members, nonmembers)
    # only tau in (0.3, 0.6] reaches (4/4 + 3/4) / 2; the midpoint of the gap is taken
    assert tau == pytest.approx(0.45)
    assert balanced_accuracy(members, nonmembers, tau) == pytest.approx(0.875)
    grid = np.linspace(0, 1, 1001)
    assert max(balanced_accuracy(members, nonmembers, t) for t in grid) == pytest.approx(0.875)


def test_identically_distributed_members_and_nonmembers_give_auc_one_half():
    torch.manual_seed(0)
    model = MLP(10, [32], 4)  # never trained on either set: both are just samples of one distribution
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4000, 10, generator=g), torch.randint(0, 4, (4000,), generator=g)
    out = membership_attack(model, (x[:2000], y[:2000]), (x[2000:], y[2000:]), seed=0)
    assert abs(out["mia_loss_auc"] - 0.5) < 0.04
    assert abs(out["mia_confidence_auc"] - 0.5) < 0.04
    assert abs(out["mia_loss_accuracy"] - 0.5) < 0.05


def test_overfit_model_leaks_membership():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(256, 10, generator=g), torch.randint(0, 4, (256,), generator=g)  # random labels
    members, nonmembers = (x[:128], y[:128]), (x[128:], y[128:])
    model = MLP(10, [256], 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(members[0]), members[1]).backward()
        opt.step()
    out = membership_attack(model, members, nonmembers, seed=0)
    assert out["mia_member_loss"] < out["mia_nonmember_loss"]
    assert out["mia_loss_auc"] > 0.8 and out["mia_confidence_auc"] > 0.6
    assert out["mia_loss_accuracy"] > 0.7


def test_metric_rows_and_own_generator():
    torch.manual_seed(0)
    model = MLP(3, [8], 2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 3, generator=g), torch.randint(0, 2, (100,), generator=g)
    data = DataSplits(x[:60], y[:60], x[:0], y[:0], x[60:], y[60:], num_classes=2)
    exp = metric_context(model, data, eval_batch_size=16)
    node = OmegaConf.create({"num_samples": 1000, "sample_seed": 0})
    state = torch.get_rng_state()
    out = METRICS.get("membership")(exp, "pruned", node)
    assert torch.equal(state, torch.get_rng_state())
    values = {r["metric"]: r["value"] for r in out.scalars}
    assert all(r["split"] == "membership" for r in out.scalars)
    assert values["mia_num_samples"] == 40  # capped by the 40 test examples
    assert {"mia_loss_auc", "mia_loss_accuracy", "mia_confidence_auc", "mia_confidence_accuracy"} <= set(values)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(data.test_x), data.test_y)
    assert values["mia_nonmember_loss"] == pytest.approx(float(loss), rel=1e-5)  # all 40 test examples


def test_a_split_too_small_to_attack_says_so(caplog):
    """A test split of one example: the metric returned no rows and the log said nothing, while the
    run's config says membership.enabled=true (metrics audit). The log now says why no row is there."""
    import logging

    torch.manual_seed(0)
    model = MLP(3, [8], 2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(61, 3, generator=g), torch.randint(0, 2, (61,), generator=g)
    data = DataSplits(x[:60], y[:60], x[:0], y[:0], x[60:], y[60:], num_classes=2)
    node = OmegaConf.create({"num_samples": 1000, "sample_seed": 0})
    with caplog.at_level(logging.WARNING):
        out = METRICS.get("membership")(metric_context(model, data, eval_batch_size=16), "pruned", node)
    assert out.scalars == [] or not out.scalars
    assert "membership: not computed in phase pruned: 60 training and 1 test examples" in caplog.text, caplog.text


class _ClassPrior(torch.nn.Module):
    """Logits that ignore the input: every example's loss is a function of its label only, so the model
    carries no membership information at all."""

    def forward(self, x):
        return torch.tensor([[2.0, 0.5, 0.0]]).expand(len(x), 3)


def test_members_and_nonmembers_have_the_same_class_counts():
    """The training split is long-tailed (90/10/5) and the test split balanced (20 each): members drawn
    uniformly from training were mostly class 0, whose loss is lowest, and a model with no membership
    information scored an AUC far from 0.5 (audit: 0.28-0.71 for untrained models on long-tailed data).
    Non-members now match the members class by class (quotas in proportion to the training classes, each
    at most what both splits hold), so a loss that depends on the class alone ties member and non-member
    exactly: AUC 1/2 for both attacks."""
    y_train = torch.tensor([0] * 90 + [1] * 10 + [2] * 5)
    y_test = torch.tensor([0, 1, 2] * 20)
    data = DataSplits(torch.zeros(105, 3), y_train, torch.zeros(0, 3), y_train[:0], torch.zeros(60, 3), y_test, num_classes=3)
    node = OmegaConf.create({"num_samples": 1000, "sample_seed": 0})
    values = {r["metric"]: r["value"] for r in METRICS.get("membership")(metric_context(_ClassPrior(), data), "dense", node).scalars}
    assert values["mia_num_samples"] == 20 + 10 + 5  # class 0: the 20 the test split has; 1 and 2: all of training's
    assert values["mia_loss_auc"] == 0.5 and values["mia_confidence_auc"] == 0.5
    assert values["mia_member_loss"] == pytest.approx(values["mia_nonmember_loss"], rel=1e-12)


def test_class_quotas_follow_the_training_split_within_num_samples():
    """num_samples 30 of the same splits: 30 in proportion 90:10:5 is 25.7/2.9/1.4, class 0 capped at the
    test split's 20 and the other 10 shared 10:5 (6.7/3.3 -> 7/3), largest remainders first."""
    from prune_cli.metrics.membership import class_matched_counts

    assert class_matched_counts([90, 10, 5], [20, 20, 20], 30) == [20, 7, 3]
    assert class_matched_counts([90, 10, 5], [20, 0, 20], 1000) == [20, 0, 5]  # no non-member of class 1: no member either


def test_a_model_with_nan_outputs_has_no_attack_accuracy_not_zero():
    """A NaN threshold made `member iff score >= tau` false for every example: balanced accuracy 0.0, which
    the report reads as the most leakage there is (audit of 2026-12-03); like the AUC it is no value."""

    class NaNs(torch.nn.Module):
        def forward(self, x):
            return torch.full((len(x), 3), float("nan"))

    x, y = torch.randn(10, 4), torch.arange(10) % 3
    out = membership_attack(NaNs(), (x, y), (x + 1, y))
    assert all(np.isnan(out[f"mia_{s}_{k}"]) for s in ("loss", "confidence") for k in ("auc", "accuracy")), out
