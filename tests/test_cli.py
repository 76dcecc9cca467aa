"""End to end: `prune-run` (in-process, tests/cli_runner.py) on small synthetic data, checking the CSVs it writes."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from prune_cli.core.tables import columns
from conftest import FAST, REPO, SHARED_RUN, copy_results, run_cli


@pytest.fixture
def single_run(shared_run):
    """`prune-run SHARED_RUN` (FAST, sparsity 0.5, seed 0): one run directory, read only."""
    assert len(list((shared_run.results / "runs").iterdir())) == 1
    return shared_run


def test_single_run_writes_per_run_and_shared_csvs(single_run):
    results, run_dir, proc = single_run
    for name in (
        "metrics.csv",
        "per_class.csv",
        "layers.csv",
        "history.csv",
        "config.yaml",
        "provenance.json",
        "masks.pt",
        "model_dense.pt",
        "model_finetuned.pt",
        "COMPLETE",
    ):
        assert (run_dir / name).exists(), name
    for run_file, shared in (("metrics.csv", "runs.csv"), ("per_class.csv", "per_class.csv"), ("layers.csv", "layers.csv")):
        per_run, shared_df = pd.read_csv(run_dir / run_file), pd.read_csv(results / shared)
        assert list(per_run.columns) == columns(run_file)
        pd.testing.assert_frame_equal(per_run, shared_df)
    assert str(run_dir) in proc.stdout + proc.stderr  # says where its CSVs went


def test_metric_rows_are_consistent(single_run):
    _, run_dir, _ = single_run
    m = pd.read_csv(run_dir / "metrics.csv")
    assert set(m.phase) == {"dense", "pruned", "finetuned"}
    assert (m.seed == 0).all() and (m.target_sparsity == 0.5).all() and (m.dataset == "synthetic").all()
    assert m.run_id.nunique() == 1 and m.config_hash.nunique() == 1 and m.git_sha.notna().all()
    get = lambda phase, metric: m[(m.phase == phase) & (m.metric == metric)].value.item()  # noqa: E731
    layers = pd.read_csv(run_dir / "layers.csv")
    pruned = layers[layers.phase == "finetuned"]
    # Achieved sparsity equals the target to within one weight per pruned layer.
    total = pruned.params.sum()
    assert abs(get("finetuned", "sparsity_prunable") - 0.5) <= len(pruned) / total
    assert get("dense", "sparsity_prunable") == 0.0
    assert get("finetuned", "params_nonzero") == pytest.approx(
        get("finetuned", "params_total") / get("finetuned", "compression_ratio")
    )
    # dense_value joins each row with the dense phase's value of the same metric
    acc = m[m.metric == "accuracy"]
    assert (acc.dense_value == get("dense", "accuracy")).all()
    pc = pd.read_csv(run_dir / "per_class.csv")
    for phase, rows in pc.groupby("phase"):
        assert rows.support.sum() == 3 * 30  # test split: 30 examples of each of 3 classes
        weighted = (rows.recall * rows.support).sum() / rows.support.sum()
        assert weighted == pytest.approx(get(phase, "accuracy"))


def test_saved_state_dicts_load_with_weights_only(single_run):
    _, run_dir, _ = single_run
    masks = torch.load(run_dir / "masks.pt", weights_only=True)
    state = torch.load(run_dir / "model_finetuned.pt", weights_only=True)
    for name, mask in masks.items():
        assert torch.all(state[name][~mask.bool()] == 0)
        assert torch.all(state[name][mask.bool()] != 0)


def test_rerun_is_a_no_op_and_rows_are_written_once(single_run, tmp_path):
    results = copy_results(single_run.results, tmp_path / "results")
    before = (results / "runs.csv").read_text()
    proc = run_cli(SHARED_RUN, results)
    assert "already complete" in proc.stdout + proc.stderr
    assert (results / "runs.csv").read_text() == before


def test_same_config_same_numbers(single_run, tmp_path):
    _, run_dir, _ = single_run
    run_cli(SHARED_RUN, tmp_path / "again")
    again = pd.read_csv(next((tmp_path / "again" / "runs").iterdir()) / "metrics.csv")
    first = pd.read_csv(run_dir / "metrics.csv")
    assert again.run_id.equals(first.run_id)
    assert again.value.equals(first.value)


def test_multirun_sweep(shared_sweep):
    results = shared_sweep.results  # -m FAST method=magnitude,random sparsity=0.5,0.8 seed=0,1
    runs = pd.read_csv(results / "runs.csv")
    assert runs.run_id.nunique() == 8
    assert set(zip(runs.method, runs.target_sparsity, runs.seed)) == {
        (m, s, seed) for m in ("magnitude", "random") for s in (0.5, 0.8) for seed in (0, 1)
    }
    assert len([d for d in (results / "runs").iterdir() if d.is_dir()]) == 8
    assert "all 8 runs of the sweep completed" in shared_sweep.proc.stderr


def test_cfg_job_prints_the_config_and_runs_nothing(tmp_path):
    proc = run_cli(["--cfg", "job"], tmp_path / "results")
    assert "sparsity: 0.9" in proc.stdout and "name: mnist1d" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_cfg_hydra_resolved_prints_hydra_s_settings_and_runs_nothing(tmp_path):
    """`--cfg hydra --resolve` prints the hydra node alone, resolved against the whole config as a run resolves
    it: the run directory's resolver read results_dir from the hydra node alone and failed with an OmegaConf
    traceback (then it printed placeholders), and so did the slurm launcher's submitit_folder,
    `${results_dir}/.submitit/%j` (launchers audit of 2026-12-03)."""
    results = tmp_path / "results"
    proc = run_cli(["--cfg", "hydra", "--resolve", "seed=3"], results)
    assert f"dir: {results}/runs/run-magnitude-oneshot-s0.9-seed3-" in proc.stdout and "Traceback" not in proc.stderr
    assert "\n  hydra_help:" not in proc.stdout and "app_name" not in proc.stdout  # left out, as Hydra's --cfg hydra does
    proc = run_cli(["--cfg", "hydra", "--resolve", "hydra/launcher=slurm"], results)
    assert f"submitit_folder: {results}/.submitit/%j" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
    # a package of Hydra's config (the review of 2026-12-03: still the traceback)
    proc = run_cli(["--cfg", "hydra", "--resolve", "--package", "hydra.launcher", "hydra/launcher=slurm"], results)
    assert proc.stdout.startswith("# @package hydra.launcher\n") and f"submitit_folder: {results}/.submitit/%j" in proc.stdout
    proc = run_cli(["--cfg", "hydra", "--resolve", "--package", "hydra.launcher.timeout_min", "hydra/launcher=slurm"], results)
    assert proc.stdout == "240\n", proc.stdout
    # resolved, it names the run's folder: a config the run refuses is refused, as --cfg job refuses it
    proc = run_cli(["--cfg", "hydra", "--resolve", "sparsity=2"], results, check=False)
    assert proc.returncode == 2 and "'sparsity': 2.0" in proc.stderr and not proc.stdout, proc.stdout
    assert not results.exists()


def test_help_lists_prune_run_s_groups_and_every_option_directory_but_prune_report_s(tmp_path):
    """Every folder of configs/ with options is listed with its options, except prune-report's
    `expected`, which prune-run rejects (before: listed as if it were a prune-run group)."""
    proc = run_cli(["--help"], tmp_path / "r")
    listed = {line.split(":")[0].lstrip("+") for line in proc.stdout.splitlines() if ": " in line and not line.startswith(" ")}
    configs = REPO / "configs"
    groups = {str(d.relative_to(configs)) for d in configs.rglob("*") if d.is_dir() and any(d.glob("*.yaml"))}
    assert "expected" in groups and "expected" not in listed
    own_files = {g for g in groups if g.startswith("experiment/")}  # a preset's own files (tests/test_help_text.py)
    assert own_files and not own_files & listed
    assert groups - {"expected", "hydra/launcher"} - own_files <= listed
    assert "method: gp, gradient_magnitude" in proc.stdout


def test_user_config_dir_adds_a_group_option(tmp_path):
    extra = tmp_path / "my_configs" / "model"
    extra.mkdir(parents=True)
    (extra / "wide.yaml").write_text("defaults:\n  - /schema/model/mlp@_here_\nname: mlp\nwidths: [24]\n")
    results = tmp_path / "results"
    fast = [a for a in FAST if not a.startswith("model")]
    run_cli(["--config-dir", str(tmp_path / "my_configs"), *fast, "model=wide", "sparsity=0.5"], results)
    layers = pd.read_csv(results / "layers.csv")
    assert "24x2" in set(layers["shape"])


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def earlier_results(tmp_path_factory, shared_run):
    """A results folder that already holds one finished run: bad input must leave it intact."""
    results = copy_results(shared_run.results, tmp_path_factory.mktemp("earlier") / "results")
    return results, {p.name: p.read_bytes() for p in results.glob("*.csv")}


BAD_INPUT = [
    (["method=foo"], r"'method': 'foo'.*magnitude.*random"),
    (["sparsity=1.5"], r"'sparsity': 1\.5.*\[0\.0, 1\.0\)"),
    (["sparsity=-0.1"], r"'sparsity': -0\.1.*\[0\.0, 1\.0\)"),
    (["sparsity=abc"], r"'sparsity': 'abc'.*a number"),
    (["train.epochs=two"], r"'train\.epochs': 'two'.*an integer"),
    (["train.optimizer=adagrad"], r"'train\.optimizer': 'adagrad'.*adam, sgd"),
    (["dataset.imbalance=longtail", "dataset.longtail_ratio=0.5"], r"dataset\.longtail_ratio.*> 1"),
    (["dataset=cifar10", "dataset.root=/nonexistent", "model=resnet20"], r"cifar-10-batches-py.*dataset\.download=true"),
    (["train.lr=1e12"], r"diverged.*epoch 1"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[a[0] for a, _ in BAD_INPUT])
def test_bad_input_fails_clearly_and_loses_nothing(earlier_results, args, message):
    results, before = earlier_results
    replaced = tuple(a.split("=")[0] for a in args if "." not in a.split("=")[0])  # whole groups, e.g. dataset=
    fast = [a for a in FAST if not a.startswith(replaced)] if replaced else FAST
    proc = run_cli([*fast, *args], results, check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr, re.S), proc.stdout + proc.stderr
    assert {p.name: p.read_bytes() for p in results.glob("*.csv")} == before


def test_readme_documents_every_csv_column():
    readme = (REPO / "README.md").read_text()
    for table in ("metrics.csv", "per_class.csv", "layers.csv"):
        for column in columns(table):
            assert f"`{column}`" in readme, f"README does not document column {column} of {table}"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    command = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
    assert command in readme
    assert command in (REPO / ".ci" / "run").read_text()


def test_cifar10_resnet20_from_local_files(tmp_path):
    """The README's CIFAR command, on tiny files in the real CIFAR-10 format."""
    from test_data import write_cifar

    write_cifar(tmp_path / "data", "cifar10", n_train=40, n_test=10, classes=10)
    results = tmp_path / "results"
    run_cli(
        [
            "dataset=cifar10",
            f"dataset.root={tmp_path / 'data'}",
            "model=resnet20",
            "method=magnitude",
            "method.allocation=layerwise",
            "sparsity=0.8",
            "train.epochs=1",
            "finetune.epochs=1",
            "train.batch_size=16",
            "finetune.batch_size=16",
        ],
        results,
    )
    layers = pd.read_csv(results / "layers.csv")
    final = layers[layers.phase == "finetuned"]
    assert len(final) == 20  # 19 convolutions + the classifier, no parameterised shortcuts
    assert (abs(final.density - 0.2) <= 1 / final.params).all()
    runs = pd.read_csv(results / "runs.csv")
    assert "top5_accuracy" in set(runs.metric)


def test_a_finished_run_made_by_other_code_is_kept_and_the_rerun_says_so(single_run, tmp_path):
    """Run ids hash the config, not the code, so the same command after an upgrade that changed results
    (a fixed score, a fixed count) finds the finished run and did nothing, silently: the researcher
    could not tell that the numbers predate the fix. The run is still kept (its rows are what the
    shared tables hold), and one line names both code versions and how to recompute."""
    import json

    results = copy_results(single_run.results, tmp_path / "results")
    [run_dir] = [p.parent for p in (results / "runs").glob("*/COMPLETE")]
    record = json.loads((run_dir / "provenance.json").read_text())
    record.update(git_sha="0123456789abcdef0123456789abcdef01234567", prune_cli_version="0.0.1")
    (run_dir / "provenance.json").write_text(json.dumps(record, indent=2))
    before = (results / "runs.csv").read_text()
    proc = run_cli(SHARED_RUN, results)
    err = proc.stderr
    assert "already complete" in proc.stdout + err and (results / "runs.csv").read_text() == before
    assert "made by other code" in err and "git_sha: 0123456789ab" in err and "prune_cli_version: 0.0.1 ->" in err, err
    assert "a fresh results_dir" in err
    # once on the terminal (stderr), and in the run's log file; the console log handler (stdout) printed it
    # a second time
    assert err.count("made by other code") == 1 and "made by other code" not in proc.stdout, proc.stdout
    assert "made by other code" in (run_dir / "prune-run.log").read_text()
    same = run_cli(SHARED_RUN, copy_results(single_run.results, tmp_path / "untouched"))
    assert "made by other code" not in same.stderr  # the same code: nothing to say


def test_a_finished_run_made_by_an_edited_tree_or_other_plugins_is_kept_and_the_rerun_says_so(single_run, tmp_path):
    """The plugin audit: an edited or swapped plugin module (or an edit in a tree already dirty) left
    git_sha as it was, so the same command found the finished run 'already complete' without a word.
    provenance.json now records the package's and the plugin modules' source digests, and a rerun under
    other ones names each difference."""
    import json

    results = copy_results(single_run.results, tmp_path / "results")
    [run_dir] = [p.parent for p in (results / "runs").glob("*/COMPLETE")]
    record = json.loads((run_dir / "provenance.json").read_text())
    assert len(record["prune_cli_source"]) == 64 and record["plugin_sources"] == {}
    record.update(prune_cli_source="a" * 64, plugin_sources={"my_lab.scores": "b" * 64})
    (run_dir / "provenance.json").write_text(json.dumps(record, indent=2))
    err = run_cli(SHARED_RUN, results).stderr
    assert "made by other code" in err and "prune_cli_source: aaaaaaaaaaaa -> " in err, err
    assert "plugin my_lab.scores: bbbbbbbbbbbb -> absent" in err, err


def test_the_readme_s_account_of_what_results_dir_holds_beside_runs(tmp_path):
    """README: `dense_cache/` and, after a sweep, `runs/multirun.yaml` in results_dir; `.sweeps/` gone
    at the sweep's end; MNIST-1D's default cache folder (front-door review: none of it was said)."""
    from prune_cli.core.config_base import DenseCacheConfig
    from prune_cli.data.mnist1d import Mnist1dConfig

    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "seed=0,1"], results)
    assert proc.returncode == 0
    assert (results / "runs" / "multirun.yaml").is_file() and not (results / ".sweeps").exists()
    assert {p.name for p in results.iterdir() if p.is_dir()} == {"dense_cache", "runs"}
    assert DenseCacheConfig.dir == "${results_dir}/dense_cache"
    assert Mnist1dConfig.cache_dir == "~/.cache/prune-cli/mnist1d"
    readme = (REPO / "README.md").read_text()
    for said in ("`dense_cache/`", "`runs/multirun.yaml`", "`.sweeps/`", "`~/.cache/prune-cli/mnist1d`"):
        assert said in readme
