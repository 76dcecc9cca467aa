"""Structures (N:M, channel, block) and the collapse / disconnected-path checks, against brute force."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.run.prevalidate import validate
from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.models.cnn import build_cnn1d
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.pruner import LayerCollapse
from prune_cli.models.graph import trace
from prune_cli.pruning.structure import disconnected
from tests.conftest import FAST, run_cli
from tests.helpers import TinyConvChain, composed, method_options, prerun_and_pruner_agree, refused_before_any_work

BASE = {"allocation": "layerwise"}  # the rest: tests/helpers.py method_options


def ctx(**kw):
    return PruneContext(method=method_options(**{**BASE, **kw}), generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- N:M


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 4), (1, 2)])
def test_nm_exactly_n_per_group_and_the_top_n(n, m):
    torch.manual_seed(0)
    model = TinyConvChain()
    masks = prune(model, 1 - n / m, ctx(structure="nm", nm_n=n, nm_m=m))
    for name, module in model.prunable_layers():
        w, mask = module.weight.detach(), masks[f"{name}.weight"]
        out_c, in_c = w.shape[:2]
        for o in range(out_c):
            for pos in itertools.product(*[range(s) for s in w.shape[2:]]):
                for g in range(0, in_c, m):
                    idx = (o, slice(g, g + m), *pos)
                    assert int(mask[idx].sum()) == n
                    best = sorted(range(m), key=lambda j: -float(w[idx].abs()[j]))[:n]
                    assert set(torch.nonzero(mask[idx]).flatten().tolist()) == set(best)


def test_nm_rejects_indivisible_layer_and_wrong_sparsity():
    model = MLP(6, [8], 2)  # first layer has 6 inputs
    with pytest.raises(ConfigError, match=r"net.1.weight \(6 inputs\)"):
        prune(model, 0.5, ctx(structure="nm", nm_n=2, nm_m=4))
    masks = prune(model, 0.5, ctx(structure="nm", nm_n=2, nm_m=4, exclude=["net.1"]))
    assert int(masks["net.3.weight"].sum()) == 8
    with pytest.raises(ConfigError) as err:
        validate(composed("method.structure=nm", "method.allocation=layerwise", "sparsity=0.9"))
    assert err.value.key == "sparsity"
    with pytest.raises(ConfigError) as err:
        validate(composed("method.structure=nm", "sparsity=0.5"))  # magnitude defaults to global
    assert err.value.key == "method.allocation"


# --------------------------------------------------------------------------- channel


def test_channel_mlp_removes_units_and_next_columns():
    torch.manual_seed(0)
    model = MLP(10, [20, 20], 3)
    masks = prune(model, 0.6, ctx(structure="channel", sparsity_tolerance=0.05))
    w1, w2, w3 = (model.net[i].weight.detach() for i in (1, 3, 5))
    m1, m2, m3 = (masks[f"net.{i}.weight"] for i in (1, 3, 5))
    for w, m, nxt in ((w1, m1, m2), (w2, m2, m3)):
        rows = m.any(1)
        assert torch.equal(m, rows[:, None].expand_as(m) & m.any(0)[None, :].expand_as(m))  # whole rows/cols
        # the kept units are those with the largest L1 norms over the live input columns (brute force)
        k = int(rows.sum())
        live = m.any(0) if m is not m1 else torch.ones(w.shape[1], dtype=torch.bool)
        norms = [float(w[i][live].abs().sum()) for i in range(w.shape[0])]
        assert set(torch.nonzero(rows).flatten().tolist()) == set(sorted(range(len(norms)), key=lambda i: -norms[i])[:k])
        assert torch.equal(nxt.any(0), rows)  # next layer keeps exactly the columns of kept units
    assert bool(m3.any(1).all())  # classifier rows (classes) are never removed
    kept = sum(int(m.sum()) for m in masks.values())
    assert abs(kept / 660 - 0.4) <= 0.05


def test_channel_conv_to_linear_masks_flattened_columns():
    torch.manual_seed(0)
    model = TinyConvChain()
    masks = prune(model, 0.5, ctx(structure="channel", group_norm="l2", sparsity_tolerance=0.1))
    c2 = model.c2.weight.detach()
    kept_filters = masks["c2.weight"].flatten(1).any(1)
    k = int(kept_filters.sum())
    assert 0 < k < 8
    c1_kept = masks["c1.weight"].flatten(1).any(1)
    # c2's filters are ranked by the L2 norm of |w| over the input channels c1 kept
    norms = [float(c2[i][c1_kept].pow(2).sum().sqrt()) for i in range(8)]
    assert set(torch.nonzero(kept_filters).flatten().tolist()) == set(sorted(range(8), key=lambda i: -norms[i])[:k])
    fc_cols = masks["fc.weight"].any(0).view(8, 4)  # 2x2 pooled positions per channel, channel-major
    for c in range(8):
        assert bool(fc_cols[c].all()) == bool(kept_filters[c]) and bool(fc_cols[c].any()) == bool(kept_filters[c])
    assert torch.equal(masks["c2.weight"].transpose(0, 1).flatten(1).any(1), c1_kept)


def test_channel_cnn1d_factor_and_resnet_refused():
    model = build_cnn1d(OmegaConf.create({"channels": [8, 8], "kernel_size": 5, "hidden": 16}), (40,), 10)
    graph = trace(model)
    assert graph["features.2.weight"].next == "head.1.weight" and graph["features.2.weight"].factor == 10
    with pytest.raises(PruneCliError, match="residual add"):
        prune(CifarResNet(20, 3, 10), 0.5, ctx(structure="channel"))


def test_channel_unreachable_sparsity_is_explained():
    model = MLP(2, [3], 2)  # 6 + 6 weights; keeping u hidden units keeps 4u weights
    with pytest.raises(PruneCliError, match="Channel pruning removes whole units"):
        prune(model, 0.5, ctx(structure="channel"))  # 6 kept wanted: 4 or 8 reachable
    masks = prune(model, 1 / 3, ctx(structure="channel"))  # 8 kept: two units
    assert sum(int(m.sum()) for m in masks.values()) == 8


# --------------------------------------------------------------------------- block


def test_block_masks_are_whole_blocks_ranked_by_norm():
    torch.manual_seed(0)
    model = MLP(8, [16], 4)
    masks = prune(model, 0.75, ctx(structure="block", block_shape=[2, 4]))
    for name, module in model.prunable_layers():
        w, m = module.weight.detach(), masks[f"{name}.weight"]
        blocks = m.view(w.shape[0] // 2, 2, w.shape[1] // 4, 4).permute(0, 2, 1, 3).flatten(2)
        assert bool((blocks.all(-1) | ~blocks.any(-1)).all())  # each block all kept or all removed
        wb = w.abs().view(w.shape[0] // 2, 2, w.shape[1] // 4, 4).permute(0, 2, 1, 3).flatten(2).sum(-1).flatten()
        k = int(blocks.all(-1).sum())
        assert k == round(0.25 * w.numel()) // 8  # counts are multiples of the block size here
        assert set(torch.nonzero(blocks.all(-1).flatten()).flatten().tolist()) == set(torch.argsort(wb, descending=True)[:k].tolist())
    assert sum(int(m.sum()) for m in masks.values()) == 0.25 * (8 * 16 + 16 * 4)


def test_block_edge_blocks():
    torch.manual_seed(0)
    model = MLP(6, [5], 3)  # 5x6 and 3x5 weights with 2x4 blocks: smaller edge blocks
    masks = prune(model, 0.5, ctx(structure="block", block_shape=[2, 4], sparsity_tolerance=0.1))
    m = masks["net.1.weight"]
    for r0 in range(0, 5, 2):
        for c0 in range(0, 6, 4):
            b = m[r0 : r0 + 2, c0 : c0 + 4]
            assert bool(b.all()) or not bool(b.any())


# --------------------------------------------------------------------------- safety


def test_empty_layer_is_collapse_unless_allowed():
    model = MLP(4, [8], 2)
    with pytest.raises(LayerCollapse, match="no weight left in net.3.weight"):
        prune(model, 0.5, ctx(allocation="explicit", layer_densities=[0.75, 0.0]))
    masks = prune(model, 0.5, ctx(allocation="explicit", layer_densities=[0.75, 0.0], allow_collapse=True))
    assert not masks["net.3.weight"].any()


def test_pair_and_path_disconnection():
    model = MLP(2, [2, 2], 2)
    graph = trace(model)
    t = torch.tensor
    # every unit of net.1 has inputs but none has an outgoing weight into net.3
    masks = {
        "net.1.weight": t([[1, 1], [1, 0]]).bool(),
        "net.3.weight": t([[0, 0], [0, 0]]).bool(),
        "net.5.weight": t([[1, 1], [1, 1]]).bool(),
    }
    assert any("net.1.weight" in p for p in disconnected(masks, graph))
    # each adjacent pair keeps a live unit, yet no input reaches the output (hand-traced):
    # input -> unit 0 of net.1 -> unit 1 of net.3 -> nothing; unit 0 of net.3 is fed by dead unit 1
    masks = {
        "net.1.weight": t([[1, 1], [0, 0]]).bool(),
        "net.3.weight": t([[0, 1], [1, 0]]).bool(),
        "net.5.weight": t([[1, 0], [1, 0]]).bool(),
    }
    assert disconnected(masks, graph) == ["no path from the network input to its output survives"]
    masks["net.5.weight"] = t([[0, 1], [0, 0]]).bool()  # now unit 1 of net.3 reaches the output
    assert disconnected(masks, graph) == []


def test_collapse_reported_by_prune_for_cut_path():
    torch.manual_seed(0)
    model = MLP(2, [2, 2], 2)
    # every layer keeps weights, but the invert ablation picks a cut
    with torch.no_grad():
        model.net[1].weight.copy_(torch.tensor([[1.0, 1.0], [9.0, 9.0]]))
        model.net[3].weight.copy_(torch.tensor([[9.0, 1.0], [9.0, 9.0]]))
        model.net[5].weight.copy_(torch.tensor([[9.0, 9.0], [9.0, 1.0]]))
    # global magnitude inverted keeps the 4 weights equal to 1: net.1 row 0 (only unit 0 has inputs),
    # net.3 [0, 1] (reads dead unit 1; unit 0 has no outgoing weight), net.5 [1, 1]: net.1 -> net.3 is cut
    with pytest.raises(LayerCollapse, match="no unit of net.1.weight keeps both"):
        prune(model, 1 - 4 / 12, ctx(allocation="global", invert=True))


def test_structure_config_errors():
    for overrides, key in [
        (["method=random", "method.sampling=bernoulli", "method.structure=block"], "method.sampling"),
        (["method.structure=block", "method.shuffle=true"], "method.shuffle"),
        (["method.structure=block", "method.block_shape=[0,2]"], "method.block_shape"),
        (["method.structure=channel"], "method.allocation"),
        (["method.structure=nm", "method.allocation=layerwise", "sparsity=0.5", "method.nm_n=5"], "method.nm_n"),
        (["method.structure=block", "method.group_norm=l3"], "method.group_norm"),  # GroupNormOptions.check
        (["method.structure=diagonal"], "method.structure"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate(composed(*overrides))
        assert err.value.key == key, overrides


def test_cli_nm_achieves_half(tmp_path):
    run_cli([*FAST, "dataset.input_dim=8", "method.structure=nm", "method.allocation=layerwise", "sparsity=0.5"], tmp_path / "r")
    run_dir = next((tmp_path / "r" / "runs").glob("*"))
    df = pd.read_csv(run_dir / "metrics.csv")
    got = df[(df.metric == "sparsity_prunable") & (df.phase.isin(["pruned", "finetuned"]))]["value"]
    assert len(got) == 2 and all(v == 0.5 for v in got)
    masks = torch.load(run_dir / "masks.pt", weights_only=True)
    for m in masks.values():
        assert bool((m.view(m.shape[0], -1, 4).sum(-1) == 2).all())


def test_block_with_global_allocation_reaches_target_total():
    torch.manual_seed(0)
    model = MLP(2, [16, 16], 3)  # 32 + 256 + 48 weights; all dimensions divisible by 2 x 2 blocks except 3 rows
    masks = prune(model, 0.75, ctx(structure="block", allocation="global", block_shape=[2, 2]))
    assert sum(int(m.sum()) for m in masks.values()) == 84  # round(0.25 * 336), reachable with 2x2 blocks
    m = masks["net.3.weight"]
    assert bool((m.view(8, 2, 8, 2).permute(0, 2, 1, 3).flatten(2).sum(-1) % 4 == 0).all())


def test_single_layer_call_for_sequential_scores():
    """LAP-forward style use: one layer at a time through the registry (old signature + method)."""
    from prune_cli.pruning import STRUCTURES

    score = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.2, 0.4, 0.8, 0.7]])
    assert STRUCTURES.get("unstructured")(score, 3, "exact").tolist() == [[False, True, False, False], [False, False, True, True]]
    method = method_options(**{**BASE, "structure": "nm", "nm_n": 1, "nm_m": 2})
    assert STRUCTURES.get("nm")(score, 4, "exact", method).tolist() == [[False, True, True, False], [False, True, True, False]]
    with pytest.raises(PruneCliError, match="needs the method config"):
        STRUCTURES.get("nm")(score, 4, "exact")
    with pytest.raises(PruneCliError, match="cannot prune one layer alone"):
        STRUCTURES.get("channel")(score, 4, "exact", method)


def test_a_threshold_rule_with_n_m_is_rejected():
    """N:M keeps the N best of every M weights and never thresholds a layer's count: a
    method.threshold_impl gave masks identical to the run without it, under a run id of its own."""
    from prune_cli.core.errors import ConfigError
    from tests.helpers import validated

    nm = ["method.structure=nm", "method.allocation=layerwise", "sparsity=0.5"]
    with pytest.raises(ConfigError, match=r"'method.threshold_impl'.*topk with method.structure=nm \(its masks do not follow"):
        validated(*nm, "method.threshold_impl=strict_kth")
    validated(*nm)


# --------------------------------------------------------------------------- channel: reachable before the run

TINY_CHANNEL = ["dataset=synthetic", "model=mlp", "model.widths=[3]", "method.structure=channel", "method.allocation=layerwise"]


def test_an_unreachable_channel_sparsity_is_refused_before_the_run_with_the_nearest_reachable_ones():
    """Hand-worked: synthetic (2 inputs, 3 classes), one hidden layer of 3 units: 6 + 9 weights, and
    keeping u units keeps 2u + 3u = 5u, so the reachable sparsities are 0, 1/3, 2/3 and 1. Sparsity 0.5
    wants round(0.5 x 15) = 8 kept: the closest, 10, is sparsity 1/3, off by 0.13. The pruner refused
    it after dense training; the pre-run pass now refuses it from the layer shapes and names the
    reachable sparsities on either side."""
    with pytest.raises(ConfigError) as err:
        validate(composed(*TINY_CHANNEL, "sparsity=0.5"))
    assert err.value.key == "sparsity" and err.value.value == 0.5
    assert "0.333333" in str(err.value) and "0.666667" in str(err.value), str(err.value)
    for reachable in ("0.3333333333", "0.6666666667"):
        validate(composed(*TINY_CHANNEL, f"sparsity={reachable}"))


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.6, 0.75, 0.9])
def test_the_pre_run_channel_check_agrees_with_the_pruner_on_cnn1d(sparsity):
    """For every sparsity the pre-run pass accepts the pruner reaches it within the tolerance, and for
    every one it refuses the pruner fails: the pruner run on a CPU cnn1d with random weights (channel
    pruning's kept count depends on the layer shapes only)."""
    from prune_cli.models import build_model

    args = ["dataset=mnist1d", "model=cnn1d", "method.structure=channel", "method.allocation=layerwise", f"sparsity={sparsity}"]
    cfg = composed(*args)
    torch.manual_seed(0)
    model = build_model(cfg.model, (40,), 10)
    assert prerun_and_pruner_agree(cfg, model, ctx(structure="channel").method, "Channel pruning removes whole units")


def test_an_unreachable_channel_sparsity_stops_prune_run_before_dense_training(finished_results):
    """The command of the audit: cnn1d at 0.5 trained the dense model, then failed. Now exit 2, nothing
    created, the finished run byte-identical."""
    args = ["model=cnn1d", "method.structure=channel", "method.allocation=layerwise", "sparsity=0.5", "train.epochs=1"]
    refused_before_any_work(args, finished_results, "'sparsity': 0.5", "channel")


def test_the_tolerance_error_does_not_call_the_rounded_target_reachable():
    """The pruner's tolerance error named round((1 - sparsity) N) / N "reachable" (audit: BCR's iterative
    event 4 of 5 on the default model said "reachable: 0.84152", which BCR cannot reach; its warning
    names 0.780229 and 0.852941). It is the target in whole weights: 20 kept of 100 at sparsity 0.9
    is 0.8 achieved against round(0.1 x 100) = 10 kept, 0.9."""
    from prune_cli.pruning.pruner import check_masks

    class Unlinked(dict):
        root = None

        def is_chain(self) -> bool:
            return False

    kept = torch.zeros(100, dtype=torch.bool)
    kept[:20] = True
    method = method_options(structure="bcr", allocation="global", sparsity_tolerance=0.005, allow_collapse=False)
    with pytest.raises(PruneCliError) as err:
        check_masks({"w": kept.view(10, 10)}, Unlinked(), 0.1, method)
    said = str(err.value)
    assert "achieved sparsity 0.80000 differs from the target sparsity=0.9" in said
    assert "reachable" not in said.split("BCR keeps")[0], said
    assert "(in whole weights: 0.90000, round((1 - sparsity) N) kept of N = 100)" in said, said
