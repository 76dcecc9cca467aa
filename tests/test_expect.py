"""`prune-report --expect`: presets with expected values (configs/expected/), each point marked
inside / outside its band, `--expect-strict`, and the checks on the files themselves."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import REPO, run_cli
from prune_cli.report import main as report_main
from prune_cli.report.expect import available, check_expected, load_expected

EXPECTED_DIR = REPO / "configs" / "expected"
PRESETS = REPO / "configs" / "experiment"


def write_tiny_mnist(root: Path) -> Path:
    """The four MNIST IDX files (real format, 20 + 10 random images) under root/MNIST/raw."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (20, 28, 28)), ("t10k-images-idx3-ubyte", (10, 28, 28))):
        a = rng.integers(0, 256, shape)
        (raw / name).write_bytes(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", *shape) + a.astype(np.uint8).tobytes())
    for name, n in (("train-labels-idx1-ubyte", 20), ("t10k-labels-idx1-ubyte", 10)):
        a = np.arange(n) % 10
        (raw / name).write_bytes(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", n) + a.astype(np.uint8).tobytes())
    return root


# ----------------------------------------------------------------------------- the shipped files


@pytest.mark.parametrize("name", available())
def test_expected_file_is_valid_and_matches_its_preset(name):
    """Each expected-values file loads, names a preset, and every point is a point of the preset's
    sweep (method and sparsity). The preset's configs compose and pass the pre-run checks at every
    sweep point in tests/test_report_presets.py (no training)."""
    from omegaconf import OmegaConf

    expected = load_expected(name)
    assert expected["source"]
    preset = PRESETS / f"{expected['name']}.yaml"
    assert preset.exists(), f"{name}: no preset {preset.name}"
    preset_cfg = OmegaConf.load(preset)
    params = preset_cfg.hydra.sweeper.params
    if "method" in params:
        methods = str(params["method"]).split(",")
    else:  # one method, chosen in the preset's defaults (`override /method: magnitude`)
        defaults = OmegaConf.to_container(preset_cfg.defaults)
        methods = [d["override /method"] for d in defaults if isinstance(d, dict) and "override /method" in d]
    group = next((k for k in params if "/" in k), None)  # operating points as config files
    if group:
        folder = REPO / "configs" / group.split("@")[0]
        sparsities = [float(OmegaConf.load(folder / f"{o}.yaml").sparsity) for o in str(params[group]).split(",")]
    elif "sparsity" in params:
        sparsities = [float(s) for s in str(params["sparsity"]).split(",")]
    else:  # one target sparsity (an iterative schedule records its levels as phases of one run)
        sparsities = [float(preset_cfg.sparsity)]
    for p in expected["points"]:
        if p.get("phase") == "dense":
            continue
        assert p["method"] in methods, (name, p)
        assert any(math.isclose(p["sparsity"], s, rel_tol=1e-9) for s in sparsities), (name, p)


def test_unknown_preset_or_bad_file_stops_before_anything_is_written(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        report_main([str(results), "--expect", "no_such_preset"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_preset" in err and "expect_mnist1d" in err  # the value and what is allowed
    line = next(li for li in err.splitlines() if "error:" in li)  # named once ("--expect: --expect = ..." before 2026-12-03)
    assert line.count("--expect") == 1 and "--expect = 'no_such_preset' is not allowed" in line, line
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "points": [{"method": "magnitude", "sparsity": 0.5, "value": 0.9, "bnd": 0.1}]}))
    with pytest.raises(SystemExit) as e:
        report_main([str(results), "--expect", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "points[0].bnd" in err and "band" in err
    bad.write_text(yaml.safe_dump({"name": "x", "points": [{"method": "magnitude", "sparsity": 0.5, "value": 0.9, "band": -1}]}))
    with pytest.raises(SystemExit):
        report_main([str(results), "--expect", str(bad)])
    assert "points[0].band" in capsys.readouterr().err
    point = {"sparsity": 0.5, "value": 0.9, "band": 0.1}
    bad.write_text(yaml.safe_dump({"name": "x", "config": ["train.epochs", 8], "points": [point]}))
    with pytest.raises(SystemExit):
        report_main([str(results), "--expect", str(bad)])
    assert ": config" in (err := capsys.readouterr().err) and "a mapping of dotted config keys" in err, err
    assert not (results / "report").exists()


# ----------------------------------------------------------------------------- marking points


def _fake_run(
    root: Path, run_id: str, method: str, sparsity: float, seed: int, dense: float, final: float, name: str = "p", **options
):
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    cfg = {
        "name": name,
        "seed": seed,
        "sparsity": sparsity,
        "method": {"name": method, **options},
        "schedule": {"restart_from": "trained"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    ctx = {
        "run_id": run_id,
        "seed": seed,
        "dataset": "d",
        "model": "m",
        "method": method,
        "schedule": "oneshot",
        "target_sparsity": sparsity,
        "score": method,
        "allocation": "global",
        "structure": "unstructured",
        "name": name,
    }
    rows = [
        {**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": dense},
        {**ctx, "phase": "pruned", "split": "test", "metric": "accuracy", "value": 0.0},
        {**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": final},
    ]
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    (run / "COMPLETE").write_text("")


MAG = [0.90, 0.92, 0.94]


@pytest.fixture
def folder(tmp_path):
    for seed, acc in enumerate(MAG):
        _fake_run(tmp_path, f"mag-{seed}", "magnitude", 0.5, seed, 0.95, acc)
        _fake_run(tmp_path, f"rnd-{seed}", "random", 0.5, seed, 0.95, 0.5)
        _fake_run(tmp_path, f"other-{seed}", "magnitude", 0.5, seed, 0.95, 0.1, name="other")  # another preset's runs
    return tmp_path


def _expected_file(path: Path, points: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"name": "p", "source": "hand-made", "metric": "accuracy", "points": points}))
    return path


def test_points_are_marked_inside_outside_or_missing(folder, tmp_path):
    from prune_cli.results import load

    spec = _expected_file(
        tmp_path / "e.yaml",
        [
            {"method": "magnitude", "sparsity": 0.5, "value": 0.93, "band": 0.011},  # mean 0.92: inside
            {"method": "random", "sparsity": 0.5, "value": 0.6, "band": 0.05},  # 0.5: outside
            {"method": "random", "sparsity": 0.9, "value": 0.6, "band": 0.05},  # not run
            {"phase": "dense", "sparsity": 0.0, "value": 0.95, "band": 0.0},  # dense phase, any method
            {"method": "magnitude", "sparsity": 0.5, "value": 0.92, "band": 0.0, "match": {"schedule.restart_from": "rewind"}},
        ],
    )
    res = load(folder)
    table = check_expected(load_expected(str(spec)), res.metrics, res.configs, confidence=0.9)
    assert table["status"].tolist() == ["inside", "outside", "missing", "inside", "missing"]
    first = table.iloc[0]
    assert first["measured"] == pytest.approx(np.mean(MAG))  # the finetuned phase, runs named p only
    half = stats.t.ppf(0.95, 2) * np.std(MAG, ddof=1) / math.sqrt(3)
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((np.mean(MAG) - half, np.mean(MAG) + half))
    assert first["n_seeds"] == 3 and first["deviation"] == pytest.approx(-0.01)


def test_expect_csv_summary_section_and_strict_exit_code(folder, tmp_path, capsys):
    inside = _expected_file(tmp_path / "in.yaml", [{"method": "magnitude", "sparsity": 0.5, "value": 0.92, "band": 0.01}])
    report_main([str(folder), "--expect", str(inside), "--expect-strict", "--no-plots"])  # returns: no SystemExit
    table = pd.read_csv(folder / "report" / "expect.csv")
    assert table["status"].tolist() == ["inside"]
    assert "## Expected values" in (folder / "report" / "summary.md").read_text()
    outside = _expected_file(tmp_path / "out.yaml", [{"method": "magnitude", "sparsity": 0.5, "value": 0.80, "band": 0.01}])
    report_main([str(folder), "--expect", str(outside), "--no-plots"])  # without --expect-strict: exit 0
    assert "outside: magnitude at sparsity 0.5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        report_main([str(folder), "--expect", str(outside), "--expect-strict", "--no-plots"])
    assert e.value.code == 1
    assert pd.read_csv(folder / "report" / "expect.csv")["status"].tolist() == ["outside"]


def test_a_point_whose_runs_are_of_several_configurations_is_ambiguous(tmp_path, capsys):
    """Runs named p of magnitude at 0.5 with allocation global (0.70, 0.74, 0.69) and layerwise (0.50,
    0.54, 0.49): the point {magnitude, 0.5, 0.71} was "measured 0.61, outside", the per-seed mean of
    two variants, a number of no experiment. It is now `ambiguous`, naming what differs and advising
    `match:`; with match it is global's 0.71 (inside), by hand."""
    from prune_cli.results import load

    glob, layer = [0.70, 0.74, 0.69], [0.50, 0.54, 0.49]
    for seed in range(3):
        _fake_run(tmp_path, f"g-{seed}", "magnitude", 0.5, seed, 0.95, glob[seed], allocation="global")
        _fake_run(tmp_path, f"l-{seed}", "magnitude", 0.5, seed, 0.95, layer[seed], allocation="layerwise")
    point = {"method": "magnitude", "sparsity": 0.5, "value": 0.71, "band": 0.05}
    spec = _expected_file(tmp_path / "e.yaml", [point, {**point, "match": {"method.allocation": "global"}}])
    res = load(tmp_path)
    table = check_expected(load_expected(str(spec)), res.metrics, res.configs)
    ambiguous, matched = table.iloc[0], table.iloc[1]
    assert ambiguous["status"] == "ambiguous" and math.isnan(ambiguous["measured"]) and math.isnan(ambiguous["deviation"])
    assert ambiguous["note"] == (
        "the 6 runs of this point are of 2 configurations, differing in method.allocation (global, layerwise); "
        "add `match:` with the values of one (e.g. {method.allocation: global})"
    )
    assert matched["status"] == "inside" and matched["measured"] == pytest.approx(np.mean(glob)) and matched["n_seeds"] == 3
    report_main([str(tmp_path), "--expect", str(spec), "--no-plots"])
    out = capsys.readouterr().out
    assert "1 inside, 0 outside, 0 missing, 1 ambiguous of 2 points" in out
    assert "ambiguous: magnitude at sparsity 0.5 (final accuracy): the 6 runs of this point are of 2 configurations" in out
    with pytest.raises(SystemExit) as e:  # a point that matches several experiments is not confirmed
        report_main([str(tmp_path), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert e.value.code == 1


def test_a_point_whose_seeds_differ_only_across_seeds_is_measured_as_the_rest_of_the_report_does(tmp_path):
    """Seed 0 run with another option value (`device=cpu`, the others `auto`, numbers bit-identical) made
    the point `ambiguous` and --expect-strict fail a faithful reproduction: --expect was stricter than the
    report's rule (report/mixing.py), under which runs are mixed only when one seed has runs of several
    configurations. Now the point is measured over its 3 seeds, by hand 0.71."""
    from prune_cli.results import load

    finals = [0.70, 0.74, 0.69]
    for seed in range(3):
        _fake_run(tmp_path, f"r-{seed}", "magnitude", 0.5, seed, 0.95, finals[seed], extra="cpu" if seed == 0 else "auto")
    spec = _expected_file(tmp_path / "e.yaml", [{"method": "magnitude", "sparsity": 0.5, "value": 0.71, "band": 0.05}])
    res = load(tmp_path)
    row = check_expected(load_expected(str(spec)), res.metrics, res.configs).iloc[0]
    assert row["status"] == "inside" and row["measured"] == pytest.approx(np.mean(finals)) and row["n_seeds"] == 3


def test_a_point_whose_runs_all_have_no_value_is_said_to_have_none_not_outside(folder, tmp_path, capsys):
    """random at 0.9 ran on seeds 0-2 and its final accuracy is NaN on all three (diverged): the point was
    marked `outside` (measured empty, n_seeds 0; tally "1 outside"), as if a value had been measured and
    missed its band. It is now `no_value`, its note names the seeds, and --expect-strict still fails it."""
    from prune_cli.results import load

    for seed in range(3):
        _fake_run(folder, f"nan-{seed}", "random", 0.9, seed, 0.95, math.nan)
    spec = _expected_file(
        tmp_path / "e.yaml",
        [
            {"method": "magnitude", "sparsity": 0.5, "value": 0.92, "band": 0.01},  # mean 0.92: inside
            {"method": "random", "sparsity": 0.9, "value": 0.6, "band": 0.05},  # NaN on every seed
        ],
    )
    res = load(folder)
    table = check_expected(load_expected(str(spec)), res.metrics, res.configs)
    assert table["status"].tolist() == ["inside", "no_value"]
    row = table.iloc[1]
    assert row["n_seeds"] == 0 and math.isnan(row["measured"]) and math.isnan(row["deviation"])
    assert row["note"] == "no finite accuracy on any of its 3 seeds (0, 1, 2): NaN, a run that diverged, say"
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    out = capsys.readouterr().out
    assert "1 inside, 0 outside, 0 missing, 1 without a value of 2 points" in out
    got = "got no finite accuracy on any of its 3 seeds"
    assert f"no_value: random at sparsity 0.9 (final accuracy): expected 0.6 ± 0.05, {got}" in out
    md = (folder / "report" / "summary.md").read_text()
    assert "1 inside, 0 outside, 0 missing, 1 without a value of 2 points." in md
    with pytest.raises(SystemExit) as e:  # a point without a value is not confirmed
        report_main([str(folder), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert e.value.code == 1


POINT = {"method": "magnitude", "sparsity": 0.5, "value": 0.92, "band": 0.01}


@pytest.mark.parametrize(
    "point, key, value, allowed",
    [
        ({"phase": "finetune"}, "points[0].phase", "finetune", "finetuned"),
        ({"metric": "acuracy"}, "points[0].metric", "acuracy", "accuracy"),
        ({"split": "tset"}, "points[0].split", "tset", "test"),
        ({"match": {"method.alocation": "global"}}, "points[0].match", "method.alocation", "method.name"),
        ({"method": "magnitud"}, "points[0].method", "magnitud", "magnitude"),
    ],
)
def test_a_typo_in_a_point_stops_before_anything_is_written(folder, tmp_path, capsys, point, key, value, allowed):
    """A phase, metric, split, match key or method that no run of the folder has and prune-run never
    writes was reported as `missing: ... got no runs` with exit 1 (under --expect-strict), as if the
    runs had not been made yet. It is a typo: exit 2 before anything is written, naming the key, the
    value and what is allowed (the folder's values, with the closest one)."""
    spec = _expected_file(tmp_path / "typo.yaml", [{**POINT, **point}])
    with pytest.raises(SystemExit) as e:
        report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert key in err and repr(value) in err and allowed in err, err
    assert not (folder / "report").exists()


def test_a_typo_in_the_files_defaults_stops_too(folder, tmp_path, capsys):
    spec = tmp_path / "typo.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "source": "hand-made", "phase": "fine-tuned", "points": [POINT]}))
    with pytest.raises(SystemExit) as e:
        report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{spec}: phase = 'fine-tuned'" in err and "finetuned" in err
    assert not (folder / "report").exists()


def test_points_of_runs_not_made_yet_are_still_missing_not_refused(folder, tmp_path):
    """What a preset's runs will record but this folder's do not yet: a method prune-cli has (snip), an
    iteration of an iterative schedule (round_3), a metric every run writes (ece), the val split, a
    match key the runs have with another value. Those points are `missing` (docs/report.md), as before."""
    spec = _expected_file(
        tmp_path / "later.yaml",
        [
            {**POINT, "method": "snip"},
            {**POINT, "phase": "round_3"},
            {**POINT, "metric": "ece"},
            {**POINT, "split": "val"},
            {**POINT, "match": {"schedule.restart_from": "rewind"}},
        ],
    )
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert pd.read_csv(folder / "report" / "expect.csv")["status"].tolist() == ["missing"] * 5


def test_the_metrics_every_run_writes_are_those_of_the_metric_code():
    """expect.py's list of the metrics every run records (accepted before a run has recorded them) is
    made of names the recording code writes."""
    from prune_cli.report.expect import CORE_METRICS

    source = (REPO / "prune_cli" / "metrics" / "classification.py").read_text() + (
        REPO / "prune_cli" / "metrics" / "cost.py"
    ).read_text()
    assert all(f'"{m}"' in source for m in CORE_METRICS), [m for m in CORE_METRICS if f'"{m}"' not in source]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_offline_preset_reproduces_its_expected_values(tmp_path):
    """The MNIST-1D preset end to end (12 short runs, about two minutes on 2 busy cores), then
    prune-report --expect expect_mnist1d --expect-strict."""
    results = tmp_path / "results"
    run_cli(["-m", "+experiment=expect_mnist1d"], results, timeout=900)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "prune_cli.report", str(results), "--expect", "expect_mnist1d", "--expect-strict"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(results / "report" / "expect.csv")
    assert (table["status"] == "inside").all() and len(table) == 5
