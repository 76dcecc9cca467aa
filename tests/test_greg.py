"""GReg-1 and GReg-2 (Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021;
prune_cli/pruning/train_time/greg.py): the penalty schedule against hand-computed sequences, the
penalty's gradient against lambda * w, the chosen weights shrinking relative to the others, the
channel structure, GReg-2's choice on the regularized weights, and whole runs (rows at the target
sparsity, resume after a crash equal to an uninterrupted run, bad options rejected)."""

from __future__ import annotations

import copy
import functools

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST
from prune_cli.core.errors import ConfigError
from prune_cli.core.identity import run_id
from prune_cli.pruning import PruneContext, select_prunable
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.greg import GRegHook
from prune_cli.run.experiment import run
from prune_cli.training import train
from tests.helpers import Chain, compose, composed, assert_same_run, crash_and_resume, three_blobs

TINY = [*FAST, "dataset.input_dim=6", "model.widths=[16,16]"]


@functools.lru_cache(maxsize=None)
def config(*overrides):
    return composed([*TINY, *overrides])


def hook_for(model, *overrides, sparsity=0.5):
    cfg = copy.deepcopy(config(f"sparsity={sparsity}", *overrides))
    prune = PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0), config=cfg)
    names = tuple(select_prunable(model, cfg.method))
    ctx = HookContext(cfg, prune, names, 1 - sparsity)
    return GRegHook(ctx, greg2=cfg.schedule.name == "greg2")


def net(seed=0):
    torch.manual_seed(seed)
    return Chain(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_growing_penalty_follows_the_hand_computed_sequence():
    # the authors' code: delta 0.3 at every 2nd iteration from the first, raised until it exceeds 1:
    # 0.3 0.3 0.6 0.6 0.9 0.9 1.2 1.2 ...; the last raise at iteration 6, removal 3 iterations later
    hook = hook_for(net(), "schedule=greg1", "schedule.delta=0.3", "schedule.interval=2", "schedule.stabilize_steps=3")
    assert [hook.schedule.chosen(t) for t in range(10)] == pytest.approx([0.3, 0.3, 0.6, 0.6, 0.9, 0.9, 1.2, 1.2, 1.2, 1.2])
    assert [hook.schedule.kept(t) for t in range(10)] == [0.0] * 10
    assert hook.steps_needed() == 6 + 3 + 1
    # a ceiling that is a multiple of delta is exceeded by one more raise: 0.01 x 101
    hook = hook_for(net(), "schedule=greg1", "schedule.delta=0.01", "schedule.interval=5", "schedule.stabilize_steps=0")
    assert hook.schedule.chosen(10**6) == pytest.approx(1.01) and hook.steps_needed() == 100 * 5 + 1


def test_greg2_penalises_all_weights_then_continues_on_the_chosen_from_the_pick_ceiling():
    hook = hook_for(
        net(),
        "schedule=greg2",
        "schedule.pick_delta=0.1",
        "schedule.pick_ceiling=0.2",
        "schedule.delta=0.4",
        "schedule.ceiling=1.0",
        "schedule.interval=1",
        "schedule.stabilize_steps=2",
        "schedule.recover=-0.01",
    )
    # picking: 0.1, 0.2 on all weights (0.2 reached at iteration 1: chosen before it, 0.2 still on all);
    # then the chosen 0.2 + 0.4 k until above 1: 0.6, 1.0, 1.4; the kept -0.01 (recover)
    assert [hook.schedule.chosen(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.6, 1.0, 1.4, 1.4])
    assert [hook.schedule.kept(t) for t in range(6)] == pytest.approx([0.1, 0.2, -0.01, -0.01, -0.01, -0.01])
    assert hook.schedule.choice_step == 1 and hook.steps_needed() == 4 + 2 + 1


def test_penalty_gradient_is_lambda_w_on_the_chosen_weights_and_zero_elsewhere():
    model = net()
    hook = hook_for(model, "schedule=greg1", "schedule.delta=0.3", "schedule.interval=2")
    hook.start(model)
    hook.t = 3  # lambda = 0.6
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    loss = hook.extra_loss(model, x, y, None)
    grads = torch.autograd.grad(loss, [hook.params[n] for n in hook.keep])
    # the chosen weights: the 50 % smallest magnitudes over all layers (global magnitude), by hand
    weights = torch.cat([p.detach().abs().flatten() for p in hook.params.values()])
    threshold = weights.sort().values[weights.numel() // 2 - 1]
    for g, (name, keep) in zip(grads, hook.keep.items()):
        w = hook.params[name].detach()
        chosen = w.abs() <= threshold
        assert torch.equal(~keep, chosen)
        assert torch.allclose(g, 0.6 * w * chosen, atol=0, rtol=1e-6)
    assert float(loss.detach()) == pytest.approx(0.5 * 0.6 * float((weights[weights <= threshold] ** 2).sum()), rel=1e-5)


def train_with(hook, model, steps):
    cfg = OmegaConf.merge(config().finetune, {"lr": 0.05, "lr_schedule": "constant", "batch_size": 32})
    cfg.epochs = -(-steps // 6)  # 192 / 32 = 6 steps per epoch
    return train(model, three_blobs(240, 6, 192), cfg, torch.Generator().manual_seed(1), "regularize", hook=hook)


def test_chosen_weights_shrink_relative_to_the_kept_ones():
    model = net(1)
    hook = hook_for(model, "schedule=greg1", "schedule.delta=0.05", "schedule.interval=1", "schedule.stabilize_steps=20")

    def ratio():
        chosen = torch.cat([hook.params[n].detach()[~k] for n, k in hook.keep.items()])
        kept = torch.cat([hook.params[n].detach()[k] for n, k in hook.keep.items()])
        return float(chosen.norm() / chosen.numel() ** 0.5) / float(kept.norm() / kept.numel() ** 0.5)

    hook.start(model)
    before = ratio()
    rows = train_with(hook, model, hook.steps_needed())
    after = ratio()
    assert after < 0.25 * before, (before, after)
    assert rows[-1]["penalty"] == pytest.approx(1.05)  # the first multiple of 0.05 above the ceiling 1


def test_channel_structure_chooses_whole_neurons():
    model = net(2)
    hook = hook_for(
        model, "schedule=greg1", "method.structure=channel", "method.allocation=layerwise", "method.sparsity_tolerance=0.1"
    )
    hook.start(model)
    first = hook.keep["net.0.weight"]  # (8, 6): a removed neuron is a whole row
    rows_kept = first.all(1)
    assert torch.equal(first, rows_kept[:, None].expand_as(first)) and 0 < int(rows_kept.sum()) < 8
    # the L1 norm of each row decided it (the paper's L1-norm filter criterion), by hand
    norms = model.net[0].weight.detach().abs().sum(1)
    assert set(norms.argsort()[: 8 - int(rows_kept.sum())].tolist()) == set((~rows_kept).nonzero().flatten().tolist())


def test_greg2_chooses_by_magnitude_after_the_all_weights_penalty():
    model = net(3)
    hook = hook_for(
        model,
        "schedule=greg2",
        "schedule.pick_delta=0.05",
        "schedule.pick_ceiling=0.5",
        "schedule.interval=1",
        "schedule.stabilize_steps=0",
    )
    seen = {}
    real_choose = hook._choose

    def choose(m):
        seen["weights"] = {n: p.detach().clone() for n, p in hook.params.items()}
        seen["t"] = hook.t
        real_choose(m)

    hook._choose = choose
    hook.start(model)
    assert hook.keep is None
    train_with(hook, model, hook.schedule.choice_step + 3)
    assert seen["t"] == hook.schedule.choice_step == 9  # 0.05 x 10 reaches 0.5 at the 10th update, iteration 9
    weights = torch.cat([w.abs().flatten() for w in seen["weights"].values()])
    threshold = weights.sort().values[weights.numel() // 2 - 1]
    for name, keep in hook.keep.items():
        assert torch.equal(~keep, seen["weights"][name].abs() <= threshold)


GREG_RUN = [*TINY, "train.epochs=3", "finetune.epochs=2", "sparsity=0.8", "dense_cache.enabled=false"]
SHORT = ["schedule.delta=0.25", "schedule.interval=2", "schedule.stabilize_steps=12"]


@pytest.mark.parametrize("schedule", ["greg1", "greg2"])
def test_a_run_writes_rows_at_the_target_sparsity(tmp_path, schedule):
    extra = ["schedule.pick_delta=0.02", "schedule.pick_ceiling=0.1"] if schedule == "greg2" else []
    cfg = compose([*GREG_RUN, f"schedule={schedule}", *SHORT, *extra], tmp_path)
    run_dir = run(cfg, tmp_path / "runs" / run_id(cfg))
    rows = pd.read_csv(run_dir / "metrics.csv")
    sparsity = rows[rows.metric == "sparsity_prunable"].set_index("phase").value
    assert list(sparsity.index) == ["dense", "pruned", "finetuned"]
    assert sparsity["pruned"] == pytest.approx(0.8, abs=0.01) and sparsity["finetuned"] == sparsity["pruned"]
    assert set(rows[rows.metric == "accuracy"].phase) == {"dense", "pruned", "finetuned"}
    history = pd.read_csv(run_dir / "history.csv")
    reg = history[history.phase == "regularize"]
    # the first factor above the ceiling 1: 0.25 x 5; GReg-2 from its pick ceiling 0.1: 0.1 + 0.25 x 4
    assert len(reg) >= 1 and reg.penalty.iloc[-1] == pytest.approx({"greg1": 1.25, "greg2": 1.1}[schedule])
    masks = torch.load(run_dir / "masks.pt", weights_only=True)
    model = torch.load(run_dir / "model_finetuned.pt", weights_only=True)
    assert all(float(model[n][~m].abs().sum()) == 0.0 for n, m in masks.items())


@pytest.mark.slow  # two whole runs; the same path for a hook's state is covered by tests/test_autoprune.py's resume test
def test_a_run_resumed_inside_the_regularization_phase_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [*GREG_RUN, "schedule=greg2", *SHORT, "schedule.pick_delta=0.02", "schedule.pick_ceiling=0.1"]
    reference, run_dir = crash_and_resume(tmp_path, monkeypatch, overrides, ("regularize", 2))  # inside the regularization phase
    assert_same_run(reference, run_dir, ("metrics.csv",))


@pytest.mark.parametrize(
    "override, key",
    [
        (["schedule=greg1", "schedule.delta=-0.1"], "schedule.delta"),
        (["schedule=greg1", "schedule.ceiling=0.001"], "schedule.ceiling"),
        (["schedule=greg1", "schedule.interval=0"], "schedule.interval"),
        (["schedule=greg1", "schedule.rounds=3"], "schedule.rounds"),
        (["schedule=greg2", "schedule.pick_ceiling=2.0"], "schedule.ceiling"),
        (["schedule=greg2", "schedule.recover=nan"], "schedule.recover"),
        # GReg-2's choice is by magnitude on the regularized weights (the paper's argument): method=random
        # ran and kept 46.7 % of a magnitude choice's weights (the training-time audit).
        (["schedule=greg2", "method=random"], "method.score"),
        (["schedule=greg2", "method=snip"], "method.score"),
    ],
)
def test_bad_options_stop_before_the_run(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose([*TINY, *override], tmp_path)
