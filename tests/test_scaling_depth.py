"""The depth exponent of the pruning scaling law (Rosenfeld, Frankle, Carbin and Shavit, ICML 2021;
issue 13 part 4): depth l is counted by hand (weight layers: hidden layers + the output layer of an
MLP; 6n + 2 for a CIFAR ResNet-<6n+2>), points generated from the paper's joint form written with
complex numbers (not the module's real-arithmetic form) with depth varying give phi back within
the reported standard error, and prune-report fits phi_depth for a folder of runs that sweeps depth
as the preset `scaling_mnist1d_depth` does."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from prune_cli.report import build_report
from prune_cli.report.load import load_results
from prune_cli.report.scaling import _family, _run_scales, fit_families, fit_scaling_law, scaling_points, separable_scales

# close to what the MNIST-1D sweep measures (docs/scaling_law.md): a shallow power law
TRUE = {"eps_up": 0.9, "gamma": 0.5, "p": 0.05, "psi_width": 0.5, "phi_depth": 0.8}
DENSITIES = 0.5 ** np.arange(1, 10)  # the preset's nine densities, 1/2 to 1/512


def papers_form(d, eps_np, eps_up, gamma, p, w=1.0, psi=0.0, l=1.0, phi=0.0):
    """The paper's joint form as printed: eps_np |(m - j p (eps_up/eps_np)^(1/gamma)) / (m - j p)|^gamma
    with m = l^phi w^psi d, in complex arithmetic."""
    m = (l**phi) * (w**psi) * np.asarray(d, dtype=complex)
    return eps_np * np.abs((m - 1j * p * (eps_up / eps_np) ** (1 / gamma)) / (m - 1j * p)) ** gamma


def dense_error(width, depth):
    """A made-up unpruned error, lower for wider and deeper nets (the law takes it as measured)."""
    return 0.3 * (width / 32) ** -0.1 * (depth / 2) ** -0.05


def _depth_points(noise: float, seed: int, widths=(32,)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    t = TRUE
    for width in widths:
        for depth in (2, 3, 4, 5):  # 1 to 4 hidden layers
            eps_np = dense_error(width, depth)
            error = papers_form(
                DENSITIES, eps_np, t["eps_up"], t["gamma"], t["p"], w=width, psi=t["psi_width"], l=depth, phi=t["phi_depth"]
            )
            error = error * (1 + noise * rng.standard_normal(len(DENSITIES)))
            rows += [{"density": d, "width": width, "depth": depth, "eps_np": eps_np, "error": e} for d, e in zip(DENSITIES, error)]
    return pd.DataFrame(rows)


def test_depth_is_the_number_of_weight_layers():
    """Counted by hand: an MLP with k hidden layers has k + 1 weight layers; width is the mean hidden width."""
    for widths, depth, width in (([32], 2, 32), ([32, 32], 3, 32), ([32] * 4, 5, 32), ([128, 64, 32], 4, 224 / 3)):
        scales = _run_scales({"model": {"name": "mlp", "widths": widths}, "dataset": {"name": "mnist1d", "num_samples": 4000}})
        assert scales["depth"] == depth and scales["width"] == pytest.approx(width), widths
    base = {"seed": 0, "sparsity": 0.5, "model": {"name": "mlp", "widths": [32]}, "dataset": {"name": "mnist1d"}}
    deeper = {**base, "seed": 2, "sparsity": 0.99, "model": {"name": "mlp", "widths": [128] * 4}}
    assert _family(deeper) == _family(base)  # one family across depth, width, density and seed


def test_noise_free_depth_family_gives_back_phi():
    """At one width the width factor w^psi is a constant that p absorbs: p = p_true / 32^psi."""
    fit = fit_scaling_law(_depth_points(0.0, 0), ["depth"])
    assert fit.status == "fitted" and fit.reason == "" and fit.n_points == 4 * len(DENSITIES)
    for name in ("eps_up", "gamma", "phi_depth"):
        assert fit.params[name] == pytest.approx(TRUE[name], rel=1e-4), name
    assert fit.params["p"] == pytest.approx(TRUE["p"] / 32 ** TRUE["psi_width"], rel=1e-4)
    assert "psi_width" not in fit.params


def test_noisy_depth_family_recovers_phi_within_its_standard_error():
    """2 % multiplicative noise (about the seed noise of the MNIST-1D sweeps), 8 draws over 4 depths
    x 9 densities: every draw's phi lies within 3.5 standard errors of the truth, the estimates centre
    on it, and the Jacobian standard errors match their spread over draws."""
    fits = [fit_scaling_law(_depth_points(0.02, s), ["depth"]) for s in range(8)]
    assert all(f.status == "fitted" and f.reason == "" for f in fits)
    phi = np.array([f.params["phi_depth"] for f in fits])
    se = np.array([f.stderr["phi_depth"] for f in fits])
    assert np.all(np.abs(phi - TRUE["phi_depth"]) < 3.5 * se), (phi, se)
    assert abs(phi.mean() - TRUE["phi_depth"]) < 4 * phi.std(ddof=1) / math.sqrt(len(fits))
    assert 0.4 < se.mean() / phi.std(ddof=1) < 2.5


def test_depth_and_width_grid_gives_back_both_exponents_within_their_standard_errors():
    """The preset's grid: 4 depths x 2 widths x 9 densities, 2 % noise."""
    fit = fit_scaling_law(_depth_points(0.02, 11, widths=(32, 128)), ["width", "depth"])
    assert fit.status == "fitted" and fit.reason == ""
    for name in ("psi_width", "phi_depth", "gamma"):
        assert abs(fit.params[name] - TRUE[name]) < 3.5 * fit.stderr[name], name


@pytest.mark.parametrize(
    "architectures, k",
    [
        ([(32, 2), (64, 4), (128, 8)], 1.0),  # l = w / 16: every wider net is deeper in proportion
        ([(32, 2), (64, 3)], math.log(3 / 2) / math.log(2)),  # any two architectures: `model.widths=[32],[64,64]`
    ],
)
def test_depth_confounded_with_width_fits_one_combined_exponent_and_says_so(architectures, k):
    """When log l is a linear function of log w over a family's architectures (l = c w^k), only
    l^phi w^psi = c^phi w^(psi + k phi) is determined: c^phi goes into p, and phi and psi cannot be
    told apart. The fit keeps the width exponent, which then is psi + k phi (worked by hand from the
    generating parameters), leaves phi_depth out and says why, instead of reporting two arbitrary
    exponents with small standard errors."""
    rows = []
    t = TRUE
    for width, depth in architectures:
        eps_np = dense_error(width, depth)
        error = papers_form(
            DENSITIES, eps_np, t["eps_up"], t["gamma"], t["p"], w=width, psi=t["psi_width"], l=depth, phi=t["phi_depth"]
        )
        rows += [{"density": d, "width": width, "depth": depth, "eps_np": eps_np, "error": e} for d, e in zip(DENSITIES, error)]
    fit = fit_scaling_law(pd.DataFrame(rows), ["width", "depth"])
    assert fit.status == "fitted" and fit.scales == ["width"] and "phi_depth" not in fit.params
    assert "phi_depth not fitted" in fit.reason and "depth" in fit.reason
    assert fit.params["psi_width"] == pytest.approx(t["psi_width"] + k * t["phi_depth"], rel=1e-4)
    assert fit.params["gamma"] == pytest.approx(t["gamma"], rel=1e-4) and math.isfinite(fit.stderr["psi_width"])


def _write_run(
    root, run_id: str, model: dict, sparsity: float, seed: int, error: float, eps_np: float, dataset="mnist1d", weights=None
) -> None:
    """A completed run folder in the real formats (metrics.csv, config.yaml, COMPLETE) with what the
    scaling report reads: dense and fine-tuned test accuracy and the achieved sparsity."""
    d = root / "runs" / run_id
    d.mkdir(parents=True)
    ctx = dict(run_id=run_id, name="depth", seed=seed, dataset=dataset, model=model["name"], method="magnitude", score="magnitude")
    ctx.update(allocation="layerwise", structure="unstructured", schedule="oneshot", target_sparsity=sparsity)
    rows = [
        {**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": 1 - eps_np, "dense_value": 1 - eps_np},
        {**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": 1 - error, "dense_value": 1 - eps_np},
        {**ctx, "phase": "finetuned", "split": "model", "metric": "sparsity_prunable", "value": sparsity, "dense_value": 0.0},
    ]
    if weights is not None:
        rows.append({**ctx, "phase": "dense", "split": "model", "metric": "params_prunable", "value": weights, "dense_value": weights})
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    config = {
        "seed": seed,
        "sparsity": sparsity,
        "name": "depth",
        "method": {"name": "magnitude", "allocation": "layerwise"},
        "model": model,
        "dataset": {"name": "mnist1d", "num_samples": 4000} if dataset == "mnist1d" else {"name": dataset, "root": "/data"},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    (d / "COMPLETE").write_text(run_id)


def test_report_fits_the_depth_exponent_of_a_depth_and_width_sweep(tmp_path):
    """Run folders laid out as the preset's sweep (1-4 hidden layers of width 32 or 128, 9 densities,
    one seed with 1 % noise): one family, one eps_np per (width, depth), and phi_depth and psi_width
    within 4 standard errors of the values the errors were generated with."""
    root = tmp_path / "results"
    rng = np.random.default_rng(3)
    t = TRUE
    for width in (32, 128):
        for hidden in (1, 2, 3, 4):
            depth = hidden + 1
            eps_np = dense_error(width, depth)
            for d in DENSITIES:
                true = float(
                    papers_form(d, eps_np, t["eps_up"], t["gamma"], t["p"], w=width, psi=t["psi_width"], l=depth, phi=t["phi_depth"])
                )
                for seed in range(1):
                    error = true * (1 + 0.01 * rng.standard_normal())
                    model = {"name": "mlp", "widths": [width] * hidden}
                    _write_run(root, f"depth-w{width}-h{hidden}-d{d:g}-seed{seed}", model, float(1 - d), seed, error, eps_np)
    written = build_report(root)
    (row,) = pd.read_csv(written["scaling_fit.csv"]).to_dict(orient="records")
    assert row["status"] == "fitted" and row["reason"] != row["reason"]  # NaN: no reason, all identifiable
    assert row["scales"] == "density, width, depth" and row["varies"] == "density, width, depth"
    assert row["n_dense_errors"] == 8 and row["n_points"] == 8 * len(DENSITIES) and row["n_runs"] == 8 * len(DENSITIES)
    for name in ("phi_depth", "psi_width", "gamma"):
        assert abs(row[name] - t[name]) < 4 * row[name + "_se"], (name, row[name], row[name + "_se"])
    assert "phi_depth = " in written["summary.md"].read_text()


def test_depth_of_resnets_and_residual_mlps_counted_by_hand():
    """CIFAR ResNet-<6n+2> has 6n + 2 weight layers (the stem, 3n blocks of two convolutions, the
    classifier; option A shortcuts have none), the paper's own depth; res_mlp has its stem, two
    Linear layers per residual section and its classifier. Depth and width are scales, so a family
    spans ResNet-20/32/56 (or res_mlp's widths and section counts), but not ResNet and VGG."""
    cifar = {"name": "cifar10", "root": "/data"}
    # dataset_size: CIFAR-10's 50,000 training images less the validation split (val_fraction 0.1 by default)
    assert _run_scales({"model": {"name": "resnet20"}, "dataset": cifar}) == {"depth": 20.0, "dataset_size": 45000.0}
    assert _run_scales({"model": {"name": "resnet56"}, "dataset": cifar})["depth"] == 56.0
    res_mlp = {"name": "res_mlp", "width": 64, "blocks": 4, "bias": True}
    assert _run_scales({"model": res_mlp, "dataset": {"name": "mnist1d"}})["depth"] == 1 + 2 * 4 + 1
    assert _run_scales({"model": res_mlp, "dataset": {"name": "mnist1d"}})["width"] == 64.0
    base = {"seed": 0, "sparsity": 0.9, "dataset": cifar, "model": {"name": "resnet20"}}
    assert _family({**base, "model": {"name": "resnet56"}, "seed": 1}) == _family(base)
    assert _family({**base, "model": {"name": "vgg16"}}) != _family(base)
    small = {**base, "model": res_mlp}
    assert _family({**small, "model": {**res_mlp, "width": 128, "blocks": 2}}) == _family(small) != _family(base)


def test_report_fits_the_depth_exponent_of_cifar_resnets(tmp_path):
    """The paper's depth sweep: ResNet-20, -32 and -56 (model=resnet20,resnet32,resnet56) are one
    family with l = 20, 32, 56 and one eps_np each; phi_depth within 4 standard errors of the value
    the errors were generated with."""
    root = tmp_path / "results"
    rng = np.random.default_rng(5)
    t = TRUE
    for depth in (20, 32, 56):
        eps_np = 0.09 * (depth / 20) ** -0.2
        for d in DENSITIES:
            true = float(papers_form(d, eps_np, t["eps_up"], t["gamma"], t["p"], l=depth, phi=t["phi_depth"]))
            for seed in range(1):
                error = true * (1 + 0.01 * rng.standard_normal())
                model = {"name": f"resnet{depth}"}
                _write_run(root, f"resnet{depth}-d{d:g}-seed{seed}", model, float(1 - d), seed, error, eps_np, dataset="cifar10")
    folder = load_results(root)  # what prune-report's scaling section reads and fits (report/build.py)
    table, _ = fit_families(scaling_points(folder.table("metrics.csv"), folder.configs))
    (row,) = table.to_dict(orient="records")
    assert row["status"] == "fitted" and row["scales"] == "density, depth" and row["n_dense_errors"] == 3
    assert row["model"] == "resnet20, resnet32, resnet56"
    assert abs(row["phi_depth"] - t["phi_depth"]) < 4 * row["phi_depth_se"], (row["phi_depth"], row["phi_depth_se"])


def test_depth_preset_sweeps_a_grid_that_separates_depth_from_width():
    """configs/experiment/scaling_mnist1d_depth.yaml: every (depth, width) of 2-5 weight layers x
    hidden widths 32 and 128 (listed by hand), nine densities and three seeds, so the joint fit keeps
    both exponents; prune-report groups the whole sweep into one family."""
    from omegaconf import OmegaConf

    from conftest import REPO

    preset = OmegaConf.load(REPO / "configs" / "experiment" / "scaling_mnist1d_depth.yaml")
    params = preset.hydra.sweeper.params
    architectures = [yaml.safe_load(w) for w in str(params["model.widths"]).replace("],[", "]|[").split("|")]
    configs = [{"model": {"name": "mlp", "widths": w}, "dataset": {"name": "mnist1d", "num_samples": 4000}} for w in architectures]
    grid = pd.DataFrame([_run_scales(c) for c in configs])
    assert sorted(zip(grid.depth, grid.width)) == [(l, w) for l in (2, 3, 4, 5) for w in (32, 128)]
    assert separable_scales(grid, ["width", "depth"]) == (["width", "depth"], "")
    assert len({_family({**c, "seed": 0, "sparsity": 0.5}) for c in configs}) == 1
    assert len(str(params.sparsity).split(",")) == 9 and str(params.seed) == "0,1,2"
    assert preset.threads == 1 and preset.method.allow_collapse is True


def test_depth_analysis_script_fits_phi_at_each_width(tmp_path, capsys):
    """scripts/scaling_depth_analysis.py on a folder of runs at one width and four depths: its
    depth-alone fit gives back phi within 4 standard errors, and its weight-count invariant reads the
    runs' params_prunable (here the MLP's count on MNIST-1D, 40 w + (k - 1) w^2 + 10 w)."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("scaling_depth_analysis", REPO / "scripts" / "scaling_depth_analysis.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root = tmp_path / "results"
    rng = np.random.default_rng(7)
    t = TRUE
    for hidden in (1, 2, 3, 4):
        eps_np = dense_error(32, hidden + 1)
        for d in DENSITIES:
            true = float(papers_form(d, eps_np, t["eps_up"], t["gamma"], t["p"], l=hidden + 1, phi=t["phi_depth"]))
            for seed in range(1):
                error = true * (1 + 0.01 * rng.standard_normal())
                model = {"name": "mlp", "widths": [32] * hidden}
                weights = 40 * 32 + (hidden - 1) * 32 * 32 + 32 * 10
                _write_run(root, f"h{hidden}-d{d:g}-seed{seed}", model, float(1 - d), seed, error, eps_np, weights=weights)
    script.main(root)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("depth alone at width 32:"))
    value, se = (float(v) for v in re.search(r"phi_depth = ([-\d.e]+) ± ([\d.e-]+)", line).groups())
    assert abs(value - t["phi_depth"]) < 4 * se, line
    assert "invariant d * N(l, w)^e" in out and "4672" in out  # 4 hidden layers of 32


def test_a_parameter_at_its_bound_has_no_standard_error():
    """The deepest, widest MLP of the preset goes from its low plateau to chance within a few halvings
    of density, a step that drives gamma to the fit's bound of 50. Points made from the paper's form
    with gamma = 100 (beyond the bound) reproduce that: gamma is reported at the bound with no
    standard error (the Jacobian's local error bar means nothing at an active bound), the other
    parameters keep theirs, and p is still recovered within 4 of them."""
    rng = np.random.default_rng(0)
    error = papers_form(DENSITIES, 0.5, 0.9, 100.0, 0.03) * (1 + 0.01 * rng.standard_normal(len(DENSITIES)))
    fit = fit_scaling_law(pd.DataFrame({"density": DENSITIES, "error": error, "eps_np": 0.5}))
    assert fit.status == "fitted" and fit.params["gamma"] == pytest.approx(50.0)
    assert "at a bound of the fit, so without a standard error: gamma = 50" in fit.reason
    assert math.isnan(fit.stderr["gamma"]) and math.isfinite(fit.stderr["eps_up"]) and math.isfinite(fit.stderr["p"])
    assert abs(fit.params["p"] - 0.03) < 4 * fit.stderr["p"]


def test_a_non_finite_accuracy_is_a_missing_error_not_minus_infinity():
    """An overflowed value (inf) is missing, as in the summary's tables: error 1 - inf = -inf made the
    point's seed mean -inf and the fit dropped the whole point ("without an error") though its other
    seeds had one (audit)."""
    rows = []
    for run, acc in (("a", math.inf), ("b", 0.8), ("c", -math.inf)):
        common = {"run_id": run, "split": "test", "metric": "accuracy", "seed": 0, "target_sparsity": 0.5}
        dense = 0.9 if run != "c" else math.inf
        rows += [{**common, "phase": "finetuned", "value": acc}, {**common, "phase": "dense", "value": dense}]
    points = scaling_points(pd.DataFrame(rows), {}).set_index("run_id")
    assert math.isnan(points.loc["a", "error"]) and math.isnan(points.loc["c", "error"]) and math.isnan(points.loc["c", "eps_np"])
    assert points.loc["b", "error"] == pytest.approx(0.2) and points.loc["a", "eps_np"] == pytest.approx(0.1)


def _depth_script():
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("scaling_depth_analysis", REPO / "scripts" / "scaling_depth_analysis.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_depth_analysis_seed_means_keep_families_apart():
    """Two families (say train.epochs 2 and 3) with one seed each at the same (width, depth, density):
    two points of one seed with their own errors and dense errors, not one point of two seeds at the
    mean (0.3 and 0.5 -> 0.4)."""
    points = pd.DataFrame(
        [
            {
                "family": "f-a",
                "width": 32.0,
                "depth": 2.0,
                "density": 0.5,
                "seed": 0,
                "error": 0.3,
                "eps_np": 0.2,
                "target_density": 0.5,
            },
            {
                "family": "f-b",
                "width": 32.0,
                "depth": 2.0,
                "density": 0.5,
                "seed": 1,
                "error": 0.5,
                "eps_np": 0.4,
                "target_density": 0.5,
            },
        ]
    )
    mean = _depth_script().seed_means(points).sort_values("family")
    assert mean["family"].tolist() == ["f-a", "f-b"]
    assert mean["n_seeds"].tolist() == [1, 1]
    assert mean["error"].tolist() == pytest.approx([0.3, 0.5]) and mean["eps_np"].tolist() == pytest.approx([0.2, 0.4])


def test_depth_analysis_script_analyses_each_family_apart(tmp_path, capsys):
    """A folder of two families (the same depths and densities, one at train.epochs 3 with errors made
    with phi 0.2, the other with phi 0.8): the script prints a section per family naming it, and each
    section's depth-alone fit gives back its own family's phi within 4 standard errors (pooled, the two
    would be one point of 2 seeds and one phi between them)."""
    script = _depth_script()
    root = tmp_path / "results"
    t = TRUE
    for phi, epochs in ((0.8, None), (0.2, 3)):
        for hidden in (1, 2, 3, 4):
            eps_np = dense_error(32, hidden + 1)
            for d in DENSITIES:
                error = float(papers_form(d, eps_np, t["eps_up"], t["gamma"], t["p"], l=hidden + 1, phi=phi))
                run_id = f"e{epochs}-h{hidden}-d{d:g}-seed0"
                _write_run(root, run_id, {"name": "mlp", "widths": [32] * hidden}, float(1 - d), 0, error, eps_np)
                if epochs is not None:
                    path = root / "runs" / run_id / "config.yaml"
                    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "train": {"epochs": epochs}}))
    script.main(root)
    out = capsys.readouterr().out
    sections = out.split("\n=== family ")[1:]
    assert len(sections) == 2, out
    found = []
    for section in sections:
        assert section.split(":")[0].startswith("f-") and "analysed apart from the other 1" in section.splitlines()[0]
        line = next(x for x in section.splitlines() if x.startswith("depth alone at width 32:"))
        value, se = (float(v) for v in re.search(r"phi_depth = ([-\d.e]+) ± ([\d.e-]+)", line).groups())
        found.append((value, se))
    assert any(abs(v - 0.8) < 4 * se + 1e-6 for v, se in found) and any(abs(v - 0.2) < 4 * se + 1e-6 for v, se in found), found
    assert "train.epochs=3" in out
