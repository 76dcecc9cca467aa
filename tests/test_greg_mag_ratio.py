"""GReg's magnitude-ratio stop for filters (Wang et al., "Neural Pruning via Growing Regularization",
ICLR 2021, as the paper's public implementation runs it; prune_cli/pruning/train_time/greg_mag_ratio.py,
docs/training_time.md "GReg-1 and GReg-2").

The hook is driven through prescribed weight trajectories (the weights are set before every update,
as an optimizer step would leave them) and compared with
- a hand-computed running average on a two-layer net (the stop iteration and the phase end),
- `authors_loop`, a per-iteration restatement of the implementation's update loop (GReg-1's
  all-layers condition visited in layer order, GReg-2's per-layer condition and its running average
  over the provisional choice before the pick), with the per-filter magnitudes, the provisional
  choice and the means computed here from the weights, and the factors in exact fractions,
- the penalty's value with per-layer factors by hand;
then a phase resumed from a checkpoint against an uninterrupted one, a whole run's history, and the
pre-run checks of `schedule.mag_ratio_limit`."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST
from prune_cli.core.errors import ConfigError
from prune_cli.core.identity import run_id
from prune_cli.pruning import PruneContext, select_prunable
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.greg import GRegHook, mag_ratio_limit
from prune_cli.pruning.train_time.greg_mag_ratio import MagnitudeRatioStop
from prune_cli.run.experiment import run
from prune_cli.training import TrainProgress, train
from tests.helpers import Chain, compose, composed, assert_same_run, crash_and_resume, three_blobs

CHANNEL = ["method.structure=channel", "method.allocation=layerwise", "method.sparsity_tolerance=0.1"]


def hook_for(model, schedule, *overrides, sparsity):
    cfg = copy.deepcopy(composed([*FAST, "dataset.input_dim=4", f"sparsity={sparsity}", f"schedule={schedule}", *CHANNEL, *overrides]))
    prune = PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0), config=cfg)
    ctx = HookContext(cfg, prune, tuple(select_prunable(model, cfg.method)), 1 - sparsity)
    return GRegHook(ctx, greg2=schedule == "greg2")


def two_layers():
    return Chain(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))


def three_layers():
    return Chain(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))


def rows(magnitudes, columns, seed=0):
    """A weight whose row i has mean |w| magnitudes[i] (random signs)."""
    signs = torch.randint(0, 2, (len(magnitudes), columns), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.tensor(magnitudes, dtype=torch.float32)[:, None] * signs


def drive(hook, model, weights_at, iterations):
    """Run the hook over `iterations` iterations with the weights `weights_at(t)` (a dict per layer)
    at iteration t: the factors of every layer at every iteration."""

    def set_weights(t):
        with torch.no_grad():
            for name, w in weights_at(t).items():
                dict(model.named_parameters())[name].copy_(w)

    set_weights(0)
    hook.start(model)
    factors = []
    for t in range(iterations):
        factors.append({n: hook.factors(n, t) for n in hook.ctx.prunable})
        set_weights(t + 1)
        hook.after_step(model, t)
    return factors


# ------------------------------------------------------------------ a hand-computed two-layer case


def test_two_layer_stop_at_the_hand_computed_running_average():
    # layer net.0: rows 0, 1 kept with |w| = 1; rows 2, 3 chosen (smallest L1 norm) with |w| = 0.5 at
    # update 0, divided by 10 at every update (every 2 iterations). Kept/chosen ratio 2 * 10^u:
    # 2, 20, 200, 2000; running average 2, 0.9*2 + 2 = 3.8, 0.9*3.8 + 20 = 23.42,
    # 0.9*23.42 + 200 = 221.078, 0.9*221.078 + 2000 = 2198.9702 >= 1000 at update 4 (iteration 8).
    # The classifier (no chosen row) follows. delta 0.1 up to above 1 would end at update 10.
    model = two_layers()
    hook = hook_for(
        model,
        "greg1",
        "schedule.delta=0.1",
        "schedule.interval=2",
        "schedule.ceiling=1.0",
        "schedule.stabilize_steps=3",
        sparsity=0.5,  # 2 of 4 hidden units: 8 + 3 x 2 = 14 of 28 weights
    )

    def weights_at(t):
        return {"net.0.weight": rows([1.0, 1.0, 0.5 * 10 ** -(t // 2), 0.5 * 10 ** -(t // 2)], 4)}

    averages = []
    real_update = hook.ratio_stop.update

    def spy(u, magnitudes):
        real_update(u, magnitudes)
        averages.append(hook.ratio_stop.ratio.get("net.0.weight"))

    hook.ratio_stop.update = spy
    factors = drive(hook, model, weights_at, 14)
    assert torch.equal(hook.keep["net.0.weight"].all(1), torch.tensor([True, True, False, False]))
    assert averages == pytest.approx([2.0, 3.8, 23.42, 221.078, 2198.9702], rel=1e-6)  # float32 weights
    assert hook.ratio_stop.stop == {"net.0.weight": 4, "net.2.weight": 4}
    assert hook.ratio_stop.reason == {"net.0.weight": "ratio", "net.2.weight": "follows"}
    assert hook.end_step() == 8 + 3 + 1 < hook.steps_needed() == 10 * 2 + 3 + 1
    # factors: 0.1 (u + 1) up to update 4, then 0.5 held
    expected = [0.1 * (min(t // 2, 4) + 1) for t in range(14)]
    assert [f["net.0.weight"][0] for f in factors] == pytest.approx(expected)
    assert [f["net.2.weight"][0] for f in factors] == pytest.approx(expected)
    hook.t = 11
    assert not hook.finished()
    hook.t = 12
    assert hook.finished()
    row = hook.epoch_row()
    assert row["raise_end_step"] == 8 and row["ratio_stop_step"] == 8 and row["raise_stop_0"] == 8
    assert row["mag_ratio_0"] == pytest.approx(2198.9702) and math.isnan(row["mag_ratio_1"])
    assert row["penalty"] == pytest.approx(0.5)


# ------------------------------------------------------------------ the implementation's loop, restated


def authors_loop(greg2, layers, magnitudes_at, options, limit, chosen=None, counts=None):
    """The implementation's prune loop over the given per-filter magnitudes (`magnitudes_at(t)[name]`,
    float64): at every iteration t with t % interval == 0, for every layer in order that has not
    finished, update its running ratio and its factors, then test whether it finished; the weights go
    after the iteration `stabilize` iterations after the update at which the last layer finished.
    GReg-1 chooses `chosen[name]` (filter indices) beforehand; GReg-2 chooses the counts[name]
    smallest filters at the update where its all-weights factor reaches pick_ceiling.
    Returns (per-iteration {name: (chosen factor, kept factor)}, {name: finishing iteration}, phase length)."""
    f = lambda v: Fraction(str(v))  # noqa: E731
    interval, stabilize = options["interval"], options["stabilize"]
    reg_pruned = {n: Fraction(0) for n in layers}
    reg_kept = {n: Fraction(0) for n in layers}
    pruned = {} if greg2 else {n: list(chosen[n]) for n in layers}
    hist, finished = {}, {}
    stabilize_from, history, t = None, [], 0

    def ratio(w, idx):
        kept = [i for i in range(len(w)) if i not in idx]
        return float(w[kept].mean() / w[list(idx)].mean())

    while True:
        if stabilize_from is None and t % interval == 0:
            mags = magnitudes_at(t)
            for name in layers:
                if name in finished:
                    continue
                w = mags[name]
                if not greg2:
                    r = ratio(w, pruned[name])
                    hist[name] = hist[name] * 0.9 + r * 0.1 if name in hist else r
                    reg_pruned[name] += f(options["delta"])
                    done = all(h >= limit for h in hist.values()) or reg_pruned[name] > f(options["ceiling"])
                else:
                    if name in pruned:
                        reg_pruned[name] += f(options["delta"])
                        reg_kept[name] = f(options["recover"])
                        r = ratio(w, pruned[name])
                    else:
                        reg_pruned[name] += f(options["pick_delta"])
                        reg_kept[name] = reg_pruned[name]
                        r = ratio(w, w.argsort()[: counts[name]].tolist())  # the provisional choice
                    hist[name] = hist[name] * 0.9 + r * 0.1 if name in hist else r
                    if name not in pruned and reg_pruned[name] >= f(options["pick_ceiling"]):
                        pruned[name] = w.argsort()[: counts[name]].tolist()
                    reg_max = max(reg_pruned[name], reg_kept[name])
                    done = name in pruned and (hist[name] >= limit or reg_max > f(options["ceiling"]))
                if done:
                    finished[name] = t
                    if len(finished) == len(layers):
                        stabilize_from = t
        history.append({n: (float(reg_pruned[n]), float(reg_kept[n])) for n in layers})
        if stabilize_from is not None and t - stabilize_from == stabilize:
            return history, finished, t + 1
        t += 1


def magnitudes(weights: dict) -> dict:
    return {n: w.double().abs().mean(1) for n, w in weights.items()}


def three_layer_weights(rates, seed=0):
    """Rows 0, 1 of both hidden layers keep |w| ~ 1; rows 2, 3 shrink by rates[layer] per iteration."""

    def at(t):
        out = {}
        for i, (name, rate) in enumerate(rates.items()):
            mags = [1.0, 1.2, 0.6 * rate**t, 0.5 * rate**t]
            out[name] = rows(mags, 4, seed + i)
        return out

    return at


def _assert_as_the_loop(hook, factors, names, options, expected_stop, reference, finished, length) -> None:
    """The hook's stops, phase length and per-iteration factors equal the restated loop's."""
    assert {n: u * options["interval"] for n, u in hook.ratio_stop.stop.items() if n in names} == finished
    assert {n: u for n, u in hook.ratio_stop.stop.items() if n in names} == expected_stop
    assert hook.end_step() == length
    for t in range(length):
        for n in names:
            assert factors[t][n] == pytest.approx(reference[t][n], abs=1e-12), (t, n)


@pytest.mark.parametrize(
    "rates, limit, expected_stop",
    [
        # running averages 2 r^(-3u) smoothed: rate 0.6 reaches 50 at update 5 (529), 0.75 at update 6
        # (58.1). net.0 crosses first, net.2 last: at update 6 net.0 (visited first) still sees net.2's
        # average of update 5 (25.1) below the limit, is raised once more and stops at update 7
        ({"net.0.weight": 0.6, "net.2.weight": 0.75}, 50.0, {"net.0.weight": 7, "net.2.weight": 6}),
        # net.2 crosses first: both stop at the update where net.0 crosses
        ({"net.0.weight": 0.75, "net.2.weight": 0.6}, 50.0, {"net.0.weight": 6, "net.2.weight": 6}),
        # a limit never reached: the ceiling (delta 0.1: above 1 at update 10)
        ({"net.0.weight": 0.9, "net.2.weight": 0.9}, 1e9, {"net.0.weight": 10, "net.2.weight": 10}),
    ],
)
def test_greg1_stops_as_the_implementation_loop(rates, limit, expected_stop):
    options = dict(delta=0.1, interval=3, ceiling=1.0, stabilize=4)
    model = three_layers()
    hook = hook_for(
        model,
        "greg1",
        *(f"schedule.{'stabilize_steps' if k == 'stabilize' else k}={v}" for k, v in options.items()),
        f"schedule.mag_ratio_limit={limit}",
        sparsity=0.59,  # 2 of 4 units in both hidden layers: 8 + 2 x 2 + 3 x 2 = 18 of 44 weights
    )
    at = three_layer_weights(rates)
    factors = drive(hook, model, at, hook.steps_needed())
    names = ["net.0.weight", "net.2.weight"]
    reference, finished, length = authors_loop(
        False, names, lambda t: magnitudes(at(t)), options, limit, chosen={n: [2, 3] for n in names}
    )
    _assert_as_the_loop(hook, factors, names, options, expected_stop, reference, finished, length)
    # the classifier (no chosen filter) stops with the last of them
    assert hook.ratio_stop.stop["net.4.weight"] == max(expected_stop.values())


@pytest.mark.parametrize(
    "rates, limit, expected_stop",
    [
        # per layer, both by the ratio: net.0 at update 4, net.2 at update 7 (the ceiling is update 8)
        ({"net.0.weight": 0.6, "net.2.weight": 0.8}, 10.0, {"net.0.weight": 4, "net.2.weight": 7}),
        # net.2 reaches the limit at the update of the pick (3) and keeps that update's factors; net.0
        # goes to the ceiling
        ({"net.0.weight": 0.9, "net.2.weight": 0.4}, 20.0, {"net.0.weight": 8, "net.2.weight": 3}),
        ({"net.0.weight": 0.9, "net.2.weight": 0.9}, float("inf"), {"net.0.weight": 8, "net.2.weight": 8}),  # ceiling only
    ],
)
def test_greg2_stops_per_layer_as_the_implementation_loop(rates, limit, expected_stop):
    options = dict(delta=0.2, interval=2, ceiling=1.0, stabilize=3, pick_delta=0.05, pick_ceiling=0.2, recover=-0.01)
    model = three_layers()
    keys = {"stabilize": "stabilize_steps"}
    hook = hook_for(
        model,
        "greg2",
        *(f"schedule.{keys.get(k, k)}={v}" for k, v in options.items()),
        f"schedule.mag_ratio_limit={limit}",
        sparsity=0.59,
    )
    # before the pick (update 3, iteration 6) the rows swap places: row 0 starts smallest and ends
    # largest, so the provisional choice (the two smallest) changes while the average runs
    shrink = three_layer_weights(rates)

    def at(t):
        out = shrink(t)
        for name in out:
            out[name][0] *= (0.3 + 0.2 * t) if t <= 6 else 1.5
        return out

    names = ["net.0.weight", "net.2.weight"]
    factors = drive(hook, model, at, hook.steps_needed())
    assert hook.schedule.choice_step == 6
    counts = {n: int((~hook.keep[n].any(1)).sum()) for n in names}
    assert counts == {n: 2 for n in names}
    reference, finished, length = authors_loop(True, names, lambda t: magnitudes(at(t)), options, limit, counts=counts)
    _assert_as_the_loop(hook, factors, names, options, expected_stop, reference, finished, length)
    if math.isinf(limit) or max(expected_stop.values()) == 8:
        assert hook.end_step() == hook.steps_needed()
    else:
        assert hook.ratio_stop.ratio_stop is not None and hook.end_step() < hook.steps_needed()


def test_penalty_with_per_layer_factors_by_hand():
    model = three_layers()
    hook = hook_for(model, "greg1", "schedule.delta=0.1", "schedule.interval=3", "schedule.mag_ratio_limit=50", sparsity=0.59)
    drive(hook, model, three_layer_weights({"net.0.weight": 0.6, "net.2.weight": 0.75}), 24)
    assert hook.ratio_stop.stop == {"net.0.weight": 7, "net.2.weight": 6, "net.4.weight": 7}
    hook.t = 40
    loss = hook.extra_loss(model, None, None, None)
    p = dict(model.named_parameters())
    by_hand = 0.0
    for name, factor in [("net.0.weight", 0.8), ("net.2.weight", 0.7), ("net.4.weight", 0.8)]:
        chosen = p[name].detach().double()[~hook.keep[name]]
        by_hand += 0.5 * factor * float((chosen**2).sum())
    assert float(loss.detach()) == pytest.approx(by_hand, rel=1e-6)


def test_without_any_layer_with_a_ratio_the_ceiling_decides():
    # every filter kept (nothing but columns chosen) or every filter chosen: no layer has a ratio
    rule = MagnitudeRatioStop(("a", "b"), 2.0, greg2=False, pick_update=0, last_update=3)
    rule.choose({"a": torch.tensor([False, False]), "b": torch.tensor([True, True])})
    for u in range(3):
        rule.update(u, {})
        assert rule.end_update() is None
    rule.update(3, {})
    assert rule.stop == {"a": 3, "b": 3} and rule.reason == {"a": "ceiling", "b": "ceiling"} and rule.ratio_stop is None


def test_unstructured_greg_has_no_ratio_stop():
    model = three_layers()
    cfg = ["method.structure=unstructured", "method.allocation=global"]
    hook = hook_for(model, "greg1", *cfg, sparsity=0.5)
    assert hook.ratio_stop is None and hook.end_step() == hook.steps_needed()
    assert "mag_ratio_min" not in hook.epoch_row()


# ------------------------------------------------------------------ resume, a whole run, checks


# the ceiling at update 10 (27 iterations, 7 epochs); the ratio stops net.0 at update 6 (iteration 12,
# in epoch 3) and net.2 at update 7, so the phase ends after epoch 6
GREG2_SHORT = [
    "schedule.delta=0.1",
    "schedule.interval=2",
    "schedule.stabilize_steps=6",
    "schedule.pick_delta=0.1",
    "schedule.pick_ceiling=0.2",
    "schedule.mag_ratio_limit=2",
]


def regularize(model, hook, resume=None, keep=None):
    cfg = OmegaConf.merge(composed([*FAST, "dataset.input_dim=4"]).finetune, {"lr": 0.1, "lr_schedule": "constant", "batch_size": 32})
    cfg.epochs = -(-hook.steps_needed() // 4)  # 128 / 32 = 4 steps per epoch
    gen = torch.Generator().manual_seed(1)
    return train(model, three_blobs(192, 4, 128), cfg, gen, "regularize", hook=hook, resume=resume, on_epoch_end=keep)


@pytest.mark.parametrize("stop_after", [1, 3])  # before any layer stopped; after the first stop
def test_resumed_phase_is_bit_identical(stop_after):
    torch.manual_seed(5)
    model = three_layers()
    initial = copy.deepcopy(model.state_dict())
    saved = {}

    def keep(row, progress: TrainProgress):
        if progress.epoch == stop_after:
            saved["model"] = copy.deepcopy(model.state_dict())
            saved["progress"] = copy.deepcopy(progress)

    hook = hook_for(model, "greg2", *GREG2_SHORT, sparsity=0.59)
    full_rows = regularize(model, hook, keep=keep)
    stops = dict(hook.ratio_stop.stop)
    assert hook.ratio_stop.ratio_stop is not None and len(full_rows) < -(-hook.steps_needed() // 4)
    first_stop = min(stops.values()) * 2
    assert (stop_after * 4 < first_stop) == (stop_after == 1)  # the two cases: before and after a stop

    resumed = three_layers()
    resumed.load_state_dict(initial)
    resumed.load_state_dict(saved["model"])
    hook2 = hook_for(resumed, "greg2", *GREG2_SHORT, sparsity=0.59)
    rows = regularize(resumed, hook2, resume=saved["progress"])
    for name, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert hook2.ratio_stop.stop == stops and hook2.ratio_stop.ratio == hook.ratio_stop.ratio
    pd.testing.assert_frame_equal(pd.DataFrame(rows), pd.DataFrame(full_rows[stop_after:]))


def test_a_channel_run_records_the_ratio_stop(tmp_path):
    overrides = [
        *FAST,
        "train.epochs=3",
        "finetune.epochs=1",
        "sparsity=0.5",
        "dense_cache.enabled=false",
        "schedule=greg1",
        *CHANNEL,
        "schedule.delta=0.05",
        "schedule.interval=2",
        "schedule.stabilize_steps=4",
        "schedule.mag_ratio_limit=1.5",
    ]
    cfg = compose(overrides, tmp_path)
    run_dir = run(cfg, tmp_path / "runs" / run_id(cfg))
    history = pd.read_csv(run_dir / "history.csv")
    reg = history[history.phase == "regularize"]
    last = reg.iloc[-1]
    per_epoch = int(reg.penalty_step.iloc[0])
    # stopped by the ratio before the ceiling (0.05 x 21 at update 20, iteration 40: 45 iterations)
    assert last.raise_end_step < 40 and last.penalty == pytest.approx(0.05 * (last.raise_end_step / 2 + 1))
    # the phase ends with the epoch in which the stabilization after the last raise is over
    assert len(reg) == -(-(int(last.raise_end_step) + 4 + 1) // per_epoch) < -(-45 // per_epoch)
    # the first hidden layer, measured first at update 0, sees only its own average there (the
    # implementation's rule): above the limit from the start, it stops at once
    assert reg.mag_ratio_0.iloc[0] >= 1.5 and last.raise_stop_0 == 0 == last.ratio_stop_step
    # the second stops when its own average reaches the limit; the classifier (no ratio) follows it
    assert last.mag_ratio_1 >= 1.5 and last.raise_stop_1 == last.raise_end_step == last.raise_stop_2
    assert (reg.mag_ratio_1.iloc[:-2] < 1.5).all() and math.isnan(last.mag_ratio_2)
    masks = torch.load(run_dir / "masks.pt", weights_only=True)
    assert any(not bool(m.all(1).all()) for m in masks.values())  # whole rows removed


@pytest.mark.slow  # two whole runs; the hook's state across a checkpoint is covered above in seconds
def test_a_run_resumed_after_a_ratio_stop_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [
        *FAST,
        "train.epochs=3",
        "finetune.epochs=1",
        "sparsity=0.5",
        "dense_cache.enabled=false",
        "schedule=greg2",
        *CHANNEL,
        "schedule.delta=0.05",
        "schedule.interval=2",
        "schedule.stabilize_steps=4",
        "schedule.pick_delta=0.05",
        "schedule.pick_ceiling=0.1",
        "schedule.mag_ratio_limit=1.5",
    ]
    reference, run_dir = crash_and_resume(tmp_path, monkeypatch, overrides, ("regularize", 4))
    history = pd.read_csv(reference / "history.csv")
    reg = history[history.phase == "regularize"]
    per_epoch = int(reg.penalty_step.iloc[0])
    # the crash comes after the first ratio stop and before the last raise: the checkpoint holds both
    assert reg.ratio_stop_step.iloc[-1] < 4 * per_epoch < reg.raise_end_step.iloc[-1]
    assert_same_run(reference, run_dir, ("metrics.csv", "history.csv"))


@pytest.mark.parametrize(
    "override, allowed",
    [
        (["schedule=greg1", "schedule.mag_ratio_limit=1000"], "null with method.structure=unstructured"),
        (["schedule=greg2", "method.structure=nm", "schedule.mag_ratio_limit=inf"], "null with method.structure=nm"),
        (["schedule=greg1", *CHANNEL, "schedule.mag_ratio_limit=0.5"], "a number > 1"),
        (["schedule=greg1", *CHANNEL, "schedule.mag_ratio_limit=nan"], "a number > 1"),
    ],
)
def test_a_limit_that_cannot_apply_stops_before_the_run(tmp_path, override, allowed):
    with pytest.raises(ConfigError, match=r"schedule\.mag_ratio_limit") as error:
        compose([*FAST, *override], tmp_path)
    assert allowed in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_limits_that_apply(tmp_path):
    compose([*FAST, "schedule=greg2", *CHANNEL, "schedule.mag_ratio_limit=inf"], tmp_path)  # passes the pre-run checks
    channel = [*FAST, "dataset.input_dim=4", "schedule=greg1", *CHANNEL]
    assert mag_ratio_limit(composed(channel)) == 1000.0  # null: the implementation's default
    assert mag_ratio_limit(composed([*channel, "schedule.mag_ratio_limit=20"])) == 20.0
    assert mag_ratio_limit(composed([*channel, "schedule.mag_ratio_limit=inf"])) == math.inf
    assert mag_ratio_limit(composed([*FAST, "schedule=greg1"])) is None  # unstructured: no ratio stop
