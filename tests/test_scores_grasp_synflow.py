"""GraSP against an explicit Hessian-gradient product, SynFlow against its closed form on a
two-layer net (one round and the iterative loop), and end-to-end runs of both."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import FAST, run_cli
from prune_cli.core.errors import ConfigError
from prune_cli.pruning.pruner import PruneContext, prune, select_prunable
from prune_cli.pruning.scores.grasp import GraspConfig, grasp_scores
from prune_cli.pruning.scores.synflow import SynflowConfig, synflow_scores
from prune_cli.run.prevalidate import validate, validate_node
from tests.helpers import TwoLayer, composed, refused_before_any_work


@pytest.mark.parametrize("absolute", [False, True])
def test_grasp_equals_w_times_explicit_hessian_gradient_product(tiny_data, absolute):
    # The same number of training examples in every class, so that one full class-balanced batch
    # (samples_per_class = that number) takes every example.
    per = int(torch.bincount(tiny_data.train_y).min())
    keep = torch.cat([torch.nonzero(tiny_data.train_y == c).flatten()[:per] for c in range(3)])
    data = dataclasses.replace(tiny_data, train_x=tiny_data.train_x[keep], train_y=tiny_data.train_y[keep])
    model = TwoLayer()
    T = 3.0
    m = OmegaConf.structured(GraspConfig(name="t", score="grasp", samples_per_class=per, temperature=T, absolute=absolute))
    ctx = PruneContext(method=m, generator=torch.Generator().manual_seed(0), data=data)
    scores = grasp_scores(model, select_prunable(model, m), ctx)

    w1, b1 = model.net[0].weight.detach(), model.net[0].bias.detach()
    w2, b2 = model.net[2].weight.detach(), model.net[2].bias.detach()
    x, y = data.train_x, data.train_y  # the one batch holds every example
    n1 = w1.numel()

    def loss(flat):
        a, b = flat[:n1].view_as(w1), flat[n1:].view_as(w2)
        return F.cross_entropy(F.linear(F.relu(F.linear(x, a, b1)), b, b2) / T, y)

    flat = torch.cat([w1.flatten(), w2.flatten()])
    g = torch.autograd.functional.jacobian(loss, flat)
    hessian = torch.autograd.functional.hessian(loss, flat)
    expected = flat * (hessian @ g)
    expected = expected.abs() if absolute else expected
    torch.testing.assert_close(scores["net.0.weight"], expected[:n1].view_as(w1), rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(scores["net.2.weight"], expected[n1:].view_as(w2), rtol=1e-4, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())


def test_grasp_options_are_validated():
    def cfg(**kw):
        return OmegaConf.create({"method": OmegaConf.structured(GraspConfig(name="t", score="grasp", **kw))})

    with pytest.raises(ConfigError, match="method.temperature"):
        validate_node(cfg(temperature=0.0), "method")
    with pytest.raises(ConfigError, match="method.samples_per_class"):
        validate_node(cfg(samples_per_class=0), "method")
    with pytest.raises(ConfigError, match="'method.batch_seed': -1. Allowed: null or an integer"):
        validate_node(cfg(batch_seed=-1), "method")  # as every data-driven score (snip, gp, ...)


def test_grasp_refuses_a_negative_batch_seed_before_any_work(finished_results):
    # Before: snip refused method.batch_seed=-1, GraSP ran with it (torch wraps -1 to 2^64 - 1), exit 0.
    args = [*FAST, "method=grasp", "method.batch_seed=-1"]
    refused_before_any_work(args, finished_results, "'method.batch_seed': -1", "null or an integer")


# FAST: synthetic data of 3 classes x 60 examples, 6 of each held out for validation: 54 training
# examples per class. GraSP's batches are disjoint and class-balanced, each with samples_per_class
# examples of every class, so 54 // samples_per_class full batches fit (docs/scores.md).
@pytest.mark.parametrize(
    "options, key, allowed",
    [
        (["method.batches=1000"], "'method.batches': 1000", "at most 5"),  # before: refused only after dense training
        (["method.samples_per_class=50", "method.batches=2"], "'method.batches': 2", "at most 1"),  # before: a batch of 4 per class
        (["method.samples_per_class=55"], "'method.samples_per_class': 55", "at most 54"),  # before: 54 per class, silently
    ],
    ids=["batches", "partial-batch", "samples_per_class"],
)
def test_a_grasp_batch_request_the_training_split_cannot_fill_is_refused_by_the_prerun_pass(options, key, allowed):
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, "method=grasp", options))
    assert key in str(err.value) and allowed in str(err.value), str(err.value)


def test_grasp_batches_that_exactly_fill_the_smallest_class_are_accepted():
    validate(composed(FAST, "method=grasp", "method.batches=5"))  # 5 x 10 <= 54
    validate(composed(FAST, "method=grasp", "method.samples_per_class=54"))


def test_a_grasp_batch_request_beyond_the_data_stops_before_any_work(finished_results):
    # Before: exit 2 only after dense training, with runs/<id>/ holding model_dense.pt, state.pt, metrics.csv.
    refused_before_any_work([*FAST, "method=grasp", "method.batches=1000"], finished_results, "'method.batches': 1000", "at most 5")


def test_a_grasp_batch_request_a_random_subset_cannot_fill_stops_once_the_data_is_loaded(finished_results):
    # A random subset of 60 examples: the declared counts only bound the classes (54 each at most, so
    # 5 batches of 10 may fit); the loaded split (about 18 per class) decides, before any training.
    args = [*FAST, "dataset.max_train_samples=60", "method=grasp", "method.batches=5"]
    validate(composed(args))
    refused_before_any_work(args, finished_results, "'method.batches': 5", "at most 1")


def test_a_grasp_batch_request_data_pruning_leaves_unfillable_stops_before_dense_training(finished_results):
    # Random data pruning keeps 81 of the 162 examples: each class keeps at most 54 (5 batches may fit)
    # until the rule has chosen (here at least one class keeps fewer than 50); then, before dense training.
    args = [*FAST, "data_pruning=random", "data_pruning.keep=0.5", "method=grasp", "method.batches=5"]
    validate(composed(args))
    refused_before_any_work(args, finished_results, "'method.batches': 5", "at most 2")
    with pytest.raises(ConfigError, match="at most 16 examples of any class"):  # keep=0.1: 16 examples, certain
        validate(composed(FAST, "data_pruning=random", "data_pruning.keep=0.1", "method=grasp", "method.batches=2"))


def test_balanced_batches_refuse_a_batch_short_of_any_class(tiny_data):
    from prune_cli.pruning.scores.grasp import balanced_batches

    smallest = int(torch.bincount(tiny_data.train_y).min())
    ctx = PruneContext(method=None, generator=torch.Generator().manual_seed(0), data=tiny_data)
    assert len(balanced_batches(ctx, smallest, 1, seed=0)[0][1]) == 3 * smallest
    with pytest.raises(ConfigError, match="method.samples_per_class"):
        balanced_batches(ctx, smallest + 1, 1, seed=0)


def synflow_closed_form(w1, b1, w2):
    """R = 1^T (|W2| (|W1| 1 + |b1|) + |b2|): dR/d|W1|[k,j] = sum_o |W2|[o,k]; dR/d|W2|[o,k] = (|W1| 1 + |b1|)[k]."""
    s1 = w1.abs() * w2.abs().sum(0)[:, None]
    s2 = w2.abs() * (w1.abs().sum(1) + b1.abs())[None, :]
    return s1, s2


def test_synflow_one_round_matches_definition(tiny_data):
    model = TwoLayer(d=4, h=5, k=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = OmegaConf.structured(SynflowConfig(name="t", score="synflow"))
    ctx = PruneContext(method=m, generator=torch.Generator(), data=tiny_data)
    scores = synflow_scores(model, select_prunable(model, m), ctx)
    s1, s2 = synflow_closed_form(model.net[0].weight.detach(), model.net[0].bias.detach(), model.net[2].weight.detach())
    top = max(s1.max(), s2.max())  # scores are reported relative to the largest one
    torch.testing.assert_close(scores["net.0.weight"], s1 / top)
    torch.testing.assert_close(scores["net.2.weight"], s2 / top)
    for k, v in model.state_dict().items():  # signs and values of the real model untouched
        assert torch.equal(v, before[k])
    assert not model.training


def test_synflow_iterative_rounds_follow_the_exponential_schedule(tiny_data):
    model = TwoLayer(d=4, h=5, k=3, seed=2)
    w1, b1, w2 = (t.detach().clone() for t in (model.net[0].weight, model.net[0].bias, model.net[2].weight))
    rounds, density = 3, 0.25
    m = OmegaConf.structured(SynflowConfig(name="t", score="synflow", rounds=rounds, allocation="global", allow_collapse=True))
    masks = prune(model, 1 - density, PruneContext(method=m, generator=torch.Generator(), data=tiny_data))
    # Independent loop: closed-form scores on the masked weights, one global top-k per round.
    m1, m2 = torch.ones_like(w1, dtype=torch.bool), torch.ones_like(w2, dtype=torch.bool)
    n = w1.numel() + w2.numel()
    for r in range(1, rounds + 1):
        s1, s2 = synflow_closed_form(w1 * m1, b1, w2 * m2)
        flat = torch.cat([s1.masked_fill(~m1, -float("inf")).flatten(), s2.masked_fill(~m2, -float("inf")).flatten()])
        keep = torch.zeros(n, dtype=torch.bool)
        keep[torch.sort(flat, descending=True, stable=True).indices[: round(density ** (r / rounds) * n)]] = True
        m1, m2 = keep[: w1.numel()].view_as(w1), keep[w1.numel() :].view_as(w2)
    assert torch.equal(masks["net.0.weight"], m1) and torch.equal(masks["net.2.weight"], m2)
    assert int(m1.sum() + m2.sum()) == round(density * n)


def test_cli_init_scores_reach_exact_sparsity(tmp_path):
    results = tmp_path / "r"
    run_cli(["hydra.mode=MULTIRUN", *FAST, "method=grasp,synflow", "sparsity=0.75"], results)
    df = pd.read_csv(results / "runs.csv")
    got = df[(df.metric == "sparsity_prunable") & (df.phase == "finetuned")]
    assert sorted(got.method) == ["grasp", "synflow"]
    assert (got.value - 0.75).abs().max() < 1e-12
