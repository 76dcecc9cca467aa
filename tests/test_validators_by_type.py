"""The two validation bugs of issue 11, as a contributor meets them when adding a plugin.

Checks are chosen by name sets and by which keys a node has, not by the node's schema type:
- shared data-score options (`method.batches`, ...) are checked only for scores listed in
  `DATA_SCORES` (pruning/scores/gp.py), so a new data-driven score with `method.batches=0` passes
  validation and dies after training;
- a dataset node with a `num_samples` key gets MNIST-1D's rule (at least 100), so a new dataset
  with `num_samples=60` is rejected.

Both are strict xfails until validators are chosen by schema type (issue 11, plan step 7), which
removes the marks.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from omegaconf import OmegaConf

from conftest import compose
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


@pytest.mark.xfail(strict=True, reason="data-score options are checked only for names in DATA_SCORES (issue 11)")
def test_a_new_data_score_gets_the_shared_data_score_checks(tmp_path, monkeypatch):
    cfg = compose(["method=gp"], tmp_path / "results")
    monkeypatch.setitem(SCHEMAS["method"], "taylor", TaylorConfig)  # what @config_schema does
    monkeypatch.setitem(SCORES._entries, "taylor", SCORES.get("gp"))  # ... and @register_score
    cfg.method = OmegaConf.merge(OmegaConf.structured(TaylorConfig),
                                 {**OmegaConf.to_container(cfg.method), "name": "taylor", "score": "taylor",
                                  "batches": 0})
    with pytest.raises(ConfigError, match=r"method\.batches"):
        validate(cfg)


@pytest.mark.xfail(strict=True, reason="dataset checks are chosen by the keys a node has (issue 11)")
def test_a_new_dataset_is_not_held_to_mnist1d_rules(tmp_path, monkeypatch):
    cfg = compose(["dataset=synthetic"], tmp_path / "results")
    monkeypatch.setitem(SCHEMAS["dataset"], "toy", ToyDatasetConfig)  # what @config_schema does
    monkeypatch.setitem(DATASETS._entries, "toy", DATASETS.get("synthetic"))  # ... and @DATASETS.register
    cfg.dataset = OmegaConf.merge(OmegaConf.structured(ToyDatasetConfig), {"name": "toy"})
    validate(cfg)  # raises today: dataset.num_samples=60, "an integer >= 100"
