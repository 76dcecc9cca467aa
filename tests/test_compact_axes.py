"""Which axis carries a layer's channels (prune_cli/models/graph.py `reads_units_of`): axis 1 after a
convolution, the last axis after a Linear. A Linear applied along the length of a Conv1d output (not
flattened) whose in_features happened to equal the channel count was taken to read the conv's
channels: compaction removed a conv channel together with a column of the Linear (a position, not a
channel) and the compact model crashed at its first forward; `method.structure=channel` masked the
same wrong columns. A flattened Linear output of more than two dimensions holds its units
interleaved, and reading it as consecutive blocks compacted silently into another function. Both
are now refused with the reason; the built-in models still compact to the masked model's function."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.models import build_model
from prune_cli.models.base import PrunableNet
from prune_cli.models.compact import CompactionError, compact
from prune_cli.models.graph import trace
from prune_cli.models.masks import apply_masks
from prune_cli.pruning import PruneContext, prune
from tests.helpers import method_options


class SeqNet(PrunableNet):
    """`mix` acts on the length (8) of the conv's output, which has 8 channels too."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 3, padding=1)
        self.mix = nn.Linear(8, 8)
        self.fc = nn.Linear(64, 3)
        self.classifier = "fc"

    def forward(self, x):
        return self.fc(torch.relu(self.mix(torch.relu(self.conv(x)))).flatten(1))


class TokenNet(PrunableNet):
    """`mix` acts on the last axis (6) of a (batch, 4, 6) input; its (batch, 4, 5) output is flattened,
    so unit j of `mix` is read at columns j, j + 5, j + 10, j + 15 of `fc`, not at 4 consecutive ones."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(6, 5)
        self.fc = nn.Linear(20, 3)
        self.classifier = "fc"

    def forward(self, x):
        return self.fc(torch.relu(self.mix(x)).flatten(1))


def test_a_linear_along_the_length_of_a_conv_output_is_refused_not_compacted():
    """Before: units {'conv': (7, 8)}, then RuntimeError (21x8 and 7x8) at the compact model's forward."""
    torch.manual_seed(0)
    model = SeqNet().eval()
    with torch.no_grad():
        model.mix.weight[:, 5] = 0  # position 5 of the length is unread: no conv channel is
    with pytest.raises(CompactionError, match=r"mix .*axis 1"):
        compact(model)
    graph = trace(model)
    assert graph["conv.weight"].next is None and "axis 1" in graph["conv.weight"].unlinked


def test_the_speedup_metric_reports_such_a_model_compact_dense_absent_with_the_reason():
    from prune_cli.metrics.speedup import execution_paths

    torch.manual_seed(0)
    model = SeqNet().eval()
    with torch.no_grad():
        model.mix.weight[:, 5] = 0
    masks = {n: (p != 0) for n, p in model.named_parameters() if n.endswith("weight")}
    node = OmegaConf.create({"batch_size": 2, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    paths, absent = execution_paths(model, masks, node)
    assert "compact_dense" not in paths and "convolution's output, whose channels are on axis 1" in absent["compact_dense"]


def test_channel_pruning_refuses_such_a_model_before_changing_any_weight():
    """Before: the conv's filters were pruned with columns of `mix` (positions) as their 'next' inputs."""
    torch.manual_seed(0)
    model = SeqNet().eval()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ctx = PruneContext(
        method=method_options(structure="channel", allocation="layerwise", sparsity_tolerance=0.2),
        generator=torch.Generator().manual_seed(0),
    )
    with pytest.raises(ConfigError, match="conv.weight"):
        prune(model, 0.5, ctx)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_interleaved_units_of_a_flattened_linear_output_are_refused():
    """Columns 8..11 of fc are zero: a consecutive block, which the old reading took for unit 2 of
    `mix` (factor 4) and removed with them. The true columns of unit 2 are 2, 7, 12, 17 (computed here
    from the flatten order), all nonzero: removing it changed the function silently."""
    torch.manual_seed(0)
    model = TokenNet().double().eval()
    with torch.no_grad():
        model.fc.weight[:, 8:12] = 0
    units, length = 5, 4
    assert sorted(c * units + 2 for c in range(length)) == [2, 7, 12, 17]
    assert bool(model.fc.weight[:, [2, 7, 12, 17]].ne(0).all())
    with pytest.raises(CompactionError, match="interleaved"):
        compact(model)
    assert trace(model)["mix.weight"].next is None


def _channel_pruned(model, shape):
    ctx = PruneContext(
        method=method_options(structure="channel", allocation="layerwise", sparsity_tolerance=0.2),
        generator=torch.Generator().manual_seed(0),
    )
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics and shifts (vgg)
        model(torch.randn(4, *shape))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    masks = prune(model, 0.5, ctx)
    with torch.no_grad():
        apply_masks(model, masks)
    return model.eval()


@pytest.mark.parametrize(
    "cfg, shape",
    [
        ({"name": "mlp", "widths": [16, 16], "bias": True}, (1, 6, 6)),
        ({"name": "lenet5"}, (1, 28, 28)),
        ({"name": "cnn1d", "channels": [8, 8, 8], "kernel_size": 5, "hidden": 16}, (40,)),
        ({"name": "vgg11"}, (3, 32, 32)),
    ],
    ids=["mlp", "lenet5", "cnn1d", "vgg11"],
)
def test_builtin_chain_models_still_compact_to_the_masked_function_in_float64(cfg, shape):
    torch.manual_seed(0)
    model = _channel_pruned(build_model(OmegaConf.create(cfg), shape, 10), shape).double()
    small, report = compact(model)
    assert report.units and all(kept < total for kept, total in report.units.values())
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-10, atol=1e-12)


def test_resnet20_still_compacts_to_the_masked_function_in_float64():
    from tests.test_compact_residual import SHAPE, coupled_masks, masked, resnet20, stream_keep

    model = resnet20()
    model = masked(model, coupled_masks(model, stream_keep(3))).double()
    small, report = compact(model)
    assert report.units
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-10, atol=1e-12)


def test_a_path_whose_forward_fails_is_a_clear_error_naming_it(tmp_path, monkeypatch):
    """Before: the path's exception (a RuntimeError of shapes) escaped speedup._measure as is."""
    from prune_cli.metrics import METRICS
    from prune_cli.metrics import speedup as speedup_module
    from tests.test_speedup import node, pruned_context

    ctx, *_ = pruned_context(tmp_path, "unstructured")
    real = speedup_module.execution_paths

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (21x8 and 7x8)")

    def with_broken_path(model, masks, node):
        paths, absent = real(model, masks, node)
        return {**paths, "compact_dense": (Broken(), "broken on purpose")}, absent

    monkeypatch.setattr(speedup_module, "execution_paths", with_broken_path)
    with pytest.raises(PruneCliError, match=r"execution path compact_dense failed .*RuntimeError: mat1 and mat2"):
        METRICS.get("speedup")(ctx, "pruned", node())
