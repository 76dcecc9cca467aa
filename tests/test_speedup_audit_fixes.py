"""Regression tests for the audit of the structured-sparsity / speedup path: grouped convolutions
reading the network input (compaction), the machine's load in speedup.csv / latency.csv, the noise
margin of the best sparse path, and scripts/bench_speedup.py's order rotation and option checks."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.models.compact import CompactionError, compact


class _GroupedStem(nn.Module):
    """A plugin-style model whose first layer is a grouped convolution reading the network input."""

    def __init__(self, groups: int):
        super().__init__()
        self.c1 = nn.Conv2d(6 if groups == 3 else 4, 6, 3, groups=groups, padding=1)
        self.act = nn.ReLU()
        self.c2 = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.c2(self.act(self.c1(x)))


@pytest.mark.parametrize("groups, unread", [(2, slice(0, 2)), (3, slice(0, 1))])
def test_a_grouped_convolution_reading_the_network_input_is_refused_with_the_reason(groups, unread):
    """groups=2 with two channels unread was compacted across a group boundary (its output differed
    from the masked model's by up to 0.36, silently); groups=3 with one channel unread raised a plain
    ValueError from nn.Conv2d that the speedup metric did not catch."""
    torch.manual_seed(0)
    model = _GroupedStem(groups)
    with torch.no_grad():
        model.c2.weight[:, unread] = 0
    with pytest.raises(CompactionError, match=f"groups={groups}"):
        compact(model)


def test_the_speedup_metric_reports_a_grouped_input_convolution_as_absent():
    from prune_cli.metrics.speedup import execution_paths

    model = _GroupedStem(3)
    with torch.no_grad():
        model.c2.weight[:, :1] = 0
    masks = {n: (p != 0) for n, p in model.named_parameters() if n.endswith("weight")}
    node = OmegaConf.create({"batch_size": 2, "warmup": 0, "repeats": 1, "bsr_blocksize": None, "rtol": 1e-4})
    _paths, absent = execution_paths(model, masks, node)
    assert "grouped convolution (groups=3)" in absent["compact_dense"]
