"""`prune-run metrics=full` end to end (real console entry point) and the config checks of the
recall_distortion / similarity / membership / latency metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prune_cli.run.prevalidate import validate
from tests.helpers import composed
from prune_cli.core.errors import ConfigError
from prune_cli.analysis.recall_distortion import load_predictions, randomisation_null, summarise_across_seeds

from conftest import FAST, run_cli

MINE = ("recall_distortion", "similarity", "membership", "latency")


def test_default_is_cheap_and_full_enables_every_metric():
    default = composed([])
    assert not any(default.metrics[name].enabled for name in MINE)
    full = composed("metrics=full")
    assert all(full.metrics[name].enabled for name in MINE)
    assert full.metrics.splits == default.metrics.splits and full.metrics.per_class


@pytest.mark.parametrize(
    "override,key",
    [
        ("metrics.recall_distortion.splits=[train]", "metrics.recall_distortion.splits"),
        ("metrics.recall_distortion.splits=[test,test]", "metrics.recall_distortion.splits"),
        ("metrics.similarity.batch_seed=-1", "metrics.similarity.batch_seed"),
        ("metrics.membership.sample_seed=-3", "metrics.membership.sample_seed"),
        ("metrics.similarity.split=training", "metrics.similarity.split"),
        ("metrics.similarity.num_samples=2", "metrics.similarity.num_samples"),
        ("metrics.similarity.svcca_variance=1.5", "metrics.similarity.svcca_variance"),
        ("metrics.similarity.svcca_max_dims=0", "metrics.similarity.svcca_max_dims"),
        ("metrics.membership.num_samples=1", "metrics.membership.num_samples"),
        ("metrics.latency.repeats=0", "metrics.latency.repeats"),
        ("metrics.latency.warmup=-1", "metrics.latency.warmup"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(composed("metrics=full", override))  # `metrics=full` composed once for all cases
    assert err.value.key == key and key in str(err.value)


def test_metrics_full_end_to_end(tmp_path):
    results = tmp_path / "r"
    # Small budgets for the Hessian metrics, which this test does not read (it reads the four metrics
    # above and speedup): they still run, with fewer Lanczos steps, probes and sparsity ratios.
    budgets = ["metrics.hessian.lanczos_iter=16", "metrics.hessian.hutchinson_probes=4"]
    budgets += ["metrics.pruning_limit.lanczos_iter=16", "metrics.pruning_limit.hutchinson_probes=4"]
    budgets += ["metrics.pruning_limit.ratios=50"]
    run_cli(FAST + ["metrics=full", "metrics.latency.repeats=3", "metrics.similarity.num_samples=64", *budgets], results)
    (run,) = [p.parent for p in results.glob("runs/*/COMPLETE")]
    metrics = pd.read_csv(run / "metrics.csv")
    per_class = pd.read_csv(run / "per_class.csv")
    rd = pd.read_csv(run / "recall_distortion.csv")
    for table in ("recall_distortion.csv", "similarity.csv", "latency.csv"):
        assert (results / table).exists()  # shared copy

    # recall_distortion agrees with the core per-class evaluation and the paper's formulas (Good et al. 2022)
    assert set(rd.phase) == {"dense", "pruned", "finetuned"}
    merged = rd.merge(per_class, on=["phase", "split", "class"], suffixes=("", "_pc"))
    assert len(merged) == len(rd)
    np.testing.assert_allclose(merged.recall, merged.recall_pc)
    np.testing.assert_allclose(merged.dense_recall, merged.dense_recall_pc)
    for phase in ("pruned", "finetuned"):
        pc = per_class[per_class.phase == phase].sort_values("class")
        dense = per_class[per_class.phase == "dense"].sort_values("class")
        acc = (pc.recall * pc.support).sum() / pc.support.sum()
        acc0 = (dense.recall * dense.support).sum() / dense.support.sum()
        rho, rho0 = (pc.recall.to_numpy() - acc) / acc, (dense.recall.to_numpy() - acc0) / acc0
        got = metrics[(metrics.phase == phase) & (metrics.metric == "alpha_t_ours")].value.iloc[0]
        assert got == pytest.approx((rho * rho0).sum() / (rho0**2).sum())
        assert float(metrics[(metrics.phase == phase) & (metrics.metric == "accuracy")].value.iloc[0]) == pytest.approx(acc)

    sim = pd.read_csv(run / "similarity.csv")
    assert set(sim.phase) == {"pruned", "finetuned"}
    assert sim[sim.phase == "pruned"].layer.tolist() == ["net.1", "net.3", "net.5"]
    assert sim.cka_linear.between(0, 1 + 1e-9).all() and sim.svcca.between(0, 1 + 1e-9).all()
    assert (sim.num_samples == 64).all()
    mia = metrics[metrics.split == "membership"]
    assert set(mia.phase) == {"dense", "pruned", "finetuned"}
    auc = mia[(mia.metric == "mia_loss_auc") & (mia.phase == "pruned")].iloc[0]
    assert 0 <= auc.value <= 1 and 0 <= auc.dense_value <= 1
    lat = pd.read_csv(run / "latency.csv")
    assert (lat.median_ms > 0).all() and len(lat) == 5  # dense; dense + current twice
    assert (metrics[metrics.metric == "measured_speedup"].value > 0).all()

    # offline analyses on the run's artifacts
    preds = load_predictions([run])
    assert set(preds.model) == {"dense", "0.9/pruned", "0.9/finetuned"} and len(preds) == 3 * 90
    null = randomisation_null(preds, n_perm=20, seed=0)
    assert set(null.model) == {"0.9/pruned", "0.9/finetuned"}
    summary = summarise_across_seeds(rd[rd.phase != "dense"])
    assert set(summary.statistic) == {"alpha_t_ours", "I_t", "frac_intensified"} and (summary.n_seeds == 1).all()
