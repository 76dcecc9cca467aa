"""Options that change nothing in a run of a training-time schedule, of gradual pruning on a short
training run, and a class_balanced keep too small for every class: refused before any work (the
unused-options audit of 2026-12-03, findings F1, F2, F3 and F5).

Each refused case trained the same final model as the run without the override under a run id of
its own (checked by comparing the saved model files of the two runs): min-max at sparsity 0 with
another method or allocation, ADMM at sparsity 0 with the other allocation, AutoPrune at sparsity 0
with other gate options (aux_lr, reg, surrogate, leak), min-max at adv_lambda=0 with other attack
options, gradual with schedule.power over a window of two events.
"""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli, snapshot

pytestmark = pytest.mark.xdist_group("unused_options")

MINMAX = ["schedule=minmax", "dataset.val_fraction=0.2"]


def _found(args: list[str]):
    from helpers import validated

    from prune_cli.run.unused_options import unused_overrides

    return unused_overrides(validated(FAST, args), [*FAST, *args])


def _errors(args: list[str]) -> dict[str, str]:
    return {f.key: f.why for f in _found(args) if f.error}


@pytest.mark.parametrize(
    "args, key",
    [
        ([*MINMAX, "method=snip"], "method"),
        ([*MINMAX, "method.allocation=erk"], "method.allocation"),
        (["schedule=admm", "method.allocation=global"], "method.allocation"),
        (["schedule=autoprune", "method.allow_collapse=true"], "method.allow_collapse"),
    ],
    ids=["minmax-method", "minmax-allocation", "admm-allocation", "autoprune-allow_collapse"],
)
def test_the_method_of_a_training_time_schedule_that_prunes_nothing_is_unused(args, key):
    """F1: min-max's attack never reads the method and prunes nothing at sparsity 0; ADMM's projection
    and AutoPrune's frozen gates keep every weight at density 1, whatever the allocation."""
    errors = _errors([*args, "sparsity=0"])
    assert key in errors and "no weight is pruned here (sparsity=0" in errors[key], errors
    assert key not in _errors([*args, "sparsity=0.5"])  # it acts as soon as something is pruned


def test_what_acts_in_a_training_time_schedule_at_sparsity_zero_is_not_refused():
    # which weights are prunable: the penalties, gates and cost metrics read it
    for schedule in (MINMAX, ["schedule=admm"], ["schedule=autoprune"], ["schedule=greg2"]):
        assert _errors([*schedule, "method.exclude_classifier=true", "sparsity=0"]) == {}, schedule
    assert _errors(["schedule=admm", "schedule.rho=0.5", "sparsity=0"]) == {}  # the penalty pulls W toward the last Z
    assert _errors(["schedule=greg2", "method.allocation=global", "sparsity=0"]) == {}  # GReg-2: as before
    # the first step's gates: open for every nonzero weight whatever aux_init, but a weight that is exactly 0 has a
    # closed gate with aux_init_mode=magnitude
    assert _errors(["schedule=autoprune", "schedule.aux_init=0.5", "schedule.aux_init_mode=constant", "sparsity=0"]) == {}
    # without stop_at_target the gates decide the sparsity
    free = ["schedule=autoprune", "schedule.stop_at_target=false", "sparsity=0", "schedule.reg=0.01"]
    assert set(_errors(free)) == {"sparsity"}


@pytest.mark.parametrize("option", ["aux_lr=5", "reg=0.01", "surrogate=identity", "leak=0.5"])
def test_autoprune_gate_options_at_sparsity_zero_are_unused(option):
    """F1: the target prunes N - round(N) = 0 weights, so the gates freeze after the first step with every
    weight kept; the gates' updates (aux_lr, reg, surrogate, leak) come after that step's forward pass."""
    key = f"schedule.{option.split('=')[0]}"
    errors = _errors(["schedule=autoprune", f"schedule.{option}", "sparsity=0"])
    assert key in errors and "the gates freeze after the first step" in errors[key], errors
    # review of e6cc200, F2: the gates' update is read (history's gate_sparsity moves), the model is not changed by it
    assert "the model is the same" in errors[key] and "only gate_sparsity in history.csv" in errors[key], errors[key]
    assert "never read" not in errors[key]
    assert key not in _errors(["schedule=autoprune", f"schedule.{option}", "sparsity=0.5"])


def test_autoprune_gates_freeze_at_the_first_step_at_sparsity_zero():
    """What the refusal rests on, with the hook itself: at density 1 after_step returns the all-kept mask at
    step 1, and nothing after it reads the auxiliary parameters."""
    import torch
    from omegaconf import OmegaConf

    from prune_cli.pruning.train_time import HookContext
    from prune_cli.pruning.train_time.autoprune import AutoPruneHook

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    config = OmegaConf.create(
        {
            "schedule": {
                "aux_lr": 5.0,
                "aux_init": 0.2,
                "reg": 0.5,
                "aux_init_mode": "magnitude",
                "surrogate": "identity",
                "leak": 0.1,
                "stop_at_target": True,
            },
            "method": {"allow_collapse": False},
        }
    )
    ctx = HookContext(config=config, prune=None, prunable=("0.weight", "2.weight"), density=1.0)
    hook = AutoPruneHook(ctx)
    hook.start(model)
    assert all(bool(g.all()) for g in hook.gates().values())  # every gate open at the first forward
    loss = hook.forward(model, torch.randn(5, 4)).sum()
    loss.backward()
    hook.before_step(model, 0)
    masks = hook.after_step(model, 0)
    assert masks is not None and all(bool(m.all()) for m in masks.values()) and hook.finished()


@pytest.mark.parametrize("option", ["attack_lr=0.01", "attack_steps=3", "attack_width=8"])
def test_minmax_attack_options_without_the_adversarial_term_are_unused(option):
    """F3: with adv_lambda=0 the classifier's loss adds 0 x the attack's gain: the model is the same whatever the
    attack (only history's attack_loss, the attack's own loss, moves)."""
    key = f"schedule.{option.split('=')[0]}"
    errors = _errors([*MINMAX, "schedule.adv_lambda=0", f"schedule.{option}"])
    assert key in errors and "adv_lambda=0" in errors[key], errors
    assert _errors([*MINMAX, "schedule.adv_lambda=0.5", f"schedule.{option}"]) == {}


def test_gradual_power_over_two_events_of_the_default_window_is_unused():
    """F2: FAST trains 2 epochs of ceil(162 / 32) = 6 steps: 12 optimizer steps, so with end_step -1 the window is
    steps 0..11 and the default frequency 100 gives the events 0 and 11 only; the power shapes no event."""
    errors = _errors(["schedule=gradual", "schedule.power=1"])
    assert set(errors) == {"schedule.power"}, errors
    assert "schedule.end_step=-1 (the last of training's 12 optimizer steps, step 11)" in errors["schedule.power"]
    assert _errors(["schedule=gradual", "schedule.frequency=5", "schedule.power=1"]) == {}  # events 0, 5, 10, 11
    # one optimizer step: one event, straight to sparsity
    one = ["schedule=gradual", "train.epochs=1", "train.batch_size=1000"]
    assert set(_errors([*one, "schedule.power=1", "schedule.initial_sparsity=0.1"])) == {"schedule.power", "schedule.initial_sparsity"}
    # a random subset: the steps are known only once loaded (the run's log warns then)
    assert _errors(["schedule=gradual", "dataset.max_train_samples=50", "schedule.power=1"]) == {}


def test_gradual_s_default_window_of_two_events_is_a_warning_in_the_log(tmp_path):
    """F2: frequency 50 over 12 steps is the default's two events; not an error (nothing typed is ignored by
    itself: any frequency >= 11 gives them), but said in the run's log."""
    results = tmp_path / "results"
    run_cli([*FAST, "schedule=gradual", "sparsity=0.5", "schedule.frequency=50"], results)
    (run_dir,) = (results / "runs").iterdir()
    log = (run_dir / "prune-run.log").read_text()
    assert "schedule=gradual: training has 12 optimizer steps" in log and "only two pruning events" in log, log


@pytest.mark.parametrize(
    "start, frequency, said",
    [
        (
            11,
            100,
            "single pruning event, straight to sparsity, so schedule.power=3, schedule.initial_sparsity=0.0 and "
            "schedule.frequency=100 change nothing; lower schedule.start_step (below 11, the last step)",
        ),
        (
            10,
            1,
            "only two pruning events (initial_sparsity, sparsity), and schedule.power=3 changes nothing; lower "
            "schedule.start_step (below 10)",
        ),
        (0, 50, "lower schedule.frequency (below 11)"),
    ],
    ids=["one-event", "two-events-one-step-apart", "two-events"],
)
def test_gradual_s_warning_advises_only_what_gives_more_events(caplog, start, frequency, said):
    """Review of e6cc200, F1: a window of one event (start_step at the last step) or of two events one
    step apart was told to lower schedule.frequency below 1 or to set schedule.end_step; frequency is >= 1
    and end_step cannot pass the last step, so only an earlier start_step gives more events."""
    from omegaconf import OmegaConf

    from prune_cli.schedules.gradual import gradual_sparsity

    schedule = OmegaConf.create({"start_step": start, "end_step": -1, "frequency": frequency, "initial_sparsity": 0.0, "power": 3})
    with caplog.at_level("WARNING", logger="prune_cli.schedules.gradual"):
        gradual_sparsity(schedule, 0.5, 12)
    (record,) = caplog.records
    assert said in record.getMessage(), record.getMessage()
    assert "end_step for" not in record.getMessage() and "below 1)" not in record.getMessage()


def test_unused_training_time_overrides_stop_prune_run_before_any_work(finished_results):
    before = snapshot(finished_results)
    proc = run_cli([*FAST, "schedule=autoprune", "sparsity=0", "schedule.reg=0.01"], finished_results, check=False)
    assert proc.returncode == 2 and "'schedule.reg=0.01' has no effect in this run" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


@pytest.mark.parametrize("keep, kept", [("0.01", 2), ("0.001", 1)])
def test_class_balanced_keep_below_one_example_per_class_stops_before_any_work(finished_results, keep, kept):
    """F5: 162 training examples of 3 classes; round(keep x 162) examples cannot give every class one, and
    class_balanced's per-class counts would be unequal. The smallest keep: round(0.015433 x 162) = 3."""
    before = snapshot(finished_results)
    proc = run_cli([*FAST, "data_pruning=class_balanced", f"data_pruning.keep={keep}"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"'data_pruning.keep': {keep}" in proc.stderr and f"round(keep x 162) keeps {kept}" in proc.stderr, proc.stderr
    assert "keep >= 0.015433 keeps one of each" in proc.stderr
    assert snapshot(finished_results) == before


def test_class_balanced_keep_of_one_example_per_class_passes():
    from helpers import validated

    validated(FAST, ["data_pruning=class_balanced", "data_pruning.keep=0.015433"])


def test_class_balanced_keep_too_small_for_a_random_subset_stops_before_training():
    """Where the counts are known only once loaded (a random subset), the rule refuses before it selects."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.data.pruning.class_balanced import check_every_class_kept, smallest_keep_for

    with pytest.raises(ConfigError, match=r"round\(keep x 90\) keeps 2"):
        check_every_class_kept(0.02, [30, 30, 30])
    check_every_class_kept(smallest_keep_for(3, 90), [30, 30, 30])
    check_every_class_kept(0.02, [60, 30, 0])  # an empty class is not the rule's: two classes, two examples
