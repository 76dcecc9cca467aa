"""Recall distortion: hand-computed values, the paper's invariants (Good et al. 2022; docs/analysis.md), the cross-seed
summary on a hand-made table, and the randomisation null against exact enumeration."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from scipy import stats

from prune_cli.data.splits import DataSplits
from tests.helpers import metric_context
from prune_cli.core.predictions import read_predictions
from prune_cli.metrics import METRICS
from prune_cli.analysis.recall_distortion import (
    class_counts,
    intensification,
    normalised_recall,
    per_class_rows,
    randomisation_null,
    summarise_across_seeds,
    summarise_classes_across_seeds,
)

# Hand-worked example: supports [4, 4, 2]; dense gets [4, 2, 1] right, the pruned model [4, 1, 0].
# dense:  recall [1, .5, .5], acc .7, rho [3/7, -2/7, -2/7]
# pruned: recall [1, .25, 0], acc .5, rho [1, -1/2, -1]
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
DENSE = np.array([0, 0, 0, 0, 1, 1, 0, 2, 2, 0])
PRUNED = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0])


def test_hand_computed_rows_and_statistics():
    correct, support = class_counts(LABELS, PRUNED, 3)
    dense_correct, _ = class_counts(LABELS, DENSE, 3)
    assert correct.tolist() == [4, 1, 0] and support.tolist() == [4, 4, 2] and dense_correct.tolist() == [4, 2, 1]
    rows = per_class_rows(correct, support, dense_correct)
    rho0 = [3 / 7, -2 / 7, -2 / 7]
    rho = [1.0, -0.5, -1.0]
    assert [r["recall"] for r in rows] == pytest.approx([1, 0.25, 0])
    assert [r["accuracy"] for r in rows] == pytest.approx([0.5] * 3)
    assert [r["dense_accuracy"] for r in rows] == pytest.approx([0.7] * 3)
    assert [r["rho"] for r in rows] == pytest.approx(rho)
    assert [r["dense_rho"] for r in rows] == pytest.approx(rho0)
    assert [r["delta_rho"] for r in rows] == pytest.approx([4 / 7, -3 / 14, -5 / 7])
    assert [r["T"] for r in rows] == pytest.approx([-4 / 7, 3 / 14, 5 / 7])
    assert [r["delta_recall"] for r in rows] == pytest.approx([0, -0.25, -0.5])
    assert [r["intensified"] for r in rows] == [True, True, True]
    dense_rows = per_class_rows(dense_correct, support, dense_correct, is_dense=True)
    assert [r["intensified"] for r in dense_rows] == [None] * 3
    assert [r["delta_rho"] for r in dense_rows] == [0.0] * 3 and [r["rho_ratio"] for r in dense_rows] == [1.0] * 3
    s = intensification(np.array(rho0), np.array(rho))
    assert s["alpha_t_ours"] == pytest.approx(42 / 17)  # (3/7 + 1/7 + 2/7) / (17/49)
    assert s["I_t"] == pytest.approx(0.5)  # mean(4/7, 3/14, 5/7)
    assert s["frac_intensified"] == 1.0


def test_de_intensification_and_undefined_classes():
    rho0 = np.array([0.2, -0.2, 0.0, np.nan])
    rhot = np.array([0.1, -0.3, 0.5, 0.1])  # class 0 de-intensifies, 1 intensifies, 2 undefined, 3 no data
    s = intensification(rho0, rhot)
    assert s["alpha_t_ours"] == pytest.approx((0.02 + 0.06) / 0.08)
    assert s["I_t"] == pytest.approx((-0.1 + 0.1 + 0.0) / 3)
    assert s["frac_intensified"] == pytest.approx(0.5)
    rows = per_class_rows(np.array([4, 0, 0]), np.array([4, 4, 0]), np.array([3, 1, 0]))  # rho0 [.5, -.5]
    assert rows[0]["intensified"] is True and rows[1]["intensified"] is True
    assert rows[0]["rho_ratio"] == pytest.approx(2.0)
    rows = per_class_rows(np.array([3, 1]), np.array([4, 4]), np.array([2, 2]))  # rho0 = 0: undefined
    assert rows[0]["intensified"] is None and math.isnan(rows[0]["rho_ratio"])
    rows = per_class_rows(np.array([1, 0, 0]), np.array([4, 4, 0]), np.array([3, 1, 0]))
    assert rows[2]["intensified"] is None and math.isnan(rows[2]["recall"])


def test_balanced_rho_sums_to_zero_and_weighted_sum_in_general():
    rng = np.random.default_rng(0)
    for _ in range(20):
        C = int(rng.integers(2, 12))
        support = np.full(C, 50.0)
        correct = rng.integers(0, 51, C).astype(float)
        _, _, rho = normalised_recall(correct, support)
        assert abs(rho.sum()) < 1e-12
        support = rng.integers(1, 100, C).astype(float)  # unbalanced: only the weighted sum vanishes
        correct = np.floor(rng.random(C) * support)
        _, _, rho = normalised_recall(correct + (correct.sum() == 0), support)
        assert abs((support / support.sum() * rho).sum()) < 1e-12


def test_proportional_rho_gives_alpha_k():
    rng = np.random.default_rng(1)
    rho0 = rng.normal(size=10)
    for k in (0.3, 1.0, 1.7, -0.5):
        assert intensification(rho0, k * rho0)["alpha_t_ours"] == pytest.approx(k, rel=1e-12)


def _exchangeable(rng, accuracies, n_per_class, n_models):
    labels = np.repeat(np.arange(len(accuracies)), n_per_class)
    p = np.asarray(accuracies)[labels]
    correct = rng.random((n_models, len(labels))) < p
    preds = np.where(correct, labels, (labels + 1) % len(accuracies))
    return labels, preds


def test_exchangeable_models_attenuate_alpha():
    """Each model's predictions i.i.d. from the same per-class accuracies: no pruning effect, yet
    E[alpha] < 1 (regression to the mean, Good et al. 2022)."""
    rng = np.random.default_rng(2)
    alphas = []
    for _ in range(300):
        labels, (p0, p1) = _exchangeable(rng, [0.9, 0.8, 0.7, 0.6, 0.75], 40, 2)
        rho0 = normalised_recall(*class_counts(labels, p0, 5))[2]
        rho1 = normalised_recall(*class_counts(labels, p1, 5))[2]
        alphas.append(intensification(rho0, rho1)["alpha_t_ours"])
    alphas = np.array(alphas)
    assert alphas.mean() + 3 * alphas.std() / math.sqrt(len(alphas)) < 1


def _long(labels, preds_by_model, seed=0):
    return pd.concat(
        [
            pd.DataFrame({"seed": seed, "model": m, "image_index": np.arange(len(labels)), "label": labels, "pred": p})
            for m, p in preds_by_model.items()
        ]
    )


def test_null_matches_exact_enumeration():
    """Two models, a few images whose correctness differs: the randomisation distribution can be
    enumerated exactly (each such image swaps or not with probability 1/2)."""
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    dense = np.array([0, 0, 1, 1, 1, 0, 0, 1])
    pruned = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    exact = []
    for swap in itertools.product([0, 1], repeat=len(labels)):
        swap = np.array(swap, bool)
        d, p = np.where(swap, pruned, dense), np.where(swap, dense, pruned)
        r0 = normalised_recall(*class_counts(labels, d, 2))[2]
        r1 = normalised_recall(*class_counts(labels, p, 2))[2]
        exact.append(intensification(r0, r1)["I_t"])
    exact = np.array(exact)
    r0 = normalised_recall(*class_counts(labels, dense, 2))[2]
    r1 = normalised_recall(*class_counts(labels, pruned, 2))[2]
    obs = intensification(r0, r1)["I_t"]
    p_exact = min(1.0, 2 * min((exact <= obs + 1e-12).mean(), (exact >= obs - 1e-12).mean()))
    out = randomisation_null(_long(labels, {"dense": dense, "pruned": pruned}), n_perm=8000, seed=0)
    row = out[(out.statistic == "I_t") & (out.model == "pruned")].iloc[0]
    assert row.observed == pytest.approx(obs)
    assert row.null_mean == pytest.approx(exact.mean(), abs=0.02)
    assert row.null_sd == pytest.approx(exact.std(), abs=0.02)
    assert row.p_value_code == pytest.approx(p_exact, abs=0.03)
    assert row.p_value >= row.p_value_code - 1e-12 or row.p_value == 1.0
    t_rows = out[(out.statistic == "T") & (out.model == "pruned")]
    assert sorted(t_rows["class"].tolist()) == [0, 1]


def test_null_p_values_uniform_for_exchangeable_models_and_small_for_real_effect():
    rng = np.random.default_rng(3)
    p_values = []
    for _ in range(60):
        labels, (p0, p1, p2) = _exchangeable(rng, [0.9, 0.6, 0.75], 20, 3)
        out = randomisation_null(_long(labels, {"dense": p0, "a": p1, "b": p2}), n_perm=199, seed=int(rng.integers(1 << 31)))
        p_values.append(out[(out.statistic == "alpha_t_ours") & (out.model == "a")].p_value_code.iloc[0])
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    # A real intensification: the pruned model loses the weak class entirely.
    labels, (p0,) = _exchangeable(rng, [0.95, 0.6, 0.9], 60, 1)
    p1 = np.where(labels == 1, 0, p0)
    out = randomisation_null(_long(labels, {"dense": p0, "pruned": p1}), n_perm=999, seed=0)
    row = out[(out.statistic == "alpha_t_ours")].iloc[0]
    assert row.observed > row.null_mean and row.p_value < 0.01


def test_null_averages_over_seeds_and_checks_models():
    rng = np.random.default_rng(4)
    parts = []
    for seed in range(3):
        labels, (p0, p1) = _exchangeable(rng, [0.9, 0.6], 30, 2)
        parts.append(_long(labels, {"dense": p0, "pruned": p1}, seed=seed))
    df = pd.concat(parts)
    out = randomisation_null(df, n_perm=50, seed=1)
    observed = []
    for seed in range(3):
        part = df[df.seed == seed]
        r = [
            normalised_recall(*class_counts(part[part.model == m].label.to_numpy(), part[part.model == m].pred.to_numpy(), 2))[2]
            for m in ("dense", "pruned")
        ]
        observed.append(intensification(r[0], r[1])["alpha_t_ours"])
    row = out[out.statistic == "alpha_t_ours"].iloc[0]
    assert row.observed == pytest.approx(np.mean(observed)) and row.n_units == 3
    assert 40 <= row.n_perm <= 50  # permutations where some seed's alpha is undefined (rho_0 = 0) are dropped
    with pytest.raises(ValueError, match="reference"):
        randomisation_null(df[df.model == "pruned"], n_perm=10)
    with pytest.raises(ValueError, match="more than one row"):
        randomisation_null(pd.concat([df, df[df.model == "dense"]]), n_perm=10)


def test_null_averages_each_statistic_over_the_seeds_where_it_is_defined():
    """Seed 0 is the hand-worked example (alpha 42/17, I_t 1/2, frac 1); seed 1's dense model is 100 % accurate, so
    every rho_0 is 0: its alpha and frac are undefined (0/0) and its I_t is 0. The observed statistics and every
    permutation average over the seeds where the observed statistic is defined, as summarise_across_seeds does: alpha
    and frac are seed 0's alone (and their null is seed 0's null), I_t is the mean of 1/2 and 0."""
    df = pd.concat(
        [_long(LABELS, {"dense": DENSE, "pruned": PRUNED}, seed=0), _long(LABELS, {"dense": LABELS, "pruned": PRUNED}, seed=1)]
    )
    out = randomisation_null(df, n_perm=400, seed=5).set_index("statistic")
    assert out.loc["alpha_t_ours", "observed"] == pytest.approx(42 / 17) and out.loc["alpha_t_ours", "n_units"] == 1
    assert out.loc["frac_intensified", "observed"] == pytest.approx(1.0) and out.loc["frac_intensified", "n_units"] == 1
    assert out.loc["I_t", "observed"] == pytest.approx(0.25) and out.loc["I_t", "n_units"] == 2
    # Like for like: the permutations of alpha and frac use seed 0 only, so their null is that of seed 0 alone
    # (the same random draws: seed 0's shuffles come first in the one batch).
    alone = randomisation_null(df[df.seed == 0], n_perm=400, seed=5).set_index("statistic")
    for stat in ("alpha_t_ours", "frac_intensified"):
        assert out.loc[stat, "n_perm"] > 0
        for col in ("null_mean", "null_sd", "n_perm", "p_value", "p_value_code"):
            assert out.loc[stat, col] == pytest.approx(alone.loc[stat, col]), (stat, col)
    # The cross-seed summary of the same models drops the undefined seed in the same way.
    rows = []
    for seed, dense in ((0, DENSE), (1, LABELS)):
        correct, support = class_counts(LABELS, PRUNED, 3)
        dense_correct, _ = class_counts(LABELS, dense, 3)
        rows += [{**r, "seed": seed} for r in per_class_rows(correct, support, dense_correct)]
    summary = summarise_across_seeds(pd.DataFrame(rows)).set_index("statistic")
    for stat in ("alpha_t_ours", "I_t", "frac_intensified"):
        assert summary.loc[stat, "mean"] == pytest.approx(out.loc[stat, "observed"])
        assert summary.loc[stat, "n_seeds"] == out.loc[stat, "n_units"]


def _hand_table():
    """Three seeds whose pruned rho is exactly k * rho_0 (k = 1, 2, 3), two balanced classes."""
    rows = []
    for seed, recalls in zip((0, 1, 2), ([0.85, 0.75], [0.9, 0.7], [0.95, 0.65])):
        for c in range(2):
            rows.append(
                {
                    "seed": seed,
                    "run_id": f"r{seed}",
                    "method": "magnitude",
                    "target_sparsity": 0.9,
                    "split": "test",
                    "phase": "finetuned",
                    "class": c,
                    "recall": recalls[c],
                    "accuracy": 0.8,
                    "dense_recall": [0.85, 0.75][c],
                    "dense_accuracy": 0.8,
                }
            )
    return pd.DataFrame(rows)


def test_summary_across_seeds_on_hand_table():
    out = summarise_across_seeds(_hand_table()).set_index("statistic")
    alpha = out.loc["alpha_t_ours"]
    t975 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (tables)
    assert alpha.n_seeds == 3 and alpha["mean"] == pytest.approx(2.0) and alpha.sd == pytest.approx(1.0)
    assert alpha.ci_low == pytest.approx(2 - t975 / math.sqrt(3))
    assert alpha.ci_high == pytest.approx(2 + t975 / math.sqrt(3))
    # I_t per seed: rho0 = +-1/16, rho_t = k rho0 -> I = (k - 1) / 16; mean 1/16
    assert out.loc["I_t", "mean"] == pytest.approx(1 / 16)
    assert out.loc["frac_intensified", "mean"] == pytest.approx(2 / 3)
    assert out.loc["alpha_t_ours", "method"] == "magnitude"
    classes = summarise_classes_across_seeds(_hand_table()).set_index(["class", "quantity"])
    # class 0: rho_0 = 1/16, rho_t = k/16 -> delta_rho = (k - 1)/16 = 0, 1/16, 2/16; class 1 mirrored
    assert classes.loc[(0, "delta_rho"), "mean"] == pytest.approx(1 / 16)
    assert classes.loc[(0, "delta_rho"), "sd"] == pytest.approx(1 / 16)
    assert classes.loc[(1, "T"), "mean"] == pytest.approx(1 / 16)
    assert classes.loc[(1, "delta_recall"), "mean"] == pytest.approx(-0.05)  # recalls .75, .70, .65 vs .75
    assert classes.loc[(0, "delta_rho"), "ci_high"] == pytest.approx(1 / 16 + t975 / 16 / math.sqrt(3))
    assert classes.loc[(0, "rho"), "frac_intensified_seeds"] == pytest.approx(2 / 3)
    one = summarise_across_seeds(_hand_table().query("seed == 0"))
    assert one.n_seeds.tolist() == [1, 1, 1] and one.ci_low.isna().all()


def _exp(tmp_path, model, dense_state):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 4, generator=g)
    y = torch.arange(90) % 3
    data = DataSplits(x[:30], y[:30], x[:0], y[:0], x[30:], y[30:], num_classes=3)
    dense = copy.deepcopy(model)
    if dense_state:
        dense.load_state_dict(dense_state)
    return metric_context(model, data, dense=dense if dense_state else None, run_dir=tmp_path, eval_batch_size=16)


def test_metric_rows_match_direct_counts(tmp_path):
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(4, 3))
    pruned = copy.deepcopy(dense)
    with torch.no_grad():
        pruned[0].weight[:, :2] = 0
    exp = _exp(tmp_path, pruned, {k: v.clone() for k, v in dense.state_dict().items()})
    node = OmegaConf.create({"enabled": True, "splits": ["test"], "save_predictions": True})
    out = METRICS.get("recall_distortion")(exp, "pruned", node)
    rows = pd.DataFrame(out.tables["recall_distortion.csv"])
    x, y = exp.data.test_x, exp.data.test_y
    with torch.no_grad():
        p, p0 = pruned(x).argmax(1), dense(x).argmax(1)
    for c in range(3):
        r = rows[rows["class"] == c].iloc[0]
        assert r.recall == pytest.approx(float((p[y == c] == c).float().mean()))
        assert r.dense_recall == pytest.approx(float((p0[y == c] == c).float().mean()))
    assert r.accuracy == pytest.approx(float((p == y).float().mean()))
    scalars = {s["metric"]: s["value"] for s in out.scalars}
    assert set(scalars) == {"alpha_t_ours", "I_t", "frac_intensified"}
    saved = read_predictions(tmp_path)["test"]  # the run's predictions file (the recorder saves none in this test)
    assert (saved["phases"]["pruned"] == p.numpy()).all() and (saved["label"] == y.numpy()).all()


def test_collapsed_model_gives_nan_rho_without_a_warning():
    """A pruned model with accuracy 0 (collapsed) has an undefined relative recall rho = (r - a) / a:
    the statistics are NaN, and prune-report prints no numpy warning for it."""
    import warnings

    from prune_cli.analysis.recall_distortion import per_model_statistics

    rows = pd.DataFrame(
        {
            "seed": 0,
            "class": [0, 1],
            "recall": [0.0, 0.0],
            "accuracy": [0.0, 0.0],
            "dense_recall": [0.9, 0.7],
            "dense_accuracy": [0.8, 0.8],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = per_model_statistics(rows, keys=[])
    assert len(out) == 1 and out.isna().any(axis=None)
