"""Layer pruning's pre-run check of the model (schedule=layer_pruning needs residual sections) builds
the model like the pre-run pass does (docs/performance.md, "Start-up"): on the CPU, not on the meta
device, whose kernels import torch._dynamo (slower than importing torch) on first use (a refused model
imports no torch._dynamo: tests/startup_driver.py's "layer_pruning" commands, read by
tests/test_startup_model_check.py); and it leaves the random streams and the thread count as they
were, so the run's own initialisation is unchanged."""

from __future__ import annotations

import torch

from prune_cli.pruning.train_time.common import meta_model
from tests.helpers import composed


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
