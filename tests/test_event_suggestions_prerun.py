"""A pre-run refusal at a schedule of several pruning events suggests only sparsities whose every event of
their own schedule passes. It suggested the nearest values of the one event it checked (an audit found 85 of
175 such suggestions refused again at an earlier event of their own schedule), and the layerwise totals check
suggested nothing for a schedule of several events."""

from __future__ import annotations

import itertools
import re

import pytest

from prune_cli.core.errors import ConfigError
from tests.helpers import validated

# MLP 2-16-16-3 in 4x4 blocks: 16x2 (four 4x2 blocks of 8), 16x16 (sixteen of 16), 3x16 (four 3x4 of 12); N = 336
BLOCK = ["dataset=synthetic", "model=mlp", "model.widths=[16,16]", "method.allocation=layerwise"]
BLOCK += ["method.structure=block", "method.block_shape=[4,4]", "schedule=iterative", "schedule.rounds=3"]
N = 336
# res_mlp of five 64-weight layers and a 24-weight classifier (N = 344), unstructured layerwise
RES_MLP = [
    "dataset=synthetic",
    "dataset.input_dim=8",
    "model=res_mlp",
    "model.width=8",
    "model.blocks=2",
    "method.allocation=layerwise",
]
SIZES = [64, 64, 64, 64, 64, 24]


def suggestions(message: str) -> list[str]:
    found = re.search(r"(?:the nearest (?:are|is)|passes (?:are|is)) ([0-9.]+(?:(?: and |, )[0-9.]+)*)", message)
    return re.split(r" and |, ", found.group(1)) if found else []


def within(kept: int, density: float, n: int, tolerance: float = 0.005) -> bool:
    """The pruner's comparison (pruner.check_masks)."""
    return abs((1.0 - kept / n) - (1.0 - round(density * n) / n)) <= tolerance


def iterative_densities(sparsity: float, rounds: int) -> list[float]:
    """Round i of schedule=iterative keeps d^(i / rounds) (docs/allocation.md)."""
    return [(1.0 - sparsity) ** (i / rounds) for i in range(1, rounds + 1)]


def block_reaches(density: float) -> bool:
    """Some choice of a non-empty set of blocks in every layer meets the target: enumerated."""
    totals = {8 * a + 16 * b + 12 * c for a, b, c in itertools.product(range(1, 5), range(1, 17), range(1, 5))}
    return any(within(t, density, N) for t in totals)


@pytest.mark.parametrize("sparsity", ["0.33", "0.34", "0.47"])
def test_every_block_suggestion_passes_every_event_of_its_own_schedule(sparsity):
    """At 0.34 and 0.47 the last event is refused: the nearest totals it reaches (0.333333; 0.464286 and
    0.476190) were suggested, and each is refused at an earlier event of its own schedule. At 0.33 the
    first event is: the nearest sparsities to that event's target (0.119048 and 0.130952) were suggested
    for `sparsity`, both refused at an event of their own."""
    assert not all(block_reaches(d) for d in iterative_densities(float(sparsity), 3))
    with pytest.raises(ConfigError) as err:
        validated(*BLOCK, f"sparsity={sparsity}")
    shown = suggestions(str(err.value))
    assert shown, str(err.value)
    for s in shown:
        assert all(block_reaches(d) for d in iterative_densities(float(s), 3)), s  # by enumeration
        validated(*BLOCK, f"sparsity={s}")  # and the pre-run pass


def by_hand(density: float) -> tuple[int, int]:
    """(kept by per-layer round-half-even, round(d N)) for SIZES."""
    return sum(round(density * n) for n in SIZES), round(density * sum(SIZES))


def test_the_totals_check_suggests_for_a_schedule_of_several_events():
    """iterative in 2 rounds to 0.99: round 1 targets 0.9, whose per-layer roundings miss the total; no
    sparsity was suggested there."""
    args = [*RES_MLP, "schedule=iterative", "schedule.rounds=2", "method.allow_collapse=true"]
    with pytest.raises(ConfigError, match=r"event 1 of 2") as err:
        validated(*args, "sparsity=0.99")
    shown = suggestions(str(err.value))
    assert shown, str(err.value)
    for s in shown:
        for d in iterative_densities(float(s), 2):
            kept, target = by_hand(d)
            assert abs((1 - kept / 344) - (1 - target / 344)) <= 0.005, (s, d)
        validated(*args, f"sparsity={s}")


def test_a_gradual_refusal_suggests_sparsities_whose_every_event_passes():
    """Gradual's events are known from the training split's declared size; at 0.9 an intermediate event
    is out of reach, and its nearest values were suggested for `sparsity`, each refused again."""
    args = [*BLOCK[:-2], "dataset.input_dim=8", "schedule=gradual", "dataset.samples_per_class=60", "train.epochs=2"]
    args += ["train.batch_size=32", "schedule.frequency=2"]
    with pytest.raises(ConfigError, match=r"schedule=gradual targets the intermediate sparsity") as err:
        validated(*args, "sparsity=0.9")
    shown = suggestions(str(err.value))
    assert shown, str(err.value)
    for s in shown:
        validated(*args, f"sparsity={s}")


def test_a_config_changed_and_validated_again_gets_suggestions_of_its_new_values():
    """The suggestion search reused one copy of a config per config object and only set its sparsity, so a
    config changed and validated again (method.sparsity_tolerance 0.001, then 0.0005) got suggestions of
    its old tolerance (0.888934 and 0.908241, both refused at 0.0005; review of the suggestion search).
    Now they are those of a freshly composed config with the new tolerance, and each passes."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.run.prevalidate import validate
    from tests.helpers import composed

    overrides = ["dataset=synthetic", "threads=1", "model=mlp", "method.structure=channel", "method.allocation=layerwise"]
    overrides += ["schedule=iterative", "sparsity=0.9"]
    cfg = composed(*overrides, "method.sparsity_tolerance=0.001")
    with pytest.raises(ConfigError):
        validate(cfg)
    cfg.method.sparsity_tolerance = 0.0005
    with pytest.raises(ConfigError) as again:
        validate(cfg)
    with pytest.raises(ConfigError) as fresh:
        validated(*overrides, "method.sparsity_tolerance=0.0005")
    assert str(again.value) == str(fresh.value)
    for value in re.findall(r"passes (?:is|are) ([0-9.]+(?: and [0-9.]+)?)", str(fresh.value))[0].split(" and "):
        validated(*overrides, "method.sparsity_tolerance=0.0005", f"sparsity={value}")


def test_a_one_event_refusal_keeps_the_structures_words_and_names_only_values_that_pass():
    """channel on a 5-10-7-3 MLP at 0.97: the structure named 0.936170 and 1.000000, and 1.000000 fails the
    pre-run check (no weight kept). The refusal said "the nearest whose every pruning event of
    schedule=oneshot passes is 0.93617" (review); a run of one event keeps the structure's own words. The
    structure no longer offers 1.000000 (no unit kept: a collapse, structures/channel.py `fractions`), so it
    names only 0.936170, printed as it prints it."""
    overrides = ["dataset=synthetic", "dataset.input_dim=5", "model=mlp", "model.widths=[10,7]"]
    overrides += ["method.structure=channel", "method.allocation=layerwise"]
    with pytest.raises(ConfigError) as err:
        validated(*overrides, "sparsity=0.97")
    assert "the nearest is 0.936170; or raise method.sparsity_tolerance" in str(err.value), err.value  # one value: "is"
    assert "every pruning event" not in str(err.value)
    validated(*overrides, "sparsity=0.93617")
