"""method.structure=channel_group (prune_cli/pruning/structures/channel_group.py) on ResNet-20.

The reference enumerates ResNet-20's channel groups by hand from He et al.'s option-A shortcut
(identity within a stage; subsample and zero-pad 8 / 16 channels on each side into stages 2 / 3),
as tests/test_compact_residual.py does, not from channel_flow: residual stream channels (stage-1
channel c is stage-2 position c + 8 and stage-3 position c + 24; stage-2 channel j is stage-3
position j + 16; stage-3 channels of their own) with their producers' rows (stem, every conv2) and
readers' columns (every conv1, the classifier), and each block's inner channels (conv1's row,
conv2's column). It scores each group by summing |w| over those weights, and selects by brute
force: every candidate keep fraction (layerwise) or every prefix of the ranking (global), counting
the kept weights of masks built from the groups by hand."""

from __future__ import annotations

import copy
import dataclasses
import logging

import pandas as pd
import pytest
import torch
from torch import nn

from prune_cli.core.errors import ConfigError
from prune_cli.metrics.cost import layer_table
from prune_cli.models.compact import compact
from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.registries import STRUCTURES
from tests.conftest import run_cli
from prune_cli.run.prevalidate import validate
from tests.helpers import composed, method_options, prerun_and_pruner_agree, refused_before_any_work

SHAPE = (3, 8, 8)
STAGES = ("layer1", "layer2", "layer3")


def resnet20(seed=0):
    """ResNet-20 with non-trivial BatchNorm statistics and shifts (a pruned channel's BatchNorm
    shift would leak into the output if a reader kept its column)."""
    torch.manual_seed(seed)
    model = CifarResNet(20, 3, 10).train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):  # channels of different importance, not only init noise
                m.weight.mul_(torch.empty(m.weight.shape[0], 1, 1, 1).uniform_(0.2, 2.0))
        model(torch.randn(8, *SHAPE))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


# ----------------------------------------------------------------------------- the hand-built reference


def hand_groups():
    """[(scope, [(param name, 'row' | 'col', index)])]: every channel group of ResNet-20 (module
    docstring). Scope: the layer introducing the channel (the stem, the first conv2 of stages 2
    and 3, each conv1)."""
    # position of each stream channel in the stage-1/2/3 tensors (None: not present there)
    stream = [("conv1", (c, c + 8, c + 24)) for c in range(16)]
    stream += [("layer2.0.conv2", (None, j, j + 16)) for j in [*range(8), *range(24, 32)]]
    stream += [("layer3.0.conv2", (None, None, k)) for k in [*range(16), *range(48, 64)]]
    groups = []
    for scope, pos in stream:
        touched = [("conv1.weight", "row", pos[0])] if pos[0] is not None else []
        for s, stage in enumerate(STAGES):
            for b in range(3):
                if pos[s] is not None:
                    touched.append((f"{stage}.{b}.conv2.weight", "row", pos[s]))
                read = pos[s - 1] if (b == 0 and s > 0) else pos[s]  # block 0 reads the previous stage
                if read is not None:
                    touched.append((f"{stage}.{b}.conv1.weight", "col", read))
        touched.append(("fc.weight", "col", pos[2]))
        groups.append((scope, touched))
    for s, stage in enumerate(STAGES):
        for b in range(3):
            for i in range(16 * 2**s):
                groups.append(
                    (f"{stage}.{b}.conv1", [(f"{stage}.{b}.conv1.weight", "row", i), (f"{stage}.{b}.conv2.weight", "col", i)])
                )
    return groups


def hand_masks(model, groups, removed) -> dict[str, torch.Tensor]:
    masks = {f"{n}.weight": torch.ones_like(m.weight, dtype=torch.bool) for n, m in model.prunable_layers()}
    for g in removed:
        for name, side, i in groups[g][1]:
            if side == "row":
                masks[name][i] = False
            else:
                masks[name][:, i] = False
    return masks


def weights_of(model, touched):
    params = dict(model.named_parameters())
    parts = [params[name].detach()[i] if side == "row" else params[name].detach()[:, i] for name, side, i in touched]
    return torch.cat([p.flatten().double() for p in parts])


def brute_force(model, sparsity, allocation):
    """The masks the reference selects (module docstring)."""
    groups = hand_groups()
    total = [float(weights_of(model, t).abs().sum()) for _, t in groups]
    size = [weights_of(model, t).numel() for _, t in groups]
    n = sum(p.numel() for _, p in model.named_parameters() if p.dim() > 1)
    target = round((1 - sparsity) * n)

    def kept(removed):
        return sum(int(m.sum()) for m in hand_masks(model, groups, removed).values())

    if allocation == "global":
        ratio = [t / s for t, s in zip(total, size)]
        order = sorted(range(len(groups)), key=lambda g: (ratio[g], -g))  # lowest first; ties: later index
        masks = hand_masks(model, groups, [])
        counts = [sum(int(m.sum()) for m in masks.values())]
        for g in order:  # remove one group after another, counting the masks' kept weights
            for name, side, i in groups[g][1]:
                if side == "row":
                    masks[name][i] = False
                else:
                    masks[name][:, i] = False
            counts.append(sum(int(m.sum()) for m in masks.values()))
        r = min(range(len(counts)), key=lambda r: (abs(counts[r] - target), r))
        return hand_masks(model, groups, order[:r]), order[:r]
    scopes = {}
    for g, (scope, _) in enumerate(groups):
        scopes.setdefault(scope, []).append(g)
    fractions = sorted({j / len(m) for m in scopes.values() for j in range(len(m) + 1)})
    options = []
    for q in fractions[::-1]:  # decreasing q, so that ties below go to the larger q
        ranked = {s: sorted(m, key=lambda g: (-total[g], g)) for s, m in scopes.items()}
        options.append([g for m in ranked.values() for g in m[round(q * len(m)) :]])
    best = min(options, key=lambda removed: (abs(kept(removed) - target), len(removed)))
    return hand_masks(model, groups, best), best


def pruned(model, sparsity, allocation, **extra):
    method = method_options(**{"structure": "channel_group", "allocation": allocation, "sparsity_tolerance": 0.05, **extra})
    return prune(model, sparsity, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))


def assert_layers_connected(masks):
    for name, m in masks.items():
        assert m.flatten(1).any(1).any() and m.transpose(0, 1).flatten(1).any(1).any(), name


@pytest.mark.parametrize("allocation,sparsity", [("layerwise", 0.5), ("global", 0.6)])
def test_groups_equal_the_brute_force_reference(allocation, sparsity):
    model = resnet20(1)
    masks = pruned(model, sparsity, allocation)
    reference, removed = brute_force(model, sparsity, allocation)
    assert removed  # something was pruned, and no layer side left empty: the guard does not bind here
    assert_layers_connected(reference)
    for name in reference:
        assert torch.equal(masks[name], reference[name]), name
    # the achieved density is the allocation's to within what whole groups allow (the reference's
    # enumeration above shows it is the closest reachable one): one fraction for all scopes
    # (layerwise) moves in coarser steps than one ranking (global)
    kept = sum(int(m.sum()) for m in masks.values())
    n = sum(m.numel() for m in masks.values())
    assert abs(kept / n - (1 - sparsity)) < (0.025 if allocation == "layerwise" else 0.005)


@pytest.mark.parametrize("allocation,sparsity", [("layerwise", 0.75), ("global", 0.9)])
def test_compact_removes_every_pruned_channel(allocation, sparsity):
    """compact() of the pruned ResNet-20 removes every pruned group from every tensor: its parameter
    count and FLOPs are the masked model's nonzero counts, its outputs the masked model's."""
    model = resnet20(2)
    masks = pruned(model, sparsity, allocation)
    assert_layers_connected(masks)  # at 90 % global the keep-one guard binds somewhere
    with torch.no_grad():
        apply_masks(model, masks)
    small, report = compact(model)
    prunable = [f"{n}.weight" for n, _ in model.prunable_layers()]
    masked_rows, small_rows = layer_table(model, prunable, SHAPE), layer_table(small, prunable, SHAPE)
    assert sum(r["params"] for r in small_rows) == sum(r["nonzero"] for r in masked_rows)
    assert sum(r["flops_dense"] for r in small_rows) == sum(r["flops_sparse"] for r in masked_rows)
    # each layer keeps exactly the output units that still have a weight (independent count)
    for name, module in model.prunable_layers():
        rows = int(module.weight.flatten(1).ne(0).any(1).sum())
        assert small.get_submodule(name).weight.shape[0] == rows, name
    (group,) = report.groups
    assert group.dense_zero_rows == 0 and group.kept < group.channels
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


def test_iterative_rounds_stay_coupled():
    """A second pruning event on top of the first: the groups pruned before score nothing and go
    first, the masks stay coupled, and compaction is still exact."""
    model = resnet20(3)
    ctx = PruneContext(
        method=method_options(structure="channel_group", allocation="layerwise", sparsity_tolerance=0.05),
        generator=torch.Generator().manual_seed(0),
    )
    first = prune(model, 0.5, ctx)
    with torch.no_grad():
        apply_masks(model, first)
    second = prune(model, 0.75, dataclasses.replace(ctx, masks=first))
    assert all(bool((second[n] <= first[n]).all()) for n in first)
    with torch.no_grad():
        apply_masks(model, second)
    small, _ = compact(model)
    prunable = [f"{n}.weight" for n, _ in model.prunable_layers()]
    assert sum(r["params"] for r in layer_table(small, prunable, SHAPE)) == sum(
        r["nonzero"] for r in layer_table(model, prunable, SHAPE)
    )


def test_excluded_layers_fix_the_channels_they_touch(caplog):
    """Channels touching an excluded layer are kept (the layer's weights may not be zeroed, so the
    channel could not go); here the classifier: every stream channel reaches it."""
    model = resnet20(4)
    with caplog.at_level(logging.INFO, logger="prune_cli.pruning.structures.channel_group"):
        masks = pruned(model, 0.5, "layerwise", exclude_classifier=True, sparsity_tolerance=0.5)
    assert "fc.weight" not in masks
    for s, stage in enumerate(STAGES):  # the stream is whole: no conv2 row, no conv1 column removed
        for b in range(3):
            assert masks[f"{stage}.{b}.conv2.weight"].flatten(1).any(1).all()
            assert masks[f"{stage}.{b}.conv1.weight"].transpose(0, 1).flatten(1).any(1).all()
            assert not masks[f"{stage}.{b}.conv1.weight"].flatten(1).any(1).all()  # inner channels pruned
    assert "74 channels fixed" in caplog.text  # the 64 stream channels and the 10 classes


def test_refusals_name_the_key():
    from prune_cli.pruning.structures.channel_group import check_channel_group_model

    from tests.helpers import ConcatNet as Cat

    model = Cat()
    with pytest.raises(ConfigError, match="cat") as err:
        check_channel_group_model(model, {n: p for n, p in model.named_parameters() if n.endswith("weight")}, None)
    assert err.value.key == "method.structure"
    # only the classifier selected: its outputs are the classes, its inputs touch an excluded layer
    mlp = MLP(4, [3], 2)
    with pytest.raises(ConfigError, match="prunable") as err:
        check_channel_group_model(mlp, {f"{mlp.classifier}.weight": mlp.get_submodule(mlp.classifier).weight}, None)
    assert err.value.key == "method.structure"
    assert STRUCTURES.get("channel_group").check is not None


def test_config_checks_before_any_work():
    """An allocation with per-layer counts is refused by the pre-run pass (which exits 2 before
    creating anything); global and layerwise pass it on the default MLP."""
    for allocation in ("erk", "uniform_plus"):
        with pytest.raises(ConfigError, match="global or layerwise") as err:  # the defaults composed once
            validate(composed("method.structure=channel_group", f"method.allocation={allocation}"))
        assert err.value.key == "method.allocation"
    for allocation in ("global", "layerwise"):
        validate(composed("method.structure=channel_group", f"method.allocation={allocation}"))


@pytest.mark.slow
def test_cli_resnet20_speedup_compacts(tmp_path):
    """docs/speedup.md's command, on tiny files in the real CIFAR-10 format: the speedup metric's
    compact_dense path is offered (not absent), saved, and smaller than the dense model."""
    from tests.test_data import write_cifar

    write_cifar(tmp_path / "data", "cifar10", n_train=40, n_test=8, classes=10)
    args = ["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "model=resnet20", "method=magnitude"]
    args += ["method.structure=channel_group", "method.allocation=global", "sparsity=0.75", "method.sparsity_tolerance=0.02"]
    args += ["train.epochs=1", "finetune.epochs=1", "train.batch_size=16", "finetune.batch_size=16"]
    args += ["metrics.speedup.enabled=true", "metrics.speedup.batch_size=4", "metrics.speedup.repeats=1", "metrics.speedup.warmup=0"]
    args += ["metrics.regions.enabled=false"]
    run_cli(args, tmp_path / "r")
    run_dir = next((tmp_path / "r" / "runs").glob("*"))
    df = pd.read_csv(run_dir / "speedup.csv")
    rows = df[(df.path == "compact_dense") & (df.phase == "finetuned")]
    assert len(rows) == 2 and not rows.note.str.startswith("absent").any()
    assert "stay dense" not in " ".join(rows.note)
    saved = torch.load(run_dir / "model_compact.pt", weights_only=True)
    compact_params = sum(v.numel() for k, v in saved["state_dict"].items() if k.endswith("weight") and v.dim() > 1)
    dense_params = sum(m.weight.numel() for _, m in CifarResNet(20, 3, 10).prunable_layers())
    assert compact_params < 0.4 * dense_params
    m = pd.read_csv(run_dir / "metrics.csv")
    nonzero = m[(m.metric == "prunable_nonzero") & (m.phase == "finetuned")].value.iloc[0]
    assert compact_params == nonzero


def test_speedup_metric_compacts_the_channel_group_resnet(tmp_path):
    """In process, the speedup metric on a channel_group-pruned ResNet-20: compact_dense is offered
    (not absent), has no dense zero rows, and model_compact.pt holds exactly the nonzero weights."""
    from omegaconf import OmegaConf

    from prune_cli.data.splits import DataSplits
    from prune_cli.metrics import METRICS
    from prune_cli.models.compact import rebuild_compact
    from tests.helpers import metric_context

    dense = resnet20(5)
    model = copy.deepcopy(dense)
    masks = pruned(model, 0.75, "global")
    with torch.no_grad():
        apply_masks(model, masks)
    data = DataSplits(*(torch.randn(4, *SHAPE), torch.randint(0, 10, (4,))) * 3, num_classes=10)
    ctx = metric_context(model, data, dense=dense, masks=masks, run_dir=tmp_path)
    node = OmegaConf.create({"batch_size": 4, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    rows = [r for r in METRICS.get("speedup")(ctx, "pruned", node).tables["speedup.csv"] if r["path"] == "compact_dense"]
    assert len(rows) == 2 and not any(r["note"].startswith("absent") or "stay dense" in r["note"] for r in rows)
    saved = torch.load(tmp_path / "model_compact.pt", weights_only=True)
    small = rebuild_compact(CifarResNet(20, 3, 10), saved["spec"], saved["state_dict"]).eval()
    assert sum(m.weight.numel() for _, m in small.prunable_layers()) == sum(int(m.sum()) for m in masks.values())
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


def test_extreme_sparsity_keeps_one_channel_per_layer_side():
    """At 99 % the ranking alone would empty layers: every selected layer still keeps an output and
    an input channel (its best one), the pruner's collapse check passes, and compaction is exact."""
    model = resnet20(6)
    masks = pruned(model, 0.99, "global", sparsity_tolerance=0.5)
    assert_layers_connected(masks)
    rows = {n: int(m.flatten(1).any(1).sum()) for n, m in masks.items()}
    assert min(rows.values()) == 1  # the guard binds
    with torch.no_grad():
        apply_masks(model, masks)
    small, _ = compact(model)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


def test_chain_with_a_flatten_ranks_units_by_row_plus_next_columns():
    """LeNet-5 on 1x16x16 (a chain; conv2's 16 channels are flattened into 4 columns each): every
    hidden layer keeps the units whose |w| summed over their row and the next layer's columns is
    largest, all layers the same fraction, and compaction is exact."""
    from prune_cli.models.cnn import build_lenet5

    torch.manual_seed(7)
    model = build_lenet5(None, (1, 16, 16), 10).eval()
    masks = pruned(model, 0.6, "layerwise", sparsity_tolerance=0.1)
    names = [f"{n}.weight" for n, _ in model.prunable_layers()]
    params = dict(model.named_parameters())
    per = {"features.3.weight": 4}  # 16 channels x 2 x 2 positions after the flatten
    kept_units = {}
    for name, nxt in zip(names[:-1], names[1:]):
        w, v = params[name].detach().abs(), params[nxt].detach().abs()
        p = per.get(name, 1)
        sums = w.flatten(1).sum(1) + v.transpose(0, 1).reshape(w.shape[0], p, -1).sum((1, 2))
        kept = masks[name].flatten(1).any(1)
        k = int(kept.sum())
        assert set(torch.topk(sums, k).indices.tolist()) == set(torch.nonzero(kept).flatten().tolist()), name
        assert bool((masks[nxt].transpose(0, 1).reshape(w.shape[0], -1).any(1) == kept).all())
        kept_units[w.shape[0]] = k
    # one fraction q for all layers: k = round(q n) in each
    candidates = {j / n for n in kept_units for j in range(n + 1)}
    assert any(all(round(q * n) == k for n, k in kept_units.items()) for q in candidates), kept_units
    assert masks[names[-1]].flatten(1).any(1).all()  # the classes stay
    with torch.no_grad():
        apply_masks(model, masks)
    small, _ = compact(model)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert sum(m.weight.numel() for _, m in small.prunable_layers()) == sum(int(m.sum()) for m in masks.values())


# --------------------------------------------------------------------------- layerwise: reachable before the run

TINY_GROUP = ["dataset=synthetic", "model=mlp", "model.widths=[3]", "method.structure=channel_group", "method.allocation=layerwise"]


def test_an_unreachable_layerwise_group_sparsity_is_refused_before_the_run_with_the_nearest_reachable_ones():
    """Hand-worked: synthetic (2 inputs, 3 classes), one hidden layer of 3 units: 6 + 9 weights; keeping
    u units keeps 2u + 3u = 5u, and the layer keeps at least one unit, so the reachable sparsities are
    0, 1/3 and 2/3. Sparsity 0.5 wants round(0.5 x 15) = 8 kept: the closest, 10, is sparsity 1/3, off
    by 0.13. The pruner refused it after dense training, naming a 'reachable' 0.5; the pre-run pass
    now refuses it from the layer shapes with the reachable sparsities on either side."""
    with pytest.raises(ConfigError) as err:
        validate(composed(*TINY_GROUP, "sparsity=0.5"))
    assert err.value.key == "sparsity" and err.value.value == 0.5
    assert "0.333333" in str(err.value) and "0.666667" in str(err.value), str(err.value)
    for reachable in ("0.3333333333", "0.6666666667"):
        validate(composed(*TINY_GROUP, f"sparsity={reachable}"))
    # the keep-one rule: 0.9 cannot go past 2/3 (only the lower neighbour exists)
    with pytest.raises(ConfigError, match=r"the nearest is 0\.666667"):
        validate(composed(*TINY_GROUP, "sparsity=0.9"))


@pytest.mark.parametrize(
    "model,sparsity",
    [(m, s) for m in ("mlp", "cnn1d") for s in (0.3, 0.5, 0.6, 0.75, 0.9)] + [("resnet20", s) for s in (0.5, 0.8)],
)
def test_the_pre_run_group_check_agrees_with_the_pruner(model, sparsity, tmp_path):
    """For every sparsity the pre-run pass accepts, the pruner (on random weights) reaches it within the
    tolerance, and for every one it refuses the pruner fails: with one pruning event the layerwise
    kept count is a fact of the layer shapes."""
    from prune_cli.models import build_model

    data = ["dataset=mnist1d"]
    if model == "resnet20":  # tiny files in the real CIFAR-10 format
        from tests.test_data import write_cifar

        write_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=10, classes=10)
        data = ["dataset=cifar10", f"dataset.root={tmp_path / 'data'}"]
    cfg = composed(*data, f"model={model}", "method.structure=channel_group", "method.allocation=layerwise", f"sparsity={sparsity}")
    torch.manual_seed(0)
    net = build_model(cfg.model, (3, 32, 32) if model == "resnet20" else (40,), 10)
    assert prerun_and_pruner_agree(cfg, net, cfg.method, "Channel-group pruning removes whole channels")


def test_an_unreachable_group_sparsity_stops_prune_run_before_dense_training(finished_results):
    """The combinatorial audit's command: cnn1d at 0.5 reached 0.44891 and was refused only after dense
    training. Now exit 2 before any work, nothing created, the finished run byte-identical."""
    args = ["model=cnn1d", "method.structure=channel_group", "method.allocation=layerwise", "sparsity=0.5", "train.epochs=1"]
    refused_before_any_work(args, finished_results, "'sparsity': 0.5", "channel_group")
