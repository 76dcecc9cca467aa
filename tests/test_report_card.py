"""The report card (prune_cli/report/card.py) on synthetic result folders whose verdicts are known by
construction: a folder that meets every recommendation of Blalock et al. (MLSys 2020), and folders
that each miss one or more, with what is missing named."""

from __future__ import annotations

import pandas as pd
import yaml

from prune_cli.report import build_report, main

LEVELS = (0.5, 0.75, 0.875, 0.9375, 0.96875)  # 2x, 4x, 8x, 16x, 32x of the prunable weights


def _run(root, dataset, model, score, sparsity, seed, dense=True, speed=True, acc=0.5):
    run_id = f"r-{dataset}-{model}-{score}-s{sparsity:g}-seed{seed}"
    d = root / "runs" / run_id
    d.mkdir(parents=True)
    cfg = {
        "dataset": {"name": dataset},
        "model": {"name": model},
        "method": {"name": score, "score": score},
        "sparsity": sparsity,
        "seed": seed,
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    ctx = dict(
        run_id=run_id,
        name="r",
        seed=seed,
        dataset=dataset,
        model=model,
        method=score,
        score=score,
        allocation="global",
        structure="unstructured",
        schedule="oneshot",
        target_sparsity=sparsity,
    )
    rows = [{**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": acc, "dense_value": 0.9 if dense else None}]
    if dense:
        rows.append({**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": 0.9, "dense_value": 0.9})
    if speed:
        rows += [
            {**ctx, "phase": "finetuned", "split": "model", "metric": m, "value": 1 / (1 - sparsity), "dense_value": 1.0}
            for m in ("compression_ratio", "theoretical_speedup")
        ]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    (d / "COMPLETE").write_text(run_id)


def _complete(root, pairs=(("mnist1d", "mlp"), ("mnist1d", "cnn1d"), ("synthetic", "mlp")), levels=LEVELS, seeds=(0, 1, 2)):
    for dataset, model in pairs:
        for s in levels:
            for score in ("magnitude", "random"):
                for seed in seeds:
                    _run(root, dataset, model, score, s, seed)
    return root


def _card(root):
    return pd.read_csv(build_report(root, plots=False)["report_card.csv"], keep_default_na=False).set_index("recommendation")


def test_complete_folder_meets_everything_and_fewer_pairs_does_not(tmp_path):
    card = _card(_complete(tmp_path / "all"))
    assert card["met"].all() and len(card) == 5 and (card["missing"] == "").all()
    few = _card(_complete(tmp_path / "few", pairs=(("mnist1d", "mlp"), ("synthetic", "mlp"))))
    assert not few.loc["at least 3 dataset-architecture pairs", "met"]
    assert few.loc["at least 3 dataset-architecture pairs", "missing"] == "1 more pair(s)"
    assert few["met"].sum() == 4


def test_operating_points_span_and_count(tmp_path):
    card = _card(_complete(tmp_path / "r", levels=(0.75, 0.875, 0.9, 0.9375)))  # 4x .. 16x, 4 points
    row = card.loc["at least 5 operating points spanning 2x-32x compression"]
    assert not row["met"]
    for pair in ("mnist1d/mlp", "mnist1d/cnn1d", "synthetic/mlp"):
        assert f"{pair}: 1 more point(s), a point at <= 2x, a point at >= 32x" in row["missing"]
    assert "mnist1d/mlp: 4 point(s), 4x-16x" in row["found"]


def test_missing_baselines_speedup_and_seeds_are_named(tmp_path):
    root = _complete(tmp_path / "r", seeds=(0, 1, 2))
    _run(root, "mnist1d", "mlp", "snip", 0.5, 0, dense=False, speed=False)  # one seed, no dense, no speedup
    card = _card(root)
    assert card.loc["baselines present (random, magnitude, dense)", "missing"] == "mnist1d/mlp: dense baseline of 1 run(s)"
    assert card.loc["compression ratio and theoretical speedup reported", "missing"] == (
        "compression_ratio missing in 1 run(s); theoretical_speedup missing in 1 run(s)"
    )
    seeds = card.loc["every experiment repeated with at least 3 seeds"]
    assert not seeds["met"] and seeds["missing"].startswith("1 experiment(s) with fewer seeds:") and seeds["missing"].endswith("(1)")


def test_random_missing_at_one_level_and_card_printed(tmp_path, capsys):
    root = tmp_path / "r"
    for s in LEVELS:
        for seed in range(3):
            _run(root, "mnist1d", "mlp", "magnitude", s, seed)
            if s != 0.96875:
                _run(root, "mnist1d", "mlp", "random", s, seed)
    main([str(root), "--no-plots"])  # one report: the card file it writes and the card it prints
    printed = capsys.readouterr().out
    card = pd.read_csv(root / "report" / "report_card.csv", keep_default_na=False).set_index("recommendation")
    assert card.loc["baselines present (random, magnitude, dense)", "missing"] == "mnist1d/mlp: random at 0.96875"
    assert "Report card (Blalock et al., MLSys 2020): 3 of 5 recommendations met" in printed
    assert "[ ] baselines present (random, magnitude, dense): missing mnist1d/mlp: random at 0.96875" in printed


def test_a_baseline_without_an_accuracy_is_not_present(tmp_path):
    """Every random run at 2x has a NaN accuracy (diverged, or its metric not recorded): the card said
    the baselines were present, though there is nothing to compare against."""
    root = tmp_path / "r"
    for dataset, model in (("mnist1d", "mlp"), ("mnist1d", "cnn1d"), ("synthetic", "mlp")):
        for s in LEVELS:
            for seed in range(3):
                _run(root, dataset, model, "magnitude", s, seed)
                lost = (dataset, model, s) == ("mnist1d", "mlp", 0.5)
                _run(root, dataset, model, "random", s, seed, acc=float("nan") if lost else 0.5)
    row = _card(root).loc["baselines present (random, magnitude, dense)"]
    assert not row["met"] and row["missing"] == "mnist1d/mlp: random at 0.5"


def test_seeds_are_counted_only_where_the_run_has_a_finite_value(tmp_path):
    """random at 0.5 completed on 3 seeds with accuracy NaN everywhere, and at 0.4 on 4 seeds, one of
    them NaN. The card counted runs (3 and 4 seeds, so the all-NaN experiment was not among those with
    fewer seeds) and the standards said "random/oneshot at 0.5: 3 seed(s)"; the seeds with a value are
    0 and 3 (counted here by hand), as the summary's n says."""
    import math

    from test_report_experiments import write_run

    root = tmp_path / "res"
    for seed in range(4):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8)
        write_run(root, seed, "magnitude", 0.4, 10, 0.85)
        write_run(root, seed, "random", 0.5, 10, math.nan)
        write_run(root, seed, "random", 0.4, 10, math.nan if seed == 2 else 0.7)
    written = build_report(root, plots=False)
    lines = sorted(line.strip() for line in written["standards.txt"].read_text().splitlines() if "seed(s)" in line)
    assert lines == [
        "magnitude/oneshot at 0.4: 4 seed(s)",
        "magnitude/oneshot at 0.5: 4 seed(s)",
        "random/oneshot at 0.4: 3 seed(s) with a value (of 4 completed)",
        "random/oneshot at 0.5: 0 seed(s) with a value (of 4 completed)  [fewer than 3 seeds]",
    ]
    card = pd.read_csv(written["report_card.csv"]).set_index("recommendation")
    seeds = card.loc["every experiment repeated with at least 3 seeds"]
    assert not seeds["met"]
    assert seeds["found"] == "4 experiment(s), seeds with a value per experiment 0-4"
    assert seeds["missing"].startswith("1 experiment(s) with fewer seeds: ") and seeds["missing"].endswith(" (0)")
