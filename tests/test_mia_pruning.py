"""Pruning against membership inference (docs/training_time.md): ADMM's Z-step against brute-force
projection, its dual update and penalty against the formulas worked by hand, the min-max attack gain's
gradient against finite differences (the classifier's step lowers it), the pre-run checks, and both
methods end to end through prune-run with the membership metric."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST, run_cli
from prune_cli.core.errors import ConfigError
from prune_cli.pruning import PruneContext
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.admm import AdmmHook, dual_update, project
from prune_cli.pruning.train_time.minmax import AttackModel, attack_loss, member_gain
from tests.helpers import TwoLayer, method_options, validated


def brute_force_projection(tensors: list[torch.Tensor], k: int) -> torch.Tensor:
    """argmin over all supports S with |S| = k of ||v - v_S||^2, over the concatenation."""
    v = torch.cat([t.flatten() for t in tensors])
    best = min(itertools.combinations(range(v.numel()), k), key=lambda s: float((v**2).sum() - (v[list(s)] ** 2).sum()))
    mask = torch.zeros(v.numel(), dtype=torch.bool)
    mask[list(best)] = True
    return mask


@pytest.mark.parametrize("seed", range(5))
def test_projection_equals_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, 3, generator=g), torch.randn(4, generator=g)
    weights = {"a": a, "b": b}
    # global: one support of round(0.4 * 10) = 4 over both tensors
    masks = project(weights, 0.4, "global")
    assert torch.equal(torch.cat([masks["a"].flatten(), masks["b"]]), brute_force_projection([a, b], 4))
    # layerwise: round(0.5 * 6) = 3 in a, round(0.5 * 4) = 2 in b
    masks = project(weights, 0.5, "layerwise")
    assert torch.equal(masks["a"].flatten(), brute_force_projection([a], 3))
    assert torch.equal(masks["b"], brute_force_projection([b], 2))


def admm_hook(model, density=0.5, rho=0.1, growth=2.0, rho_max=0.3, prunable=("net.0.weight",), **method) -> AdmmHook:
    schedule = {"rho": rho, "rho_growth": growth, "rho_max": rho_max, "update_every": 1}
    method = method_options(**{"allocation": "layerwise", **method})
    cfg = OmegaConf.create({"seed": 0, "method": method, "schedule": schedule})
    ctx = HookContext(cfg, PruneContext(method=method, generator=torch.Generator()), prunable, density)
    hook = AdmmHook(ctx)
    hook.start(model)
    return hook


def test_admm_penalty_z_step_dual_update_and_rho_schedule_by_hand():
    model = TwoLayer(seed=0)
    with torch.no_grad():
        model.net[0].weight.copy_(torch.tensor([[4.0, -1.0, 0.5, 3.0]] * 3) * torch.tensor([[1.0], [2.0], [-1.0]]))
    w = model.net[0].weight.detach().clone()  # 12 weights; density 0.5 keeps 6
    hook = admm_hook(model)
    z0 = torch.where(w.abs() >= 3.0, w, torch.zeros_like(w))  # |w| in {4,3,8,6,4,3} are the 6 largest
    assert torch.equal(hook.z["net.0.weight"], z0)
    assert float(hook.extra_loss(model, None, None, None).detach()) == pytest.approx(0.1 / 2 * float(((w - z0) ** 2).sum()))
    u = torch.full_like(w, 0.25)
    u[0, 2] = 10.0  # pushes w + u at [0, 2] to 10.5: it enters the support, the smallest |w + u| of the rest leaves
    hook.u["net.0.weight"] = u
    hook.update(model)
    shifted = w + u
    kept = shifted.abs().flatten().argsort(descending=True, stable=True)[:6]
    z1 = torch.zeros(12)
    z1[kept] = shifted.flatten()[kept]
    z1 = z1.view_as(w)
    assert bool(hook.z["net.0.weight"][0, 2] != 0)
    assert torch.equal(hook.z["net.0.weight"], z1)
    assert torch.equal(hook.u["net.0.weight"], u + w - z1)  # U <- U + W - Z
    assert torch.equal(dual_update(w, z1, u), u + w - z1)
    assert hook.rho == pytest.approx(0.2)
    hook.update(model)
    assert hook.rho == pytest.approx(0.3)  # 0.4 capped at rho_max
    final = hook.final_masks()["net.0.weight"]
    assert torch.equal(final, w.abs() >= 3.0)  # hard pruning: the support of the projection of W


@pytest.mark.parametrize("allow_collapse", [False, True])
def test_admm_s_hard_pruning_that_empties_a_layer_is_a_layer_collapse(allow_collapse, caplog):
    """As for every other pruner (pruner.check_masks): with method.allocation=global the projection can
    keep no weight of a layer whose weights are all small; that stops the run unless
    method.allow_collapse=true, which keeps the masks with a warning. Before, ADMM let it through."""
    from prune_cli.pruning.pruner import LayerCollapse

    model = TwoLayer(seed=0)  # net.0: 4 -> 3 (12 weights), net.2: 3 -> 3 (9 weights)
    with torch.no_grad():
        model.net[0].weight.fill_(1.0)
        model.net[2].weight.fill_(1e-3)
    hook = admm_hook(model, density=0.5, prunable=("net.0.weight", "net.2.weight"), allocation="global", allow_collapse=allow_collapse)
    if not allow_collapse:
        with pytest.raises(LayerCollapse, match="no weight left in net.2.weight"):
            hook.final_masks()
        return
    masks = hook.final_masks()
    assert int(masks["net.0.weight"].sum()) == 10 and not masks["net.2.weight"].any()  # round(0.5 x 21) = 10, all in net.0
    assert "no weight left in net.2.weight" in caplog.text


def test_adversarial_gain_gradient_lowers_the_attacks_member_score():
    torch.manual_seed(0)
    model, attack = TwoLayer(seed=1), AttackModel(num_classes=3, width=16)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opt = torch.optim.Adam(attack.parameters(), lr=0.05)  # make the attack informative first
    ref_x, ref_y = torch.randn(16, 4) * 3, torch.randint(0, 3, (16,))
    for _ in range(30):
        opt.zero_grad()
        with torch.no_grad():
            m_logits, r_logits = model(x), model(ref_x)
        attack_loss(attack, m_logits, y, r_logits, ref_y).backward()
        opt.step()
    for p in attack.parameters():
        p.requires_grad_(False)
    params = list(model.parameters())
    gain = member_gain(attack, model(x), y)
    grads = torch.autograd.grad(gain, params)
    gain = gain.detach()
    norm2 = sum(float((g**2).sum()) for g in grads)
    assert norm2 > 0
    eps = 1e-3
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= eps * g  # the classifier's gradient step on lambda * gain (lambda > 0)
        after = float(member_gain(attack, model(x), y))
    assert after < float(gain)  # the attack now finds the members less member-like
    assert (after - float(gain)) / eps == pytest.approx(-norm2, rel=0.05)  # finite difference = -||grad||^2


def test_wrong_methods_stop_before_the_run():
    with pytest.raises(ConfigError, match="method.score"):
        validated(*FAST, "schedule=admm", "method=random")
    with pytest.raises(ConfigError, match="method.allocation"):
        validated(*FAST, "schedule=admm", "method.allocation=erk")
    with pytest.raises(ConfigError, match="dataset.val_fraction"):
        validated(*FAST, "schedule=minmax", "dataset.val_fraction=0.0")
    with pytest.raises(ConfigError, match="dataset.val_fraction.*round"):  # > 0, but no example per class
        validated(*FAST, "schedule=minmax", "dataset.val_fraction=0.001")


def membership_args(schedule: str) -> list[str]:
    args = [*FAST, f"schedule={schedule}", "sparsity=0.75", "method.allocation=layerwise", "metrics.membership.enabled=true"]
    args += ["metrics.regions.enabled=false", "shared_results=false"]
    # admm: 12 optimizer steps in 2 epochs, Z/U every 2 (the default 20 would update never)
    return args + (["schedule.epochs=2", "schedule.update_every=2"] if schedule == "admm" else ["schedule.attack_steps=2"])


def assert_membership_run(run_dir, schedule: str) -> None:
    """The membership metric in every phase, layerwise sparsity 0.75 per layer, the schedule's history."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    value = metrics.set_index(["phase", "metric"]).value
    for phase in ("dense", "pruned", "finetuned"):
        assert 0.0 <= value[(phase, "mia_loss_auc")] <= 1.0
    layers = pd.read_csv(run_dir / "layers.csv")
    final = layers[(layers.phase == "finetuned") & layers.prunable]
    assert len(final) == 3
    for row in final.itertuples():
        assert row.nonzero == round(0.25 * row.params), row.layer  # layerwise: k_l = round(density x n_l)
    history = pd.read_csv(run_dir / "history.csv")
    column = "admm_residual" if schedule == "admm" else "attack_loss"  # the residual exists once Z/U were updated
    assert history[column].notna().any()


def test_end_to_end_with_the_membership_metric(tmp_path):
    """admm through the prune-run command; minmax in-process: the uninterrupted run of
    test_a_crashed_run_resumes_to_the_same_result[minmax] (the same run(), one run fewer)."""
    results = tmp_path / "results"
    run_cli(membership_args("admm"), results)
    assert_membership_run(next((results / "runs").iterdir()), "admm")


@pytest.mark.parametrize("schedule", ["admm", "minmax"])
def test_a_crashed_run_resumes_to_the_same_result(tmp_path, monkeypatch, schedule):
    from tests.reference_runs import ReferenceRuns
    from tests.helpers import assert_same_run
    from tests.test_layer_pruning import crash_and_resume

    if schedule == "admm":
        overrides = [*FAST, f"schedule={schedule}", "sparsity=0.75", "metrics.membership.enabled=true", "finetune.epochs=2"]
        overrides += ["schedule.epochs=2", "schedule.update_every=2"]
    else:  # the end-to-end minmax run, fine-tuned two epochs
        overrides = [*membership_args("minmax"), "finetune.epochs=2"]
    a, b = crash_and_resume(ReferenceRuns(tmp_path / "uninterrupted"), tmp_path, monkeypatch, overrides, (schedule, 1))
    assert_same_run(a, b, ("metrics.csv", "history.csv"))
    if schedule == "minmax":
        assert_membership_run(a, "minmax")


def test_admm_updates_that_never_happen_stop_before_the_run():
    """162 training examples in batches of 32: 6 steps an epoch, 12 in schedule.epochs=2. With
    update_every=13 no Z/U update ever happened (admm_residual empty, the same masks as without ADMM's
    updates), and the run went ahead without a word."""
    with pytest.raises(ConfigError, match=r"'schedule.update_every'.*at most 12"):
        validated(*FAST, "schedule=admm", "schedule.epochs=2", "schedule.update_every=13")
    validated(*FAST, "schedule=admm", "schedule.epochs=2", "schedule.update_every=12")


def test_admm_counts_the_examples_data_pruning_keeps():
    """data_pruning keeps max(1, round(keep x 162)) = 16 examples: 1 step an epoch, 2 in
    schedule.epochs=2. The check counted all 162 (12 steps), so update_every=3 ran with no Z/U update."""
    prune = ["data_pruning=random", "data_pruning.keep=0.1"]
    with pytest.raises(ConfigError, match=r"'schedule.update_every'.*at most 2"):
        validated(*FAST, "schedule=admm", "schedule.epochs=2", "schedule.update_every=3", *prune)
    validated(*FAST, "schedule=admm", "schedule.epochs=2", "schedule.update_every=2", *prune)


def test_admm_updates_checked_on_the_loaded_data_before_training(tmp_path):
    """MNIST-1D declares its total (1000), not its per-class counts, so the pre-run pass has an upper
    bound: 800 training examples after the test split, 7 steps of 128 in one epoch, update_every=7
    passed. Loaded, 720 remain after the validation split: 6 steps, no Z/U update, exit 0. The run now
    checks the loaded size before any training."""
    args = ["dataset=mnist1d", "dataset.num_samples=1000", "model=mlp", "model.widths=[16]", "train.epochs=1"]
    args += ["finetune.epochs=1", "finetune.batch_size=128", "schedule=admm", "schedule.epochs=1", "schedule.update_every=7"]
    validated(*args)  # the upper bound passes
    result = run_cli(args, tmp_path / "results", check=False)
    assert result.returncode == 2, result.stderr
    assert "'schedule.update_every'" in result.stderr and "at most 6" in result.stderr
    assert "Traceback" not in result.stderr and not list((tmp_path / "results").glob("runs/*/history.csv"))


def test_minmax_with_an_empty_loaded_validation_split_stops_before_training(tmp_path):
    """A random subset (max_train_samples=6 of 3 classes): val_fraction 0.05 holds out round(0.05 x 2)
    = 0 per class, known only once loaded. MinMax's reference set is the validation split: the run
    stopped after dense training; now before it."""
    args = [*FAST, "dataset.max_train_samples=6", "dataset.val_fraction=0.05", "schedule=minmax"]
    result = run_cli(args, tmp_path / "results", check=False)
    assert result.returncode == 2, result.stderr
    assert "dataset.val_fraction" in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "results").glob("runs/*/history.csv"))


def test_minmax_attack_width_must_split_into_two_branches():
    """The attack's two branches are attack_width // 2 wide and the joint layer read attack_width
    inputs: an odd width (63) crashed with a shape mismatch after dense training, reported as a bug in
    prune-cli; 1 gave empty branches."""
    from prune_cli.pruning.train_time.minmax import AttackModel

    for width in (63, 1):
        with pytest.raises(ConfigError, match=r"'schedule.attack_width'.*even"):
            validated(*FAST, "schedule=minmax", f"schedule.attack_width={width}")
    validated(*FAST, "schedule=minmax", "schedule.attack_width=2")
    assert AttackModel(3, 2)(torch.rand(4, 3), torch.tensor([0, 1, 2, 0])).shape == (4,)


def test_minmax_reference_batches_leave_batchnorm_statistics_alone():
    """The reference (validation) batch goes through the classifier in training mode, as the member
    batch does (the attack must not tell them apart by BatchNorm's mode), but it updated the running
    statistics: validation data leaked into the model evaluated at test time, and BatchNorm counted
    two batches per step. The running statistics are now those of the training batches alone."""
    from prune_cli.data.splits import DataSplits
    from prune_cli.pruning.train_time.minmax import MinMaxHook

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).train()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    ref_x = 10 + 5 * torch.randn(16, 4)  # far from the training batch: a leak moves the statistics a lot
    data = DataSplits(x, y, ref_x, torch.randint(0, 3, (16,)), x, y, 3)
    schedule = {"adv_lambda": 1.0, "attack_steps": 1, "attack_lr": 0.01, "attack_width": 8}
    cfg = OmegaConf.create({"seed": 0, "schedule": schedule})
    hook = MinMaxHook(HookContext(cfg, PruneContext(method=method_options(), generator=torch.Generator(), data=data), (), 1.0))
    hook.start(model)
    reference = torch.nn.BatchNorm1d(8).train()  # the statistics of the training batch alone
    reference(model[0](x).detach())
    logits = model(x)
    hook.extra_loss(model, x, y, logits)
    bn = model[1]
    assert torch.allclose(bn.running_mean, reference.running_mean) and torch.allclose(bn.running_var, reference.running_var)
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize(
    "model", [["model=res_mlp"], ["model=cnn1d", "model.channels=[4,4]", "model.hidden=8", "dataset.input_dim=8"]]
)
def test_minmax_trains_models_with_buffers(tmp_path, model):
    """The attack's reference forward pass restored the model's buffers in place (BatchNorm's running
    statistics, res_mlp's gates) between the member batch's forward and its backward: autograd found
    tensors it had saved modified ("one of the variables needed for gradient computation has been
    modified by an inplace operation"), an internal error on every BatchNorm model and on res_mlp."""
    fast = [o for o in FAST if not o.startswith("model")]
    results = tmp_path / "results"
    run_cli([*fast, *model, "schedule=minmax", "sparsity=0.5"], results)
    history = pd.read_csv(next((results / "runs").iterdir()) / "history.csv")
    assert history["attack_loss"].notna().any()


def test_minmax_reference_pass_leaves_the_running_statistics_of_training_batches():
    """The reference batch is passed in training mode (the attack must not tell members apart by
    BatchNorm's batch statistics), but the running statistics stay those of the training batches."""
    from prune_cli.pruning.train_time.minmax import reference_logits

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3)
    out = reference_logits(model, x)
    expected = model[3](
        torch.relu(
            (model[0](x) - model[0](x).mean(0)) / (model[0](x).var(0, unbiased=False) + 1e-5).sqrt() * model[1].weight + model[1].bias
        )
    )  # batch statistics, by hand
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_the_evidence_texts_state_the_training_split_the_script_gets():
    """mia_pruning.py draws `--train-samples` 800 examples (dataset.max_train_samples); the stratified
    10 % validation split then leaves 720-721 for training, 6 steps of 128 per epoch. Its help, its
    comment and docs/training_time.md said 800 training examples, 7 steps per epoch."""
    import math
    import re
    import subprocess
    import sys

    from conftest import REPO
    from prune_cli.data import DATASETS, build_splits
    from tests.helpers import composed

    cfg = composed("dataset=mnist1d", "model=mlp", "dataset.max_train_samples=800")
    raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    sizes = sorted({len(build_splits(raw, cfg.dataset, seed, torch.device("cpu")).train_y) for seed in (0, 1, 2)})
    stated = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else f"{sizes[0]}"
    steps = {math.ceil(n / cfg.finetune.batch_size) for n in sizes}
    assert len(steps) == 1
    steps = steps.pop()
    helped = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "mia_pruning.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert f"800 leave {stated} for training" in " ".join(helped.split())
    docs = (REPO / "docs" / "training_time.md").read_text()
    evidence = " ".join(docs[docs.index("**Evidence** (`scripts/mia_pruning.py`") :].split("\n\n")[0].split())
    assert f"{stated} training examples" in evidence and f"{steps} steps per epoch" in evidence, evidence
    assert re.search(r"\b7 steps per epoch", evidence) is None
