"""Pruning-limit formula on hand-computed toy spectra (docs/analysis.md), R(rho) against the project's
global magnitude pruner, epsilon, the actual-limit rule, L1 training, and the metric end to end."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tests.helpers import validated
from conftest import FAST, run_cli
from prune_cli.analysis.hessian import lanczos
from prune_cli.analysis.limit import actual_limits, crossing, distances, jensen_bound, loss_std, predicted_ratio, ratio_grid
from prune_cli.core.errors import ConfigError
from prune_cli.models.mlp import MLP
from prune_cli.pruning import PruneContext, prune
from prune_cli.training import train

T = torch.tensor


def test_predicted_ratio_toy_spectrum_by_hand():
    # nodes {1, 3}, weights {1/2, 1/2}, eps = 1/2 (2 eps = 1), R = 1:
    # rho = 1/2 * 1/(1+1) + 1/2 * 1/(1+3) = 0.375; with f = 0.2: 0.2 + 0.8 * 0.375 = 0.5
    nodes, weights = [T([1.0, 3.0], dtype=torch.float64)], [T([0.5, 0.5], dtype=torch.float64)]
    r = T([0.0, 1.0, 2.0], dtype=torch.float64)
    got = predicted_ratio(r, 0.5, nodes, weights)
    torch.testing.assert_close(got, T([1.0, 0.375, 0.5 / 5 + 0.5 / 13], dtype=torch.float64))
    assert float(predicted_ratio(T([1.0]), 0.5, nodes, weights, flat_fraction=0.2)[0]) == pytest.approx(0.5)
    # a negative eigenvalue counts by its absolute value (cal_gw: eigenvalue = abs(grid))
    neg = predicted_ratio(T([1.0]), 0.5, [T([-1.0, 3.0], dtype=torch.float64)], weights)
    assert float(neg[0]) == pytest.approx(0.375)
    # two probes are averaged
    two = predicted_ratio(T([1.0]), 0.5, nodes * 2, [weights[0], T([1.0, 0.0], dtype=torch.float64)])
    assert float(two[0]) == pytest.approx((0.375 + 0.5) / 2)


def test_predicted_ratio_is_one_at_zero_and_decreasing():
    gen = torch.Generator().manual_seed(0)
    nodes = [torch.rand(30, generator=gen, dtype=torch.float64) * 10]
    weights = [torch.softmax(torch.randn(30, generator=gen, dtype=torch.float64), 0)]
    r = torch.linspace(0, 20, 200, dtype=torch.float64)
    pred = predicted_ratio(r, 0.01, nodes, weights)
    assert float(pred[0]) == pytest.approx(1.0, abs=1e-12) and bool((pred[1:] < pred[:-1]).all())


@pytest.mark.parametrize("seed", range(5))
def test_jensen_bound_below_prediction_on_random_psd_spectra(seed):
    gen = torch.Generator().manual_seed(seed)
    lam = torch.rand(50, generator=gen, dtype=torch.float64) ** 3 * 100
    tau = torch.softmax(torch.randn(50, generator=gen, dtype=torch.float64), 0)
    r = torch.linspace(0, 5, 100, dtype=torch.float64)
    pred = predicted_ratio(r, 0.05, [lam], [tau], flat_fraction=0.1)
    bound = jensen_bound(r, 0.05, float((tau * lam).sum()), flat_fraction=0.1)
    assert bool((bound <= pred + 1e-12).all()) and float((pred - bound).max()) > 0.01


def test_self_consistent_ratio_is_the_analytic_crossing():
    # one node theta = 1, 2 eps = 1, R(rho) = 3 sqrt(rho): rho_pred = 1 / (1 + 9 rho);
    # crossing 9 rho^2 + rho - 1 = 0 -> rho = (sqrt(37) - 1) / 18
    rhos = ratio_grid(1000)
    pred = predicted_ratio(3 * rhos.sqrt(), 0.5, [T([1.0], dtype=torch.float64)], [T([1.0], dtype=torch.float64)])
    assert float(rhos[crossing(rhos, pred)]) == pytest.approx((math.sqrt(37) - 1) / 18, abs=1e-3)


def test_slq_on_a_diagonal_hessian_reproduces_spectral_means():
    lam = torch.linspace(0.01, 5.0, 200, dtype=torch.float64) ** 2
    gen = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(30):
        v0 = torch.randint(0, 2, (200,), generator=gen).double() * 2 - 1
        theta, tau = lanczos(lambda v: lam * v, v0, 40, gen)
        estimates.append(float((tau * 1.0 / (1.0 + theta)).sum()))
    want = float((1.0 / (1.0 + lam)).mean())
    assert sum(estimates) / len(estimates) == pytest.approx(want, rel=0.02)


def test_distances_match_the_project_global_magnitude_pruner(method_cfg):
    torch.manual_seed(0)
    model = MLP(6, [8, 5], 3)
    params = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    rhos = T([0.0, 0.1, 0.37, 0.5, 0.9, 0.99], dtype=torch.float64)
    got = distances(list(params.values()), rhos)
    for rho, r in zip(rhos, got):
        masks = prune(model, float(rho), PruneContext(method=method_cfg(allow_collapse=True), generator=torch.Generator()))
        removed = math.sqrt(sum(float((p.detach().double()[~masks[n]] ** 2).sum()) for n, p in params.items()))
        assert float(r) == pytest.approx(removed, rel=1e-9, abs=1e-12)


def test_actual_limits_rule():
    rhos = T([0.0, 0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    acc = T([0.900, 0.905, 0.899, 0.901, 0.5], dtype=torch.float64)
    out = actual_limits(rhos, acc, [0.0, 0.1, 50.0])
    assert out["strict"] == pytest.approx(0.6)  # largest ratio strictly above acc(0)
    assert out["tol_0pp"] == pytest.approx(0.6)
    assert out["tol_0.1pp"] == pytest.approx(0.6)
    assert out["tol_50pp"] == pytest.approx(0.8)
    assert actual_limits(rhos, T([0.9, 0.8, 0.8, 0.8, 0.8]), [0.0])["strict"] == 0.0


def test_epsilon_is_the_std_of_minibatch_losses(tiny_data):
    model = MLP(4, [6], 3)
    x, y = tiny_data.train_x, tiny_data.train_y
    eps = loss_std(model, x, y, 16, torch.Generator().manual_seed(3))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        losses = [float(nn.functional.cross_entropy(model(x[order[i : i + 16]]), y[order[i : i + 16]])) for i in range(0, len(y), 16)]
    mean = sum(losses) / len(losses)
    assert eps == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in losses) / len(losses)), rel=1e-6)


@pytest.mark.parametrize("l1_term", [5.0, 1000.0])
def test_a_constant_l1_term_leaves_epsilon_unchanged(tiny_data, l1_term):
    """The L1 term is the same for every minibatch, so the std of the objective equals the std of
    the cross-entropy alone. Added in float32 it would round every batch's objective to the grid
    of the (much larger) sum, 6e-5 apart at 1000, and change epsilon, a std of about 0.005, by
    percents; it must be added after the losses are in float64."""
    model = MLP(4, [6], 3)
    x, y = tiny_data.train_x, tiny_data.train_y
    eps = loss_std(model, x, y, 16, torch.Generator().manual_seed(3))
    with_l1 = loss_std(model, x, y, 16, torch.Generator().manual_seed(3), penalty=lambda: torch.tensor(l1_term))
    assert with_l1 == pytest.approx(eps, rel=1e-9)


def test_l1_term_adds_lr_times_coefficient_times_sign(tiny_data):
    """One full-batch SGD step (no momentum): the L1 run differs from the plain run by exactly
    -lr * l1 * sign(w) on the prunable layers' weights and not at all on the biases."""
    base = {
        "epochs": 1,
        "batch_size": 1000,
        "eval_batch_size": 1000,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
        "lr_schedule": "constant",
        "milestones": [],
        "gamma": 0.1,
        "warmup_epochs": 0,
    }
    runs = {}
    for l1 in (0.0, 0.05):
        torch.manual_seed(0)
        model = MLP(4, [6], 3).double()
        data = tiny_data
        data.train_x = data.train_x.double()
        data.val_x = data.val_x.double()
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        train(model, data, OmegaConf.create({**base, "l1": l1}), torch.Generator().manual_seed(0), "dense")
        runs[l1] = {n: p.detach() for n, p in model.named_parameters()}
    for name, w0 in start.items():
        diff = runs[0.05][name] - runs[0.0][name]
        want = -0.1 * 0.05 * torch.sign(w0) if name.endswith("weight") else torch.zeros_like(w0)
        torch.testing.assert_close(diff, want, rtol=0, atol=1e-12)


def test_pruning_limit_metric_end_to_end(tmp_path):
    run_cli(
        FAST
        + [
            "train.l1=1e-4",
            "metrics.pruning_limit.enabled=true",
            "metrics.pruning_limit.ratios=50",
            "metrics.pruning_limit.lanczos_iter=30",
            "metrics.pruning_limit.hutchinson_probes=4",
        ],
        tmp_path / "r",
    )
    df = pd.read_csv(tmp_path / "r" / "runs.csv")
    rows = df[df.metric.str.startswith("limit_")]
    assert set(rows.phase) == {"dense"}  # a property of the trained dense weights
    v = rows.set_index("metric").value
    assert v["limit_eps"] > 0 and 0 <= v["limit_rho_hat"] < 1
    assert v["limit_rho_hat_bound_abs"] <= v["limit_rho_hat"] + 1 / 50
    assert {"limit_actual_strict", "limit_actual_tol_0pp", "limit_actual_tol_1pp"} <= set(v.index)
    sweep = pd.read_csv(tmp_path / "r" / "pruning_limit_sweep.csv")
    assert len(sweep) == 50 and sweep.rho.iloc[0] == 0 and sweep.R.iloc[0] == 0
    assert (sweep.R.diff().dropna() >= 0).all() and (sweep.rho_pred.diff().dropna() <= 1e-12).all()
    dense_acc = df[(df.phase == "dense") & (df.metric == "accuracy") & (df.split == "test")].value.iloc[0]
    assert sweep.accuracy.iloc[0] == pytest.approx(dense_acc)  # ratio 0 is the dense model itself


@pytest.mark.parametrize(
    "override,key",
    [
        ("metrics.pruning_limit.ratios=1", "metrics.pruning_limit.ratios"),
        ("metrics.pruning_limit.flat_fraction=1.0", "metrics.pruning_limit.flat_fraction"),
        ("metrics.pruning_limit.tolerances=[-1]", "metrics.pruning_limit.tolerances"),
        ("train.l1=-0.1", "train.l1"),
    ],
)
def test_bad_pruning_limit_config_is_rejected(override, key):
    with pytest.raises(ConfigError) as err:
        validated([override])
    assert key in str(err.value)


def test_an_epsilon_batch_that_holds_the_whole_training_split_is_rejected():
    """epsilon is the spread of the loss over minibatches of the training split: with one batch
    (eps_batch_size >= the 162 training examples of this config) it was 0 and every predicted
    ratio sat at the first grid step, written as a result. It needs at least 2 batches; counted on
    the examples data pruning keeps, too."""
    from conftest import FAST

    args = [*FAST, "metrics.pruning_limit.enabled=true"]
    with pytest.raises(ConfigError, match=r"'metrics.pruning_limit.eps_batch_size'.*at most 161"):
        validated([*args, "metrics.pruning_limit.eps_batch_size=162"])
    validated([*args, "metrics.pruning_limit.eps_batch_size=161"])
    with pytest.raises(ConfigError, match=r"'metrics.pruning_limit.eps_batch_size'.*at most 15"):
        validated([*args, "metrics.pruning_limit.eps_batch_size=16", "data_pruning=random", "data_pruning.keep=0.1"])


def test_a_hessian_density_bandwidth_must_be_finite():
    """inf passed the `> 0` check and gave 1,500 rows of NaN in hessian_density.csv."""
    with pytest.raises(ConfigError, match="metrics.hessian.density_bandwidth"):
        validated(["metrics.hessian.enabled=true", "metrics.hessian.density_bandwidth=inf"])
