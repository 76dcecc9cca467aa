"""The one pre-run pass: every bad value the architecture issue listed is rejected after
composition and before any directory is created or any data loaded, with a message naming the
key; and the dataset's declared size predicts the training split exactly (or bounds it)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.data.splits import RawData, build_splits, planned_train_counts, planned_train_size
from tests.conftest import FAST, run_cli

CASES = [
    (["schedule=gradual", "schedule.end_step=100000"], "'schedule.end_step': 100000", "at most"),  # mnist1d: a bound
    # FAST: 3 classes x (60 - round(0.1 * 60)) = 162 training examples, ceil(162 / 32) = 6 steps x 2 epochs
    ([*FAST, "schedule=gradual", "schedule.end_step=500"], "'schedule.end_step': 500", "training has 12 optimizer"),
    ([*FAST, "method.allocation=explicit", "method.layer_densities=[0.5,0.5]"], "'method.layer_densities'", "a list of 3 densities"),
    ([*FAST, "method.exclude=[net.7]"], "'method.exclude'", "names of prunable layers"),
    ([*FAST, "method.allocation=matched", "method.match_masks=/nonexistent/masks.pt"], "'method.match_masks'", ""),
    ([*FAST, "method.allocation=matched"], "'method.match_masks / method.match_method'", "exactly one"),
    (["model=resnet20", "dataset=mnist1d"], "'model': 'resnet20'", "inputs of shape (40,)"),
    ([*FAST, "method=gp", "method.batches=0"], "'method.batches': 0", "an integer >= 1"),
    (
        [*FAST, "method.structure=nm", "method.allocation=layerwise", "sparsity=0.5"],
        "'method.structure': 'nm'",
        "multiple of method.nm_m=4",
    ),
    ([*FAST, "method.structure=channel"], "'method.allocation': 'global'", "layerwise with method.structure=channel"),
]


@pytest.mark.parametrize("args, key, detail", CASES, ids=[" ".join(c[0][-2:]) for c in CASES])
def test_bad_values_stop_before_any_directory(tmp_path, args, key, detail):
    results = tmp_path / "results"
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr and detail in proc.stderr, proc.stderr[-2000:]
    assert not results.exists()


def _node(**kw):
    base = {
        "val_fraction": 0.1,
        "imbalance": "none",
        "longtail_ratio": 1.0,
        "class_counts": None,
        "max_train_samples": None,
        "augment": False,
    }
    return OmegaConf.create({**base, **kw})


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"val_fraction": 0.25},
        {"imbalance": "longtail", "longtail_ratio": 10.0},
        {"imbalance": "counts", "class_counts": [7, 30, 13]},
        {"val_fraction": 0.0},
    ],
)
def test_planned_train_size_is_what_the_splits_keep(kw):
    """Computed from per-class counts alone, it equals the training split build_splits makes."""
    per_class = [40, 33, 25]
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    raw = RawData(torch.randn(len(y), 2), y, torch.randn(5, 2), torch.zeros(5, dtype=torch.long), num_classes=3)
    node = _node(**kw)
    size, exact = planned_train_size(node, len(y), per_class)
    assert exact
    splits = build_splits(raw, node, seed=3, device=torch.device("cpu"))
    assert size == len(splits.train_y)
    assert planned_train_counts(node, len(y), per_class) == (splits.train_class_counts(), True)


def test_planned_train_size_bounds_a_random_subset_or_unknown_counts():
    node = _node(max_train_samples=50)
    assert planned_train_size(node, 98, [40, 33, 25]) == (50, False)
    assert planned_train_size(_node(), 8000, None) == (8000, False)
    # per class: what a subset of 50 drawn from that class alone would leave for training
    assert planned_train_counts(node, 98, [40, 33, 25]) == ([36, 30, 23], False)  # 25 - round(2.5) = 23
    assert planned_train_counts(_node(), 8000, None) == ([8000], False)


def test_a_long_tail_of_ratio_one_is_refused():
    """With the default ratio 1, dataset.imbalance=longtail was the data of dataset.imbalance=none under a
    run id of its own (the profile, then anchored on the largest class, kept every class as it was). The
    profile n_c = round(n_head x ratio^(-c/(C-1))) with the head every class can supply would now cut
    every class to the smallest's size at ratio 1 (checked on the profile): no long tail either."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError
    from prune_cli.data.splits import longtail_counts

    assert longtail_counts([77, 70, 73, 69], 1.0) == [69, 69, 69, 69]
    with pytest.raises(ConfigError, match=r"'dataset.longtail_ratio'.*> 1"):
        validated("dataset=synthetic", "dataset.imbalance=longtail")
    validated("dataset=synthetic", "dataset.imbalance=longtail", "dataset.longtail_ratio=1.5")


def test_a_validation_split_that_takes_a_whole_class_is_refused():
    """class_counts [1, 60, 60] with val_fraction 0.6: round(0.6 x 1) = 1, class 0's only example went to
    validation and the model trained without class 0, without a word (data_pruning.csv: available 0).
    Refused before the run from the declared counts, and by build_splits for counts known only once
    loaded."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    args = ["dataset=synthetic", "dataset.imbalance=counts", "dataset.class_counts=[1,60,60]"]
    with pytest.raises(ConfigError, match=r"'dataset.val_fraction'.*class 0 has 1 example"):
        validated(*args, "dataset.val_fraction=0.6")
    validated(*args, "dataset.val_fraction=0.4")  # round(0.4) = 0: the example trains
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    raw = RawData(torch.randn(10, 2), y, torch.randn(2, 2), torch.zeros(2, dtype=torch.long), num_classes=2)
    with pytest.raises(ConfigError, match=r"class 0 has 3 example"):
        build_splits(raw, _node(val_fraction=0.9), seed=0, device=torch.device("cpu"))  # round(2.7) = 3 of 3


@pytest.mark.parametrize("name", ["_foo", ".foo", "+foo"])
def test_a_name_must_start_with_a_letter_or_digit_and_the_message_says_so(name):
    """The message listed '.', '_', '+' as allowed and refused '_foo', made of exactly those (the rule
    keeps hidden folders and option-like names out of runs/)."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match="starting with a letter or digit"):
        validated(f"name={name}")
    validated(f"name=a{name}")


@pytest.mark.parametrize("widths", ["[[16]]", "[[16],[8]]"])
def test_nested_widths_name_model_widths(tmp_path, widths):
    """`model.widths=[[16]]` passed OmegaConf's typing and made the check raise TypeError, reported as
    MLPConfig.check failing on key 'model' (the audit): now the key and its allowed values (the check of
    every typed list, prune_cli/run/config_values.py)."""
    proc = run_cli([*FAST, f"model.widths={widths}"], tmp_path / "results", check=False)
    assert proc.returncode == 2 and "'model.widths'" in proc.stderr and "a list of integers" in proc.stderr, proc.stderr
    assert "TypeError" not in proc.stderr and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "counts, match",
    [
        ("[10,10]", "a list of exactly 3 counts"),
        ("[10,10,10,10]", "a list of exactly 3 counts"),
        ("[10,61,10]", "at most 60 examples for class 1"),
    ],
)
def test_class_counts_that_do_not_fit_the_declared_classes_are_refused_before_any_work(counts, match):
    """The synthetic dataset declares 3 classes of 60 training examples (before the validation split):
    a wrong-length dataset.class_counts passed --cfg job and the pre-run pass and was refused only once
    the data was loaded; a count above a class's examples was silently capped when planning."""
    from helpers import validated
    from prune_cli.core.errors import ConfigError

    args = ["dataset=synthetic", "dataset.samples_per_class=60", "dataset.imbalance=counts", f"dataset.class_counts={counts}"]
    with pytest.raises(ConfigError, match=match):
        validated(*args)
    validated("dataset=synthetic", "dataset.samples_per_class=60", "dataset.imbalance=counts", "dataset.class_counts=[10,60,10]")


@pytest.mark.parametrize("dataset", ["mnist1d", "cifar10"])
def test_class_counts_of_the_wrong_length_are_refused_from_the_declared_classes(dataset, tmp_path):
    """The review: only synthetic (whose per-class counts are declared) was checked before the run;
    mnist1d and cifar10 declare 10 classes, and [10,10] passed --cfg job and stopped the run once loaded."""
    from helpers import validated
    from prune_cli.core.errors import ConfigError
    from tests.test_data import write_cifar

    write_cifar(tmp_path / "data", "cifar10", n_train=20, n_test=6, classes=10)
    root = [f"dataset.root={tmp_path / 'data'}"] if dataset == "cifar10" else []
    args = [f"dataset={dataset}", *root, "model=mlp", "dataset.imbalance=counts"]
    with pytest.raises(ConfigError, match="a list of exactly 10 counts"):
        validated(*args, "dataset.class_counts=[1,1]")
