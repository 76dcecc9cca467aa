"""prune-report's --metric, and the pruning-limit metric's config check. `--metric` compares a metric on
the split it is recorded on (membership, model, train) and says which way is better: before, a metric
recorded on one split only was called absent unless --split named it. pruning_limit tolerances whose row
names coincide are refused before any work (one row was silently lost). Also: the README's word on
which models get no region-bound rows, --compare-by labels that name only the keys telling arms apart
(not every key of every schedule), and hessian_density.png drawing every recorded phase (only three
were drawn). Folders are written by hand in the real formats (test_report_experiments.write_run)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from prune_cli.report import build_report, main

from test_report_experiments import write_run

AUC_MAGNITUDE = [0.61, 0.64, 0.60]
AUC_RANDOM = [0.55, 0.57, 0.55]


def _add_rows(root, run_id: str, rows) -> None:
    """Append (phase, split, metric, value) rows to a written run's metrics.csv, with its context columns."""
    path = root / "runs" / run_id / "metrics.csv"
    table = pd.read_csv(path)
    ctx = table.iloc[0].to_dict()
    extra = [{**ctx, "phase": p, "split": s, "metric": m, "value": v, "dense_value": np.nan} for p, s, m, v in rows]
    pd.concat([table, pd.DataFrame(extra)], ignore_index=True).to_csv(path, index=False)


def _membership_folder(root):
    """magnitude and random at 0.9, seeds 0-2, each run recording a finetuned mia_loss_auc on split membership."""
    for seed in range(3):
        for method, aucs in (("magnitude", AUC_MAGNITUDE), ("random", AUC_RANDOM)):
            run = write_run(root, seed, method, 0.9, 10, 0.8 - 0.01 * seed * (method == "random"))
            _add_rows(root, run, [("finetuned", "membership", "mia_loss_auc", aucs[seed])])
    return root


def test_metric_recorded_on_membership_split_is_compared_there(tmp_path):
    """mia_loss_auc is recorded on split membership only: `--metric mia_loss_auc` compares it there
    (it was refused as absent from the test split), names the split, and says lower is better."""
    root = _membership_folder(tmp_path / "res")
    written = build_report(root, plots=False, metric="mia_loss_auc")
    (row,) = pd.read_csv(written["comparisons.csv"]).to_dict(orient="records")
    d = [r - m for r, m in zip(AUC_RANDOM, AUC_MAGNITUDE)]  # random - magnitude, by hand
    assert row["split"] == "membership" and row["metric"] == "mia_loss_auc"
    assert row["mean_diff"] == pytest.approx(sum(d) / 3)
    assert row["verdict"].startswith("random < magnitude in membership mia_loss_auc at sparsity 0.9"), row["verdict"]
    md = written["summary.md"].read_text()
    assert "## Paired comparisons (membership mia_loss_auc)" in md
    assert "mia_loss_auc closer to 0.5 is better" in md


def test_a_membership_auc_below_one_half_is_not_called_better_for_being_lower(tmp_path):
    """An attack AUC of 0.40 ranks members below non-members, which an attacker reverses: it leaks as much
    as 0.60, more than 0.48. The report said "Lower mia_loss_auc is better", which would favour 0.40."""
    root = tmp_path / "res"
    for seed in range(3):
        for method, auc in (("magnitude", 0.40 + 0.01 * seed), ("random", 0.48 + 0.005 * seed)):
            run = write_run(root, seed, method, 0.9, 10, 0.8)
            _add_rows(root, run, [("finetuned", "membership", "mia_loss_auc", auc)])
    md = build_report(root, plots=False, metric="mia_loss_auc")["summary.md"].read_text()
    assert "Lower mia_loss_auc is better" not in md
    assert "mia_loss_auc closer to 0.5 is better" in md


def test_metric_on_another_split_is_named_not_called_absent(tmp_path, capsys):
    """A metric recorded on test only, asked for under --split val: refused, naming the split it is on."""
    root = tmp_path / "res"
    for seed in range(2):
        write_run(root, seed, "magnitude", 0.9, 10, 0.8, extra_rows=[("ece", 0.02)])
    for d in (root / "runs").iterdir():  # a val accuracy, so that --split val itself is accepted
        _add_rows(root, d.name, [("finetuned", "val", "accuracy", 0.7)])
    with pytest.raises(SystemExit) as stop:
        main([str(root), "--metric", "ece", "--split", "val"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--metric 'ece'" in err and "recorded on the test split" in err, err
    assert not (root / "report").exists()


def test_metric_on_two_other_splits_is_refused_naming_both(tmp_path, capsys):
    """A metric recorded on two splits that are neither test nor val: which one is meant is not
    guessed; the message names both."""
    root = tmp_path / "res"
    for seed in range(2):
        run = write_run(root, seed, "magnitude", 0.9, 10, 0.8)
        _add_rows(root, run, [("finetuned", "model", "thing", 1.0), ("finetuned", "train", "thing", 2.0)])
    with pytest.raises(SystemExit) as stop:
        main([str(root), "--metric", "thing"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--metric 'thing'" in err and "model, train" in err, err
    assert not (root / "report").exists()


@pytest.mark.parametrize(
    "tolerances",
    [
        "[0.5,0.5]",  # an exact duplicate
        "[0.1234567,0.1234568]",  # two values that print alike under :g, the row name's format (tol_0.123457pp)
        "[1,1.0000001]",
    ],
)
def test_pruning_limit_tolerances_that_name_one_row_are_refused(tolerances):
    """The rows are named `limit_actual_tol_<d:g>pp`: two tolerances printed alike were one key, and one
    row was lost without a word. Refused, naming the key, its values and what is allowed."""
    from helpers import validated

    from prune_cli.core.config_base import ConfigError

    with pytest.raises(ConfigError, match=r"'metrics\.pruning_limit\.tolerances'.*each once"):
        validated("metrics.pruning_limit.enabled=true", f"metrics.pruning_limit.tolerances={tolerances}")
    validated("metrics.pruning_limit.enabled=true", "metrics.pruning_limit.tolerances=[0.1234,0.1235,0,1]")  # distinct rows: fine


def test_the_tolerance_check_refuses_exactly_the_pairs_the_metric_names_alike():
    """The config check formats the row names itself (importing prune_cli.analysis would slow every
    command that only checks a config): it must refuse exactly the pairs analysis.limit.tolerance_key
    names alike, and no other."""
    import random

    from helpers import validated

    from prune_cli.analysis.limit import tolerance_key
    from prune_cli.core.config_base import ConfigError

    rng = random.Random(0)
    pairs = [(0.5, 0.5), (0.1234567, 0.1234568), (1, 1.0000001), (0.1234, 0.1235), (0, 1e-7), (2, 2.000001)]
    pairs += [
        (round(a, rng.randint(3, 9)), round(a + rng.choice([1e-8, 1e-6, 1e-4]), rng.randint(3, 9)))
        for a in (rng.random() for _ in range(6))
    ]
    for a, b in pairs:
        args = ("metrics.pruning_limit.enabled=true", f"metrics.pruning_limit.tolerances=[{a!r},{b!r}]")
        if tolerance_key(a) == tolerance_key(b):
            with pytest.raises(ConfigError):
                validated(*args)
        else:
            validated(*args)


def test_pruning_limit_duplicate_tolerances_stop_the_cli_before_any_work(tmp_path):
    from conftest import FAST, run_cli

    results = tmp_path / "res"
    args = [*FAST, "metrics.pruning_limit.enabled=true", "metrics.pruning_limit.ratios=20"]
    proc = run_cli([*args, "metrics.pruning_limit.tolerances=[0.1234567,0.1234568]"], results, check=False)
    assert proc.returncode != 0
    assert "metrics.pruning_limit.tolerances" in proc.stderr and "0.1234567" in proc.stderr, proc.stderr
    assert not results.exists() or not any(results.rglob("*.csv")), sorted(results.rglob("*"))


def test_readme_says_which_models_get_no_region_bound_rows():
    """README's metrics.csv table said the `regions_line_bound_ln_*` rows are "absent when the model is
    not counted"; a convolutional model or res_mlp is counted and still gets none (bound_columns gives
    bound_scope none for them, checked here too), so the README must name those cases."""
    from omegaconf import OmegaConf
    from torch import nn

    from prune_cli.metrics.regions import bound_columns

    from conftest import REPO

    node = OmegaConf.create({"include_output_layer": True, "rank_models": ["binomial"], "mc_sample_factor": 48})
    conv = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    assert bound_columns(conv, 2, node)["bound_scope"].startswith("none")
    residual = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    residual.residual_sections = []  # how bound_columns recognises res_mlp
    assert bound_columns(residual, 2, node)["bound_scope"].startswith("none")

    (line,) = [
        ln for ln in (REPO / "README.md").read_text().splitlines() if "`regions_line_bound_ln_serra`" in ln and ln.startswith("|")
    ]
    cell = line[line.index("`regions_line_bound_ln_serra`") :]
    assert "convolutional" in cell and "res_mlp" in cell, cell


def test_compare_by_schedule_labels_name_only_the_keys_that_tell_arms_apart(tmp_path):
    """`--compare-by schedule` over one-shot, iterative and gradual runs: every arm listed every schedule.*
    key of every schedule, mostly "(absent)" (gradual's steps on the one-shot arm, ...). The arms differ
    in schedule.name, which every arm has, and that alone tells them apart; the two iterative arms
    (rounds 3 and 5) need schedule.rounds too, which the others lack and whose "(absent)" is left out."""
    from test_report_compare_by import _schedule

    root = tmp_path / "res"
    schedules = {
        "it3": {"name": "iterative", "rounds": 3, "restart_from": "pruned", "prune_fraction": 0.2},
        "it5": {"name": "iterative", "rounds": 5, "restart_from": "pruned", "prune_fraction": 0.2},
        "grad": {"name": "gradual", "steps": 10, "frequency": 2, "power": 3},
    }
    for seed, gain in enumerate([0.05, 0.06, 0.04]):
        _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed), {"name": "oneshot"})
        for k, (name, schedule) in enumerate(schedules.items()):
            _schedule(root, write_run(root, seed, "magnitude", 0.9, 10, 0.6 + 0.01 * seed + gain * (k + 1), name=name), schedule)
    by = pd.read_csv(build_report(root, plots=False, compare_by="schedule")["comparisons_by.csv"])
    labels = set(by["method"]) | set(by["baseline"])
    assert labels == {
        "magnitude [schedule.name=oneshot]",
        "magnitude [schedule.name=iterative, schedule.rounds=3]",
        "magnitude [schedule.name=iterative, schedule.rounds=5]",
        "magnitude [schedule.name=gradual]",
    }, labels
    assert len(by) == 6  # each of the 4 arms against each other


def test_hessian_density_figure_draws_every_recorded_phase_in_run_order(tmp_path, monkeypatch):
    """An iterative run records a density after each round (round_<r>) besides dense, pruned and
    finetuned; only those three had panels, so the rounds' densities were never drawn though the docs
    said "per phase". One panel per recorded phase, in the order a run records them (round_2 before
    round_10), each with its run's curve."""
    from prune_cli.report import plots

    phases = ["finetuned", "round_10", "dense", "round_2", "pruned"]  # as a file could list them
    rows = [
        {"run_id": "r", "seed": 0, "method": "magnitude", "target_sparsity": 0.5, "phase": p, "grid": g, "density": 1.0 + i}
        for i, p in enumerate(phases)
        for g in (-1.0, 0.0, 1.0)
    ]
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figures.append(fig), path)[1])
    assert plots.hessian_density(pd.DataFrame(rows), tmp_path) is not None
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{p} (seed 0)" for p in ("dense", "round_2", "round_10", "pruned", "finetuned")], titles
    heights = {ax.get_title().split()[0]: max(max(line.get_ydata()) for line in ax.get_lines()) for ax in fig.axes}
    assert heights == {p: 1.0 + i for i, p in enumerate(phases)}  # each panel its own phase's curve
