"""The data flow of one run: data -> model -> schedule plan (dense / prune / restart / train /
record steps) -> CSVs, with a checkpoint after every step and every epoch so that a killed run
started again continues where it stopped and writes each row exactly once."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from . import results, shared_tables
from .core import crashpoints, interrupts
from .core.atomic_io import atomic_torch_save, atomic_write_csv, atomic_write_text
from .core.errors import ConfigError
from .core.identity import config_hash, run_id
from .core.tables import TABLES, columns
from .data import DATASETS, build_splits
from .dense_cache import DenseCache
from .metrics import METRICS, classification_metrics, layer_table, model_cost_metrics
from .models import build_model
from .models.masks import Masks, apply_masks, count, save_masks
from .pruning import ScoreContext, prune, select_prunable
from .schedules import SCHEDULES, Step, gradual_sparsity
from .training import TrainProgress, evaluate, train

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
RUN_LOCK = ".run.lock"  # one process per run directory
COMPLETE_FILE = "COMPLETE"  # written last; a run without it is unfinished
SAVED_PHASES = ("dense", "pruned", "finetuned")  # phases whose model weights are kept as files


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose, independent of the others drawn from the same run seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little")


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class Experiment:
    """Holds the run's state; `run_plan` executes the schedule's steps with checkpoints."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        raw = DATASETS.get(cfg.dataset.name)(cfg.dataset)
        self.data = build_splits(raw, cfg.dataset, cfg.seed, self.device)
        self.model = build_fitting_model(cfg, self.data).to(self.device)
        self.init_state = _cpu_state(self.model)
        self.prunable = list(select_prunable(self.model, cfg.method))
        # Batch order and random scores get their own stream: a generator seeded like the global RNG
        # would replay the draws that initialised the weights (random masks would track weight signs).
        self.generator = torch.Generator().manual_seed(derived_seed(cfg.seed, "run-generator"))
        self.masks: Masks = {}
        self.history: list[dict] = []
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLES}
        self.dense_values: dict[tuple, float] = {}
        self.dense_per_class: dict[tuple, tuple[float, float]] = {}
        self.dense_state: dict[str, torch.Tensor] = {}
        self.rewind_states: dict[int, dict[str, torch.Tensor]] = {}
        self.rounds_done = 0
        self.context = {
            "run_id": run_id(cfg), "config_hash": config_hash(cfg), "name": cfg.name,
            "seed": cfg.seed, "dataset": cfg.dataset.name, "model": cfg.model.name, "method": cfg.method.name,
            "score": cfg.method.score, "allocation": cfg.method.allocation, "structure": cfg.method.structure,
            "schedule": cfg.schedule.name, "target_sparsity": cfg.sparsity, "dense_cache": "off",
        }
        self.provenance = results.provenance(self.device)
        self.step_index = 0
        self.progress: Optional[TrainProgress] = None  # set while resuming a half-finished training step
        log.info("run %s: %d train / %d val / %d test examples, %s on %s", self.context["run_id"],
                 len(self.data.train_y), len(self.data.val_y), len(self.data.test_y), cfg.model.name, self.device)

    # -- the plan and its checkpoints ------------------------------------------------------

    def run_plan(self, plan: list[Step]) -> None:
        if (self.run_dir / STATE_FILE).exists() and self._load_checkpoint():
            if self.step_index < len(plan):
                log.info("resuming run %s at step %d of %d (%s)", self.context["run_id"], self.step_index + 1,
                         len(plan), plan[self.step_index].kind)
            else:
                log.info("resuming run %s: all %d steps were done; writing its results", self.context["run_id"],
                         len(plan))
        while self.step_index < len(plan):
            interrupts.check()
            step = plan[self.step_index]
            getattr(self, f"_step_{step.kind}")(*step.args)
            self.step_index += 1
            self.progress = None
            self._save_checkpoint()

    def _save_checkpoint(self, progress: Optional[TrainProgress] = None) -> None:
        state = {
            "step_index": self.step_index, "model": _cpu_state(self.model),
            "masks": {k: v.cpu() for k, v in self.masks.items()}, "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(), "init_state": self.init_state, "dense_state": self.dense_state,
            "rewind_states": {str(k): v for k, v in self.rewind_states.items()},
            "json": json.dumps({
                "tables": self.tables, "history": self.history, "rounds_done": self.rounds_done,
                "dense_values": [[list(k), v] for k, v in self.dense_values.items()],
                "dense_per_class": [[list(k), list(v)] for k, v in self.dense_per_class.items()],
                "context": self.context, "provenance": self.provenance,
                "progress_epoch": progress.epoch if progress else None,
            }),
        }
        if progress is not None:
            state["progress"] = {"optimizer": progress.optimizer, "generator": progress.generator}
        atomic_torch_save(state, self.run_dir / STATE_FILE, crash_point="checkpoint-write")

    def _load_checkpoint(self) -> bool:
        """Restore the checkpoint; an unreadable one is moved aside (warning) and the run starts over."""
        path = self.run_dir / STATE_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            extra = json.loads(state["json"])
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file: keep it for inspection, redo the work
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            aside = path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
            os.replace(path, aside)
            log.warning("checkpoint %s is unreadable (%s: %s); moved it to %s and starting the run from the "
                        "beginning", path, type(err).__name__, str(err).splitlines()[0] if str(err) else "", aside)
            return False
        self.step_index = state["step_index"]
        self.model.load_state_dict(state["model"])
        self.masks = {k: v.bool() for k, v in state["masks"].items()}
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.init_state, self.dense_state = state["init_state"], state["dense_state"]
        self.rewind_states = {int(k): v for k, v in state["rewind_states"].items()}
        self.tables, self.history = extra["tables"], extra["history"]
        self.rounds_done = extra["rounds_done"]
        self.dense_values = {tuple(k): v for k, v in extra["dense_values"]}
        self.dense_per_class = {tuple(k): tuple(v) for k, v in extra["dense_per_class"]}
        self.context, self.provenance = extra["context"], extra["provenance"]
        if "progress" in state:
            p = state["progress"]
            self.progress = TrainProgress(extra["progress_epoch"], p["optimizer"], p["generator"])
        return True

    def _train(self, phase: str, train_cfg: DictConfig, start_epoch: int = 0, on_step=None,
               keep_epochs: tuple[int, ...] = ()) -> None:
        """Train with a checkpoint after every epoch; `keep_epochs` states are kept for rewinding."""
        start = time.perf_counter()

        def checkpoint(row: dict, progress: TrainProgress) -> None:
            self.history.append(row)
            if progress.epoch in keep_epochs:
                self.rewind_states[progress.epoch] = _cpu_state(self.model)
            self._save_checkpoint(progress)

        train(self.model, self.data, train_cfg, self.generator, phase, self.masks or None,
              start_epoch=start_epoch, resume=self.progress, on_epoch_end=checkpoint, on_step=on_step)
        self.progress = None
        log.info("%s: trained to epoch %d in %.1f s", phase, train_cfg.epochs, time.perf_counter() - start)

    # -- steps a schedule composes ---------------------------------------------------------

    def _step_dense(self) -> None:
        """The trained dense model: from the dense cache when an identical one exists, else trained."""
        schedule = self.cfg.schedule
        keep = (schedule.rewind_epoch,) if schedule.restart_from == "rewind" and schedule.rewind_epoch > 0 else ()
        resumed = self.progress is not None  # this run was training the dense model when it stopped
        if not resumed:  # a fresh start of the step: no dense epochs can be recorded yet
            self.history = [r for r in self.history if r["phase"] != "dense"]
        cache = DenseCache.for_config(self.cfg, self.device.type) if self.cfg.dense_cache.enabled else None
        if cache is None:
            self._train("dense", self.cfg.train, keep_epochs=keep)
        else:
            with cache.lock():
                entry = cache.load(keep)
                if entry is not None:
                    self.init_state, self.rewind_states = entry.init, entry.rewind
                    self.model.load_state_dict(entry.dense)
                    self.history = [r for r in self.history if r["phase"] != "dense"] + entry.history
                    self.progress = None
                    # killed right after storing the model it trained itself: that run is still a miss
                    own = resumed and entry.trained_by == self.context["run_id"]
                    self.context["dense_cache"] = "miss" if own else "hit"
                    log.info("dense model loaded from the cache (%s): no training needed", cache.path)
                else:
                    self._train("dense", self.cfg.train, keep_epochs=keep)
                    self.context["dense_cache"] = "miss"
                    cache.store(self.init_state, _cpu_state(self.model), self.rewind_states,
                                [r for r in self.history if r["phase"] == "dense"], self.context["run_id"])
                    crashpoints.reached("cache-stored")
                    log.info("dense model trained and stored in the cache (%s)", cache.path)
        self.dense_state = _cpu_state(self.model)
        # Training the dense model consumed the generator, loading it from the cache did not: restart
        # the stream here so that everything after the dense phase is identical on hit and miss.
        self.generator.manual_seed(derived_seed(self.cfg.seed, "after-dense"))

    def _step_prune(self, sparsity: float) -> None:
        ctx = ScoreContext(method=self.cfg.method, generator=self.generator, data=self.data,
                           device=self.device, masks=self.masks or None)
        self.masks = prune(self.model, sparsity, ctx)
        apply_masks(self.model, self.masks)
        self.rounds_done += 1
        kept, total = count(self.masks)
        log.info("pruned to sparsity %.4f (target %.4f) over %d prunable weights", 1 - kept / total, sparsity, total)
        save_masks(self.masks, self.run_dir / "masks.pt")

    def _step_restart(self, source: str) -> None:
        """Set the weights training restarts from; pruned weights stay zero."""
        if source == "init" or (source == "rewind" and self.cfg.schedule.rewind_epoch == 0):
            self.model.load_state_dict(self.init_state)
        elif source == "rewind":
            self.model.load_state_dict(self.rewind_states[self.cfg.schedule.rewind_epoch])
        elif source == "reinit":
            torch.manual_seed(derived_seed(self.cfg.seed, f"reinit-{self.rounds_done}"))
            fresh = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes)
            self.model.load_state_dict(fresh.state_dict())
        if self.masks:
            apply_masks(self.model, self.masks)

    def _step_train(self, which: str) -> None:
        schedule = self.cfg.schedule
        train_cfg = self.cfg.train if which == "train" else self.cfg.finetune
        start_epoch = 0
        if which == "train" and schedule.restart_from == "rewind" and schedule.lr_rewind:
            start_epoch = schedule.rewind_epoch
        self._train("finetuned" if which == "finetune" else f"retrain_{self.rounds_done}", train_cfg, start_epoch)

    def _step_gradual(self) -> None:
        """Train with the sparsity raised along the polynomial curve at every pruning event."""
        schedule = self.cfg.schedule
        steps_per_epoch = -(-len(self.data.train_y) // self.cfg.train.batch_size)
        targets = gradual_sparsity(schedule, self.cfg.sparsity, self.cfg.train.epochs * steps_per_epoch)

        def on_step(step: int) -> Optional[Masks]:
            if step not in targets:
                return None
            self._step_prune(targets[step])
            self.record(f"step_{step}")
            return self.masks

        self._train("gradual", self.cfg.train, on_step=on_step)

    def _step_record(self, phase: str) -> None:
        self.record(phase)

    # -- metrics and rows --------------------------------------------------------------------

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
            self.dense_values = {(r["split"], r["metric"]): r["value"] for r in scalars}
            self.dense_per_class = {(r["split"], r["class"]): (r["recall"], r["precision"]) for r in per_class}
        for r in scalars:
            r["dense_value"] = self.dense_values.get((r["split"], r["metric"]))
        for r in per_class:
            r["dense_recall"], r["dense_precision"] = self.dense_per_class.get((r["split"], r["class"]), (None, None))
        self._add("metrics.csv", phase, scalars)
        self._add("per_class.csv", phase, per_class if self.cfg.metrics.per_class else [])
        self._add("layers.csv", phase, layers if self.cfg.metrics.layers else [])
        if phase in SAVED_PHASES:
            atomic_torch_save(_cpu_state(self.model), self.run_dir / f"model_{phase}.pt")
        self._write_run_files()
        summary = {r["metric"]: r["value"] for r in scalars if r["split"] in ("test", "model")}
        log.info("%s: test accuracy %.4f, sparsity %.4f (prunable) / %.4f (all), compression %.2fx", phase,
                 summary.get("accuracy", float("nan")), summary["sparsity_prunable"], summary["sparsity_total"],
                 summary["compression_ratio"])

    def dense_model(self) -> torch.nn.Module:
        """A copy of the model with the trained dense weights (the reference for comparisons)."""
        model = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)
        model.load_state_dict(self.dense_state)
        return model.eval()

    def _add(self, table: str, phase: str, rows: list[dict]) -> None:
        """Rows carry the run's identity; a metric's own keys never overwrite it: a metric table's
        key that is also an identity or provenance column is prefixed with the table's name
        (regions.csv: the counter's `seed` and `method` become `regions_seed`, `regions_method`)."""
        target = self.tables.setdefault(table, [])
        reserved = set(self.context) | set(self.provenance) | {"phase"}
        prefix = "" if table in TABLES else table.removesuffix(".csv") + "_"
        for r in rows:
            own = {(prefix + k if prefix and k in reserved else k): v for k, v in r.items()}
            target.append({**self.context, "phase": phase, **own, **self.provenance})

    def frames(self) -> dict[str, pd.DataFrame]:
        return {t: pd.DataFrame(rows, columns=columns(t, rows)) for t, rows in self.tables.items()}

    def _write_run_files(self) -> None:
        for table, df in self.frames().items():
            atomic_write_csv(df, self.run_dir / table)
        atomic_write_csv(pd.DataFrame(self.history), self.run_dir / "history.csv")


def build_fitting_model(cfg: DictConfig, data) -> torch.nn.Module:
    """Build the model and pass one example through it: a model made for other inputs (a CNN on
    1-D signals, an image model on vectors) stops here with one message instead of a traceback from
    its constructor or deep inside training."""
    allowed = (f"a model that takes dataset={cfg.dataset.name}'s inputs of shape {tuple(data.input_shape)} "
               "(mlp and cnn1d take vectors; lenet5, conv6, vgg*, resnet* take images)")
    try:
        model = build_model(cfg.model, data.input_shape, data.num_classes)
    except (ValueError, TypeError, IndexError, RuntimeError, ZeroDivisionError) as err:
        raise ConfigError("model", cfg.model.name, allowed, f"It cannot be built for them: {err}") from None
    x = data.train_x[:1] if len(data.train_y) else data.test_x[:1]
    try:
        with torch.no_grad():
            out = model.eval()(x.to("cpu"))
        model.train()
    except RuntimeError as err:
        raise ConfigError("model", cfg.model.name, allowed,
                          f"Its forward pass fails: {str(err).splitlines()[0]}") from None
    if out.shape[-1] != data.num_classes:
        raise ConfigError("model", cfg.model.name, f"a model with {data.num_classes} outputs, one per class of "
                          f"dataset={cfg.dataset.name}", f"It has {out.shape[-1]}.")
    return model


def run(cfg: DictConfig, run_dir: Path) -> Path:
    """Run one experiment into run_dir: resume it if it was interrupted, skip it if it is complete.

    One process at a time per run directory (a file lock): a second process with the same run id
    waits, then finds the run complete or, if the first died, takes it over from its checkpoint."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rid = run_id(cfg)
    lock = FileLock(str(run_dir / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("run %s is being run by another process (lock %s); waiting for it to finish", rid, lock.lock_file)
        print(f"prune-run: run {rid} is being run by another process; waiting for it", file=sys.stderr)
        lock.acquire()
        log.warning("run %s: the other process has %s", rid, "finished it" if (run_dir / COMPLETE_FILE).exists()
                    else "stopped; taking the run over from its checkpoint")
    try:
        return _run_locked(cfg, run_dir, rid)
    finally:
        lock.release()


def _run_locked(cfg: DictConfig, run_dir: Path, rid: str) -> Path:
    results_dir = Path(cfg.results_dir)
    if (run_dir / COMPLETE_FILE).exists():
        if cfg.shared_results and not (run_dir / shared_tables.MARKER_FILE).exists():
            outcome = shared_tables.append_run(results_dir, run_dir, rid)
            log.info("run %s was already complete; its rows were not in the shared tables yet: %s", rid, outcome)
        else:
            log.info("run %s is already complete; its results are in %s (nothing to do)", rid, run_dir)
        return run_dir
    if cfg.shared_results:
        shared_tables.refuse_symlinks(results_dir)  # before any work, not after training
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    exp = Experiment(cfg, run_dir)
    atomic_write_text(run_dir / "provenance.json",
                      json.dumps(results.environment_record(exp.provenance), indent=2))
    exp.run_plan(SCHEDULES.get(cfg.schedule.name)(cfg))
    exp._write_run_files()
    if cfg.shared_results:
        outcome = shared_tables.append_run(results_dir, run_dir, rid)
        log.info("shared tables in %s: %s", results_dir, outcome)
    crashpoints.reached("before-complete")
    atomic_write_text(run_dir / COMPLETE_FILE, rid + "\n")
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    log.info("results: %s (this run) and %s (shared CSVs)", run_dir, cfg.results_dir)
    return run_dir
