"""Schedules, lottery-ticket rewinding, gradual pruning, the dense cache and resume after a crash."""

from __future__ import annotations

import json
import signal
import time

import pandas as pd
import pytest
import torch

from cli_runner import start_forked
from conftest import FAST, run_cli
from tests.reference_runs import ReferenceRuns, crash_and_resume

from prune_cli.run.dense_cache import dense_key
from prune_cli.run.experiment import Experiment, run
from prune_cli.schedules import SCHEDULES
from tests.helpers import compose

TINY = [*FAST, "dataset.input_dim=6", "model.widths=[32,32]", "method.allocation=layerwise"]


def finished_rows(results_dir, table="metrics.csv"):
    run_dir = next((results_dir / "runs").iterdir())
    return pd.read_csv(run_dir / table)


def sparsity_by_phase(rows):
    s = rows[rows.metric == "sparsity_prunable"]
    return dict(zip(s.phase, s.value))


def test_iterative_plan_prunes_the_same_fraction_each_round(tmp_path):
    cfg = compose([*TINY, "schedule=iterative", "schedule.rounds=4", "sparsity=0.9"], tmp_path)
    targets = [step.args[0] for step in SCHEDULES.get("iterative")(cfg) if step.kind == "prune"]  # densities
    assert targets == pytest.approx([0.1 ** (r / 4) for r in (1, 2, 3, 4)])
    remaining = [1.0, *targets]
    ratios = [b / a for a, b in zip(remaining, remaining[1:])]
    assert ratios == pytest.approx([0.1**0.25] * 4)


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_lottery_ticket_rewinds_survivors_to_the_saved_weights(tmp_path, rewind_epoch):
    cfg = compose(
        [
            *TINY,
            "schedule=lottery_ticket",
            "schedule.rounds=3",
            f"schedule.rewind_epoch={rewind_epoch}",
            "train.epochs=2",
            "sparsity=0.8",
        ],
        tmp_path,
    )
    run_dir = tmp_path / "run"
    exp = Experiment(cfg, run_dir)
    restarts = []
    original = exp._step_restart

    def spy(source):
        original(source)
        restarts.append(({k: v.clone() for k, v in exp.model.state_dict().items()}, {k: v.clone() for k, v in exp.masks.items()}))

    exp._step_restart = spy
    exp.run_plan(SCHEDULES.get(cfg.schedule.name)(cfg))
    cache_dir = next(p for p in (tmp_path / "dense_cache").iterdir() if p.is_dir())
    saved = torch.load(cache_dir / ("init.pt" if rewind_epoch == 0 else f"epoch_{rewind_epoch}.pt"), weights_only=True)
    assert len(restarts) == 3
    for state, masks in restarts:
        for name, mask in masks.items():
            assert torch.equal(state[name][mask], saved[name][mask])
            assert torch.all(state[name][~mask] == 0)
        biases = [n for n in state if n.endswith("bias")]
        assert all(torch.equal(state[n], saved[n]) for n in biases)
    rows = pd.DataFrame(exp.tables["metrics.csv"])
    achieved = sparsity_by_phase(rows)
    total = sum(m.numel() for m in exp.masks.values())
    for phase, r in (("round_1", 1), ("round_2", 2), ("finetuned", 3)):
        assert abs(achieved[phase] - (1 - 0.2 ** (r / 3))) <= 3 / total  # one weight per layer


def test_gradual_sparsity_follows_the_cubic_curve(tmp_path):
    results = tmp_path / "results"
    cfg = compose(
        [
            *TINY,
            "schedule=gradual",
            "train.epochs=4",
            "schedule.start_step=2",
            "schedule.frequency=5",
            "schedule.initial_sparsity=0.1",
            "sparsity=0.9",
        ],
        results,
    )
    run(cfg, tmp_path / "run")
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    achieved = {int(p.split("_")[1]): v for p, v in sparsity_by_phase(rows).items() if p.startswith("step_")}
    steps_per_epoch = -(-162 // 32)  # 3 classes x 60 examples, 10 % held out
    t_end = 4 * steps_per_epoch - 1
    expected_steps = sorted({*range(2, t_end + 1, 5), t_end})
    assert sorted(achieved) == expected_steps
    total = 6 * 32 + 32 * 32 + 32 * 3
    for t, value in achieved.items():
        closed_form = 0.9 + (0.1 - 0.9) * (1 - (t - 2) / (t_end - 2)) ** 3
        assert abs(value - closed_form) <= 3 / total
    assert sparsity_by_phase(rows)["finetuned"] == pytest.approx(0.9, abs=3 / total)


@pytest.mark.parametrize("start, end", [(5, 5), (11, -1)])
def test_gradual_with_one_event_prunes_to_the_target(start, end):
    """start_step == end_step (or -1 with start_step the last of 12 steps): Zhu & Gupta's curve at
    t = t_end is s_f, but the single event pruned to initial_sparsity (progress 0/max(0, 1)), so the
    run finished at sparsity 0.0 with target 0.9 and exit 0."""
    from omegaconf import OmegaConf

    from prune_cli.schedules.gradual import gradual_sparsity

    schedule = OmegaConf.create({"start_step": start, "end_step": end, "frequency": 3, "initial_sparsity": 0.0, "power": 3.0})
    assert gradual_sparsity(schedule, 0.9, 12) == {start: 0.9}


def test_dense_cache_key_ignores_method_and_sparsity_but_not_training(tmp_path):
    base = compose(TINY, tmp_path)
    same = compose([*TINY, "method=random", "sparsity=0.5", "schedule=iterative", "finetune.lr=0.5"], tmp_path)
    other_lr = compose([*TINY, "train.lr=0.2"], tmp_path)
    other_seed = compose([*TINY, "seed=1"], tmp_path)
    assert dense_key(base, "cpu") == dense_key(same, "cpu")
    assert len({dense_key(base, "cpu"), dense_key(other_lr, "cpu"), dense_key(other_seed, "cpu")}) == 3


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def magnitude_random_sweep(tmp_path_factory):
    """`prune-run -m method=magnitude,random`: magnitude trains the dense model (a miss), random loads
    it (a hit). Read by the sweep test and, as the cache hit, by the hit-and-miss test (one sweep
    instead of three runs)."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    proc = run_cli(["-m", *TINY, "method=magnitude,random", "sparsity=0.5"], results)
    return results, proc


def test_two_method_sweep_trains_the_dense_model_once(magnitude_random_sweep):
    results, proc = magnitude_random_sweep
    runs = pd.read_csv(results / "runs.csv")
    per_run = runs.groupby("method").dense_cache.first().to_dict()
    assert sorted(per_run.values()) == ["hit", "miss"]
    log = proc.stdout + proc.stderr
    assert log.count("dense epoch 1/") == 1 and "loaded from the cache" in log
    dense_acc = runs[(runs.phase == "dense") & (runs.metric == "accuracy")].groupby("method").value.first()
    assert dense_acc.nunique() == 1  # both runs start from the same dense model


def test_cache_hit_and_miss_give_identical_results(tmp_path, magnitude_random_sweep):
    """Whichever run of a sweep happens to train the shared dense model, the numbers are the same."""
    run_cli([*TINY, "method=random", "sparsity=0.5"], tmp_path / "miss")  # alone: trains its dense model
    hit_results, _ = magnitude_random_sweep  # magnitude filled the cache, so random was a hit
    miss, hit = (pd.read_csv(d / "runs.csv") for d in (tmp_path / "miss", hit_results))
    hit = hit[hit.method == "random"].reset_index(drop=True)
    assert set(miss.dense_cache) == {"miss"} and set(hit.dense_cache) == {"hit"}
    assert hit.value.equals(miss.value)


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def reference_runs(tmp_path_factory) -> ReferenceRuns:
    """The uninterrupted runs the crash cases compare with: one per list of overrides, not one per case."""
    return ReferenceRuns(tmp_path_factory.mktemp("references"))


@pytest.mark.xdist_group("schedules_reference_runs")  # the cases share their reference run
@pytest.mark.parametrize("crash_at", [("dense", 1), ("finetuned", 1), ("finetuned", 2)])
def test_resume_after_a_crash_gives_the_same_rows_once(tmp_path, monkeypatch, reference_runs, crash_at):
    overrides = [*TINY, "train.epochs=3", "finetune.epochs=3", "dense_cache.enabled=false"]

    def crashed(run_dir, results):
        assert (run_dir / "state.pt").exists() and not (results / "runs.csv").exists()

    reference = reference_runs(overrides)  # the same uninterrupted run for every crash point
    run_dir = crash_and_resume(reference, tmp_path, monkeypatch, overrides, crash_at, after_crash=crashed)
    expected = pd.read_csv(reference / "metrics.csv")
    results = run_dir.parent.parent
    got = pd.read_csv(run_dir / "metrics.csv")
    shared = pd.read_csv(results / "runs.csv")
    ignore = ["timestamp", "run_id", "config_hash"]
    pd.testing.assert_frame_equal(got.drop(columns=ignore), expected.drop(columns=ignore))
    assert len(shared) == len(got)
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == 6 and not history.duplicated(["phase", "epoch"]).any()


def test_sigkill_during_training_then_rerun(tmp_path):
    """A real crash: SIGKILL a prune-run process in the middle of dense training, then run it again.
    The run is held after its first checkpoint (crashpoints.HOLD_ENV) until the kill, so the kill
    lands mid-training on any machine, with most epochs still to come."""
    from prune_cli.core import crashpoints

    args = [*TINY, "dataset.samples_per_class=300", "train.epochs=6", "finetune.epochs=2", "dense_cache.enabled=false", "seed=5"]
    reference = tmp_path / "reference"
    run_cli(args, reference)
    results = tmp_path / "killed"
    results.mkdir()
    # a process of its own to kill, forked: no interpreter start-up
    proc = start_forked(args, results, env={crashpoints.HOLD_ENV: "checkpoint-saved"})
    deadline = time.time() + 120
    state = None
    while time.time() < deadline and proc.poll() is None and state is None:
        found = list(results.glob("runs/*/state.pt"))
        state = found[0] if found else None
        time.sleep(0.02)
    if proc.poll() is not None or state is None:
        pytest.fail("the run never held at its first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = state.parent
    assert not (run_dir / "COMPLETE").exists() and not (results / "runs.csv").exists()
    run_cli(args, results)
    ignore = ["timestamp"]
    got = pd.read_csv(results / "runs.csv").drop(columns=ignore)
    expected = pd.read_csv(reference / "runs.csv").drop(columns=ignore)
    pd.testing.assert_frame_equal(got, expected)
    assert not (run_dir / "state.pt").exists() and (run_dir / "COMPLETE").exists()
    # resumed by the same code on the same device: recorded in provenance.json, no warning
    # (tests/test_resume_provenance.py resumes with other code)
    assert [r["at_step"] for r in json.loads((run_dir / "provenance.json").read_text())["resumed"]] == ["dense"]
    assert "started by another environment" not in (run_dir / "prune-run.log").read_text()


def test_gradual_window_counts_the_examples_data_pruning_keeps():
    """FAST keeps 162 training examples: 6 steps of 32 an epoch, 12 in 2 epochs. data_pruning keeps
    round(0.1 x 162) = 16: 1 step an epoch, 2 in all. end_step=10 passed the pre-run pass and failed
    after the proxies and dense training had run."""
    from helpers import validated

    from conftest import FAST
    from prune_cli.core.errors import ConfigError

    args = [*FAST, "schedule=gradual", "schedule.frequency=1", "data_pruning=random", "data_pruning.keep=0.1"]
    with pytest.raises(ConfigError, match=r"'schedule.end_step'.*training has 2 optimizer steps"):
        validated(*args, "schedule.end_step=10")
    validated(*args, "schedule.end_step=1")


@pytest.mark.parametrize(
    "schedule, retrained",
    [
        (["schedule=iterative", "schedule.rounds=3"], ["round_1", "round_2", "finetuned"]),
        (["schedule=lottery_ticket", "schedule.rounds=2"], ["round_1", "finetuned"]),
        (["schedule=oneshot"], ["finetuned"]),
    ],
    ids=lambda v: " ".join(v) if v and v[0].startswith("schedule") else "",
)
def test_history_labels_each_retraining_with_the_phase_its_rows_carry(tmp_path, schedule, retrained):
    """history.csv's phase of the training after each pruning round is the phase of the rows that round
    records (round_k, finetuned), so the curves join the metrics. Iterative labelled every round
    `finetuned` (three curves under one label), lottery tickets `retrain_1`, `retrain_2`, which no
    metrics row carries."""
    cfg = compose([*TINY, *schedule, "train.epochs=1", "finetune.epochs=1", "sparsity=0.8"], tmp_path)
    exp = Experiment(cfg, tmp_path / "run")
    exp.run_plan(SCHEDULES.get(cfg.schedule.name)(cfg))
    history = pd.DataFrame(exp.history)
    assert list(dict.fromkeys(history.phase)) == ["dense", *retrained]
    recorded = set(pd.DataFrame(exp.tables["metrics.csv"]).phase)
    assert set(retrained) <= recorded


@pytest.mark.parametrize("lr_schedule", [["train.lr_schedule=multistep", "train.milestones=[2]"], ["train.lr_schedule=cosine"]])
def test_weight_rewinding_retrains_with_the_dense_schedule_s_rates_from_the_rewind_epoch(tmp_path, lr_schedule):
    """Renda et al. 2020, "Comparing Rewinding and Fine-tuning in Neural Network Pruning": weight rewinding
    retrains from the weights of epoch k with the learning rates dense training had at epochs k+1..T. The schedule was
    shifted by k twice (train() counted its steps from epoch k and added k epochs on top), so epoch e
    of retraining ran at dense epoch e+k's rate; with a cosine schedule and T=2, k=1 the whole
    retraining ran at lr=0 and the ticket was never trained."""
    args = [*FAST, "train.epochs=4", "train.lr=0.1", *lr_schedule, "schedule=lottery_ticket", "schedule.rounds=1"]
    args += ["schedule.rewind_epoch=1", "schedule.lr_rewind=true"]
    run_cli(args, tmp_path / "results")
    [run_dir] = (tmp_path / "results" / "runs").iterdir()
    history = pd.read_csv(run_dir / "history.csv")
    dense = history[history.phase == "dense"].set_index("epoch").lr
    retrain = history[history.phase == "finetuned"].set_index("epoch").lr  # one round: its retraining is the last
    assert list(retrain.index) == [2, 3, 4]  # epochs k+1..T
    assert retrain.to_dict() == pytest.approx(dense.loc[[2, 3, 4]].to_dict())
    assert (retrain > 0).all()
