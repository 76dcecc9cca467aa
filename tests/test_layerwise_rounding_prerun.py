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
