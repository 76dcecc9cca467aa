"""Block and BCR targets that no kept total can meet are refused before the run (docs/allocation.md,
"Block and BCR"): what a one-shot pruning event keeps is a fact of the layer shapes, so such a target
used to train the dense model first and then fail in the pruner.

The pre-run check is compared with brute force written here from the structures' definitions: BCR keeps
kr rows x kc columns in every block (edge blocks min(kr, rows) x min(kc, cols)); block keeps any subset
of whole blocks; the pruner accepts a kept total k of n weights when
|(1 - k/n) - (1 - round(d n)/n)| <= method.sparsity_tolerance."""

from __future__ import annotations

import itertools
import math
import random
import re

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.errors import ConfigError
from prune_cli.pruning.structures.bcr import check_bcr_density
from prune_cli.pruning.structures.block import check_block_density
from tests.conftest import FAST, run_cli
from tests.helpers import validated


def _block_sizes(rows: int, cols: int, r: int, c: int) -> list[int]:
    """Sizes of the r x c blocks of a rows x cols matrix, cut from the top-left corner."""
    return [min(r, rows - i) * min(c, cols - j) for i in range(0, rows, r) for j in range(0, cols, c)]


def _bcr_counts(rows: int, cols: int, r: int, c: int) -> set[int]:
    """Every count one layer keeps with kr rows x kc columns per block (0 <= kr <= r, 0 <= kc <= c)."""
    out = set()
    for kr in range(r + 1):
        for kc in range(c + 1):
            out.add(sum(min(kr, min(r, rows - i)) * min(kc, min(c, cols - j)) for i in range(0, rows, r) for j in range(0, cols, c)))
    return out


def _subset_totals(sizes: list[int]) -> set[int]:
    totals = {0}
    for s in sizes:
        totals |= {t + s for t in totals}
    return totals


def _accepted(n: int, density: float, tolerance: float) -> set[int]:
    target = round(n * density)
    return {k for k in range(n + 1) if abs((1.0 - k / n) - (1.0 - target / n)) <= tolerance}


def _refused(check, shapes, block, density, tolerance, allocation="layerwise", **more) -> bool:
    selected = {f"l{i}.weight": torch.empty(s, device="meta") for i, s in enumerate(shapes)}
    options = {"allocation": allocation, "sparsity_tolerance": tolerance, "block_shape": list(block), "threshold_impl": "topk"}
    method = OmegaConf.create({**options, "allow_collapse": False, **more})
    try:
        check(None, selected, method, density)
    except ConfigError:
        return True
    return False


def _cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        shapes = [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            shapes[0] = (rng.randint(1, 4), rng.randint(1, 3), 3)  # a convolution: its 2-D view is [out, in * 3]
        block = (rng.randint(1, 4), rng.randint(1, 4))
        if block[0] * block[1] < 2:
            block = (2, block[1])
        yield shapes, block, rng.uniform(0.05, 0.95), rng.choice([0.0, 0.001, 0.005, 0.02, 0.05, 0.3, 1.0])


def _view(shape) -> tuple[int, int]:
    return shape[0], math.prod(shape[1:])


@pytest.mark.parametrize("allocation, collapse", [("layerwise", False), ("global", True)])
def test_bcr_precheck_refuses_exactly_the_targets_no_choice_of_shapes_meets(allocation, collapse):
    """A layer keeps a count > 0 where the pruner cannot empty it (layerwise), any count where it may."""
    refused_some = passed_some = False
    for shapes, block, density, tolerance in _cases(0, 300):
        per_layer = [_bcr_counts(*_view(s), *block) - ({0} if not collapse else set()) for s in shapes]
        totals = {sum(choice) for choice in itertools.product(*per_layer)}
        n = sum(math.prod(s) for s in shapes)
        expected = not (totals & _accepted(n, density, tolerance))
        refused = _refused(check_bcr_density, shapes, block, density, tolerance, allocation, allow_collapse=collapse)
        assert refused == expected, (shapes, block, density, tolerance)
        refused_some |= expected
        passed_some |= not expected
    assert refused_some and passed_some


@pytest.mark.parametrize("allocation, collapse", [("layerwise", False), ("global", True)])
def test_block_precheck_refuses_exactly_the_targets_no_subset_of_blocks_meets(allocation, collapse):
    """Each layer keeps at least one block where the pruner cannot empty it (layerwise: every layer is
    allocated weights); any subset, the empty one included, where it may (global with allow_collapse)."""
    refused_some = passed_some = False
    for shapes, block, density, tolerance in _cases(1, 300):
        per_layer = [_subset_totals(_block_sizes(*_view(shape), *block)) - ({0} if not collapse else set()) for shape in shapes]
        totals = {sum(choice) for choice in itertools.product(*per_layer)}
        n = sum(math.prod(s) for s in shapes)
        expected = not (totals & _accepted(n, density, tolerance))
        refused = _refused(check_block_density, shapes, block, density, tolerance, allocation, allow_collapse=collapse)
        assert refused == expected, (shapes, block, density, tolerance)
        refused_some |= expected
        passed_some |= not expected
    assert refused_some and passed_some


@pytest.mark.parametrize("check", [check_bcr_density, check_block_density])
def test_an_allocation_that_does_not_promise_the_total_is_left_to_the_pruner(check):
    """The pruner only warns when the allocation does not promise the exact total (uniform_plus with
    method.faithful_uniform_plus=true), so the pre-run pass must not refuse what the run would accept."""
    assert _refused(check, [(4, 4)], (4, 4), 7 / 16, 0.0, allocation="uniform_plus", faithful_uniform_plus=False)
    assert not _refused(check, [(4, 4)], (4, 4), 7 / 16, 0.0, allocation="uniform_plus", faithful_uniform_plus=True)


def test_cli_refuses_an_unreachable_bcr_target_before_any_work(tmp_path):
    """Before: dense training ran, then the pruner refused (exit 2 after the work, a results folder made).
    Now: refused by the pre-run pass, naming the key, the value and the nearest reachable sparsities."""
    results = tmp_path / "results"
    args = FAST + ["method.structure=bcr", "method.block_shape=[4,4]", "sparsity=0.3", "method.sparsity_tolerance=0.001"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Invalid value for config key 'sparsity': 0.3" in proc.stderr
    assert "the nearest are 0.297619 and 0.309524" in proc.stderr
    assert not results.exists()


# ----------------------------------------------------------------------------- every pruning event

CNN = [a for a in FAST if not a.startswith("model")] + ["model=cnn1d", "dataset.input_dim=40"]
CHANNEL = ["method.structure=channel", "method.allocation=layerwise"]


def test_an_iterative_waypoint_channel_cannot_reach_is_refused_before_any_work(tmp_path):
    """schedule=iterative at 0.9 in 5 rounds first prunes to 1 - 0.1^(1/5) = 0.369043, which channel pruning
    cannot reach on cnn1d (the one-shot run at that sparsity is refused with the same nearest values). It used
    to train the dense model and fail in the pruner; now the pre-run pass names the event."""
    waypoint = 1 - 0.1 ** (1 / 5)
    results = tmp_path / "results"
    proc = run_cli(CNN + CHANNEL + ["schedule=iterative", "sparsity=0.9"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "Invalid value for config key 'sparsity': 0.9" in proc.stderr
    assert f"event 1 of 5 of schedule=iterative targets the intermediate sparsity {waypoint:.6f}" in proc.stderr
    assert not results.exists()
    oneshot = run_cli(CNN + CHANNEL + [f"sparsity={waypoint:.6f}"], tmp_path / "oneshot", check=False)
    assert oneshot.returncode == 2 and "the nearest are " in oneshot.stderr, oneshot.stderr
    # the suggestions are sparsities whose every event of schedule=iterative passes, not the waypoint's
    # nearest values, which were suggested before and are refused again at an event of their own
    suggested = re.search(r"passes (?:are|is) ([0-9.]+(?: and [0-9.]+)?);", proc.stderr).group(1).split(" and ")
    for sparsity in suggested:
        validated(*CNN, *CHANNEL, "schedule=iterative", f"sparsity={sparsity}")


def test_a_gradual_waypoint_channel_cannot_reach_is_refused_before_any_work(tmp_path):
    """Gradual's events are Zhu & Gupta's curve over dense training's steps, known from the training split's
    declared size: the second of its six events (0.468604) is out of channel pruning's reach."""
    results = tmp_path / "results"
    args = [a for a in CNN if not a.startswith("train.epochs")] + CHANNEL
    proc = run_cli(args + ["schedule=gradual", "schedule.frequency=5", "train.epochs=4", "sparsity=0.9"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "event 2 of 6 of schedule=gradual targets the intermediate sparsity 0.468604" in proc.stderr
    assert not results.exists()


def test_a_later_gradual_event_no_dense_choice_reaches_is_refused_before_training(tmp_path):
    """BCR's later events reach only sub-shapes of the earlier ones, so the pruner decides them; but a target
    the dense layers cannot reach is out of reach of any sub-shape too. This run trained, then the pruner
    refused event 4 of 13; event 5 (0.578088, nearest dense totals 0.571429 and 0.583333) is refused before
    any work now. (The pruner's own message naming an event: tests/test_bcr.py.)"""
    results = tmp_path / "r"
    args = [a for a in FAST if not a.startswith("train.epochs")] + ["method.structure=bcr", "method.block_shape=[4,4]"]
    proc = run_cli(args + ["schedule=gradual", "schedule.frequency=2", "train.epochs=4", "sparsity=0.8"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "event 5 of 13 of schedule=gradual targets the intermediate sparsity 0.578088" in proc.stderr
    # not that event's nearest dense totals (0.571429 and 0.583333, suggested before for `sparsity`), but
    # sparsities whose every event of their own schedule passes
    assert "the nearest whose every pruning event of schedule=gradual passes are 0.785714 and 0.845238" in proc.stderr
    for sparsity in ("0.785714", "0.845238"):
        validated(*args, "schedule=gradual", "schedule.frequency=2", "train.epochs=4", f"sparsity={sparsity}")
    assert not results.exists()


def test_a_gradual_schedule_s_first_event_that_prunes_is_checked_for_bcr(tmp_path):
    """Gradual's first event is at initial_sparsity=0 and prunes nothing, so its second is the first on the
    dense model: BCR's reach is known there (the review found it left to the pruner, after dense training,
    because the zero event used up the first-event check)."""
    results = tmp_path / "results"
    args = FAST + ["method.structure=bcr", "method.block_shape=[4,4]", "method.allocation=layerwise", "schedule=gradual"]
    proc = run_cli(args + ["schedule.frequency=3", "sparsity=0.5", "method.sparsity_tolerance=0"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "event 2 of 5 of schedule=gradual targets the intermediate sparsity 0.307663" in proc.stderr
    assert not results.exists()


def test_the_reach_is_computed_once_for_all_events():
    """The pre-run pass checks every pruning event's target (gradual: hundreds): the reachable totals are
    computed once per layer shapes and block, not per event (the review measured 36 s for 627 events)."""
    from prune_cli.pruning.structures import block as block_module

    block_module._block_reach.cache_clear()
    for i in range(50):
        _refused(check_block_density, [(16, 12), (10, 16)], (4, 4), 0.05 + i * 0.018, 0.005)
    assert block_module._block_reach.cache_info().misses == 1


def test_a_group_sweep_of_one_value_is_not_refused():
    """Only a sweep over a Hydra config group with several values drops some; `choice(parallel)` has one."""
    from prune_cli.run.override_checks import check_overrides

    check_overrides(["-m", "hydra/launcher=choice(parallel)"])
    with pytest.raises(ConfigError, match="one option per sweep"):
        check_overrides(["-m", "hydra/launcher=choice(parallel,basic)"])


def test_bcr_s_sparsity_ceiling_does_not_refuse_a_layer_collapse_the_user_accepted(tmp_path):
    """`sparsity <= 1 - 1/(r c)` holds only while every layer keeps weights; with method.allow_collapse=true a
    global allocation may leave a layer nothing, and the pruner accepts the run (the review found the config
    check refusing it). Without allow_collapse the ceiling still refuses it before any work."""
    args = [a for a in FAST if not a.startswith("model")] + ["dataset.input_dim=4", "model=mlp", "model.widths=[10,3]"]
    args += ["method.structure=bcr", "method.block_shape=[3,2]", "sparsity=0.876"]
    refused = run_cli(args, tmp_path / "refused", check=False)
    assert refused.returncode == 2 and "at most 0.833333" in refused.stderr, refused.stderr
    assert not (tmp_path / "refused").exists()
    run_cli(args + ["method.allow_collapse=true"], tmp_path / "accepted")


def test_an_accepted_layer_collapse_is_not_told_to_set_allow_collapse(tmp_path):
    """With method.allow_collapse=true the collapse warning ended "... or accept it with
    method.allow_collapse=true", advice to set what was set (noticed in the review). It now says it was kept."""
    args = [a for a in FAST if not a.startswith("model")] + ["dataset.input_dim=4", "model=mlp", "model.widths=[10,3]"]
    args += ["method.structure=bcr", "method.block_shape=[3,2]", "sparsity=0.876", "method.allow_collapse=true"]
    results = tmp_path / "r"
    run_cli(args, results)
    [log] = results.glob("runs/*/prune-run.log")
    text = log.read_text()
    assert "The network is disconnected. Kept: method.allow_collapse=true accepts it." in text, text[-2000:]
    assert "accept it with method.allow_collapse=true" not in text


def test_block_counts_no_emptied_layer_as_reachable_unless_the_pruner_may_empty_it():
    """A layer allocated weights keeps at least one block. The pre-run pass counted an emptied layer as
    reachable: layerwise at 0.98 on a 16-32-32-3 MLP (counts 10/20/2, the window 25-41 kept of 1,632) passed,
    though one block per layer is already 16 + 16 + 12 = 44 kept (sparsity 0.973), and the pruner refused it
    after dense training; and a refusal at 0.9 of a 2-16-16-3 MLP named 0.904762 as reachable, which only an
    emptied layer reaches, so the suggested value failed after training too. Every sparsity a refusal names
    must itself pass."""
    import re

    from tests.helpers import validated

    wide = ["dataset=synthetic", "dataset.input_dim=16", "model=mlp", "model.widths=[32,32]", "method.structure=block"]
    with pytest.raises(ConfigError, match=r"'sparsity'.*the nearest is 0\.973039;"):
        validated(*wide, "method.allocation=layerwise", "sparsity=0.98", "method.allow_collapse=true")
    small = ["dataset=synthetic", "model=mlp", "model.widths=[16,16]", "method.structure=block"]
    with pytest.raises(ConfigError, match=r"'sparsity'") as refused:
        validated(*small, "sparsity=0.9")
    nearest = re.search(r"the nearest (?:are|is) ([0-9.]+)(?: and ([0-9.]+))?", str(refused.value)).groups()
    for sparsity in filter(None, nearest):
        validated(*small, f"sparsity={sparsity}")


def test_a_multi_round_target_no_dense_choice_meets_is_refused_before_training():
    """A later event or scoring round of bcr or channel_group keeps sub-shapes or subsets of what an earlier
    one kept, whose totals the dense layers reach too: so the dense reach is a necessary condition at every
    event. Only a first event in one scoring round was checked: SynFlow's 100 rounds with channel_group,
    layerwise, at 0.9 on a 16-32-32-3 MLP trained the dense model, then missed the target (0.90809; one
    round is refused before training with the same nearest sparsity)."""
    from tests.helpers import validated

    args = ["dataset=synthetic", "dataset.input_dim=16", "model=mlp", "model.widths=[32,32]", "method=synflow", "schedule=at_init"]
    args += ["method.structure=channel_group", "method.allocation=layerwise", "sparsity=0.9"]
    with pytest.raises(ConfigError, match=r"'sparsity'.*0\.908088"):
        validated(*args)
    with pytest.raises(ConfigError, match=r"'sparsity'.*0\.908088"):
        validated(*args, "method.rounds=1")


@pytest.mark.parametrize(
    "args",
    [
        # layerwise rounds the 96-weight classifier to round(0.005 * 96) = 0 and allow_collapse accepts it: 32 kept
        ["model=mlp", "model.widths=[32,32]", "method.allow_collapse=true", "method.sparsity_tolerance=0.015", "sparsity=0.995"],
        # residual layers rounded to 0 are no collapse, even without allow_collapse
        ["model=res_mlp", "model.width=8", "model.blocks=2", "method.exclude_classifier=true", "method.block_shape=[2,2]"]
        + ["method.sparsity_tolerance=0.02", "sparsity=0.995"],
    ],
    ids=["allocated-none-allow-collapse", "residual-allocated-none"],
)
def test_a_layer_the_allocation_gives_no_weight_may_stay_empty(args):
    """The pruner keeps nothing of a layer allocated 0 weights and accepts it where that is no collapse; the
    pre-run check must count that (the review of the emptied-layer fix found these refused)."""
    from tests.helpers import validated

    validated("dataset=synthetic", "dataset.input_dim=16", "method.structure=block", "method.allocation=layerwise", *args)
