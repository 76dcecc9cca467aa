"""The data flow of one run: data -> model -> schedule (train / prune / record) -> CSVs."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from . import results
from .data import DATASETS, build_splits
from .metrics import METRICS, classification_metrics, layer_table, model_cost_metrics
from .models import build_model
from .pruning import ScoreContext, prune, select_prunable
from .pruning.masks import Masks, apply_masks, atomic_torch_save, count, save_masks
from .schedules import SCHEDULES
from .training import evaluate, train

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Experiment:
    """Holds the run's state; schedules call train / prune / record in the order they need."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
        self.data = build_splits(raw, cfg.dataset, cfg.seed, self.device)
        self.model = build_model(cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)
        self.prunable = list(select_prunable(self.model, cfg.method))
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.masks: Masks = {}
        self.history: list[dict] = []
        self.tables: dict[str, list[dict]] = {name: [] for name in results.TABLES}
        self.dense_values: dict[tuple, float] = {}
        self.dense_per_class: dict[tuple, tuple[float, float]] = {}
        self.dense_state: dict[str, torch.Tensor] = {}
        self.context = {
            "run_id": results.run_id(cfg), "config_hash": results.config_hash(cfg), "name": cfg.name,
            "seed": cfg.seed, "dataset": cfg.dataset.name, "model": cfg.model.name, "method": cfg.method.name,
            "score": cfg.method.score, "allocation": cfg.method.allocation, "structure": cfg.method.structure,
            "schedule": cfg.schedule.name, "target_sparsity": cfg.sparsity,
        }
        self.provenance = results.provenance(self.device)
        log.info("run %s: %d train / %d val / %d test examples, %s on %s", self.context["run_id"],
                 len(self.data.train_y), len(self.data.val_y), len(self.data.test_y), cfg.model.name, self.device)

    # -- steps a schedule composes -------------------------------------------------------

    def train(self, phase: str, train_cfg: DictConfig) -> None:
        start = time.perf_counter()
        self.history += train(self.model, self.data, train_cfg, self.generator, phase, self.masks or None)
        log.info("%s: trained %d epochs in %.1f s", phase, train_cfg.epochs, time.perf_counter() - start)

    def prune(self, sparsity: float, masks: Optional[Masks] = None) -> Masks:
        ctx = ScoreContext(method=self.cfg.method, generator=self.generator, data=self.data,
                           device=self.device, masks=masks)
        self.masks = prune(self.model, sparsity, ctx)
        apply_masks(self.model, self.masks)
        kept, total = count(self.masks)
        log.info("pruned to sparsity %.4f (target %.4f) over %d prunable weights", 1 - kept / total, sparsity, total)
        save_masks(self.masks, self.run_dir / "masks.pt")
        return self.masks

    def record(self, phase: str) -> None:
        """Evaluate the current model and add its rows; the dense phase sets the baseline values."""
        scalars, per_class = [], []
        for split in self.cfg.metrics.splits:
            x, y = self.data.split(split)
            s, pc = classification_metrics(evaluate(self.model, x, y, self.cfg.train.eval_batch_size),
                                           self.data.num_classes, split)
            scalars += s
            per_class += pc
        layers = layer_table(self.model, self.prunable, self.data.input_shape)
        scalars += model_cost_metrics(self.model, self.prunable, layers)
        for name in METRICS.names():
            node = self.cfg.metrics.get(name)
            if node is not None and node.get("enabled", False):
                out = METRICS.get(name)(self, phase, node)
                scalars += out.scalars
                for table, rows in out.tables.items():
                    self._add(table, phase, rows)
        if phase == "dense":
            self.dense_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.dense_values = {(r["split"], r["metric"]): r["value"] for r in scalars}
            self.dense_per_class = {(r["split"], r["class"]): (r["recall"], r["precision"]) for r in per_class}
        for r in scalars:
            r["dense_value"] = self.dense_values.get((r["split"], r["metric"]))
        for r in per_class:
            r["dense_recall"], r["dense_precision"] = self.dense_per_class.get((r["split"], r["class"]), (None, None))
        self._add("metrics.csv", phase, scalars)
        self._add("per_class.csv", phase, per_class if self.cfg.metrics.per_class else [])
        self._add("layers.csv", phase, layers if self.cfg.metrics.layers else [])
        atomic_torch_save({k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                          self.run_dir / f"model_{phase}.pt")
        self._write_run_files()
        summary = {r["metric"]: r["value"] for r in scalars if r["split"] in ("test", "model")}
        log.info("%s: test accuracy %.4f, sparsity %.4f (prunable) / %.4f (all), compression %.2fx", phase,
                 summary.get("accuracy", float("nan")), summary["sparsity_prunable"], summary["sparsity_total"],
                 summary["compression_ratio"])

    # -- output ------------------------------------------------------------------------

    def dense_model(self) -> torch.nn.Module:
        """A copy of the model with the trained dense weights (the reference for comparisons)."""
        model = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)
        model.load_state_dict(self.dense_state)
        return model.eval()

    def _add(self, table: str, phase: str, rows: list[dict]) -> None:
        target = self.tables.setdefault(table, [])
        for r in rows:
            target.append({**self.context, "phase": phase, **r, **self.provenance})

    def frames(self) -> dict[str, pd.DataFrame]:
        return {t: pd.DataFrame(rows, columns=results.columns(t, rows)) for t, rows in self.tables.items()}

    def _write_run_files(self) -> None:
        for table, df in self.frames().items():
            results.atomic_write_csv(df, self.run_dir / table)
        results.atomic_write_csv(pd.DataFrame(self.history), self.run_dir / "history.csv")


def run(cfg: DictConfig, run_dir: Path) -> Path:
    """Run one experiment into run_dir; a completed run is not repeated."""
    run_dir = Path(run_dir)
    if (run_dir / "COMPLETE").exists():
        log.info("run %s is already complete; its results are in %s (nothing to do)", results.run_id(cfg), run_dir)
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    exp = Experiment(cfg, run_dir)
    results.atomic_write_text(run_dir / "provenance.json",
                              json.dumps(results.environment_record(exp.device), indent=2))
    SCHEDULES.get(cfg.schedule.name)(exp)
    if cfg.shared_results:
        results.append_shared(Path(cfg.results_dir), exp.frames())
    results.atomic_write_text(run_dir / "COMPLETE", results.run_id(cfg) + "\n")
    log.info("results: %s (this run) and %s (shared CSVs)", run_dir, cfg.results_dir)
    return run_dir
