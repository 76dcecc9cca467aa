"""Every seed-like option takes the range of the run's own `seed`, [0, 2^63 - 1] (what torch's and
numpy's generators accept and the tables' 64-bit seed columns hold): a seed beyond it is refused by
the pre-run pass naming the key, the value and the range, before any work. Before, a seed of 2^64
passed that pass and torch's manual_seed overflowed after dense training (exit 1, a traceback, a run
directory left behind)."""

from __future__ import annotations

import pytest

from conftest import FAST
from prune_cli.core.errors import ConfigError
from prune_cli.run.prevalidate import validate
from tests.helpers import composed, refused_before_any_work

MAX = 2**63 - 1

# (the method the key belongs to, the key); None: the key is not the method's
SEED_KEYS = [
    (None, "seed"),
    ("snip", "method.batch_seed"),
    ("gp", "method.batch_seed"),
    ("gradient_magnitude", "method.batch_seed"),
    ("undecayed", "method.batch_seed"),
    ("grasp", "method.batch_seed"),
    (None, "metrics.regions.seed"),
    (None, "metrics.ntk.seed"),
    (None, "metrics.similarity.batch_seed"),
    (None, "metrics.membership.sample_seed"),
    (None, "metrics.hessian.seed"),
    (None, "metrics.pruning_limit.seed"),
]
IDS = [f"{method or ''}:{key}" for method, key in SEED_KEYS]


def _args(method, key, value):
    return [*FAST, *([f"method={method}"] if method else []), f"{key}={value}"]


@pytest.mark.parametrize("method, key", SEED_KEYS, ids=IDS)
@pytest.mark.parametrize("value", [2**64, MAX + 1, -1], ids=["two64", "two63", "minus1"])
def test_a_seed_outside_64_bits_is_refused_by_the_prerun_pass(method, key, value):
    with pytest.raises(ConfigError) as err:
        validate(composed(_args(method, key, value)))
    assert err.value.key == key and err.value.value == value
    assert str(MAX) in str(err.value) and "2^63 - 1" in str(err.value), str(err.value)


@pytest.mark.parametrize("method, key", SEED_KEYS, ids=IDS)
def test_the_largest_seed_is_accepted(method, key):
    validate(composed(_args(method, key, MAX)))


def test_a_score_seed_beyond_64_bits_stops_before_any_work(finished_results):
    # Before: exit 1 after dense training, "Overflow when unpacking long long", a run directory left.
    refused_before_any_work(_args("snip", "method.batch_seed", 2**64), finished_results, "method.batch_seed", str(2**64), str(MAX))
