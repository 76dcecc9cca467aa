"""The one layer graph (prune_cli/models/graph.py) against independent descriptions: a forward pass
with hooks on every leaf module, following tensor identities (what the scores used before the
graph existed), on every built-in architecture; and hand-worked answers on small networks."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

import prune_cli.cli  # noqa: F401  (schemas and resolvers)
from prune_cli.models import build_model
from prune_cli.models.base import PRUNABLE_TYPES
from prune_cli.models.graph import is_affine, is_nonlinear, trace
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet, ShortcutA
from tests.conftest import REPO

MODELS = {
    "mlp": ((2,), 3),
    "lenet_300_100": ((1, 28, 28), 10),
    "cnn1d": ((40,), 10),
    "lenet5": ((1, 28, 28), 10),
    "conv6": ((3, 32, 32), 10),
    "vgg11": ((3, 32, 32), 10),
    "resnet20": ((3, 32, 32), 10),
    "ntk_mlp": ((2,), 3),
}


def hook_followers(model: nn.Module, input_shape) -> dict[str, tuple]:
    """(BatchNorm, ReLU, consumers of the ReLU's output) per prunable module, from one forward pass:
    hooks on the leaf modules record (module, id(input), id(output)); a module's producer is the
    module whose output tensor it reads."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children()) or isinstance(m, PRUNABLE_TYPES)]
    calls, keep = [], []

    def hook(name):
        def fn(mod, inputs, output):
            keep.extend([inputs[0], output])
            calls.append((name, mod, id(inputs[0]), id(output)))

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    with torch.no_grad():
        model.eval()(torch.zeros(2, *input_shape))
    for h in handles:
        h.remove()
    producer = {}
    for name, mod, _, out in calls:
        producer.setdefault(out, (name, mod))
    prunable = {n for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}
    bn, relu, consumers, activation_of = {}, {}, dict.fromkeys(prunable, 0), {}
    for name, mod, inp, out in calls:
        src = producer.get(inp)
        if src is not None:
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and src[0] in prunable:
                bn[src[0]] = mod
            elif isinstance(mod, nn.ReLU):
                owner = src[0] if src[0] in prunable else next((n for n, b in bn.items() if b is src[1]), None)
                if owner is not None:
                    relu[owner], activation_of[out] = mod, owner
        if inp in activation_of:
            consumers[activation_of[inp]] += 1
    return {n: (bn.get(n), relu.get(n), consumers[n]) for n in prunable}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_followers_agree_with_a_hooked_forward_pass(name):
    shape, classes = MODELS[name]
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={name}"])
    model = build_model(cfg.model, shape, classes)
    graph, hooked = trace(model), hook_followers(model, shape)
    assert graph.traced and len(graph) == len(hooked)
    for info in graph.values():
        norm, relu, consumers = hooked[info.module_name]
        assert info.norm is norm and info.activation is relu, info.name
        if relu is not None:
            assert info.consumers == consumers, info.name


def test_links_of_a_plain_mlp_and_of_a_resnet():
    graph = trace(MLP(4, [5, 6], 3))
    assert [(i.name, i.next, i.to_output) for i in graph.values()] == [
        ("net.1.weight", "net.3.weight", False),
        ("net.3.weight", "net.5.weight", False),
        ("net.5.weight", None, True),
    ]
    assert graph.is_chain() and graph["net.5.weight"].is_classifier
    resnet = trace(CifarResNet(20, 3, 10))
    # the stem's activation feeds the first block's conv and its shortcut: no single successor
    assert resnet["conv1.weight"].next is None and resnet["conv1.weight"].consumers == 2
    # inside a block: conv1 -> bn1 -> relu1 -> conv2 is a plain link
    assert resnet["layer1.0.conv1.weight"].next == "layer1.0.conv2.weight"
    assert resnet["layer1.0.conv1.weight"].consumers == 1
    assert not resnet.is_chain()


def test_ntk_linear_layers_are_traced_as_layers():
    """NTKLinear subclasses nn.Linear; the graph keeps it as one layer (fx alone would trace into it)."""
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["model=ntk_mlp", "model.widths=[8,8]"])
    graph = trace(build_model(cfg.model, (2,), 3))
    assert [i.next for i in graph.values()] == ["net.3.weight", "net.5.weight", None] and graph.is_chain()


def test_graph_of_a_model_on_the_meta_device_equals_the_real_one():
    real = trace(CifarResNet(20, 3, 10))
    with torch.device("meta"):
        meta = trace(CifarResNet(20, 3, 10))
    assert [(i.name, i.next, i.factor, i.consumers) for i in real.values()] == [
        (i.name, i.next, i.factor, i.consumers) for i in meta.values()
    ]


def test_roles_for_region_counting():
    assert is_affine(nn.Linear(2, 2)) and is_affine(nn.BatchNorm1d(2)) and is_affine(ShortcutA(4, 8, 2))
    assert is_nonlinear(nn.ReLU()) and is_nonlinear(nn.MaxPool2d(2))
    assert not is_affine(nn.Tanh()) and not is_nonlinear(nn.Tanh())
