"""End to end: `prune-run` with metrics.regions enabled writes regions.csv, metrics.csv rows and PNGs."""

from __future__ import annotations

import pandas as pd
import torch

from prune_cli.analysis.regions.common import prepare
from prune_cli.analysis.regions.exact import count_exact
from prune_cli.models.mlp import MLP

from conftest import FAST, run_cli


def test_plane_metric_end_to_end(tmp_path):
    out = tmp_path / "r"
    run_cli(
        [
            *FAST,
            "model.widths=[6,6]",
            "dataset.input_dim=2",
            "metrics.regions.enabled=true",
            "metrics.regions.method=plane",
            # a box of half-width 1.5 instead of 3 (a random 6-6 net: 14 regions instead of 38): the MILP
            # enumeration below costs a second instead of eight; agreeing with it does not depend on the box
            "metrics.regions.box=[-1.5,1.5]",
            "metrics.regions.rank_models=[binomial,montecarlo]",  # metrics=default has binomial only (issue 13)
        ],
        out,
    )
    run_dir = next((out / "runs").iterdir())
    rows = pd.read_csv(run_dir / "regions.csv")
    assert list(rows.phase) == ["dense", "pruned", "finetuned"]
    assert set(rows.counts) == {"activation_regions"}
    assert set(rows.method) == {"magnitude"} and set(rows.seed) == {0}  # the run's identity, not the counter's
    assert set(rows.regions_method) == {"plane"}  # the counter's own keys are prefixed
    for column in (
        "regions_method",
        "item",
        "regions_seed",
        "indices",
        "count",
        "measure",
        "count_density",
        "bound_ln_serra",
        "bound_ln_expected_binomial",
        "bound_ln_expected_montecarlo",
        "run_id",
    ):
        assert column in rows.columns
    for phase in ("dense", "pruned", "finetuned"):
        assert (run_dir / f"regions_plane0_{phase}.png").stat().st_size > 1000
    # with a 2-D input the plane is the whole input box: the MILP enumeration must agree
    model = MLP(2, [6, 6], 3)
    state = torch.load(run_dir / "model_dense.pt")
    model.load_state_dict(state)
    dense = rows[rows.phase == "dense"].iloc[0]
    assert dense["count"] == count_exact(prepare(model), (2,), (-1.5, 1.5), max_units=64).count
    assert dense["bound_ln_serra"] >= 0 and dense["count"] <= torch.tensor(dense["bound_ln_serra"]).exp()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    summary = metrics[(metrics.metric == "regions_plane_mean") & (metrics.phase == "dense")]
    assert float(summary.value.iloc[0]) == dense["count"]


def test_line_metric_is_deterministic_and_bad_values_are_rejected(tmp_path):
    args = [
        *FAST,
        "dataset.input_dim=2",
        "metrics.regions.enabled=true",
        "metrics.regions.method=line",
        "metrics.regions.segments=3",
        "metrics.regions.segment_kind=direction",
        "train.epochs=1",
        "finetune.epochs=0",
    ]
    tables = []
    for out in (tmp_path / "a", tmp_path / "b"):
        run_cli(args, out)
        tables.append(pd.read_csv(next((out / "runs").iterdir()) / "regions.csv"))
    first, second = tables
    assert list(first["count"]) == list(second["count"]) and len(first) == 9
    assert (first.count_density == first["count"] / first.measure).all()
    assert first.measure.nunique() == 1 and (first.domain == "segment_direction").all()  # one seeded length
    bad = run_cli([*FAST, "metrics.regions.enabled=true", "metrics.regions.method=grid"], tmp_path / "c", check=False)
    assert bad.returncode != 0
    assert "metrics.regions.method" in bad.stderr + bad.stdout and "'grid'" in bad.stderr + bad.stdout
