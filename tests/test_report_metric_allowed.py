"""`--metric NAME` refused: the allowed list named only the metrics recorded on `--split`, yet a metric
recorded on exactly one split that --split does not choose (compression_ratio on `model`, mia_loss_auc on
`membership`) is accepted and compared there (docs/report.md "The metric compared"). The list now names
those too, each with its split; a metric that would still be refused (recorded on several other splits,
or on `val` only under --split test) is not listed. A hand-made metrics table, no runs."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report.compare import check_metric
from prune_cli.report.inputs import ReportInputError


def _metrics() -> pd.DataFrame:
    rows = [
        ("finetuned", "test", "accuracy"),
        ("finetuned", "test", "ece"),
        ("finetuned", "val", "accuracy"),
        ("finetuned", "val", "val_only"),
        ("finetuned", "model", "compression_ratio"),
        ("pruned", "membership", "mia_loss_auc"),
        ("finetuned", "model", "two_splits"),
        ("finetuned", "train", "two_splits"),
        ("dense", "train", "dense_only"),
    ]
    return pd.DataFrame(rows, columns=["phase", "split", "metric"]).assign(value=0.5)


def test_the_refusal_lists_every_metric_it_would_accept_with_the_split_of_those_off_split():
    metrics = _metrics()
    with pytest.raises(ReportInputError) as refused:
        check_metric(metrics, "foo", "test")
    # by hand: on test accuracy and ece; on exactly one split --split does not choose: compression_ratio
    # (model), mia_loss_auc (membership); not val_only (val is a split --split chooses), two_splits, dense_only
    allowed = "allowed: accuracy, ece, compression_ratio (model split), mia_loss_auc (membership split)"
    assert str(refused.value).endswith(allowed), str(refused.value)
    for name, split in (("accuracy", "test"), ("ece", "test"), ("compression_ratio", "model"), ("mia_loss_auc", "membership")):
        assert check_metric(metrics, name, "test") == split  # every metric listed is accepted
    for name in ("val_only", "two_splits", "dense_only"):
        with pytest.raises(ReportInputError):
            check_metric(metrics, name, "test")
