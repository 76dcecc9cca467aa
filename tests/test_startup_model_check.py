"""The pre-run check against the model (docs/performance.md, "Start-up"): it builds the model once
per model config and process, on the CPU with one zero example instead of on the meta device (whose
kernels import torch._dynamo, slower than importing torch), leaves the random streams and the thread
count as they were, and hands the thread policy the multiply-accumulates it counted.

Expected MAC counts are worked out by hand from the layer sizes below, not by the counting code."""

from __future__ import annotations

import pytest
import torch
from startup_driver import MODEL_ERRORS

from prune_cli.core.errors import ConfigError
from prune_cli.run import prevalidate
from tests.helpers import composed

# mlp (configs/model/mlp.yaml: widths [256, 256]) on MNIST-1D (40 inputs, 10 classes)
MLP_MACS = 40 * 256 + 256 * 256 + 256 * 10
# cnn1d (channels [32, 32, 32], kernel 5, stride 2, padding 2) on MNIST-1D: lengths 40 -> 20 -> 10 -> 5,
# then Linear(32 * 5, 64) and Linear(64, 10)
CNN1D_MACS = 1 * 32 * 5 * 20 + 32 * 32 * 5 * 10 + 32 * 32 * 5 * 5 + 160 * 64 + 64 * 10


@pytest.fixture(autouse=True)
def _fresh_memo():
    prevalidate._CHECKED.clear()  # noqa: SLF001
    yield
    prevalidate._CHECKED.clear()  # noqa: SLF001


@pytest.mark.parametrize("model, macs", [("mlp", MLP_MACS), ("cnn1d", CNN1D_MACS)])
def test_checked_model_counts_the_macs_worked_out_by_hand(model, macs):
    checked = prevalidate.checked_model(composed(f"model={model}", "dataset=mnist1d"))
    assert checked.macs_per_example == macs
    assert {p.device.type for p in checked.model.parameters()} == {"meta"}  # no weights kept


def test_checking_leaves_random_streams_and_threads_as_they_were():
    cfg = composed("model=cnn1d", "dataset=mnist1d")
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    prevalidate.checked_model(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_the_model_is_built_once_per_model_config(monkeypatch):
    """validate, then the thread choice, then the next job of a sweep with another seed: one build;
    another width: a new build."""
    import prune_cli.models as models
    from prune_cli import cli

    built = []
    real = models.build_model

    def counting(*args, **kwargs):
        built.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "build_model", counting)
    cfg = composed("model=mlp", "dataset=mnist1d")
    prevalidate.validate(cfg)
    assert cli._macs_per_batch(cfg) == MLP_MACS * cfg.train.batch_size  # noqa: SLF001
    prevalidate.validate(composed("model=mlp", "dataset=mnist1d", "seed=7"))
    assert built == ["mlp"]
    prevalidate.validate(composed("model=mlp", "dataset=mnist1d", "model.widths=[8]"))
    assert built == ["mlp", "mlp"]


def test_layer_options_are_checked_against_the_model_of_each_config():
    """The memo holds the model, not the verdict: method.exclude is checked against the layers of the
    config at hand every time (mlp with widths [8] has layers net.1 and net.3)."""
    prevalidate.validate(composed("model=mlp", "model.widths=[8]", "dataset=mnist1d", "method.exclude=[net.1]"))
    with pytest.raises(ConfigError, match="names of prunable layers: net.1, net.3"):
        prevalidate.validate(composed("model=mlp", "model.widths=[8]", "dataset=mnist1d", "method.exclude=[net.5]"))


@pytest.mark.xdist_group("startup_report")  # with test_startup_imports, which reads the same report
def test_a_config_error_found_on_the_model_does_not_import_dynamo(startup_report):
    """The console entry point in a new interpreter (tests/startup_driver.py), for config errors found
    on the model: an MLP, a CNN and a ResNet that does not fit MNIST-1D, and layer pruning refusing
    models without residual sections (its own check builds the model too)."""
    codes = [startup_report.commands[name]["rc"] for name in MODEL_ERRORS]
    assert {"codes": codes, "dynamo": startup_report.dynamo} == {"codes": [2] * len(MODEL_ERRORS), "dynamo": False}
