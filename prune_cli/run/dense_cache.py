"""The dense cache: one trained dense model per (data, model, training config, seed, device type,
prune-cli and torch versions, and the code itself: the package's source and that of every outside
plugin module loaded, each with its whole top-level package).

Every run that needs the same dense model loads it instead of training again, so a sweep over
methods and sparsities trains one dense model per seed. Entries are created under a file lock,
so parallel runs wait for the first instead of training twice (`waiting_lock`: one line says so, and a
stop signal ends the wait); every file is written atomically
and `COMPLETE` (naming the run that trained it) is written last. An entry that cannot be read, or whose
own `config.json` describes another model than its key (an entry copied under another key), or whose
data files now hold other bytes (`data_files`: files replaced in place; the key holds their folder, not their
contents) is moved aside with a warning naming it and why, and the model is trained again.

While a run trains an entry's dense model under its lock, each of its checkpoints is also linked into the
entry as `partial.pt` (`keep_partial`), so whichever run next takes the lock resumes that training
instead of starting at epoch 1 (a sweep stopped while one run trained and another waited); storing the
entry removes it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

import prune_cli

from ..core import accel, interrupts, plugins
from ..core.errors import unreadable_reason
from ..core.atomic_io import atomic_torch_save, atomic_write_text, remove_leftovers, sync_files
from ..core.file_digest import changed_file, files_record, tree_digest
from ..core.notices import say
from ..data.cache import source_files
from ..core.paths import data_folders_record, other_data_folder, user_path, with_located_data, with_normal_paths

log = logging.getLogger(__name__)

# The config keys a trained dense model depends on; everything else (method, sparsity,
# schedule, metrics, fine-tuning, results_dir) can change without retraining.
DENSE_KEYS = ("dataset", "model", "train", "seed")
COMPLETE = "COMPLETE"
TRAINED_WITH = "trained_with.json"  # how the entry was trained beyond its key (torch threads)
PARTIAL = "partial.pt"  # the checkpoint of the run last training the entry's dense model under its lock


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """The installed prune_cli package's source, read once per process (about 150 files, about 10 ms).
    The version string alone does not change when the code is edited (an editable install, a
    `git pull` between releases), and a dense model trained by other code must not be reused."""
    return tree_digest(Path(prune_cli.__file__).resolve().parent, ".py")


def outside_digest() -> dict[str, str]:
    """Each outside plugin module's (`plugins=[...]`, entry points) source digest, its whole top-level
    package's (prune_cli/core/plugins.py `source_digest`): in the dense key and in provenance.json."""
    return {m: plugins.source_digest(m) for m in sorted(plugins.outside_modules())}


def dense_inputs(cfg: DictConfig, device_type: str) -> dict:
    """What a trained dense model depends on (hashed into its key, saved beside it): the resolved
    config values, the device type, and the code that trains it (prune-cli and torch versions, the
    package's source digest and the digest of every outside plugin module loaded)."""
    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) if k != "seed" else cfg.seed for k in DENSE_KEYS}
    plain["dataset"] = with_normal_paths(cfg.dataset, plain["dataset"])  # one key for the same folder written differently
    # a relative dataset.root names another folder from another working directory: that folder, not the spelling
    plain["dataset"] = with_located_data(cfg.dataset, plain["dataset"])
    pruning = cfg.get("data_pruning")
    if pruning is not None and pruning.get("name", "none") != "none":  # the dense model trains on the kept subset
        plain["data_pruning"] = OmegaConf.to_container(pruning, resolve=True)
    if not accel.is_default(cfg.get("accel")):  # bf16, compiled or channels-last training gives other weights
        plain["accel"] = OmegaConf.to_container(cfg.accel, resolve=True)
    plain.update(device_type=device_type, prune_cli_version=prune_cli.__version__, torch_version=torch.__version__)
    # every outside module loaded, not only those declaring the chosen dataset or model: a module can
    # change training as it is imported (a metric plugin wrapping a torch function reused a dense model
    # trained without it), so adding any plugin trains a new entry once
    plain.update(prune_cli_source=package_digest(), plugin_sources=outside_digest())
    return plain


def dense_key(cfg: DictConfig, device_type: str) -> str:
    return _key_of(dense_inputs(cfg, device_type))


def _key_of(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def differing_fields(then, now, prefix: str = "") -> list[str]:
    """ "a.b: then -> now" for each leaf in which two JSON descriptions differ (values as JSON, long
    ones cut to 40 characters; 'absent' for a key one side lacks)."""
    if isinstance(then, dict) and isinstance(now, dict):
        return [
            d
            for k in sorted(set(then) | set(now), key=str)
            for d in differing_fields(then.get(k, _ABSENT), now.get(k, _ABSENT), f"{prefix}{k}.")
        ]
    if then == now:
        return []

    def shown(value) -> str:
        text = "absent" if value is _ABSENT else json.dumps(value, sort_keys=True)
        return text if len(text) <= 40 else text[:37] + "..."

    return [f"{prefix.rstrip('.') or 'the description'}: {shown(then)} -> {shown(now)}"]


_ABSENT = object()


class StoppedWaitingForCache(interrupts.StoppedWaiting):
    """A stop signal while this run waited for a cache entry's lock (`waiting_lock`) that another run holds
    while it computes the entry: this run stops as asked, holding nothing; the other goes on, or
    (`other_stopped`: the signal reached both, and the other freed the lock) has stopped too. `what` names
    the entry ("dense model <key>"), `doing` what the other run does with it ("training")."""

    def __init__(self, signum: int, what: str, doing: str, other_stopped: bool = False):
        super().__init__(signum, other_stopped)
        self.what, self.doing = what, doing


def data_files_problem(node, stored: dict) -> tuple[Optional[str], Optional[dict]]:
    """(why a cache file's data are not those `node` reads now, or None; the refreshed record to store back,
    or None when it is unchanged): `stored` holds "data_files", the `files_record` of the files it was
    computed from. Without that record (a file written before 2026-12-04) the data cannot be checked, which
    is refused when the dataset reads files: the key holds the package's source digest, so only an entry
    copied in by hand is both without a record and under a key of this code."""
    files = source_files(node)
    recorded = stored.get("data_files") if isinstance(stored, dict) else None
    if not isinstance(recorded, dict):
        if not files:
            return None, None
        return "records no digest of its data files, so whether they changed cannot be checked", None
    what, refreshed = changed_file(recorded, files)
    if what is not None:
        return f"was computed from other data files ({what} now)", None
    return None, (refreshed if refreshed != recorded else None)


def refresh_data_record(write: Callable[[], None], path: Path, subject: str, logger: logging.Logger) -> None:
    """Write back a record refreshed by `data_files_problem` (the same bytes under another modification time),
    best effort: it only spares reading the files next time, so a read-only entry or a full disk still serves
    the hit, with a warning (the dense cache's trained_with.json and the score files)."""
    try:
        write()
    except OSError as err:
        logger.warning(
            "%s: could not refresh %s with the data files' new modification times (%s: %s); using it, its data files "
            "are read again next time",
            subject,
            path,
            type(err).__name__,
            err,
        )


@contextmanager
def waiting_lock(lock_path: Path, what: str, doing: str, being: str):
    """Hold the file lock `lock_path` of a cache entry. Taken by another run (computing the entry), one line
    says so (`<what> <being> by another run (<lock>); waiting for it`) and the wait is the run lock's
    (prune_cli/run/experiment.py `run`): a safe point every half second, where a stop signal ends the wait
    with StoppedWaitingForCache; a lock that comes free after the signal (the group's Ctrl-C stopped the
    other run too) is freed again, so this run never starts the work it was told to stop."""
    lock = FileLock(str(lock_path))
    interrupts.acquire_waiting(
        lock,
        lambda: say(log, f"prune-run: {what} {being} by another run ({lock.lock_file}); waiting for it"),
        lambda signum, other_stopped: StoppedWaitingForCache(signum, what, doing, other_stopped),
    )
    try:
        yield
    finally:
        lock.release()


class Entry(NamedTuple):
    init: dict
    dense: dict
    rewind: dict
    history: list
    trained_by: str  # run id of the run that trained and stored it


def _misshapen(init, dense, rewind: dict, history, described) -> Optional[str]:
    """Why an entry's files, each readable, do not hold what `store` writes (None: they do): valid JSON or a torch
    file of another type (`history.json` holding `{}`) crashed every run of the key with a TypeError, the entry
    left in place."""
    states = {"init.pt": init, "dense.pt": dense, **{f"epoch_{e}.pt": s for e, s in rewind.items()}}
    for name, state in states.items():
        if not isinstance(state, dict):
            return f"{name} holds a {type(state).__name__}, not a state dict"
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        kind = type(history).__name__ if not isinstance(history, list) else "list with a non-object row"
        return f"history.json holds a {kind}, not a list of epoch rows"
    if not isinstance(described, dict):
        return f"config.json holds a {type(described).__name__}, not the description of a model"
    return None


class DenseCache:
    def __init__(self, root: Path, key: str, description: dict, dataset: Optional[DictConfig] = None):
        self.path = Path(root) / key
        self.description = description
        # the run's dataset node: where its data is read from (symbolic links and `~` resolved, with device and
        # inode) is recorded beside the model and compared on load. An absolute or `~` dataset.root keeps its
        # spelling in the key (existing keys stay valid), so a symbolic link or $HOME that now leads to another
        # folder gave the same key
        self.dataset = dataset
        self.data = data_folders_record(dataset) if dataset is not None else {}

    @classmethod
    def for_config(cls, cfg: DictConfig, device_type: str) -> "DenseCache":
        inputs = dense_inputs(cfg, device_type)
        return cls(user_path(cfg.dense_cache.dir), _key_of(inputs), inputs, cfg.dataset)

    def trained_on_other_data(self) -> Optional[str]:
        """Where the entry's model read its data, when that is not the folder this run reads (neither the same
        path nor the same folder moved): dense-cache audit of 2026-12-03, a symbolic link switched to another
        folder reused the model trained on the first. None: the same folder, or not recorded (an entry stored
        before 2026-12-03, or a dataset without data folders)."""
        try:
            then = json.loads((self.path / TRAINED_WITH).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(then, dict) or self.dataset is None:
            return None
        other = other_data_folder(self.dataset, then)
        return None if other is None else f"dataset.{other[0]}={other[1]}"

    def trained_by_other_code(self) -> list[Path]:
        """Complete entries for this very config whose code differs (another prune-cli version, source
        or plugin source): why a run that "should" hit trains again, said in its log."""
        code = ("prune_cli_version", "torch_version", "prune_cli_source", "plugin_sources")
        same_config = {k: v for k, v in self.description.items() if k not in code}
        found = []
        for described in sorted(self.path.parent.glob("*/config.json")):
            if ".corrupt-" in described.parent.name:
                continue  # moved aside as unreadable (`quarantine`), not trained by other code
            if described.parent == self.path or not (described.parent / COMPLETE).exists():
                continue
            try:
                other = json.loads(described.read_text())
            except (OSError, ValueError):
                continue
            if {k: v for k, v in other.items() if k not in code} == same_config:
                found.append(described.parent)
        return found

    @contextmanager
    def lock(self):
        """The entry's lock (`waiting_lock`): a stop signal while another run trains its model stops the wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with waiting_lock(Path(str(self.path) + ".lock"), f"dense model {self.path.name}", "training", "is being trained"):
            yield

    def load(self, rewind_epochs: tuple[int, ...]) -> Optional[Entry]:
        """The entry, or None when there is none, it is unfinished, or it lacks a rewind epoch;
        an entry marked complete that cannot be read is moved aside (with a warning)."""
        marker = self.path / COMPLETE
        if not marker.exists():
            return None
        files = [self.path / "init.pt", self.path / "dense.pt"] + [self.path / f"epoch_{e}.pt" for e in rewind_epochs]
        if any(not f.exists() for f in files[2:]) and all(f.exists() for f in files[:2]):
            return None  # complete, but stored by a run that kept other rewind epochs
        try:
            load = lambda f: torch.load(f, map_location="cpu", weights_only=True)  # noqa: E731
            init, dense = load(files[0]), load(files[1])
            rewind = {e: load(self.path / f"epoch_{e}.pt") for e in rewind_epochs}
            history = json.loads((self.path / "history.json").read_text())
            trained_by = marker.read_text().strip()
            described = json.loads((self.path / "config.json").read_text())
        except Exception as err:  # noqa: BLE001 - any unreadable file makes the whole entry unusable
            self.quarantine(f"is unreadable ({unreadable_reason(err)})")
            return None
        wrong = _misshapen(init, dense, rewind, history, described)
        if wrong is not None:
            self.quarantine(f"is unreadable ({wrong})")
            return None
        # an entry copied or moved under another key: its own description says what model it holds
        differing = differing_fields(described, json.loads(json.dumps(self.description)))
        if differing:
            self.quarantine(f"holds another model than its key describes ({'; '.join(differing)})")
            return None
        other = self.trained_on_other_data()
        if other is not None:
            log.warning(
                "dense cache entry %s was trained on the data in %s, not in the folder this run reads (%s): "
                "training the dense model again (it replaces the entry)",
                self.path,
                other,
                ", ".join(f"{k}={v}" for k, v in self.data["data_location"].items()),
            )
            return None
        if self.dataset is not None:
            try:
                then = json.loads((self.path / TRAINED_WITH).read_text())
            except (OSError, ValueError):
                then = None
            wrong, refreshed = data_files_problem(self.dataset, then)
            if wrong is not None:
                self.quarantine(wrong.replace("was computed from", "was trained on"))
                return None
            if refreshed is not None:  # the same bytes under another modification time (a copy without `cp -p`)
                refresh_data_record(
                    lambda: atomic_write_text(self.path / TRAINED_WITH, json.dumps({**then, "data_files": refreshed})),
                    self.path / TRAINED_WITH,
                    f"dense cache entry {self.path}",
                    log,
                )
        return Entry(init, dense, rewind, history, trained_by)

    def quarantine(self, why: str) -> Path:
        """Move the entry aside as `<key>.corrupt-<time>` with a warning naming it and `why` ("is unreadable
        (...)", "holds another model ..."); the caller trains the dense model again."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        os.replace(self.path, aside)
        log.warning("dense cache entry %s %s; moved it to %s and training the dense model again", self.path, why, aside)
        return aside

    def store(
        self,
        init: dict,
        dense: dict,
        rewind: dict[int, dict],
        history: list[dict],
        run_id: str,
        data_files: Optional[dict] = None,
    ) -> None:
        """Write the entry. `data_files`: the record of the data files taken when the run read them
        (prune_cli/data/cache.py `load_raw_recorded`); taken from the files as they are now only when not given
        (a direct call), which describes other bytes than the model's where they were replaced since the read."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / COMPLETE).unlink(missing_ok=True)
        # the temporary files (`.dense.pt.<pid>.tmp`, a whole model each) of an earlier store killed between a write and
        # its rename: nothing else removed them. Only a dead process's (a run that reads the entry outside its lock may
        # be mid-write of its own, `refresh_data_record`)
        remove_leftovers(self.path, dead_only=True)
        for epoch, state in rewind.items():
            atomic_torch_save(state, self.path / f"epoch_{epoch}.pt")
        atomic_torch_save(init, self.path / "init.pt")
        atomic_torch_save(dense, self.path / "dense.pt")
        atomic_write_text(self.path / "config.json", json.dumps(self.description, indent=2))
        atomic_write_text(self.path / "history.json", json.dumps(history))
        if data_files is not None:
            files = data_files
        else:
            files = files_record(source_files(self.dataset)) if self.dataset is not None else {}
        atomic_write_text(
            self.path / TRAINED_WITH, json.dumps({"torch_threads": torch.get_num_threads(), **self.data, "data_files": files})
        )
        # the training partial.pt held is finished: removed before syncing (not forcing a whole checkpoint to
        # disk only to delete it), with any `.partial.pt.<pid>.tmp` a kill between link and rename left
        for leftover in [self.path / PARTIAL, *self.path.glob(f".{PARTIAL}.*.tmp")]:
            leftover.unlink(missing_ok=True)
        sync_files(self.path)  # the entry's files on disk before the marker that vouches for them
        atomic_write_text(self.path / COMPLETE, run_id + "\n", durable=True)  # written last: the entry is complete

    def keep_partial(self, state_file: Path) -> None:
        """Make `state_file`, the checkpoint a run holding the lock just wrote while training this entry's
        dense model, the entry's partial training: a hard link (no copy; the run's next checkpoint is a
        new file, so the link keeps this one) where both folders share a file system, else a copy;
        renamed into place, so a kill leaves the previous one or this one whole. A copy that fails (a full
        disk) removes its half: left, it held the disk's last free space, and the entry's own `init.pt`
        then did not fit, stopping a run that would have fit (docs/robustness.md, "a full disk")."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{PARTIAL}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(state_file, tmp)
        except OSError:  # another file system, or one without hard links
            try:
                shutil.copyfile(state_file, tmp)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        os.replace(tmp, self.path / PARTIAL)

    def partial(self) -> Optional[Path]:
        """The entry's partial training (a run's checkpoint, `keep_partial`), or None."""
        path = self.path / PARTIAL
        return path if path.is_file() else None

    def trained_with_threads(self) -> Optional[int]:
        """The torch intra-op thread count the entry's model was trained with (None: not recorded, an
        entry stored before it was). Not part of the key (it changes speed), but on a CPU it changes
        how sums are split, so the last digits of a hit's numbers can differ from a miss's."""
        try:
            return int(json.loads((self.path / TRAINED_WITH).read_text())["torch_threads"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
