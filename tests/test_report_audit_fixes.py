"""prune-report on folders built by hand in prune-run's formats (write_run, no training), each the shape
of folder on which the report went wrong before: a config key only some runs have, taking two values
(the figures stopped with a TypeError); a report that fails part-way (it left new tables beside the
earlier summary.md); a point of --expect whose seed failed, and a seed lost to an unfinished run or
without a partner (both were rated or compared on the surviving seeds without a word); text naming
files a report does not write; the levels of tables' intervals; --compare-by on a key that varies with
the method (it was said not to vary)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from prune_cli.report import build_report
from test_report_experiments import write_run


def _config(root, run, change) -> str:
    """Apply `change` to run `run`'s config.yaml (a function of the parsed mapping)."""
    path = root / "runs" / run / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))
    return run


def _three_datasets(root):
    """magnitude at 0.5, seeds 0-2, on toy with samples_per_class 60 and 80 and on mnist1d, whose config has
    num_samples and no samples_per_class: a key only some runs have, with two values among them."""
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.80 + 0.01 * seed)
        run = write_run(root, seed, "magnitude", 0.5, 10, 0.70 + 0.01 * seed, results_dir="/rb")
        _config(root, run, lambda c: c["dataset"].update(samples_per_class=80))
        run = write_run(root, seed, "magnitude", 0.5, 10, 0.60 + 0.01 * seed, dataset="mnist1d")
        _config(root, run, lambda c: (c["dataset"].pop("samples_per_class"), c["dataset"].update(num_samples=400)))
    return root


def test_a_key_some_runs_lack_with_two_values_among_the_others_is_labelled_absent(tmp_path, monkeypatch):
    """The curve labels joined the keys' values as text, and pandas 3's astype(str) keeps NaN: the report
    stopped with "TypeError: sequence item 2: expected str instance, float found" in the first figure,
    leaving no summary.md. The run without the key is labelled `(absent)`, as the tables write it."""
    from prune_cli.report import plots

    drawn = []
    real = plots._curve
    monkeypatch.setattr(plots, "_curve", lambda ax, x, y, label=None, **kw: drawn.append(label) or real(ax, x, y, label=label, **kw))
    written = build_report(_three_datasets(tmp_path / "res"), parallel=False)
    assert {"summary.md", "report.html", "accuracy_vs_compression.png"} <= set(written)
    accuracy = {label for label in drawn if label.startswith("magnitude/")}
    assert accuracy == {
        "magnitude/dataset.name=toy/dataset.samples_per_class=60",
        "magnitude/dataset.name=toy/dataset.samples_per_class=80",
        "magnitude/dataset.name=mnist1d/dataset.samples_per_class=(absent)",
    }, drawn


def _two_methods(root, seeds=range(3)):
    for seed in seeds:
        write_run(root, seed, "magnitude", 0.5, 10, 0.80 + 0.01 * seed)
        write_run(root, seed, "random", 0.5, 10, 0.70 + 0.02 * seed)
    return root


def test_a_report_that_fails_part_way_leaves_the_earlier_report_as_it_was(tmp_path, monkeypatch):
    """Each file was written into the report folder as soon as it was ready, so a report that stopped
    part-way (the error above, in the figures) left new tables beside the earlier summary.md, or a
    folder without one. A report is now written beside its folder first and moved in whole: a failure
    leaves the earlier report byte for byte, or no folder where there was none."""
    from prune_cli.report import build as build_module

    root = _two_methods(tmp_path / "res")
    out = tmp_path / "out"
    build_report(root, out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_run(root, 3, "magnitude", 0.5, 10, 0.5)  # the next report's summary.csv would differ
    write_run(root, 3, "random", 0.5, 10, 0.4)

    def broken(*args, **kwargs):
        raise RuntimeError("stopped")

    monkeypatch.setattr(build_module, "write_html", broken)
    with pytest.raises(RuntimeError, match="stopped"):
        build_report(root, out, plots=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fresh = tmp_path / "new" / "report"
    with pytest.raises(RuntimeError, match="stopped"):
        build_report(root, fresh, plots=False)
    assert not fresh.exists()


def _fail(root, run_id: str, error_type: str) -> None:
    """A completed run directory made a failed one, as prune-run leaves it: config.yaml and failed.json
    (prune_cli/cli.py _record_failure's keys), no COMPLETE and no tables."""
    import json

    d = root / "runs" / run_id
    for name in ("COMPLETE", "metrics.csv", "per_class.csv"):
        (d / name).unlink()
    (d / "failed.json").write_text(json.dumps({"status": "failed", "error_type": error_type, "message": "..."}))


def _sweep(root):
    """magnitude and random at 0.5 and 0.9, seeds 0-2, random near chance at 0.9 (a small sweep whose seeds the
    tests then fail or leave unfinished); returns {(method, sparsity, seed): run id}."""
    accuracy = {"magnitude": (0.80, 0.78), "random": (0.60, 0.3333)}
    return {
        (method, sparsity, seed): write_run(root, seed, method, sparsity, 10, accuracy[method][sparsity == 0.9] + 0.01 * (seed - 1))
        for method in accuracy
        for sparsity in (0.5, 0.9)
        for seed in range(3)
    }


def test_an_expected_point_measured_without_a_failed_seed_says_so_and_is_not_confirmed(tmp_path, capsys):
    """random s0.9 seed 1 failed (LayerCollapse): the point was measured on seeds 0 and 2, `inside`, with
    an empty note, and --expect-strict passed. The note now names the failed seed as the verdicts do, and
    --expect-strict does not confirm a point measured on the surviving seeds only."""
    from prune_cli.report import main as report_main

    root = tmp_path / "res"
    runs = _sweep(root)
    _fail(root, runs["random", 0.9, 1], "LayerCollapse")
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "random", "sparsity": 0.9, "value": 0.3333, "band": 0.01}]}))
    with pytest.raises(SystemExit) as stop:
        report_main([str(root), "--expect", str(spec), "--expect-strict", "--no-plots"])
    assert stop.value.code == 1
    (row,) = pd.read_csv(root / "report" / "expect.csv").to_dict(orient="records")
    # by hand: seeds 0 and 2 have 0.3233 and 0.3433, mean 0.3333, inside the band
    assert row["n_seeds"] == 2 and row["measured"] == pytest.approx(0.3333) and row["status"] == "inside"
    assert row["seeds_lost"] == 1
    assert row["note"] == "left out: seed 1 of random failed (LayerCollapse)", row["note"]
    out = capsys.readouterr()
    assert "left out: seed 1 of random failed (LayerCollapse)" in out.out
    assert "1 expected point(s)" in out.err and "measured without a seed that failed or did not finish" in out.err


def _unfinish(root, run_id: str) -> None:
    """A completed run directory made an unfinished one, as an OOM kill, a timeout or a lost node leaves
    it: config.yaml, no COMPLETE, no failed.json, no tables."""
    d = root / "runs" / run_id
    for name in ("COMPLETE", "metrics.csv", "per_class.csv"):
        (d / name).unlink()


def test_a_seed_lost_to_an_unfinished_run_or_without_a_partner_is_named_in_the_verdict(tmp_path):
    """magnitude s0.9 seed 2 did not finish, and at s0.5 random ran seeds 0-2 and magnitude seeds 0-3 (seed 3
    of random never ran): both verdicts compared the shared seeds ("not distinguishable with 2 seeds") and
    named nothing as left out; only the standards check listed the unfinished run. Both are named now, in
    the verdict and in comparisons.csv's `unfinished` and `unpaired` columns."""
    root = tmp_path / "res"
    runs = _sweep(root)
    _unfinish(root, runs["magnitude", 0.9, 2])
    write_run(root, 3, "magnitude", 0.5, 10, 0.81)
    c = pd.read_csv(build_report(root, plots=False)["comparisons.csv"], keep_default_na=False).set_index("target_sparsity")
    assert c.loc[0.9, "seeds"] == "0 1" and c.loc[0.9, "unfinished"] == "seed 2 of magnitude did not finish"
    assert c.loc[0.9, "verdict"].endswith("; left out: seed 2 of magnitude did not finish"), c.loc[0.9, "verdict"]
    assert c.loc[0.9, "unpaired"] == ""  # random's seed 2 has no partner because magnitude's did not finish: named once
    assert c.loc[0.5, "seeds"] == "0 1 2" and c.loc[0.5, "unpaired"] == "seed 3 of magnitude has no run of random to pair with"
    assert c.loc[0.5, "verdict"].endswith("; left out: seed 3 of magnitude has no run of random to pair with"), c.loc[0.5, "verdict"]
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump({"name": "run", "points": [{"method": "magnitude", "sparsity": 0.9, "value": 0.78, "band": 0.05}]}))
    (row,) = pd.read_csv(build_report(root, plots=False, expect=str(spec))["expect.csv"]).to_dict(orient="records")
    assert row["seeds_lost"] == 1 and row["note"] == "left out: seed 2 of magnitude did not finish", row


def _disparate(md: str) -> str:
    return md.split("## Disparate impact")[1].split("\n## ")[0]


def test_the_disparate_impact_paragraph_names_pie_files_only_where_written_and_the_split_they_are_of(tmp_path):
    """A folder of the shared CSVs alone writes no pie.csv, yet the paragraph said "(...; pie.csv, per class
    in pie_per_class.csv)"; and with --split val it said "PIEs: test examples" while pie.csv held val ones."""
    from prune_cli.core.predictions import merge_parts, save_phase
    from prune_cli.results import shared_name
    from test_report_missing_tables import LABELS, _preds

    runs = tmp_path / "res"
    for seed in range(3):
        for method in ("magnitude", "random"):
            d = runs / "runs" / write_run(runs, seed, method, 0.5, 10, 0.8 - 0.01 * seed)
            for table in ("metrics.csv", "per_class.csv"):  # the same rows on the val split too
                rows = pd.read_csv(d / table)
                pd.concat([rows, rows.assign(split="val")]).to_csv(d / table, index=False)
            save_phase(d, "dense", {"val": (LABELS, LABELS)}, 4)
            save_phase(d, "finetuned", {"val": (LABELS, _preds(seed, method))}, 4)
            merge_parts(d)
    written = build_report(runs, plots=False, split="val")
    assert "pie.csv" in written
    text = _disparate(written["summary.md"].read_text())
    assert "PIEs: val examples whose modal prediction" in text and "test examples" not in text, text

    shared = tmp_path / "shared"
    shared.mkdir()
    for table in ("metrics.csv", "per_class.csv"):  # what prune-run appends to the results_dir (runs.csv...), without runs/
        rows = pd.concat(pd.read_csv(f) for f in sorted((runs / "runs").glob(f"*/{table}")))
        rows.to_csv(shared / shared_name(table), index=False)
    written = build_report(shared, plots=False)
    assert "pie.csv" not in written and "worst_class.csv" in written
    text = _disparate(written["summary.md"].read_text())
    assert "pie.csv" not in text and "pie_per_class.csv" not in text, text
    assert "need the run directories' saved predictions (predictions.npz)" in text, text


def test_the_worst_class_and_ece_tables_name_the_level_of_their_intervals(tmp_path):
    """The accuracy table's header says "90% CI" under --confidence 0.9; the worst-class and ECE tables
    said "(CI)" without a level. They name it too."""
    root = tmp_path / "res"
    for seed in range(3):
        for method, acc in (("magnitude", 0.8), ("random", 0.7)):
            write_run(root, seed, method, 0.5, 10, acc + 0.01 * seed, extra_rows=[("ece", 0.05 + 0.01 * seed)])
    text = _disparate(build_report(root, plots=False, confidence=0.9)["summary.md"].read_text())
    headers = [line for line in text.splitlines() if line.startswith("| dataset/model |")]
    assert len(headers) == 2, text
    assert "| its recall change (points, 90% CI) | per-model worst change (90% CI) |" in headers[0], headers[0]
    assert "| ECE (90% CI) | dense ECE | change (90% CI) |" in headers[1], headers[1]
    assert "(CI)" not in text


def test_compare_by_a_method_option_that_varies_with_the_method_says_so(tmp_path):
    """magnitude ran global, random layerwise: --compare-by method.allocation said that no config key of
    that name varies between the folder's experiments, which it does. The refusal now says how it varies."""
    from prune_cli.report.inputs import ReportInputError

    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8 + 0.01 * seed)
        write_run(root, seed, "random", 0.5, 10, 0.7 + 0.01 * seed, allocation="layerwise")
    with pytest.raises(ReportInputError) as refused:
        build_report(root, plots=False, compare_by="method.allocation")
    message = str(refused.value)
    assert "no config key of that name varies" not in message, message
    assert "method.allocation varies only together with the method (magnitude: global; random: layerwise)" in message, message
    assert not (root / "report").exists()


@pytest.mark.parametrize("key, why", [("sparsity", "holds the sparsity fixed"), ("seed", "pair runs by")])
def test_compare_by_sparsity_or_seed_gives_the_reason_that_applies(tmp_path, key, why):
    """Both vary within a method, and the refusal called each "an option of a method whose variants the
    method comparisons compare already", which neither is (day-in-the-life audit)."""
    from prune_cli.report.inputs import ReportInputError

    root = tmp_path / "res"
    for seed in range(3):
        for sparsity in (0.5, 0.9):
            write_run(root, seed, "magnitude", sparsity, 10, 0.8 + 0.01 * seed)
            write_run(root, seed, "random", sparsity, 10, 0.7 + 0.01 * seed)
    with pytest.raises(ReportInputError) as refused:
        build_report(root, plots=False, compare_by=key)
    message = str(refused.value)
    assert "option of a method" not in message and why in message, message


def test_expected_points_of_a_folder_without_the_presets_run_name_say_which_names_it_has(tmp_path):
    """The points match runs by the preset's run name: a folder of equivalent runs named `run` read
    "missing ... got no runs" though it holds them (day-in-the-life audit)."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.5, 10, 0.35)
    table = pd.read_csv(build_report(root, plots=False, expect="expect_mnist1d")["expect.csv"])
    assert (table["status"] == "missing").all()
    assert (table["note"] == "no run is named expect_mnist1d; this folder's runs are named run").all(), table["note"].tolist()


def test_the_pie_definition_says_that_ties_never_decide(tmp_path):
    """An example is a PIE only when the pruned and the dense sets of most frequent predictions are
    disjoint; the one-line definition read as "the modal predictions differ", which with ties gives other
    counts (48 against the 28 reported in the audit's folder)."""
    from prune_cli.report.build import _pie_text

    assert "however ties are broken: the two sets of most frequent labels are disjoint" in _pie_text("test", True, True)


def test_expected_points_of_runs_of_another_configuration_are_not_marked_inside(tmp_path):
    """An expected-values file's `config` holds the values its points were measured with. The preset run
    with train.epochs=3 (measured at 8) was marked inside or outside its bands, with nothing naming
    train.epochs (day-in-the-life audit); such points are `config_differs` now, which --expect-strict
    refuses."""
    from prune_cli.report.expect import strict_failures

    spec = tmp_path / "exp.yaml"
    point = {"method": "magnitude", "sparsity": 0.5, "value": 0.8, "band": 0.05}
    spec.write_text(yaml.safe_dump({"name": "run", "config": {"train.epochs": 8}, "points": [point]}))
    for epochs, status, note in (
        (10, "config_differs", "measured with train.epochs=10; the expected values are of train.epochs=8"),
        (8, "inside", ""),
    ):
        root = tmp_path / f"res{epochs}"
        for seed in range(3):
            write_run(root, seed, "magnitude", 0.5, epochs, 0.8)
        table = pd.read_csv(build_report(root, plots=False, expect=str(spec))["expect.csv"], keep_default_na=False)
        assert table["status"].tolist() == [status] and table["note"].tolist() == [note], table.to_dict(orient="records")
        assert strict_failures(table) == (status != "inside")


@pytest.mark.parametrize("preset", ["expect_mnist1d", "renda_resnet20_lottery", "synflow_vgg16_cifar10"])
def test_an_expected_files_config_is_what_its_preset_composes(preset):
    """The `config` of configs/expected/<preset>.yaml must agree with configs/experiment/<preset>.yaml, or
    the preset's own runs would be called another configuration."""
    from helpers import composed

    from prune_cli.report.expect import load_expected
    from prune_cli.results import flatten_config

    flat = flatten_config(OmegaConf.to_container(composed(f"+experiment={preset}"), resolve=True))
    wanted = {k: flatten_config(v).get("") for k, v in load_expected(preset)["config"].items()}
    assert {k: flat.get(k) for k in wanted} == wanted
