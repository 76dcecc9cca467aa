"""A metric that reports the run's own recall must see the run's predictions: under accel.precision=bf16
the recorded evaluation (metrics.csv, per_class.csv, predictions.npz) runs in bf16, and recall_distortion
evaluated the same model in fp32, so its recall differed from per_class.csv's for the same model (class 1:
0.7667 against 0.7333 in the audit's run) and its randomisation null read bf16 predictions beside fp32 rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.accel import Accel
from prune_cli.data.splits import DataSplits
from prune_cli.metrics import METRICS
from prune_cli.models.mlp import MLP
from prune_cli.training import evaluate
from tests.helpers import metric_context


def test_recall_distortion_evaluates_at_the_runs_precision(tmp_path):
    torch.manual_seed(0)
    model = MLP(20, [32], 20)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 20, generator=g)
    y = evaluate(model, x, torch.zeros(2000, dtype=torch.long), 256).predictions  # labels: fp32's predictions
    data = DataSplits(x[:0], y[:0], x[:0], y[:0], x, y, num_classes=20)
    bf16 = Accel(precision="bf16")
    preds = evaluate(model, x, y, 256, bf16).predictions.numpy()
    if np.array_equal(preds, y.numpy()):
        pytest.skip("no prediction differs between fp32 and bf16 on this torch build")
    node = OmegaConf.create({"enabled": True, "splits": ["test"], "save_predictions": True})
    ctx = metric_context(model, data, run_dir=tmp_path, eval_batch_size=256, accel=bf16)
    out = METRICS.get("recall_distortion")(ctx, "dense", node)
    labels = y.numpy()
    recall = {c: float((preds[labels == c] == c).mean()) for c in np.unique(labels)}  # by hand, from the bf16 predictions
    rows = {r["class"]: r["recall"] for r in out.tables["recall_distortion.csv"] if r["support"]}
    assert rows == pytest.approx(recall, abs=1e-12)
