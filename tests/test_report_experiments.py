"""Experiments are identified, never mixed: `prune_cli.results.load` keys every run by its saved config
(minus seed, run name and keys that cannot change results), tables show the keys that vary, and the
R1 check counts only runs without a dense baseline. Folders are written by hand in the real formats."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prune_cli.report import build_report
from prune_cli.results import load

from conftest import REPO


def _config(seed, method, sparsity, epochs, results_dir="/r", name="run", allocation="global", dataset="toy"):
    return {
        "dataset": {"name": dataset, "samples_per_class": 60},
        "model": {"name": "mlp", "widths": [16, 16]},
        "method": {"name": method, "score": method, "allocation": allocation, "structure": "unstructured"},
        "schedule": {"name": "oneshot", "rounds": 1},
        "train": {"epochs": epochs, "lr": 0.05},
        "sparsity": sparsity,
        "seed": seed,
        "name": name,
        "results_dir": results_dir,
        "dense_cache": {"enabled": True, "dir": f"{results_dir}/dense_cache"},
        "fail_fast": False,
        "plugins": [],
    }


def write_run(root: Path, seed, method, sparsity, epochs, acc, dense_acc=0.9, extra_rows=(), dense=True, **cfg) -> str:
    """One completed run directory: config.yaml, metrics.csv (accuracy per phase) and COMPLETE."""
    run_id = f"{cfg.get('name', 'run')}-{method}-s{sparsity:g}-seed{seed}-e{epochs}-{cfg.get('results_dir', '/r')[-2:].strip('/')}"
    if cfg.get("allocation", "global") != "global":
        run_id += f"-{cfg['allocation']}"
    if cfg.get("dataset", "toy") != "toy":
        run_id += f"-{cfg['dataset']}"
    d = root / "runs" / run_id
    if d.exists():  # the same run written twice by a test building several comparisons: keep the first
        return run_id
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(_config(seed, method, sparsity, epochs, **cfg)))
    ctx = dict(
        run_id=run_id,
        name=cfg.get("name", "run"),
        seed=seed,
        dataset=cfg.get("dataset", "toy"),
        model="mlp",
        method=method,
        score=method,
        allocation=cfg.get("allocation", "global"),
        structure="unstructured",
        schedule="oneshot",
        target_sparsity=sparsity,
    )
    rows = [
        {**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": acc, "dense_value": dense_acc if dense else None}
    ]
    if dense:
        rows.append({**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": dense_acc, "dense_value": dense_acc})
    rows += [{**ctx, "phase": "finetuned", "split": "test", "metric": m, "value": v, "dense_value": None} for m, v in extra_rows]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    per_class = [
        {**ctx, "phase": "finetuned", "split": "test", "class": c, "support": 10, "recall": acc, "dense_recall": dense_acc}
        for c in (0, 1)
    ]
    pd.DataFrame(per_class).to_csv(d / "per_class.csv", index=False)
    (d / "COMPLETE").write_text(run_id + "\n")
    return run_id


@pytest.fixture
def mixed(tmp_path):
    """magnitude and random at 0.9, seeds 0-2, trained 10 or 20 epochs: four experiments. The 20-epoch
    runs also differ in results_dir and run name, which must not split them."""
    root = tmp_path / "res"
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.50 + 0.01 * seed)
        write_run(root, seed, "random", 0.9, 10, 0.40 + 0.01 * seed)
        write_run(root, seed, "magnitude", 0.9, 20, 0.80 + 0.01 * seed, results_dir=f"/other{seed}", name=f"n{seed}")
        write_run(root, seed, "random", 0.9, 20, 0.70 + 0.01 * seed, results_dir=f"/other{seed}", name=f"n{seed}")
    return root


def test_experiment_keys_split_by_config_not_by_seed_name_or_results_dir(mixed):
    res = load(mixed)
    runs = res.runs
    assert len(runs) == 12 and res.key_source == "config"
    # by hand: 2 methods x 2 epoch settings = 4 experiments of 3 seeds; 2 comparisons (one per epochs)
    by_hand = runs["run_id"].str.extract(r"-(magnitude|random)-.*-e(\d+)-").apply(tuple, axis=1)
    assert runs.groupby("experiment")["run_id"].apply(lambda r: by_hand[r.index].nunique()).eq(1).all()
    assert runs["experiment"].nunique() == 4 and runs.groupby("experiment").size().eq(3).all()
    epochs = runs["run_id"].str.extract(r"-e(\d+)-")[0]
    assert runs.groupby("comparison").apply(lambda g: epochs[g.index].nunique()).eq(1).all()
    assert runs["comparison"].nunique() == 2
    # shown: only the keys that vary (results_dir, name, dense_cache.dir and seed vary too but are excluded)
    assert set(res.varying) == {"train.epochs", "method.name", "method.score"}
    assert set(res.experiments.columns) == {"experiment", "train.epochs", "method.name", "method.score", "n_runs", "seeds"}
    assert res.experiments["seeds"].eq("0 1 2").all()
    assert {"experiment", "comparison", "train.epochs"} <= set(res.metrics.columns)


def test_readme_snippet_never_averages_unrelated_experiments(mixed):
    res = load(mixed)
    acc = res.metrics.query("metric == 'accuracy' and split == 'test' and phase == 'finetuned'")
    table = acc.pivot_table(index=["experiment", "method", "train.epochs"], values="value")
    means = {(m, e): v for (_, m, e), v in table["value"].items()}
    # hand: mean of 0.5, 0.51, 0.52 etc.; a pivot over method alone would give 0.66 for magnitude
    assert means == pytest.approx(
        {("magnitude", "10"): 0.51, ("random", "10"): 0.41, ("magnitude", "20"): 0.81, ("random", "20"): 0.71}
    )


def test_shared_csv_fallback_keys_from_columns(mixed, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    pd.concat(pd.read_csv(p) for p in sorted(mixed.glob("runs/*/metrics.csv"))).to_csv(shared / "runs.csv", index=False)
    res = load(shared)
    assert res.key_source == "columns" and len(res.runs) == 12
    # without configs the epochs are invisible: 2 experiments (one per method), 1 comparison
    assert res.runs["experiment"].nunique() == 2 and res.runs["comparison"].nunique() == 1


def test_load_does_not_import_torch_and_module_command_still_works(mixed, monkeypatch):
    code = f"import sys; from prune_cli.results import load; load({str(mixed)!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # a new interpreter: the point
    assert out.stdout.strip() == "False"
    # `python -m prune_cli.results DIR` in this process: runpy runs the package's __main__ as -m does (a
    # new interpreter would only add importing torch again)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["prune_cli.results", str(mixed)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("prune_cli.results", run_name="__main__", alter_sys=True)
    assert exit_.value.code in (0, None)
    assert len(pd.read_csv(mixed / "runs.csv")) == len(pd.concat(pd.read_csv(p) for p in mixed.glob("runs/*/metrics.csv")))


def test_r1_counts_only_runs_without_a_dense_baseline(tmp_path):
    root = tmp_path / "res"
    # statistics relative to dense (intensification, CKA) have no dense value of their own: not a missing baseline
    rel = (("I_t", 0.1), ("alpha_t_ours", 1.2), ("cka_linear_mean", 0.9))
    for seed in range(3):
        write_run(root, seed, "magnitude", 0.9, 10, 0.5, extra_rows=rel)
    write_run(root, 5, "magnitude", 0.9, 10, 0.5, dense=False)
    standards = build_report(root, plots=False)["standards.txt"].read_text()
    assert "[R1] missing dense baseline for 1 run(s)" in standards


def test_summary_shows_the_varying_keys(mixed):
    md = build_report(mixed, plots=False)["summary.md"].read_text()
    exp = md.split("## Experiments")[1].split("##")[0]
    assert "train.epochs" in exp and "results_dir" not in exp and exp.count("| 0 1 2 |") == 4


def test_readme_reading_results_snippet_as_written(mixed, tmp_path, monkeypatch, capsys):
    """The README's pandas snippet, copied from the README, runs on a results folder named `results`."""
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("Reading results:")[1].split("```python\n")[1].split("```")[0]
    assert "load(" in snippet and "read_csv" not in snippet
    work = tmp_path / "work"
    work.mkdir()
    mixed.rename(work / "results")
    # run as a script of its own in this process: a fresh namespace (the snippet's own imports only)
    monkeypatch.chdir(work)
    exec(compile(snippet, "README.md snippet", "exec"), {"__name__": "__main__"})
    stdout = capsys.readouterr().out
    assert "train.epochs" in stdout and "0.81" in stdout


def test_vectorised_summary_matches_t_interval_per_group():
    """summarise computes all groups at once; each row must equal core.stats.t_interval of its seeds."""
    from prune_cli.core.stats import t_interval
    from prune_cli.report.summary import summarise

    rng = np.random.default_rng(0)
    rows = []
    for method, n_seeds in (("magnitude", 4), ("random", 1), ("snip", 3)):
        for seed in range(n_seeds):
            run = f"{method}-{seed}"
            ctx = dict(run_id=run, seed=seed, dataset="toy", model="mlp", method=method, target_sparsity=0.9, split="test")
            acc = float(rng.uniform(0.3, 0.9))
            rows += [
                {**ctx, "phase": "finetuned", "metric": "accuracy", "value": acc, "dense_value": 0.95},
                {**ctx, "phase": "finetuned", "metric": "odd", "value": np.inf if seed == 0 else acc, "dense_value": np.nan},
            ]
    metrics = pd.DataFrame(rows)
    s = summarise(metrics, 0.9).set_index(["method", "metric"])
    for (method, metric), part in metrics.groupby(["method", "metric"]):
        expected = t_interval(part["value"], 0.9)
        got = s.loc[(method, metric)]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, nan_ok=True), (method, metric, key)
        delta = t_interval(part["value"] - part["dense_value"], 0.9)
        assert got["delta_mean"] == pytest.approx(delta["mean"], nan_ok=True)
        assert got["delta_ci_high"] == pytest.approx(delta["ci_high"], nan_ok=True)


def test_a_completed_run_without_its_config_is_named_not_dropped(tmp_path):
    """A completed run whose config.yaml is gone (deleted, not copied with the folder) has no experiment
    key: its rows were dropped without a word and the report said "Completed runs: 5" of six. It is
    now left out by name, in the report and the standards summary prune-report prints."""
    root = tmp_path / "r"
    ids = [write_run(root, s, m, 0.9, 2, acc) for s in (0, 1, 2) for m, acc in (("magnitude", 0.8), ("random", 0.5))]
    (root / "runs" / ids[0] / "config.yaml").unlink()
    assert load(root).without_config == [ids[0]]
    assert ids[0] not in set(load(root).table("metrics.csv").run_id)
    written = build_report(root)
    md, standards = written["summary.md"].read_text(), written["standards.txt"].read_text()
    assert "Completed runs: 5 (and 1 left out: no config.yaml)" in md
    assert f"completed runs without config.yaml, left out: 1 -> {ids[0]}" in standards
    assert ids[0] in md


def test_a_copied_run_directory_is_read_once_with_a_warning_naming_the_copy(tmp_path):
    """A copy of a run directory inside runs/ ("<id> (copy)") was read as a second run: its rows
    counted twice in every mean and the experiment showed 2 runs for a single seed."""
    import shutil
    import warnings

    root = tmp_path / "res"
    first = write_run(root, 0, "magnitude", 0.9, 10, 0.5)
    write_run(root, 1, "magnitude", 0.9, 10, 0.6)
    shutil.copytree(root / "runs" / first, root / "runs" / f"{first} (copy)")
    expected = pd.concat(pd.read_csv(root / "runs" / r / "metrics.csv") for r in sorted(p.name for p in (root / "runs").iterdir()))
    expected = expected.drop_duplicates()  # the two distinct runs, as their own per-run files hold them
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = load(root)
    assert res.metrics.groupby("run_id").size().to_dict() == expected.groupby("run_id").size().to_dict()
    assert list(res.experiments.n_runs) == [2] and len(res.runs) == 2
    assert any(f"{first} (copy)" in str(w.message) for w in caught)
    assert res.skipped == {f"{first} (copy)": f"a second directory of run {first} (its name is not its run id)"}


def test_the_report_names_a_copied_run_directory_it_left_out(tmp_path):
    """load() leaves a copy of a run directory out with a Python warning only; the report's own summary
    (summary.md, standards.txt) did not say that a directory of the folder was not read."""
    import shutil
    import warnings

    root = tmp_path / "res"
    first = write_run(root, 0, "magnitude", 0.9, 10, 0.5)
    write_run(root, 1, "magnitude", 0.9, 10, 0.6)
    shutil.copytree(root / "runs" / first, root / "runs" / f"{first} (copy)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = build_report(root, plots=False)
    md, standards = written["summary.md"].read_text(), written["standards.txt"].read_text()
    line = f"{first} (copy)"
    assert line in md and "not read" in md, md[:2000]
    assert line in standards, standards


def _with_text_columns(root: Path) -> dict[str, dict[str, str]]:
    """Three completed runs whose name and config_hash look like numbers or missing values to
    pandas' default parser; returns run id -> {column: the text written}."""
    written = {}
    for seed, (name, config_hash) in enumerate([("NA", "1e2345678901"), ("007", "1e9876543210"), ("null", "012345678901")]):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.5, extra_rows=[("loss", 1.0)], name=name)
        path = root / "runs" / run / "metrics.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.insert(1, "config_hash", config_hash)
        df.to_csv(path, index=False)
        written[run] = {"name": name, "config_hash": config_hash}
    return written


@pytest.mark.parametrize("shared_only", [False, True])
def test_load_reads_names_and_hashes_as_the_text_written(tmp_path, shared_only):
    """pandas' default parsing read a run named NA (or null) as a missing value, '007' as 7, and the
    config hashes 1e2345678901 and 1e9876543210 both as infinity: two configurations looked like one."""
    root = tmp_path / "res"
    written = _with_text_columns(root)
    if shared_only:  # the run directories moved away: only the shared table is read
        shared = tmp_path / "shared"
        shared.mkdir()
        pd.concat(pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(root.glob("runs/*/metrics.csv"))).to_csv(
            shared / "runs.csv", index=False
        )
        root = shared
    metrics = load(root).metrics
    got = metrics.drop_duplicates("run_id").set_index("run_id")[["name", "config_hash"]].to_dict(orient="index")
    assert got == written
    assert metrics["value"].dtype == float and metrics["dense_value"].isna().any()  # numbers and empty cells as before


def test_a_shared_only_folder_lists_each_table_once(mixed, tmp_path):
    """runs.csv is the shared file of metrics.csv: it was listed (and read) a second time under its own name."""
    shared = tmp_path / "shared"
    shared.mkdir()
    pd.concat(pd.read_csv(p) for p in sorted(mixed.glob("runs/*/metrics.csv"))).to_csv(shared / "runs.csv", index=False)
    pd.concat(pd.read_csv(p) for p in sorted(mixed.glob("runs/*/per_class.csv"))).to_csv(shared / "per_class.csv", index=False)
    assert load(shared).names == ["metrics.csv", "per_class.csv"]


def test_runs_saved_before_and_after_the_null_lr_rewind_default_are_one_experiment(tmp_path):
    """schedule.lr_rewind's default became null (decided by the other options; false for oneshot): a seed
    run before (saved false) and one run after (saved null) were two experiments of one seed each, and
    the recall-distortion loader called them two setups. The run id already hashed null as false."""
    from prune_cli.analysis.recall_distortion import _setups

    root = tmp_path / "res"
    for seed, lr_rewind in ((0, False), (1, None)):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.5)
        path = root / "runs" / run / "config.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg["schedule"]["lr_rewind"] = lr_rewind
        path.write_text(yaml.safe_dump(cfg))
    res = load(root)
    assert res.runs["experiment"].nunique() == 1 and res.varying == []
    setups, differ = _setups({d.name: yaml.safe_load((d / "config.yaml").read_text()) for d in (root / "runs").iterdir()})
    assert len(set(setups.values())) == 1 and differ == []


FC_FRAC = """
from dataclasses import dataclass

from prune_cli.pruning.allocation import register_allocation


@dataclass
class FcFracOptions:
    fc_keep: float = 1.0


@register_allocation("fc_frac", options=FcFracOptions)
def fc_frac(scores, density, ctx):
    raise NotImplementedError
"""


def test_which_plugins_were_loaded_does_not_split_an_experiment(tmp_path, monkeypatch):
    """Plugin audit: three runs differing only in seed and in `plugins=[alab.gblobs]` /
    `[alab.gblobs,alab.nnz]` (a disabled metric) / `[alab.gblobs,my_lab.fc_frac]` were three one-seed
    experiments, told apart by `metrics.nnz.*` or `method.fc_keep` ("(absent)" / "1.0"); after a sweep
    `method.allocation=fc_frac,global method.fc_keep=0.3` the global runs were labelled fc_keep=0.3 and
    not pooled with other global runs. The experiment key now leaves out what the run id leaves out:
    a disabled metric's node and the options of an allocation or structure the run did not choose
    (read from the run's own plugins, found on the path here, never imported)."""
    from prune_cli.results import experiment_keys

    (tmp_path / "src" / "fclab").mkdir(parents=True)
    (tmp_path / "src" / "fclab" / "__init__.py").write_text("")
    (tmp_path / "src" / "fclab" / "fc_frac.py").write_text(FC_FRAC)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    def config(seed, plugins, method=None, metrics=None):
        cfg = _config(seed, "magnitude", 0.9, 10)
        cfg.update(plugins=plugins, metrics={"hessian": {"enabled": False, "samples": 512}, **(metrics or {})})
        cfg["method"].update(method or {})
        return cfg

    configs = {
        "gblobs": config(0, ["alab.gblobs"]),
        "with_nnz": config(1, ["alab.gblobs", "alab.nnz"], metrics={"nnz": {"enabled": False, "eps": 0.0}}),
        "with_fc_frac": config(2, ["alab.gblobs", "fclab.fc_frac"], {"fc_keep": 1.0}),
        "swept_global": config(3, ["fclab.fc_frac"], {"fc_keep": 0.3}),  # the sweep's global job
        "swept_fc_frac": config(0, ["fclab.fc_frac"], {"fc_keep": 0.3, "allocation": "fc_frac"}),
        "nnz_enabled": config(0, ["alab.nnz"], metrics={"nnz": {"enabled": True, "eps": 0.0}}),
    }
    table, varying = experiment_keys(configs)
    pooled = table.loc[["gblobs", "with_nnz", "with_fc_frac", "swept_global"], "experiment"]
    assert pooled.nunique() == 1, table.T
    assert table.loc["swept_fc_frac", "experiment"] != pooled.iloc[0]  # fc_frac chosen: its option counts
    assert table.loc["nnz_enabled", "experiment"] != pooled.iloc[0]  # an enabled metric's options count
    assert table.loc["swept_fc_frac", "method.fc_keep"] == "0.3" and pd.isna(table.loc["swept_global", "method.fc_keep"])
    assert not any(k.startswith("metrics.hessian") for k in table.columns)


def _made_by(root: Path, run_id: str, git_sha: str, version: str) -> None:
    """The provenance columns prune-run writes into every row of a run (write_run leaves them out)."""
    path = root / "runs" / run_id / "metrics.csv"
    table = pd.read_csv(path)
    table.assign(git_sha=git_sha, git_dirty=False, prune_cli_version=version, torch_version="2.5.1").to_csv(path, index=False)


def test_seeds_made_by_different_code_are_averaged_with_a_note_naming_the_experiment_and_the_versions(tmp_path):
    """An experiment whose seed 0 came from an old commit and seeds 1-2 from the current one (a folder kept
    across a `git pull`) was averaged without a word. The numbers stay as they were (one mean over the three
    seeds); summary.md and the standards check name the experiment and each version with its seeds."""
    root = tmp_path / "res"
    old, new = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"
    for seed, acc in enumerate([0.80, 0.84, 0.82]):
        run = write_run(root, seed, "magnitude", 0.5, 10, acc)
        _made_by(root, run, old if seed == 0 else new, "0.1.0" if seed == 0 else "0.2.0")
        same = write_run(root, seed, "random", 0.5, 10, acc - 0.1)
        _made_by(root, same, new, "0.2.0")  # every seed of random from one version: no note
    one_version = tmp_path / "one_version"
    shutil.copytree(root, one_version)
    for run_dir in (one_version / "runs").iterdir():
        _made_by(one_version, run_dir.name, new, "0.2.0")
    written = build_report(root, plots=False)
    md = written["summary.md"].read_text()
    experiment = load(root).runs.set_index("run_id").loc[run, "experiment"]
    line = next((x for x in md.splitlines() if x.startswith("Seeds made by different code")), "")
    assert f"experiment {experiment} (magnitude oneshot 0.5)" in line, md[:3000]
    assert (
        "git_sha 0123456789ab (seed 0), fedcba987654 (seeds 1, 2)" in line
        and "prune_cli_version 0.1.0 (seed 0), 0.2.0 (seeds 1, 2)" in line
    )
    assert "random" not in line and "torch_version" not in line  # one version each: not named
    assert f"experiment {experiment}" in written["standards.txt"].read_text()
    # the numbers are those of the same runs made by one version
    assert written["summary.csv"].read_bytes() == build_report(one_version, plots=False)["summary.csv"].read_bytes()


def test_the_experiments_table_shows_default_accel_values_not_absent(tmp_path):
    """A run at accel's defaults leaves `accel` out of its key (prune_cli/core/identity.py), and the
    experiments table showed its accel.* as "(absent)" beside a bf16 run's "bf16" (accel audit)."""
    import yaml

    from prune_cli.report.load import load_results
    from prune_cli.report.summary import experiments_markdown

    root = tmp_path / "res"
    for seed in (0, 1):
        for precision in ("fp32", "bf16"):
            run = write_run(root, seed, "magnitude", 0.5, 10, 0.8, name=f"p{precision}")
            path = root / "runs" / run / "config.yaml"
            cfg = yaml.safe_load(path.read_text())
            cfg["name"] = "run"
            cfg["accel"] = {"precision": precision, "channels_last": False, "compile": False, "deterministic": False}
            path.write_text(yaml.safe_dump(cfg))
    table = experiments_markdown(load_results(root))
    assert "(absent)" not in table, table
    assert "| fp32 |" in table and "| bf16 |" in table, table
