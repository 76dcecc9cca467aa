"""Applying the run's data-pruning rule (`data_pruning=...`, prune_cli/data/pruning) to the training
split, after the splits are built and before the dense model is trained (docs/data_pruning.md).

The rule's random choices use their own generator (derived from the run seed) and its proxy
models their own seeds, and the global random state is restored afterwards, so the run's model
initialisation and batch order are those of the same run without data pruning. The selection is
deterministic given the config, so a resumed run selects the same examples again; the per-class
counts go to `data_pruning.csv` in the run directory."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..core import random_streams
from ..core.atomic_io import atomic_torch_save, atomic_write_text
from ..core.errors import unreadable_reason
from ..core.paths import user_path
from ..core.identity import run_id
from ..core.random_streams import derived_seed
from ..core.tables import DATA_PRUNING_TABLE
from ..data.pruning import DATA_PRUNING, DataPruningContext, apply_selection
from ..data.splits import DataSplits, warn_classes_lost
from ..train_hooks import TrainHook
from ..training import TrainProgress, train
from ..core.file_digest import files_record
from ..data.cache import source_files
from .dense_cache import data_files_problem, dense_inputs, differing_fields, refresh_data_record, waiting_lock

log = logging.getLogger(__name__)

TABLE = DATA_PRUNING_TABLE


def _disk_cache(cfg: DictConfig, device: torch.device, data_record: Optional[dict] = None) -> Callable:
    """Proxy scores (EL2N) and query errors (DRoP) stored beside the dense cache, keyed like a
    dense model (data, model, train options but train.epochs, seed, device type, versions; not the
    data-pruning node, which trains nothing of its own, nor `accel` but its deterministic switch) plus
    the rule's own key with its proxies' epochs: a sweep over `keep` or train.epochs trains its proxies
    once. Written atomically under a
    file lock (a run waiting for another's scores says so, and a stop signal ends the wait: `waiting_lock`),
    with the description its name hashes; an unreadable entry, one whose stored description
    differs (or that has none: an older prune-cli's file), one of another shape than the rule expects and one
    computed from data files that now hold other bytes (`data_files_problem`)
    are moved aside as `<file>.corrupt-<time>` with a warning naming why, then computed again. A rule
    whose proxies train nothing (GraNd with proxy_epochs=0) passes trains=False: its key leaves the
    train options out. `data_record`: the record of the data files taken when the run read them
    (`select_training_data`), stored with the scores; without it, the files as they are when stored."""
    base = dense_inputs(cfg, device.type)
    base.pop("data_pruning", None)
    base["train"].pop("epochs", None)  # proxies train for their own epochs (the rule's key), not train.epochs
    # proxies train and score in fp32, uncompiled and contiguous whatever `accel` says (docs/performance.md): a
    # bf16 or compiled run retrained proxies whose scores equalled the fp32 run's. Deterministic mode is
    # process-wide (Accel.applied), so the proxies train under it, and it stays in the key.
    if base.pop("accel", {}).get("deterministic"):
        base["accel"] = {"deterministic": True}
    folder = user_path(cfg.dense_cache.dir) / "data_pruning"

    # scores of untrained proxies (GraNd at initialisation) do not depend on the training options; the
    # evaluation batch size stays in their key (the batched per-example gradients' float rounding)
    untrained = {**base, "train": {"eval_batch_size": base["train"].get("eval_batch_size")}}

    def cached(
        name: str, key: dict, compute: Callable[[], torch.Tensor], trains: bool = True, shape: Optional[tuple[int, ...]] = None
    ) -> torch.Tensor:
        inputs = base if trains else untrained
        described = json.dumps({**inputs, "rule": name, **key}, sort_keys=True)
        digest = hashlib.sha256(described.encode()).hexdigest()[:16]
        path = folder / f"{name}-{digest}.pt"
        folder.mkdir(parents=True, exist_ok=True)
        with waiting_lock(Path(f"{path}.lock"), f"data-pruning scores {path.name}", "computing", "are being computed"):
            if path.exists():
                try:
                    stored = torch.load(path, map_location="cpu", weights_only=True)
                except Exception as err:  # noqa: BLE001 - any unreadable file: kept for inspection, recomputed
                    _set_aside(path, name, f"is unreadable ({unreadable_reason(err)})")
                else:
                    wrong = _mismatch(stored, described, shape)
                    refreshed = None
                    if wrong is None:
                        wrong, refreshed = data_files_problem(cfg.dataset, stored)
                    if wrong is None:
                        if refreshed is not None:  # the same bytes under another modification time
                            refresh_data_record(
                                lambda: atomic_torch_save({**stored, "data_files": refreshed}, path),
                                path,
                                f"data pruning ({name})",
                                log,
                            )
                        log.info("data pruning (%s): scores loaded from %s", name, path)
                        return stored["scores"]
                    _set_aside(path, name, wrong)
            value = compute()
            # the description the file name hashes, stored with the scores and checked on load: a file
            # copied or moved under another name is never taken for that name's scores; and the digests of
            # the data files, which the key names only by their folder
            files = data_record if data_record is not None else files_record(source_files(cfg.dataset))
            atomic_torch_save({"key": described, "scores": value, "data_files": files}, path)
            return value

    return cached


def _mismatch(stored, described: str, shape: Optional[tuple[int, ...]] = None) -> Optional[str]:
    """Why a loaded score-cache file is not the scores of `described` (the JSON its name hashes) of the
    `shape` the rule expects (None: any), or None."""
    if not (isinstance(stored, dict) and isinstance(stored.get("key"), str) and "scores" in stored):
        return "holds no key (an older prune-cli's file), so what it was computed for cannot be checked"
    if stored["key"] != described:
        try:
            differing = differing_fields(json.loads(stored["key"]), json.loads(described))
        except ValueError:
            differing = ["its stored key is not JSON"]
        return f"was computed for another configuration ({'; '.join(differing)})"
    if not isinstance(stored["scores"], torch.Tensor):
        return "holds no tensor of scores"
    if shape is not None and tuple(stored["scores"].shape) != tuple(shape):
        return f"holds scores of shape {list(stored['scores'].shape)}, {list(shape)} expected"
    return None


def _set_aside(path: Path, name: str, why: str) -> Path:
    """Move a score-cache file aside as `<file>.corrupt-<time>` with a warning naming it and why."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    log.warning("data pruning (%s): score cache file %s %s; moved it to %s and computing the scores again", name, path, why, aside)
    return aside


class _PresentationObserver(TrainHook):
    """Hands each training step's batch (training-split indices, the training forward's logits
    before the update, labels) to a data-pruning rule; changes nothing in the training."""

    def __init__(self, observe_batch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]):
        self.observe_batch = observe_batch

    def presented(self, indices: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.observe_batch(indices, logits.detach(), y)


def select_training_data(
    cfg: DictConfig,
    data: DataSplits,
    device: torch.device,
    build_model: Callable[[DictConfig, DataSplits], torch.nn.Module],
    run_dir: Path,
    record: Optional[Callable[[list[dict]], None]] = None,
    data_record: Optional[dict] = None,
) -> DataSplits:
    """The splits with the training split pruned by `cfg.data_pruning` (unchanged for `none`).

    The per-class rows (data_pruning.csv) go to `record` when given: a run passes its tables, which
    add the run context and provenance to every row and append them to the shared table (README "CSV
    columns"). Without it (a direct call) they are written to run_dir/data_pruning.csv with the run
    id and seed only. `data_record`: the record of the data files taken when `data` was read
    (prune_cli/data/cache.py `load_raw_recorded`), what the score files store."""
    node = cfg.data_pruning
    if node.name == "none":
        return data

    def train_proxy(
        index: int,
        epochs: int,
        observe: Optional[Callable[[torch.nn.Module, int], None]] = None,
        observe_batch: Optional[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]] = None,
    ) -> torch.nn.Module:
        """A model of the run's architecture, its own seed, trained `epochs` epochs on the full split;
        `observe(model, epoch)` after every epoch (the model's training mode restored after it),
        `observe_batch(indices, logits, y)` at every step with the training forward's logits."""
        torch.manual_seed(derived_seed(cfg.seed, f"data-pruning-proxy-{index}"))
        model = build_model(cfg, data).to(device)
        options = OmegaConf.merge(cfg.train, {"epochs": epochs, "warmup_epochs": min(cfg.train.warmup_epochs, epochs)})

        def on_epoch_end(row: dict, progress: TrainProgress) -> None:
            was_training = model.training
            observe(model, progress.epoch)
            model.train(was_training)

        train(
            model,
            data,
            options,
            torch.Generator().manual_seed(derived_seed(cfg.seed, f"data-pruning-batches-{index}")),
            f"data_pruning_proxy{index}",
            on_epoch_end=on_epoch_end if observe is not None else None,
            hook=_PresentationObserver(observe_batch) if observe_batch is not None else None,
            config_key="train",
        )
        return model

    # Training proxies draw from the global streams (their seeds, a model's dropout); restored after,
    # so that the run's model is initialised and trained alike whether the scores were computed or
    # read from the cache (CUDA's too on a GPU, docs/robustness.md "Random streams").
    streams = random_streams.capture(cuda=device.type == "cuda")
    try:
        ctx = DataPruningContext(
            data=data,
            generator=torch.Generator().manual_seed(derived_seed(cfg.seed, "data-pruning")),
            train_proxy=train_proxy,
            eval_batch_size=int(cfg.train.eval_batch_size),
        )
        if cfg.dense_cache.enabled:
            ctx = dataclasses.replace(ctx, cached=_disk_cache(cfg, device, data_record))
        selection = DATA_PRUNING.get(node.name)(ctx, node)
    finally:
        random_streams.restore(streams)
    rows = [{"rule": node.name, "keep": node.get("keep"), **row} for row in selection.per_class]
    if record is not None:
        record(rows)
    else:
        rows = [{"run_id": run_id(cfg), "seed": cfg.seed, **row} for row in rows]
        atomic_write_text(Path(run_dir) / TABLE, pd.DataFrame(rows).to_csv(index=False))
    log.info(
        "data pruning (%s): kept %d of %d training examples; per class %s%s",
        node.name,
        len(selection.indices),
        len(data.train_y),
        [r["kept"] for r in selection.per_class],
        "".join(f"; {k} {v:.4g}" for k, v in selection.summary.items()),
    )
    pruned = apply_selection(data, selection.indices)
    keep = node.get("keep")
    offset = node.get("offset")  # skips the highest scores first (EL2N, GraNd): it can remove a class as well as keep
    cause = f"data_pruning={node.name}" + (f" data_pruning.keep={keep}" if keep is not None else "")
    cause += f" data_pruning.offset={offset}" if offset else ""
    warn_classes_lost(data.train_y, pruned.train_y, data.num_classes, cause)  # the selection stands, said aloud
    return pruned
