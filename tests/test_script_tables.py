"""The evidence scripts' tables never pool runs of different settings as if they were more seeds.
lap_vs_magnitude.py, mia_pruning.py and train_time_pruning.py grouped runs.csv by method and
sparsity alone: a folder holding the same method at train.epochs 20 and 40, three seeds each, gave
one cell `40.00 ± 10.95 (n=6)`, and train_time_pruning's paired comparison averaged the two settings
of a seed (pivot_table's mean); layer_pruning.py's summary grouped by model and penalty. Each table
now has a column per config key that differs inside one of its cells (scripts/script_tables.py, as
data_pruning_longtail.py's table), and the comparisons pair runs of the same setting. Small
fabricated folders: a run directory with config.yaml and COMPLETE per run (what prune_cli.results
reads the keys from) and the shared runs.csv."""

from __future__ import annotations

import pandas as pd
import yaml

import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
import lap_vs_magnitude
import mia_pruning
import train_time_pruning


def write_folder(root, runs) -> None:
    """runs: (run_id, config, context columns, [(phase, split, metric, value), ...])."""
    rows = []
    for run_id, config, ctx, values in runs:
        run_dir = root / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
        (run_dir / "COMPLETE").write_text(run_id + "\n")
        for phase, split, metric, value in values:
            rows.append({"run_id": run_id, **ctx, "phase": phase, "split": split, "metric": metric, "value": value, "device": "cpu"})
    pd.DataFrame(rows).to_csv(root / "runs.csv", index=False)


def config(seed, epochs, method="magnitude", allocation="global", schedule=None, sparsity=0.98) -> dict:
    return {
        "seed": seed,
        "name": "x",
        "results_dir": "r",
        "dataset": {"name": "mnist1d"},
        "model": {"name": "mlp", "widths": [256, 256]},
        "train": {"epochs": epochs, "batch_size": 128},
        "method": {"name": method, "allocation": allocation},
        "schedule": schedule or {"name": "oneshot"},
        "sparsity": sparsity,
    }


def context(seed, method="magnitude", allocation="global", schedule="oneshot", sparsity=0.98) -> dict:
    ctx = {"seed": seed, "dataset": "mnist1d", "model": "mlp", "method": method, "allocation": allocation, "schedule": schedule}
    return {**ctx, "target_sparsity": sparsity}


def test_lap_table_keeps_two_epoch_settings_apart(tmp_path):
    runs = []
    for epochs, base in ((20, 0.2), (40, 0.4)):
        for seed in range(3):
            values = [("pruned", "test", "accuracy", 0.1), ("finetuned", "test", "accuracy", base + 0.1 * seed)]
            runs.append((f"m{epochs}s{seed}", config(seed, epochs), context(seed), values))
    write_folder(tmp_path, runs)
    table = lap_vs_magnitude.table(tmp_path)
    assert list(table.index.names) == ["target_sparsity", "train.epochs"]
    assert table.loc[(0.98, "20"), ("finetuned", "magnitude/global")] == "30.00 ± 10.00 (n=3)"
    assert table.loc[(0.98, "40"), ("finetuned", "magnitude/global")] == "50.00 ± 10.00 (n=3)"


def test_lap_table_of_one_setting_is_as_before(tmp_path):
    runs = [
        (f"s{s}", config(s, 20), context(s), [("pruned", "test", "accuracy", 0.1), ("finetuned", "test", "accuracy", 0.3)])
        for s in range(2)
    ]
    write_folder(tmp_path, runs)
    table = lap_vs_magnitude.table(tmp_path)
    assert list(table.index.names) == ["target_sparsity"]
    assert table.loc[0.98, ("finetuned", "magnitude/global")] == "30.00 ± 0.00 (n=2)"


MIA_SCHEDULES = {"oneshot": {"name": "oneshot"}, "admm": {"name": "admm", "update_every": 2}, "minmax": {"name": "minmax"}}


def mia_folder(root) -> None:
    """oneshot at 0.5 and 0.8, admm and minmax at 0.8, seeds 0-2, at train.epochs 20 and 40: at 20
    admm's AUC is the lowest (the claim holds), at 40 the highest (it does not)."""
    auc = {20: {"oneshot": 0.60, "admm": 0.55, "minmax": 0.62}, 40: {"oneshot": 0.60, "admm": 0.65, "minmax": 0.62}}
    runs = []
    for epochs in (20, 40):
        for schedule, sparsity in (("oneshot", 0.5), ("oneshot", 0.8), ("admm", 0.8), ("minmax", 0.8)):
            for seed in range(3):
                cfg = config(seed, epochs, allocation="layerwise", schedule=MIA_SCHEDULES[schedule], sparsity=sparsity)
                ctx = context(seed, allocation="layerwise", schedule=schedule, sparsity=sparsity)
                low = sparsity == 0.5
                values = [
                    ("dense", "test", "accuracy", 0.9 if epochs == 20 else 0.8),
                    ("dense", "membership", "mia_loss_auc", 0.7),
                    ("finetuned", "test", "accuracy", 0.8 if low else 0.7),
                    ("finetuned", "membership", "mia_loss_auc", 0.7 if low else auc[epochs][schedule]),
                ]
                runs.append((f"{schedule}{sparsity}e{epochs}s{seed}", cfg, ctx, values))
    write_folder(root, runs)


def test_mia_table_verdict_and_frontier_keep_two_epoch_settings_apart(tmp_path):
    mia_folder(tmp_path)
    table = mia_pruning.table(tmp_path)
    assert list(table.index.names) == ["target_sparsity", "method", "train.epochs"]
    assert table.loc[(0.8, "admm", "20"), "mia_loss_auc"] == "0.5500 ± 0.0000 (n=3)"
    assert table.loc[(0.8, "admm", "40"), "mia_loss_auc"] == "0.6500 ± 0.0000 (n=3)"
    assert table.loc[(0.0, "dense", "20"), "accuracy"] == "0.9000 ± 0.0000 (n=3)"  # one dense model per seed and setting
    assert table.loc[(0.0, "dense", "40"), "accuracy"] == "0.8000 ± 0.0000 (n=3)"
    verdict = mia_pruning.verdict(tmp_path)
    assert len(verdict) == 2
    assert verdict[0].startswith("sparsity 0.8 (train.epochs=20): admm AUC 0.5500") and verdict[0].endswith("claim reproduced")
    assert verdict[1].startswith("sparsity 0.8 (train.epochs=40): admm AUC 0.6500") and "NOT reproduced" in verdict[1]
    frontier = mia_pruning.frontier(tmp_path)
    assert sorted(frontier) == [
        "admm at 0.8 (train.epochs=20): accuracy 0.7000, AUC 0.5500 vs magnitude's 0.6000 at that accuracy (-0.0500)",
        "admm at 0.8 (train.epochs=40): accuracy 0.7000, AUC 0.6500 vs magnitude's 0.6000 at that accuracy (+0.0500)",
        "minmax at 0.8 (train.epochs=20): accuracy 0.7000, AUC 0.6200 vs magnitude's 0.6000 at that accuracy (+0.0200)",
        "minmax at 0.8 (train.epochs=40): accuracy 0.7000, AUC 0.6200 vs magnitude's 0.6000 at that accuracy (+0.0200)",
    ]


GREG1 = {"name": "greg1", "delta": 0.05, "stabilize_steps": 80}


def test_train_time_table_and_paired_differences_keep_two_epoch_settings_apart(tmp_path):
    """magnitude 20/30/40 % at 20 epochs and 40/50/60 % at 40; greg1 5 points above at 20 and 5 below
    at 40. Pooled, the pivot averaged each seed's two settings: a difference of 0."""
    runs = []
    for epochs, base, shift in ((20, 0.2, 0.05), (40, 0.4, -0.05)):
        for seed in range(3):
            for schedule, node, value in (("oneshot", None, base + 0.1 * seed), ("greg1", GREG1, base + 0.1 * seed + shift)):
                cfg = config(seed, epochs, schedule=node, sparsity=0.9)
                ctx = context(seed, schedule=schedule, sparsity=0.9)
                runs.append((f"{schedule}e{epochs}s{seed}", cfg, ctx, [("finetuned", "test", "accuracy", value)]))
    write_folder(tmp_path, runs)
    acc, keys = train_time_pruning.accuracies(tmp_path)
    assert keys == ["train.epochs"]
    lines = train_time_pruning.report(acc, keys).splitlines()
    table = "\n".join(lines[: lines.index("")])
    assert "train.epochs" in table and "n=6" not in table and table.count("(n=3)") == 4
    paired = [line for line in lines if line.startswith("sparsity")]
    assert len(paired) == 2
    assert paired[0].startswith("sparsity 0.9 (train.epochs=20): greg1 vs magnitude") and "+5.00" in paired[0]
    assert paired[0].endswith("reproduced (better)")
    assert paired[1].startswith("sparsity 0.9 (train.epochs=40): greg1 vs magnitude") and "-5.00" in paired[1]
    assert paired[1].endswith("not reproduced (worse)")


def test_train_time_a_schedule_option_only_greg_has_is_compared_with_the_one_baseline(tmp_path):
    """Two greg1 settings (stabilize_steps 80 and 96): magnitude has no such option, so each greg1
    setting is paired with the same magnitude runs."""
    runs = []
    for seed in range(3):
        runs.append(
            (f"m{seed}", config(seed, 20, sparsity=0.9), context(seed, sparsity=0.9), [("finetuned", "test", "accuracy", 0.3)])
        )
        for steps, value in ((80, 0.35), (96, 0.25)):
            cfg = config(seed, 20, schedule={**GREG1, "stabilize_steps": steps}, sparsity=0.9)
            ctx = context(seed, schedule="greg1", sparsity=0.9)
            runs.append((f"g{steps}s{seed}", cfg, ctx, [("finetuned", "test", "accuracy", value + 0.01 * seed)]))
    write_folder(tmp_path, runs)
    acc, keys = train_time_pruning.accuracies(tmp_path)
    assert keys == ["schedule.stabilize_steps"]
    paired = [line for line in train_time_pruning.report(acc, keys).splitlines() if line.startswith("sparsity")]
    assert len(paired) == 2
    assert paired[0].startswith("sparsity 0.9 (schedule.stabilize_steps=80): greg1 vs magnitude") and "+6.00" in paired[0]
    assert paired[1].startswith("sparsity 0.9 (schedule.stabilize_steps=96): greg1 vs magnitude") and "-4.00" in paired[1]


def test_layer_pruning_summary_keeps_two_widths_apart(tmp_path):
    """layer_pruning.py's summary grouped by model and penalty: res_mlp width 64 and width 32 in one
    folder were averaged as four seeds of one row."""
    import layer_pruning

    for width, acc in ((64, 0.6), (32, 0.4)):
        for seed in (0, 1):
            run_dir = tmp_path / "runs" / f"w{width}s{seed}"
            run_dir.mkdir(parents=True)
            cfg = {"seed": seed, "model": {"name": "res_mlp", "width": width}, "schedule": {"name": "layer_pruning", "penalty": 0.2}}
            (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
            (run_dir / "COMPLETE").write_text(run_dir.name + "\n")
            sections = "section,layers,removed,epoch_removed\n0,sections.0.fc1 sections.0.fc2,True,2\n1,sections.1.fc1,False,\n"
            (run_dir / "layer_pruning.csv").write_text(sections)
            rows = [("finetuned", "model", "flops_dense", 100.0), ("finetuned", "model", "flops_sparse", 50.0)]
            rows += [(phase, "test", "accuracy", acc + 0.01 * seed) for phase in ("dense", "pruned", "finetuned")]
            pd.DataFrame(rows, columns=["phase", "split", "metric", "value"]).to_csv(run_dir / "metrics.csv", index=False)
    summary = layer_pruning.summary(tmp_path, layer_pruning.table(tmp_path))
    assert len(summary) == 2 and "model.width" in summary.index.names
    assert summary.loc[("res_mlp", 0.2, "32"), ("finetuned_acc", "mean")] == 0.405
    assert summary.loc[("res_mlp", 0.2, "64"), ("finetuned_acc", "mean")] == 0.605


def test_layer_pruning_table_only_on_a_folder_without_layer_pruning_runs_says_so(tmp_path, monkeypatch, capsys):
    """--table-only on a results folder whose finished runs are of other schedules stopped with
    KeyError: 'model' (an empty table sorted by its columns); now argparse's one-line error, exit 2."""
    import sys

    import pytest

    import layer_pruning

    run_dir = tmp_path / "runs" / "run-magnitude-oneshot-s0.9-seed0-0123abcd"
    run_dir.mkdir(parents=True)
    (run_dir / "COMPLETE").write_text("")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "model": {"name": "mlp"}, "schedule": {"name": "oneshot"}}))
    monkeypatch.setattr(sys, "argv", ["layer_pruning.py", "--table-only", "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        layer_pruning.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--results-dir" in err and str(tmp_path) in err and "layer_pruning.csv" in err


def _erk_folder(root, epochs_settings=(1, 2)) -> None:
    """random_erk_vs_layerwise.py's runs: erk and layerwise at 0.98, seeds 0 and 1, at each
    finetune.epochs of `epochs_settings`; every run records its seed's dense accuracy (0.70, 0.80)."""
    runs = []
    for epochs in epochs_settings:
        for allocation in ("erk", "layerwise"):
            for seed in (0, 1):
                cfg = {**config(seed, 20, method="random", allocation=allocation), "finetune": {"epochs": epochs}}
                cfg["name"] = "random_erk_vs_layerwise"
                ctx = {**context(seed, method="random", allocation=allocation), "name": "random_erk_vs_layerwise"}
                values = [
                    ("dense", "test", "accuracy", 0.7 + 0.1 * seed),
                    ("pruned", "test", "accuracy", 0.1),
                    ("finetuned", "test", "accuracy", 0.1 * epochs + 0.1 * seed),
                ]
                runs.append((f"{allocation}e{epochs}s{seed}", cfg, ctx, values))
    write_folder(root, runs)


def test_random_erk_table_keeps_two_finetune_settings_apart(tmp_path):
    """Two calls into one --results-dir with finetune.epochs=1 then 2 were pooled: every cell n=4."""
    import random_erk_vs_layerwise

    _erk_folder(tmp_path)
    wide = random_erk_vs_layerwise.table(tmp_path)
    assert list(wide.index.names) == ["target_sparsity", "finetune.epochs"]
    assert wide.loc[(0.98, "1"), ("finetuned", "erk")] == "15.00 +- 7.07 (n=2)"
    assert wide.loc[(0.98, "2"), ("finetuned", "erk")] == "25.00 +- 7.07 (n=2)"


def test_random_erk_dense_line_counts_one_model_per_seed(tmp_path):
    """The dense line took the std over every run's dense row (each seed's model 4 times here):
    70 and 80 % are 75.00 +- 7.07 over two seeds, not +- 5.22 over eight rows."""
    import random_erk_vs_layerwise

    _erk_folder(tmp_path)
    assert random_erk_vs_layerwise.dense_lines(tmp_path) == ["dense: 75.00 ± 7.07 (n=2)"]


def test_regions_sweep_summary_keeps_two_epoch_settings_apart(tmp_path):
    """regions_sparsity_sweep.py's pivot_table averaged the runs of --epochs 1 and --epochs 2 in one
    --out as one run per seed: acc_mean 0.5 from 0.4 and 0.6."""
    import regions_sparsity_sweep

    runs, rows, regions, layers = [], [], [], []
    for epochs, acc in ((1, 0.4), (2, 0.6)):
        for seed in (0, 1):
            run_id = f"e{epochs}s{seed}"
            cfg = {**config(seed, epochs, method="region_bound", allocation="layerwise", sparsity=0.9), "finetune": {"epochs": epochs}}
            ctx = {"run_id": run_id, **context(seed, method="region_bound", allocation="layerwise", sparsity=0.9)}
            runs.append((run_id, cfg, ctx, []))
            for phase in ("dense", "pruned", "finetuned"):
                rows.append({**ctx, "phase": phase, "split": "test", "metric": "accuracy", "value": acc + 0.01 * seed})
                regions.append({**ctx, "phase": phase, "count": 10.0 * epochs, "bound_ln_expected_binomial": 1.0})
                for layer, density in (("fc1", 0.2), ("fc2", 0.05), ("fc3", 1.0)):
                    layers.append({**ctx, "phase": phase, "layer": layer, "prunable": layer != "fc3", "density": density})
    write_folder(tmp_path, runs)
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame(regions).to_csv(tmp_path / "regions.csv", index=False)
    pd.DataFrame(layers).to_csv(tmp_path / "layers.csv", index=False)
    summary, dense = regions_sparsity_sweep.summary(tmp_path)
    assert "train.epochs" in summary.index.names and len(summary) == 2
    by_epochs = summary.reset_index().set_index("train.epochs")
    assert by_epochs.loc["1", "acc_mean"] == 0.405 and by_epochs.loc["2", "acc_mean"] == 0.605
    assert by_epochs.loc["1", "regions_line"] == 10.0 and by_epochs.loc["1", "seeds"] == 2
    assert len(dense) == 2 and dense[0].startswith("dense (") and "train.epochs=1" in dense[0]


def test_analysis_metrics_sweep_keeps_two_settings_apart(tmp_path, monkeypatch, capsys):
    """A second analysis_metrics_sweep.py call with other overrides (finetune.epochs=2) into the same
    --results: section 1 pooled both settings as four seeds, section 2 stopped with a traceback
    (`ValueError: the 4 runs come from 2 setups`). Each setting now gets its own rows and null; the
    null is stubbed here (it needs the runs' predictions), recording the run folders it is given."""
    import analysis_metrics_sweep

    runs, rd = [], []
    for epochs, recall in ((1, 0.5), (2, 0.7)):
        for seed in (0, 1):
            run_id = f"e{epochs}s{seed}"
            cfg = {**config(seed, 20, sparsity=0.9), "finetune": {"epochs": epochs}}
            ctx = {"run_id": run_id, **context(seed, sparsity=0.9)}
            values = [("finetuned", "test", "accuracy", recall), ("finetuned", "membership", "mia_loss_auc", 0.5)]
            runs.append((run_id, cfg, ctx, values))
            for cls in (0, 1):
                row = {**ctx, "split": "test", "phase": "finetuned", "class": cls, "recall": recall + 0.1 * cls}
                rd.append({**row, "accuracy": recall + 0.05, "dense_recall": 0.8 + 0.1 * cls, "dense_accuracy": 0.85})
    write_folder(tmp_path, runs)
    runs_csv = pd.read_csv(tmp_path / "runs.csv")
    runs_csv["dense_value"] = 0.85
    runs_csv.to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame(rd).to_csv(tmp_path / "recall_distortion.csv", index=False)
    given = []
    monkeypatch.setattr(analysis_metrics_sweep, "load_predictions", lambda dirs, phases: given.append(sorted(d.name for d in dirs)))
    null = pd.DataFrame([{"model": "0.9/finetuned", "statistic": "I_t", "observed": 0, "null_mean": 0, "null_sd": 0}])
    null = null.assign(p_value=1.0, p_value_code=1.0)
    monkeypatch.setattr(analysis_metrics_sweep, "randomisation_null", lambda preds, n_perm, seed: null)
    analysis_metrics_sweep.analyse(tmp_path, 10)
    out = capsys.readouterr().out
    assert given == [["e1s0", "e1s1"], ["e2s0", "e2s1"]]
    assert "(finetune.epochs=1)" in out and "(finetune.epochs=2)" in out
    section1 = out.split("\n2.")[0]
    assert "finetune.epochs" in section1 and " 4 " not in section1  # two seeds per setting, never four
    section3 = out.split("\n3.")[1]
    assert "0.5000" in section3 and "0.7000" in section3 and "0.6000" not in section3


def test_train_time_one_seed_is_inconclusive(tmp_path):
    """With one seed paired_interval returned [mean, mean] and a +5 point difference was declared
    `reproduced (better)`: one seed gives no interval."""
    runs = []
    for schedule, node, value in (("oneshot", None, 0.3), ("greg1", GREG1, 0.35)):
        cfg = config(0, 20, schedule=node, sparsity=0.9)
        runs.append((f"{schedule}s0", cfg, context(0, schedule=schedule, sparsity=0.9), [("finetuned", "test", "accuracy", value)]))
    write_folder(tmp_path, runs)
    acc, keys = train_time_pruning.accuracies(tmp_path)
    (paired,) = [line for line in train_time_pruning.report(acc, keys).splitlines() if line.startswith("sparsity")]
    assert "+5.00" in paired and paired.endswith("inconclusive (one seed)") and "reproduced" not in paired


def test_train_time_every_difference_zero_is_equal_or_better_not_better(tmp_path):
    """greg1 equal to magnitude at each of three seeds (30, 40, 50 %): the differences are 0, 0, 0,
    the interval [+0.00, +0.00]; the verdict said `reproduced (better)`."""
    runs = []
    for seed in range(3):
        for schedule, node in (("oneshot", None), ("greg1", GREG1)):
            cfg = config(seed, 20, schedule=node, sparsity=0.9)
            ctx = context(seed, schedule=schedule, sparsity=0.9)
            runs.append((f"{schedule}s{seed}", cfg, ctx, [("finetuned", "test", "accuracy", 0.3 + 0.1 * seed)]))
    write_folder(tmp_path, runs)
    acc, keys = train_time_pruning.accuracies(tmp_path)
    (paired,) = [line for line in train_time_pruning.report(acc, keys).splitlines() if line.startswith("sparsity")]
    assert "+0.00 [+0.00, +0.00] (3/3 seeds >= 0)" in paired, paired
    assert paired.endswith("reproduced (equal or better)"), paired


def test_pruning_limit_summary_tells_two_epoch_settings_apart(tmp_path):
    """pruning_limit_mnist1d.py's summary labelled its rows by run name and seed only: a second call
    with --epochs 3 into the same folder gave two `limit-l10 0` rows (dense accuracy 0.5 and 0.7) with
    no column telling them apart; now a train.epochs column says which is which."""
    import pruning_limit_mnist1d

    runs = []
    for epochs, acc in ((2, 0.5), (3, 0.7)):
        cfg = {**config(0, epochs), "name": "limit-l10"}
        ctx = {**context(0), "name": "limit-l10"}
        values = [("dense", "test", "accuracy", acc), ("dense", "model", "limit_eps", epochs / 100)]
        runs.append((f"limit-e{epochs}", cfg, ctx, values))
    write_folder(tmp_path, runs)
    table = pruning_limit_mnist1d.summary(tmp_path)
    assert list(table.columns[:3]) == ["run", "seed", "train.epochs"]
    assert table[["run", "seed", "train.epochs", "dense_test_acc"]].values.tolist() == [
        ["limit-l10", 0, "2", 0.5],
        ["limit-l10", 0, "3", 0.7],
    ]
    assert table["eps"].tolist() == [0.02, 0.03]


def test_train_time_heading_names_the_data_and_model_of_the_runs(tmp_path, monkeypatch, capsys):
    """The heading said `MNIST-1D, MLP [256, 256]` whatever the runs were given: here runs on the
    synthetic data with model.widths [64, 32] (read back from their config.yaml)."""
    import sys

    runs = []
    for seed in range(2):
        for schedule, node in (("oneshot", None), ("greg1", GREG1)):
            cfg = {**config(seed, 20, schedule=node, sparsity=0.9), "dataset": {"name": "synthetic"}}
            cfg["model"] = {"name": "mlp", "widths": [64, 32]}
            ctx = {**context(seed, schedule=schedule, sparsity=0.9), "dataset": "synthetic"}
            runs.append((f"{schedule}s{seed}", cfg, ctx, [("finetuned", "test", "accuracy", 0.3 + 0.1 * seed)]))
    write_folder(tmp_path, runs)
    monkeypatch.setattr(sys, "argv", ["train_time_pruning.py", "--table-only", "--results-dir", str(tmp_path)])
    train_time_pruning.main()
    out = capsys.readouterr().out
    assert "MNIST-1D" not in out and "[256, 256]" not in out
    heading = "dataset.name=synthetic, model.name=mlp, model.widths=[64, 32]; test accuracy % after fine-tuning"
    assert heading in out.splitlines(), out


def test_setup_names_each_value_the_runs_have(tmp_path):
    """script_tables.setup, the evidence scripts' heading: the values of each key among the folder's
    runs (of one run name when given), joined by ' / ' where they differ."""
    from script_tables import setup

    runs = []
    for i, (widths, name) in enumerate((([64], "a"), ([128, 128], "a"), ([8], "b"))):
        cfg = {**config(0, 20), "model": {"name": "mlp", "widths": widths}, "name": name}
        runs.append((f"r{i}", cfg, context(0), [("finetuned", "test", "accuracy", 0.5)]))
    write_folder(tmp_path, runs)
    assert setup(tmp_path, name="a") == "dataset.name=mnist1d, model.name=mlp, model.widths=[128, 128] / [64]"
    assert setup(tmp_path, name="b") == "dataset.name=mnist1d, model.name=mlp, model.widths=[8]"
