"""The N:M and block structures' pre-run refusals say what to do: N:M names the layers to exclude as
method.exclude takes them (module names), block says when every layer is a single block."""

from __future__ import annotations

import pytest

from prune_cli.core.errors import ConfigError
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST
from tests.helpers import composed

NM = ["method.structure=nm", "method.allocation=layerwise", "sparsity=0.5"]


def test_nm_names_the_layers_to_exclude_by_module_name():
    """FAST: net.1 has 2 inputs (dataset.input_dim=2), not a multiple of 4."""
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, NM))
    assert "method.exclude=[net.1]" in err.value.allowed
    validate(composed(FAST, NM, "method.exclude=[net.1]"))  # following the advice works


# dataset.input_dim=8: net.1 16x8, net.3 16x16, net.5 3x16 (N = 432)
BLOCK = [*FAST, "dataset.input_dim=8", "method.structure=block"]


@pytest.mark.parametrize("extra", [["method.block_shape=[64,64]"], ["method.block_shape=[16,16]", "method.allocation=layerwise"]])
def test_block_shape_covering_every_layer_is_named(extra):
    with pytest.raises(ConfigError) as err:
        validate(composed(BLOCK, "sparsity=0.5", *extra))
    assert err.value.key == "method.block_shape"
    text = err.value.allowed
    assert "single block" in text and "net.1 (16x8)" in text and "net.3 (16x16)" in text and "net.5 (3x16)" in text
    # halved until it reaches 0.5: [8,8] splits net.1 into 2 blocks of 64, net.3 into 4 of 64, net.5 into 2 of 3x8 = 24;
    # one of net.1's, two of net.3's and one of net.5's keep 64 + 128 + 24 = 216 = 0.5 x 432
    assert "method.block_shape=[8,8]" in text
    validate(composed(BLOCK, "sparsity=0.5", *extra[1:], "method.block_shape=[8,8]"))  # following the advice works


def test_block_shape_suggestion_is_a_block_shape_that_reaches_the_target():
    """FAST (net.1 16x2, net.3 16x16, net.5 3x16; N = 336) with [16,16]: every layer one block. Not [1,1] (unstructured
    pruning): [8,8] gives net.1 2 blocks of 16, net.3 4 of 64, net.5 2 of 24; 16 + 128 + 24 = 168 = 0.5 x 336."""
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, "method=magnitude", "method.structure=block", "method.block_shape=[16,16]", "sparsity=0.5"))
    assert err.value.key == "method.block_shape" and "method.block_shape=[8,8]" in err.value.allowed
    assert "[1,1]" not in err.value.allowed
    validate(composed(FAST, "method=magnitude", "method.structure=block", "method.block_shape=[8,8]", "sparsity=0.5"))


def test_block_shape_fitting_some_layers_keeps_working():
    """[16,8]: net.1 one block of 128, net.3 two of 128, net.5 two of 24. Keeping a block of each layer and
    one of net.5's: 128 + 128 + 24 = 280 of 432, sparsity 1 - 280/432 = 0.351852 (kept round(279.9999) = 280)."""
    validate(composed(BLOCK, "method.block_shape=[16,8]", "sparsity=0.351852"))
    with pytest.raises(ConfigError) as err:  # an unreachable target is still the sparsity's refusal
        validate(composed(BLOCK, "method.block_shape=[16,8]", "sparsity=0.5"))
    assert err.value.key == "sparsity" and "0.351852" in err.value.allowed
