"""GP, UP and SNIP against their formulas with gradients from an explicit autograd call."""

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
from prune_cli.pruning.scores.gp import GPConfig, gp_scores
from prune_cli.pruning.scores.snip import SnipConfig, snip_scores
from prune_cli.pruning.scores.undecayed import UndecayedConfig, undecayed_scores
from prune_cli.run.prevalidate import validate_node
from tests.helpers import BNNet


def ctx_for(cfg_cls, data, **kw):
    m = OmegaConf.structured(cfg_cls(name="t", score="x", batch_size=len(data.train_y), **kw))
    return m, PruneContext(method=m, generator=torch.Generator().manual_seed(0), data=data)


def explicit_grads(model, data, train=True):
    """d CE / d w on the whole training split (one batch), by an explicit autograd call."""
    was = model.training
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(train)
    w = [model.net[0].weight, model.net[3].weight]
    g = torch.autograd.grad(F.cross_entropy(model(data.train_x), data.train_y), w)
    model.load_state_dict(state)
    model.train(was)
    return {"net.0.weight": g[0], "net.3.weight": g[1]}


def test_gp_is_abs_w_times_g_and_leaves_model_untouched(tiny_data):
    model = BNNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m, ctx = ctx_for(GPConfig, tiny_data)
    scores = gp_scores(model, select_prunable(model, m), ctx)
    g = explicit_grads(model, tiny_data, train=True)
    for name, p in select_prunable(model, m).items():
        torch.testing.assert_close(scores[name], (p.detach() * g[name]).abs())
    assert not model.training and all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # BatchNorm running statistics restored
        torch.testing.assert_close(v, before[k])


def test_gp_eval_mode_uses_running_statistics(tiny_data):
    model = BNNet()
    with torch.no_grad():
        model.net[1].running_mean.fill_(0.3)
    m, ctx = ctx_for(GPConfig, tiny_data, bn_mode="eval")
    scores = gp_scores(model, select_prunable(model, m), ctx)
    g = explicit_grads(model, tiny_data, train=False)
    torch.testing.assert_close(scores["net.0.weight"], (model.net[0].weight.detach() * g["net.0.weight"]).abs())
    assert model.training


def test_undecayed_formula_and_its_limits(tiny_data):
    model = BNNet()
    lam = 0.01
    m, ctx = ctx_for(UndecayedConfig, tiny_data, lam=lam)
    params = select_prunable(model, m)
    scores = undecayed_scores(model, params, ctx)
    g = explicit_grads(model, tiny_data)
    for name, p in params.items():
        w = p.detach()
        torch.testing.assert_close(scores[name], (-w * g[name] + lam * w**2).abs())
    m2, ctx2 = ctx_for(UndecayedConfig, tiny_data, lam=lam, score_abs=False)
    signed = undecayed_scores(model, params, ctx2)
    w = params["net.3.weight"].detach()
    torch.testing.assert_close(signed["net.3.weight"], -w * g["net.3.weight"] + lam * w**2)
    # lam = 0: UP is GP on the same batch, so the masks coincide.
    _, c0 = ctx_for(UndecayedConfig, tiny_data, lam=0.0)
    _, cg = ctx_for(GPConfig, tiny_data)
    up0 = undecayed_scores(model, params, c0)
    gp = gp_scores(model, params, cg)
    for name in params:
        torch.testing.assert_close(up0[name], gp[name])


def test_undecayed_decayed_stationary_point_ranks_like_magnitude(tiny_data):
    # At a stationary point of L + lam/2 |w|^2 the gradient is -lam * w, so UP = 2 lam w^2 (docs/scores.md):
    # fake that gradient with a loss whose gradient is exactly -lam * w.
    model = BNNet()
    lam = 0.05
    m, ctx = ctx_for(UndecayedConfig, tiny_data, lam=lam)
    params = select_prunable(model, m)
    w0 = {n: p.detach().clone() for n, p in params.items()}

    def fake_loss(out, y):
        return sum(-(lam / 2) * (params[n] ** 2).sum() for n in params) + 0 * out.sum()

    ctx = dataclasses.replace(ctx, loss_fn=fake_loss)  # the context is frozen
    scores = undecayed_scores(model, params, ctx)
    for name in params:
        torch.testing.assert_close(scores[name], 2 * lam * w0[name] ** 2)
    m.score = "undecayed"
    masks_up = prune(model, 0.5, PruneContext(method=m, generator=torch.Generator(), data=tiny_data, loss_fn=fake_loss))
    mag = OmegaConf.create({**OmegaConf.to_container(m), "score": "magnitude"})
    masks_mp = prune(model, 0.5, PruneContext(method=mag, generator=torch.Generator()))
    for name in masks_up:
        assert torch.equal(masks_up[name], masks_mp[name])


def test_snip_is_normalised_abs_g_times_w(tiny_data):
    model = BNNet()
    m, ctx = ctx_for(SnipConfig, tiny_data)
    params = select_prunable(model, m)
    scores = snip_scores(model, params, ctx)
    g = explicit_grads(model, tiny_data)
    raw = {n: (p.detach() * g[n]).abs() for n, p in params.items()}
    total = sum(r.sum() for r in raw.values())
    for name in params:
        torch.testing.assert_close(scores[name], raw[name] / total)


def test_several_batches_average_the_gradient(tiny_data):
    model = BNNet()
    m = OmegaConf.structured(GPConfig(name="t", score="gp", batches=2, batch_size=20, batch_seed=7))
    ctx = PruneContext(method=m, generator=torch.Generator(), data=tiny_data)
    params = select_prunable(model, m)
    scores = gp_scores(model, params, ctx)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(7))
    w = [params["net.0.weight"]]
    g = sum(
        torch.autograd.grad(F.cross_entropy(model(tiny_data.train_x[i]), tiny_data.train_y[i]) / 2, w)[0]
        for i in (order[:20], order[20:])
    )
    torch.testing.assert_close(scores["net.0.weight"], (w[0].detach() * g).abs())


def test_bad_options_are_config_errors():
    def cfg(**kw):
        base = OmegaConf.structured(UndecayedConfig(name="t", score="undecayed"))
        return OmegaConf.create({"method": OmegaConf.merge(base, kw)})

    with pytest.raises(ConfigError, match="method.batches"):
        validate_node(cfg(batches=0), "method")
    with pytest.raises(ConfigError, match="method.bn_mode.*sideways"):
        validate_node(cfg(bn_mode="sideways"), "method")
    with pytest.raises(ConfigError, match="method.lam"):
        validate_node(cfg(lam=-1.0), "method")


def test_cli_gradient_scores_reach_exact_sparsity(tmp_path):
    results = tmp_path / "r"
    run_cli(
        ["hydra.mode=MULTIRUN", *FAST, "method=gp,undecayed,snip,gradient_magnitude", "sparsity=0.75", "train.weight_decay=0.003"],
        results,
    )
    df = pd.read_csv(results / "runs.csv")
    got = df[(df.metric == "sparsity_prunable") & (df.phase == "finetuned")]
    assert sorted(got.method) == ["gp", "gradient_magnitude", "snip", "undecayed"]
    assert (got.value - 0.75).abs().max() < 1e-12
    # lam follows the training weight decay in the saved, resolved config.
    configs = [OmegaConf.load(p) for p in (results / "runs").glob("*/config.yaml")]
    assert [c.method.lam for c in configs if c.method.name == "undecayed"] == [0.003]


def test_score_without_its_options_is_a_config_error(method_cfg):
    with pytest.raises(ConfigError, match="method=gp"):
        validate_node(OmegaConf.create({"method": method_cfg(score="gp")}), "method")
