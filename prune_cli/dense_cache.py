"""The dense cache: one trained dense model per (data, model, training config, seed, device type).

Every run that needs the same dense model loads it instead of training again, so a sweep over
methods and sparsities trains one dense model per seed. Entries are written atomically and
created under a file lock, so parallel runs wait for the first instead of training twice.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from .pruning.masks import atomic_torch_save
from .results import atomic_write_text

# The config keys a trained dense model depends on; everything else (method, sparsity,
# schedule, metrics, fine-tuning, results_dir) can change without retraining.
DENSE_KEYS = ("dataset", "model", "train", "seed")


def dense_inputs(cfg: DictConfig, device_type: str) -> dict:
    """The resolved values a trained dense model depends on (hashed into its key, saved beside it)."""
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) if k != "seed" else cfg.seed for k in DENSE_KEYS}
    plain["device_type"] = device_type
    return plain


def dense_key(cfg: DictConfig, device_type: str) -> str:
    return hashlib.sha256(json.dumps(dense_inputs(cfg, device_type), sort_keys=True).encode()).hexdigest()[:16]


class DenseCache:
    def __init__(self, root: Path, key: str, description: dict):
        self.path = Path(root) / key
        self.description = description

    @classmethod
    def for_config(cls, cfg: DictConfig, data) -> "DenseCache":
        device_type = data.train_x.device.type
        return cls(Path(cfg.dense_cache.dir), dense_key(cfg, device_type), dense_inputs(cfg, device_type))

    @contextmanager
    def lock(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            yield

    def load(self, rewind_epochs: tuple[int, ...]) -> Optional[tuple[dict, dict, dict, list]]:
        """(init state, dense state, {epoch: state}, history) or None when anything needed is missing."""
        files = [self.path / "init.pt", self.path / "dense.pt", self.path / "history.json"]
        files += [self.path / f"epoch_{e}.pt" for e in rewind_epochs]
        if not all(f.exists() for f in files):
            return None
        load = lambda f: torch.load(f, map_location="cpu", weights_only=True)  # noqa: E731
        rewind = {e: load(self.path / f"epoch_{e}.pt") for e in rewind_epochs}
        return load(files[0]), load(files[1]), rewind, json.loads(files[2].read_text())

    def store(self, init: dict, dense: dict, rewind: dict[int, dict], history: list[dict]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for epoch, state in rewind.items():
            atomic_torch_save(state, self.path / f"epoch_{epoch}.pt")
        atomic_torch_save(init, self.path / "init.pt")
        atomic_torch_save(dense, self.path / "dense.pt")
        atomic_write_text(self.path / "config.json", json.dumps(self.description, indent=2))
        atomic_write_text(self.path / "history.json", json.dumps(history))  # written last: marks the entry complete
