"""Where a layer's channels lie after a view, reshape or flatten (prune_cli/models/graph.py
`_reshape_layout`, `reads_units_of`).
- A 2-D (batch, units) Linear output viewed as (batch, units, 1, 1) (or reshaped to (batch, units, 1))
  has its units on axis 1, so a 1x1 convolution reads them: compacting it equals the masked model, and
  structure=channel links the Linear to the convolution (ae92232 refused any convolution on a Linear's
  output).
- Two flattened (batch, channels) values, one from a convolution pooled to 1x1 and one from a Linear,
  are added column by column: the axis they came from no longer matters (ae92232 refused the sum).
- A flatten from dimension 2 (torch.flatten(x, 2), nn.Flatten(start_dim=2)) or a view keeping positions
  beside the channels (x.view(b, c, -1)) is no channel flatten: the Linear reading it reads positions.
  cb31702 linked the convolution to it with a factor and masked columns that are positions; now the
  link is refused with the reason.
- structure=channel's refusal names that reason and suggests module names for method.exclude."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prune_cli.core.errors import ConfigError
from prune_cli.models.base import PrunableNet
from prune_cli.models.compact import CompactionError, compact
from prune_cli.models.graph import trace
from prune_cli.models.masks import apply_masks
from prune_cli.pruning import PruneContext, prune
from tests.helpers import method_options


class LinToConv(PrunableNet):
    def __init__(self, form: str):
        super().__init__()
        self.form = form
        self.l = nn.Linear(6, 8)
        self.conv = nn.Conv2d(8, 8, 1) if form != "reshape1d" else nn.Conv1d(8, 8, 1)
        self.fc = nn.Linear(8, 10)
        self.classifier = "fc"

    def forward(self, x):
        x = torch.relu(self.l(x))
        if self.form == "size":
            x = x.view(x.size(0), -1, 1, 1)
        elif self.form == "minus_one":
            x = x.view(-1, 8, 1, 1)
        else:
            x = x.reshape(x.shape[0], -1, 1)
        x = torch.relu(self.conv(x))
        return self.fc(x.flatten(1))


class ConvPlusLinear(PrunableNet):
    """F2: flatten(pool(conv)) + flatten(lin): both (batch, 8)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 8, 3, padding=1)
        self.lin = nn.Linear(2 * 4 * 4, 8)
        self.fc = nn.Linear(8, 10)
        self.classifier = "fc"

    def forward(self, x):
        a = torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1), 1)
        b = torch.flatten(torch.relu(self.lin(x.flatten(1))), 1)
        return self.fc(a + b)


class PartialFlatten(PrunableNet):
    """fc reads the 4 positions (2x2) of each of c1's 2 channels: torch.flatten(x, 2) keeps the
    channels on axis 1. cb31702 took it for a channel flatten, fc reading 4 / 2 = 2 columns per channel."""

    def __init__(self, form: str):
        super().__init__()
        self.form = form
        self.c1 = nn.Conv2d(2, 2, 1)
        self.flat = nn.Flatten(start_dim=2)
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(8, 3)
        self.classifier = "out"

    def forward(self, x):
        h = torch.relu(self.c1(x))
        if self.form == "function":
            h = torch.flatten(h, 2)
        elif self.form == "module":
            h = self.flat(h)
        else:
            h = h.view(h.size(0), h.size(1), -1)
        return self.out(torch.relu(self.fc(h)).flatten(1))


def _ctx(structure: str, tolerance: float = 0.5):
    return PruneContext(
        method=method_options(structure=structure, allocation="layerwise", sparsity_tolerance=tolerance),
        generator=torch.Generator().manual_seed(0),
    )


def _compacts_to_masked(model, shape, structure="channel_group"):
    masks = prune(model, 0.5, _ctx(structure))
    with torch.no_grad():
        apply_masks(model, masks)
    model = model.double().eval()
    small, report = compact(model)
    assert report.units and any(kept < total for kept, total in report.units.values())
    x = torch.randn(5, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-10, atol=1e-12)
    return masks


@pytest.mark.parametrize("form", ["size", "minus_one", "reshape1d"])
def test_a_linear_output_viewed_for_a_1x1_convolution_is_linked_and_compacts_to_the_masked_function(form):
    """ae92232: CompactionError 'applies a convolution to a Linear's output' (a correct model refused)."""
    torch.manual_seed(0)
    model = LinToConv(form)
    graph = trace(model)
    assert graph["l.weight"].next == "conv.weight" and graph["l.weight"].factor == 1 and not graph["l.weight"].unlinked
    if form == "minus_one":  # the literal 8 of view(-1, 8, 1, 1) is written in forward: l keeps its 8 units
        masks = prune(model, 0.5, _ctx("channel_group"))
        assert not masks["l.weight"].all(1).all()
        assert torch.equal(masks["conv.weight"].flatten(1).any(0), masks["l.weight"].all(1))
        with torch.no_grad():
            apply_masks(model, masks)
        model = model.double().eval()
        small, report = compact(model)
        assert "l" not in report.units and small.l.out_features == 8
        x = torch.randn(5, 6, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(small.eval()(x), model(x), rtol=1e-10, atol=1e-12)
    else:
        _compacts_to_masked(model, (6,))


@pytest.mark.parametrize("form", ["size", "minus_one", "reshape1d"])
def test_structure_channel_prunes_the_linear_with_the_convolution_columns_it_feeds(form):
    """ae92232 (view(-1, 8, 1, 1)): ConfigError, the Linear was left without its next layer."""
    torch.manual_seed(0)
    model = LinToConv(form)
    if form == "minus_one":  # compaction keeps l's 8 units (the test above)
        masks = prune(model, 0.5, _ctx("channel"))
    else:
        masks = _compacts_to_masked(model, (6,), structure="channel")
    rows = masks["l.weight"].all(1)
    assert not rows.all()
    cols = masks["conv.weight"].flatten(1)
    assert torch.equal(cols.any(0), rows)  # a removed unit of l is a removed input channel of conv


def test_a_flattened_pooled_conv_output_plus_a_flattened_linear_output_compacts():
    """ae92232: CompactionError 'adds values of different channel layouts'."""
    torch.manual_seed(0)
    _compacts_to_masked(ConvPlusLinear(), (2, 4, 4))


def test_adding_a_conv_output_flattened_with_positions_to_a_linear_output_is_still_refused():
    """Without pooling to 1x1, a flattened conv output has its positions as columns: the sum is refused."""

    class Unpooled(ConvPlusLinear):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.lin = nn.Linear(32, 32)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.conv(x)), 1) + torch.relu(self.lin(x.flatten(1))))

    with pytest.raises(CompactionError, match="different channel layouts"):
        compact(Unpooled())


@pytest.mark.parametrize("form", ["function", "module", "view"])
def test_a_partial_flatten_is_no_channel_flatten(form):
    """cb31702 (function, module forms): c1 -> fc linked with factor 2, structure=channel masked two
    of fc's columns (positions of every channel) with each removed channel of c1, and compaction
    removed those columns: no refusal raised."""
    torch.manual_seed(0)
    model = PartialFlatten(form)
    with pytest.raises(ConfigError, match=r"c1\.weight \(fc reads a value reshaped"):
        prune(model, 0.5, _ctx("channel"))
    with pytest.raises(CompactionError, match="where its channels lie is unknown"):
        compact(model)
    info = trace(model)["c1.weight"]
    assert info.next is None and "unknown" in info.unlinked


def test_the_channel_refusal_names_the_reason_and_module_names_for_method_exclude():
    """ae92232: '(no residual add or concatenation); exclude these with method.exclude=[...]' only."""
    from tests.test_compact_axes import SeqNet

    with pytest.raises(ConfigError) as err:
        prune(SeqNet(), 0.5, _ctx("channel", 0.2))
    message = str(err.value)
    assert "conv.weight (mix applies a Linear along the last axis" in message
    assert "method.exclude=[conv,mix]" in message and ".weight]" not in message
