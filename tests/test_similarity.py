"""Linear CKA and SVCCA against independent numpy/scipy computations and their invariances."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from omegaconf import OmegaConf
from scipy.stats import ortho_group

from prune_cli.data.splits import DataSplits
from tests.helpers import metric_context
from prune_cli.metrics import METRICS
from prune_cli.analysis.similarity import fixed_batch, layer_outputs, linear_cka, svcca, svcca_directions
from prune_cli.models.mlp import MLP


def _rand(n, d, seed):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d)))


def _cka_feature_space(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. eq. for linear CKA in feature space: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_cka_identity_orthogonal_and_scaling_invariance():
    x = _rand(50, 8, 0)
    q = torch.from_numpy(ortho_group.rvs(8, random_state=1))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x + 2.0) == pytest.approx(1.0, abs=1e-12)
    y = _rand(50, 5, 2)
    base = linear_cka(x, y)
    assert linear_cka(x @ q * 0.1, y) == pytest.approx(base, abs=1e-12)
    assert base < 0.9


def test_cka_matches_feature_space_formula():
    for seed in range(3):
        x, y = _rand(40, 6, seed), _rand(40, 60, seed + 10)  # fewer and more features than examples
        y[:, :6] += 2 * x
        assert linear_cka(x, y) == pytest.approx(_cka_feature_space(x.numpy(), y.numpy()), rel=1e-10)


def _svcca_direct(x: np.ndarray, y: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """SVD-reduce each centred representation to its top-k directions (numpy), then CCA by whitening
    the covariances (scipy): singular values of Sxx^-1/2 Sxy Syy^-1/2."""

    def reduce(a, k):
        a = a - a.mean(0)
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        return a @ vt[:k].T

    a, b = reduce(x, kx), reduce(y, ky)
    n = len(a)
    sxx, syy, sxy = a.T @ a / (n - 1), b.T @ b / (n - 1), a.T @ b / (n - 1)
    m = scipy.linalg.inv(scipy.linalg.sqrtm(sxx)) @ sxy @ scipy.linalg.inv(scipy.linalg.sqrtm(syy))
    return np.linalg.svd(np.real(m), compute_uv=False)


def test_svcca_matches_direct_svd_plus_cca():
    x = _rand(200, 12, 3)
    mix = _rand(12, 20, 4)
    y = x @ mix + 0.5 * _rand(200, 20, 5)
    for k in (3, 6, 10):
        out = svcca(x, y, variance=1.0, max_dims=k)
        expected = _svcca_direct(x.numpy(), y.numpy(), k, k)
        assert out["svcca_dims"] == out["svcca_dims_dense"] == k
        assert out["svcca"] == pytest.approx(expected[:k].mean(), rel=1e-8)


def test_svcca_identity_and_invertible_transform():
    x = _rand(100, 5, 6)
    a = _rand(5, 5, 7) + 3 * torch.eye(5, dtype=torch.float64)
    assert svcca(x, x, 1.0, 5)["svcca"] == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, x @ a, 1.0, 5)["svcca"] == pytest.approx(1.0, abs=1e-10)


def test_svcca_keeps_dimensions_for_the_variance_threshold():
    rng = np.random.default_rng(8)
    u = np.linalg.qr(rng.normal(size=(100, 4)))[0]
    u -= u.mean(0)  # centred columns, still (almost) orthogonal
    u = np.linalg.qr(u)[0]
    s = np.array([10.0, 5.0, 1.0, 0.1])  # energies 100, 25, 1, 0.01 -> 79.3 %, 99.2 %, 99.99 %, 100 %
    x = torch.from_numpy(u * s)
    assert svcca_directions(x, 0.99, 32).shape[1] == 2
    assert svcca_directions(x, 0.995, 32).shape[1] == 3
    assert svcca_directions(x, 0.5, 32).shape[1] == 1
    assert svcca_directions(x, 1.0, 2).shape[1] == 2
    assert np.isnan(svcca(torch.zeros(10, 3), x[:10])["svcca"])


def test_layer_outputs_are_the_linear_layers_outputs():
    torch.manual_seed(0)
    model = MLP(4, [6, 5], 3).double()
    x = _rand(7, 4, 9)
    out = layer_outputs(model, x)
    assert list(out) == ["net.1", "net.3", "net.5"]
    net = model.net
    h1 = net[1](x)
    h2 = net[3](torch.relu(h1))
    assert torch.allclose(out["net.1"], h1) and torch.allclose(out["net.3"], h2)
    assert torch.allclose(out["net.5"], model(x))


def test_fixed_batch_is_seeded_and_leaves_the_global_rng_alone():
    x = torch.arange(100).float()[:, None]
    state = torch.get_rng_state()
    a, b = fixed_batch(x, 10, 3), fixed_batch(x, 10, 3)
    assert torch.equal(a, b) and not torch.equal(a, fixed_batch(x, 10, 4))
    assert torch.equal(state, torch.get_rng_state())
    assert len(fixed_batch(x, 500, 0)) == 100


def test_metric_dense_vs_itself_and_pruned(tmp_path):
    torch.manual_seed(0)
    model = MLP(4, [8], 3)
    data = DataSplits(*(torch.randn(40, 4), torch.randint(0, 3, (40,))) * 3, num_classes=3)
    dense = copy.deepcopy(model)
    exp = metric_context(model, data, dense=dense)
    node = OmegaConf.create({"split": "test", "num_samples": 30, "batch_seed": 0, "svcca_variance": 0.99, "svcca_max_dims": 32})
    assert METRICS.get("similarity")(exp, "dense", node).tables == {}
    out = METRICS.get("similarity")(exp, "pruned", node)
    rows = out.tables["similarity.csv"]
    assert [r["layer"] for r in rows] == ["net.1", "net.3"]
    assert all(r["cka_linear"] == pytest.approx(1.0) and r["svcca"] == pytest.approx(1.0) for r in rows)
    with torch.no_grad():
        model.net[1].weight[:, :3] = 0
    rows = METRICS.get("similarity")(exp, "pruned", node).tables["similarity.csv"]
    assert rows[0]["cka_linear"] < 0.99
    x = fixed_batch(data.test_x, 30, 0)
    expected = _cka_feature_space(dense.net[1](x).detach().double().numpy(), model.net[1](x).detach().double().numpy())
    assert rows[0]["cka_linear"] == pytest.approx(expected, rel=1e-6)


def test_metric_on_the_training_inputs(tmp_path):
    """split=train compares the models on training inputs (accuracy audit of 2026-12-03: it was refused,
    though ntk, regions and pruning_limit take train): the batch comes from the train split, not test."""
    from helpers import validated

    validated("metrics.similarity.enabled=true", "metrics.similarity.split=train")  # the pre-run pass accepts it
    torch.manual_seed(0)
    model = MLP(4, [8], 3)
    train_x, test_x = torch.randn(40, 4), 5 * torch.randn(40, 4) + 3
    y = torch.randint(0, 3, (40,))
    data = DataSplits(train_x, y, test_x, y, test_x, y, num_classes=3)
    dense = copy.deepcopy(model)
    with torch.no_grad():
        model.net[1].weight[:, :3] = 0
    node = OmegaConf.create({"split": "train", "num_samples": 40, "batch_seed": 0, "svcca_variance": 0.99, "svcca_max_dims": 32})
    rows = METRICS.get("similarity")(metric_context(model, data, dense=dense), "pruned", node).tables["similarity.csv"]
    assert rows[0]["split"] == "train" and rows[0]["num_samples"] == 40
    # every training input (CKA does not depend on their order)
    expected = _cka_feature_space(dense.net[1](train_x).detach().double().numpy(), model.net[1](train_x).detach().double().numpy())
    on_test = _cka_feature_space(dense.net[1](test_x).detach().double().numpy(), model.net[1](test_x).detach().double().numpy())
    assert rows[0]["cka_linear"] == pytest.approx(expected, rel=1e-6) and abs(expected - on_test) > 1e-3


def test_conv_layers_are_flattened_and_compared():
    from prune_cli.analysis.similarity import compare
    from prune_cli.models import build_model

    torch.manual_seed(0)
    model = build_model(OmegaConf.create({"name": "lenet5"}), (1, 28, 28), 10).eval()
    x = torch.randn(12, 1, 28, 28)
    rows = compare(model, copy.deepcopy(model), x, 0.99, 8)
    assert rows[0]["features"] == 6 * 28 * 28 and rows[1]["features"] == 16 * 10 * 10
    assert all(r["cka_linear"] == pytest.approx(1.0) and r["svcca"] == pytest.approx(1.0) for r in rows)
    conv = layer_outputs(model, x)[rows[0]["layer"]]
    assert linear_cka(conv, conv.flatten(1) * 2) == pytest.approx(1.0)


def _val_split_of(num_classes: int) -> list[str]:
    """60 synthetic examples a class, val_fraction 0.02: 1.2 -> 1 validation example a class."""
    return [
        "dataset=synthetic",
        "dataset.samples_per_class=60",
        f"dataset.num_classes={num_classes}",
        "dataset.val_fraction=0.02",
        "metrics.similarity.enabled=true",
        "metrics.similarity.split=val",
    ]


def test_a_split_of_two_examples_is_refused_three_accepted():
    """Audit of 2026-12-04: on a 2-example validation split every layer read CKA = SVCCA = 1.0, exit 0 (the batch
    is cut to the split's size; with 2 centred examples any two representations have linear CKA 1)."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError
    from prune_cli.metrics.similarity import SimilarityConfig

    x, y = _rand(2, 5, 20), _rand(2, 7, 21)  # why 2 is refused: unrelated representations, CKA 1
    assert linear_cka(x, y) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ConfigError) as err:
        validated(*_val_split_of(2))  # 2 classes x 1 example
    assert err.value.key == "metrics.similarity.split" and err.value.value == "val"
    assert "at least 3 examples" in str(err.value) and "the val split holds 2," in str(err.value)
    validated(*_val_split_of(3))  # 3 classes x 1 example
    cfg = OmegaConf.create({"metrics": {"similarity": {"split": "test"}}})
    hook = SimilarityConfig.check_split_examples
    with pytest.raises(ConfigError, match="holds at most 2,"):  # an upper bound of 2: certain to be too few
        hook(cfg, "metrics.similarity", {"test": (2, False), "val": (100, True)})
    hook(cfg, "metrics.similarity", {"test": (3, True), "val": (0, True)})  # only the chosen split counts
    hook(cfg, "metrics.similarity", {"test": None})  # unknown: the run checks the loaded sizes


def test_a_split_of_two_examples_stops_prune_run_before_any_work(finished_results):
    from conftest import FAST
    from helpers import refused_before_any_work

    refused_before_any_work([*FAST, *_val_split_of(2)], finished_results, "metrics.similarity.split", "holds 2", "at least 3")


@pytest.mark.parametrize("n", [1, 2])
def test_a_batch_of_fewer_than_three_inputs_gives_nan_rows_and_says_so(n, caplog):
    """Should a batch under 3 inputs reach the metric (a split the pre-run pass could not size), its rows are NaN
    with a warning: before, 2 inputs gave 1.0 on every layer whatever the models, 1 input NaN unexplained."""
    torch.manual_seed(0)
    model = MLP(4, [8], 3)
    dense = copy.deepcopy(model)
    with torch.no_grad():
        model.net[1].weight.mul_(-1)  # a different model: CKA on 2 inputs was still 1
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
    data = DataSplits(torch.randn(40, 4), torch.randint(0, 3, (40,)), x, y, x, y, num_classes=3)
    node = OmegaConf.create({"split": "test", "num_samples": 30, "batch_seed": 0, "svcca_variance": 0.99, "svcca_max_dims": 32})
    with caplog.at_level("WARNING"):
        out = METRICS.get("similarity")(metric_context(model, data, dense=dense), "pruned", node)
    rows = out.tables["similarity.csv"]
    assert [(r["layer"], r["features"], r["num_samples"]) for r in rows] == [("net.1", 8, n), ("net.3", 3, n)]
    assert all(np.isnan(r["cka_linear"]) and np.isnan(r["svcca"]) for r in rows)
    assert all(np.isnan(s["value"]) for s in out.scalars)
    assert f"the test split holds {n} examples, fewer than the 3" in caplog.text


def test_a_batch_of_three_inputs_is_compared():
    torch.manual_seed(0)
    model = MLP(4, [8], 3)
    dense = copy.deepcopy(model)
    with torch.no_grad():
        model.net[1].weight.mul_(-1)
    x, y = torch.randn(3, 4), torch.randint(0, 3, (3,))
    data = DataSplits(torch.randn(40, 4), torch.randint(0, 3, (40,)), x, y, x, y, num_classes=3)
    node = OmegaConf.create({"split": "test", "num_samples": 30, "batch_seed": 0, "svcca_variance": 0.99, "svcca_max_dims": 32})
    rows = METRICS.get("similarity")(metric_context(model, data, dense=dense), "pruned", node).tables["similarity.csv"]
    expected = _cka_feature_space(dense.net[1](x).detach().double().numpy(), model.net[1](x).detach().double().numpy())
    assert rows[0]["num_samples"] == 3 and rows[0]["cka_linear"] == pytest.approx(expected, rel=1e-6)


def test_svcca_flags_dimensions_the_batch_cannot_separate():
    """N centred examples span N - 1 dimensions: two kept subspaces whose dimensions sum past N - 1 share a
    direction, a canonical correlation of 1 whatever the models (audit of 2026-12-04: 0.977 for unrelated
    representations on 30 inputs)."""
    # by hand: N = 4, x spans {(a, b, -a, -b)}, y spans {(c + d, c - d, d - c, -c - d)}; both hold (1, 1, -1, -1)
    # (a = b = c, d = 0); the remaining directions (1, -1, -1, 1) / 2 and (1, -1, 1, -1) / 2 are orthogonal
    x = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float64)
    out = svcca(x, y, 1.0, 2)
    assert out["svcca"] == pytest.approx((1 + 0) / 2, abs=1e-12)
    assert (out["svcca_dims_dense"], out["svcca_dims"], out["svcca_dims_exceed_samples"]) == (2, 2, True)  # 2 + 2 > 3
    zero = torch.zeros(1, 2, dtype=torch.float64)  # a fifth example at the mean: 2 + 2 = 4 = N - 1, not forced
    assert svcca(torch.cat([x, zero]), torch.cat([y, zero]), 1.0, 2)["svcca_dims_exceed_samples"] is False
    assert svcca(x, y, 1.0, 1)["svcca_dims_exceed_samples"] is False  # 1 + 1 <= 3
    # the audit's case: independent 64-feature representations; 30 inputs keep up to 29 dimensions a side
    a, b = _rand(256, 64, 22), _rand(256, 64, 23)
    small = svcca(a[:30], b[:30], 0.99, 32)
    assert small["svcca_dims_exceed_samples"] is True and small["svcca"] > 0.9
    assert svcca(a, b, 0.99, 32)["svcca_dims_exceed_samples"] is False  # at most 32 + 32 <= 255


def test_the_metric_records_and_warns_when_svcca_dimensions_exceed_the_batch(caplog):
    """5 inputs separate 4 dimensions: svcca_max_dims=3 keeps 3 + 3 on each layer (the 8 hidden features have rank
    4 on 5 inputs, the 3 logits rank 3), more than 4; svcca_max_dims=2 keeps 2 + 2, which fits."""
    torch.manual_seed(0)
    model = MLP(4, [8], 3)
    dense = copy.deepcopy(model)
    with torch.no_grad():
        model.net[1].weight.add_(0.3 * torch.randn(8, 4))
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    data = DataSplits(torch.randn(40, 4), torch.randint(0, 3, (40,)), x, y, x, y, num_classes=3)
    node = {"split": "test", "num_samples": 30, "batch_seed": 0, "svcca_variance": 1.0}
    with caplog.at_level("WARNING"):
        rows = METRICS.get("similarity")(
            metric_context(model, data, dense=dense), "pruned", OmegaConf.create({**node, "svcca_max_dims": 3})
        ).tables["similarity.csv"]
    assert [(r["svcca_dims_dense"], r["svcca_dims"], r["svcca_dims_exceed_samples"]) for r in rows] == [(3, 3, True)] * 2
    for part in ("net.1: 3 + 3, net.3: 3 + 3", "num_samples - 1 = 4", "metrics.similarity.num_samples", "svcca_max_dims (now 3)"):
        assert part in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        rows = METRICS.get("similarity")(
            metric_context(model, data, dense=dense), "pruned", OmegaConf.create({**node, "svcca_max_dims": 2})
        ).tables["similarity.csv"]
    assert [(r["svcca_dims_dense"], r["svcca_dims"], r["svcca_dims_exceed_samples"]) for r in rows] == [(2, 2, False)] * 2
    assert "svcca" not in caplog.text.lower()
