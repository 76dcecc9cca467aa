"""Compaction (prune_cli/models/compact.py): the smaller dense model of a channel-pruned chain
computes what the masked model computes, and its sizes are the masked model's nonzero counts
(residual networks: tests/test_compact_residual.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prune_cli.metrics.cost import layer_table
from prune_cli.models.compact import CompactionError, compact
from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.models.vgg import VGG
from prune_cli.pruning import PruneContext, prune
from tests.helpers import BNNet, TinyConvChain, method_options


def channel_pruned(model, sparsity, shape):
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for _ in range(3):
            model(torch.randn(8, *shape))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    ctx = PruneContext(
        method=method_options(structure="channel", allocation="layerwise", sparsity_tolerance=0.2),
        generator=torch.Generator().manual_seed(0),
    )
    masks = prune(model, sparsity, ctx)
    with torch.no_grad():
        apply_masks(model, masks)
    return model.eval(), masks


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: MLP(12, [16, 16], 4), (12,)),
        (BNNet, (4,)),
        (TinyConvChain, (4, 6, 6)),
        (lambda: VGG([8, "M", 16, 16, "M"], 3, 5), (3, 8, 8)),
    ],
)
def test_outputs_sizes_and_flops_equal_the_masked_model(build, shape):
    torch.manual_seed(0)
    model, masks = channel_pruned(build(), 0.5, shape)
    small, report = compact(model)
    assert report.units and all(kept < total for kept, total in report.units.values())
    x = torch.randn(5, *shape)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-5, atol=1e-5)
    prunable = [f"{n}.weight" for n, _ in model.prunable_layers()]
    big, compacted = layer_table(model, prunable, shape), layer_table(small, prunable, shape)
    assert sum(r["params"] for r in compacted) == sum(r["nonzero"] for r in big)
    assert sum(r["flops_dense"] for r in compacted) == sum(r["flops_sparse"] for r in big)
    for name, (kept, total) in report.units.items():  # independent count: rows with a nonzero weight
        assert kept == int(model.get_submodule(name).weight.flatten(1).ne(0).any(1).sum())


def test_biased_unit_without_outgoing_weights_is_removed_exactly():
    model = MLP(3, [4], 2)
    with torch.no_grad():
        model.net[1].bias.fill_(5.0)
        model.net[3].weight[:, 1:3] = 0  # units 1 and 2 are never read
    small, report = compact(model)
    assert report.units == {"net.1": (2, 4)} and small.net[1].weight.shape == (2, 3)
    x = torch.randn(4, 3)
    torch.testing.assert_close(small(x), model(x))


def test_grouped_convolutions_are_refused_with_the_reason():
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4))
    with pytest.raises(CompactionError, match="groups=4"):
        compact(model)


def test_rebuild_from_spec_and_state_dict_with_batchnorm():
    from prune_cli.models.compact import compact_spec, rebuild_compact

    torch.manual_seed(1)
    plan = [8, "M", 16, 16, "M"]
    model, _ = channel_pruned(VGG(plan, 3, 5), 0.5, (3, 8, 8))
    small, _ = compact(model)
    saved = {"spec": compact_spec(small), "state_dict": small.state_dict()}
    rebuilt = rebuild_compact(VGG(plan, 3, 5), saved["spec"], saved["state_dict"]).eval()
    assert compact_spec(rebuilt) == saved["spec"]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_layer_with_its_own_forward_is_refused_not_rebuilt_as_a_plain_one():
    """NTKLinear (model=ntk_mlp) scales F.linear by sigma_w / sqrt(fan_in) and 1/sqrt(density): rebuilt
    as a plain nn.Linear the compacted model was off by about 40 on outputs of about 2, and
    metrics.speedup stopped the run after training. Such a layer is refused with the reason."""
    from prune_cli.models.ntk_mlp import NTKLinear

    model = nn.Sequential(NTKLinear(4, 8), nn.ReLU(), NTKLinear(8, 3))
    with torch.no_grad():
        model[0].weight[:2] = 0  # two dead units: a plain rebuild would compact them away
    with pytest.raises(CompactionError, match="NTKLinear.*own forward"):
        compact(model)


class SkipMLP(nn.Module):
    """A plugin-style residual MLP: h = relu(stem(x)); h = h + fc2(relu(fc1(h))); out = head(h)."""

    def __init__(self, skip_input: bool = False):
        super().__init__()
        self.skip_input = skip_input
        self.stem, self.fc1, self.fc2, self.head = nn.Linear(5, 6), nn.Linear(6, 7), nn.Linear(7, 6), nn.Linear(6, 3)

    def forward(self, x):
        if self.skip_input:  # the network input itself joins the branch: out = fc2(relu(fc1(x))) + x
            return self.fc2(torch.relu(self.fc1(x))) + x
        h = torch.relu(self.stem(x))
        return self.head(h + self.fc2(torch.relu(self.fc1(h))))


@pytest.mark.parametrize("skip_input", [False, True])
def test_a_residual_branch_without_weights_compacts_to_one_unit(skip_input):
    """fc2 has no weight left: no unit of fc1 is read, but the sum carries the input on (through the
    stem, or the network input itself), so the network is connected. fc1 keeps one unit, read by
    fc2 with zero weights, and fc2 still adds its bias, as in the masked model."""
    torch.manual_seed(0)
    model = SkipMLP(skip_input)
    with torch.no_grad():
        model.fc2.weight.zero_()
        model.fc2.bias.uniform_(0.5, 1.0)
    small, report = compact(model)
    assert report.units == {"fc1": (1, 7)} and report.emptied == ["fc1"]
    assert small.fc1.out_features == small.fc2.in_features == 1
    x = torch.randn(4, 6 if skip_input else 5)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-6, atol=1e-6)


def test_an_mlp_with_an_emptied_layer_is_still_refused_as_disconnected():
    """No weight left in net.3: no unit of net.1 is read and nothing else carries the input to the
    output, so the masked network's output does not depend on its input."""
    model = MLP(12, [16, 16], 4)
    with torch.no_grad():
        model.net[3].weight.zero_()
    with pytest.raises(CompactionError, match="no unit of net.1 is read.*disconnected"):
        compact(model)


class SharedNet(nn.Module):
    """One Linear layer (or one BatchNorm) called twice in forward, as a plugin model may do."""

    def __init__(self, share: str):
        super().__init__()
        self.share = share
        self.stem, self.shared, self.head = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)
        if share == "norm":
            self.mid, self.norm = nn.Linear(6, 6), nn.BatchNorm1d(6)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        if self.share == "linear":
            h = torch.relu(self.shared(torch.relu(self.shared(h))))
        else:
            h = torch.relu(self.norm(self.mid(torch.relu(self.norm(self.shared(h))))))
        return self.head(h)


@pytest.mark.parametrize("share, name", [("linear", "shared"), ("norm", "norm")])
def test_a_layer_called_twice_is_refused_naming_it(share, name):
    """channel_flow recorded only the last call of a shared module: a shared Linear read only its own
    first output, so the stem looked unread and compaction refused the network as "disconnected"; a
    shared BatchNorm was sliced for the channels of one call and the compact model's forward failed
    ("running_mean should contain 6 elements not 3"). Such a model is refused, naming the module."""
    torch.manual_seed(0)
    model = SharedNet(share).eval()
    with torch.no_grad():
        model.stem.weight[:2] = 0
        model.stem.bias[:2] = 0
        model.shared.weight[:, 2:4] = 0
        model.head.weight[:, :3] = 0
    with pytest.raises(CompactionError, match=f"{name}.*called more than once"):
        compact(model)


def test_the_speedup_metric_reports_a_shared_layer_as_the_reason_compact_dense_is_absent(tmp_path):
    from omegaconf import OmegaConf

    from prune_cli.data.splits import DataSplits
    from prune_cli.metrics import METRICS
    from tests.helpers import metric_context

    torch.manual_seed(0)
    dense = SharedNet("linear").eval()
    model = SharedNet("linear").eval()
    model.load_state_dict(dense.state_dict())
    with torch.no_grad():
        model.head.weight[:, :3] = 0
    data = DataSplits(*(torch.randn(4, 4), torch.randint(0, 2, (4,))) * 3, num_classes=2)
    ctx = metric_context(model, data, dense=dense, run_dir=tmp_path)
    node = OmegaConf.create({"batch_size": 4, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    rows = METRICS.get("speedup")(ctx, "pruned", node).tables["speedup.csv"]
    notes = {r["note"] for r in rows if r["path"] == "compact_dense"}
    (note,) = notes
    assert note.startswith("absent: ") and "shared" in note and "called more than once" in note
    assert {r["path"] for r in rows} >= {"dense", "masked_dense", "compact_dense"}
