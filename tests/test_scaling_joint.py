"""The joint pruning scaling law across width, depth and training-set size (Rosenfeld, Frankle,
Carbin and Shavit, ICML 2021; issue 13): points generated from the paper's formula written with
complex numbers (not the module's real-arithmetic form) give back the parameters, within the
reported uncertainty under noise, for a width x training-set-size family (each (w, n) with its own
measured eps_np) and a width x depth family; the fit error is the paper's mean and standard
deviation of delta = (eps_hat - eps) / eps; and prune-report groups runs of different widths and
training-set sizes (data_pruning.keep) into one family with one eps_np per (w, n)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from prune_cli.report import build_report
from prune_cli.report.scaling import _family, _run_scales, fit_scaling_law
from tests.helpers import write_scaling_run

TRUE = {"eps_up": 0.9, "gamma": 1.2, "p": 0.02, "psi_width": 0.7, "phi_depth": 1.1}
DENSITIES = 0.7 ** np.arange(0, 21)


def papers_form(d, eps_np, eps_up, gamma, p, w=1.0, psi=0.0, l=1.0, phi=0.0):
    """The paper's joint form as printed: eps_np |(m - j p (eps_up/eps_np)^(1/gamma)) / (m - j p)|^gamma
    with m = l^phi w^psi d, in complex arithmetic."""
    m = (l**phi) * (w**psi) * np.asarray(d, dtype=complex)
    return eps_np * np.abs((m - 1j * p * (eps_up / eps_np) ** (1 / gamma)) / (m - 1j * p)) ** gamma


def dense_error(width, size):
    """A made-up unpruned error falling with width and training-set size (the law takes it as measured)."""
    return 0.04 + 0.25 * (size / 900) ** -0.4 * (width / 16) ** -0.3


def _width_size_points(noise=0.0, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for width in (16, 32, 64):
        for size in (900, 1800, 3600):
            eps_np = dense_error(width, size)
            t = TRUE
            error = papers_form(DENSITIES, eps_np, t["eps_up"], t["gamma"], t["p"], w=width, psi=t["psi_width"])
            error = error * (1 + noise * rng.standard_normal(len(DENSITIES)))
            rows += [
                {"density": d, "width": width, "dataset_size": size, "eps_np": eps_np, "error": e} for d, e in zip(DENSITIES, error)
            ]
    return pd.DataFrame(rows)


def test_noise_free_width_and_size_family_gives_back_the_parameters():
    fit = fit_scaling_law(_width_size_points(), ["width"])
    assert fit.status == "fitted" and fit.reason == "" and fit.n_points == 9 * len(DENSITIES)
    for name in ("eps_up", "gamma", "p", "psi_width"):
        assert fit.params[name] == pytest.approx(TRUE[name], rel=1e-5), name
    row = fit.row()
    assert abs(row["mean_rel_deviation"]) < 1e-8 and row["std_rel_deviation"] < 1e-8


def test_noisy_width_and_size_family_recovers_the_parameters_within_the_reported_uncertainty():
    """3 % multiplicative noise, 8 draws: estimates centre on the truth, the Jacobian standard errors
    match their spread over draws, and the paper's fit error is the noise's: mu ~ 0, sigma ~ 3 %."""
    fits = [fit_scaling_law(_width_size_points(noise=0.03, seed=s), ["width"]) for s in range(8)]
    assert all(f.status == "fitted" and f.reason == "" for f in fits)
    for name in ("eps_up", "gamma", "p", "psi_width"):
        estimates = np.array([f.params[name] for f in fits])
        stderr = np.array([f.stderr[name] for f in fits])
        spread = estimates.std(ddof=1)
        assert abs(estimates.mean() - TRUE[name]) < 4 * spread / math.sqrt(len(fits)) + 1e-12, name
        assert 0.4 < stderr.mean() / spread < 2.5, name
    rows = [f.row() for f in fits]
    assert abs(np.mean([r["mean_rel_deviation"] for r in rows])) < 0.005
    assert np.mean([r["std_rel_deviation"] for r in rows]) == pytest.approx(0.03, rel=0.15)


def test_width_and_depth_family_gives_back_both_exponents():
    rows = []
    for width in (16, 64):
        for depth in (2, 3, 5):
            eps_np = 0.1 * (width / 16) ** -0.2 * (depth / 2) ** -0.1
            t = TRUE
            error = papers_form(
                DENSITIES, eps_np, t["eps_up"], t["gamma"], t["p"], w=width, psi=t["psi_width"], l=depth, phi=t["phi_depth"]
            )
            rows += [{"density": d, "width": width, "depth": depth, "eps_np": eps_np, "error": e} for d, e in zip(DENSITIES, error)]
    fit = fit_scaling_law(pd.DataFrame(rows), ["width", "depth"])
    assert fit.status == "fitted"
    for name, value in TRUE.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), name


def test_scales_of_a_run_and_its_family():
    cfg = {
        "seed": 0,
        "sparsity": 0.9,
        "model": {"name": "mlp", "widths": [32, 16]},
        "dataset": {"name": "mnist1d", "num_samples": 5000},
        "data_pruning": {"name": "random", "keep": 0.25},
    }
    # width: mean hidden width; depth: weight layers (2 hidden + the output layer), as ResNet-20 has 20;
    # dataset_size: the examples trained on, 4,000 of 5,000 in MNIST-1D's training split, 3,600 after the
    # validation split (val_fraction 0.1), 900 kept by data pruning
    assert _run_scales(cfg) == {"width": 24.0, "depth": 3.0, "dataset_size": 900.0}
    other_scale = {
        **cfg,
        "seed": 1,
        "sparsity": 0.5,
        "model": {"name": "mlp", "widths": [8]},
        "data_pruning": {"name": "random", "keep": 1.0},
    }
    assert _family(other_scale) == _family(cfg)
    assert _family({**cfg, "data_pruning": {"name": "el2n", "keep": 0.25}}) != _family(cfg)
    assert _family({**cfg, "train": {"epochs": 3}}) != _family(cfg)


def _write_run(root, width, keep, sparsity, seed, error, eps_np):
    cfg = {
        "seed": seed,
        "sparsity": sparsity,
        "name": "sc",
        "method": {"name": "magnitude"},
        "model": {"name": "mlp", "widths": [width, width]},
        "dataset": {"name": "mnist1d", "num_samples": 5000},
        "data_pruning": {"name": "random", "keep": keep},
    }
    write_scaling_run(root, f"sc-w{width}-k{keep:g}-s{sparsity:g}-seed{seed}", cfg, error, eps_np, allocation="layerwise")


def test_report_fits_a_width_and_size_sweep_as_one_family_with_an_eps_np_per_width_and_size(tmp_path):
    root = tmp_path / "results"
    rng = np.random.default_rng(1)
    densities = 0.5 ** np.arange(1, 9)
    for width in (16, 64):
        for keep in (0.25, 1.0):
            eps_np = dense_error(width, 3600 * keep)
            for d in densities:
                true = float(papers_form(d, eps_np, 0.88, 1.3, 0.03, w=width, psi=0.6))
                for seed in range(2):
                    _write_run(root, width, keep, float(1 - d), seed, true * (1 + 0.01 * rng.standard_normal()), eps_np)
    written = build_report(root)
    (row,) = pd.read_csv(written["scaling_fit.csv"]).to_dict(orient="records")
    assert row["family"].startswith("f-")  # text, even when the digest looks like a number (41e66475)
    assert row["status"] == "fitted" and row["scales"] == "density, width" and row["varies"] == "density, width, dataset_size"
    assert row["n_dense_errors"] == 4 and row["n_points"] == 32 and row["n_runs"] == 64
    assert abs(row["psi_width"] - 0.6) < 4 * row["psi_width_se"] and abs(row["gamma"] - 1.3) < 4 * row["gamma_se"]
    # one eps_np per (width, size): merging the sizes would leave deviations of tens of percent
    assert abs(row["mean_rel_deviation"]) < 0.01 and row["std_rel_deviation"] < 0.02
    md = written["summary.md"].read_text()
    assert "relative deviation mu = " in md and "4 dense error(s) eps_np" in md
    assert written["scaling_fit.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scales_preset_composes_validates_and_sweeps_every_scale(tmp_path):
    """configs/experiment/scaling_mnist1d_scales.yaml: the smallest width at the highest sparsity and
    the smallest training set pass the pre-run checks (no training); 3 widths x 3 training-set sizes
    x 8 densities, more points than the joint fit needs."""
    from omegaconf import OmegaConf

    from conftest import REPO
    from helpers import compose
    from prune_cli.report.scaling import _required

    params = OmegaConf.load(REPO / "configs" / "experiment" / "scaling_mnist1d_scales.yaml").hydra.sweeper.params
    widths = str(params["model.widths"]).replace("],[", "]|[").split("|")
    keeps = [float(k) for k in str(params["data_pruning.keep"]).split(",")]
    sparsities = [float(s) for s in str(params.sparsity).split(",")]
    assert len(widths) == 3 and sorted(keeps) == [0.25, 0.5, 1.0] and len(set(sparsities)) == 8
    assert len(widths) * len(keeps) * len(sparsities) >= 10 * _required(["width"])
    cfg = compose(
        ["+experiment=scaling_mnist1d_scales", f"model.widths={widths[0]}", f"sparsity={max(sparsities)}", "data_pruning.keep=0.25"],
        tmp_path,
    )
    assert cfg.name == "scaling_mnist1d_scales" and cfg.data_pruning.name == "random" and cfg.method.allocation == "layerwise"
    assert _run_scales(OmegaConf.to_container(cfg))["dataset_size"] == 900.0  # 0.25 x (4,000 - 400 for validation)


# ----------------------------------------------------------------------------- the training-set size


def _trained_on(tmp_path, *overrides) -> tuple[int, dict]:
    """(the examples build_splits leaves for training, the composed config as a dict): the data pipeline
    itself, the independent measure of the training-set size."""
    import torch
    from omegaconf import OmegaConf

    from prune_cli.data import DATASETS, build_splits
    from prune_cli.data.pruning import kept_examples
    from tests.helpers import composed

    cfg = composed(*overrides, f"dataset.cache_dir={tmp_path}" if "dataset=mnist1d" in overrides else [])
    raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    trained = len(build_splits(raw, cfg.dataset, seed=0, device=torch.device("cpu")).train_y)
    if cfg.data_pruning.name != "none":  # a rule keeps its share of the training split (prune_cli/data/pruning)
        trained = kept_examples(cfg.data_pruning.keep, trained)
    return trained, OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    "overrides, exact",
    [
        (["dataset=synthetic", "dataset.samples_per_class=101", "dataset.num_classes=4"], True),
        (["dataset=synthetic", "dataset.samples_per_class=101", "dataset.max_train_samples=150"], False),
        (["dataset=synthetic", "dataset.imbalance=counts", "dataset.class_counts=[40,17,9]"], True),
        (["dataset=mnist1d", "dataset.num_samples=1000"], False),
        (["dataset=mnist1d", "dataset.num_samples=1000", "dataset.max_train_samples=300"], False),
        (
            [
                "dataset=mnist1d",
                "dataset.num_samples=1000",
                "dataset.max_train_samples=300",
                "data_pruning=random",
                "data_pruning.keep=0.5",
            ],
            False,
        ),
    ],
)
def test_training_set_size_is_what_the_data_pipeline_trains_on(tmp_path, overrides, exact):
    """dataset_size is the number of examples the run trains on: max_train_samples takes its random
    subset before the stratified validation split (prune_cli/data/splits.py), so a cap of 300 trains on
    270. Compared with len(train_y) of the real pipeline: exactly where each class's count is known,
    else within half an example per class (the validation split rounds per class, and a random subset's
    class counts are drawn). Before, a run's size was its first size key: num_samples of mnist1d
    whatever max_train_samples was."""
    trained, cfg = _trained_on(tmp_path, *overrides)
    size = _run_scales(cfg)["dataset_size"]
    classes = cfg["dataset"].get("num_classes", 10)
    if exact:
        assert size == trained
    else:
        assert abs(size - trained) <= classes / 2, (size, trained)


def test_published_training_splits_are_those_of_the_image_datasets():
    """The report (no torch) knows the image datasets' published training splits; the dataset module
    declares the same sizes."""
    from prune_cli.data.vision import SOURCES
    from prune_cli.report.scaling import PUBLISHED_TRAIN

    assert PUBLISHED_TRAIN == {name: source.train_examples for name, source in SOURCES.items()}


def test_report_fits_a_max_train_samples_sweep_with_an_eps_np_per_training_set_size(tmp_path):
    """A training-set-size sweep over dataset.max_train_samples (1,000 and 4,000 of MNIST-1D's 8,000
    training examples): two sizes, each with its own eps_np, one joint fit. Before, both sizes were
    num_samples (10,000), every point mixed two configurations and the family was skipped."""
    root = tmp_path / "results"
    rng = np.random.default_rng(0)
    densities = 0.5 ** np.arange(1, 9)
    for cap, eps_np in ((1000, 0.3), (4000, 0.15)):
        for d in densities:
            for seed in (0, 1):
                cfg = {
                    "seed": seed,
                    "sparsity": float(1 - d),
                    "name": "sc",
                    "method": {"name": "magnitude"},
                    "model": {"name": "mlp", "widths": [16, 16]},
                    "dataset": {"name": "mnist1d", "num_samples": 10000, "val_fraction": 0.1, "max_train_samples": cap},
                }
                error = float(papers_form(d, eps_np, 0.85, 1.2, 0.02)) * (1 + 0.01 * rng.standard_normal())
                write_scaling_run(root, f"r{cap}-{d:g}-{seed}", cfg, error, eps_np)
    written = build_report(root, plots=False)
    (row,) = pd.read_csv(written["scaling_fit.csv"]).to_dict(orient="records")
    assert row["status"] == "fitted" and row["varies"] == "density, dataset_size", row
    assert row["n_dense_errors"] == 2 and row["n_runs"] == 32 and row["n_points"] == 16
    assert not isinstance(row["left_out"], str) or not row["left_out"]
    assert abs(row["gamma"] - 1.2) < 4 * row["gamma_se"]
    assert "dataset_size" not in row["scales"]  # n enters through eps_np only
    assert "2 dense error(s) eps_np" in written["summary.md"].read_text()
