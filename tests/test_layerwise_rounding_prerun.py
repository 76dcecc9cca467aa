"""layerwise keeps round(d n_l) in every layer, so on small layers the total can miss round(d N) by more
than method.sparsity_tolerance; the pruner refused that after dense training. The counts are a fact of
the layer shapes: the pre-run pass refuses such a sparsity before any work, at every pruning event, and
names the nearest sparsities that work (audit of the pre-run checks on residual models)."""

from __future__ import annotations

import re

import pytest

from prune_cli.core.errors import ConfigError
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST
from tests.helpers import composed, refused_before_any_work

# res_mlp width 8, two blocks, input 8: five 8x8 layers (64 weights each) and a 3x8 classifier (24); N = 344
RES_MLP = ["dataset=synthetic", "dataset.input_dim=8", "model=res_mlp", "model.width=8", "model.blocks=2"]
RES_MLP += ["method.allocation=layerwise"]
SIZES = [64, 64, 64, 64, 64, 24]


def by_hand(sparsity: float) -> tuple[int, int]:
    """(kept by per-layer round-half-even, round(d N)) for SIZES."""
    d = 1 - sparsity
    return sum(round(d * n) for n in SIZES), round(d * sum(SIZES))


def passes_by_hand(sparsity: float, tolerance: float = 0.005) -> bool:
    kept, target = by_hand(sparsity)
    return abs(kept - target) / sum(SIZES) <= tolerance


def test_a_sparsity_whose_per_layer_roundings_miss_the_total_is_refused_with_working_neighbours():
    assert by_hand(0.9) == (32, 34) and not passes_by_hand(0.9)  # 5 x round(6.4) + round(2.4); round(34.4)
    with pytest.raises(ConfigError) as err:
        validate(composed(*RES_MLP, "sparsity=0.9"))
    message = str(err.value)
    assert "'sparsity'" in message and "they keep 32 of the N = 344" in message and "34 is the target" in message
    nearest = [float(x) for x in re.search(r"the nearest are ([0-9., ]+);", message).group(1).split(", ")]
    assert len(nearest) == 2 and nearest[0] < 0.9 < nearest[1]
    for s in nearest:  # each suggestion works, by hand and for the pre-run pass
        assert passes_by_hand(s)
        validate(composed(*RES_MLP, f"sparsity={s}"))
    # and no count in between works: the suggestions are the nearest
    low, high = (round(s * 344) for s in nearest)  # the suggestions are k / 344, printed to 6 digits
    assert low < 310 < high and not any(passes_by_hand(k / 344) for k in range(low + 1, high))


def test_a_sparsity_whose_roundings_agree_is_accepted():
    assert passes_by_hand(0.5)
    validate(composed(*RES_MLP, "sparsity=0.5"))
    validate(composed(*RES_MLP, "sparsity=0.9", "method.sparsity_tolerance=0.01"))  # 2/344 = 0.0058 is within it


def test_an_intermediate_event_that_misses_is_named():
    """iterative in 2 rounds to 0.99 on this model: round 1 targets 1 - sqrt(0.01) = 0.9, which misses."""
    with pytest.raises(ConfigError, match=r"event 1 of 2 of schedule=iterative targets 0\.900000 on the way to sparsity=0\.99"):
        validate(composed(*RES_MLP, "schedule=iterative", "schedule.rounds=2", "sparsity=0.99", "method.allow_collapse=true"))


def test_refused_before_any_work(tmp_path):
    fast = [a for a in FAST if not a.startswith("model")]
    refused_before_any_work([*fast, *RES_MLP, "sparsity=0.9"], tmp_path / "results", "sparsity", "0.9")


def test_a_gap_of_exactly_the_tolerance_is_refused_as_the_pruner_does():
    """MLP 2-40-3 (80 and 120 weights, N = 200) at 0.021: 78 + 117 = 195 kept, round(195.8) = 196; a gap of
    1/200 = the tolerance 0.005 exactly, which the pruner's float comparison refuses (review)."""
    kept, target = round(0.979 * 80) + round(0.979 * 120), round(0.979 * 200)
    assert (kept, target) == (195, 196) and abs((1 - kept / 200) - (1 - target / 200)) > 0.005
    with pytest.raises(ConfigError, match="they keep 195 of the N = 200"):
        validate(composed("dataset=synthetic", "model=mlp", "model.widths=[40]", "method.allocation=layerwise", "sparsity=0.021"))


def test_a_collapse_is_named_before_the_totals_and_never_suggested():
    """At 0.99 the classifier (24 weights) keeps round(0.24) = 0: the cause to name is the collapse, not the
    totals (review: the totals message came first and suggested two sparsities that collapse too)."""
    with pytest.raises(ConfigError, match="classifier_layer.weight would keep none"):
        validate(composed(*RES_MLP, "sparsity=0.99"))


def test_a_suggestion_is_printed_with_the_digits_that_make_it_pass():
    """On a large model 6 digits print the refused sparsity for its neighbour k / N (review: vgg19 with
    tolerance 0 suggested "0.98765, 0.98765" for sparsity=0.98765)."""
    from prune_cli.run.prevalidate import _round_trip

    n = 20_024_000
    k = round(0.98765 * n) + 1  # the neighbour above the refused count
    text = _round_trip(k / n, lambda t: round(t * n) == k)
    assert round(float(text) * n) == k and text != "0.98765"
    assert _round_trip(0.5, lambda t: True) == "0.5"
