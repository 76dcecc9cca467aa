"""Lookahead pruning against independent computations: Frobenius distortion of the linear
operator of a small block when one weight is zeroed (FC, conv, conv->linear, BatchNorm),
hand formulas for the activation / sequential / normalised variants, and end-to-end runs."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import FAST, run_cli
from prune_cli.data.splits import DataSplits
from prune_cli.pruning.pruner import PruneContext, prune, select_prunable
from prune_cli.pruning.scores.lookahead import LookaheadConfig, lookahead_scores
from tests.helpers import Chain


def method(**kw):
    return OmegaConf.structured(LookaheadConfig(name="t", score="lookahead", allocation="layerwise", **kw))


def lap(model, data=None, **kw):
    m = method(**kw)
    ctx = PruneContext(method=m, generator=torch.Generator().manual_seed(0), model=model, data=data)
    return lookahead_scores(model, select_prunable(model, m), ctx)


def operator(block: nn.Module, in_shape) -> torch.Tensor:
    """The matrix of a linear (bias-free) block, from its action on the standard basis."""
    n = int(torch.tensor(in_shape).prod())
    with torch.no_grad():
        return block(torch.eye(n).view(n, *in_shape)).flatten(1)


def distortions(block: nn.Module, weight: torch.Tensor, in_shape) -> torch.Tensor:
    """||M - M(w_i = 0)||_F^2 for every entry w_i of `weight` (a parameter inside `block`)."""
    full = operator(block, in_shape)
    out = torch.empty(weight.numel())
    flat = weight.data.view(-1)
    for i in range(weight.numel()):
        keep = flat[i].item()
        flat[i] = 0.0
        out[i] = ((full - operator(block, in_shape)) ** 2).sum()
        flat[i] = keep
    return out.view_as(weight)


def seeded(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_fc_middle_layer_equals_three_layer_frobenius_distortion():
    model = seeded(Chain(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)))
    scores = lap(model)
    expected = distortions(model.net, model.net[1].weight, (5,))
    torch.testing.assert_close(scores["net.1.weight"], expected, rtol=1e-4, atol=1e-5)
    # First layer: prev factor 1 -> distortion of the two-layer block W2 W1; last: of W3 W2.
    torch.testing.assert_close(scores["net.0.weight"], distortions(model.net[:2], model.net[0].weight, (5,)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scores["net.2.weight"], distortions(model.net[1:], model.net[2].weight, (4,)), rtol=1e-4, atol=1e-5)


def test_single_layer_net_is_magnitude():
    model = seeded(Chain(nn.Linear(6, 3)))
    torch.testing.assert_close(lap(model)["net.0.weight"], model.net[0].weight.detach() ** 2)


def test_conv_middle_layer_frobenius_distortion_with_circular_padding():
    # 1x1 -> 3x3 (circular) -> 1x1 convs: zeroing one 3x3 tap shifts a rank-one channel map over
    # all S = 16 positions, so the operator distortion is S times the LAP score.
    model = seeded(
        Chain(
            nn.Conv2d(2, 3, 1, bias=False),
            nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False),
            nn.Conv2d(4, 2, 1, bias=False),
        )
    )
    scores = lap(model)
    expected = distortions(model.net, model.net[1].weight, (2, 4, 4))
    torch.testing.assert_close(16 * scores["net.1.weight"], expected, rtol=1e-4, atol=1e-4)


def test_conv_filter_energies_match_loops():
    model = seeded(Chain(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3)))
    w0, w1, w2 = (model.net[i].weight.detach() for i in range(3))
    expected = torch.empty_like(w1)
    for o in range(4):
        for c in range(3):
            prev = sum(float(w0[c, cc, h, w]) ** 2 for cc in range(2) for h in range(3) for w in range(3))
            nxt = sum(float(w2[oo, o, h, w]) ** 2 for oo in range(2) for h in range(3) for w in range(3))
            expected[o, c] = w1[o, c] ** 2 * prev * nxt
    torch.testing.assert_close(lap(model)["net.1.weight"], expected, rtol=1e-5, atol=1e-6)


def test_conv_to_linear_transition_frobenius_distortion():
    # 1x1 convs on a 2x3 map (S = 6), flatten (channel-major), linear.
    model = seeded(
        Chain(nn.Conv2d(2, 3, 1, bias=False), nn.Conv2d(3, 4, 1, bias=False), nn.Flatten(), nn.Linear(4 * 6, 5, bias=False))
    )
    scores = lap(model)
    conv_expected = distortions(model.net, model.net[1].weight, (2, 2, 3))
    torch.testing.assert_close(scores["net.1.weight"], conv_expected, rtol=1e-4, atol=1e-4)
    lin_expected = distortions(model.net[1:], model.net[3].weight, (3, 2, 3))
    torch.testing.assert_close(scores["net.3.weight"], lin_expected, rtol=1e-4, atol=1e-4)


def test_unsupported_feature_mapping_raises():
    from prune_cli.core.errors import PruneCliError

    model = seeded(Chain(nn.Linear(4, 3), nn.Linear(5, 2)))  # not a valid chain: 3 outputs, 5 inputs
    with pytest.raises(PruneCliError, match="LAP supports"):
        lap(model)


def _data(n=32, d=4, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long()
    return DataSplits(x, y, x[:4], y[:4], x[:4], y[:4], num_classes=k)


def test_bn_variant_equals_distortion_of_bn_scaled_operator():
    bn = nn.BatchNorm1d(3)
    model = seeded(Chain(nn.Linear(4, 3, bias=False), bn, nn.ReLU(), nn.Linear(3, 2, bias=False)))
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
        bn.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
    scores = lap(model, data=_data(), bn=True)
    b = bn.weight.detach() / torch.sqrt(bn.running_var + 1e-10)
    w1, w2 = model.net[0].weight.detach(), model.net[3].weight.detach()

    def dist(which):  # operator W2 diag(b) W1 with one entry of W1 or W2 zeroed
        full = w2 @ torch.diag(b) @ w1
        target = w1 if which == 0 else w2
        out = torch.empty_like(target)
        for idx in torch.cartesian_prod(*[torch.arange(s) for s in target.shape]).tolist():
            a, c = w1.clone(), w2.clone()
            (a if which == 0 else c)[tuple(idx)] = 0
            out[tuple(idx)] = ((full - c @ torch.diag(b) @ a) ** 2).sum()
        return out

    torch.testing.assert_close(scores["net.0.weight"], dist(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scores["net.3.weight"], dist(1), rtol=1e-4, atol=1e-5)
    plain = lap(model)  # lap without bn ignores the BatchNorm
    torch.testing.assert_close(plain["net.3.weight"], w2**2 * (w1**2).sum(1)[None, :])


def test_activation_variant_rescales_rows_by_sqrt_firing_probability():
    data = _data(n=40)
    model = seeded(Chain(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), seed=3)
    scores = lap(model, data=data, activation=True, act_batches=1, act_batch_size=40)
    w1, b1, w2 = model.net[0].weight.detach(), model.net[0].bias.detach(), model.net[2].weight.detach()
    p = ((data.train_x @ w1.T + b1) > 0).float().mean(0)  # exact firing probability per hidden unit
    w1s = w1 * p.sqrt()[:, None]
    torch.testing.assert_close(scores["net.0.weight"], w1s**2 * (w2**2).sum(0)[:, None])
    torch.testing.assert_close(scores["net.2.weight"], w2**2 * (w1s**2).sum(1)[None, :])
    assert model.training  # mode restored


def _topk_mask(s, k):
    flat = s.flatten()
    m = torch.zeros_like(flat, dtype=torch.bool)
    m[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    return m.view_as(s)


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_sequential_modes_use_the_already_pruned_neighbour(mode):
    model = seeded(Chain(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)))
    w = [model.net[i].weight.detach().clone() for i in range(3)]
    density = 0.5
    m = method(mode=mode)
    ctx = PruneContext(method=m, generator=torch.Generator(), model=model, density=density)
    scores = lookahead_scores(model, select_prunable(model, m), ctx)

    def score(i):
        s = w[i] ** 2
        if i > 0:
            s = s * (w[i - 1] ** 2).sum(1)[None, :]
        if i < 2:
            s = s * (w[i + 1] ** 2).sum(0)[:, None]
        return s

    for i in range(3) if mode == "forward" else (2, 1, 0):
        expected = score(i)
        torch.testing.assert_close(scores[f"net.{i}.weight"], expected)
        w[i] = w[i] * _topk_mask(expected, round(density * w[i].numel()))
    # The base score of the second layer differs (its neighbour is not pruned yet).
    base = lap(model)["net.1.weight"]
    assert not torch.allclose(base, scores["net.1.weight"])


def test_global_normalize_divides_each_layer_by_its_norm():
    model = seeded(Chain(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)))
    base, norm = lap(model), lap(model, normalize=True)
    for name in base:
        torch.testing.assert_close(norm[name], base[name] / base[name].norm())


def test_resnet_chain_in_module_order():
    from prune_cli.models.resnet import CifarResNet

    model = CifarResNet(20, 3, 10)
    scores = lap(model)
    named = dict(model.named_parameters())
    w, prev, nxt = named["layer2.0.conv1.weight"], named["layer1.2.conv2.weight"], named["layer2.0.conv2.weight"]
    expected = (
        w.detach() ** 2
        * (prev.detach() ** 2).sum((1, 2, 3))[None, :, None, None]
        * (nxt.detach() ** 2).sum((0, 2, 3))[:, None, None, None]
    )
    torch.testing.assert_close(scores["layer2.0.conv1.weight"], expected)


def test_lfp_prunes_to_exact_layer_counts_through_the_pruner():
    model = seeded(Chain(nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)))
    ctx = PruneContext(method=method(mode="forward"), generator=torch.Generator())
    masks = prune(model, 0.5, ctx)
    assert [int(m.sum()) for m in masks.values()] == [10, 6, 3]


def test_cli_lookahead_variants_reach_exact_sparsity(tmp_path):
    results = tmp_path / "r"
    run_cli(["hydra.mode=MULTIRUN", *FAST, "method=lookahead,lap_global_normalize,mp_global_normalize", "sparsity=0.75"], results)
    df = pd.read_csv(results / "runs.csv")
    got = df[(df.metric == "sparsity_prunable") & (df.phase == "finetuned")]
    assert sorted(got.method) == ["lap_global_normalize", "lookahead", "mp_global_normalize"]
    assert (got.value - 0.75).abs().max() < 1e-12


def test_bad_lookahead_options_are_config_errors():
    from prune_cli.core.errors import ConfigError
    from prune_cli.run.prevalidate import validate_node

    with pytest.raises(ConfigError, match="method.mode.*sideways"):
        validate_node(OmegaConf.create({"method": method(mode="sideways")}), "method")
    bad = method(mode="forward")
    bad.allocation = "global"
    with pytest.raises(ConfigError, match="method.allocation"):
        validate_node(OmegaConf.create({"method": bad}), "method")
    with pytest.raises(ConfigError, match="method.act_batches"):
        validate_node(OmegaConf.create({"method": method(act_batches=0)}), "method")


def test_activation_variant_on_convs_sums_sqrt_probability_over_positions():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(24, 6, generator=g)
    d = DataSplits(x, (x[:, 0] > 0).long(), x[:2], x[:2, 0].long(), x[:2], x[:2, 0].long(), num_classes=2)
    conv = nn.Conv1d(1, 2, 3)

    class Net(Chain):
        def forward(self, inp):
            return self.net(inp.unsqueeze(1))

    model = seeded(Net(conv, nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4, 2)), seed=6)
    scores = lap(model, data=d, activation=True, act_batches=1, act_batch_size=24)
    with torch.no_grad():
        p = (conv(x.unsqueeze(1)) > 0).float().mean(0)  # [channel, position]
    scale = p.sqrt().sum(1)  # sum over the 4 positions
    wc, wl = conv.weight.detach() * scale[:, None, None], model.net[3].weight.detach()
    nxt = (wl**2).sum(0).view(2, 4).sum(1)
    torch.testing.assert_close(scores["net.0.weight"], wc**2 * nxt[:, None, None])
    torch.testing.assert_close(scores["net.3.weight"], wl**2 * (wc**2).sum((1, 2)).repeat_interleave(4)[None, :])


@pytest.mark.parametrize("faithful", [False, True])
def test_bn_flatten_mapping(faithful):
    bn = nn.BatchNorm1d(3)

    class Net(Chain):
        def forward(self, inp):
            return self.net(inp.view(-1, 1, 2))

    model = seeded(Net(nn.Conv1d(1, 3, 1, bias=False), bn, nn.ReLU(), nn.Flatten(), nn.Linear(6, 2, bias=False)))
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([1.0, 4.0, 9.0]))
        bn.weight.fill_(1.0)
    x = torch.randn(8, 2)
    d = DataSplits(x, torch.zeros(8, dtype=torch.long), x, x[:, 0].long(), x, x[:, 0].long(), num_classes=2)
    scores = lap(model, data=d, bn=True, faithful_bn_flatten=faithful)
    b2 = 1.0 / (bn.running_var + 1e-10)
    f = torch.arange(6)
    channel_of_bn = f // 3 if faithful else f // 2  # reference quirk: f // C; correct: f // S (S = 2)
    energy = (model.net[0].weight.detach() ** 2).flatten(1).sum(1)[f // 2]
    expected = model.net[4].weight.detach() ** 2 * (energy * b2[channel_of_bn])[None, :]
    torch.testing.assert_close(scores["net.4.weight"], expected)


def test_mp_global_normalize_ranks_layers_by_relative_magnitude():
    model = seeded(Chain(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False)))
    with torch.no_grad():
        model.net[1].weight.mul_(100.0)  # plain global magnitude would keep only this layer
    m = OmegaConf.create(
        {"name": "t", "score": "mp_global_normalize", "allocation": "global", "structure": "unstructured", "exclude": [], "rounds": 1}
    )
    masks = prune(model, 0.5, PruneContext(method=m, generator=torch.Generator()))
    w0, w1 = (model.net[i].weight.detach().abs() for i in range(2))
    flat = torch.cat([(w0 / w0.norm()).flatten(), (w1 / w1.norm()).flatten()])
    keep = torch.zeros(18, dtype=torch.bool)
    keep[torch.sort(flat, descending=True, stable=True).indices[:9]] = True
    assert torch.equal(torch.cat([masks["net.0.weight"].flatten(), masks["net.1.weight"].flatten()]), keep)


def test_invert_with_the_sequential_modes_is_rejected():
    """LFP/LBP score each layer against its neighbours' masks, built keeping the highest scores:
    method.invert then kept the lowest in the final masks while the chain had assumed the highest
    (the scores were identical with and without it)."""
    from prune_cli.core.errors import ConfigError
    from tests.helpers import validated

    lap = ["method=lookahead", "method.allocation=layerwise"]
    for mode in ("forward", "backward"):
        with pytest.raises(ConfigError, match=r"'method.invert'.*method.mode=base"):
            validated(*lap, f"method.mode={mode}", "method.invert=true")
    validated(*lap, "method.mode=base", "method.invert=true")
