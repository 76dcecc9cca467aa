"""Layer pruning's pre-run check of the model (schedule=layer_pruning needs residual sections) builds
the model like the pre-run pass does (docs/performance.md, "Start-up"): on the CPU, not on the meta
device, whose kernels import torch._dynamo (slower than importing torch) on first use; and it leaves
the random streams and the thread count as they were, so the run's own initialisation is unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from prune_cli.pruning.train_time.common import meta_model
from tests.helpers import composed

# Runs the console entry point in a fresh interpreter (torch._dynamo is imported once per process) and
# reports the exit codes and whether torch._dynamo was imported.
DRIVER = """
import json, sys
from hydra.core.global_hydra import GlobalHydra
import prune_cli.cli as cli

codes = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["prune-run", *args]
    try:
        cli.main()
    except SystemExit as stop:
        codes.append(stop.code)
    GlobalHydra.instance().clear()
print("RESULT " + json.dumps({"codes": codes, "dynamo": "torch._dynamo" in sys.modules}))
"""


def test_layer_pruning_on_a_cnn_without_sections_is_refused_without_importing_dynamo(tmp_path):
    commands = [
        ["schedule=layer_pruning", "model=cnn1d", "dataset=mnist1d"],
        ["schedule=layer_pruning", "model=mlp", "dataset=mnist1d"],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT ") :]) == {"codes": [2, 2], "dynamo": False}, proc.stderr[-3000:]
    assert proc.stderr.count("a model with residual sections") == 2
    assert not list(tmp_path.iterdir())  # nothing created


def test_the_checked_model_has_the_run_models_layers_and_leaves_rng_and_threads_alone():
    cfg = composed("schedule=layer_pruning", "model=res_mlp", "dataset=mnist1d")
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    model = meta_model(cfg)
    assert torch.equal(torch.rand(3), expected_next)  # the global stream did not move
    assert torch.get_num_threads() == threads
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.residual_sections() and model.section_branches()
    # the same layers as a model built normally for MNIST-1D (40 inputs, 10 classes)
    from prune_cli.models import build_model

    real = build_model(cfg.model, (40,), 10)
    assert [(n, p.shape) for n, p in model.named_parameters()] == [(n, p.shape) for n, p in real.named_parameters()]
