"""method.structure=channel_group reads its channels from the pruner's trace of the model (the
LayerGraph of prune_cli/models/graph.py keeps torch.fx's graph), not from a trace of its own: the
channel flow from the kept graph equals one from a fresh trace, and the structure traces nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import fx

from prune_cli.models.graph import ChannelFlowError, LayerGraph, channel_flow, trace
from prune_cli.models.resnet import CifarResNet, ShortcutA
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.pruner import as_method_config
from prune_cli.pruning.registries import STRUCTURES
from prune_cli.pruning.structure import StructureContext
from tests.helpers import ConcatNet, method_options


@pytest.fixture
def traces(monkeypatch):
    """Counts torch.fx traces from here on."""
    calls = []
    original = fx.Tracer.trace

    def counting(self, root, *args, **kwargs):
        calls.append(type(root).__name__)
        return original(self, root, *args, **kwargs)

    monkeypatch.setattr(fx.Tracer, "trace", counting)
    return calls


def _flow_fields(flow):
    return {f.name: getattr(flow, f.name) for f in dataclasses.fields(flow)}


def test_flow_from_the_kept_trace_equals_a_fresh_trace():
    model = CifarResNet(20, 3, 10)
    # one option-A shortcut that moves channels to other positions than the padding does
    model.layer2[0].shortcut = ShortcutA(16, 32, 2, index=list(range(31, 15, -1)))
    graph = trace(model)
    assert graph.fx_graph is not None
    assert _flow_fields(graph.channel_flow()) == _flow_fields(channel_flow(model))


def test_the_structure_does_not_trace_the_model_again(traces):
    model = CifarResNet(20, 3, 10).eval()
    graph = trace(model)
    assert traces == ["CifarResNet"]
    scores = {f"{n}.weight": m.weight.detach().abs() for n, m in model.prunable_layers()}
    total = sum(s.numel() for s in scores.values())
    counts = {n: s.numel() // 2 for n, s in scores.items()}
    method = as_method_config(method_options(structure="channel_group", allocation="global"))
    sctx = StructureContext(method=method, layers=graph, density=0.5)
    masks = STRUCTURES.get("channel_group").masks(scores, counts, "exact", sctx)
    assert traces == ["CifarResNet"]  # no second trace
    kept = sum(int(m.sum()) for m in masks.values())
    assert 0 < kept < total


def test_a_pruning_event_traces_for_the_layer_graph_and_the_model_check_only(traces):
    model = CifarResNet(20, 3, 10).eval()
    ctx = PruneContext(
        method=method_options(structure="channel_group", allocation="global", sparsity_tolerance=0.1),
        generator=torch.Generator().manual_seed(0),
    )
    prune(model, 0.5, ctx)
    # the pruner's trace, and the channel check of select_prunable (method.structure's check_model,
    # the same check the pre-run pass makes); before, the structure traced a third time
    assert len(traces) == 2


class DataDependent(torch.nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


def test_an_untraceable_or_unfollowable_model_is_still_refused_with_the_reason():
    graph = trace(ConcatNet())
    with pytest.raises(ChannelFlowError, match="cat"):
        graph.channel_flow()
    untraceable = trace(DataDependent())
    assert not untraceable.traced and untraceable.fx_graph is None
    with pytest.raises(ChannelFlowError, match="torch.fx cannot trace"):
        untraceable.channel_flow()
    with pytest.raises(ChannelFlowError, match="no model"):
        LayerGraph().channel_flow()
