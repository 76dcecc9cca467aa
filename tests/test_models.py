"""Every registered model builds, runs, lists its prunable layers in forward order, and names its classifier."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.models import MODELS, build_model
from prune_cli.models.base import PRUNABLE_TYPES

SHAPES = {
    "mlp": (40,),
    "lenet_300_100": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "conv6": (3, 32, 32),
    "vgg11": (3, 32, 32),
    "vgg16": (3, 32, 32),
    "vgg19": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "resnet32": (3, 32, 32),
    "resnet56": (3, 32, 32),
    "cnn1d": (40,),
    "ntk_mlp": (16,),
    "res_mlp": (40,),
}
EXTRA = {
    "mlp": {"widths": [8, 8], "bias": True},
    "cnn1d": {"channels": [4, 4], "kernel_size": 5, "hidden": 8},
    "ntk_mlp": {"widths": [8, 8], "sigma_w": 1.414, "sigma_b": 0.0, "rescale": True},
    "res_mlp": {"width": 8, "blocks": 2, "bias": True},
}


def forward_order(model, shape):
    order = []
    hooks = [
        m.register_forward_hook(lambda mod, i, o, n=name: order.append(n))
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE_TYPES)
    ]
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    for h in hooks:
        h.remove()
    return order, out


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_model_builds_and_declares_prunable_layers_in_forward_order(name):
    assert set(SHAPES) == set(MODELS.names())
    model = build_model(OmegaConf.create({"name": name, **EXTRA.get(name, {})}), SHAPES[name], 10)
    order, out = forward_order(model, SHAPES[name])
    assert out.shape == (2, 10)
    declared = [n for n, _ in model.prunable_layers()]
    assert declared == order
    assert model.classifier == declared[-1]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_literature():
    build = lambda name, shape: build_model(OmegaConf.create({"name": name}), shape, 10)  # noqa: E731
    # LeNet-300-100: 784*300+300 + 300*100+100 + 100*10+10
    assert count_params(build("lenet_300_100", (1, 28, 28))) == 266_610
    # ResNet-20 (option A shortcuts) has 0.27 M parameters (He et al. 2016, Table 6).
    assert round(count_params(build("resnet20", (3, 32, 32))) / 1e6, 2) == 0.27
    assert round(count_params(build("resnet56", (3, 32, 32))) / 1e6, 2) == 0.85
    # LeNet-5 on 28x28 with padding 2: 156 + 2416 + 48120 + 10164 + 850
    assert count_params(build("lenet5", (1, 28, 28))) == 61_706
