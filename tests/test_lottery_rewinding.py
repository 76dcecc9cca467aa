"""Lottery-ticket schedules as the papers define them: the random-reinitialisation control (Frankle &
Carbin, ICLR 2019), weight rewinding with the LR schedule resumed at the rewind epoch (Frankle et
al. 2020, "Linear mode connectivity and the lottery ticket hypothesis"; Renda et al. 2020) and
Renda et al.'s learning-rate rewinding (trained weights, the last epochs of the LR schedule)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from conftest import FAST, run_cli
from helpers import assert_same_run, validated
from prune_cli.core.identity import config_hash
from prune_cli.core.random_streams import derived_seed
from prune_cli.models import build_model
from prune_cli.run.experiment import Experiment
from prune_cli.schedules import SCHEDULES
from prune_cli.schedules.steps import Dense, Prune, Record, Restart, Train, round_density
from tests.helpers import compose
from tests.reference_runs import ReferenceRuns, crash_and_resume

TINY = [*FAST, "dataset.input_dim=6", "model.widths=[32,32]", "method.allocation=layerwise"]
LOTTERY = [*TINY, "schedule=lottery_ticket", "schedule.rounds=3", "train.epochs=3", "sparsity=0.8"]


def traced_run(cfg, run_dir):
    """Run `cfg`'s plan; the masks after each pruning event, the weights of each recorded phase, and the
    weights right after each restart by source (with the masks then)."""
    exp = Experiment(cfg, run_dir)
    masks, recorded, restarts = [], {}, {}
    prune, record, restart = exp._step_prune, exp._step_record, exp._step_restart

    def spy_prune(density):
        prune(density)
        masks.append({k: v.clone() for k, v in exp.masks.items()})

    def spy_record(phase):
        record(phase)
        recorded[phase] = {k: v.clone() for k, v in exp.model.state_dict().items()}

    def spy_restart(source):
        restart(source)
        state = {k: v.clone() for k, v in exp.model.state_dict().items()}
        restarts.setdefault(source, []).append((state, {k: v.clone() for k, v in exp.masks.items()}))

    exp._step_prune, exp._step_record, exp._step_restart = spy_prune, spy_record, spy_restart
    exp.run_plan(SCHEDULES.get(cfg.schedule.name)(cfg))
    return exp, masks, recorded, restarts


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_the_reinit_control_keeps_the_rewinding_run_s_masks_and_records_fresh_draws(tmp_path, rewind_epoch):
    """Frankle & Carbin (ICLR 2019), random reinitialisation: the winning ticket's mask of every level
    (IMP with rewinding) with new initial values. The control re-drew, retrained and pruned its own
    reinit-trained network, so its masks from the second level on were not the tickets' masks."""
    args = [*LOTTERY, f"schedule.rewind_epoch={rewind_epoch}"]
    rewind = compose([*args, "schedule.restart_from=rewind"], tmp_path / "results")
    reinit = compose([*args, "schedule.restart_from=reinit"], tmp_path / "results")
    _, ticket_masks, ticket_weights, _ = traced_run(rewind, tmp_path / "rewind")
    exp, control_masks, control_weights, restarts = traced_run(reinit, tmp_path / "reinit")
    redrawn = restarts["reinit"]
    assert len(ticket_masks) == len(control_masks) == 3
    for level, (a, b) in enumerate(zip(ticket_masks, control_masks), start=1):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"level {level}"
    # each level's recorded model: the seeded fresh draw of that level under its mask, trained
    assert len(redrawn) == 3
    for level, (state, masks) in enumerate(redrawn, start=1):
        assert all(torch.equal(masks[k], control_masks[level - 1][k]) for k in masks)
        torch.manual_seed(derived_seed(reinit.seed, f"reinit-{level}"))
        fresh = build_model(reinit.model, exp.data.input_shape, exp.data.num_classes).state_dict()
        for name, value in state.items():
            expected = fresh[name] * masks[name] if name in masks else fresh[name]
            assert torch.equal(value, expected), (level, name)
    for phase in ("round_1", "round_2", "finetuned"):
        assert not any(torch.equal(control_weights[phase][k], ticket_weights[phase][k]) for k in control_masks[0]), phase
        for name, mask in control_masks[-1 if phase == "finetuned" else int(phase[-1]) - 1].items():
            assert torch.all(control_weights[phase][name][~mask] == 0)
    # the pruned model of the last level is the trajectory's, the same in both runs
    assert all(torch.equal(control_weights["pruned"][k], ticket_weights["pruned"][k]) for k in ticket_weights["pruned"])
    history = pd.DataFrame(exp.history)
    assert list(dict.fromkeys(history.phase)) == ["dense", "round_1", "rewind_round_1", "round_2", "rewind_round_2", "finetuned"]


@pytest.mark.parametrize("schedule", [["schedule=post_prune_reinit"], ["schedule=oneshot", "schedule.restart_from=reinit"]])
def test_a_single_round_reinit_plan_is_unchanged(schedule):
    """rounds == 1: the one mask comes from the dense trained model already; the survivors are re-drawn
    once and trained with the schedule's retrain config."""
    cfg = validated([*TINY, *schedule, "sparsity=0.8"])
    retrain = "train" if schedule[0] == "schedule=post_prune_reinit" else "finetune"
    expected = [Dense(), Record("dense"), Prune(1.0 - 0.8), Record("pruned"), Restart("reinit"), Train(retrain), Record("finetuned")]
    assert SCHEDULES.get(cfg.schedule.name)(cfg) == expected


def test_the_reinit_control_plan_trains_the_rewinding_trajectory_after_each_level_but_the_last():
    plan = SCHEDULES.get("lottery_ticket")(validated([*LOTTERY, "schedule.restart_from=reinit", "schedule.rewind_epoch=1"]))
    kinds = [step.kind for step in plan]
    level = ["prune", "branch", "restart", "train", "record", "rejoin", "restart", "train"]
    assert kinds == ["dense", "record", *level, *level, "prune", "record", "restart", "train", "record"]
    assert [s.source for s in plan if s.kind == "restart"] == ["reinit", "rewind", "reinit", "rewind", "reinit"]
    # the control is trained from its fresh draw at epoch 0; the trajectory as the rewinding run (LR from k=1)
    assert [(s.start_epoch, s.phase) for s in plan if s.kind == "train"] == [
        (0, ""),
        (1, "rewind_round_1"),
        (0, ""),
        (1, "rewind_round_2"),
        (0, ""),
    ]
    assert [s.density for s in plan if s.kind == "prune"] == pytest.approx([round_density(0.2, r, 3) for r in (1, 2, 3)])


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> ReferenceRuns:
    return ReferenceRuns(tmp_path_factory.mktemp("references"))


@pytest.mark.xdist_group("lottery_reference_runs")
@pytest.mark.parametrize("crash_at", [("round_1", 1), ("rewind_round_1", 2)])
def test_the_reinit_control_resumes_inside_and_after_its_branch(tmp_path, monkeypatch, reference_runs, crash_at):
    """A crash while training the control of level 1 (the random streams set aside for the rewinding
    trajectory live only in the checkpoint) or the trajectory after it: the resumed run equals the
    uninterrupted one."""
    overrides = [*LOTTERY, "schedule.restart_from=reinit", "schedule.rewind_epoch=1", "schedule.rounds=2", "dense_cache.enabled=false"]
    reference = reference_runs(overrides)
    run_dir = crash_and_resume(reference, tmp_path, monkeypatch, overrides, crash_at)
    assert_same_run(reference, run_dir, tables=("metrics.csv", "history.csv"))


def cosine_lr(base, epoch_end, epochs, steps_per_epoch):
    """The LR a history row shows for the epoch ending at `epoch_end`: that of its last optimizer step,
    taken at (epoch_end * steps - 1) / steps epochs into a cosine schedule over `epochs`."""
    t = (epoch_end * steps_per_epoch - 1) / steps_per_epoch
    return base * 0.5 * (1 + math.cos(math.pi * t / epochs))


STEPS = math.ceil(162 / 32)  # FAST: 3 classes x 60 examples, 10 % held out, batches of 32


def test_rewinding_to_an_epoch_resumes_the_lr_schedule_there_by_default(tmp_path):
    """Frankle et al. 2020 and Renda et al. 2020's weight rewinding: weights AND learning rate go back
    to epoch k, and retraining runs the remaining T - k epochs. The default (lr_rewind false) retrained
    all T epochs from the rewound weights with the LR schedule from epoch 0."""
    args = [*FAST, "train.epochs=4", "train.lr=0.1", "train.lr_schedule=cosine", "schedule=lottery_ticket"]
    run_cli([*args, "schedule.rounds=1", "schedule.rewind_epoch=1"], tmp_path / "results")
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    history = pd.read_csv(run_dir / "history.csv")
    retrain = history[history.phase == "finetuned"].set_index("epoch").lr
    assert list(retrain.index) == [2, 3, 4]
    assert retrain.to_dict() == pytest.approx({e: cosine_lr(0.1, e, 4, STEPS) for e in (2, 3, 4)})
    log = (run_dir / "prune-run.log").read_text()
    assert "schedule.lr_rewind=true (null: decided by restart_from, retrain and rewind_epoch)" in log


def test_the_run_id_tells_which_lr_behaviour_ran():
    """lr_rewind null is hashed as the value it stands for: the same id as the explicit value, another
    id than the other behaviour, and the ids of runs that set it explicitly are kept."""
    base = [*TINY, "schedule=lottery_ticket", "train.epochs=3"]
    rewound = validated([*base, "schedule.rewind_epoch=1"])
    assert rewound.schedule.lr_rewind is None
    assert config_hash(rewound) == config_hash(validated([*base, "schedule.rewind_epoch=1", "schedule.lr_rewind=true"]))
    assert config_hash(rewound) != config_hash(validated([*base, "schedule.rewind_epoch=1", "schedule.lr_rewind=false"]))
    assert config_hash(validated(base)) == config_hash(validated([*base, "schedule.lr_rewind=false"]))
    for restart in ("rewind", "reinit"):  # a sweep schedule.restart_from=rewind,reinit with the defaults
        validated([*base, f"schedule.restart_from={restart}"])


@pytest.mark.parametrize("rewind_epoch", [1, 3])
def test_lr_rewinding_retrains_the_trained_weights_over_the_last_epochs_of_the_schedule(tmp_path, rewind_epoch):
    """Renda et al. 2020's learning-rate rewinding: keep the final trained (pruned) weights and retrain
    for t = T - k epochs, replaying the last t epochs of the LR schedule (restart_from=trained,
    retrain=train, lr_rewind=true, rewind_epoch=k). It was refused unless restart_from=rewind."""
    args = [*TINY, "train.epochs=4", "train.lr=0.1", "train.lr_schedule=cosine", "schedule=oneshot", "sparsity=0.5"]
    args += ["schedule.retrain=train", "schedule.lr_rewind=true", f"schedule.rewind_epoch={rewind_epoch}"]
    cfg = compose(args, tmp_path / "results")
    exp, masks, recorded, restarts = traced_run(cfg, tmp_path / "run")
    history = pd.DataFrame(exp.history)
    retrain = history[history.phase == "finetuned"].set_index("epoch").lr
    epochs = list(range(rewind_epoch + 1, 5))
    assert list(retrain.index) == epochs
    assert retrain.to_dict() == pytest.approx({e: cosine_lr(0.1, e, 4, STEPS) for e in epochs})
    # retraining started from the trained dense weights under the mask
    [(start, _)] = restarts["trained"]
    assert all(
        torch.equal(start[k], recorded["dense"][k] * masks[0][k]) if k in masks[0] else torch.equal(start[k], v)
        for k, v in recorded["dense"].items()
    )
