"""Helpers shared by the tests.

- `metric_context`: the MetricContext a metric receives, for calling a metric directly;
- the random-pruning NTK experiment, a research helper in scripts/ntk_random.py (not part of the
  package, docs/architecture.md), which the tests reach from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from ntk_random import random_pruning_ntk, unit_scaled_inputs  # noqa: E402


def metric_context(model, data, dense=None, run_dir=None, eval_batch_size: int = 16, masks=None, state=None):
    """A MetricContext for calling a metric function directly: `dense` is the trained dense model
    (None: no dense reference yet)."""
    import torch
    from omegaconf import OmegaConf

    from prune_cli.metrics import MetricContext

    names = tuple(f"{n}.weight" for n, _ in model.prunable_layers()) if hasattr(model, "prunable_layers") else ()
    return MetricContext(model=model, data=data, masks=masks or {}, prunable=names, device=torch.device("cpu"),
                         train=OmegaConf.create({"eval_batch_size": eval_batch_size}), run_dir=Path(run_dir or "."),
                         dense=(lambda: dense) if dense is not None else None,
                         state=state if state is not None else {})


__all__ = ["metric_context", "random_pruning_ntk", "unit_scaled_inputs"]
