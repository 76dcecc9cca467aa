"""`prune-report --expect`: presets with expected values (configs/expected/), each point marked
inside / outside its band, `--expect-strict`, and the checks on the files themselves."""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
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


# ----------------------------------------------------------------------------- a folder of only the shared CSVs


def _shared_csvs_only(folder: Path) -> Path:
    """The folder's runs as prune-run's shared runs.csv alone: the run directories moved away."""
    rows = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("runs/*/metrics.csv"))])
    rows.to_csv(folder / "runs.csv", index=False)
    shutil.rmtree(folder / "runs")
    return folder


def test_a_folder_of_only_the_shared_csvs_is_measured_from_the_rows_columns(folder, tmp_path, capsys):
    """Without run directories every point read "missing" ("0 inside, 3 missing ... got no runs") with an
    empty note, and --expect-strict exited 1 as if nothing had been run. The rows' name, method,
    target_sparsity and seed identify the runs: the points are measured from them."""
    root = _shared_csvs_only(folder)
    spec = _expected_file(
        tmp_path / "e.yaml",
        [
            {"method": "magnitude", "sparsity": 0.5, "value": 0.93, "band": 0.011},
            {"method": "random", "sparsity": 0.5, "value": 0.6, "band": 0.05},
            {"phase": "dense", "sparsity": 0.0, "value": 0.95, "band": 0.0},
        ],
    )
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert table["status"].tolist() == ["inside", "outside", "inside"]
    # by hand: the runs named p only (the "other" runs of magnitude at 0.5 finish at 0.1): (0.90 + 0.92 + 0.94) / 3
    assert table["measured"].tolist() == pytest.approx([0.92, 0.5, 0.95])
    assert table["n_seeds"].tolist() == [3, 3, 3] and table["note"].tolist() == ["", "", ""]
    inside = _expected_file(tmp_path / "in.yaml", [{"method": "magnitude", "sparsity": 0.5, "value": 0.92, "band": 0.01}])
    report_main([str(root), "--expect", str(inside), "--expect-strict", "--no-plots"])  # no SystemExit(1)


def test_a_seed_with_two_runs_of_a_point_in_the_shared_csvs_is_ambiguous_not_averaged(folder, tmp_path):
    """The columns cannot see epochs or widths: two runs of one seed, name, method and sparsity may be two
    configurations, so the point is ambiguous (as a folder with configs would show it) rather than a mean."""
    _fake_run(folder, "mag-0-again", "magnitude", 0.5, 0, 0.95, 0.50)
    root = _shared_csvs_only(folder)
    spec = _expected_file(tmp_path / "e.yaml", [POINT, {"phase": "dense", "sparsity": 0.0, "value": 0.95, "band": 0.0}])
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert table["status"].tolist() == ["ambiguous", "inside"]  # the dense model of seed 0: 0.95 in every run
    assert table["note"][0].startswith("seed 0 has 2 runs of this point (mag-0, mag-0-again)"), table["note"][0]


def test_a_dense_point_of_different_dense_models_in_the_shared_csvs_is_ambiguous(folder, tmp_path):
    """Seed 0 has a run named p whose dense model is another one (dense accuracy 0.99, other epochs say; the
    columns cannot show it) beside mag-0 and rnd-0 (0.95, one dense model): the dense point averaged the two
    models, by hand ((0.95 + 0.95 + 0.99) / 3 + 0.95 + 0.95) / 3 = 0.954444, `inside` 0.95 +- 0.005. Runs
    of several methods that share one dense model (equal dense values: seeds 1 and 2) stay fine."""
    _fake_run(folder, "mag9-0", "magnitude", 0.9, 0, 0.99, 0.5)
    root = _shared_csvs_only(folder)
    dense = {"phase": "dense", "sparsity": 0.0, "value": 0.95, "band": 0.005}
    spec = _expected_file(tmp_path / "e.yaml", [dense, POINT])
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert table["status"].tolist() == ["ambiguous", "inside"]
    note = table["note"][0]
    assert note.startswith("seed 0 has dense runs of different dense values (mag-0: 0.95, mag9-0: 0.99, rnd-0: 0.95)"), note
    assert "the shared CSVs cannot tell apart" in note and "runs/" in note, note
    assert table["measured"][0] == "" and float(table["measured"][1]) == pytest.approx(0.92)


def test_config_and_match_in_a_folder_of_only_the_shared_csvs_are_said_unchecked_and_the_report_is_written(folder, tmp_path, capsys):
    """Every shipped preset has `config:`: in a folder of only the shared CSVs prune-report refused it (exit 2,
    no report), where before it wrote the report. The points are measured from the columns, each note says the
    config was not checked; a point with `match:` cannot select runs there: `missing`, saying why. By hand:
    magnitude at 0.5 of the runs named p, (0.90 + 0.92 + 0.94) / 3 = 0.92."""
    root = _shared_csvs_only(folder)
    spec = tmp_path / "e.yaml"
    points = [POINT, {**POINT, "match": {"method.allocation": "global"}}]
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"train.epochs": 2}, "points": points}))
    report_main([str(root), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
    assert table["status"].tolist() == ["inside", "missing"]
    assert float(table["measured"][0]) == pytest.approx(0.92) and table["n_seeds"].tolist() == [3, 0]
    unchecked = "config: not checked: this folder holds no run configs (runs/ folders)"
    assert table["note"].tolist() == [unchecked, f"{unchecked}; match: needs the runs' configs (runs/ folders)"]
    assert (root / "report" / "summary.md").exists()
    with pytest.raises(SystemExit) as e:  # the missing point is not confirmed
        report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert e.value.code == 1
    # measured inside, but its config: was not checked: --expect-strict does not confirm it (exit 1);
    # without a config: the same point is confirmed (exit 0)
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"train.epochs": 2}, "points": [POINT]}))
    with pytest.raises(SystemExit) as e:
        report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert e.value.code == 1
    spec.write_text(yaml.safe_dump({"name": "p", "points": [POINT]}))
    report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])


def test_every_shipped_preset_in_a_folder_of_only_the_shared_csvs_writes_its_report(folder, tmp_path):
    root = _shared_csvs_only(folder)
    for name in available():
        shutil.rmtree(root / "report", ignore_errors=True)
        report_main([str(root), "--expect", name, "--no-plots"])
        table = pd.read_csv(root / "report" / "expect.csv", keep_default_na=False)
        assert set(table["status"]) == {"missing"}, name  # no runs named after the preset here
        if "config" in load_expected(name):
            assert all("config: not checked" in n for n in table["note"]), name


# ----------------------------------------------------------------------------- config: and match: values


def _with_train(folder: Path, **train) -> Path:
    """Each run's config.yaml given a `train` node, as prune-run writes it."""
    for path in folder.glob("runs/*/config.yaml"):
        config = yaml.safe_load(path.read_text())
        config["train"] = dict(train)
        path.write_text(yaml.safe_dump(config))
    return folder


def test_a_nested_file_config_is_read_as_its_dotted_keys(folder, tmp_path):
    """`config: {train: {epochs: 99}}` (the form of a config.yaml) was compared as one key `train` that no run
    has, and the point passed `inside` though its runs have train.epochs=2."""
    _with_train(folder, epochs=2, lr=0.1)
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"train": {"epochs": 99}}, "points": [POINT]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    (row,) = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "config_differs"
    assert row["note"] == "measured with train.epochs=2; the expected values are of train.epochs=99", row["note"]
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"train": {"epochs": 2, "lr": 0.1}}, "points": [POINT]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert pd.read_csv(folder / "report" / "expect.csv")["status"].tolist() == ["inside"]


def test_a_typo_in_a_file_config_key_is_config_differs_with_a_did_you_mean(folder, tmp_path, capsys):
    """`config: {train.epoch: 2}`: refused with exit 2 and no report at 83b9b62 (as were legitimate keys set by
    no YAML). The report is written; the point is config_differs (not confirmed by --expect-strict) and the
    note names the close key the runs have."""
    _with_train(folder, epochs=2)
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"train.epoch": 2}, "points": [POINT]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    (row,) = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "config_differs"
    assert row["note"] == (
        "measured with train.epoch=(absent); the expected values are of train.epoch=2; "
        "train.epoch is in no run's config (did you mean train.epochs?)"
    ), row["note"]
    with pytest.raises(SystemExit) as e:
        report_main([str(folder), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert e.value.code == 1


@pytest.mark.parametrize("key, value", [("dataset.cache_dir", "/data"), ("train.l1", 0.0001), ("method.erk_power", 1.0)])
def test_a_file_config_key_set_by_no_yaml_is_config_differs_not_refused(folder, tmp_path, key, value):
    """Keys declared only in Python schemas or plugins (dataset.cache_dir, train.l1, method.erk_power) are in no
    YAML under configs/: with runs that lack them, 83b9b62 refused the file (exit 2, no report). They are runs
    of another configuration: config_differs, "(absent)" as before 83b9b62."""
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "config": {key: value}, "points": [POINT]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    (row,) = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "config_differs"
    assert row["note"] == f"measured with {key}=(absent); the expected values are of {key}={value}", row["note"]


def test_a_file_config_key_of_prune_clis_configs_that_these_runs_lack_is_no_typo(folder, tmp_path):
    """dataset.num_samples (configs/dataset/mnist1d.yaml) beside runs with no such key: runs of another
    configuration, not a typo, so not refused (the same holds for a preset's expected file read on a folder of
    other runs)."""
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "config": {"dataset.num_samples": 3000}, "points": [POINT]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    (row,) = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "config_differs"
    assert row["note"] == "measured with dataset.num_samples=(absent); the expected values are of dataset.num_samples=3000"


def test_an_empty_file_config_is_refused_when_read(tmp_path):
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "p", "config": {}, "points": [POINT]}))
    with pytest.raises(ValueError, match=": config"):
        load_expected(str(spec))


def test_an_empty_mapping_inside_config_or_match_is_a_value(folder, tmp_path):
    """`match: {method.layer_densities: {}}` was refused when read ("names no key") at 83b9b62, though a run's
    config may hold the empty mapping: it is a value, compared with the run's. mag-* have {}, rnd-* have
    {conv1: 0.5}; by hand magnitude at 0.5 of p is 0.92 (inside), random's point with {} has no runs."""
    for path in folder.glob("runs/*/config.yaml"):
        config = yaml.safe_load(path.read_text())
        config["method"]["layer_densities"] = {} if path.parent.name.startswith("mag") else {"conv1": 0.5}
        path.write_text(yaml.safe_dump(config))
    spec = tmp_path / "e.yaml"
    points = [
        {**POINT, "match": {"method.layer_densities": {}}},
        {**POINT, "method": "random", "value": 0.5, "match": {"method": {"layer_densities": {}}}},
        {**POINT, "method": "random", "value": 0.5, "match": {"method.layer_densities": {"conv1": 0.5}}},
    ]
    spec.write_text(yaml.safe_dump({"name": "p", "points": points}))
    assert load_expected(str(spec))["points"][1]["match"] == {"method.layer_densities": {}}
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False)
    assert table["status"].tolist() == ["inside", "missing", "inside"]
    assert table["match"].tolist() == ["method.layer_densities={}", "method.layer_densities={}", "method.layer_densities.conv1=0.5"]


def test_config_and_match_values_are_compared_as_numbers_not_text(folder, tmp_path):
    """YAML 1.1 reads `5e-4` as the text '5e-4' and the runs' config spells 0.0005; `match: {train.epochs: 2.0}`
    against a run's 2: compared as text, the first was config_differs and the second missing."""
    _with_train(folder, epochs=2, lr=0.0005, widths=[16, 16])
    spec = tmp_path / "e.yaml"
    spec.write_text(
        "name: p\nconfig: {train.lr: 5e-4, train.widths: [16.0, 16]}\npoints:\n"
        "  - {method: magnitude, sparsity: 0.5, value: 0.92, band: 0.01, match: {train.epochs: 2.0}}\n"
        "  - {method: magnitude, sparsity: 0.5, value: 0.92, band: 0.01, match: {train.epochs: 3}}\n"
    )
    assert load_expected(str(spec))["config"]["train.lr"] == "5e-4"  # as PyYAML reads it
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert pd.read_csv(folder / "report" / "expect.csv")["status"].tolist() == ["inside", "missing"]


def test_match_on_a_timestamp_seed_selects_that_seed_only(tmp_path):
    """Seeds 1733280000 and 1733280001 (timestamps): within a relative 1e-9 they were one value, and
    `match: {seed: 1733280001}` averaged both runs, by hand (0.70 + 0.80) / 2 = 0.75. Integers compare
    exactly: 0.80, the selected seed's."""
    _fake_run(tmp_path, "a", "magnitude", 0.5, 1733280000, 0.95, 0.70)
    _fake_run(tmp_path, "b", "magnitude", 0.5, 1733280001, 0.95, 0.80)
    points = [{**POINT, "value": 0.80, "band": 0.001, "match": {"seed": m}} for m in (1733280001, "1733280001")]
    spec = _expected_file(tmp_path / "e.yaml", points)
    report_main([str(tmp_path), "--expect", str(spec), "--no-plots"])
    table = pd.read_csv(tmp_path / "report" / "expect.csv")
    assert table["measured"].tolist() == pytest.approx([0.80, 0.80]) and table["n_seeds"].tolist() == [1, 1]
    assert table["status"].tolist() == ["inside", "inside"]


def test_a_runs_text_that_looks_like_a_number_is_compared_as_text(folder, tmp_path):
    """A run option spelled "1e3" (text in its config.yaml) was selected by `match: {method.tag: 1000}`, and
    "1.10" by `1.1`: the run's type decides, so text is compared as text. mag-* carry tag "1e3", rnd-* "1.10"."""
    for path in folder.glob("runs/*/config.yaml"):
        config = yaml.safe_load(path.read_text())
        config["method"]["tag"] = "1e3" if path.parent.name.startswith("mag") else "1.10"
        path.write_text(yaml.safe_dump(config))
    rnd = {**POINT, "method": "random", "value": 0.5}
    points = [
        {**POINT, "match": {"method.tag": 1000}},
        {**POINT, "match": {"method.tag": "1e3"}},
        {**rnd, "match": {"method.tag": 1.1}},
        {**rnd, "match": {"method.tag": "1.1"}},
        {**rnd, "match": {"method.tag": "1.10"}},
    ]
    spec = _expected_file(tmp_path / "e.yaml", points)
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    assert pd.read_csv(folder / "report" / "expect.csv")["status"].tolist() == ["missing", "inside", "missing", "missing", "inside"]


@pytest.mark.parametrize(
    "run, wanted, same",
    [
        (0.0005, "5e-4", True),  # YAML's text '5e-4' against a run's number
        (2, 2.0, True),
        (0.1, 0.1 + 1e-12, True),  # within a relative 1e-9
        (0.1, 0.1001, False),
        ([16, 16], [16.0, 16], True),
        ([16, 16], [16], False),
        (True, True, True),
        (True, 1, False),  # true is not 1
        (1, True, False),
        ("layerwise", "layerwise", True),
        ("layerwise", "global", False),
        (None, None, True),
        (None, "null", False),
        ([{"a": 1}], [{"a": 1.0}], True),
        ({}, {}, True),
        ({}, {"a": 1}, False),
        ("2026-12-04", datetime.date(2026, 12, 4), True),  # YAML reads an unquoted date as a date
        (1733280000, 1733280001, False),  # integers exactly
        (1733280000, "1733280001", False),
        (1733280001, "1733280001", True),
        (1000, "1e3", True),  # a run's number: the file's numeric text is parsed
        ("1e3", 1000, False),  # a run's text: compared as text
        ("1e3", "1e3", True),
        ("1.10", "1.1", False),
        ("1.10", 1.1, False),
        ("0.5", 0.5, True),  # str(0.5) is the run's text
        ("true", True, False),
    ],
)
def test_config_values_are_one_value_by_the_runs_type(run, wanted, same):
    from prune_cli.report.expect import _same

    assert _same(run, wanted) is same


# ----------------------------------------------------------------------------- a run name whose runs all failed


def test_a_point_whose_named_runs_all_failed_says_so(folder, tmp_path):
    """The only run named special (random at 0.5, seed 2) failed: the note read "no run is named special;
    this folder's runs are named other, p; left out: seed 2 of random failed (LayerCollapse)", which
    contradicted itself. It now says that every run of that name failed, and names them."""
    _fake_run(folder, "special-2", "random", 0.5, 2, 0.95, 0.5, name="special")
    d = folder / "runs" / "special-2"
    for name in ("COMPLETE", "metrics.csv"):
        (d / name).unlink()
    (d / "failed.json").write_text(json.dumps({"status": "failed", "error_type": "LayerCollapse", "message": "..."}))
    spec = tmp_path / "e.yaml"
    spec.write_text(yaml.safe_dump({"name": "special", "points": [{"method": "random", "sparsity": 0.5, "value": 0.5, "band": 0.1}]}))
    report_main([str(folder), "--expect", str(spec), "--no-plots"])
    (row,) = pd.read_csv(folder / "report" / "expect.csv", keep_default_na=False).to_dict(orient="records")
    assert row["status"] == "missing" and row["seeds_lost"] == 1
    assert row["note"] == (
        "every run named special failed or did not finish (seed 2 of random failed (LayerCollapse)); "
        "this folder's completed runs are named other, p"
    ), row["note"]


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
