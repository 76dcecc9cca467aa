"""Empirical NTK against an explicit per-sample autograd loop; the NTK-parameterised MLP and the
random-pruning rescale claims (Yang & Wang, AISTATS 2023); the `ntk` metric end to end."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tests.helpers import validated
from conftest import FAST, run_cli
from helpers import random_pruning_ntk, unit_scaled_inputs
from prune_cli.analysis.ntk import empirical_ntk, kernel_comparison
from prune_cli.core.errors import ConfigError
from prune_cli.models import build_model
from prune_cli.models.masks import apply_masks
from prune_cli.models.ntk_mlp import NTKLinear, NTKMLP
from prune_cli.pruning import PruneContext, prune


def explicit_ntk(model: nn.Module, x: torch.Tensor, masks: dict, output: str, index: int = 0) -> torch.Tensor:
    """One autograd.grad call per input (and per logit): the textbook definition, no torch.func."""
    params = dict(model.named_parameters())
    model.eval()
    rows = []  # rows[i][k] = flattened (masked) gradient of output k at input i
    for xi in x:
        out = model(xi.unsqueeze(0)).squeeze(0)
        targets = {"sum": [out.sum()], "index": [out[index]], "trace": list(out)}[output]
        grads_i = []
        for t in targets:
            g = torch.autograd.grad(t, list(params.values()), retain_graph=True)
            flat = torch.cat([(gi * masks[n] if n in masks else gi).flatten() for n, gi in zip(params, g)])
            grads_i.append(flat)
        rows.append(torch.stack(grads_i))
    n = len(x)
    return torch.tensor(
        [[sum(float(rows[i][k] @ rows[j][k]) for k in range(rows[i].shape[0])) for j in range(n)] for i in range(n)],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("output", ["sum", "index", "trace"])
def test_ntk_matches_per_sample_autograd_loop(output):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    masks = {"2.weight": torch.rand(4, 5) > 0.5}
    with torch.no_grad():
        model[2].weight.mul_(masks["2.weight"])
    got = empirical_ntk(model, x, masks=masks, output=output, output_index=2)
    want = explicit_ntk(model, x, masks, output, index=2)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_kernel_comparison_by_hand():
    ref = torch.tensor([[2.0, 1.0], [1.0, 4.0]])
    theta = torch.tensor([[1.0, 1.0], [1.0, 2.0]])
    cmp = kernel_comparison(theta, ref)
    assert cmp["rel_dist"] == pytest.approx(math.sqrt(1 + 4) / math.sqrt(4 + 1 + 1 + 16))
    assert cmp["mean_ratio"] == pytest.approx((0.5 + 1 + 1 + 0.5) / 4)
    assert cmp["trace_ratio"] == pytest.approx(3 / 6)


def test_ntk_linear_forward_is_the_ntk_parameterisation():
    torch.manual_seed(1)
    layer = NTKLinear(8, 3, sigma_w=1.7, rescale=True)
    mask = torch.rand(3, 8) < 0.25
    with torch.no_grad():
        w = layer.weight.clone()
        layer.weight.mul_(mask)
    x = torch.randn(4, 8)
    q = mask.float().mean()
    torch.testing.assert_close(layer(x), (x @ (mask * w).T) * 1.7 / torch.sqrt(8 * q))
    layer.rescale = False
    torch.testing.assert_close(layer(x), (x @ (mask * w).T) * 1.7 / math.sqrt(8))
    big = NTKLinear(400, 300)
    assert abs(float(big.weight.detach().std()) - 1.0) < 0.01 and big.bias is None


def test_ntk_mlp_registered_and_reads_density_from_its_mask(method_cfg):
    cfg = OmegaConf.create({"name": "ntk_mlp", "widths": [64, 32], "sigma_w": math.sqrt(2), "sigma_b": 0.0, "rescale": True})
    model = build_model(cfg, (16,), 3)
    assert isinstance(model, NTKMLP) and model.classifier == "net.5"
    masks = prune(
        model,
        0.75,
        PruneContext(
            method=method_cfg(score="random", allocation="layerwise", sampling="bernoulli"), generator=torch.Generator().manual_seed(5)
        ),
    )
    apply_masks(model, masks)
    layer = model.net[3]
    q = float(masks["net.3.weight"].float().mean())
    assert 0.15 < q < 0.35
    assert float(layer.keep_prob(layer.weight)) == pytest.approx(q)


def _mean(width, p, seeds=(0, 1)):
    runs = [random_pruning_ntk(width, 3, p, s) for s in seeds]
    return {arm: {k: sum(r[arm][k] for r in runs) / len(runs) for k in ("rel_dist", "mean_ratio")} for arm in ("rescale", "none")}


def test_random_pruning_rescale_claims_moderate_width():
    """The paper's margins: no rescale -> mean ratio within +-50 % of q^L (L = 3); with the 1/sqrt(q)
    multiplier the distance shrinks with width and grows with p."""
    small, large = _mean(128, 0.5), _mean(1024, 0.5)
    for res in (small, large):
        assert 0.5 * 0.5**3 < res["none"]["mean_ratio"] < 1.5 * 0.5**3
        assert res["none"]["rel_dist"] > 0.8
    assert large["rescale"]["rel_dist"] < small["rescale"]["rel_dist"]
    assert large["rescale"]["rel_dist"] < 0.2
    high_p = _mean(1024, 0.9)
    assert 0.5 * 0.1**3 < high_p["none"]["mean_ratio"] < 1.5 * 0.1**3
    assert high_p["rescale"]["rel_dist"] > large["rescale"]["rel_dist"]


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_random_pruning_rescale_width_4096(p):
    res = random_pruning_ntk(4096, 3, p, 0)
    assert res["rescale"]["rel_dist"] < 0.3
    assert res["none"]["rel_dist"] > 0.8
    assert 0.5 * (1 - p) ** 3 < res["none"]["mean_ratio"] < 1.5 * (1 - p) ** 3


def test_unit_scaled_inputs():
    x = unit_scaled_inputs(6, 16, 0)
    torch.testing.assert_close(x.norm(dim=1) ** 2, torch.full((6,), 16.0))


def test_ntk_metric_end_to_end_with_ntk_mlp(tmp_path):
    """model=ntk_mlp with Bernoulli random pruning through prune-run; the metric writes its rows."""
    args = [a for a in FAST if not a.startswith("model")] + [
        "model=ntk_mlp",
        "model.widths=[32]",
        "method=random",
        "method.sampling=bernoulli",
        "sparsity=0.5",
        "train.lr=0.01",
        "finetune.lr=0.01",
        "metrics.ntk.enabled=true",
        "metrics.ntk.num_inputs=6",
        "metrics.ntk.output=trace",
    ]
    run_cli(args, tmp_path / "r")
    df = pd.read_csv(tmp_path / "r" / "runs.csv")
    ntk = df[df.metric.str.startswith("ntk_")]
    assert set(ntk.phase) == {"dense", "pruned", "finetuned"} and (ntk.split == "test").all()
    dense = ntk[ntk.phase == "dense"].set_index("metric").value
    assert dense["ntk_rel_dist_dense"] == 0 and dense["ntk_trace_ratio"] == 1 and dense["ntk_frobenius"] > 0
    assert dense["ntk_num_inputs"] == 6  # the kernel's size (the Frobenius norm grows with it)
    pruned = ntk[ntk.phase == "pruned"].set_index("metric").value
    assert pruned["ntk_rel_dist_dense"] > 0


@pytest.mark.parametrize(
    "override,key",
    [
        ("metrics.ntk.output=logits", "metrics.ntk.output"),
        ("metrics.ntk.num_inputs=0", "metrics.ntk.num_inputs"),
        ("metrics.ntk.split=holdout", "metrics.ntk.split"),
        ("model.sigma_w=0", "model.sigma_w"),
    ],
)
def test_bad_ntk_config_is_rejected(override, key):
    with pytest.raises(ConfigError) as err:
        validated(["model=ntk_mlp", override])
    assert key in str(err.value)


def test_channel_pruning_of_ntk_mlp_with_the_rescale_is_refused():
    """The rescale divides by sqrt(q), q the layer's density: the keep probability of every unit's fan-in
    under random unstructured pruning (Yang & Wang 2023). Channel pruning keeps whole units with their
    whole fan-in, so 1/sqrt(q) inflated a kept unit's preactivation variance: measured here by hand, the
    mean square of the kept units' preactivations rises by about 1/q, while unstructured random pruning
    keeps it. Such a run was accepted; it is refused, naming method.structure."""
    cfg = OmegaConf.create({"name": "ntk_mlp", "widths": [1024], "sigma_w": math.sqrt(2), "sigma_b": 0.0, "rescale": True})
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    second_moment = {}
    for structure in ("unstructured", "channel"):
        model = build_model(cfg, (64,), 1)
        first = next(m for m in model.modules() if isinstance(m, NTKLinear))
        keep = torch.rand(first.weight.shape[0], generator=torch.Generator().manual_seed(1)) < 0.5  # half the units
        mask = keep[:, None].expand_as(first.weight) if structure == "channel" else torch.rand(first.weight.shape) < 0.5
        with torch.no_grad():
            first.weight.mul_(mask)
            pre = first(x)
        rows = keep if structure == "channel" else torch.ones_like(keep)
        second_moment[structure] = float(pre[:, rows].pow(2).mean())
    assert second_moment["unstructured"] == pytest.approx(2.0 * x.pow(2).mean().item(), rel=0.1)  # sigma_w^2 E[x^2]
    assert second_moment["channel"] == pytest.approx(2 * second_moment["unstructured"], rel=0.15)  # 1/q, q ~ 1/2
    overrides = ["model=ntk_mlp", "method.structure=channel", "method.allocation=layerwise", "method.sparsity_tolerance=0.05"]
    with pytest.raises(ConfigError) as err:
        validated([*overrides, "sparsity=0.5"])
    assert err.value.key == "method.structure" and "model.rescale=false" in str(err.value)
    validated([*overrides, "sparsity=0.5", "model.rescale=false"])


def test_the_mean_ratio_of_a_kernel_to_itself_is_one_even_with_zero_entries():
    """A narrow ReLU net without biases has kernel entries exactly 0 (inputs where every unit is off);
    the entrywise ratio was 0/0 there, so the dense phase's ntk_mean_ratio was NaN where docs/analysis.md
    promises 1 (metrics audit). Entries where the reference kernel is 0 are left out of the mean."""
    from prune_cli.analysis.ntk import kernel_comparison

    reference = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    assert kernel_comparison(reference, reference) == {"rel_dist": 0.0, "mean_ratio": 1.0, "trace_ratio": 1.0}
    halved = kernel_comparison(reference / 2, reference)
    assert halved["mean_ratio"] == 0.5
