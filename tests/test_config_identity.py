"""Golden run ids and dense-cache keys: moving schemas, validators and plugins must not change the
composed config (a changed hash would orphan every existing run directory and dense-cache entry).
Values computed on main at c185496; update them only in a commit that changes a config on purpose
and says so. Run ids last changed by issue 13 (region counts on in the default metrics, within
`metrics.regions.max_line_units: 20000` there); the dense-cache keys did not change. The
`metrics=full` id changed with issue 14 (metrics=full enables the speedup metric). The dense-cache
keys changed once when the key gained the source digests (pinned in these tests, so the values
below still check the config part alone): 453be3f66757fee2 and 63db6f0861c243eb before."""

from __future__ import annotations

import os

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
    # an absolute root (computed before 2026-12-03): a relative one's key is that of the folder it names from the
    # working directory (test_a_relative_root_s_dense_key_is_the_folder_it_names), so it cannot be pinned
    (["dataset=cifar10", "model=resnet20", "method=lookahead", "dataset.root=/data"], "4ff52f5adc124da9"),
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


# The run ids and dense-cache keys of already-normal spellings of a data folder, computed at 863f967 (before
# path options were normalised): they must not move, or existing results folders would not resume.
NORMAL_SPELLINGS = [
    (["dataset.cache_dir=/tmp/r/mn1d"], "run-magnitude-oneshot-s0.9-seed0-7d742839", "ebfd5a85c459ede0"),
    (
        ["dataset=cifar10", "model=resnet20", "dataset.root=/data/cifar"],
        "run-magnitude-oneshot-s0.9-seed0-46293bd2",
        "769a03fdc7010775",
    ),
    # a relative root's dense-cache key is the folder it names from here (None: `_expected_key`), since 2026-12-03
    (["dataset=cifar10", "model=resnet20", "dataset.root=data"], "run-magnitude-oneshot-s0.9-seed0-1729bd21", None),
]
OTHER_SPELLINGS = {
    "/tmp/r/mn1d": ["/tmp/r/mn1d/", "/tmp/r/./mn1d", "/tmp/r//mn1d", "/tmp/./r/mn1d/."],
    "/data/cifar": ["/data/cifar/"],
}
OTHER_SPELLINGS["data"] = ["data/", "./data", "data/.", ".//data//"]


@pytest.mark.parametrize(
    "overrides, expected_id, expected_key", NORMAL_SPELLINGS, ids=["mnist1d cache_dir", "cifar10 root", "relative root"]
)
def test_one_folder_written_differently_is_one_run_id_and_one_dense_cache_key(overrides, expected_id, expected_key, monkeypatch):
    """Before: /tmp/r/mn1d, /tmp/r/mn1d/ and /tmp/r/./mn1d were three run ids, three dense models trained and
    three experiments. A trailing '/', '.' segments and doubled '/' are one folder (prune_cli/core/paths.py
    `normal_path`); the normal spelling keeps its id of before."""
    from prune_cli.core.identity import run_id
    from prune_cli.run.dense_cache import dense_key

    pin_code_digests(monkeypatch)
    *rest, last = overrides
    key, folder = last.split("=", 1)
    if expected_key is None:  # the key of the absolute folder `data` names from this working directory
        expected_key = dense_key(_compose([*rest, f"{key}={os.path.join(os.getcwd(), folder)}"]), "cpu")
    for spelling in [folder, *OTHER_SPELLINGS[folder]]:
        cfg = _compose([*rest, f"{key}={spelling}"])
        assert (run_id(cfg), dense_key(cfg, "cpu")) == (expected_id, expected_key), spelling


def test_a_path_is_not_expanded_nor_made_absolute_nor_its_dot_dot_dropped():
    """README: `~/x` and its expansion, or a relative path and the absolute one, are different spellings for
    the run id (expanding them would move existing ids, the default `~/.cache/prune-cli/mnist1d` among them);
    `x/..` is kept, since x may be a symbolic link to another folder."""
    from prune_cli.core.paths import normal_path

    for kept in ("~/.cache/prune-cli/mnist1d", "data", "a/../b", "/", ".", "//x"):
        assert normal_path(kept) == kept
    assert [normal_path(p) for p in ("./", "/tmp//x/./", "~/x/", "///x")] == [".", "/tmp/x", "~/x", "/x"]


def test_two_spellings_of_one_cache_dir_are_one_run_one_dense_model_and_one_experiment(tmp_path):
    """Before: `dataset.cache_dir=<d>/.` then `<d>` ran twice (two run directories, the dense model trained
    twice) and `load(...).experiments` listed two experiments. Now the second command finds the run complete,
    and the run's config.yaml holds the spelling the run id hashes."""
    from omegaconf import OmegaConf

    from prune_cli.results import load
    from tests.conftest import run_cli

    fast = ["dataset=mnist1d", "dataset.num_samples=1000", "model=mlp", "model.widths=[8]"]
    fast += ["train.epochs=1", "finetune.epochs=1", "threads=1", "sparsity=0.5"]
    folder, results = tmp_path / "mn1d", tmp_path / "r"
    run_cli([*fast, f"dataset.cache_dir={folder}/."], results)
    second = run_cli([*fast, f"dataset.cache_dir={folder}//"], results)
    assert "already complete" in second.stdout + second.stderr
    (run_dir,) = [d for d in (results / "runs").iterdir() if d.is_dir()]
    assert OmegaConf.load(run_dir / "config.yaml").dataset.cache_dir == str(folder)
    assert len([d for d in (results / "dense_cache").iterdir() if d.is_dir()]) == 1  # one dense model trained
    assert len(load(results).experiments) == 1


def test_a_relative_root_s_dense_key_is_the_folder_it_names(tmp_path, monkeypatch):
    """`dataset.root=data` from two working directories is two folders of files: two dense-cache keys (one
    key loaded the first folder's dense model for the second's runs), each the key of the absolute folder."""
    from prune_cli.run.dense_cache import dense_key

    pin_code_digests(monkeypatch)
    keys = []
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        keys.append(dense_key(_compose(["dataset=cifar10", "model=resnet20", "dataset.root=data"]), "cpu"))
        assert keys[-1] == dense_key(_compose(["dataset=cifar10", "model=resnet20", f"dataset.root={tmp_path / name}/data"]), "cpu")
    assert keys[0] != keys[1]
