"""A layer collapse that block, bcr and channel pruning are bound to make is refused before any work, with
the key whose value causes it (docs/allocation.md, "Before any work").

FAST's MLP is 2-16-16-3: net.1 16x2 (32 weights), net.3 16x16 (256), net.5 3x16 (48); N = 336. The
expected values are worked out by hand in each test's docstring: block 4x4 (the default) cuts net.1 into
4 blocks of 4x2 = 8, net.3 into 16 of 16 and net.5 into 4 of 3x4 = 12; the pruner accepts a kept total k at
sparsity s when |(1 - k/336) - (1 - round((1 - s) 336)/336)| <= 0.005 (the default tolerance), i.e. k within
one weight of the target (0.005 x 336 = 1.68)."""

from __future__ import annotations

import pytest
import torch

from prune_cli.core.errors import ConfigError
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST
from tests.helpers import composed, refused_before_any_work

EXPLICIT_ZERO = ["sparsity=0.47619", "method.allocation=explicit", "method.layer_densities=[1.0,0.5625,0.0]"]


@pytest.mark.parametrize("structure", ["block", "bcr"])
def test_explicit_zero_density_is_refused_before_training_with_block_and_bcr(structure):
    """Densities [1, 0.5625, 0]: counts 32, 144, 0, total 176 = round(0.52381 x 336). Every count is one
    the layer reaches (block: 4 blocks of 8 in net.1, 9 blocks of 16 in net.3; bcr: 4 rows x 2 columns in
    each of net.1's 4x2 blocks, 3 x 3 in each of net.3's 16 blocks = 144), so the balancing keeps each layer
    at its count and net.5 keeps nothing: the pruner's collapse after dense training before this fix."""
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, f"method.structure={structure}", EXPLICIT_ZERO))
    assert err.value.key == "method.layer_densities" and list(err.value.value) == [1.0, 0.5625, 0.0]
    assert "net.5.weight would keep none" in err.value.allowed and "a density above 0 for it" in err.value.allowed
    assert "method.allocation=erk" not in err.value.allowed  # a lower sparsity or another allocation does not apply
    validate(composed(FAST, f"method.structure={structure}", EXPLICIT_ZERO, "method.allow_collapse=true"))


def test_a_layer_allocated_none_that_block_gives_a_block_is_accepted():
    """Densities [1, 0.55, 0] at sparsity 1 - 173/336 = 0.485119: counts 32, round(140.8) = 141, 0. net.3's
    nearest multiple of 16 is 144, total 176, more than one weight from 173; totals of 8a + 16b + 12c are
    multiples of 4, so 172 is the only accepted one, and the smallest largest density deviation reaching it
    is 32 + 128 + 12 (deviations 0, 12.8/256 = 0.05, 12/48 = 0.25; 24 + 112 + 36 deviates 0.75 in net.5):
    the classifier keeps one block. Checked against the pruner on random weights: it keeps 12 of net.5's 48."""
    from prune_cli.models import build_model
    from prune_cli.pruning import PruneContext, prune

    explicit = ["method.allocation=explicit", "method.layer_densities=[1.0,0.55,0.0]"]
    cfg = composed(FAST, "method.structure=block", "sparsity=0.485119", explicit)
    validate(cfg)
    torch.manual_seed(0)
    net = build_model(cfg.model, (2,), 3)
    masks = prune(net, cfg.sparsity, PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0)))
    assert {n: int(m.sum()) for n, m in masks.items()} == {"net.1.weight": 32, "net.3.weight": 128, "net.5.weight": 12}


@pytest.mark.parametrize("structure", ["unstructured", "block"])
def test_erk_plus_classifier_density_rounding_to_none_names_fc_density(structure):
    """erk_plus gives the classifier round(fc_density x 48) at every sparsity: 0 for fc_density 0.0 and
    0.01 (0.48), so lowering the sparsity cannot help; 0.0105 gives round(0.504) = 1 and passes (the other
    layers get (168 - 0.504) / 288 = 0.58 of their weights). The smallest that keeps one: above 0.5 / 48 =
    0.0104167."""
    base = [FAST, f"method.structure={structure}", "sparsity=0.5", "method.allocation=erk_plus"]
    for fc in (0.0, 0.01):
        with pytest.raises(ConfigError) as err:
            validate(composed(*base, f"method.fc_density={fc}"))
        assert err.value.key == "method.fc_density" and err.value.value == fc
        assert "net.5.weight would keep none" in err.value.allowed and "above 0.0104167" in err.value.allowed
    validate(composed(*base, "method.fc_density=0.0105"))
    validate(composed(*base, "method.fc_density=0.0", "method.allow_collapse=true"))


CHANNEL = [*FAST, "method.structure=channel", "method.allocation=layerwise"]


def test_channel_refuses_a_sparsity_only_reached_by_removing_every_unit():
    """u units kept in each hidden layer keep 2u + u^2 + 3u = 5u + u^2 weights. At 0.998 the target is
    round(0.672) = 1: u = 0 keeps 0 (sparsity 1, 0.002976 from 1 - 1/336 = 0.997024, within 0.005) but
    empties every layer; u = 1 keeps 6, sparsity 1 - 6/336 = 0.982143, 0.014881 away: refused, naming
    0.982143. At 0.985 (target round(5.04) = 5, 0.985119) u = 1 is 0.002976 away: accepted. With
    method.allow_collapse=true u = 0 is allowed and 0.998 passes."""
    with pytest.raises(ConfigError) as err:
        validate(composed(CHANNEL, "sparsity=0.998"))
    assert err.value.key == "sparsity" and "0.982143" in err.value.allowed
    assert "method.allocation=erk" not in err.value.allowed
    validate(composed(CHANNEL, "sparsity=0.985"))
    validate(composed(CHANNEL, "sparsity=0.998", "method.allow_collapse=true"))


@pytest.mark.parametrize(
    "args, named",
    [
        (["method.structure=block", *EXPLICIT_ZERO], ["'method.layer_densities'", "net.5.weight"]),
        (["method.structure=bcr", *EXPLICIT_ZERO], ["'method.layer_densities'", "net.5.weight"]),
        (["method.structure=block", "sparsity=0.5", "method.allocation=erk_plus", "method.fc_density=0.0"], ["'method.fc_density'"]),
        (["method.structure=channel", "method.allocation=layerwise", "sparsity=0.998"], ["'sparsity'", "0.982143"]),
    ],
)
def test_prune_run_stops_before_any_work(args, named, finished_results):
    """The auditor's commands: exit 2 before dense training, nothing created, the finished run byte-identical."""
    refused_before_any_work([*FAST, *args], finished_results, *named)
