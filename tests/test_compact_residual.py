"""Compaction through residual joins (prune_cli/models/compact.py, channel_flow in
prune_cli/models/graph.py) on ResNet-20: the compact model computes what the masked model computes,
and its sizes are the masked model's nonzero counts when the residual group's masks are coupled.

The residual channel structure the tests build their masks from is worked out by hand from He et
al.'s option-A shortcut (identity within a stage; subsample and zero-pad 8 / 16 channels on each
side into stages 2 / 3), not taken from channel_flow."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from prune_cli.metrics.cost import layer_table
from prune_cli.models.compact import CompactionError, compact, compact_spec, rebuild_compact
from prune_cli.models.masks import apply_masks
from prune_cli.models.resnet import CifarResNet

SHAPE = (3, 16, 16)  # CIFAR-shaped channels on a small image: fast, same structure as 32x32
STAGES = ("layer1", "layer2", "layer3")


def resnet20(seed=0):
    """ResNet-20 with non-trivial BatchNorm statistics and affine parameters (nonzero shifts make a
    removed channel's constant output matter unless nothing reads it)."""
    torch.manual_seed(seed)
    model = CifarResNet(20, 3, 10).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, *SHAPE))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def stream_keep(seed: int, fraction: float = 0.5) -> list[torch.Tensor]:
    """Kept channels of the residual stream in stages 1..3, consistent across the shortcuts:
    stage-1 channel c is stage-2 channel c + 8 and stage-3 channel c + 24; stage-2 channel j is
    stage-3 channel j + 16; a stage-3 channel without a source is its own."""
    g = torch.Generator().manual_seed(seed)
    s1 = torch.rand(16, generator=g) < fraction
    s2 = torch.rand(32, generator=g) < fraction
    s2[8:24] = s1
    s3 = torch.rand(64, generator=g) < fraction
    s3[16:48] = s2
    return [s1, s2, s3]


def coupled_masks(model, keep: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks that remove the dropped stream channels from every producer (stem, each conv2) and
    every reader (each block's conv1, the classifier), and half of each block's inner channels."""
    g = torch.Generator().manual_seed(7)
    masks = {n + ".weight": torch.ones_like(m.weight, dtype=torch.bool) for n, m in model.prunable_layers()}
    masks["conv1.weight"][~keep[0]] = False
    masks["fc.weight"][:, ~keep[2]] = False
    stream_in = keep[0]
    for s, stage in enumerate(STAGES):
        for b in range(3):
            block = f"{stage}.{b}"
            inner = torch.rand(masks[f"{block}.conv1.weight"].shape[0], generator=g) < 0.5
            masks[f"{block}.conv1.weight"][:, ~stream_in] = False
            masks[f"{block}.conv1.weight"][~inner] = False
            masks[f"{block}.conv2.weight"][:, ~inner] = False
            masks[f"{block}.conv2.weight"][~keep[s]] = False
            stream_in = keep[s]
    return masks


def masked(model, masks):
    with torch.no_grad():
        apply_masks(model, masks)
    return model


def assert_same_function(small, model):
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-5, atol=1e-5)


def sizes(model):
    prunable = [f"{n}.weight" for n, _ in model.prunable_layers()]
    rows = layer_table(model, prunable, SHAPE)
    return (
        sum(r["params"] for r in rows),
        sum(r["nonzero"] for r in rows),
        sum(r["flops_dense"] for r in rows),
        sum(r["flops_sparse"] for r in rows),
    )


def test_inner_channels_of_every_block_compact():
    """Channel masks on each block's conv1 -> bn1 -> conv2 only (the residual stream stays whole):
    each conv1 loses about half its filters, conv2 the matching inputs."""
    model = resnet20()
    model = masked(
        model,
        coupled_masks(model, [torch.ones(16, dtype=torch.bool), torch.ones(32, dtype=torch.bool), torch.ones(64, dtype=torch.bool)]),
    )
    small, report = compact(model)
    assert_same_function(small, model)
    assert set(report.units) == {f"{s}.{b}.conv1" for s in STAGES for b in range(3)}
    for name, (kept, total) in report.units.items():  # independent count: filters with a nonzero weight
        assert kept == int(model.get_submodule(name).weight.flatten(1).ne(0).any(1).sum()) < total
    (group,) = report.groups
    assert group.kept == group.channels == 64 and group.dense_zero_rows == 0
    _params, nonzero, _flops, flops_sparse = sizes(model)
    small_params, small_nonzero, small_flops, _ = sizes(small)
    assert small_params == small_nonzero == nonzero and small_flops == flops_sparse


def test_coupled_residual_group_compacts_to_the_nonzero_counts(tmp_path):
    model = masked(resnet20(1), coupled_masks(resnet20(1), keep := stream_keep(3)))
    small, report = compact(model)
    assert_same_function(small, model)
    _params, nonzero, _flops, flops_sparse = sizes(model)
    small_params, _, small_flops, _ = sizes(small)
    assert small_params == nonzero and small_flops == flops_sparse
    assert small.conv1.out_channels == int(keep[0].sum()) and small.bn1.num_features == int(keep[0].sum())
    assert small.layer3[2].conv2.out_channels == small.fc.in_features == int(keep[2].sum())
    (group,) = report.groups
    assert group.channels == 64 and group.kept == int(keep[2].sum()) and group.dense_zero_rows == 0
    # the saved file rebuilds the same function (shortcut indices included)
    torch.save({"state_dict": small.state_dict(), "spec": compact_spec(small)}, tmp_path / "model_compact.pt")
    saved = torch.load(tmp_path / "model_compact.pt", weights_only=False)
    rebuilt = rebuild_compact(CifarResNet(20, 3, 10), saved["spec"], saved["state_dict"])
    assert compact_spec(rebuilt) == saved["spec"]
    assert_same_function(rebuilt, model)


def test_uncoupled_member_keeps_a_dense_zero_row_and_says_so(caplog):
    keep = stream_keep(4)
    masks = coupled_masks(resnet20(2), keep)
    kept_stage1 = torch.nonzero(keep[0]).flatten()
    extra = int(kept_stage1[0])  # one member prunes a channel the others still use
    masks["layer1.1.conv2.weight"][extra] = False
    model = masked(resnet20(2), masks)
    with caplog.at_level(logging.WARNING, logger="prune_cli.models.compact"):
        small, report = compact(model)
    assert_same_function(small, model)
    (group,) = report.groups
    assert group.dense_zero_rows == 1 and group.kept == int(keep[2].sum())
    assert "stay dense" in caplog.text and "layer1.1.conv2" in caplog.text
    _params, nonzero, _flops, _ = sizes(model)
    small_params, small_nonzero, _, _ = sizes(small)
    row = small.layer1[1].conv2.weight[0].numel()  # the zero row: kept inner inputs x 3 x 3
    assert small_nonzero == nonzero and small_params == nonzero + row


def test_unread_stream_channel_is_removed_even_when_its_producers_compute_it():
    """Exactness rests on readers: a stream channel no layer reads goes, whatever produces it."""
    model = resnet20(3)
    with torch.no_grad():
        position = 0  # of stage-1 channel 0 in the stream a block reads: 0, then 8, then 24
        for s, stage in enumerate(STAGES):
            for b in range(3):
                model.get_submodule(f"{stage}.{b}.conv1").weight[:, position] = 0
                position = (0, 8, 24)[s]
        model.fc.weight[:, 24] = 0  # stage-1 channel 0 is stage-3 channel 24
    small, report = compact(model)
    assert_same_function(small, model)
    assert small.conv1.out_channels == 15 and small.fc.in_features == 63
    assert report.groups[0].kept == 63


def test_concatenation_is_refused_with_the_operation_named():
    from tests.helpers import ConcatNet as Cat

    with pytest.raises(CompactionError, match="cat"):
        compact(Cat())


def test_speedup_metric_offers_and_saves_the_compact_resnet(tmp_path):
    """The speedup metric's compact_dense path on a coupled ResNet-20: offered, equal to the masked
    model (the metric checks), described by residual group, and saved as model_compact.pt."""
    import copy

    from omegaconf import OmegaConf

    from prune_cli.data.splits import DataSplits
    from prune_cli.metrics import METRICS
    from tests.helpers import metric_context

    dense = resnet20(5)
    masks = coupled_masks(dense, stream_keep(6))
    model = masked(copy.deepcopy(dense), masks)
    data = DataSplits(*(torch.randn(4, *SHAPE), torch.randint(0, 10, (4,))) * 3, num_classes=10)
    ctx = metric_context(model, data, dense=dense, masks=masks, run_dir=tmp_path)
    node = OmegaConf.create({"batch_size": 4, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    rows = METRICS.get("speedup")(ctx, "pruned", node).tables["speedup.csv"]
    (row, _) = [r for r in rows if r["path"] == "compact_dense"]
    assert "residual group conv1, layer1.0.conv2" in row["note"] and "stay dense" not in row["note"]
    saved = torch.load(tmp_path / "model_compact.pt", weights_only=True)
    assert_same_function(rebuild_compact(CifarResNet(20, 3, 10), saved["spec"], saved["state_dict"]), model)


def _branch_output(model, block: str, x):
    """What block's bn2 adds to the residual sum in `model` (a forward hook on the model itself)."""
    seen = {}
    handle = model.get_submodule(f"{block}.bn2").register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen["out"]


@pytest.mark.parametrize(
    "block, emptied",
    [
        ("layer2.1", ("conv2.weight",)),  # an identity block whose conv2 lost every weight
        ("layer3.0", ("conv2.weight",)),  # a downsampling block (subsampling, zero-padded shortcut)
        ("layer1.2", CifarResNet.BRANCH),  # the whole branch zeroed, as schedule=layer_pruning removes a section
    ],
)
def test_an_emptied_branch_keeps_one_inner_unit_and_the_masked_function(block, emptied):
    """A block whose conv2 has no weight left (global unstructured magnitude at 0.97 leaves
    layer3.0.conv2 so) was refused as "disconnected", but its shortcut carries the stream on. The
    compact model keeps one conv1 unit (conv2 reads it with zero weights, so conv2 outputs exactly
    0 as in the masked model) and reproduces the branch's constant bn2 output, nonzero with
    BatchNorm statistics, and every other output, against the masked model's own forward."""
    model = resnet20(8)
    with torch.no_grad():
        for name in emptied:
            model.get_submodule(block).get_parameter(name).zero_()
    x = torch.randn(4, *SHAPE)
    branch = _branch_output(model, block, x)
    if "bn2.bias" not in emptied:  # bn2 after an all-zero conv2 still adds its shift: the branch is not 0
        assert branch.abs().max() > 0.01
    small, report = compact(model)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(_branch_output(small, block, x), branch, rtol=1e-6, atol=1e-6)
    inner = model.get_submodule(f"{block}.conv1").out_channels
    assert report.units[f"{block}.conv1"] == (1, inner)
    assert report.emptied == [f"{block}.conv1"]
    assert f"{block}.conv1" in report.describe() and "one unit kept" in report.describe()
    sub = small.get_submodule(block)
    assert sub.conv1.out_channels == sub.bn1.num_features == sub.conv2.in_channels == 1
    assert not sub.conv2.weight.any()
