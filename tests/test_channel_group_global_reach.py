"""`method.structure=channel_group` with `method.allocation=global`: a target no choice of channel groups
meets is refused before any work (prune_cli/pruning/structures/channel_group.py `_check_global_density`,
docs/speedup.md "Channel groups"); it used to train the dense model and then stop in the pruner.

The references are written here from the layer shapes: an MLP 2-a-b-3 (synthetic data: 2 features, 3
classes) keeping a and b hidden units keeps 2a + ab + 3b weights, each hidden layer at least one unit
(the keep-one rule); the pruner accepts a kept total k of n weights when
|(1 - k/n) - (1 - round(d n)/n)| <= method.sparsity_tolerance."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.models.graph import channel_flow
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.structures import channel_group as cg
from tests.conftest import FAST, run_cli
from tests.helpers import composed, method_options, validated

GLOBAL = ["method.structure=channel_group", "method.allocation=global"]


def _accepted(n: int, density: float, tolerance: float) -> set[int]:
    target = round(n * density)
    return {k for k in range(n + 1) if abs((1.0 - k / n) - (1.0 - target / n)) <= tolerance}


def _mlp_totals(a_max: int, b_max: int) -> set[int]:
    """Every kept count of a 2-a-b-3 MLP, by brute force over the kept units of both hidden layers."""
    return {2 * a + a * b + 3 * b for a in range(1, a_max + 1) for b in range(1, b_max + 1)}


def _nearest(totals: set[int], window: set[int], n: int) -> list[str]:
    below = [t for t in totals if t < min(window)]
    above = [t for t in totals if t > max(window)]
    near = ([max(below)] if below else []) + ([min(above)] if above else [])
    return sorted(f"{1.0 - t / n:.6f}" for t in near)


def test_the_repro_is_refused_before_any_work_with_the_nearest_reachable_sparsities(tmp_path):
    """The issue's command: model.widths=[16,16] (N = 336) at 0.5 wants 168 kept (167 to 169 accepted); no
    2a + ab + 3b is one of those. Before: dense training, then exit 2 'achieved sparsity 0.49405'. Now exit 2
    before any work, no results folder, naming the nearest totals of the brute force."""
    n, totals = 336, _mlp_totals(16, 16)
    window = _accepted(n, 0.5, 0.005)
    assert not totals & window
    nearest = _nearest(totals, window, n)
    assert nearest == ["0.494048", "0.508929"]  # 170 = (8, 14) and 165 = (16, 7) kept
    results = tmp_path / "results"
    proc = run_cli([*FAST, "sparsity=0.5", "method.structure=channel_group"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "Invalid value for config key 'sparsity': 0.5" in proc.stderr
    assert f"the nearest are {nearest[0]} and {nearest[1]}" in proc.stderr, proc.stderr
    assert "the pruner keeps such counts where its ranking by score per weight misses the target" in proc.stderr
    assert "achieved sparsity" not in proc.stderr  # not the pruner's refusal after training
    assert not results.exists()


def test_a_reachable_target_is_accepted_and_runs_end_to_end(tmp_path):
    """0.494048 keeps round(0.505952 x 336) = 170 = 2 x 8 + 8 x 14 + 3 x 14 (brute force): accepted by the
    pre-run pass, and the run (global's ranking of the trained model) completes."""
    assert 170 in _mlp_totals(16, 16) and round((1 - 0.494048) * 336) == 170
    results = tmp_path / "results"
    proc = run_cli([*FAST, "sparsity=0.494048", "method.structure=channel_group"], results, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (results / "runs").is_dir()


@pytest.mark.parametrize("widths", [(3, 4), (5, 2), (6, 6)])
def test_the_reach_of_an_mlp_is_every_total_of_kept_units(widths):
    """The enumerated totals are exactly 2a + ab + 3b over 1 <= a, b <= widths (the keep-one rule)."""
    model = _model("mlp", f"model.widths=[{widths[0]},{widths[1]}]", shape=(2,), classes=3)
    form = cg.scope_form(*_groups(model))
    low, bits = cg.scope_count_reach(form)
    found = {low + i for i in range(bits.bit_length()) if bits >> i & 1}
    assert found == _mlp_totals(*widths)


def _model(name: str, *extra: str, shape=(40,), classes=10, seed=0):
    from prune_cli.models import build_model

    cfg = composed("dataset=synthetic", f"model={name}", *extra, *GLOBAL)
    torch.manual_seed(seed)
    return build_model(cfg.model, shape, classes)


def _groups(model):
    selected = {f"{n}.weight": m.weight for n, m in model.prunable_layers()}
    return cg.channel_groups(channel_flow(model), {n: p.shape for n, p in selected.items()}), selected


@pytest.mark.parametrize(
    "name,extra,shape", [("cnn1d", (), (40,)), ("resnet20", (), (3, 8, 8)), ("mlp", ("model.widths=[7,5]",), (4,))]
)
def test_the_kept_count_depends_only_on_how_many_channels_each_scope_keeps(name, extra, shape):
    """The fact the check rests on, counted on masks: random choices of channels with the same number per
    scope keep the same number of weights, the count `scope_form` gives (ResNet-20: stream channels of
    several stages in one layer, option-A shortcuts)."""
    groups, selected = _groups(_model(name, *extra, shape=shape))
    form = cg.scope_form(groups, selected)
    assert form is not None
    scopes = torch.unique(groups.scope[groups.prunable]).tolist()
    members = [torch.nonzero(groups.prunable & (groups.scope == s)).flatten().tolist() for s in scopes]
    rng = random.Random(0)
    for _ in range(6):
        counts = [rng.randint(0, len(m)) for m in members]
        kept = set()
        for _ in range(3):
            keep = ~groups.prunable
            for m, k in zip(members, counts):
                keep = keep.clone()
                keep[rng.sample(m, k)] = True
            kept.add(sum(int(mask.sum()) for mask in cg.group_masks(keep, groups).values()))
        assert len(kept) == 1
        assert kept == {cg.form_total(form, counts)}


def _method(tolerance: float):
    return method_options(structure="channel_group", allocation="global", sparsity_tolerance=tolerance)


def _check_method(tolerance: float):
    options = {"allocation": "global", "sparsity_tolerance": tolerance, "score": "magnitude", "group_norm": "l1"}
    return OmegaConf.create(options)


@pytest.mark.parametrize(
    "name,extra,shape,seed", [("mlp", ("model.widths=[6,5]",), (3,), 1), ("mlp", ("model.widths=[9,4]",), (5,), 2)]
)
def test_every_target_the_pruner_meets_passes_the_pre_run_check(name, extra, shape, seed):
    """Soundness on random scores (random weights, magnitude): at every target k / N the pruner meets
    within a tight tolerance, the pre-run check accepts; the kept count it reached at any target is one
    of the enumerated totals."""
    model = _model(name, *extra, shape=shape, seed=seed)
    groups, selected = _groups(model)
    n = sum(p.numel() for p in selected.values())
    low, bits = cg.scope_count_reach(cg.scope_form(groups, selected))
    met = refused = 0
    for k in range(1, n):
        density = k / n
        masks = prune(model, 1.0 - density, PruneContext(method=_method(1.0), generator=torch.Generator().manual_seed(0)))
        kept = sum(int(m.sum()) for m in masks.values())
        assert bits >> (kept - low) & 1, kept
        met_here = kept in _accepted(n, density, 0.0)
        try:
            cg.check_channel_group_density(model, selected, _check_method(0.0), density)
            accepted = True
        except ConfigError:
            accepted = False
        assert accepted or not met_here, k
        met, refused = met + met_here, refused + (not accepted)
    assert met and refused  # both outcomes occur


def test_cnn1d_pruner_counts_are_reachable_totals():
    """cnn1d (four scopes, a flatten): every count global keeps on random weights is an enumerated total,
    and every sparsity it meets passes the check."""
    model = _model("cnn1d", seed=3)
    groups, selected = _groups(model)
    low, bits = cg.scope_count_reach(cg.scope_form(groups, selected))
    met = 0
    for sparsity in (0.1, 0.3, 0.5, 0.7, 0.9, 0.97):
        try:
            masks = prune(model, sparsity, PruneContext(method=_method(0.005), generator=torch.Generator().manual_seed(0)))
        except PruneCliError:
            continue
        kept = sum(int(m.sum()) for m in masks.values())
        assert bits >> (kept - low) & 1
        cg.check_channel_group_density(model, selected, _check_method(0.005), 1.0 - sparsity)
        met += 1
    assert met


def test_resnet20_is_left_to_the_pruner():
    """ResNet-20's kept count is a function of its per-scope counts (test above), but enumerating them keeps
    three stream scopes in the state: over GLOBAL_REACH_WORDS (docs/speedup.md), so the check is skipped (as before) even at a
    target no choice may meet (sparsity tolerance 0)."""
    groups, selected = _groups(_model("resnet20", shape=(3, 32, 32)))
    form = cg.scope_form(groups, selected)
    assert form is not None and cg.scope_count_reach(form) is None
    model = _model("resnet20", shape=(3, 32, 32))
    for sparsity in (0.3, 0.5, 0.77, 0.9):
        cg.check_channel_group_density(model, _groups(model)[1], _check_method(0.0), 1.0 - sparsity)


def test_an_unreachable_iterative_event_is_refused_before_any_work_naming_the_event():
    """schedule=iterative at 0.9 in 5 rounds first prunes to 1 - 0.1^(1/5) = 0.369043, which keeps
    round(0.630957 x 336) = 212 (211 to 213 accepted); no 2a + ab + 3b is one of those (brute force). Every
    event is checked with the dense reach (at a later event a necessary condition), and the suggestions are
    sparsities whose every event passes."""
    waypoint = 1 - 0.1 ** (1 / 5)
    assert not _mlp_totals(16, 16) & _accepted(336, 1 - waypoint, 0.005)
    args = [*FAST, *GLOBAL, "schedule=iterative"]
    with pytest.raises(ConfigError) as err:
        validated(*args, "sparsity=0.9")
    text = str(err.value)
    assert f"event 1 of 5 of schedule=iterative targets the intermediate sparsity {waypoint:.6f}" in text, text
    assert "method.allocation=global reaches" in text
    suggested = text.split("passes are ")[1].split(";")[0].split(" and ")
    assert len(suggested) == 2
    for value in suggested:
        validated(*args, f"sparsity={value}")


def test_the_enumerated_totals_of_three_hidden_layers_are_the_brute_force_ones():
    """2-a-b-c-3 keeps 2a + ab + bc + 3c (1 <= a <= 3, b <= 2, c <= 4): the DP carries one scope's count
    from layer to layer."""
    groups, selected = _groups(_model("mlp", "model.widths=[3,2,4]", shape=(2,), classes=3))
    brute = {2 * a + a * b + b * c + 3 * c for a, b, c in itertools.product(range(1, 4), range(1, 3), range(1, 5))}
    low, bits = cg.scope_count_reach(cg.scope_form(groups, selected))
    assert {low + i for i in range(bits.bit_length()) if bits >> i & 1} == brute


def test_the_reach_is_computed_once_for_all_events(monkeypatch):
    """The pre-run pass checks every pruning event's target (gradual: hundreds) and its suggestions'
    candidates: the totals are enumerated once per model and selection, not per target."""
    calls = []
    original = cg.scope_form
    monkeypatch.setattr(cg, "scope_form", lambda *a: calls.append(1) or original(*a))
    model = _model("mlp", "model.widths=[16,16]", shape=(2,), classes=3)
    selected = _groups(model)[1]
    refused = 0
    for k in range(1, 100):
        try:
            cg.check_channel_group_density(model, selected, _check_method(0.005), k / 100)
        except ConfigError:
            refused += 1
    assert len(calls) == 1 and refused


# ----------------------------------------------------------------------------- the ranking meets what the check accepts
#
# Before, `global` kept the protected channels and a prefix of its ranking by score per weight, which on
# the 2-16-16-3 MLP (random weights, magnitude, tolerance 0.005) met 91 of the 240 targets the pre-run check
# accepts; the others trained dense and were then refused by the pruner. Where the prefix misses the
# pruner's window at a dense one-round event, each hidden layer now keeps its top-k units by score per weight
# for counts (a, b) whose 2a + ab + 3b lies in the window.


def _hand_keys(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Score per weight of each hidden unit of a 2-a-b-3 MLP under magnitude / l1, from the weights: a
    layer-1 unit touches its row of W1 (2 weights) and its column of W2 (b); a layer-2 unit its row of W2
    (a) and its column of W3 (3)."""
    w1, w2, w3 = (model.net[i].weight.detach().abs().double() for i in (1, 3, 5))
    first = (w1.sum(1) + w2.sum(0)) / (w1.shape[1] + w2.shape[0])
    second = (w2.sum(1) + w3.sum(0)) / (w2.shape[1] + w3.shape[0])
    return first, second


def _hand_masks(model, first_kept: list[int], second_kept: list[int]) -> dict[str, torch.Tensor]:
    a = torch.zeros(model.net[1].weight.shape[0], dtype=torch.bool)
    b = torch.zeros(model.net[3].weight.shape[0], dtype=torch.bool)
    a[first_kept], b[second_kept] = True, True
    return {
        "net.1.weight": a[:, None].expand(-1, 2).contiguous(),
        "net.3.weight": (b[:, None] & a[None, :]).contiguous(),
        "net.5.weight": b[None, :].expand(3, -1).contiguous(),
    }


def _hand_prefix(model, target: int) -> dict[str, torch.Tensor]:
    """The old rule, written from the module docstring: the best unit of each hidden layer (the keep-one
    rule), then one ranking of the others by score per weight (ties: lower layer, lower index), and the
    prefix whose 2a + ab + 3b is closest to `target` (ties: the longest)."""
    first, second = _hand_keys(model)
    keys = [(float(v), 0, i) for i, v in enumerate(first.tolist())] + [(float(v), 1, i) for i, v in enumerate(second.tolist())]
    best = [max((k for k in keys if k[1] == layer), key=lambda k: (k[0], -k[2])) for layer in (0, 1)]
    order = sorted((k for k in keys if k not in best), key=lambda k: (-k[0], k[1], k[2]))
    kept_at = []
    for length in range(len(order) + 1):
        chosen = best + order[:length]
        a, b = sum(k[1] == 0 for k in chosen), sum(k[1] == 1 for k in chosen)
        kept_at.append((2 * a + a * b + 3 * b, chosen))
    kept, chosen = min(reversed(kept_at), key=lambda kc: abs(kc[0] - target))
    return _hand_masks(model, [k[2] for k in chosen if k[1] == 0], [k[2] for k in chosen if k[1] == 1])


def _top(values: torch.Tensor, k: int) -> set[int]:
    return set(torch.sort(values, descending=True, stable=True).indices[:k].tolist())


@pytest.mark.parametrize("widths,seed", [((10, 9), 0), ((9, 7), 1), ((8, 11), 4)])
def test_every_target_the_pre_run_check_accepts_is_met_at_a_first_event(widths, seed):
    """Over every target k / N: where the pre-run check accepts, the pruner's masks keep a count the pruner
    accepts (counted on the masks, compared with the window written here); each hidden layer keeps its top
    units by score per weight (hand keys); where the old prefix met the window the masks are exactly the
    prefix's (written here from the rule). Before, each of these MLPs had accepted targets the pruner
    then refused (2-16-16-3, seed 0: 149 of 240)."""
    model = _model("mlp", f"model.widths=[{widths[0]},{widths[1]}]", shape=(2,), classes=3, seed=seed)
    groups, selected = _groups(model)
    n = sum(p.numel() for p in selected.values())
    assert n == 2 * widths[0] + widths[0] * widths[1] + 3 * widths[1]
    first, second = _hand_keys(model)
    widened = same = 0
    for k in range(1, n):
        density = k / n
        try:
            cg.check_channel_group_density(model, selected, _check_method(0.005), density)
        except ConfigError:
            continue
        masks = prune(model, 1.0 - density, PruneContext(method=_method(0.005), generator=torch.Generator().manual_seed(0)))
        kept = sum(int(m.sum()) for m in masks.values())
        window = _accepted(n, density, 0.005)
        assert kept in window, (k, kept)
        a_kept = torch.nonzero(masks["net.1.weight"].any(1)).flatten().tolist()
        b_kept = torch.nonzero(masks["net.5.weight"].any(0)).flatten().tolist()
        assert set(a_kept) == _top(first, len(a_kept)) and set(b_kept) == _top(second, len(b_kept)), k
        assert kept == 2 * len(a_kept) + len(a_kept) * len(b_kept) + 3 * len(b_kept)
        old = _hand_prefix(model, round(n * density))
        if sum(int(m.sum()) for m in old.values()) in window:
            assert all(torch.equal(masks[name], old[name]) for name in old), k
            same += 1
        else:
            widened += 1
    assert widened and same  # both cases occur


def test_an_accepted_target_the_ranking_missed_now_runs_end_to_end(tmp_path):
    """The repro's neighbour 0.508929 keeps round(0.491071 x 336) = 165 = 2 x 16 + 16 x 7 + 3 x 7 (brute
    force); the pre-run check accepts it. Before: dense training, then 'achieved sparsity 0.49405' (the
    ranking's prefix kept 170), exit 2. Now the run completes."""
    assert 165 in _mlp_totals(16, 16) and round((1 - 0.508929) * 336) == 165
    results = tmp_path / "results"
    proc = run_cli([*FAST, "sparsity=0.508929", *GLOBAL], results, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "achieved sparsity" not in proc.stderr
    assert (results / "runs").is_dir()


def test_per_scope_counts_are_found_for_every_reachable_total_of_three_hidden_layers():
    """2-a-b-c-3 (1 <= a <= 3, b <= 2, c <= 4; brute force): for every window of one total, counts whose
    2a + ab + bc + 3c is that total where one exists, None where none does; a window holding the
    preferred counts' own total gives them back, and None over the work budget."""
    groups, selected = _groups(_model("mlp", "model.widths=[3,2,4]", shape=(2,), classes=3))
    form = cg.scope_form(groups, selected)
    brute = {}
    for a, b, c in itertools.product(range(1, 4), range(1, 3), range(1, 5)):
        brute.setdefault(2 * a + a * b + b * c + 3 * c, []).append([a, b, c])
    for total in range(0, 60):
        counts = cg.scope_counts_within(form, total, total, [2, 1, 3])
        if total in brute:
            assert counts in brute[total], total
        else:
            assert counts is None, total
    for prefer in brute.values():
        t = 2 * prefer[0][0] + prefer[0][0] * prefer[0][1] + prefer[0][1] * prefer[0][2] + 3 * prefer[0][2]
        assert cg.scope_counts_within(form, t - 1, t + 1, prefer[0]) == prefer[0]
        assert cg.scope_counts_within(form, t - 1, t + 1, prefer[0], words=1) is None  # over budget: the prefix stays


def test_the_walk_back_finds_counts_wherever_the_pre_run_check_enumerated_the_totals():
    """The walk back (`scope_counts_within`) gave up at half the pre-run check's work budget, so where the
    check's enumeration took between half and all of GLOBAL_REACH_WORDS (784-input MLPs of widths [w, w]
    for w in about 308..378) it accepted a target, the pruner kept the ranking's prefix and refused the run
    after dense training (review: [320, 320] at 0.5 with tolerance 1e-5, whose one reaching choice is
    (204, 83)). Both now give up at the same budget: with exactly the check's work as the budget, the
    check enumerates and the walk finds counts in every reachable window."""
    groups, selected = _groups(_model("mlp", "model.widths=[3,2,4]", shape=(2,), classes=3))
    form = cg.scope_form(groups, selected)
    work, _, _ = cg.reach_work(form, cg._neighbours(form))
    assert cg.scope_count_reach(form, words=work) is not None
    low, bits = cg.scope_count_reach(form, words=work)
    reached = [low + i for i in range(bits.bit_length()) if bits >> i & 1]
    for total in reached:
        counts = cg.scope_counts_within(form, total, total, [2, 1, 3], words=work)
        assert counts is not None and cg.form_total(form, counts) == total, total
    assert cg.scope_count_reach(form, words=work - 1) is None
    assert cg.scope_counts_within(form, 0, 99, [2, 1, 3], words=work - 1) is None
