"""tests/compositions.py's `composed_once` (each set of config-group choices composed once per process,
value overrides applied to a copy by Hydra's own step) against Hydra's full composition."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import FAST

from tests.compositions import composed_once
from tests.helpers import composed


@pytest.mark.parametrize(
    "overrides",
    [
        ["metrics=full", "metrics.recall_distortion.splits=[test,test]", "metrics.similarity.svcca_variance=1.5"],
        ["results_dir=results", "accel.compile=true", "accel.precision=bf16", "seed=3"],
        [*FAST, "method.allocation=explicit", "method.layer_densities=[0.5,0.5]", "sparsity=0.5"],
        ["data_pruning=random", "data_pruning.keep=0.3", "results_dir=results", "schedule=gradual", "schedule.end_step=500"],
        ["method=gp", "method.batches=0", "train.weight_decay=0.003", "model=resnet20", "dataset=mnist1d"],
        ["method.structure=bcr", "method.block_shape=[4,4]", "sparsity=0.99", "metrics.speedup.batch_size=0"],
        ["method=random", "method.sampling=bernoulli", "method.structure=bcr"],
    ],
)
def test_composed_once_equals_hydras_composition(overrides):
    """`composed_once` (group choices composed once, value overrides applied by Hydra's
    own step) gives exactly Hydra's full composition: lists, floats, booleans, strings, root keys,
    values of a chosen group."""
    fast, full = composed_once(*overrides), composed(overrides)
    assert OmegaConf.to_container(fast) == OmegaConf.to_container(full)
    assert OmegaConf.is_struct(fast) == OmegaConf.is_struct(full)
    assert OmegaConf.get_type(fast.method) is OmegaConf.get_type(full.method)
