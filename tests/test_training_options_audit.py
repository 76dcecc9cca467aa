"""The training audit of 2026-12-03: training options that were accepted but did nothing, or did not
do what they say (prune_cli/training.py, prune_cli/run/unused_options.py).

- a fine-tuning warm-up longer than fine-tuning (the LR never reached finetune.lr, the schedule never ran),
  refused for dense training already;
- a warm-up as long as dense training, which leaves train.lr_schedule, milestones and gamma no epoch, and
  lr_schedule=multistep without milestones (the constant schedule under another run id);
- weight_decay and l1 of a training config that trains zero epochs, and nothing else reads;
- (lr=0 stays allowed: a BatchNorm model's running statistics are recomputed, BN recalibration after pruning.)

Each "does nothing" / "never reaches" is checked by hand against the warm-up formula of
`training.lr_factor` ((t + 1e-12) / W for the fractional epoch t < W), never against the code's output.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST

STEPS = 4  # FAST: 120 training examples / batch_size 32 = 4 steps per epoch


def _found(args: list[str]):
    from helpers import validated

    from prune_cli.run.unused_options import unused_overrides

    return unused_overrides(validated(FAST, args), [*FAST, *args])


def _errors(args: list[str]) -> set[str]:
    return {f.key for f in _found(args) if f.error}


def _notes(args: list[str]) -> dict[str, str]:
    return {f.key: f.why for f in _found(args) if not f.error}


def _warmup_lrs(lr: float, warmup: int, epochs: int) -> list[float]:
    """By hand: the LR of each step of `epochs` epochs under a warm-up of `warmup` epochs, STEPS per epoch."""
    return [lr * (s / STEPS + 1e-12) / warmup for s in range(epochs * STEPS) if s / STEPS < warmup]


# ----------------------------------------------------------------------------- F1: a fine-tuning warm-up longer than fine-tuning


def test_a_finetuning_warmup_longer_than_finetuning_is_a_range_error():
    """finetune.warmup_epochs=5 with finetune.epochs=2 (oneshot: one Train step of finetune.epochs): every
    step is a warm-up step, the last one at (2 - 1/4) / 5 = 0.35 of finetune.lr, and the schedule never
    runs. Refused like train.warmup_epochs=5 with train.epochs=2, naming finetune.epochs."""
    from prune_cli.core.errors import ConfigError

    lrs = _warmup_lrs(0.01, 5, 2)
    assert len(lrs) == 2 * STEPS and max(lrs) == pytest.approx(0.01 * 0.35) and max(lrs) < 0.01
    with pytest.raises(ConfigError, match=r"'finetune.warmup_epochs': 5.*at most finetune.epochs=2") as err:
        _found(["finetune.warmup_epochs=5", "finetune.epochs=2", "sparsity=0.8"])
    assert err.value.key == "finetune.warmup_epochs"
    with pytest.raises(ConfigError, match=r"at most finetune.epochs=1"):
        _found(["finetune.warmup_epochs=2"])
    assert _errors(["finetune.warmup_epochs=2", "finetune.epochs=2"]) == set()  # as long as fine-tuning: accepted
    assert _errors(["finetune.warmup_epochs=5", "finetune.epochs=0"]) == set()  # no fine-tuning: a note (below)
    assert "finetune.warmup_epochs" in _notes(["finetune.warmup_epochs=5", "finetune.epochs=0"])


def test_a_finetuning_warmup_longer_than_finetuning_stops_the_run_before_any_work(finished_results):
    from helpers import refused_before_any_work

    args = [*FAST, "finetune.warmup_epochs=5", "finetune.epochs=2", "sparsity=0.8"]
    refused_before_any_work(args, finished_results, "'finetune.warmup_epochs': 5", "at most finetune.epochs=2")


def test_a_sweep_job_whose_finetuning_warmup_is_too_long_is_named(finished_results):
    """The refusal came from the unused-options pass over all jobs, outside the per-job list: one line without
    "job N of M", so the job it meant was not said."""
    from helpers import refused_before_any_work

    args = ["-m", *FAST, "finetune.epochs=1,5", "finetune.warmup_epochs=3"]
    refused_before_any_work(args, finished_results, "1 of 2 jobs", "job 1 of 2 (finetune.epochs=1)", "'finetune.warmup_epochs': 3")


# ----------------------------------------------------------------------------- F2: a warm-up as long as dense training


def test_a_warmup_as_long_as_dense_training_leaves_the_schedule_no_epoch():
    """train.warmup_epochs=2 with FAST's train.epochs=2: every step of dense training is a warm-up step
    ((t + 1e-12) / 2 for t = s/4 < 2), whatever the schedule, so lr_schedule, milestones and gamma
    changed nothing but the run id (cosine and constant gave identical results under two ids)."""
    assert len(_warmup_lrs(1.0, 2, 2)) == 2 * STEPS  # all 8 steps of the 2 epochs
    multistep = ["train.warmup_epochs=2", "train.lr_schedule=multistep", "train.milestones=[1]", "train.gamma=0.01"]
    assert _errors(multistep) == {"train.lr_schedule", "train.milestones", "train.gamma"}
    why = {f.key: f.why for f in _found(multistep)}["train.lr_schedule"]
    assert "train.warmup_epochs=2 covers all 2 epochs of dense training" in why, why
    assert _errors(["train.warmup_epochs=2", "train.lr_schedule=cosine"]) == {"train.lr_schedule"}
    assert _errors(["train.warmup_epochs=1", "train.lr_schedule=cosine"]) == set()  # epoch 2 is cosine's
    assert _errors(["train.warmup_epochs=1", *multistep[1:]]) == set()
    # a data-pruning proxy trains min(warmup, 5) = 2 warm-up epochs of its 5 with the train config: the schedule acts there
    assert _errors([*multistep, "data_pruning=el2n"]) == set()
    # ... but not a proxy as short as the warm-up, nor a rule that trains no model
    assert _errors([*multistep, "data_pruning=el2n", "data_pruning.proxy_epochs=2"]) == set(_errors(multistep))
    assert _errors([*multistep, "data_pruning=random"]) == set(_errors(multistep))
    # the default cosine schedule with a full-length warm-up: gamma and milestones still apply only with multistep
    # (the warm-up check returned before that one and let them through)
    for given in (["train.gamma=0.5"], ["train.milestones=[1]"]):
        found = {f.key: f.why for f in _found(["train.warmup_epochs=2", *given])}
        key = given[0].split("=")[0]
        assert key in _errors(["train.warmup_epochs=2", *given]) and "only with train.lr_schedule=multistep" in found[key]


@pytest.mark.parametrize("key", ["train", "finetune"])
def test_multistep_without_milestones_is_refused(key):
    """gamma ** (number of milestones passed) is 1 at every step with no milestone: the constant schedule
    under another run id. Refused naming the milestones that would make it act."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"'{key}.lr_schedule': 'multistep'.*only with {key}.milestones") as err:
        validated(FAST, f"{key}.lr_schedule=multistep")
    assert err.value.key == f"{key}.lr_schedule" and f"{key}.lr_schedule=constant" in str(err.value)
    validated(FAST, f"{key}.lr_schedule=multistep", f"{key}.milestones=[1]", f"{key}.epochs=2")


# ----------------------------------------------------------------------------- F3: weight decay and L1 of zero epochs


@pytest.mark.parametrize(
    "args, keys",
    [
        (["finetune.epochs=0", "finetune.weight_decay=0.3", "finetune.lr=0.3"], {"finetune.weight_decay", "finetune.lr"}),
        (["finetune.epochs=0", "finetune.l1=0.5"], {"finetune.l1"}),
        (["train.epochs=0", "sparsity=0.5", "train.l1=0.5", "train.weight_decay=0.3"], {"train.l1", "train.weight_decay"}),
        # the pruning-limit metric reads train.l1, not the weight decay
        (["train.epochs=0", "train.weight_decay=0.3", "metrics.pruning_limit.enabled=true"], {"train.weight_decay"}),
        # Undecayed Pruning with its lambda given: nothing interpolates train.weight_decay
        (["train.epochs=0", "method=undecayed", "method.lam=0.001", "train.weight_decay=0.3"], {"train.weight_decay"}),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(sorted(v)),
)
def test_weight_decay_and_l1_of_a_config_that_trains_zero_epochs_are_noted(args, keys):
    notes = _notes(args)
    assert keys <= set(notes), notes
    assert all(notes[k].startswith("no step of this run trains") for k in keys)
    assert not _errors(args) & keys


@pytest.mark.parametrize(
    "args, key",
    [
        (
            ["train.epochs=0", "sparsity=0.5", "train.weight_decay=0.3", "finetune.weight_decay=${train.weight_decay}"],
            "train.weight_decay",
        ),
        (["train.epochs=0", "sparsity=0.5", "train.l1=0.3", "finetune={l1:'${train.l1}'}"], "train.l1"),
        (["train.epochs=0", "train.weight_decay=0.3", "method=undecayed"], "train.weight_decay"),  # lam: ${train.weight_decay}
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_weight_decay_and_l1_another_part_of_the_run_reads_are_not_noted(args, key):
    """Control: fine-tuning trains with what it interpolates from the train config, and Undecayed
    Pruning's lambda is train.weight_decay (configs/method/undecayed.yaml), so neither does nothing."""
    assert key not in {f.key for f in _found(args)}


def test_zero_epochs_of_training_leave_the_weights_whatever_the_decay_and_l1():
    """The fact the notes rest on: train() with epochs=0 takes no optimizer step."""
    from helpers import three_blobs

    from prune_cli.training import TrainConfig, train

    data = three_blobs(30, 4, 20)
    model_before = torch.nn.Linear(4, 3)
    for options in ({"weight_decay": 0.3}, {"l1": 0.5}):
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 0, "batch_size": 8, **options})
        model = torch.nn.Linear(4, 3)
        model.load_state_dict(model_before.state_dict())
        model.prunable_layers = lambda m=model: [("w", m)]
        assert train(model, data, cfg, torch.Generator().manual_seed(0), "finetuned") == []
        assert torch.equal(model.weight, model_before.weight)


# ----------------------------------------------------------------------------- F4: lr = 0


@pytest.mark.parametrize("key", ["train", "finetune"])
def test_a_learning_rate_of_zero_is_allowed(key):
    """lr=0 leaves the weights where they are, but a BatchNorm model's running statistics are recomputed on the
    training data (BN recalibration after pruning), which epochs=0 does not do: a refusal of it (briefly, on
    2026-12-03) took that away."""
    from helpers import validated

    validated(FAST, f"{key}.lr=0")


# ----------------------------------------------------------------------------- training-time methods' own fine-tuning phases
# (session 6 of 2026-12-03: ADMM, AutoPrune, GReg and min-max train the finetune config in phases of other
# lengths; the checks above looked only at plain fine-tuning and let every such plan through)


def test_a_finetuning_warmup_longer_than_every_autoprune_phase_is_a_range_error():
    """schedule=autoprune trains its gating phase with the finetune config for at most schedule.prune_epochs epochs,
    warm-up and schedule included, then fine-tunes finetune.epochs. A warm-up of 4 epochs with phases of 2 and 3: by
    hand, every step of both is a warm-up step and the LR never reaches finetune.lr. A warm-up of 3 with a gating
    phase of 2 and 6 epochs of fine-tuning still reaches finetune.lr in fine-tuning: accepted (review of the sixth
    session of 2026-12-03: it was refused as longer than the gating phase)."""
    from prune_cli.core.errors import ConfigError

    assert all(lr < 0.01 for lr in _warmup_lrs(0.01, 4, 3)) and len(_warmup_lrs(0.01, 4, 3)) == 3 * STEPS
    assert len(_warmup_lrs(0.01, 3, 6)) == 3 * STEPS < 6 * STEPS  # fine-tuning: the schedule runs from epoch 3
    args = ["schedule=autoprune", "sparsity=0.8", "finetune.lr=0.01"]
    with pytest.raises(ConfigError, match=r"'finetune.warmup_epochs': 4.*at most finetune.epochs=3") as err:
        _found([*args, "schedule.prune_epochs=2", "finetune.epochs=3", "finetune.warmup_epochs=4"])
    assert err.value.key == "finetune.warmup_epochs"
    with pytest.raises(ConfigError, match=r"at most the 3 epochs of phase 'autoprune' of schedule=autoprune, its longest"):
        _found([*args, "schedule.prune_epochs=3", "finetune.epochs=2", "finetune.warmup_epochs=4"])
    assert _errors([*args, "schedule.prune_epochs=2", "finetune.epochs=6", "finetune.warmup_epochs=3"]) == set()


def test_a_finetuning_warmup_longer_than_minmaxs_adversarial_finetuning_is_a_range_error():
    """schedule=minmax fine-tunes in its own step (adversarially regularized, finetune.epochs long)."""
    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'finetune.warmup_epochs': 5.*at most the 2 epochs of phase 'finetuned'"):
        _found(["schedule=minmax", "sparsity=0.5", "finetune.epochs=2", "finetune.warmup_epochs=5"])
    assert _errors(["schedule=minmax", "sparsity=0.5", "finetune.epochs=2", "finetune.warmup_epochs=2"]) == set()


def test_a_phase_that_holds_the_lr_constant_does_not_read_the_finetune_schedule():
    """ADMM's regularization phase trains the finetune config at a constant LR (no warm-up, no schedule;
    prune_cli/run/experiment.py `_step_train_with_hook`): only its plain fine-tuning reads the schedule. A
    warm-up as long as that fine-tuning leaves finetune.lr_schedule no epoch, as with schedule=oneshot; a
    warm-up longer than fine-tuning is an error, also here; one longer than the ADMM phase is not."""
    from prune_cli.core.errors import ConfigError

    args = ["schedule=admm", "sparsity=0.8", "finetune.epochs=2", "schedule.epochs=4"]
    found = {f.key: f.why for f in _found([*args, "finetune.warmup_epochs=2", "finetune.lr_schedule=cosine"])}
    assert "finetune.lr_schedule" in _errors([*args, "finetune.warmup_epochs=2", "finetune.lr_schedule=cosine"])
    assert "covers all 2 epochs of fine-tuning" in found["finetune.lr_schedule"], found
    assert _errors([*args, "finetune.warmup_epochs=1", "finetune.lr_schedule=cosine"]) == set()
    with pytest.raises(ConfigError, match=r"at most finetune.epochs=2"):
        _found([*args, "finetune.warmup_epochs=3"])
    assert _errors(["schedule=admm", "sparsity=0.8", "finetune.epochs=6", "schedule.epochs=4", "finetune.warmup_epochs=5"]) == set()


def test_a_milestone_inside_autoprunes_longer_gating_phase_is_not_refused():
    """A multistep milestone at epoch 3 may act in a gating phase of up to 4 epochs (gamma from epoch 3 on, where the
    gates have not reached the target by then), though fine-tuning trains only 2; with a gating phase of at most 2
    it acts nowhere (by hand: gamma ** #{m <= t})."""
    multistep = ["schedule=autoprune", "sparsity=0.8", "finetune.epochs=2", "finetune.lr_schedule=multistep"]
    multistep += ["finetune.milestones=[3]", "finetune.gamma=0.5"]
    assert [0.5 ** sum(t >= m for m in [3]) for t in range(4)] == [1, 1, 1, 0.5]
    assert _errors([*multistep, "schedule.prune_epochs=4"]) == set()
    found = {f.key: f.why for f in _found([*multistep, "schedule.prune_epochs=2"])}
    assert {"finetune.milestones", "finetune.gamma"} <= set(found), found
    assert "2 epochs of fine-tuning and 2 epochs of phase 'autoprune'" in found["finetune.milestones"] or (
        "2 epochs of phase 'autoprune' and 2 epochs of fine-tuning" in found["finetune.milestones"]
    ), found
