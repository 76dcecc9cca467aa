"""Golden run ids and dense-cache keys: moving schemas, validators and plugins must not change the
composed config (a changed hash would orphan every existing run directory and dense-cache entry).
Values computed on main at c185496; update them only in a commit that changes a config on purpose
and says so. Run ids last changed by issue 13 (region counts on in the default metrics, within
`metrics.regions.max_line_units: 20000` there); the dense-cache keys did not change. The
`metrics=full` id changed with issue 14 (metrics=full enables the speedup metric). The dense-cache
keys changed once when the key gained the source digests (pinned in these tests, so the values
below still check the config part alone): 453be3f66757fee2 and 63db6f0861c243eb before."""

from __future__ import annotations

import pytest

from tests.helpers import composed

RUN_IDS = [
    ([], "run-magnitude-oneshot-s0.9-seed0-68dea9b8"),
    (["method=random", "sparsity=0.5", "seed=3"], "run-random-oneshot-s0.5-seed3-ff93e461"),
    (["method=gp"], "run-gp-oneshot-s0.9-seed0-3df04ae0"),
    (["schedule=gradual"], "run-magnitude-gradual-s0.9-seed0-229095f3"),
    (["metrics=full"], "run-magnitude-oneshot-s0.9-seed0-6c14e1f8"),
    (["+experiment=recall_distortion"], "recall_distortion-magnitude-oneshot-s0.9-seed0-4a6184a8"),
    # changed on purpose on 2026-12-01 (5684096b before): the preset sets method.allow_collapse=true, without
    # which its layerwise jobs at 0.9975 and 0.999 are refused (they collapse)
    (["+experiment=region_bound", "method.allocation=region_bound"], "region_bound-magnitude-oneshot-s0.9-seed0-d5b26018"),
    (["dataset=cifar10", "model=resnet20", "method=lookahead"], "run-lookahead-oneshot-s0.9-seed0-db048994"),
    (["method=region_bound"], "run-region_bound-oneshot-s0.9-seed0-05df9fb0"),
    (["model=ntk_mlp", "method=synflow", "schedule=at_init"], "run-synflow-at_init-s0.9-seed0-8367fcf7"),
]
DENSE_KEYS = [
    ([], "57f28b4f72868328"),
    (["dataset=cifar10", "model=resnet20", "method=lookahead"], "a14fb4e74e2a7631"),
]


def _compose(overrides):
    return composed(*overrides, "results_dir=results")


@pytest.mark.parametrize("overrides,expected", RUN_IDS)
def test_run_id_is_unchanged(overrides, expected):
    from prune_cli.core.identity import run_id

    assert run_id(_compose(overrides)) == expected


def pin_code_digests(monkeypatch) -> None:
    """The dense-cache key also holds digests of the source (every code edit changes it, on purpose:
    tests/test_dense_cache_code.py); pinned here, the golden keys check the config part alone."""
    from prune_cli.run import dense_cache

    monkeypatch.setattr(dense_cache, "package_digest", lambda: "pinned")
    monkeypatch.setattr(dense_cache, "outside_digest", lambda: {})


@pytest.mark.parametrize("overrides,expected", DENSE_KEYS)
def test_dense_cache_key_is_unchanged(overrides, expected, monkeypatch):
    from prune_cli.run.dense_cache import dense_key

    pin_code_digests(monkeypatch)
    assert dense_key(_compose(overrides), "cpu") == expected


@pytest.mark.parametrize(
    "base, moved",
    [
        ([], ["dataset.cache_dir=/elsewhere/mnist1d"]),
        (["dataset=cifar10", "model=resnet20"], ["dataset=cifar10", "model=resnet20", "dataset.root=/elsewhere/cifar"]),
    ],
    ids=["mnist1d cache_dir", "cifar10 root"],
)
def test_the_data_s_location_is_part_of_the_run_id_as_the_readme_says(base, moved):
    """README: the keys the run id leaves out are listed, and that list is complete; the data's location
    is hashed (the same experiment with its data in another folder gets another run id)."""
    from prune_cli.core.identity import HASH_EXCLUDED, run_id

    listed = ("hydra", "results_dir", "shared_results", "dense_cache", "fail_fast", "allow_failures", "plugins", "threads")
    assert HASH_EXCLUDED == listed
    assert run_id(_compose(base)) != run_id(_compose(moved))
