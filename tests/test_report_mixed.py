"""Runs that a report key cannot tell apart are never averaged as repeated seeds: with only the shared
CSVs, random trained for 2 and for 6 epochs has one comparison key and one condition (the columns do
not record train.epochs), and each seed has two runs with different config_hash. The planted values
make any average visible: magnitude m_s, random at 2 epochs m_s - 0.20, at 6 epochs m_s + 0.20."""

from __future__ import annotations

import html
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prune_cli.core.tables import shared_name
from prune_cli.report import build_report
from prune_cli.report.scaling import fit_scaling_law, pruned_error
from test_report_experiments import write_run

MAG = [0.70, 0.71, 0.72]


def _runs() -> list[tuple]:
    """(seed, method, sparsity, epochs, accuracy, dense accuracy) of the folder the tests share."""
    runs = []
    for seed, m in enumerate(MAG):
        runs += [(seed, "magnitude", 0.5, 2, m, 0.9), (seed, "random", 0.5, 2, m - 0.20, 0.9)]
        runs += [(seed, "random", 0.5, 6, m + 0.20, 0.99)]
    return runs


def _shared_only(tmp_path, copy_magnitude=False, per_class=False, runs=None, regions=False):
    """`per_class`: also the shared per_class.csv, class 0 at recall accuracy - 0.10 (dense: dense - 0.02)
    and class 1 at accuracy + 0.10 (dense + 0.02), so the worst class is 0 and rho is not zero.
    `runs`: as `_runs` gives them (the default). `regions`: also the shared regions.csv, one finetuned row
    per run with lr_count = 1000 * accuracy and ub_ln_serra = 10 * accuracy."""
    root = tmp_path / "res"
    for seed, method, sparsity, epochs, acc, dense_acc in _runs() if runs is None else runs:
        write_run(root, seed, method, sparsity, epochs, acc, dense_acc=dense_acc)
    if regions:
        for d in sorted((root / "runs").iterdir()):
            m = pd.read_csv(d / "metrics.csv")
            final = m[(m["phase"] == "finetuned") & (m["metric"] == "accuracy")].drop(columns=["split", "metric", "dense_value"])
            final = final.assign(lr_count=1000 * final["value"], ub_ln_serra=10 * final["value"]).drop(columns="value")
            final.to_csv(d / "regions.csv", index=False)
    tables = ["metrics.csv"] + (["per_class.csv"] if per_class else []) + (["regions.csv"] if regions else [])
    for table in tables:
        rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob(f"*/{table}")))
        rows["config_hash"] = [f"h{abs(hash(r)) % 10**8:08d}" for r in rows["run_id"]]  # one hash per run, as prune-run writes
        if table == "per_class.csv":
            sign = rows["class"].map({0: -1.0, 1: 1.0})
            rows["recall"] += 0.10 * sign
            rows["dense_recall"] += 0.02 * sign
        if copy_magnitude:  # the same magnitude runs appended twice (shared CSVs rebuilt on top of themselves)
            rows = pd.concat([rows, rows[rows["method"] == "magnitude"]])
        rows.to_csv(root / shared_name(table), index=False)
    shutil.rmtree(root / "runs")
    return root


def test_a_key_that_mixes_configurations_is_not_compared_and_says_so(tmp_path):
    """Before: random's two runs per seed were averaged as a repeated run (m_s exactly), so the report
    said "random vs magnitude at sparsity 0.5: identical on all 3 seeds", while the epoch-matched runs
    are 20 points below magnitude on every seed and the 6-epoch ones 20 above. The magnitude runs
    copied twice (identical config_hash) are one run each: averaging a copy with itself is harmless."""
    written = build_report(_shared_only(tmp_path, copy_magnitude=True), plots=False)
    c = pd.read_csv(written["comparisons.csv"])
    assert len(c) == 1
    row = c.iloc[0]
    assert math.isnan(row["p_t"]) and math.isnan(row["p_holm"]) and math.isnan(row["mean_diff"]) and row["n"] == 0
    expected = (
        "random vs magnitude at sparsity 0.5: not compared, random's 6 runs mix 2 configurations (distinct config_hash; "
        "seeds 0, 1, 2 each have runs of several) that the comparison key does not tell apart"
    )
    assert row["verdict"].startswith(expected), row["verdict"]
    assert "keep the run directories" in row["verdict"]
    md = written["summary.md"].read_text()
    assert f"- {row['verdict']}" in md
    s = pd.read_csv(written["summary.csv"])
    final = s[(s["phase"] == "finetuned") & (s["split"] == "test") & (s["metric"] == "accuracy")].set_index("method")
    assert final.loc["magnitude", "mean"] == pytest.approx(sum(MAG) / 3) and final.loc["magnitude", "n_seeds"] == 3
    assert isinstance(final.loc["magnitude", "mixed"], float)  # empty: not mixed
    assert math.isnan(final.loc["random", "mean"]) and math.isnan(final.loc["random", "dense_mean"])
    assert final.loc["random", "mixed"].startswith("6 runs of 2 configurations (distinct config_hash")
    accuracy = md.split("## Accuracy")[1].split("\n## ")[0]
    (line,) = [x for x in accuracy.splitlines() if "| random |" in x]
    # a table cell is text: its backticks are escaped (summary.py markdown_cell), report.html shows them as written
    assert "not averaged: 6 runs of 2 configurations" in line and "give the variants different \\`name\\`s" in line


def test_different_names_separate_the_variants_in_the_summary(tmp_path):
    """The summary's condition includes the run name: the same folder with the 6-epoch runs named
    `long` gives each its own row and mean (no mixing, so no note)."""
    root = tmp_path / "res"
    for seed, m in enumerate(MAG):
        write_run(root, seed, "random", 0.5, 2, m - 0.20)
        write_run(root, seed, "random", 0.5, 6, m + 0.20, name="long")
    rows = pd.concat(pd.read_csv(f) for f in sorted((root / "runs").glob("*/metrics.csv")))
    rows["config_hash"] = rows["run_id"]
    rows.to_csv(root / shared_name("metrics.csv"), index=False)
    shutil.rmtree(root / "runs")
    s = pd.read_csv(build_report(root, plots=False)["summary.csv"])
    final = s[(s["phase"] == "finetuned") & (s["metric"] == "accuracy")].set_index("name")
    assert final.loc["run", "mean"] == pytest.approx(sum(MAG) / 3 - 0.20)
    assert final.loc["long", "mean"] == pytest.approx(sum(MAG) / 3 + 0.20)
    assert final["mixed"].isna().all()


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def test_per_class_tables_leave_out_a_condition_that_mixes_configurations(tmp_path):
    """Before: random's two runs per seed (2 epochs, dense 0.90; 6 epochs, dense 0.99) were averaged as a
    repeated run in worst_class.csv, intensification.csv and per_class_summary.csv (a recall change of
    m_s - 0.945 on class 0 of no experiment). Now that condition is left out of the three tables, and the
    Recall distortion and Disparate impact sections say why; magnitude (its runs copied twice: one
    configuration) keeps its rows, checked against the planted values computed here by hand."""
    written = build_report(_shared_only(tmp_path, copy_magnitude=True, per_class=True), plots=False)
    worst = pd.read_csv(written["worst_class.csv"])
    intens = pd.read_csv(written["intensification.csv"])
    classes = pd.read_csv(written["per_class_summary.csv"])
    for table in (worst, intens, classes):
        assert set(table["method"]) == {"magnitude"}, table[["method"]].drop_duplicates()

    # by hand: per seed, class c's recall is m_s -/+ 0.10 at accuracy m_s, its dense recall 0.90 -/+ 0.02
    hand = pd.DataFrame(
        [
            {"seed": s, "class": c, "recall": m + 0.10 * sign, "accuracy": m}
            | {"dense_recall": 0.90 + 0.02 * sign, "dense_accuracy": 0.90}
            for s, m in enumerate(MAG)
            for c, sign in ((0, -1.0), (1, 1.0))
        ]
    )
    hand["delta_recall"] = hand["recall"] - hand["dense_recall"]
    hand["rho"] = (hand["recall"] - hand["accuracy"]) / hand["accuracy"]
    hand["rho0"] = (hand["dense_recall"] - hand["dense_accuracy"]) / hand["dense_accuracy"]
    t = stats.t.ppf(0.975, 2)

    def interval(values: pd.Series) -> tuple[float, float, float]:
        half = t * values.std(ddof=1) / math.sqrt(len(values))
        return values.mean(), values.mean() - half, values.mean() + half

    (row,) = worst.to_dict(orient="records")
    class0 = hand[hand["class"] == 0].set_index("seed")["delta_recall"]
    assert row["worst_class"] == 0 and row["n_seeds"] == 3 and row["phase"] == "finetuned"
    assert (row["worst_class_change"], row["worst_class_ci_low"], row["worst_class_ci_high"]) == pytest.approx(interval(class0))
    per_model = hand.groupby("seed")["delta_recall"].min()
    assert (row["per_model_worst_change"], row["per_model_worst_ci_low"], row["per_model_worst_ci_high"]) == pytest.approx(
        interval(per_model)
    )

    by_seed = hand.groupby("seed")
    alpha = by_seed.apply(lambda g: (g["rho0"] * g["rho"]).sum() / (g["rho0"] ** 2).sum())
    i_t = by_seed.apply(lambda g: (np.sign(g["rho0"]) * (g["rho"] - g["rho0"])).mean())
    got = intens.set_index("statistic")
    assert got.loc["alpha_t_ours", "n_seeds"] == 3
    assert got.loc["alpha_t_ours", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(alpha))
    assert got.loc["I_t", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(i_t))

    got = classes[classes["quantity"] == "delta_recall"].set_index("class")
    for c in (0, 1):
        mine = hand[hand["class"] == c].set_index("seed")["delta_recall"]
        assert got.loc[c, "n_seeds"] == 3
        assert got.loc[c, ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(interval(mine))

    note = (
        "toy/mlp random at sparsity 0.5: left out of intensification.csv, per_class_summary.csv and worst_class.csv, "
        "its 6 runs of 2 configurations (distinct config_hash; seeds 0, 1, 2 each have runs of several) that the "
        "condition does not tell apart are not averaged as repeated runs; keep the run directories"
    )
    md = written["summary.md"].read_text()
    for title in ("Recall distortion", "Disparate impact"):
        section = _section(md, title)
        (line,) = [x for x in section.splitlines() if "random" in x]
        assert line.startswith(f"- {note}") and line.endswith("or give the variants different `name`s"), line
    page = written["report.html"].read_text()
    assert page.count(html.escape(note.split(" (distinct")[0])) == 2


# Planted scaling laws (Eq. 1 of Rosenfeld et al.): the same error on every seed, so that the seed means
# are the planted values and the fit recovers the parameters.
SPARSITIES = (0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
LAWS = {"magnitude": {"eps_up": 0.9, "gamma": 2.0, "p": 0.05}, "random": {"eps_up": 0.9, "gamma": 1.5, "p": 0.15}}


def test_scaling_fit_leaves_out_points_that_mix_configurations(tmp_path):
    """random trained 2 epochs (dense error 0.10) at 7 sparsities, and 6 epochs (dense error 0.01, error
    0.05 lower) at 0.5 and 0.9: one family with only the shared CSVs (its key holds no train.epochs).
    Before: the fit averaged each seed's two runs at densities 0.5 and 0.1 as repeated runs, and their dense
    errors into eps_np (7 points, 21 + 6 runs). Now those two points are left out, with a line in the scaling
    section; the other 5 are the 2-epoch law, whose parameters the fit recovers. magnitude (its runs copied
    twice: one configuration) is fitted on all 7 points."""
    runs = []
    for seed in range(3):
        for s in SPARSITIES:
            for method, law in LAWS.items():
                runs.append((seed, method, s, 2, 1 - float(pruned_error(1 - s, 0.10, **law)), 0.90))
            if s in (0.5, 0.9):
                runs.append((seed, "random", s, 6, 1 - float(pruned_error(1 - s, 0.10, **LAWS["random"])) + 0.05, 0.99))
    written = build_report(_shared_only(tmp_path, copy_magnitude=True, runs=runs), plots=False)
    fit = pd.read_csv(written["scaling_fit.csv"]).set_index("method")

    # by hand: one row per run; a (method, density) point is averaged only where every seed has one epochs setting
    hand = pd.DataFrame(runs, columns=["seed", "method", "sparsity", "epochs", "acc", "dense_acc"])
    hand["density"] = (1 - hand["sparsity"]).round(12)
    configs = hand.groupby(["method", "density", "seed"])["epochs"].nunique().groupby(["method", "density"]).max()
    kept = hand.join(configs.rename("configs"), on=["method", "density"]).query("configs == 1")
    for method, law in LAWS.items():
        mine = kept[kept["method"] == method]
        points = mine.groupby("density").agg(error=("acc", lambda a: (1 - a).mean())).reset_index()
        points["eps_np"] = (1 - mine.groupby("seed")["dense_acc"].mean()).mean()
        row = fit.loc[method]
        assert row["status"] == "fitted", row["reason"]
        assert (row["n_points"], row["n_runs"], row["n_seeds"], row["n_densities"]) == (len(points), len(mine), 3, len(points))
        assert row["mean_abs_rel_error"] == pytest.approx(0.0, abs=1e-6)
        expected = fit_scaling_law(points)
        for name, value in law.items():
            assert row[name] == pytest.approx(value, rel=1e-4), name
            assert row[name] == pytest.approx(expected.params[name], rel=1e-6), name
    assert (fit.loc["random", "n_points"], fit.loc["random", "n_runs"]) == (5, 15)
    assert isinstance(fit.loc["magnitude", "left_out"], float)  # empty: nothing mixed
    note = (
        "density 0.1: its 6 runs of 2 configurations (distinct config_hash; seeds 0, 1, 2 each have runs of several); "
        "density 0.5: its 6 runs of 2 configurations (distinct config_hash; seeds 0, 1, 2 each have runs of several)"
    )
    assert fit.loc["random", "left_out"] == note
    section = _section(written["summary.md"].read_text(), "Pruning scaling law")
    (line,) = [x for x in section.splitlines() if "left out" in x]
    assert line.startswith("  - random / toy / mlp / oneshot: left out of the fit, not averaged as repeated runs (the family does not")
    assert note in line and "keep the run directories (each run's config.yaml tells the configurations apart)" in line
    assert line.endswith("[32,32] and [48,16] are one scale)")  # the other way two configurations meet (audit of 2026-12-03)


def test_scaling_fit_of_a_family_whose_every_point_mixes_configurations(tmp_path):
    """The shared folder of the tests above (random at 2 and 6 epochs, sparsity 0.5 only): before, random's
    row counted 6 runs of 3 seed(s); now it has no point, no run and no seed, and says why."""
    written = build_report(_shared_only(tmp_path), plots=False)
    fit = pd.read_csv(written["scaling_fit.csv"]).set_index("method")
    row = fit.loc["random"]
    assert (row["status"], row["n_points"], row["n_runs"], row["n_seeds"], row["n_densities"]) == ("skipped", 0, 0, 0, 0)
    assert row["left_out"].startswith("density 0.5: its 6 runs of 2 configurations")
    assert fit.loc["magnitude", "n_runs"] == 3 and fit.loc["magnitude", "n_seeds"] == 3
    section = _section(written["summary.md"].read_text(), "Pruning scaling law")
    assert "0 densities, 0 seed(s)" in section and "3 seed(s)" in section


def test_regions_figure_leaves_out_points_that_mix_configurations(tmp_path):
    """random trained 2 epochs at sparsities 0.5 and 0.9, and 6 epochs at 0.5 only (shared CSVs: one curve).
    Before: the regions figure averaged each seed's two random runs at 0.5 as a repeated run (ln of
    1000 * m_s - 200 and of 1000 * m_s + 200). Now that point is left out and summary.md's Plots section
    says why; random at 0.9 and magnitude (copied twice: one configuration) keep theirs, checked against
    the planted values computed here."""
    runs = []
    for seed, m in enumerate(MAG):
        for s in (0.5, 0.9):
            runs += [(seed, "magnitude", s, 2, m - s / 10, 0.9), (seed, "random", s, 2, m - 0.20 - s / 10, 0.9)]
        runs.append((seed, "random", 0.5, 6, m + 0.20, 0.99))
    root = _shared_only(tmp_path, copy_magnitude=True, runs=runs, regions=True)
    from prune_cli.report.load import load_results
    from prune_cli.report.regions import regions_table

    drawn = regions_table(load_results(root).table("regions.csv"))
    got = drawn.table.set_index(["curve", "series", "target_sparsity"]).sort_index()

    hand = pd.DataFrame(runs, columns=["seed", "method", "sparsity", "epochs", "acc", "dense_acc"])
    configs = hand.groupby(["method", "sparsity", "seed"])["epochs"].nunique().groupby(["method", "sparsity"]).max()
    kept = hand.join(configs.rename("configs"), on=["method", "sparsity"]).query("configs == 1")
    rows = []
    for series, value in (("ln lr_count", lambda a: np.log(1000 * a)), ("ub_ln_serra", lambda a: 10 * a)):
        per_seed = kept.assign(v=value(kept["acc"])).groupby(["method", "sparsity", "seed"])["v"].mean()
        stat = per_seed.groupby(["method", "sparsity"]).agg(["count", "mean", lambda x: x.std(ddof=1)])
        for (method, sparsity), (n, mean, sd) in stat.iterrows():
            rows.append({"curve": method, "series": series, "target_sparsity": sparsity, "n": n, "mean": mean, "sd": sd})
    mine = pd.DataFrame(rows).set_index(["curve", "series", "target_sparsity"]).sort_index()
    assert got.index.tolist() == mine.index.tolist()
    assert ("random", "ln lr_count", 0.5) not in got.index
    for col in ("n", "mean", "sd"):
        assert got[col].to_numpy(float) == pytest.approx(mine[col].to_numpy(float), rel=1e-9), col
    note = (
        "regions_vs_sparsity.png: random at sparsity 0.5 left out, its 6 runs of 2 configurations (distinct config_hash; "
        "seeds 0, 1, 2 each have runs of several) that the curve does not tell apart are not averaged as repeated runs; "
        "keep the run directories (each run's config.yaml tells the configurations apart) or give the variants different `name`s"
    )
    assert drawn.notes == [note]

    written = build_report(root, parallel=False)
    assert "regions_vs_sparsity.png" in written
    plots = _section(written["summary.md"].read_text(), "Plots")
    assert f"- {note}" in plots.splitlines()
    assert html.escape(note.split(" (distinct")[0]) in written["report.html"].read_text()


def test_scaling_fit_does_not_average_the_dense_errors_of_several_dense_models(tmp_path):
    """magnitude trained 2 epochs (dense 0.80 / 0.82 on seeds 0 / 1) at densities 0.5, 0.25, 0.125 and 6
    epochs (dense 0.90 / 0.92) at 0.0625 and 0.03125: with only the shared CSVs one family, and no point
    mixes configurations (each density has one run per seed). Before: eps_np was the mean of each seed's
    two dense errors (0.15 = (0.2 + 0.1 + 0.18 + 0.08) / 4 over seeds), the dense error of no model, and
    the family was fitted with no note. Now the family's runs are left out, named in `left_out` and under
    the family in summary.md. random (one dense model per seed, dense 0.90 / 0.92 at all five densities)
    is fitted with eps_np = the seed mean of its dense errors, 0.09, computed here by hand."""
    law = LAWS["random"]
    runs = []
    for seed, bump in enumerate((0.0, 0.02)):
        for s in (0.5, 0.75, 0.875, 0.9375, 0.96875):
            long = s > 0.9
            dense = (0.90 if long else 0.80) + bump
            runs.append((seed, "magnitude", s, 6 if long else 2, 1 - float(pruned_error(1 - s, 1 - dense, **law)), dense))
            runs.append((seed, "random", s, 2, 1 - float(pruned_error(1 - s, 0.10 - bump, **law)), 0.90 + bump))
    root = _shared_only(tmp_path, runs=runs)
    from prune_cli.report.load import load_results
    from prune_cli.report.scaling import fit_families, scaling_points

    table, fitted = fit_families(scaling_points(load_results(root).table("metrics.csv"), {}, "test"))
    table = table.set_index("method")
    hand = pd.DataFrame(runs, columns=["seed", "method", "sparsity", "epochs", "acc", "dense_acc"])
    dense_models = hand.groupby(["method", "seed"])["dense_acc"].nunique()
    assert dense_models["magnitude"].tolist() == [2, 2] and dense_models["random"].tolist() == [1, 1]
    row = table.loc["magnitude"]
    assert (row["status"], row["n_points"], row["n_runs"], row["n_seeds"]) == ("skipped", 0, 0, 0)
    assert row["family"] not in set(fitted["family"])
    note = (
        "the dense errors of every density: its 10 runs come from several dense models (distinct dense values; "
        "seeds 0, 1 each have runs of 2), whose errors are not averaged into one eps_np"
    )
    assert row["left_out"] == note
    random = hand[hand["method"] == "random"]
    eps_np = (1 - random.groupby("seed")["dense_acc"].first()).mean()
    assert eps_np == pytest.approx(0.09)
    assert table.loc["random", "status"] == "fitted" and table.loc["random", "n_runs"] == 10
    assert fitted[fitted["family"] == table.loc["random", "family"]]["eps_np"].to_numpy() == pytest.approx([eps_np] * 5)

    section = _section(build_report(root, plots=False)["summary.md"].read_text(), "Pruning scaling law")
    (line,) = [x for x in section.splitlines() if "left out" in x]
    assert line.startswith("  - magnitude / toy / mlp / oneshot: left out of the fit") and note in line


def _two_dense_models(tmp_path):
    """magnitude trained 2 epochs at sparsities 0.5, 0.75, 0.875 (dense 0.80 / 0.82 on seeds 0 / 1) and 6
    epochs at 0.9375, 0.96875 (dense 0.90 / 0.92), only the shared CSVs: one curve, two dense models."""
    runs = []
    for seed, bump in enumerate((0.0, 0.02)):
        for s in (0.5, 0.75, 0.875, 0.9375, 0.96875):
            long = s > 0.9
            runs.append((seed, "magnitude", s, 6 if long else 2, 0.6 - s / 10 + bump, (0.90 if long else 0.80) + bump))
    return _shared_only(tmp_path, runs=runs), pd.DataFrame(runs, columns=["seed", "method", "sparsity", "epochs", "acc", "dense_acc"])


def test_dense_lines_of_a_shared_csv_folder_are_one_per_dense_model(tmp_path, monkeypatch):
    """Before: accuracy_vs_compression.png drew one dashed "dense" line at 0.86, the mean of the 2-epoch and
    6-epoch dense models (0.81 and 0.91), the dense accuracy of neither. Now, with only the shared CSVs (no
    config keys to tell the dense configurations apart), conditions whose dense values differ get a line
    each, labelled by the sparsities it belongs to; the values are the seed means computed here."""
    from matplotlib.axes import Axes

    root, hand = _two_dense_models(tmp_path)
    lines = []
    axhline = Axes.axhline
    monkeypatch.setattr(Axes, "axhline", lambda ax, y, *a, **k: (lines.append((k.get("label"), y)), axhline(ax, y, *a, **k))[1])
    build_report(root, parallel=False)
    dense = hand.groupby("epochs").apply(lambda g: g.groupby("seed")["dense_acc"].first().mean())
    assert dense.to_dict() == pytest.approx({2: 0.81, 6: 0.91})
    assert sorted(lines) == [
        ("dense (sparsity 0.5, 0.75, 0.875)", pytest.approx(dense[2])),
        ("dense (sparsity 0.9375, 0.96875)", pytest.approx(dense[6])),
    ]


@pytest.mark.parametrize("shared", [True, False])
def test_a_dense_line_is_the_seed_mean_when_a_condition_misses_a_seed(tmp_path, monkeypatch, shared):
    """magnitude at 0.5 on seeds 0, 1, 2 (dense 0.90, 0.93, 0.97) and at 0.9 on seeds 0 and 2 only: one
    dense model, whose line is the mean over the three seeds. Before, the line was the mean of the two
    conditions' dense means (0.934167, not 0.933333) with the runs' configs, and with only the shared CSVs
    the two means (0.933333, 0.935) differed and drew two "dense" lines for one dense model."""
    from matplotlib.axes import Axes

    dense = {0: 0.90, 1: 0.93, 2: 0.97}
    runs = [(seed, "magnitude", 0.5, 2, d - 0.1, d) for seed, d in dense.items()]
    runs += [(seed, "magnitude", 0.9, 2, d - 0.3, d) for seed, d in dense.items() if seed != 1]
    if shared:
        root = _shared_only(tmp_path, runs=runs)
    else:
        root = tmp_path / "res"
        for seed, method, sparsity, epochs, acc, dense_acc in runs:
            write_run(root, seed, method, sparsity, epochs, acc, dense_acc=dense_acc)
    lines = []
    axhline = Axes.axhline
    monkeypatch.setattr(Axes, "axhline", lambda ax, y, *a, **k: (lines.append((k.get("label"), y)), axhline(ax, y, *a, **k))[1])
    build_report(root, parallel=False)
    drawn = [line for line in lines if line[0] is not None]  # unlabelled: another figure's zero line
    assert drawn == [("dense", pytest.approx(sum(dense.values()) / 3, abs=1e-12))]


def _drawn_curves(monkeypatch) -> list[tuple]:
    """(label, y rounded to 9 digits) of every curve the figures draw (plots._curve)."""
    from prune_cli.report import plots as plotting

    seen, real = [], plotting._curve

    def record(ax, x, y, **k):
        seen.append((k.get("label"), [round(float(v), 9) for v in y]))
        return real(ax, x, y, **k)

    monkeypatch.setattr(plotting, "_curve", record)
    return seen


def test_shared_csv_curves_that_differ_only_in_structure_or_score_are_told_apart(tmp_path, monkeypatch):
    """Only the shared CSVs: magnitude unstructured, magnitude channel and magnitude with score snip at
    0.5 and 0.9. Before, the figure's curve keys were method, allocation, schedule and name, so all three
    were drawn as one curve "magnitude" with three points at each sparsity; now each is a curve of its
    own, named by what tells it apart, its means those computed here."""
    runs = [(seed, "magnitude", s, 2, 0.8 - s / 10 + seed / 100, 0.9) for seed in range(3) for s in (0.5, 0.9)]
    root = _shared_only(tmp_path, runs=runs)
    shared = root / shared_name("metrics.csv")
    rows = pd.read_csv(shared)
    variants = [rows]
    for column, value, drop in (("structure", "channel", 0.2), ("score", "snip", 0.1)):
        other = rows.assign(run_id=rows["run_id"] + "-" + value, config_hash=rows["config_hash"] + value, **{column: value})
        variants.append(other.assign(value=other["value"] - drop * (other["phase"] != "dense")))
    pd.concat(variants).to_csv(shared, index=False)
    seen = _drawn_curves(monkeypatch)
    build_report(root, parallel=False)
    mean = {s: 0.8 - s / 10 + 0.01 for s in (0.5, 0.9)}
    expected = {
        "magnitude/magnitude/unstructured": [round(mean[s], 9) for s in (0.5, 0.9)],
        "magnitude/magnitude/channel": [round(mean[s] - 0.2, 9) for s in (0.5, 0.9)],
        "magnitude/snip/unstructured": [round(mean[s] - 0.1, 9) for s in (0.5, 0.9)],
    }
    assert dict(seen) == expected, seen


def test_shared_csv_recall_series_of_two_models_are_told_apart(tmp_path, monkeypatch):
    """Only the shared CSVs: magnitude at 0.5 on an mlp and on a lenet5 (recall 0.15 lower), seeds 0-2.
    Before, the recall figure's series keys held no model, so its "one point per class" series held each
    class twice, one point per model; now one series per model, its points the changes computed here."""
    runs = [(seed, "magnitude", 0.5, 2, 0.7 + seed / 100, 0.9) for seed in range(3)]
    root = _shared_only(tmp_path, runs=runs, per_class=True)
    for table, column in (("metrics.csv", "value"), ("per_class.csv", "recall")):
        rows = pd.read_csv(root / shared_name(table))
        other = rows.assign(run_id=rows["run_id"] + "-lenet5", config_hash=rows["config_hash"] + "l", model="lenet5")
        if "phase" in other.columns:
            other[column] = other[column] - 0.15 * (other["phase"] != "dense")
        pd.concat([rows, other]).to_csv(root / shared_name(table), index=False)
    seen = _drawn_curves(monkeypatch)
    build_report(root, parallel=False)
    mean = 0.71 - 0.9  # class 0: - 0.10 + 0.02, class 1: + 0.10 - 0.02 (`_shared_only`)
    expected = {
        "sparsity 0.5 mlp": sorted(round(mean + d, 9) for d in (-0.08, 0.08)),
        "sparsity 0.5 lenet5": sorted(round(mean - 0.15 + d, 9) for d in (-0.08, 0.08)),
    }
    got = {label: sorted(y) for label, y in seen if label and label.startswith("sparsity")}
    assert got == expected, seen


def test_an_accuracy_figure_with_no_averaged_condition_is_not_drawn_and_says_why(tmp_path):
    """Only random, at 2 and 6 epochs for every seed (shared CSVs): every condition is not averaged.
    Before: accuracy_vs_compression.png was drawn with a legend and no data, and the Plots section said
    nothing about it."""
    runs = [r for r in _runs() if r[1] == "random"]
    written = build_report(_shared_only(tmp_path, runs=runs), plots=True, parallel=False)
    assert "accuracy_vs_compression.png" not in written
    md = written["summary.md"].read_text()
    assert "accuracy_vs_compression.png is not drawn: every condition's runs mix configurations" in md, md
