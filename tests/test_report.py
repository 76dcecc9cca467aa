"""prune-report on a results folder built by hand (numbers worked out by hand), plots written, the
standards check naming what is missing, and one end-to-end sweep followed by prune-report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prune_cli.report import build_report, main
from conftest import REPO, copy_results

T_975_2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables: 4.303)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Per seed: finetuned accuracy 0.5 / 0.6 / 0.7, dense accuracy 0.8. Two classes with 10 examples each:
# class 0 recall 1.0 always, class 1 recall 2 * accuracy - 1 (dense: 0.6).
ACC = {0: 0.5, 1: 0.6, 2: 0.7}
DENSE_ACC = 0.8


def _context(run_id, seed, method, score, sparsity, width=16, name="fx"):
    return {
        "run_id": run_id,
        "config_hash": "h" + run_id[-6:],
        "name": name,
        "seed": seed,
        "dataset": "toy",
        "model": "mlp",
        "method": method,
        "score": score,
        "allocation": "global",
        "structure": "unstructured",
        "schedule": "oneshot",
        "target_sparsity": sparsity,
        "dense_cache": "off",
    }


def _write_run(
    root: Path,
    method: str,
    score: str,
    sparsity: float,
    seed: int,
    acc: float,
    width: int = 16,
    dense: bool = True,
    extras: bool = False,
) -> Path:
    run_id = f"fx-{method}-s{sparsity:g}-seed{seed}-w{width}"
    d = root / "runs" / run_id
    d.mkdir(parents=True)
    ctx = _context(run_id, seed, method, score, sparsity, width)
    dense_value = DENSE_ACC if dense else math.nan
    metrics = [
        {**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": acc, "dense_value": dense_value},
        {
            **ctx,
            "phase": "finetuned",
            "split": "model",
            "metric": "compression_ratio",
            "value": 1 / (1 - sparsity),
            "dense_value": 1.0,
        },
    ]
    per_class = [
        {
            **ctx,
            "phase": "finetuned",
            "split": "test",
            "class": c,
            "support": 10,
            "recall": r,
            "precision": math.nan,
            "dense_recall": dr if dense else math.nan,
            "dense_precision": math.nan,
        }
        for c, r, dr in ((0, 1.0, 1.0), (1, 2 * acc - 1, 2 * DENSE_ACC - 1))
    ]
    if dense:
        metrics.append({**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": DENSE_ACC, "dense_value": DENSE_ACC})
    if extras:
        metrics += [
            {**ctx, "phase": "finetuned", "split": "test", "metric": "ntk_rel_dist_dense", "value": 1.0 / width, "dense_value": 0.0}
        ]
        pd.DataFrame(
            [
                {
                    **ctx,
                    "phase": "finetuned",
                    "lr_method": "line_exact",
                    "lr_count": 40 * (1 - sparsity) + seed,
                    "ub_ln_serra": 30.0,
                    "ub_ln_expected": 20 * (1 - sparsity),
                }
            ]
        ).to_csv(d / "regions.csv", index=False)
        grid = np.linspace(-1, 5, 50)
        pd.DataFrame(
            [{**ctx, "phase": p, "grid": g, "density": float(np.exp(-((g - 1) ** 2)))} for p in ("dense", "finetuned") for g in grid]
        ).to_csv(d / "hessian_density.csv", index=False)
    pd.DataFrame(metrics).to_csv(d / "metrics.csv", index=False)
    pd.DataFrame(per_class).to_csv(d / "per_class.csv", index=False)
    (d / "config.yaml").write_text(f"seed: {seed}\nsparsity: {sparsity}\nmodel:\n  name: mlp\n  widths: [{width}, {width}]\n")
    (d / "COMPLETE").write_text(run_id + "\n")
    return d


def _fixture_folder(root: Path) -> Path:
    for seed, acc in ACC.items():
        _write_run(root, "magnitude", "magnitude", 0.5, seed, acc)
        _write_run(root, "random", "random", 0.5, seed, acc - 0.1)
    _write_run(root, "magnitude", "magnitude", 0.9, 0, 0.4, dense=False)  # no dense baseline, no random at 0.9
    failed = root / "runs" / "fx-broken"
    failed.mkdir()
    (failed / "failed.json").write_text(json.dumps({"status": "failed", "error_type": "TrainingDiverged"}))
    (root / "runs" / "fx-half-done").mkdir()  # neither COMPLETE nor failed.json
    return root


@pytest.fixture
def fixture_results(tmp_path):
    return _fixture_folder(tmp_path / "results")


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def fixture_report(tmp_path_factory):
    """build_report(fixture_results, plots=False) once for the tests that only read its files."""
    return build_report(_fixture_folder(tmp_path_factory.mktemp("fixture") / "results"), plots=False)


@pytest.mark.xdist_group("report_fixture")
def test_summary_numbers_by_hand(fixture_report):
    written = fixture_report
    s = pd.read_csv(written["summary.csv"])
    row = s[(s.method == "magnitude") & (s.target_sparsity == 0.5) & (s.metric == "accuracy") & (s.phase == "finetuned")]
    assert len(row) == 1
    row = row.iloc[0]
    assert row.n_seeds == 3 and row.seeds == "0 1 2"
    assert row["mean"] == pytest.approx(0.6) and row["std"] == pytest.approx(0.1)
    assert row.ci_half == pytest.approx(0.1 * T_975_2 / math.sqrt(3))
    assert (row.ci_low, row.ci_high) == pytest.approx((0.6 - 0.1 * T_975_2 / 3**0.5, 0.6 + 0.1 * T_975_2 / 3**0.5))
    # joined with the dense baseline of the same seed: changes -0.3, -0.2, -0.1
    assert row.dense_mean == pytest.approx(0.8)
    assert row.delta_mean == pytest.approx(-0.2) and row.delta_std == pytest.approx(0.1)
    # the run without a dense phase and without dense_value: no baseline, one seed, no interval
    lone = s[(s.target_sparsity == 0.9) & (s.metric == "accuracy") & (s.phase == "finetuned")].iloc[0]
    assert lone.n_seeds == 1 and lone["mean"] == pytest.approx(0.4) and math.isnan(lone.ci_half)
    assert math.isnan(lone.dense_mean)
    md = written["summary.md"].read_text()
    assert "0.6000 ± 0.1000" in md and "-0.2000" in md


def test_confidence_level_changes_the_interval(fixture_results, tmp_path):
    written = build_report(fixture_results, out=tmp_path / "r90", confidence=0.9, plots=False)
    s = pd.read_csv(written["summary.csv"])
    row = s[(s.method == "magnitude") & (s.target_sparsity == 0.5) & (s.metric == "accuracy") & (s.phase == "finetuned")].iloc[0]
    assert row.ci_half == pytest.approx(0.1 * 2.919985580355516 / math.sqrt(3))  # t_{0.95, 2}


@pytest.mark.xdist_group("report_fixture")
def test_intensification_statistics_by_hand(fixture_report):
    """rho0 = (0.25, -0.25); at accuracy a, rho_t = (r, -r) with r = (1 - a) / a, so alpha_t = 4 r,
    I_t = r - 0.25 and every class intensifies (frac 1)."""
    written = fixture_report
    stats = pd.read_csv(written["intensification.csv"])
    mag = stats[(stats.method == "magnitude") & (stats.target_sparsity == 0.5)].set_index("statistic")
    r = np.array([(1 - a) / a for a in ACC.values()])
    for name, values in (("alpha_t_ours", 4 * r), ("I_t", r - 0.25), ("frac_intensified", np.ones(3))):
        assert mag.loc[name, "n_seeds"] == 3
        assert mag.loc[name, "mean"] == pytest.approx(values.mean())
        half = T_975_2 * values.std(ddof=1) / math.sqrt(3)
        assert mag.loc[name, "ci_high"] == pytest.approx(values.mean() + half)
    per_class = pd.read_csv(written["per_class_summary.csv"])
    c1 = per_class[
        (per_class.method == "magnitude")
        & (per_class["class"] == 1)
        & (per_class.quantity == "delta_recall")
        & (per_class.target_sparsity == 0.5)
    ].iloc[0]
    assert c1["mean"] == pytest.approx(np.mean([2 * a - 1 - 0.6 for a in ACC.values()]))  # -0.4


@pytest.mark.xdist_group("report_fixture")
def test_standards_summary_names_what_is_missing(fixture_report):
    text = fixture_report["standards.txt"].read_text()
    assert "(dataset, model) pairs: 1" in text and "fewer than 3 pairs" in text
    assert "missing baselines at sparsity 0.9: random" in text
    assert "missing baselines at sparsity 0.5" not in text  # random and magnitude both there
    assert "baseline allocations not run at sparsity 0.5: random/layerwise, magnitude/layerwise" in text
    assert "[R8] no large-scale pair" in text
    assert "magnitude/oneshot at 0.5: 3 seed(s)\n" in text
    assert "magnitude/oneshot at 0.9: 1 seed(s)  [fewer than 3 seeds]" in text
    assert "missing standard levels: 0.75, 0.875, 0.9375, 0.96875" in text
    assert "[R1] missing dense baseline for 1 run(s)" in text
    assert "failed runs: 1 -> fx-broken (TrainingDiverged)" in text
    assert "unfinished runs (no COMPLETE, no failed.json): 1 -> fx-half-done" in text


def test_plots_are_written(tmp_path):
    root = tmp_path / "results"
    for width in (16, 64):
        for seed, acc in ACC.items():
            for method, score, level in (("magnitude", "magnitude", 0.5), ("magnitude", "magnitude", 0.8), ("random", "random", 0.5)):
                _write_run(root, method, score, level, seed, acc, width=width, extras=True)
    written = build_report(root)
    summary = pd.read_csv(written["summary.csv"])
    acc = summary[
        (summary.metric == "accuracy")
        & (summary.phase == "finetuned")
        & (summary.method == "magnitude")
        & (summary.target_sparsity == 0.5)
    ]
    # the swept width (config key model.widths, varying between runs) is part of the condition: 2 x 3 seeds
    assert sorted(acc["model.widths"]) == ["[16, 16]", "[64, 64]"] and list(acc.n_seeds) == [3, 3]
    for name in (
        "accuracy_vs_compression.png",
        "recall_change_vs_dense.png",
        "regions_vs_sparsity.png",
        "hessian_density.png",
        "ntk_vs_width.png",
    ):
        data = written[name].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert "![ntk_vs_width.png](ntk_vs_width.png)" in written["summary.md"].read_text()


def test_missing_optional_tables_are_skipped(fixture_results):
    written = build_report(fixture_results)
    assert "accuracy_vs_compression.png" in written
    assert not {"regions_vs_sparsity.png", "hessian_density.png", "ntk_vs_width.png"} & set(written)


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "nowhere")])
    assert err.value.code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--confidence", "1.5"])
    assert "--confidence must be in (0, 1)" in capsys.readouterr().err


def test_console_script_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert 'prune-report = "prune_cli.report:main"' in text


def test_sweep_then_prune_report_end_to_end(shared_sweep, tmp_path, capsys):
    results = copy_results(shared_sweep.results, tmp_path / "results")  # -m FAST magnitude,random x 0.5,0.8 x seeds 0,1
    main([str(results)])  # prune-report's entry point (test_console_script_is_declared)
    stdout = capsys.readouterr().out
    out = results / "report"
    summary = pd.read_csv(out / "summary.csv")
    acc = summary[(summary.metric == "accuracy") & (summary.split == "test") & (summary.phase == "finetuned")]
    assert len(acc) == 4 and (acc.n_seeds == 2).all()
    # independent check: mean over the two seeds straight from the per-run files
    runs = pd.concat([pd.read_csv(p) for p in results.glob("runs/*/metrics.csv")])
    direct = runs[(runs.metric == "accuracy") & (runs.split == "test") & (runs.phase == "finetuned")]
    expected = direct.groupby(["method", "target_sparsity"])["value"].mean()
    for _, r in acc.iterrows():
        assert r["mean"] == pytest.approx(expected[(r.method, r.target_sparsity)])
    for name in ("accuracy_vs_compression.png", "recall_change_vs_dense.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    assert (out / "regions_vs_sparsity.png").read_bytes().startswith(PNG_MAGIC)  # region counts are in every run (issue 13)
    assert "2 seed(s)  [fewer than 3 seeds]" in stdout
    assert "missing baselines" not in stdout  # magnitude and random at every point


def test_report_from_shared_csvs_only(fixture_results, tmp_path):
    """A folder holding only the shared CSVs (run folders left on the cluster) gives the same summary."""
    import shutil

    from prune_cli.run.results import rebuild_shared

    rebuild_shared(fixture_results)
    shared_only = tmp_path / "shared_only"
    shared_only.mkdir()
    for p in fixture_results.glob("*.csv"):
        shutil.copy(p, shared_only / p.name)
    # the experiment ids differ by construction (config.yaml vs the context columns); the numbers do not
    a = pd.read_csv(build_report(fixture_results, plots=False)["summary.csv"]).drop(columns="experiment")
    b = pd.read_csv(build_report(shared_only, plots=False)["summary.csv"]).drop(columns="experiment")
    pd.testing.assert_frame_equal(a, b)


def test_the_seeds_of_a_summary_row_are_those_its_statistics_use(tmp_path):
    """A run whose accuracy is NaN (a metric that could not be computed) is left out of n_seeds, the
    mean and the interval, and so out of `seeds`; before, `seeds` still listed it (n_seeds 2, seeds
    "0 1 2")."""
    from prune_cli.report.summary import summarise

    root = tmp_path / "results"
    for seed, acc in ACC.items():
        _write_run(root, "magnitude", "magnitude", 0.5, seed, math.nan if seed == 1 else acc)
    metrics = pd.concat(pd.read_csv(f) for f in sorted(root.glob("runs/*/metrics.csv")))
    row = summarise(metrics).query("phase == 'finetuned' and metric == 'accuracy'").iloc[0]
    assert row["n_seeds"] == 2 and row["seeds"] == "0 2" and row["mean"] == pytest.approx((ACC[0] + ACC[2]) / 2)


def test_curve_labels_do_not_repeat_a_column_by_its_config_key():
    """method.allocation is the `allocation` column under its config name: both varied, so the legend
    read magnitude/global/allocation=global. A config key is shown only when no column says the same."""
    from prune_cli.report.plots import _varying

    df = pd.DataFrame(
        {
            "method": ["magnitude", "magnitude", "random", "random"],
            "allocation": ["global", "layerwise", "global", "layerwise"],
            "method.allocation": ["global", "layerwise", "global", "layerwise"],
            "train.epochs": [2, 4, 2, 4],
            "schedule": ["oneshot", "gradual", "oneshot", "gradual"],
            "schedule.name": ["oneshot", "gradual", "oneshot", "gradual"],
            "model.name": ["mlp", "cnn1d", "mlp", "cnn1d"],  # no context column of this name here: kept
        }
    )
    assert _varying(df) == ["method", "allocation", "schedule", "train.epochs", "model.name"]
