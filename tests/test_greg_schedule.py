"""GReg's penalty schedule (Wang et al., "Neural Pruning via Growing Regularization", ICLR 2021) as
the authors' public implementation runs it, against `GRegSchedule`'s closed forms
(prune_cli/pruning/train_time/greg.py; docs/training_time.md, "GReg-1 and GReg-2").

The reference is a literal per-iteration restatement of that implementation's loop, in exact
fractions: at every iteration t with t % K_u == 0 the factors are updated (GReg-1: the chosen
weights' factor += delta, finished once it is > ceiling; GReg-2: first every weight's factor +=
pick_delta, the choice at the update where it is >= pick_ceiling, from the next update the chosen
weights' factor += delta and the kept weights' factor = recover, finished once the chosen factor is
> ceiling); no update after the finishing one, and the weights are removed after the iteration
K_s iterations after it. Then the gradient of the hook's penalty against the factors times w."""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST
from prune_cli.pruning import PruneContext, select_prunable
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.greg import GRegHook, GRegSchedule
from tests.helpers import Chain, composed


def authors_loop(delta, interval, ceiling, stabilize, pick_delta=None, pick_ceiling=None, recover=0.0):
    """(chosen factor, kept factor) at every iteration of the regularization phase, and the
    iteration before which the weights are chosen."""
    f = lambda v: Fraction(str(v))  # noqa: E731 - exact decimal values, no float accumulation
    greg2 = pick_delta is not None
    chosen, kept = Fraction(0), Fraction(0)
    picked = None if greg2 else 0
    finished = None
    factors = []
    t = 0
    while True:
        if finished is None and t % interval == 0:
            if picked is None:
                chosen += f(pick_delta)
                kept = chosen
                if chosen >= f(pick_ceiling):
                    picked = t
            else:
                if greg2 and t > picked:
                    chosen += f(delta)
                    kept = f(recover)
                elif not greg2:
                    chosen += f(delta)
                if chosen > f(ceiling):
                    finished = t
        factors.append((float(chosen), float(kept)))
        if finished is not None and t - finished == stabilize:
            return factors, picked
        t += 1


CASES = [
    ("greg1", dict(delta=0.3, interval=2, ceiling=1.0, stabilize=3)),
    ("greg1", dict(delta=0.01, interval=5, ceiling=1.0, stabilize=100)),  # the defaults
    ("greg1", dict(delta=0.05, interval=10, ceiling=1.0, stabilize=84)),  # scripts/train_time_pruning.py
    ("greg1", dict(delta=0.07, interval=3, ceiling=0.5, stabilize=0)),  # a ceiling that is not a multiple
    ("greg2", dict(delta=0.01, interval=5, ceiling=1.0, stabilize=100, pick_delta=0.001, pick_ceiling=0.1, recover=-1e-4)),
    ("greg2", dict(delta=0.1, interval=10, ceiling=1.0, stabilize=94, pick_delta=0.01, pick_ceiling=0.1, recover=-1e-4)),
    ("greg2", dict(delta=0.4, interval=1, ceiling=1.0, stabilize=2, pick_delta=0.1, pick_ceiling=0.2, recover=-0.01)),
    ("greg2", dict(delta=0.3, interval=4, ceiling=2.0, stabilize=5, pick_delta=0.07, pick_ceiling=0.2, recover=0.0)),
    ("greg2", dict(delta=0.2, interval=3, ceiling=1.0, stabilize=1, pick_delta=0.5, pick_ceiling=0.5, recover=-0.1)),
]


def net():
    torch.manual_seed(0)
    return Chain(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def hook_for(model, schedule, options, sparsity=0.5):
    keys = {"stabilize": "stabilize_steps"}
    overrides = [f"schedule.{keys.get(k, k)}={v}" for k, v in options.items()]
    cfg = copy.deepcopy(composed([*FAST, "dataset.input_dim=6", f"sparsity={sparsity}", f"schedule={schedule}", *overrides]))
    prune = PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0), config=cfg)
    ctx = HookContext(cfg, prune, tuple(select_prunable(model, cfg.method)), 1 - sparsity)
    return GRegHook(ctx, greg2=schedule == "greg2")


@pytest.mark.parametrize("schedule, options", CASES)
def test_closed_forms_equal_the_authors_loop(schedule, options):
    factors, picked = authors_loop(**options)
    keys = {"stabilize": "stabilize_steps"}
    s = GRegSchedule.from_options(OmegaConf.create({keys.get(k, k): v for k, v in options.items()}), schedule == "greg2")
    assert s.steps() == len(factors)
    assert s.choice_step == picked
    assert [s.chosen(t) for t in range(len(factors))] == pytest.approx([c for c, _ in factors], abs=1e-12)
    assert [s.kept(t) for t in range(len(factors))] == pytest.approx([k for _, k in factors], abs=1e-12)


def test_greg2_penalty_gradient_is_the_factor_times_w_before_and_after_the_choice():
    options = dict(delta=0.4, interval=2, ceiling=1.0, stabilize=2, pick_delta=0.1, pick_ceiling=0.2, recover=-0.01)
    model = net()
    hook = hook_for(model, "greg2", options)
    hook.start(model)
    x, y = torch.randn(4, 6), torch.zeros(4, dtype=torch.long)
    names = list(hook.params)

    def gradients():
        loss = hook.extra_loss(model, x, y, None)
        return dict(zip(names, torch.autograd.grad(loss, [hook.params[n] for n in names])))

    # iterations 0, 1: 0.1 on every weight; the choice comes after iteration 1 (update 1 reaches 0.2)
    assert hook.keep is None and hook.schedule.choice_step == 2
    for n, g in gradients().items():
        assert torch.allclose(g, 0.1 * hook.params[n].detach(), rtol=1e-6, atol=0)
    hook.after_step(model, 0)
    hook.after_step(model, 1)
    assert hook.keep is not None
    # iterations 2, 3: the choice is made, 0.2 still on every weight
    for n, g in gradients().items():
        assert torch.allclose(g, 0.2 * hook.params[n].detach(), rtol=1e-6, atol=0)
    hook.after_step(model, 2)
    hook.after_step(model, 3)
    # iteration 4: the chosen weights 0.2 + 0.4, the kept ones -0.01
    for n, g in gradients().items():
        w, keep = hook.params[n].detach(), hook.keep[n]
        assert torch.allclose(g, torch.where(keep, -0.01 * w, 0.6 * w), rtol=1e-6, atol=0)


def test_greg1_at_sparsity_zero_reports_no_penalty_level(tmp_path):
    """At sparsity 0 GReg-1 chooses no weight, so its penalty acts on nothing; history.csv still gave
    `penalty` 0.75, 1.25 ("the largest chosen-weight factor over the layers", of no weight: training
    audit). The column is empty when no weight is chosen, and the log says the phase is plain training."""
    import pandas as pd

    from conftest import run_cli

    args = [*FAST, "schedule=greg1", "sparsity=0", "schedule.delta=0.25", "schedule.interval=2", "schedule.stabilize_steps=3"]
    run_cli(args, tmp_path / "results")
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    rows = pd.read_csv(run_dir / "history.csv")
    regularize = rows[rows.phase == "regularize"]
    assert len(regularize) and regularize.penalty.isna().all(), regularize
    assert "chooses no weight" in (run_dir / "prune-run.log").read_text()
