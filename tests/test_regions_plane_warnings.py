"""Counting regions on a plane prints no warning about PyTorch's internals: the first forward-AD
dual in a process loads PyTorch's decompositions, which call the deprecated `torch.jit.script`
(torch 2.14). A fresh interpreter is the point: the decompositions load once per process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import torch
from prune_cli.analysis.regions.common import prepare
from prune_cli.analysis.regions.plane import count_plane, make_plane
from prune_cli.models.mlp import MLP
torch.manual_seed(0)
net = prepare(MLP(2, [5], 2))
plane = make_plane(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "square", radius=3.0)
print(count_plane(net, plane).count)
"""


def test_first_plane_count_in_a_process_warns_nothing():
    done = subprocess.run([sys.executable, "-W", "error", "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 1
    assert "Warning" not in done.stderr, done.stderr
