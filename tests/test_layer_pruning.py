"""Layer pruning during training (schedule=layer_pruning, model=res_mlp; docs/training_time.md):
a removed section is the identity (against a hand-built network without it), the gate gradient is
dL/dz (against finite differences), the projected theta step and the cost-weighted penalty (against
their formulas), the removal criterion on a hand-set theta trajectory, the pre-run check, and the
CLI end to end (removed sections' weights zero, FLOPs = dense minus their multiply-accumulates)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from conftest import FAST, run_cli
from prune_cli.core.errors import ConfigError
from prune_cli.models.masks import apply_masks
from prune_cli.models.res_mlp import ResMLP
from prune_cli.pruning import PruneContext
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.layer_pruning import LayerPruningHook, theta_step
from tests.helpers import assert_same_run, validated
from tests.reference_runs import ReferenceRuns
from tests.reference_runs import crash_and_resume as resume_after_crash


DATA = [a for a in FAST if not a.startswith("model")]  # FAST without the mlp's keys
OPTIONS = dict(name="layer_pruning", theta_init=1.0, theta_lr=0.1, penalty=0.5, threshold=0.05, prune_epochs=2)


def tiny(seed: int = 0) -> ResMLP:
    torch.manual_seed(seed)
    return ResMLP(in_features=5, width=4, blocks=3, num_classes=3)


def hook_for(model, start: bool = True, **options) -> LayerPruningHook:
    cfg = OmegaConf.create({"seed": 0, "schedule": {**OPTIONS, **options}})
    prunable = tuple(n for n, _ in model.named_parameters() if n.endswith("weight"))
    ctx = HookContext(cfg, PruneContext(method=None, generator=torch.Generator()), prunable, 1.0, model=model)
    hook = LayerPruningHook(ctx)
    if start:
        hook.start(model)
    return hook


def by_hand_without(model: ResMLP, x: torch.Tensor, skipped: int) -> torch.Tensor:
    """The network written out with plain tensor ops, section `skipped` left out."""
    p = {n: t.detach().clone() for n, t in model.named_parameters()}
    h = torch.relu(x @ p["stem.weight"].T + p["stem.bias"])
    for i in range(3):
        if i == skipped:
            continue
        inner = torch.relu(h @ p[f"sections.{i}.0.weight"].T + p[f"sections.{i}.0.bias"])
        h = h + inner @ p[f"sections.{i}.2.weight"].T + p[f"sections.{i}.2.bias"]
    return h @ p["classifier_layer.weight"].T + p["classifier_layer.bias"]


def test_a_removed_section_makes_the_network_the_one_without_it():
    model = tiny()
    x = torch.randn(7, 5)
    expected = by_hand_without(model, x, skipped=1)
    hook = hook_for(model)
    hook.theta = torch.tensor([0.9, 0.01, 0.9])
    masks = hook.after_step(model, 3)  # inside the window: theta_1 <= threshold
    apply_masks(model, masks)
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert not masks["sections.1.0.weight"].any() and not masks["sections.1.2.weight"].any()
    assert all(masks[n].all() for n in masks if not n.startswith("sections.1."))
    assert float(model.gates[1]) == 0.0 and torch.all(model.sections[1][0].weight == 0)


def test_the_network_without_a_section_has_fewer_modules_and_the_same_outputs():
    model = tiny(3)
    x = torch.randn(7, 5)
    compact = model.without_sections({1})
    assert torch.allclose(compact(x), by_hand_without(model, x, skipped=1), atol=1e-6)
    linears = [m for m in compact.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 + 2 * 2 + 1 and compact.gates.tolist() == [1.0, 1.0]


def test_gate_gradient_is_the_derivative_of_the_loss_by_the_section_scale():
    model = tiny(1)
    hook = hook_for(model, theta_init=1.0)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    F.cross_entropy(hook.forward(model, x), y).backward()
    eps = 1e-3
    for i in range(3):
        losses = []
        for sign in (1, -1):
            with torch.no_grad():
                model.gates.fill_(1.0)
                model.gates[i] += sign * eps
                losses.append(float(F.cross_entropy(model(x), y)))
        assert float(hook.z.grad[i]) == pytest.approx((losses[0] - losses[1]) / (2 * eps), rel=1e-2, abs=1e-5)


def test_projected_theta_step_and_cost_weighted_penalty():
    theta = torch.tensor([0.5, 0.02, 0.99])
    grad = torch.tensor([1.0, 0.5, -2.0])
    pen = torch.tensor([0.1, 0.1, 0.1])
    assert torch.allclose(theta_step(theta, grad, pen, 0.1), torch.tensor([0.39, 0.0, 1.0]))  # clipped to [0, 1]
    model = tiny()
    hook = hook_for(model, penalty=0.5)
    total = 4 * 5 + 3 * 2 * 4 * 4 + 3 * 4  # every Linear weight
    assert torch.allclose(hook.penalty, torch.full((3,), 0.5 * 32 / total))


def test_removal_criterion_on_a_hand_set_theta_trajectory():
    model = tiny()
    hook = hook_for(model, threshold=0.05, prune_epochs=2)
    trajectory = [[0.9, 0.5, 0.3], [0.8, 0.06, 0.2], [0.7, 0.05, 0.1], [0.6, 0.0, 0.06]]  # epoch 1
    removed_at = {}
    for step, theta in enumerate(trajectory):
        hook.theta = torch.tensor(theta)
        if hook.after_step(model, step) is not None:
            removed_at.update({i: step for i in range(3) if not hook.alive[i] and i not in removed_at})
    assert removed_at == {1: 2}  # theta_1 reached the threshold (<=) at step 2; theta_2 never did
    hook.epoch_row()  # epoch 1 ends
    hook.theta = torch.tensor([0.6, 0.0, 0.04])
    assert hook.after_step(model, 4) is not None and not hook.alive[2]  # still inside prune_epochs=2
    hook.epoch_row()  # epoch 2 ends: the window is over
    hook.theta = torch.tensor([0.6, 0.0, 0.0])
    assert hook.after_step(model, 8) is None and hook.rounded  # rounding keeps theta_0 = 0.6 >= 1/2
    hook.theta = torch.tensor([0.01, 0.0, 0.0])
    assert hook.after_step(model, 9) is None and hook.alive[0]  # nothing changes after the window
    rows = {r["section"]: r for r in hook.rows()}
    assert (rows[1]["epoch_removed"], rows[1]["step_removed"], rows[1]["theta"]) == (1, 2, pytest.approx(0.05))
    assert (rows[2]["epoch_removed"], rows[2]["step_removed"]) == (2, 4)
    assert rows[0]["removed"] is False
    assert rows[1]["how"] == "threshold"
    # a removed section's theta no longer moves
    hook.z = torch.ones(3, requires_grad=True)
    hook.z.grad = torch.ones(3)
    hook.epoch = 0
    before = hook.theta.clone()
    hook.before_step(model, 9)
    assert hook.theta[1] == before[1] and hook.theta[2] == before[2] and hook.theta[0] != before[0]


def test_the_window_ends_with_a_deterministic_network():
    model = tiny()
    hook = hook_for(model, prune_epochs=1)
    hook.theta = torch.tensor([0.3, 0.7, 0.5])
    assert hook.after_step(model, 0) is None  # inside the window: nothing at or below the threshold
    hook.epoch_row()
    masks = hook.after_step(model, 1)  # first step after the window: theta < 1/2 is removed
    assert hook.alive.tolist() == [False, True, True] and not masks["sections.0.0.weight"].any()
    assert hook.rows()[0]["how"] == "rounded" and hook.rows()[0]["epoch_removed"] == 2
    short = hook_for(tiny(), prune_epochs=1)  # a window as long as the phase: rounded by final_masks
    short.theta = torch.tensor([0.2, 0.9, 0.4])
    final = short.final_masks()
    assert short.alive.tolist() == [False, True, False] and final["sections.1.0.weight"].all()
    assert short.model.gates.tolist() == [0.0, 1.0, 0.0]


def test_state_restores_the_hook_exactly_even_without_a_step_after_resume():
    model = tiny(2)
    hook = hook_for(model, penalty=20.0, theta_lr=0.5)
    x, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for step in range(4):
        model.zero_grad()
        F.cross_entropy(hook.forward(model, x), y).backward()
        hook.before_step(model, step)
        hook.after_step(model, step)
    hook.epoch_row()
    resumed = hook_for(model, start=False, penalty=20.0, theta_lr=0.5)
    resumed.resume(model, hook.state_dict())
    masks, again = hook.final_masks(), resumed.final_masks()  # no forward after the resume
    assert masks.keys() == again.keys() and all(torch.equal(masks[n], again[n]) for n in masks)
    assert resumed.rows() == hook.rows()
    assert torch.equal(resumed.gen.get_state(), hook.gen.get_state())


def test_a_model_without_residual_sections_stops_before_the_run():
    with pytest.raises(ConfigError, match="res_mlp"):
        validated(*FAST, "schedule=layer_pruning", "train.epochs=5")
    with pytest.raises(ConfigError, match="schedule.prune_epochs"):
        validated(*DATA, "model=res_mlp", "schedule=layer_pruning", "train.epochs=2", "schedule.prune_epochs=3")


def test_cli_end_to_end_removes_sections_and_their_flops(tmp_path):
    results = tmp_path / "results"
    args = [*DATA, "model=res_mlp", "model.width=16", "model.blocks=3", "train.epochs=4", "schedule=layer_pruning"]
    run_cli([*args, "schedule.penalty=5", "schedule.prune_epochs=3", "shared_results=false", "metrics.regions.enabled=false"], results)
    run_dir = next((results / "runs").iterdir())
    assert not list(results.glob("*.csv"))  # shared_results=false, and the log no longer claims shared CSVs
    assert "(shared CSVs)" not in (run_dir / "prune-run.log").read_text()
    table = pd.read_csv(run_dir / "layer_pruning.csv")
    assert list(table.section) == [0, 1, 2] and table.removed.any()
    state = torch.load(run_dir / "model_finetuned.pt", weights_only=True)
    for row in table.itertuples():
        for layer in row.layers.split():
            zero = bool(torch.all(state[f"{layer}.weight"] == 0))
            assert zero == row.removed, layer
        assert float(state["gates"][row.section]) == (0.0 if row.removed else 1.0)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    flops = metrics[(metrics.phase == "finetuned") & (metrics.split == "model")].set_index("metric").value
    removed_macs = int(table[table.removed].macs.sum())
    assert removed_macs == table.removed.sum() * 2 * 16 * 16
    assert flops["flops_sparse"] == flops["flops_dense"] - removed_macs
    history = pd.read_csv(run_dir / "history.csv")
    assert {"theta_0", "theta_1", "theta_2", "sections_alive"} <= set(history.columns)
    # params_nonzero is that of the network without the removed sections (their biases can never act:
    # the gate is 0). Before: the removed sections' biases were counted (227 for 99 in a 4-block run).
    net = ResMLP(2, 16, 3, 3)
    net.load_state_dict(state)
    compact = net.without_sections(set(table[table.removed].section))
    values = metrics[metrics.split == "model"].set_index(["phase", "metric"]).value
    assert sum(int((p != 0).sum()) for p in compact.parameters()) == values[("finetuned", "params_nonzero")]
    # the log's sparsity is over the prunable weights only (it counted the sections' biases' masks too)
    # layer pruning decides its own sparsity: the log quotes no target (it said "target 0.9000", the unused default)
    logged = re.search(
        r"pruned to sparsity (\S+) over (\d+) prunable weights \(the schedule sets it\)", (run_dir / "prune-run.log").read_text()
    )
    assert int(logged.group(2)) == values[("pruned", "params_prunable")]
    assert float(logged.group(1)) == pytest.approx(values[("pruned", "sparsity_prunable")], abs=5e-5)


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def reference_runs(tmp_path_factory) -> ReferenceRuns:
    """The uninterrupted runs the crash cases compare with: one per list of overrides, not one per case."""
    return ReferenceRuns(tmp_path_factory.mktemp("references"))


def crash_and_resume(reference_runs, tmp_path, monkeypatch, overrides: list[str], crash_at: tuple[str, int]) -> tuple[Path, Path]:
    """tests/helpers.py's crash_and_resume without the dense cache and region counts (not what is
    tested), against the module's shared uninterrupted run of the same overrides."""
    overrides = [*overrides, "dense_cache.enabled=false", "metrics.regions.enabled=false"]
    reference = reference_runs(overrides)
    return reference, resume_after_crash(reference, tmp_path, monkeypatch, overrides, crash_at)


@pytest.mark.xdist_group("layer_pruning_reference_runs")  # the cases share their reference run
@pytest.mark.parametrize("crash_epoch", [1, 3])  # inside the window; after the phase's last epoch (no step left)
def test_a_crashed_run_resumes_to_the_same_result(tmp_path, monkeypatch, reference_runs, crash_epoch):
    overrides = [*DATA, "model=res_mlp", "model.width=8", "model.blocks=3", "train.epochs=3", "schedule=layer_pruning"]
    overrides += ["schedule.penalty=3", "schedule.prune_epochs=2"]
    a, b = crash_and_resume(reference_runs, tmp_path, monkeypatch, overrides, ("layer_pruning", crash_epoch))
    assert_same_run(a, b, ("metrics.csv", "layer_pruning.csv", "history.csv"))
    assert pd.read_csv(b / "layer_pruning.csv").removed.any()  # the resumed phase did remove sections


def test_layer_pruning_table_rows_carry_run_context_and_provenance_into_the_shared_table(tmp_path):
    """README: every row of every table starts with the run context and ends with provenance. The
    table used to be written by the hook itself with only its own columns, so the shared
    layer_pruning.csv of two seeds could not tell their rows apart. Each row now names its run (the
    run directory's name, its seed) and its provenance, in the run directory and in the shared
    table, which is the concatenation of the runs' files and which a rebuild reproduces byte for byte."""
    from prune_cli.core.tables import CONTEXT_COLUMNS, PROVENANCE_COLUMNS
    from prune_cli.results import load
    from prune_cli.run.results import rebuild_shared

    results = tmp_path / "results"
    args = ["-m", *DATA, "model=res_mlp", "model.width=8", "model.blocks=3", "train.epochs=2", "finetune.epochs=1"]
    args += ["schedule=layer_pruning", "schedule.penalty=3", "schedule.prune_epochs=1", "seed=0,1"]
    run_cli([*args, "metrics.regions.enabled=false", "dense_cache.enabled=false"], results)
    run_dirs = sorted(p.parent for p in (results / "runs").glob("*/COMPLETE"))
    assert len(run_dirs) == 2
    own = ["section", "layers", "removed", "epoch_removed", "step_removed", "how", "theta", "macs"]
    for seed, run_dir in enumerate(run_dirs):
        table = pd.read_csv(run_dir / "layer_pruning.csv")
        assert list(table.columns) == CONTEXT_COLUMNS + ["phase"] + own + PROVENANCE_COLUMNS
        assert list(table.section) == [0, 1, 2]
        assert (table.run_id == run_dir.name).all() and (table.seed == seed).all() and f"seed{seed}" in run_dir.name
        assert table.git_sha.notna().all() and table.timestamp.notna().all()
    shared_path = results / "layer_pruning.csv"
    shared = pd.read_csv(shared_path, dtype=str, keep_default_na=False)
    per_run = [pd.read_csv(d / "layer_pruning.csv", dtype=str, keep_default_na=False) for d in run_dirs]
    pd.testing.assert_frame_equal(shared, pd.concat(per_run, ignore_index=True))
    assert shared.groupby("run_id").size().to_dict() == {d.name: 3 for d in run_dirs}
    loaded = load(results).table("layer_pruning.csv")
    assert loaded.groupby("run_id").size().to_dict() == {d.name: 3 for d in run_dirs}
    assert sorted(loaded.drop_duplicates("run_id").seed) == [0, 1]
    before = {p.name: p.read_bytes() for p in results.glob("*.csv")}
    rebuild_shared(results)
    assert {p.name: p.read_bytes() for p in results.glob("*.csv")} == before


def test_rounding_at_the_end_of_the_phase_records_its_last_epoch_and_step():
    """A window as long as the phase (prune_epochs = train.epochs): the sections are rounded by
    final_masks after the last step. layer_pruning.csv said epoch 2 of a 1-epoch phase and step -1;
    it is the last epoch and the last step the phase ran, also after a resume with no step left."""
    model = tiny()
    hook = hook_for(model, prune_epochs=1, threshold=0.0)
    hook.theta = torch.tensor([0.2, 0.9, 0.4])
    for step in range(4):
        assert hook.after_step(model, step) is None  # nothing at the threshold 0
    hook.epoch_row()  # the phase's only epoch ends
    resumed = hook_for(model, start=False, prune_epochs=1, threshold=0.0)
    resumed.resume(model, hook.state_dict())
    for h in (hook, resumed):
        h.final_masks()
        rows = {r["section"]: r for r in h.rows()}
        assert [(rows[i]["epoch_removed"], rows[i]["step_removed"], rows[i]["how"]) for i in (0, 2)] == [(1, 3, "rounded")] * 2


def test_an_emptied_residual_section_is_not_a_layer_collapse():
    """res_mlp at sparsity 0.9 stopped with "Layer collapse ... no weight left in sections.1.2.weight ...
    The network is disconnected", but an empty section adds 0 to the residual stream and the skip
    carries it on (a network with such a section reached 0.41 test accuracy, metrics audit). Only
    layers outside the sections (the stem, the classifier) collapse the network."""
    from omegaconf import OmegaConf

    from prune_cli.models.graph import trace
    from prune_cli.models.res_mlp import ResMLP
    from prune_cli.pruning.pruner import LayerCollapse, check_collapse

    model = ResMLP(6, 8, 2, 3)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    method = OmegaConf.create({"allocation": "global", "structure": "unstructured", "allow_collapse": False})
    masks["sections.1.2.weight"][:] = False
    check_collapse(masks, trace(model), 0.5, method)  # no error
    masks["sections.1.0.weight"][:] = False
    check_collapse(masks, trace(model), 0.5, method)  # the whole section cut: still the skip
    masks["stem.weight"][:] = False
    with pytest.raises(LayerCollapse, match="stem.weight"):
        check_collapse(masks, trace(model), 0.5, method)
