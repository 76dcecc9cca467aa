"""Applying the run's data-pruning rule (`data_pruning=...`, prune_cli/data/pruning) to the training
split, after the splits are built and before the dense model is trained (docs/data_pruning.md).

The rule's random choices use their own generator (derived from the run seed) and its proxy
models their own seeds, and the global random state is restored afterwards, so the run's model
initialisation and batch order are those of the same run without data pruning. The selection is
deterministic given the config, so a resumed run selects the same examples again; the per-class
counts go to `data_pruning.csv` in the run directory."""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..core.atomic_io import atomic_write_text
from ..data.pruning import DATA_PRUNING, DataPruningContext, apply_selection
from ..data.splits import DataSplits
from ..training import train

log = logging.getLogger(__name__)

TABLE = "data_pruning.csv"


def _seed(seed: int, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little")


def select_training_data(
    cfg: DictConfig,
    data: DataSplits,
    device: torch.device,
    build_model: Callable[[DictConfig, DataSplits], torch.nn.Module],
    run_dir: Path,
) -> DataSplits:
    """The splits with the training split pruned by `cfg.data_pruning` (unchanged for `none`)."""
    node = cfg.data_pruning
    if node.name == "none":
        return data

    def train_proxy(index: int, epochs: int) -> torch.nn.Module:
        """A model of the run's architecture, its own seed, trained `epochs` epochs on the full split."""
        torch.manual_seed(_seed(cfg.seed, f"data-pruning-proxy-{index}"))
        model = build_model(cfg, data).to(device)
        options = OmegaConf.merge(cfg.train, {"epochs": epochs, "warmup_epochs": min(cfg.train.warmup_epochs, epochs)})
        train(
            model,
            data,
            options,
            torch.Generator().manual_seed(_seed(cfg.seed, f"data-pruning-batches-{index}")),
            f"data_pruning_proxy{index}",
        )
        return model

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        ctx = DataPruningContext(
            data=data,
            generator=torch.Generator().manual_seed(_seed(cfg.seed, "data-pruning")),
            train_proxy=train_proxy,
            eval_batch_size=int(cfg.train.eval_batch_size),
        )
        selection = DATA_PRUNING.get(node.name)(ctx, node)
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    rows = [{"rule": node.name, **row} for row in selection.per_class]
    atomic_write_text(Path(run_dir) / TABLE, pd.DataFrame(rows).to_csv(index=False))
    log.info(
        "data pruning (%s): kept %d of %d training examples; per class %s",
        node.name,
        len(selection.indices),
        len(data.train_y),
        [r["kept"] for r in selection.per_class],
    )
    return apply_selection(data, selection.indices)
