"""AutoPrune (Xiao, Wang and Rajasekaran, NeurIPS 2019; prune_cli/pruning/train_time/autoprune.py):
the gated weight's surrogate gradients against the formula on a hand-sized example, the mask equal to
1[m > 0] in the forward pass and in validation, stopping at the target sparsity with exactly
round(density N) weights kept, and whole runs (rows at the target sparsity, crash-resume equality,
bad options rejected)."""

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
from prune_cli.pruning.train_time.autoprune import AutoPruneHook, GatedWeight
from prune_cli.run.experiment import run
from prune_cli.training import train
from tests.helpers import Chain, crash_and_resume, compose, composed, three_blobs

TINY = [*FAST, "dataset.input_dim=6", "model.widths=[16,16]"]

W = torch.tensor([[0.5, -2.0, 1.0], [0.0, 1.5, -0.25]])
M = torch.tensor([[0.3, -0.1, 0.0], [0.2, -0.4, 2.0]])
G = torch.tensor([[1.0, 2.0, -1.0], [3.0, -0.5, 4.0]])  # dL/dT


@pytest.mark.parametrize("surrogate, leak", [("leaky_relu", 0.1), ("identity", 0.1), ("leaky_relu", 0.0)])
def test_gated_weight_gradients_follow_the_rule(surrogate, leak):
    w, m = W.clone().requires_grad_(True), M.clone().requires_grad_(True)
    t = GatedWeight.apply(w, m, surrogate, leak)
    assert torch.equal(t, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, -0.25]]))  # w * 1[m > 0]; m = 0 is closed
    t.backward(G)
    assert torch.equal(w.grad, torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.0, 4.0]]))  # g * 1[m > 0]
    s = 1.0 if surrogate == "identity" else leak  # h'(m) where m <= 0
    # g * sgn(w) * h'(m), entry by entry: sgn(w) = [[1, -1, 1], [0, 1, -1]]; h' = [[1, s, s], [1, s, 1]]
    expected = torch.tensor([[1.0 * 1 * 1, 2.0 * -1 * s, -1.0 * 1 * s], [3.0 * 0 * 1, -0.5 * 1 * s, 4.0 * -1 * 1]])
    assert torch.allclose(m.grad, expected)


def net(seed=0):
    torch.manual_seed(seed)
    return Chain(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


@functools.lru_cache(maxsize=None)
def config(*overrides):
    return composed([*TINY, "schedule=autoprune", *overrides])


def hook_for(model, *overrides, sparsity=0.75):
    cfg = copy.deepcopy(config(f"sparsity={sparsity}", *overrides))
    prune = PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0), config=cfg)
    ctx = HookContext(cfg, prune, tuple(select_prunable(model, cfg.method)), 1 - sparsity)
    return AutoPruneHook(ctx)


def test_regulariser_gradient_is_added_to_the_auxiliary_parameters_only():
    model = net()
    hook = hook_for(model, "schedule.reg=0.5", "schedule.aux_lr=0.1", "schedule.aux_init_mode=constant", "schedule.aux_init=0.3")
    hook.start(model)
    name = "net.0.weight"
    with torch.no_grad():
        hook.aux[name][0, :3] = torch.tensor([0.3, -0.2, 0.0])
    for m in hook.aux.values():
        m.grad = torch.zeros_like(m)
    before = {n: m.detach().clone() for n, m in hook.aux.items()}
    w_before = model.net[0].weight.detach().clone()
    hook.before_step(model, 0)
    # m <- m - aux_lr * reg * h'(m): h' = 1 (m > 0) or leak 0.1 (m <= 0)
    step = hook.aux[name].detach() - before[name]
    assert torch.allclose(step[0, :3], torch.tensor([-0.05, -0.005, -0.005]))
    assert torch.equal(model.net[0].weight, w_before)


def test_mask_is_one_where_m_is_positive_in_training_and_validation():
    model = net(1)
    hook = hook_for(model)
    hook.start(model)
    with torch.no_grad():
        for m in hook.aux.values():
            m.copy_(torch.randn_like(m))
    masks = hook.gates()
    assert all(torch.equal(masks[n], hook.aux[n].detach() > 0) for n in masks)
    x = torch.randn(5, 6)
    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in by_hand.named_parameters():
            if n in masks:
                p.mul_(masks[n])
    assert torch.allclose(hook.forward(model, x), by_hand(x))
    original = copy.deepcopy(model.state_dict())
    with hook.evaluation(model):
        assert torch.allclose(model(x), by_hand(x))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in original.items())  # restored


def test_gates_freeze_at_the_target_sparsity_with_exactly_the_target_count(caplog):
    model = net(2)
    hook = hook_for(model, "schedule.reg=0.01", "schedule.aux_lr=1.0", sparsity=0.75)
    frozen_at = {}
    real_top_k = hook.top_k_masks

    def top_k():
        frozen_at["aux"] = {n: m.detach().clone() for n, m in hook.aux.items()}
        frozen_at["sparsity"] = hook.gate_sparsity()
        return real_top_k()

    hook.top_k_masks = top_k
    cfg = OmegaConf.merge(config().finetune, {"lr": 0.05, "lr_schedule": "constant", "batch_size": 32, "epochs": 60})
    with caplog.at_level("INFO", logger="prune_cli.pruning.train_time.autoprune"):
        rows = train(model, three_blobs(240, 6, 192), cfg, torch.Generator().manual_seed(1), "autoprune", hook=hook)
    assert hook.finished() and len(rows) < 60  # stopped at the end of the epoch that reached the target
    assert rows[-1]["gates_frozen"] == 1.0 and all(r["gates_frozen"] == 0.0 for r in rows[:-1])
    assert frozen_at["sparsity"] >= 0.75 and rows[-2]["gate_sparsity"] < 0.75
    keep = hook.final_masks()
    total = sum(k.numel() for k in keep.values())
    assert sum(int(k.sum()) for k in keep.values()) == round(0.25 * total)
    # the kept weights are the largest auxiliary parameters at the freeze, by hand
    flat = torch.cat([a.flatten() for a in frozen_at["aux"].values()])
    threshold = flat.sort(descending=True).values[round(0.25 * total) - 1]
    for n, k in keep.items():
        assert torch.equal(k, frozen_at["aux"][n] >= threshold)
        assert float(dict(model.named_parameters())[n].detach()[~k].abs().sum()) == 0.0  # pruned weights are zero
    # the log says how far the gates overshot and how many closed gates the mask reopened (it said neither)
    reopened = int(((flat >= threshold) & (flat <= 0)).sum())
    assert f"(gates closed: {frozen_at['sparsity']:.4f})" in caplog.text
    assert f"keeps the {round(0.25 * total)} largest auxiliary parameters ({reopened} of them with a closed gate)" in caplog.text


@pytest.mark.parametrize("allow_collapse", [False, True])
def test_gates_that_cut_every_path_are_a_layer_collapse(allow_collapse, caplog):
    """stop_at_target=false keeps 1[m > 0]. Every layer keeps a weight, but net.0 keeps only the
    inputs of unit 0 and net.2 only the outputs of unit 1: no input reaches the output. As for every
    pruner (pruner.check_masks) that stops the run unless method.allow_collapse=true (a warning).
    Before, only a layer with every gate closed was caught."""
    from prune_cli.pruning.pruner import LayerCollapse

    model = net(3)
    hook = hook_for(model, "schedule.stop_at_target=false", f"method.allow_collapse={str(allow_collapse).lower()}")
    hook.start(model)
    with torch.no_grad():
        for m in hook.aux.values():
            m.fill_(1.0)
        hook.aux["net.0.weight"][1:] = -1.0  # only unit 0 of the first hidden layer has inputs
        hook.aux["net.2.weight"][:, torch.arange(8) != 1] = -1.0  # only unit 1 feeds the second layer
    assert all(k.any() for k in hook.gates().values())  # no layer is empty
    if not allow_collapse:
        with pytest.raises(LayerCollapse, match="no unit of net.0.weight keeps both"):
            hook.final_masks()
        return
    assert all(torch.equal(k, hook.gates()[n]) for n, k in hook.final_masks().items())
    assert "no unit of net.0.weight keeps both" in caplog.text


@pytest.mark.parametrize("sparsity", [0.01, 0.3, 0.5, 0.09, 0.15])
def test_gates_freeze_once_as_many_are_closed_as_the_mask_prunes(sparsity):
    """136 weights: the frozen mask prunes 136 - round((1 - s) 136) of them. With exactly that many
    gates closed the gates did not freeze for 0.01, 0.09, 0.15 (a fraction compared with 1.0 - (1 - s):
    1/136 < 0.01, 20/136 < 0.15000000000000002), so the phase ran on, or ended with a warning such as
    "the gates reached sparsity 0.3000, not the target 0.3000" (the training-time audit, 60 weights)."""
    model = net(4)
    hook = hook_for(model, sparsity=sparsity)
    hook.start(model)
    pruned = 136 - round((1 - sparsity) * 136)
    with torch.no_grad():
        flat = [m.view(-1) for m in hook.aux.values()]
        for m in flat:
            m.fill_(1.0)
        closed = 0
        for m in flat:  # close `pruned` gates, spread over the layers (none emptied)
            take = min(len(m) // 2, pruned - closed)
            m[:take] = -1.0
            closed += take
    assert closed == pruned
    masks = hook.after_step(model, 0)
    assert masks is not None and sum(int((~k).sum()) for k in masks.values()) == pruned
    if pruned > 1:  # one gate fewer closed: not yet
        other = hook_for(model, sparsity=sparsity)
        other.start(model)
        with torch.no_grad():
            for n, m in other.aux.items():
                m.copy_(hook.aux[n])
            next(m for m in other.aux.values() if (m < 0).any()).view(-1)[0] = 1.0
        assert other.after_step(model, 0) is None


def test_gates_frozen_at_the_target_that_empty_a_layer_are_a_layer_collapse():
    """stop_at_target=true freezes the global top-k of m when the target is reached; the top-k can
    leave a layer with nothing. Before, the frozen mask skipped the collapse check altogether."""
    from prune_cli.pruning.pruner import LayerCollapse

    model = net(4)  # 48 + 64 + 24 = 136 weights; sparsity 0.75 keeps round(0.25 x 136) = 34
    hook = hook_for(model, sparsity=0.75)
    hook.start(model)
    with torch.no_grad():
        for m in hook.aux.values():
            m.fill_(-1.0)
        hook.aux["net.0.weight"].view(-1)[:34] = 1.0  # 102 of 136 gates closed: the target
    with pytest.raises(LayerCollapse, match="no weight left in net.2.weight, net.4.weight"):
        hook.after_step(model, 0)


AUTOPRUNE_RUN = [*TINY, "train.epochs=3", "finetune.epochs=2", "sparsity=0.6", "dense_cache.enabled=false", "schedule=autoprune"]
FAST_GATES = ["schedule.reg=0.01", "schedule.prune_epochs=8"]


def test_a_run_writes_rows_at_the_target_sparsity(tmp_path):
    cfg = compose([*AUTOPRUNE_RUN, *FAST_GATES], tmp_path)
    run_dir = run(cfg, tmp_path / "runs" / run_id(cfg))
    rows = pd.read_csv(run_dir / "metrics.csv")
    sparsity = rows[rows.metric == "sparsity_prunable"].set_index("phase").value
    assert list(sparsity.index) == ["dense", "pruned", "finetuned"]
    assert sparsity["pruned"] == pytest.approx(0.6, abs=0.005) and sparsity["finetuned"] == sparsity["pruned"]
    history = pd.read_csv(run_dir / "history.csv")
    assert "gate_sparsity" in history and (history.phase == "autoprune").any()


def test_a_run_resumed_inside_the_gating_phase_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [*AUTOPRUNE_RUN, "schedule.reg=0.002", "schedule.prune_epochs=4", "schedule.stop_at_target=false"]
    reference, run_dir = crash_and_resume(tmp_path, monkeypatch, overrides, ("autoprune", 2))  # inside the gating phase
    ignore = ["timestamp", "run_id", "config_hash"]
    expected = pd.read_csv(reference / "metrics.csv").drop(columns=ignore)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "metrics.csv").drop(columns=ignore), expected)
    a, b = (torch.load(d / "masks.pt", weights_only=True) for d in (reference, run_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "override, key",
    [
        (["method.structure=channel"], "method.structure"),
        (["method=random"], "method.score"),
        (["method.allocation=layerwise"], "method.allocation"),
        (["schedule.surrogate=sigmoid"], "schedule.surrogate"),
        (["schedule.leak=2"], "schedule.leak"),
        (["schedule.aux_lr=0"], "schedule.aux_lr"),
        (["schedule.prune_epochs=0"], "schedule.prune_epochs"),
        (["schedule.restart_from=init"], "schedule.restart_from"),
    ],
)
def test_bad_options_stop_before_the_run(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose([*TINY, "schedule=autoprune", *override], tmp_path)
