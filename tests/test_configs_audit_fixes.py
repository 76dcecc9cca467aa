"""The configs audit of 2026-12-03 (sixth session): options that changed the run id and nothing else.

- at sparsity=0 (a schedule that prunes to `sparsity`) every mask keeps all weights, so the method's
  choice and options decide nothing: `method=random sparsity=0` was `method=magnitude sparsity=0`
  under another run id (masks and fine-tuned weights byte-identical); but the exclusions decide the
  prunable set, which the run reads anyway, and reinit and training-time methods act (the review);
- method.sparsity_tolerance where the pruner only logs a miss (Bernoulli sampling, uniform_plus with
  faithful_uniform_plus=true);
- and the other way: threshold_impl=strict_kth prunes even at sparsity 0, so ntk_mlp's rescale acts
  there (it was refused as "no weight is pruned").

The facts each check rests on are computed here with the pruner on a seeded MLP, not taken from the pass."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST
from tests.helpers import method_options

N = 336  # FAST's MLP: 2-16-16-3


def _found(args: list[str]):
    from helpers import validated

    from prune_cli.run.unused_options import unused_overrides

    return unused_overrides(validated(FAST, args), [*FAST, *args])


def _errors(args: list[str]) -> set[str]:
    return {f.key for f in _found(args) if f.error}


def _masks(density: float, **options):
    from prune_cli.models.mlp import MLP
    from prune_cli.pruning import PruneContext, prune_to_density

    torch.manual_seed(0)
    model = MLP(2, [16, 16], 3)
    return prune_to_density(model, density, PruneContext(method=method_options(**options), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "options",
    [{}, {"score": "random"}, {"allocation": "global"}, {"allocation": "erk"}, {"invert": True}, {"exclude_first": True}],
    ids=lambda o: " ".join(f"{k}={v}" for k, v in o.items()) or "magnitude layerwise",
)
def test_at_density_one_every_method_keeps_every_weight(options):
    assert all(bool(m.all()) for m in _masks(1.0, **options).values())


@pytest.mark.parametrize(
    "given", [["method=random"], ["method=snip"], ["method.allocation=erk"], ["method.shuffle=true"], ["method.invert=true"]]
)
def test_method_overrides_at_sparsity_zero_are_refused(given):
    found = {f.key: f for f in _found([*given, "sparsity=0"])}
    key = given[0].split("=")[0]
    assert key in found and found[key].error and "no weight is pruned here (sparsity=0" in found[key].why, found
    assert _errors([*given, "sparsity=0.5"]) == set()  # they act as soon as something is pruned


def test_what_acts_at_sparsity_zero_is_not_refused():
    assert _errors(["method.reinit=true", "sparsity=0"]) == set()  # re-draws the survivors: all of them
    strict = ["method.allocation=global", "method.threshold_impl=strict_kth", "sparsity=0"]
    assert _errors(strict) == set()  # prunes max(1, ceil(0 x N)) = 1 weight
    kept = _masks(1.0, allocation="global", threshold_impl="strict_kth", sparsity_tolerance=1.0)
    assert sum(int(m.sum()) for m in kept.values()) == N - 1
    autoprune = ["schedule=autoprune", "schedule.stop_at_target=false", "sparsity=0"]  # the gates decide the sparsity
    assert "method" not in _errors([*autoprune, "method=magnitude"])
    # review of the sixth session: what decides the prunable set acts at sparsity 0 (params_prunable, the pruning-limit
    # metric, GReg-2's and ADMM's penalties, which layers reinit re-draws), and so does anything under reinit (its
    # seed follows the scores' and shuffle's draws) or a training-time schedule
    for acting in (["method.exclude_classifier=true"], ["method.exclude_first=true"], ["method.exclude=[net.5]"]):
        assert _errors([*acting, "sparsity=0"]) == set(), acting
    assert _errors(["method.reinit=true", "method.shuffle=true", "method=random", "sparsity=0"]) == set()
    assert _errors(["schedule=greg2", "method.exclude_classifier=true", "method.allocation=global", "sparsity=0"]) == set()
    assert _errors(["schedule=admm", "method.exclude_classifier=true", "sparsity=0"]) == set()
    # ADMM's projection keeps every weight at density 1 whatever the allocation (tests/test_unused_train_time.py)
    assert _errors(["schedule=admm", "method.allocation=global", "sparsity=0"]) == {"method.allocation"}
    assert "method" in _errors(["method=random", "sparsity=0"])


def test_excluding_a_layer_at_sparsity_zero_changes_the_prunable_count():
    """By hand: the classifier (net.5, 3 x 16 = 48 weights) leaves the prunable set, 336 -> 288 (params_prunable)."""
    from helpers import validated

    from prune_cli.models.mlp import MLP
    from prune_cli.pruning import select_prunable

    model = MLP(2, [16, 16], 3)
    for given, count in ((["sparsity=0"], N), (["sparsity=0", "method.exclude_classifier=true"], N - 48)):
        method = validated(FAST, given).method
        assert sum(p.numel() for p in select_prunable(model, method).values()) == count


def test_a_sweep_of_methods_at_sparsity_zero_is_refused_as_one_experiment_twice(finished_results):
    from tests.helpers import refused_before_any_work

    args = ["-m", *FAST, "method=magnitude,random", "sparsity=0,0.5"]
    refused_before_any_work(args, finished_results, "are the same experiment under two run ids", "no weight is pruned here")


def test_ntk_rescale_acts_under_strict_kth_at_sparsity_zero():
    """strict_kth prunes one weight per layer at density 1 (the layers' q < 1), so 1/sqrt(q) acts."""
    masks = _masks(1.0, threshold_impl="strict_kth", sparsity_tolerance=1.0)
    assert [int(m.sum()) for m in masks.values()] == [31, 255, 47]
    model = ["model=ntk_mlp", "model.widths=[16,16]", "method.allocation=layerwise", "method.threshold_impl=strict_kth"]
    given = [*model, "method.sparsity_tolerance=0.01", "sparsity=0", "model.rescale=false"]
    assert "model.rescale" not in _errors(given)


@pytest.mark.parametrize(
    "given, reason",
    [
        (["method=random", "method.sampling=bernoulli"], "method.sampling=bernoulli"),
        (["method.allocation=uniform_plus", "method.faithful_uniform_plus=true"], "does not promise"),
    ],
)
def test_a_tolerance_the_pruner_only_logs_against_is_refused(given, reason):
    found = {f.key: f for f in _found([*given, "sparsity=0.5", "method.sparsity_tolerance=0.1"])}
    assert found["method.sparsity_tolerance"].error and reason in found["method.sparsity_tolerance"].why, found
    assert _errors(["method=random", "sparsity=0.5", "method.sparsity_tolerance=0.1"]) == set()  # exact sampling: it refuses


def test_bernoulli_masks_do_not_depend_on_the_tolerance():
    """By the pruner itself: a zero tolerance refuses nothing under Bernoulli sampling, and the masks are the same."""
    tight = _masks(0.5, score="random", sampling="bernoulli", sparsity_tolerance=0.0)
    loose = _masks(0.5, score="random", sampling="bernoulli", sparsity_tolerance=1.0)
    assert all(torch.equal(tight[n], loose[n]) for n in tight)


# ----------------------------------------------------------------------------- per-layer normalisation without a global ranking


@pytest.mark.parametrize("allocation", ["layerwise", "erk"])
def test_per_layer_normalised_magnitude_keeps_magnitudes_masks_where_the_shapes_fix_each_layers_count(allocation):
    """By the pruner: |w| / ||w_l|| and |w| keep the same weights when each layer's count is fixed (the scale is one
    number per layer), and different ones under one global ranking, where the normalisation is the point."""
    plain = _masks(0.25, allocation=allocation)
    normalised = _masks(0.25, allocation=allocation, score="mp_global_normalize")
    assert all(torch.equal(plain[n], normalised[n]) for n in plain)
    plain, normalised = _masks(0.25, allocation="global"), _masks(0.25, allocation="global", score="mp_global_normalize")
    assert any(not torch.equal(plain[n], normalised[n]) for n in plain)


@pytest.mark.parametrize(
    "given, key",
    [
        (["method=mp_global_normalize", "method.allocation=layerwise"], "method.score"),
        (["method=lap_global_normalize", "method.allocation=layerwise"], "method.normalize"),
        (["method=lookahead", "method.normalize=true"], "method.normalize"),
        (["method=lookahead", "method.allocation=erk", "method.normalize=true"], "method.normalize"),
    ],
)
def test_a_per_layer_normalisation_with_shape_fixed_counts_is_refused(given, key):
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match="method.allocation=global") as err:
        validated(FAST, [*given, "sparsity=0.5"])
    assert err.value.key == key, err.value
    if "global" in given[0]:  # the preset's own global ranking: accepted
        validated(FAST, [given[0], "sparsity=0.5"])


def test_device_is_hashed_as_given():
    """README (the run id): `device` is hashed as given, so auto and cpu are two run ids for one computation on a
    CPU-only machine; resolving auto first would move every run id made with the default."""
    from helpers import validated

    from prune_cli.core.identity import run_id

    assert run_id(validated(FAST, ["device=auto"])) == run_id(validated(FAST, []))  # auto is the default
    assert run_id(validated(FAST, ["device=cpu"])) != run_id(validated(FAST, []))


def test_channel_groups_span_two_layers_so_per_layer_normalisation_acts_there():
    """channel_group scores a group by the rows of one layer and the matching columns of the next, so each layer's
    own scale enters its sums: the masks differ from magnitude's, and the combination is accepted (review of the
    sixth session of 2026-12-03: it was refused as changing nothing)."""
    from helpers import validated

    options = {"allocation": "layerwise", "structure": "channel_group", "sparsity_tolerance": 0.1}
    plain, normalised = _masks(0.5, **options), _masks(0.5, **options, score="mp_global_normalize")
    assert any(not torch.equal(plain[n], normalised[n]) for n in plain)
    given = ["method=mp_global_normalize", "method.allocation=layerwise", "method.structure=channel_group"]
    validated(FAST, [*given, "method.sparsity_tolerance=0.1", "sparsity=0.5"])


def test_the_refusal_at_sparsity_zero_names_what_still_acts():
    found = {f.key: f.why for f in _found(["method=random", "sparsity=0"])}
    assert "only method.exclude* and method.reinit act" in found["method"], found
    assert "method" not in _errors(["method=region_bound", "sparsity=0"])  # its own config keeps the classifier dense


def test_explicit_densities_that_contradict_sparsity_zero_are_named_for_what_they_are():
    """[0.5, 0.5, 0.5] keeps 168 of 336 at sparsity=0: the pruner refused it after dense training; the pre-run pass
    called the allocation an override with no effect. Now the densities' own check, before any work."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    assert round(0.5 * 32) + round(0.5 * 256) + round(0.5 * 48) == 168 != N
    with pytest.raises(ConfigError, match="method.layer_densities imply") as err:
        validated(FAST, ["method.allocation=explicit", "method.layer_densities=[0.5,0.5,0.5]", "sparsity=0"])
    assert err.value.key == "sparsity", err.value
    validated(FAST, ["method.allocation=explicit", "method.layer_densities=[1.0,1.0,1.0]", "sparsity=0"])
