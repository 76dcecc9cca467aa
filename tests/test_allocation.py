"""Allocations against hand computation and ERK fixtures computed with RigL's get_sparsities_erdos_renyi (Evci et al. 2020)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.run.prevalidate import validate
from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import ALLOCATIONS, PruneContext, prune, select_prunable
from prune_cli.pruning.allocations.erk import erk_densities
from prune_cli.models.masks import save_masks
from tests.conftest import FAST, run_cli
from tests.helpers import method_options, composed

BASE = {"allocation": "layerwise"}  # the rest: tests/helpers.py method_options


def method(**kw):
    return method_options(**{**BASE, **kw})


def ctx_for(model, **kw):
    return PruneContext(method=method(**kw), generator=torch.Generator().manual_seed(0), model=model)


def zero_scores(model):
    return {f"{n}.weight": torch.zeros_like(m.weight) for n, m in model.prunable_layers()}


def kept(masks):
    return {n: int(m.sum()) for n, m in masks.items()}


# --------------------------------------------------------------------------- ERK fixtures (RigL's code)

OPTION_A = {  # d: (first conv, fc, 3x3 16->16, 3x3 32->32, 3x3 64->64)
    0.05: (0.517, 1.0, 0.147, 0.068, 0.033),
    0.10: (1.0, 1.0, 0.303, 0.139, 0.067),
    0.20: (1.0, 1.0, 0.618, 0.285, 0.136),
}
PROJECTION = {  # d: (first, fc, 16->16, 32->32, 64->64, shortcut 16->32, shortcut 32->64)
    0.05: (0.475, 0.949, 0.135, 0.062, 0.030, 0.801, 0.393),
    0.10: (0.983, 1.0, 0.280, 0.129, 0.062, 1.0, 0.813),
    0.20: (1.0, 1.0, 0.594, 0.273, 0.131, 1.0, 1.0),
}


@pytest.mark.parametrize("d", sorted(OPTION_A))
def test_erk_resnet20_option_a_fixture(d):
    model = CifarResNet(20, 3, 10)
    shapes = {f"{n}.weight": m.weight.shape for n, m in model.prunable_layers()}
    assert sum(math.prod(s) for s in shapes.values()) == 268_336
    dens = erk_densities(shapes, d)
    first, fc, s16, s32, s64 = OPTION_A[d]
    assert dens["conv1.weight"] == pytest.approx(first, abs=6e-4)
    assert dens["fc.weight"] == pytest.approx(fc, abs=6e-4)
    assert dens["layer1.1.conv1.weight"] == pytest.approx(s16, abs=6e-4)
    assert dens["layer2.1.conv1.weight"] == pytest.approx(s32, abs=6e-4)
    assert dens["layer3.1.conv1.weight"] == pytest.approx(s64, abs=6e-4)
    total = sum(dens[n] * math.prod(s) for n, s in shapes.items())
    assert total == pytest.approx(d * 268_336, rel=1e-12)
    # integer counts through the registered allocation: sum of kept = round(d N) exactly
    counts = ALLOCATIONS.get("erk")(zero_scores(model), d, ctx_for(model))
    assert sum(counts.values()) == round(d * 268_336)
    assert all(0 <= counts[n] <= math.prod(s) for n, s in shapes.items())


@pytest.mark.parametrize("d", sorted(PROJECTION))
def test_erk_projection_shortcut_fixture(d):
    shapes = {"first": (16, 3, 3, 3), "fc": (10, 64), "sc1": (32, 16, 1, 1), "sc2": (64, 32, 1, 1)}
    plan = [(16, 16)] * 6 + [(32, 16)] + [(32, 32)] * 5 + [(64, 32)] + [(64, 64)] * 5
    for i, (o, c) in enumerate(plan):
        shapes[f"c{i}"] = (o, c, 3, 3)
    shapes = {n: torch.Size(s) for n, s in shapes.items()}
    assert sum(math.prod(s) for s in shapes.values()) == 270_896
    dens = erk_densities(shapes, d)
    want = dict(zip(["first", "fc", "c1", "c8", "c14", "sc1", "sc2"], PROJECTION[d]))
    for name, value in want.items():
        assert dens[name] == pytest.approx(value, abs=6e-4), name
    assert sum(dens[n] * math.prod(s) for n, s in shapes.items()) == pytest.approx(d * 270_896, rel=1e-12)


# --------------------------------------------------------------------------- hand-computed allocations


def small_mlp():
    return MLP(4, [8, 8], 2)  # net.1 [8,4] N=32, net.3 [8,8] N=64, net.5 [2,8] N=16; N=112


def test_er_hand_computed():
    model = small_mlp()
    # raw pi = (n_in+n_out)/(n_in n_out): 0.375, 0.25, 0.625. d=0.5: eps = 56/38, no layer capped;
    # densities 0.5526, 0.3684, 0.9211 -> 17.68, 23.58, 14.74 -> largest remainders -> 18, 23, 15
    counts = ALLOCATIONS.get("er")(zero_scores(model), 0.5, ctx_for(model))
    assert list(counts.values()) == [18, 23, 15]
    # d=0.7: eps*0.625 > 1 -> classifier dense; eps = (0.7*96 - 0.3*16)/28; densities 0.8357, 0.5571, 1
    counts = ALLOCATIONS.get("er")(zero_scores(model), 0.7, ctx_for(model))
    assert list(counts.values()) == [27, 35, 16]


def test_er_ignores_kernel_erk_uses_it():
    shapes = {"a": torch.Size((8, 4, 3, 3)), "b": torch.Size((16, 8, 3, 3))}
    er = erk_densities(shapes, 0.3, kernel=False)
    erk = erk_densities(shapes, 0.3, kernel=True)
    # ER ratio a/b = ((4+8)/32) / ((8+16)/128) = 2; ERK ratio = (18/288) / (30/1152) = 2.4
    assert er["a"] / er["b"] == pytest.approx(2.0)
    assert erk["a"] / erk["b"] == pytest.approx(2.4)


def test_uniform_plus_hand_computed():
    model = small_mlp()
    # d=0.5 >= 0.2: first layer dense (32); the others share 56-32=24 of 80 weights: d'=0.3
    # -> 19.2 and 4.8 -> 19, 5
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(model), 0.5, ctx_for(model))
    assert list(counts.values()) == [32, 19, 5]
    big = MLP(2, [4, 1000], 2)  # 8, 4000, 2000 weights; N = 6008
    # d=0.1 < 0.2: first dense (8), classifier at 0.2 (400), middle gets round(600.8) - 408 = 193
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(big), 0.1, ctx_for(big))
    assert list(counts.values()) == [8, 193, 400]
    # faithful (Random_Pruning code): d' = (600.8 - 408) / 6008 -> round(0.03209 * 4000) = 128
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(big), 0.1, ctx_for(big, faithful_uniform_plus=True))
    assert list(counts.values()) == [8, 128, 400]


def test_uniform_plus_unreachable_density_is_explained():
    model = small_mlp()
    with pytest.raises(PruneCliError, match="uniform_plus at density 0.1"):
        ALLOCATIONS.get("uniform_plus")(zero_scores(model), 0.1, ctx_for(model))


def test_uniform_plus_with_no_middle_layer_explains_an_unreachable_target(tmp_path):
    """A first layer and a classifier only (audit of 2026-12-03): with the classifier held at 0.2 no other
    layer is left to take the rest, so the target is reachable only if the two hold it exactly. 8 -> 300 ->
    4: 2400 + 1200 weights; at density 0.5 (1800) the dense first layer alone holds 2400. The pre-run check
    passed (the missing layers' density read as 0) and the allocation died in the rounding, "cannot place
    ... kept weights"."""
    from helpers import refused_before_any_work

    from prune_cli.pruning.allocations.uniform_plus import check_uniform_plus_density

    model = MLP(8, [300], 4)
    selected = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    for density in (0.3, 0.5, 0.6):  # 0.6 * 3600 = 2160 < 2400 + 0.2 * 1200
        with pytest.raises(ConfigError, match="no other layer"):
            check_uniform_plus_density(model, selected, OmegaConf.create({"faithful_uniform_plus": False}), density)
        with pytest.raises(PruneCliError, match="no other layer"):
            ALLOCATIONS.get("uniform_plus")(zero_scores(model), density, ctx_for(model))
    # 0.8: 2880 >= 2400 + 240, the classifier takes (2880 - 2400) / 1200 = 0.4: reachable
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(model), 0.8, ctx_for(model))
    assert list(counts.values()) == [2400, 480]
    args = [*FAST, "model.widths=[16]", "method.allocation=uniform_plus", "sparsity=0.5"]
    refused_before_any_work(args, tmp_path / "results", "'sparsity'", "no other layer")
    # with the first layer excluded only the classifier is fixed: the message names it alone and does not
    # suggest the exclusion that is set (review of 2026-12-03); 2-16-3: the classifier's 0.2 x 48 > 0.15 x 48
    proc = run_cli([*args[:-1], "sparsity=0.85", "method.exclude_first=true"], tmp_path / "results", check=False)
    assert proc.returncode == 2 and "the 0.2-density classifier holds 10 of the 7 weights" in proc.stderr, proc.stderr
    assert "dense first layer" not in proc.stderr and "exclude_first" not in proc.stderr, proc.stderr


def test_erk_plus_hand_computed():
    model = small_mlp()
    # classifier dense (16); others at d' = (56-16)/96; ERK over 32 and 64 weights: eps = 40/28
    # -> 0.5357*32 = 17.14, 0.3571*64 = 22.86 -> 17, 23
    counts = ALLOCATIONS.get("erk_plus")(zero_scores(model), 0.5, ctx_for(model, fc_density=1.0))
    assert list(counts.values()) == [17, 23, 16]
    with pytest.raises(ConfigError, match="method.fc_density"):
        ALLOCATIONS.get("erk_plus")(zero_scores(model), 0.05, ctx_for(model, fc_density=1.0))


def test_erk_plus_at_an_early_event_keeps_the_other_layers_dense():
    """A schedule's early events (gradual's first at sparsity 0, SynFlow's first of 100 rounds) are at a
    density the other layers cannot hold beside a classifier at fc_density: at 0.95 with fc_density 0.25 they
    would need (0.95 * 112 - 4) / 96 = 1.067. Every gradual run with fc_density < 1 failed there after dense
    training. The others are now dense and the classifier keeps the rest of round(0.95 * 112) = 106: 10."""
    model = small_mlp()  # 32, 64 and a 16-weight classifier
    assert list(ALLOCATIONS.get("erk_plus")(zero_scores(model), 0.95, ctx_for(model, fc_density=0.25)).values()) == [32, 64, 10]
    assert list(ALLOCATIONS.get("erk_plus")(zero_scores(model), 1.0, ctx_for(model, fc_density=0.25)).values()) == [32, 64, 16]


def test_explicit_densities_exact():
    torch.manual_seed(0)
    model = small_mlp()
    masks = prune(model, 0.5, ctx_for(model, allocation="explicit", layer_densities=[1.0, 0.25, 0.5]))
    assert kept(masks) == {"net.1.weight": 32, "net.3.weight": 16, "net.5.weight": 8}
    with pytest.raises(ConfigError, match="method.layer_densities"):
        prune(model, 0.5, ctx_for(model, allocation="explicit", layer_densities=[0.5, 0.5]))
    # the experiment selects the prunable layers before training: the length is checked there
    with pytest.raises(ConfigError, match="a list of 3 densities"):
        select_prunable(model, method(allocation="explicit", layer_densities=[0.5]))
    with pytest.raises(PruneCliError, match="layer_densities imply"):
        prune(model, 0.7, ctx_for(model, allocation="explicit", layer_densities=[1.0, 0.25, 0.5]))


@pytest.mark.parametrize("sampling", ["exact", "bernoulli"])
@pytest.mark.parametrize("allocation", ["er", "erk"])
def test_random_er_erk_with_both_samplings(allocation, sampling):
    model = MLP(20, [200, 200], 10)
    ctx = ctx_for(model, score="random", allocation=allocation, sampling=sampling)
    masks = prune(model, 0.9, ctx)
    want = ALLOCATIONS.get(allocation)(zero_scores(model), 0.1, ctx_for(model))
    for name, k in want.items():
        n = masks[name].numel()
        if sampling == "exact":
            assert int(masks[name].sum()) == k
        else:  # Bernoulli: mean k, std sqrt(n p (1-p)); allow 5 std
            p = k / n
            assert abs(int(masks[name].sum()) - k) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_matched_method_copies_global_magnitude_counts():
    torch.manual_seed(1)
    model = small_mlp()
    # brute force: the 40 largest |w| over all layers, counted per layer
    flat = [
        (float(m.weight.detach().abs().flatten()[i]), f"{n}.weight")
        for n, m in model.prunable_layers()
        for i in range(m.weight.numel())
    ]
    top = sorted(flat, key=lambda t: -t[0])[:40]
    want = {f"{n}.weight": sum(1 for _, name in top if name == f"{n}.weight") for n, _ in model.prunable_layers()}
    masks = prune(
        model, 1 - 40 / 112, ctx_for(model, score="random", allocation="matched", match_method="magnitude", match_allocation="global")
    )
    assert kept(masks) == want
    magnitude = prune(model, 1 - 40 / 112, ctx_for(model, allocation="global"))
    assert any(not torch.equal(masks[n], magnitude[n]) for n in masks)  # positions are random


def test_matched_method_uses_that_methods_config_and_allocation():
    """match_method names a method config: mp_global_normalize (global ranking of |w| / ||w_l||)."""
    torch.manual_seed(2)
    model = small_mlp()
    ws = {f"{n}.weight": m.weight.detach().abs() for n, m in model.prunable_layers()}
    pool = [(float(w.flatten()[i] / w.norm()), n) for n, w in ws.items() for i in range(w.numel())]
    top = sorted(pool, key=lambda t: -t[0])[:56]
    want = {n: sum(1 for _, name in top if name == n) for n in ws}
    masks = prune(model, 0.5, ctx_for(model, score="random", allocation="matched", match_method="mp_global_normalize"))
    assert kept(masks) == want
    # options that interpolate the run's config (undecayed's lam = ${train.weight_decay}) resolve here
    matched = {"name": "t", "score": "random", "allocation": "matched", "match_method": "undecayed"}
    root = OmegaConf.create({"train": {"weight_decay": 5e-4}, "method": matched})
    from prune_cli.data.splits import DataSplits

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = DataSplits(
        x[:20], (x[:20, 0] > 0).long(), x[20:26], (x[20:26, 0] > 0).long(), x[26:], (x[26:, 0] > 0).long(), num_classes=2
    )
    masks = prune(model, 0.5, PruneContext(method=root.method, generator=torch.Generator().manual_seed(0), data=data))
    assert sum(kept(masks).values()) == 56


def test_matched_masks_file(tmp_path):
    model = small_mlp()
    other = {"net.1.weight": torch.rand(8, 4) < 0.9, "net.3.weight": torch.rand(8, 8) < 0.3, "net.5.weight": torch.rand(2, 8) < 0.6}
    other["net.3.weight"][0, 0] = True
    save_masks(other, tmp_path / "masks.pt")
    total = sum(int(m.sum()) for m in other.values())
    masks = prune(model, 1 - total / 112, ctx_for(model, score="random", allocation="matched", match_masks=str(tmp_path / "masks.pt")))
    assert kept(masks) == kept(other)
    with pytest.raises(PruneCliError, match="matched masks have a different sparsity"):
        prune(model, 0.99, ctx_for(model, score="random", allocation="matched", match_masks=str(tmp_path / "masks.pt")))
    with pytest.raises(ConfigError, match="method.match_masks"):
        prune(model, 0.5, ctx_for(model, score="random", allocation="matched", match_masks=str(tmp_path / "no.pt")))


# --------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["method.allocation=explicit"], "method.layer_densities"),
        (["method.allocation=explicit", "method.layer_densities=[0.5,1.5]"], "method.layer_densities"),
        (["method.layer_densities=[0.5]"], "method.layer_densities"),
        (["method.allocation=matched"], "method.match_masks / method.match_method"),
        (["method.allocation=matched", "method.match_method=nosuch"], "method.match_method"),
        (["method.allocation=matched", "method.match_method=magnitude", "method.match_allocation=matched"], "method.match_allocation"),
        (["method.match_method=magnitude"], "method.match_method"),
        (["method.allocation=erkk"], "method.allocation"),
        (["method.allocation=erk", "method.erk_power=0"], "method.erk_power"),  # ErkOptions.check
        (["method.allocation=erk_plus", "method.fc_density=2"], "method.fc_density"),  # ErkPlusOptions.check
        (["method.sparsity_tolerance=-1"], "method.sparsity_tolerance"),
    ],
)
def test_bad_allocation_config(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(composed(*overrides))
    assert err.value.key == key


# --------------------------------------------------------------------------- end to end


def test_cli_erk_achieves_target(tmp_path):
    run_cli([*FAST, "method=random", "method.allocation=erk", "sparsity=0.8"], tmp_path / "r")
    df = pd.read_csv(next((tmp_path / "r" / "runs").glob("*/metrics.csv")))
    got = df[(df.metric == "sparsity_prunable") & (df.phase.isin(["pruned", "finetuned"]))]["value"]
    n = 2 * 16 + 16 * 16 + 16 * 3  # FAST: 2 inputs, widths [16, 16], 3 classes
    assert len(got) == 2 and all(v == pytest.approx(1 - round(0.2 * n) / n, abs=1e-12) for v in got)
    assert set(df.allocation) == {"erk"}


# --------------------------------------------------------------------------- thresholding rules (docs/allocation.md)


def test_threshold_impls_against_numpy_and_hand_rules():
    import numpy as np

    g = torch.Generator().manual_seed(3)
    model = MLP(5, [7], 3)  # 35 + 21 weights
    with torch.no_grad():
        for _, m in model.prunable_layers():
            m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    pool = np.concatenate([m.weight.detach().abs().numpy().ravel() for _, m in model.prunable_layers()])
    for d in (0.3, 0.55):
        masks = prune(
            model, 1 - d, ctx_for(model, allocation="global", threshold_impl="shrinkbench_quantile", sparsity_tolerance=0.05)
        )
        thr = np.quantile(pool, 1 - d)
        assert sum(kept(masks).values()) == int((pool >= thr).sum())
        for n, m in model.prunable_layers():
            w = m.weight.detach().abs().numpy()
            assert np.array_equal(masks[f"{n}.weight"].numpy(), w >= thr)
    # layerwise shrinkbench: per-layer quantile
    masks = prune(model, 0.6, ctx_for(model, threshold_impl="shrinkbench_quantile", sparsity_tolerance=0.05))
    for n, m in model.prunable_layers():
        w = m.weight.detach().abs().numpy()
        assert np.array_equal(masks[f"{n}.weight"].numpy(), w >= np.quantile(w, 0.6))


def test_strict_kth_prunes_ties_and_one_weight_at_zero_sparsity():
    model = MLP(2, [2], 2)  # 4 + 4 weights
    with torch.no_grad():
        model.net[1].weight.copy_(torch.tensor([[1.0, 2.0], [2.0, 3.0]]))
        model.net[3].weight.copy_(torch.tensor([[2.0, 5.0], [6.0, 7.0]]))
    # rho = 0.25: n_prune = ceil(2) = 2; 2nd smallest = 2.0; keep > 2 strictly: 3, 5, 6, 7 (ties at 2 pruned)
    masks = prune(model, 0.25, ctx_for(model, allocation="global", threshold_impl="strict_kth", sparsity_tolerance=0.5))
    assert masks["net.1.weight"].tolist() == [[False, False], [False, True]]
    assert masks["net.3.weight"].tolist() == [[False, True], [True, True]]
    # rho = 0: one weight is still pruned (LOMP's max(1, ...))
    masks = prune(model, 0.0, ctx_for(model, allocation="global", threshold_impl="strict_kth", sparsity_tolerance=0.2))
    assert sum(kept(masks).values()) == 7
    # topk keeps exactly round(d N) = 6 of 8 with index tie-break: of the three 2.0s (flat indices 1, 2, 4
    # of the pool) the two lower-index ones are kept
    masks = prune(model, 0.25, ctx_for(model, allocation="global"))
    assert masks["net.1.weight"].tolist() == [[False, True], [True, True]]
    assert masks["net.3.weight"].tolist() == [[False, True], [True, True]]


def test_threshold_impl_only_with_global_or_layerwise():
    with pytest.raises(ConfigError) as err:
        validate(composed("method.allocation=erk", "method.threshold_impl=strict_kth"))
    assert err.value.key == "method.threshold_impl"
    with pytest.raises(ConfigError) as err:
        validate(composed("method.threshold_impl=median"))
    assert err.value.key == "method.threshold_impl"


def test_threshold_impl_with_channel_structure_is_refused():
    """Channel pruning keeps the unit fraction whose kept count is closest to the target (a fact of the
    layer shapes) and never reads the allocation's counts, which the threshold rule sets: strict_kth made
    the same masks as topk under another run id. Refused as with N:M."""
    overrides = ["model=cnn1d", "method.structure=channel", "method.allocation=layerwise", "method.sparsity_tolerance=0.05"]
    with pytest.raises(ConfigError) as err:
        validate(composed(*overrides, "method.threshold_impl=strict_kth"))
    assert err.value.key == "method.threshold_impl" and "channel" in str(err.value)
    validate(composed(*overrides))


def test_fixed_final_allocations_need_a_single_pruning_event():
    for overrides, key in [
        (["method.allocation=explicit", "method.layer_densities=[0.5,0.5,0.5]", "schedule=iterative"], "method.allocation"),
        (["method.structure=nm", "method.allocation=layerwise", "sparsity=0.5", "schedule=lottery_ticket"], "method.structure"),
        (["method=random", "method.allocation=matched", "method.match_masks=/x/masks.pt", "method.rounds=3"], "method.match_masks"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate(composed(*overrides))
        assert err.value.key == key, overrides


def test_erk_at_full_density_and_gradual_start():
    model = small_mlp()
    assert erk_densities({n: s.shape for n, s in zero_scores(model).items()}, 1.0) == {
        "net.1.weight": 1.0,
        "net.3.weight": 1.0,
        "net.5.weight": 1.0,
    }
    masks = prune(model, 0.0, ctx_for(model, score="random", allocation="erk"))
    assert all(bool(m.all()) for m in masks.values())


def test_uniform_plus_that_cannot_reach_the_sparsity_is_rejected_before_any_data(tmp_path):
    """The default MLP on MNIST-1D (40 -> 100 -> 100 -> 10 by default): with the first layer dense and the
    classifier at 0.2, the other layers need density (d N - N_first - 0.2 N_fc) / N_middle >= 0. The
    limit computed here by hand from the layer shapes decides which sparsities validate; before, 0.9 was
    refused only after dense training."""
    from helpers import composed, validated

    from prune_cli.core.errors import ConfigError
    from prune_cli.pruning import select_prunable
    from prune_cli.run.prevalidate import checked_model

    cfg = composed("method.allocation=uniform_plus")
    shapes = [tuple(p.shape) for p in select_prunable(checked_model(cfg).model, cfg.method).values()]
    sizes = [a * b for a, b in shapes]
    n_first, n_fc, n_all = sizes[0], sizes[-1], sum(sizes)
    d_min = (n_first + 0.2 * n_fc) / n_all  # below 0.2 density the classifier is fixed at 0.2
    assert d_min < 0.2
    # just inside the limit the middle layers keep about 1e-6 x N_all weights, none: reachable, but a layer
    # collapse, refused as such unless method.allow_collapse=true
    validated("method.allocation=uniform_plus", f"sparsity={1 - d_min - 1e-6}", "method.allow_collapse=true")
    with pytest.raises(ConfigError, match=r"'sparsity'.*net\.3\.weight would keep none"):
        validated("method.allocation=uniform_plus", f"sparsity={1 - d_min - 1e-6}")
    with pytest.raises(ConfigError, match=r"'sparsity'.*uniform_plus at density"):
        validated("method.allocation=uniform_plus", f"sparsity={1 - d_min + 1e-6}", "method.allow_collapse=true")
    # the faithful variant never refuses a target it cannot reach
    validated("method.allocation=uniform_plus", "method.faithful_uniform_plus=true", "sparsity=0.99", "method.allow_collapse=true")
    proc = run_cli(["method.allocation=uniform_plus", "sparsity=0.9"], tmp_path / "results", check=False)
    assert proc.returncode == 2 and "'sparsity': 0.9" in proc.stderr and not (tmp_path / "results").exists()


@pytest.mark.parametrize("rounds", [2, 3])
def test_bernoulli_over_rounds_reaches_the_target_not_the_product_of_the_rounds(rounds):
    """Each round's Bernoulli draw kept a weight with probability k/n over all n weights and was
    ANDed with the earlier mask, so the densities multiplied: 0.9 in 3 rounds ended at 0.99 (only a
    warning, as Bernoulli runs may miss the target). Among the weights still alive, a round keeps k
    of them on average: k/alive each."""
    model = MLP(20, [200, 200], 10)
    ctx = ctx_for(model, score="random", allocation="layerwise", sampling="bernoulli", rounds=rounds)
    masks = prune(model, 0.9, ctx)
    kept, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
    p = 0.1  # binomial spread of the last round's draw: a few hundred weights at most
    assert abs(kept - p * total) <= 5 * math.sqrt(total * p * (1 - p)) + len(masks)


def test_matched_masks_of_another_sparsity_and_a_useless_match_allocation_stop_before_the_run(tmp_path):
    """A masks.pt of a 0.9 run matched at sparsity 0.5 failed after dense training; a
    method.match_allocation beside match_masks was silently ignored (the file fixes every count)."""
    from tests.helpers import validated

    from prune_cli.models import build_model

    cfg = validated("dataset=synthetic", "model=mlp", "model.widths=[16,16]")
    model = build_model(cfg.model, (2,), 3)
    masks = {f"{n}.weight": torch.rand_like(m.weight) < 0.1 for n, m in model.prunable_layers()}
    total = sum(m.numel() for m in masks.values())
    sparsity = 1 - sum(int(m.sum()) for m in masks.values()) / total
    save_masks(masks, tmp_path / "masks.pt")
    base = ["dataset=synthetic", "model=mlp", "model.widths=[16,16]", "method=random", "method.allocation=matched"]
    base += [f"method.match_masks={tmp_path / 'masks.pt'}"]
    with pytest.raises(ConfigError, match=r"'sparsity'.*the sparsity of method.match_masks"):
        validated(*base, "sparsity=0.5")
    validated(*base, f"sparsity={sparsity}")
    with pytest.raises(ConfigError, match=r"'method.match_allocation'"):
        validated(*base, f"sparsity={sparsity}", "method.match_allocation=layerwise")


def test_erk_plus_classifier_density_is_checked_before_the_run():
    """At sparsity 0.99 the dense classifier leaves the other layers a negative density: found after
    dense training before, like uniform_plus's case it is found by the pre-run pass now. With the
    classifier excluded, method.fc_density was silently ignored (plain ERK)."""
    from tests.helpers import validated

    base = ["dataset=synthetic", "model=mlp", "model.widths=[16,16]", "method.allocation=erk_plus"]
    with pytest.raises(ConfigError, match=r"'method.fc_density'.*would get -"):
        validated(*base, "sparsity=0.99")
    validated(*base, "sparsity=0.5")
    with pytest.raises(ConfigError, match=r"'method.fc_density'.*classifier is not pruned"):
        validated(*base, "sparsity=0.5", "method.exclude_classifier=true", "method.fc_density=0.3")
    validated(*base, "sparsity=0.5", "method.exclude_classifier=true")


def test_explicit_densities_that_imply_another_sparsity_stop_before_the_run():
    """layer_densities [1.0, 0.2, 0.5] at sparsity 0.9: the total they imply differs from the target,
    a fact of the layer shapes, found after dense training before."""
    from tests.helpers import validated

    base = ["dataset=synthetic", "model=mlp", "model.widths=[16,16]", "method.allocation=explicit"]
    with pytest.raises(ConfigError, match=r"'sparsity'.*the sparsity method.layer_densities imply"):
        validated(*base, "method.layer_densities=[1.0,0.2,0.5]", "sparsity=0.9")
    # 2x16 + 16x16 + 16x3 = 336 weights; [0.5, 0.5, 0.5] keeps 16 + 128 + 24 = 168: sparsity 0.5
    validated(*base, "method.layer_densities=[0.5,0.5,0.5]", "sparsity=0.5")


def test_uniform_plus_never_puts_the_classifier_below_a_fifth():
    """Gale et al.'s rule keeps the last layer at 20 % at least. It was fixed at 0.2 only when the
    global density was below 0.2, but the dense first layer pushes the others below the global
    density: at 0.25 on a 40-256-256-10 MLP the classifier got 0.137, less than at 0.2. By hand:
    N = 10240 + 65536 + 2560 = 78336, round(0.25 N) = 19584; with the first layer dense the others
    would get 9344 / 68096 = 0.137 < 0.2, so the classifier keeps 0.2 x 2560 = 512 and the middle
    19584 - 10240 - 512 = 8832."""
    big = MLP(40, [256, 256], 10)
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(big), 0.25, ctx_for(big))
    assert list(counts.values()) == [10240, 8832, 512]
    # where the others' density stays at least 0.2 the classifier is one of them (d = 0.5: d' = 0.425)
    counts = ALLOCATIONS.get("uniform_plus")(zero_scores(big), 0.5, ctx_for(big))
    assert counts["net.5.weight"] == round(0.425 * 2560) or abs(counts["net.5.weight"] - 0.4247 * 2560) <= 1


def test_matched_method_with_rounds_copies_the_counts_its_rounds_reach():
    """method.match_method=synflow (100 rounds) was scored and allocated once: layers emptied
    (LayerCollapse at 0.9) where method=synflow keeps them. The counts are those of the other method's
    own pruning, rounds and all, on a copy of the model (its weights untouched)."""
    import copy

    from prune_cli.pruning.allocations.matched import method_option

    from prune_cli.data.splits import DataSplits

    torch.manual_seed(0)
    model = MLP(20, [64, 64], 10)
    x, y = torch.randn(40, 20), torch.arange(40) % 10
    data = DataSplits(x, y, x[:10], y[:10], x[:10], y[:10], num_classes=10)
    before = copy.deepcopy(model.state_dict())

    def context(method_node):
        return PruneContext(method=method_node, generator=torch.Generator().manual_seed(0), data=data)

    direct = prune(copy.deepcopy(model), 0.9, context(method_option("synflow")))
    matched = prune(model, 0.9, context(method(score="random", allocation="matched", match_method="synflow")))
    assert kept(matched) == kept(direct) and min(kept(direct).values()) > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_density_in_a_refusal_is_printed_without_float_noise():
    """1 - 0.9 is 0.09999999999999998 in floating point, and the refusal printed it so (late-failure audit)."""
    model = small_mlp()
    with pytest.raises(PruneCliError) as refused:
        ALLOCATIONS.get("uniform_plus")(zero_scores(model), 1 - 0.9, ctx_for(model))
    assert "uniform_plus at density 0.1:" in str(refused.value), str(refused.value)


def test_uniform_plus_rest_density_zero_up_to_float_noise_is_reachable():
    """res_mlp width 16, one block, input 8 (layers 128 (first), 256, 256, 48 (classifier); N = 688)
    at sparsity 0.8: in exact arithmetic 0.2*688 - 128 - 0.2*48 = 0, so the other layers get density 0
    (residual sections may be emptied) and the run works; in floats it came out -2.8e-14 and was refused."""
    from fractions import Fraction

    from prune_cli.pruning.allocations.uniform_plus import _fixed_and_rest

    assert Fraction(1, 5) * 688 - 128 - Fraction(1, 5) * 48 == 0
    overrides = ["dataset=synthetic", "dataset.input_dim=8", "model=res_mlp", "model.width=16", "model.blocks=1"]
    validate(composed(*overrides, "method.allocation=uniform_plus", "sparsity=0.8"))
    sizes = {"first": 128, "a": 256, "b": 256, "fc": 48}
    fixed, d_rest = _fixed_and_rest(sizes, "first", "fc", 1 - 0.8)
    assert fixed == {"first": 1.0, "fc": 0.2} and d_rest == 0.0


def test_layerwise_rounds_each_layer_so_its_total_may_differ_from_global_s_round_density_n():
    """README ("Unstructured pruning keeps ...", "Per-layer counts ..."): `global` keeps exactly round(d N);
    `layerwise` keeps round(d n_l) in each layer, whose sum may differ, as docs/allocation.md says. Hand-worked:
    an MLP 5 -> 1 -> 5 has two 5-weight layers; at density 0.3 each layer keeps round(1.5) = 2 (4 in all),
    the global count is round(0.3 x 10) = 3."""
    model = MLP(5, [1], 5)
    counts = {}
    for allocation in ("global", "layerwise"):
        method = method_options(allocation=allocation, sparsity_tolerance=0.5, allow_collapse=True)  # a 1-unit layer
        masks = prune(model, 0.7, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
        counts[allocation] = sorted(int(m.sum()) for m in masks.values())
    assert sum(counts["global"]) == 3 and counts["layerwise"] == [2, 2]
