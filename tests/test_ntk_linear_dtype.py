"""NTKLinear's keep-probability rescale in the layer's own dtype (docs/analysis.md, `ntk_mlp`).

The multiplier sigma_w / sqrt(fan_in * q) (Yang & Wang, AISTATS 2023) is compared with the same
formula written out by hand in float64; before, q was computed in float32 whatever the weight's dtype,
so a float64 layer's output was off by ~3e-8 relative instead of rounding error."""

from __future__ import annotations

import math

import torch

from prune_cli.models.ntk_mlp import NTKLinear


def test_float64_ntk_linear_rescale_is_exact_to_double_precision():
    torch.manual_seed(0)
    layer = NTKLinear(7, 3).double()  # sigma_w = sqrt(2), no bias
    with torch.no_grad():
        layer.weight[:, :4] = 0.0  # 12 of 21 weights pruned: q = 9 / 21
    w = layer.weight.detach().clone()
    x = torch.randn(5, 7, dtype=torch.float64)
    # by hand: sigma_w / sqrt(fan_in * q) = sqrt(2) / sqrt(7 * 9 / 21)
    expected = (x @ w.T) * (math.sqrt(2.0) / math.sqrt(7 * 9 / 21))
    got = layer(x).detach()
    assert got.dtype == torch.float64
    rel = float(((got - expected).abs() / expected.abs()).max())
    assert rel < 1e-12, rel


def test_float32_ntk_linear_rescale_unchanged():
    torch.manual_seed(0)
    layer = NTKLinear(7, 3)
    with torch.no_grad():
        layer.weight[:, :4] = 0.0
    x = torch.randn(5, 7)
    expected = (x.double() @ layer.weight.detach().double().T) * (math.sqrt(2.0) / math.sqrt(7 * 9 / 21))
    torch.testing.assert_close(layer(x).detach().double(), expected, rtol=1e-5, atol=1e-6)
