"""Validators are chosen by the schema type of a node (issue 11), not by name sets or keys.

Two bugs a contributor met when adding a plugin, kept as regression tests:
- shared data-score options (`method.batches`, ...) were checked only for scores listed in a
  hard-coded `DATA_SCORES` set, so a new data-driven score with `method.batches=0` passed
  validation and died after training; now `DataScoreConfig.check` runs for every schema that
  extends it;
- a dataset node with a `num_samples` key got MNIST-1D's rule (at least 100), so a new dataset
  with `num_samples=60` was rejected; now `Mnist1dConfig.check` runs only for MNIST-1D's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose
from prune_cli.core.config_base import SCHEMAS, DatasetConfig
from prune_cli.core.errors import ConfigError
from prune_cli.data import DATASETS
from prune_cli.pruning import SCORES
from prune_cli.pruning.scores.common import DataScoreConfig
from prune_cli.run.prevalidate import validate


@dataclass
class TaylorConfig(DataScoreConfig):
    """A new first-order score computed from training batches: it shares the data-score options."""


@dataclass
class ToyDatasetConfig(DatasetConfig):
    num_samples: int = 60  # this dataset's own option; MNIST-1D's minimum of 100 is not its rule


def test_a_new_data_score_gets_the_shared_data_score_checks(tmp_path, monkeypatch):
    cfg = compose(["method=gp"], tmp_path / "results")
    from prune_cli.core.plugins import with_plugin_options

    monkeypatch.setitem(SCHEMAS["method"], "taylor", TaylorConfig)  # what @config_schema does
    monkeypatch.setitem(SCORES._entries, "taylor", SCORES.get("gp"))  # ... and @register_score
    cfg.method = OmegaConf.merge(  # the schema as a config gets it: with the allocations' and structures' options
        OmegaConf.structured(with_plugin_options(TaylorConfig)),
        {**OmegaConf.to_container(cfg.method), "name": "taylor", "score": "taylor", "batches": 0},
    )
    with pytest.raises(ConfigError, match=r"method\.batches"):
        validate(cfg)


def test_a_new_dataset_is_not_held_to_mnist1d_rules(tmp_path, monkeypatch):
    cfg = compose(["dataset=synthetic"], tmp_path / "results")
    monkeypatch.setitem(SCHEMAS["dataset"], "toy", ToyDatasetConfig)  # what @config_schema does
    monkeypatch.setitem(DATASETS._entries, "toy", DATASETS.get("synthetic"))  # ... and @DATASETS.register
    cfg.dataset = OmegaConf.merge(OmegaConf.structured(ToyDatasetConfig), {"name": "toy"})
    validate(cfg)  # raised before issue 11: dataset.num_samples=60, "an integer >= 100"


@pytest.mark.parametrize(
    "overrides,key,message",
    [
        (["method.allocation=explicit", "method.layer_densities=[0.5]"], "method.layer_densities", "a list of 3 densities"),
        (["method.exclude=[nope]"], "method.exclude", "names of prunable layers: net.1, net.3, net.5"),
        (["model=resnet20", "dataset=mnist1d"], "model", "inputs of shape (40,)"),
        (["model=lenet5", "dataset=synthetic"], "model", "inputs of shape (2,)"),
    ],
)
def test_layer_dependent_checks_run_in_validation_before_any_data(tmp_path, overrides, key, message):
    """validate() runs while Hydra resolves the run directory (before it exists): checks that need the
    model's layers use a meta-device model built for the dataset's declared input shape and classes."""
    with pytest.raises(ConfigError) as err:
        compose(overrides, tmp_path / "results")
    assert err.value.key == key and message in str(err.value)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "dataset,shape,classes",
    [("mnist1d", (40,), 10), ("cifar10", (3, 32, 32), 10), ("cifar100", (3, 32, 32), 100), ("mnist", (1, 28, 28), 10)],
)
def test_declared_inputs_match_the_loaders(dataset, shape, classes):
    """The declared shapes the pre-run check relies on, against the datasets' published formats
    (and, for MNIST-1D, the loader's real output)."""
    files_unchecked = [] if dataset == "mnist1d" else ["dataset.download=true"]  # no local files needed here
    cfg = compose([f"dataset={dataset}", *files_unchecked], Path("unused"))
    assert OmegaConf.get_type(cfg.dataset).declared_input(cfg.dataset) == (shape, classes)
    if dataset == "mnist1d":
        raw = DATASETS.get("mnist1d")(cfg.dataset)
        assert tuple(raw.train_x.shape[1:]) == shape and int(raw.train_y.max()) + 1 == classes


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["metrics.similarity.enabled=true", "metrics.similarity.split=val"], "metrics.similarity.split"),
        (["metrics.pruning_limit.enabled=true", "metrics.pruning_limit.split=val"], "metrics.pruning_limit.split"),
        (["metrics.ntk.enabled=true", "metrics.ntk.split=val"], "metrics.ntk.split"),
        (["metrics.splits=[val]"], "metrics.splits"),
        (["metrics.recall_distortion.enabled=true", "metrics.recall_distortion.splits=[val]"], "metrics.recall_distortion.splits"),
    ],
)
def test_a_metric_on_the_validation_split_needs_one(overrides, key):
    """With dataset.val_fraction=0 the validation split is empty: similarity and pruning_limit crashed
    with an internal error after dense training and pruning (IndexError, torch.cat of nothing), ntk
    stopped only after dense training, and recall_distortion wrote a header without rows. The pre-run
    pass names the metric's split key."""
    from helpers import validated

    with pytest.raises(ConfigError, match=rf"{key}.*the validation split is empty"):
        validated("dataset=synthetic", "dataset.val_fraction=0", *overrides)
    # a fraction > 0 that rounds to no example in every class: the same (before: the same crashes)
    with pytest.raises(ConfigError, match=rf"{key}.*dataset.val_fraction=0.001 holds out round\(0.001 x n\) = 0"):
        validated("dataset=synthetic", "dataset.samples_per_class=60", "dataset.val_fraction=0.001", *overrides)
    validated("dataset=synthetic", "dataset.val_fraction=0.1", *overrides)
    on_test = [o.replace("=val", "=test").replace("[val]", "[test]") for o in overrides]
    validated("dataset=synthetic", "dataset.val_fraction=0", *on_test)


def test_an_empty_validation_split_known_only_once_the_data_is_loaded_stops_before_training(tmp_path):
    """With a random subset (max_train_samples) the per-class counts are known only once the data is
    loaded: 6 examples of 3 classes, val_fraction 0.05 holds out round(0.05 x 2) = 0. The run stops
    there, before any training, naming the key (before: a traceback after dense training)."""
    from conftest import FAST, run_cli

    args = [*FAST, "dataset.max_train_samples=6", "dataset.val_fraction=0.05", "metrics.splits=[val,test]"]
    result = run_cli(args, tmp_path / "results", check=False)
    assert result.returncode == 2, result.stderr
    assert "metrics.splits" in result.stderr and "the validation split is empty" in result.stderr
    assert "Traceback" not in result.stderr and not list((tmp_path / "results").glob("runs/*/history.csv"))


@pytest.mark.parametrize(
    "override, key",
    [("model.hidden=0", "model.hidden"), ("model.kernel_size=0", "model.kernel_size"), ("model.channels=[0]", "model.channels")],
)
def test_cnn1d_layer_sizes_are_checked_by_name(override, key):
    """model.hidden=0 passed the pre-run pass and died after dense training (ZeroDivisionError in the
    cost table); kernel_size=0 and channels=[0] were reported as a model that does not fit the data."""
    from helpers import validated

    with pytest.raises(ConfigError, match=rf"'{key}'"):
        validated("dataset=mnist1d", "model=cnn1d", override)


def test_an_ntk_output_index_beyond_the_declared_classes_stops_before_training():
    """It was found only when the metric first ran, after dense training; the dataset declares its
    number of classes (10 for MNIST-1D), so the pre-run pass checks it."""
    from helpers import validated

    with pytest.raises(ConfigError, match=r"metrics\.ntk\.output_index.*0\.\.9"):
        validated("dataset=mnist1d", "metrics.ntk.enabled=true", "metrics.ntk.output=index", "metrics.ntk.output_index=10")
    validated("dataset=mnist1d", "metrics.ntk.enabled=true", "metrics.ntk.output=index", "metrics.ntk.output_index=9")


def test_metrics_splits_names_each_split_once():
    """metrics.splits=[test,test] evaluated the test split twice per phase: every test row appeared
    twice in metrics.csv and the shared tables, silently doubling its weight in any average."""
    from helpers import validated

    with pytest.raises(ConfigError, match=r"'metrics.splits'.*each split once"):
        validated("dataset=synthetic", "metrics.splits=[test,test]")
    validated("dataset=synthetic", "metrics.splits=[val,test]")


def test_hessian_top_k_is_at_most_the_lanczos_steps():
    """Lanczos with m steps has m Ritz values: top_k=3 with lanczos_iter=1 wrote only
    hessian_top_eig_1, without a word."""
    from helpers import validated

    with pytest.raises(ConfigError, match=r"'metrics.hessian.top_k'.*at most metrics.hessian.lanczos_iter=1"):
        validated("dataset=synthetic", "metrics.hessian.enabled=true", "metrics.hessian.lanczos_iter=1")
    validated("dataset=synthetic", "metrics.hessian.enabled=true", "metrics.hessian.lanczos_iter=3")


@pytest.mark.parametrize("value", ["yes", "on", "2", "1"])
def test_a_boolean_option_takes_true_or_false(tmp_path, value):
    """OmegaConf turns yes/no/on/off and any integer into a bool: train.nesterov=2 ran as true under
    a run id of its own. An override of a bool option is true or false; the value is named."""
    from conftest import FAST, run_cli

    args = [*FAST, "train.momentum=0.9", f"train.nesterov={value}"]
    result = run_cli(args, tmp_path / "results", check=False)
    assert result.returncode == 2 and not (tmp_path / "results").exists(), result.stderr
    assert (
        f"Invalid value for config key 'train.nesterov': {value!r}" in result.stderr or f"'train.nesterov': {value}" in result.stderr
    )
    assert "true or false" in result.stderr


def test_a_boolean_option_given_true_or_false_passes(tmp_path):
    from conftest import FAST, run_cli

    run_cli([*FAST, "train.momentum=0.9", "train.nesterov=false", "shared_results=true"], tmp_path / "results")


@pytest.mark.parametrize("mode, structure", [("forward", "channel"), ("backward", "channel_group")])
def test_lap_forward_and_backward_need_a_structure_that_prunes_one_layer_at_a_time(mode, structure):
    """LFP/LBP build each layer's mask before scoring its neighbour; channel and channel_group decide
    all layers together. This stopped only after dense training, with a message naming no key."""
    from helpers import validated

    args = ["dataset=synthetic", "method=lookahead", f"method.mode={mode}", f"method.structure={structure}"]
    with pytest.raises(ConfigError, match=rf"'method.structure'.*one layer at a time.*method.mode={mode}"):
        validated(*args, "method.allocation=layerwise")
    validated("dataset=synthetic", "method=lookahead", f"method.mode={mode}", "method.allocation=layerwise")


def test_a_sparsity_that_keeps_no_weight_stops_before_training():
    """The FAST MLP has 336 prunable weights: sparsity=0.999 keeps round(0.336) = 0 of them, which
    stopped with a LayerCollapse only after dense training. method.allow_collapse=true accepts it,
    as it accepts any collapse."""
    from conftest import FAST
    from helpers import validated

    with pytest.raises(ConfigError, match=r"'sparsity'.*keeps at least one of the 336 prunable weights"):
        validated(FAST, "sparsity=0.999")
    validated(FAST, "sparsity=0.998")  # round(0.672) = 1
    validated(FAST, "sparsity=0.999", "method.allow_collapse=true")


def test_exclusions_that_leave_no_layer_name_the_options_typed():
    """With one hidden layer, exclude_first and exclude_classifier exclude both prunable layers. The
    message named method.exclude with ['net.1', 'net.3'], a value nobody typed."""
    from conftest import FAST
    from helpers import validated

    flags = ["model.widths=[16]", "method.exclude_classifier=true", "method.exclude_first=true"]
    with pytest.raises(ConfigError, match=r"'method.exclude_first, method.exclude_classifier'.*at least one prunable layer") as err:
        validated(FAST, *flags)
    assert "exclude_first excludes net.1" in str(err.value) and "exclude_classifier excludes net.3" in str(err.value)


def test_a_schema_check_that_raises_a_plain_exception_is_a_config_error_naming_it():
    """A plugin's check that raises ValueError (instead of ConfigError) reached the user as Hydra's
    "An error occurred during Hydra's exception formatting" and a traceback, without the plugin's
    name; now it is a config error (exit 2) naming the node, the schema and the exception."""
    from dataclasses import dataclass

    from omegaconf import OmegaConf

    from prune_cli.core.config_base import run_checks

    @dataclass
    class PowerConfig:
        power: float = -1.0

        @staticmethod
        def check(cfg, key):
            raise ValueError("power must be positive")

    cfg = OmegaConf.create({"method": {"power": -1.0}})
    with pytest.raises(ConfigError, match=r"'method'.*PowerConfig.check raised ValueError: power must be positive"):
        run_checks(PowerConfig, cfg, "method")


@pytest.mark.parametrize("source, error", [("import not_a_module_anywhere\n", "ModuleNotFoundError"), ("def f(:\n", "SyntaxError")])
def test_a_plugin_module_that_fails_to_import_is_a_config_error_naming_it(tmp_path, monkeypatch, source, error):
    """Chosen with method.score=..., the module was imported while Hydra resolved the run directory:
    an InterpolationResolutionError traceback through hydra.run.dir (exit 1). Now one message naming
    the module, what it provides and the import error."""
    from prune_cli.core import plugins

    (tmp_path / "lab_broken.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=rf"'plugins': 'lab_broken'.*score 'broken'.*{error}"):
        plugins.import_plugin("lab_broken", "score 'broken'")


def test_a_plugin_registered_without_a_schema_is_told_what_it_lacks(monkeypatch):
    """A model plugin with only @MODELS.register('noschema'): model=noschema said "not one of the
    options" (without listing it) and model.name=noschema said "choose it with model=noschema" - a
    circle. The message now says the plugin declares the model but no schema does."""
    from hydra.errors import MissingConfigException

    from prune_cli.core import plugins
    from prune_cli.run.composition_errors import as_config_error

    monkeypatch.setitem(plugins.index().kinds, ("model", "noschema"), "lab.noschema")
    err = MissingConfigException("missing", missing_cfg_file="model/noschema", options=["mlp", "resnet20"])
    found = str(as_config_error(err, ["model=noschema"]))
    assert "'model': 'noschema'" in found and "lab.noschema registers model 'noschema'" in found
    assert "@config_schema('model', 'noschema')" in found
