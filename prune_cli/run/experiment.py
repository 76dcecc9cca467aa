"""The data flow of one run: data -> model -> schedule plan (typed steps: Dense, Prune, Restart,
Train, Gradual, TrainWithHook, Record, Branch, Rejoin; prune_cli/schedules/steps.py) -> CSVs, with a checkpoint after every step and
every epoch (run/checkpoint.py) so that a killed run started again continues where it stopped and
writes each row exactly once (rows: run/recorder.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from ..core import crashpoints, interrupts, plugins, random_streams
from ..core.accel import Accel
from ..core.atomic_io import atomic_write_text, remove_leftovers, sync_files
from ..core.config_base import ScheduleConfig, prunes_to_sparsity
from ..core.errors import AnotherRunsDirectory, PruneCliError
from ..core.identity import config_hash, run_id
from ..core.notices import say
from ..core.paths import (
    data_folders_record,
    input_file_digests,
    normalise_path_options,
    other_data_folder,
    other_data_message,
    other_input_file,
    other_input_message,
    user_path,
)
from ..core.random_streams import derived_seed
from ..core.tables import TABLES, recorded_data_folders, recorded_run_id
from ..data import build_splits
from ..data.cache import load_raw_recorded
from ..models import build_model
from ..models.masks import Masks, apply_masks, count, save_masks
from ..pruning import PruneContext, prune_to_density, select_prunable
from ..pruning.pruner import LayerCollapse
from .prevalidate import build_checked_model, check_class_sizes, check_data_sizes
from ..schedules import SCHEDULES
from ..schedules.steps import Branch, Dense, Gradual, Prune, Record, Rejoin, Restart, Step, Train, TrainWithHook
from ..training import TrainProgress, train
from . import checkpoint, recorder, results, shared_tables
from .checkpoint import STATE_FILE, cpu_state
from .data_selection import select_training_data
from .dense_cache import DenseCache

log = logging.getLogger(__name__)

RUN_LOCK = ".run.lock"  # one process per run directory
COMPLETE_FILE = "COMPLETE"  # written last; a run without it is unfinished


def _plugin_of(kind: str, name: str) -> str:
    """'module <dotted name>' of the plugin that declares `name` of `kind`, for messages."""
    return f"module {plugins.index().kinds.get((kind, name), '?')}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Experiment:
    """Holds the run's state; `run_plan` executes the schedule's steps with checkpoints."""

    def __init__(self, cfg: DictConfig, run_dir: Path, accel: Accel | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.plan: list[Step] = []  # the schedule's steps, set by run_plan
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        # docs/performance.md "GPU"; the caller that applied the settings passes the one it built
        self.accel = accel if accel is not None else Accel.from_config(cfg.get("accel"), self.device.type)
        random_streams.seed_all(cfg.seed)
        # Where the run's time goes (seconds), logged when it completes (docs/performance.md, "Sweeps").
        self.timing = {"data": 0.0, "training": 0.0, "recording": 0.0}
        start = time.perf_counter()
        # loaded once per process per dataset config (prune_cli/data/cache.py), with the record of its data files
        # taken at that read: what the dense cache and the score files store, not the files as they are later
        raw, self.data_record = load_raw_recorded(cfg.dataset)
        self.data = build_splits(raw, cfg.dataset, cfg.seed, self.device)
        # what the declared sizes left open
        check_data_sizes(cfg, (len(self.data.train_y), len(self.data.val_y), self.data.train_class_counts(), len(self.data.test_y)))
        self.timing["data"] = time.perf_counter() - start
        # data_pruning.csv's rows: given the run context when written (recorder.write_run_files)
        self.data_selection_rows: list[dict] = []
        self.data = select_training_data(
            cfg,
            self.data,
            self.device,
            build_fitting_model,
            self.run_dir,
            self.data_selection_rows.extend,
            data_record=self.data_record,
        )
        if cfg.data_pruning.name != "none":  # the examples the rule kept, before dense training
            check_class_sizes(cfg, self.data.train_class_counts(), exact=True)
        self.model = self.accel.prepare_model(build_fitting_model(cfg, self.data).to(self.device))
        self.init_state = cpu_state(self.model)
        self.prunable = list(select_prunable(self.model, cfg.method))
        # Batch order gets its own stream: a generator seeded like the global RNG would replay the draws
        # that initialised the weights. Pruning events draw from generators of their own (_prune_context).
        self.generator = torch.Generator().manual_seed(derived_seed(cfg.seed, "run-generator"))
        self.masks: Masks = {}
        self.history: list[dict] = []
        switched_off = {"per_class.csv": not cfg.metrics.per_class, "layers.csv": not cfg.metrics.layers}
        self.tables: dict[str, list[dict]] = {name: [] for name in TABLES if not switched_off.get(name)}
        self.dense_values: dict[tuple, float] = {}
        self.dense_per_class: dict[tuple, tuple[float, float]] = {}
        self.dense_state: dict[str, torch.Tensor] = {}
        self.metric_state: dict[str, dict] = {}  # each metric's memory across phases (MetricContext.state)
        self.rewind_states: dict[int, dict[str, torch.Tensor]] = {}
        # the random streams a `Branch` step set aside until its `Rejoin` (prune_cli/schedules/steps.py)
        self.branch_streams: Optional[dict] = None
        self.rounds_done = 0
        self.context = {
            "run_id": run_id(cfg),
            "config_hash": config_hash(cfg),
            "name": cfg.name,
            "seed": cfg.seed,
            "dataset": cfg.dataset.name,
            "model": cfg.model.name,
            "method": cfg.method.name,
            "score": cfg.method.score,
            "allocation": cfg.method.allocation,
            "structure": cfg.method.structure,
            "schedule": cfg.schedule.name,
            "target_sparsity": cfg.sparsity,
            "dense_cache": "off",
        }
        self.provenance = results.provenance(self.device)
        self.step_index = 0
        self.progress: Optional[TrainProgress] = None  # set while resuming a half-finished training step
        # the dense-cache entry whose model this run trains under its lock: each checkpoint is its partial training
        self.dense_partial: Optional[DenseCache] = None
        # "field: then -> now" where a process that ran this run before this one's resume ran other code
        # (results.earlier_code_differences): a dense model it partly trained is not stored in the cache
        self.other_code: list[str] = []
        log.info(
            "run %s: %d train / %d val / %d test examples, %s on %s",
            self.context["run_id"],
            len(self.data.train_y),
            len(self.data.val_y),
            len(self.data.test_y),
            cfg.model.name,
            self.device,
        )

    # -- the plan and its checkpoints ------------------------------------------------------

    def run_plan(self, plan: list[Step]) -> None:
        here = self.provenance  # this process's; a checkpoint replaces it with the starting process's
        self.plan = plan  # before the checkpoint: its step index counts the steps of this plan
        if (self.run_dir / STATE_FILE).exists() and checkpoint.load(self):
            if self.step_index < len(plan):
                at_step = plan[self.step_index].kind
                log.info("resuming run %s at step %d of %d (%s)", self.context["run_id"], self.step_index + 1, len(plan), at_step)
            else:
                at_step = "results"
                log.info("resuming run %s: all %d steps were done; writing its results", self.context["run_id"], len(plan))
            differences = results.write_resume_record(self.run_dir, self.provenance, here, at_step)
            self.other_code = [d for d in differences if not d.startswith("torch_threads:")]
            self.other_code += [d for d in results.earlier_code_differences(self.run_dir) if d not in self.other_code]
            if results.same_sources(self.run_dir):  # a commit or an edit outside the package and plugins
                # (docs, tests) trained nothing differently; the dense cache's key holds the source digest anyway
                self.other_code = [d for d in self.other_code if not d.startswith(("git_sha:", "git_dirty:"))]
            if differences:
                log.warning(
                    "run %s was started by another environment and is resumed with %s; its rows keep the starting "
                    "process's provenance, %s lists both",
                    self.context["run_id"],
                    ", ".join(differences),
                    self.run_dir / results.PROVENANCE_FILE,
                )
        else:
            folders = {**data_folders_record(self.cfg.dataset), "input_files": input_file_digests(self.cfg)}
            results.write_start_record(self.run_dir, self.provenance, folders)
        self._say_lr_rewind()
        while self.step_index < len(plan):
            interrupts.check()
            self._run_step(plan[self.step_index])
            self.step_index += 1
            self.progress = None
            checkpoint.save(self)

    def _say_lr_rewind(self) -> None:
        """Log the effective schedule.lr_rewind of a schedule that reads it: null in the saved config
        stands for the value the other options decide (the run id hashes that value)."""
        schema = OmegaConf.get_type(self.cfg.schedule)
        if isinstance(schema, type) and issubclass(schema, ScheduleConfig) and "lr_rewind" in schema.reads:
            value = schema.lr_rewinds(self.cfg.schedule)
            given = self.cfg.schedule.lr_rewind
            log.info(
                "schedule.lr_rewind=%s%s: %s",
                str(value).lower(),
                " (null: decided by restart_from, retrain and rewind_epoch)" if given is None else "",
                f"retraining resumes the LR schedule at epoch rewind_epoch={self.cfg.schedule.rewind_epoch}"
                if value
                else "retraining starts the LR schedule at epoch 0",
            )

    def _run_step(self, step: Step) -> None:
        """Dispatch on the step's type (the `_step_*` methods are looked up on the instance, so a
        test can wrap one)."""
        match step:
            case Dense():
                self._step_dense()
            case Prune(density=density):
                self._step_prune(density)
            case Restart(source=source):
                self._step_restart(source)
            case Train():
                self._step_train(step)
            case Branch():
                self._step_branch()
            case Rejoin():
                self._step_rejoin()
            case Gradual():
                self._step_gradual()
            case TrainWithHook():
                self._step_train_with_hook(step)
            case Record(phase=phase):
                self._step_record(phase)
            case _:
                raise TypeError(f"unknown schedule step {step!r}")

    def _train(
        self,
        phase: str,
        train_cfg: DictConfig,
        start_epoch: int = 0,
        on_step=None,
        keep_epochs: tuple[int, ...] = (),
        hook=None,
        config_key: str = "train",
    ) -> None:
        """Train with a checkpoint after every epoch; `keep_epochs` states are kept for rewinding.
        `config_key`: the config `train_cfg` comes from (train | finetune), for messages."""
        start, recorded_before = time.perf_counter(), self.timing["recording"]

        def end_of_epoch(row: dict, progress: TrainProgress) -> None:
            self.history.append(row)
            if progress.epoch in keep_epochs:
                self.rewind_states[progress.epoch] = cpu_state(self.model)
            checkpoint.save(self, progress)

        rows = train(
            self.model,
            self.data,
            train_cfg,
            self.generator,
            phase,
            self.masks or None,
            start_epoch=start_epoch,
            resume=self.progress,
            on_epoch_end=end_of_epoch,
            on_step=on_step,
            accel=self.accel,
            hook=hook,
            config_key=config_key,
        )
        self.progress = None
        # the gradual schedule records during training: that time is recording, not training
        self.timing["training"] += time.perf_counter() - start - (self.timing["recording"] - recorded_before)
        last = rows[-1]["epoch"] if rows else train_cfg.epochs  # a hook may stop early (docs/training_time.md)
        log.info("%s: trained to epoch %d in %.1f s", phase, last, time.perf_counter() - start)

    # -- steps a schedule composes ---------------------------------------------------------

    def _step_dense(self) -> None:
        """The trained dense model: from the dense cache when an identical one exists, else trained."""
        schedule = self.cfg.schedule
        keep = (schedule.rewind_epoch,) if ScheduleConfig.rewinds(schedule) and schedule.rewind_epoch > 0 else ()
        resumed = self.progress is not None  # this run was training the dense model when it stopped
        if not resumed:  # a fresh start of the step: no dense epochs can be recorded yet
            self.history = [r for r in self.history if r["phase"] != "dense"]
        cache = DenseCache.for_config(self.cfg, self.device.type) if self.cfg.dense_cache.enabled else None
        if cache is None:
            self._train("dense", self.cfg.train, keep_epochs=keep)
        else:
            with cache.lock():
                entry = cache.load(keep)
                if entry is not None:  # a model of other code under this key (an entry copied or kept by hand)
                    states = [entry.dense, entry.init, *entry.rewind.values()]
                    unfit = next((m for m in (checkpoint.misfit(self.model, s, "the entry") for s in states) if m), None)
                    if unfit is not None:
                        cache.quarantine(f"holds a model that does not fit this code's model ({unfit})")
                        entry = None
                if entry is not None:
                    self.init_state, self.rewind_states = entry.init, entry.rewind
                    self.model.load_state_dict(entry.dense)
                    self.history = [r for r in self.history if r["phase"] != "dense"] + entry.history
                    self.progress = None
                    # the model this run trained itself (killed right after storing it, then resumed; or started
                    # over after its checkpoint was set aside as unreadable, checkpoint.py `_set_aside`) is still a
                    # miss. The same run id alone is not enough: it leaves results_dir out, so the same config run
                    # into another results_dir sharing this dense_cache.dir, or again after its directory was
                    # deleted, loads a model it did not train (a hit). A checkpoint set aside as another plan's was
                    # written by other code, whose dense model has another key: the entry here is not its own
                    started_over = any(self.run_dir.glob(f"{STATE_FILE}.corrupt-*"))
                    own = entry.trained_by == self.context["run_id"] and (resumed or started_over)
                    self.context["dense_cache"] = "miss" if own else "hit"
                    log.info("dense model loaded from the cache (%s): no training needed", cache.path)
                    self._say_if_trained_with_other_threads(cache)
                else:
                    stale = cache.trained_by_other_code()
                    if stale:
                        log.info(
                            "dense cache: %d entr%s for this config %s trained by other code (prune-cli or torch "
                            "version, or the source of prune-cli or a plugin differs), e.g. %s; training again",
                            len(stale),
                            "y" if len(stale) == 1 else "ies",
                            "was" if len(stale) == 1 else "were",
                            stale[0],
                        )
                    self._resume_partial_dense(cache, keep)
                    # another code's epochs in this run's own progress: its checkpoints are not the entry's
                    self.dense_partial = None if self.other_code else cache
                    try:
                        self._train("dense", self.cfg.train, keep_epochs=keep)
                    finally:
                        self.dense_partial = None
                    self.context["dense_cache"] = "miss"
                    if resumed and self.other_code:  # a model partly trained by other code is not this key's
                        log.warning(
                            "dense model trained, not stored in the dense cache: part of its training ran under other "
                            "code (%s); a later run of this config trains its own",
                            "; ".join(self.other_code),
                        )
                    else:
                        cache.store(
                            self.init_state,
                            cpu_state(self.model),
                            self.rewind_states,
                            [r for r in self.history if r["phase"] == "dense"],
                            self.context["run_id"],
                            data_files=self.data_record,
                        )
                        crashpoints.reached("cache-stored")
                        log.info("dense model trained and stored in the cache (%s)", cache.path)
        self.dense_state = cpu_state(self.model)
        # Training the dense model consumed the generator, loading it from the cache did not: restart
        # the streams here so that everything after the dense phase is identical on hit and miss.
        # The global ones too (a model's dropout draws from them), from another seed than the run's
        # generator so that the two never replay each other's draws.
        self.generator.manual_seed(derived_seed(self.cfg.seed, "after-dense"))
        random_streams.seed_all(derived_seed(self.cfg.seed, "after-dense-global-streams"))

    def _resume_partial_dense(self, cache: DenseCache, keep: tuple[int, ...]) -> None:
        """Continue the entry's partial training (a run with this dense key stopped while training it under
        the lock) where it is further along than this run's own; one that cannot be used is named and ignored."""
        path = cache.partial()
        own = self.progress.epoch if self.progress is not None else 0
        if path is None:
            return
        try:
            adopted = checkpoint.adopt_dense_progress(self, path, keep, own)
        except ValueError as err:  # a stale or damaged partial training costs only its epochs
            log.warning("dense cache: ignoring the partial dense training %s: %s", path, err)
            return
        if adopted is None:
            return  # this run's own checkpoint is as far along (the partial training is its own, say)
        by, epoch = adopted
        log.info(
            "dense cache: resuming the dense training that run %s left in %s at epoch %d of %d (this run's own "
            "checkpoint had %d): training from epoch %d",
            by,
            path,
            epoch,
            self.cfg.train.epochs,
            own,
            epoch + 1,
        )

    def _say_if_trained_with_other_threads(self, cache: DenseCache) -> None:
        threads, here = cache.trained_with_threads(), torch.get_num_threads()
        if self.device.type == "cpu" and threads is not None and threads != here:
            log.warning(
                "dense cache: the model in %s was trained with %d torch threads, this process uses %d; on a CPU "
                "that changes how sums are split, so this run's numbers can differ in their last digits from "
                "one that trains its own dense model here (threads=%d gives the cached model's)",
                cache.path,
                threads,
                here,
                threads,
            )

    def _prune_context(self) -> PruneContext:
        """What the next pruning event needs. Its random draws (random scores, scoring batches, shuffled
        masks, candidate sampling) come from a generator of the event's own, derived from the seed and the
        event's number, not from the run's generator: the batch order after pruning is then the same for
        every method at one seed (paired comparisons, docs/robustness.md), and a resumed run re-derives it."""
        return PruneContext(
            method=self.cfg.method,
            generator=torch.Generator().manual_seed(derived_seed(self.cfg.seed, f"pruning-event-{self.rounds_done + 1}")),
            data=self.data,
            device=self.device,
            masks=self.masks or None,
            config=self.cfg,
        )

    def _step_prune(self, density: float, event: Optional[tuple[int, int]] = None) -> None:
        """Prune to `density` (fraction of the prunable weights kept). A target missed at an intermediate
        event of a multi-event schedule is named as such: the sparsity in the pruner's message is then the
        schedule's waypoint, not one the user gave; a LayerCollapse stays one (failed.json and the report
        name the type). `event`: (number, of how many) where the plan's
        `Prune` steps do not count the events (gradual prunes inside one training step)."""
        try:
            self.masks = prune_to_density(self.model, density, self._prune_context())
        except PruneCliError as err:
            number, events = event or (self.rounds_done + 1, sum(isinstance(s, Prune) for s in self.plan))
            if type(err) not in (PruneCliError, LayerCollapse) or events < 2 or abs(density - (1.0 - self.cfg.sparsity)) < 1e-12:
                raise
            raise type(err)(
                f"pruning event {number} of {events} of schedule={self.cfg.schedule.name} (an intermediate "
                f"target on the way to sparsity={self.cfg.sparsity:g}): {err}"
            ) from err
        self._adopt_masks(self.masks, density)

    def _adopt_masks(self, masks: Masks, density: float) -> None:
        """Make `masks` the run's masks: zero the pruned weights, log, save masks.pt."""
        self.masks = masks
        apply_masks(self.model, self.masks)
        self.rounds_done += 1
        # over the prunable weights only: a training-time method's masks may also zero other parameters
        # (a removed section's biases or BatchNorm, prune_cli/pruning/train_time/layer_pruning.py)
        kept, total = count({n: m for n, m in self.masks.items() if n in self.prunable})
        if not self._prunes_to_sparsity():
            # the schedule decides its own sparsity (layer_pruning, autoprune without stop_at_target)
            log.info("pruned to sparsity %.4f over %d prunable weights (the schedule sets it)", 1 - kept / total, total)
        else:
            log.info("pruned to sparsity %.4f (target %.4f) over %d prunable weights", 1 - kept / total, 1 - density, total)
        save_masks(self.masks, self.run_dir / "masks.pt")

    def _step_train_with_hook(self, step: TrainWithHook) -> None:
        """Train while a training-time method (prune_cli/pruning/train_time/) shapes the weights; its
        final masks become the run's masks (docs/training_time.md)."""
        from ..pruning.train_time import TRAIN_HOOKS, HookContext

        base = self.cfg.train if step.which == "train" else self.cfg.finetune
        density = 1.0 - self.cfg.sparsity
        ctx = HookContext(self.cfg, self._prune_context(), tuple(self.prunable), density, self.device, self.run_dir, self.model)
        hook = TRAIN_HOOKS.get(step.hook)(ctx)
        epochs = step.epochs
        if epochs < 0:
            needed = hook.steps_needed()
            if isinstance(needed, bool) or not isinstance(needed, int) or needed < 1:
                raise PruneCliError(
                    f"training-time method '{step.hook}' ({_plugin_of('train_hook', step.hook)}): the schedule's step "
                    f"TrainWithHook('{step.hook}', '{step.which}', '{step.phase}') has epochs=-1 (the phase lasts as long as the "
                    f"hook needs), so its hook {type(hook).__name__} must define steps_needed() returning a number of optimizer "
                    f"steps >= 1 (it returned {needed!r}); or give the step a number of epochs (docs/training_time.md)"
                )
            steps_per_epoch = -(-len(self.data.train_y) // base.batch_size)
            epochs = -(-needed // steps_per_epoch)
        overrides = {"epochs": epochs}
        if step.constant_lr:
            overrides.update(lr_schedule="constant", warmup_epochs=0)
        train_cfg = OmegaConf.merge(base, overrides)
        self._train(step.phase, train_cfg, hook=hook, config_key=step.which)
        masks = hook.final_masks()
        for table, rows in hook.tables().items():  # with the run context and provenance, like a metric's table
            recorder.add(self, table, step.phase, rows)
        if masks is not None:
            self._adopt_masks(masks, density)
        elif not self.masks and self.cfg.sparsity > 0 and self._prunes_to_sparsity() and not self._prunes_later():
            raise PruneCliError(
                f"training-time method '{step.hook}' ({_plugin_of('train_hook', step.hook)}): its hook "
                f"{type(hook).__name__}.final_masks() returned None after phase '{step.phase}', and no later step of "
                f"schedule '{self.cfg.schedule.name}' prunes, so the run would stay dense at target sparsity "
                f"{self.cfg.sparsity}; final_masks() must return the masks of the prunable weights (docs/training_time.md)"
            )

    def _prunes_to_sparsity(self) -> bool:
        """Whether the run's schedule prunes to `sparsity` (not: layer_pruning, autoprune without
        stop_at_target, which decide their own)."""
        schema = OmegaConf.get_type(self.cfg.schedule)
        return not (isinstance(schema, type) and issubclass(schema, ScheduleConfig)) or prunes_to_sparsity(self.cfg, schema)

    def _prunes_later(self) -> bool:
        """Whether a step after the current one can prune (a Prune, a Gradual, another hook's masks)."""
        return any(isinstance(s, (Prune, Gradual, TrainWithHook)) for s in self.plan[self.step_index + 1 :])

    def _step_restart(self, source: str) -> None:
        """Set the weights training restarts from; pruned weights stay zero. `trained` keeps the weights in
        place, except where the plan put the initial ones there to score them (`schedule.score_weights=init`,
        one round): then the trained dense weights come back (schedules audit of 2026-12-03: the run
        fine-tuned a masked initialisation)."""
        if source == "trained" and self.cfg.schedule.get("score_weights") == "init":
            self.model.load_state_dict(self.dense_state)
        elif source == "init" or (source == "rewind" and self.cfg.schedule.rewind_epoch == 0):
            self.model.load_state_dict(self.init_state)
        elif source == "rewind":
            self.model.load_state_dict(self.rewind_states[self.cfg.schedule.rewind_epoch])
        elif source == "reinit":
            torch.manual_seed(derived_seed(self.cfg.seed, f"reinit-{self.rounds_done}"))
            fresh = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes)
            self.model.load_state_dict(fresh.state_dict())
        if self.masks:
            apply_masks(self.model, self.masks)

    def _step_train(self, step: Train) -> None:
        train_cfg = self.cfg.train if step.which == "train" else self.cfg.finetune
        phase = step.phase or self._recorded_next()
        if step.which == "train":
            log.info(
                "%s: retraining with the train config, epochs %d..%d of its LR schedule", phase, step.start_epoch + 1, train_cfg.epochs
            )
        self._train(phase, train_cfg, step.start_epoch, config_key=step.which)

    def _step_branch(self) -> None:
        """Set the random streams aside: the branch's training and re-draw consume them, the steps after
        its `Rejoin` get them back as they were here."""
        self.branch_streams = {"generator": self.generator.get_state(), **random_streams.capture()}

    def _step_rejoin(self) -> None:
        streams = dict(self.branch_streams)
        self.generator.set_state(streams.pop("generator"))
        random_streams.restore(streams)
        self.branch_streams = None

    def _recorded_next(self) -> str:
        """The phase the plan records after the current step (round_k, finetuned): a training step's
        history rows carry it, so the curves join the metrics rows of the model they trained."""
        return next((step.phase for step in self.plan[self.step_index + 1 :] if isinstance(step, Record)), "finetuned")

    def _step_gradual(self) -> None:
        """Train with the sparsity raised along the polynomial curve at every pruning event."""
        schedule = self.cfg.schedule
        steps_per_epoch = -(-len(self.data.train_y) // self.cfg.train.batch_size)
        from ..schedules.gradual import gradual_sparsity

        targets = gradual_sparsity(schedule, self.cfg.sparsity, self.cfg.train.epochs * steps_per_epoch)

        order = {step: i + 1 for i, step in enumerate(sorted(targets))}

        def on_step(step: int) -> Optional[Masks]:
            if step not in targets:
                return None
            self._step_prune(1.0 - targets[step], (order[step], len(targets)))  # Zhu & Gupta's curve is written in sparsity
            self.record(f"step_{step}")
            return self.masks

        self._train("gradual", self.cfg.train, on_step=on_step)

    def _step_record(self, phase: str) -> None:
        self.record(phase)

    # -- rows (prune_cli/run/recorder.py) ---------------------------------------------------

    def record(self, phase: str) -> None:
        """Evaluate the current model and add its rows; the dense phase sets the baseline values."""
        start = time.perf_counter()
        recorder.record(self, phase)
        self.timing["recording"] += time.perf_counter() - start

    def dense_model(self) -> torch.nn.Module:
        """A copy of the model with the trained dense weights (the reference for comparisons), in the
        run's memory layout: latency and speedup time it against the run's model."""
        model = build_model(self.cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)
        model.load_state_dict(self.dense_state)
        return self.accel.prepare_model(model).eval()


def build_fitting_model(cfg: DictConfig, data) -> torch.nn.Module:
    """The model for the loaded data (the pre-run pass already checked it against the dataset's
    declared shape; this repeats the check with the real inputs)."""
    x = data.train_x[:1] if len(data.train_y) else data.test_x[:1]
    return build_checked_model(cfg, tuple(data.input_shape), data.num_classes, x.to("cpu"))


def run(cfg: DictConfig, run_dir: Path, on_found_complete: Optional[Callable[[], None]] = None) -> Path:
    """Run one experiment into run_dir: resume it if it was interrupted, skip it if it is complete.

    One process at a time per run directory (a file lock): a second process with the same run id
    waits, then finds the run complete or, if the first died, takes it over from its checkpoint.
    `on_found_complete` is called when the run is found complete (the CLI puts back its record)."""
    run_dir = Path(run_dir)
    normalise_path_options(cfg.dataset)  # config.yaml and the results' rows hold the spelling the run id hashes
    run_dir.mkdir(parents=True, exist_ok=True)
    rid = run_id(cfg)
    lock = FileLock(str(run_dir / RUN_LOCK))
    announce = lambda: say(  # noqa: E731
        log,
        f"prune-run: run {rid} is being run by another process; waiting for it",
        log_line=f"run {rid} is being run by another process (lock {lock.lock_file}); waiting for it to finish",
    )
    # a safe point every half second: a Ctrl-C stops the wait, not the other process's run
    if interrupts.acquire_waiting(lock, announce, interrupts.StoppedWaiting):
        log.warning(
            "run %s: the other process has %s",
            rid,
            "finished it" if (run_dir / COMPLETE_FILE).exists() else "stopped; taking the run over from its checkpoint",
        )
    try:
        return _run_locked(cfg, run_dir, rid, on_found_complete)
    finally:
        lock.release()


def _say_if_made_by_other_code(run_dir: Path, rid: str) -> None:
    """A finished run is kept whatever code made it (its rows are in the shared tables); when that code
    differs from this process's, one line says so and how to recompute it."""
    changed, note = results.finished_run_code(run_dir)
    if note is not None:  # provenance.json missing or torn: said, so that silence never reads as "same code"
        say(log, f"prune-run: run {rid}: {note}")
    if changed:
        say(
            log,
            f"prune-run: run {rid} is complete and kept, but it was made by other code ({'; '.join(changed)}); "
            "changes since then are not in its numbers. To recompute it, run the command with a fresh results_dir.",
        )


def _check_the_directory_is_this_run_s(run_dir: Path, rid: str) -> None:
    """A directory whose COMPLETE (or shared-tables marker) names another run id is that run's: this run
    would have been reported 'already complete' and never trained. One whose checkpoint is another run's
    holds that unfinished run: checked here, before this run writes anything (its config.yaml replaced the
    other run's before the checkpoint's own check refused it). The sweep's check refuses such a sweep before
    any job (run_directories.check_sweep_directories), and a single run's check a hydra.run.dir holding
    another run; this is the last line, for a directory that changed since."""
    other = recorded_run_id(run_dir)
    if other is not None and other != rid:
        raise AnotherRunsDirectory(
            f"run directory {run_dir} holds the finished run {other}, not this run ({rid}); nothing was run. Each run "
            "needs a directory of its own: leave hydra.sweep.subdir, hydra.sweep.dir and hydra.run.dir out (each run "
            "gets results_dir/runs/<run id>) or give a pattern that tells the runs apart"
        )
    unfinished = checkpoint.saved_run_id(run_dir) if other is None else None
    if unfinished is not None and unfinished != rid:
        raise checkpoint.another_run_s_checkpoint(run_dir, unfinished, rid)


def _check_the_data_is_this_run_s(cfg: DictConfig, run_dir: Path, rid: str) -> None:
    """A run directory whose run read its data from another folder (a relative dataset.root from another
    working directory) holds another experiment under this run id: checked here, under the run's lock, where
    the pre-run check (prune_cli/run_directories.py `check_data_location`) could not see it (the run was still
    starting in another process while this one waited for it)."""
    recorded = recorded_data_folders(run_dir)
    other = other_data_folder(cfg.dataset, recorded)
    if other is not None:
        raise AnotherRunsDirectory(other_data_message(cfg.dataset, rid, run_dir, *other))
    changed = other_input_file(cfg, recorded)  # a file read by name, changed under it
    if changed is not None:
        raise AnotherRunsDirectory(other_input_message(cfg, changed, rid, run_dir))


def _run_locked(cfg: DictConfig, run_dir: Path, rid: str, on_found_complete: Optional[Callable[[], None]] = None) -> Path:
    results_dir = user_path(cfg.results_dir)
    _check_the_directory_is_this_run_s(run_dir, rid)
    _check_the_data_is_this_run_s(cfg, run_dir, rid)
    if (run_dir / COMPLETE_FILE).exists():
        if on_found_complete is not None:
            on_found_complete()
        if cfg.shared_results and not shared_tables.appended_here(run_dir / shared_tables.MARKER_FILE, results_dir):
            # shared_results=false before, or a run directory copied here from another results_dir
            outcome = shared_tables.append_run(results_dir, run_dir, rid)
            if outcome.startswith("already in the shared tables"):  # a moved or renamed results_dir
                log.info("run %s is already complete; its rows are %s", rid, outcome.removeprefix("already "))
            else:
                log.info(
                    "run %s was already complete; its rows were not in the shared tables of %s yet: %s", rid, results_dir, outcome
                )
        else:
            log.info("run %s is already complete; its results are in %s (nothing to do)", rid, run_dir)
        _say_if_made_by_other_code(run_dir, rid)
        return run_dir
    if cfg.shared_results:
        shared_tables.check_before_run(results_dir)  # symlinks and headers: before any work, not after training
    for leftover in remove_leftovers(run_dir):  # an earlier attempt killed mid-write (this process holds the run's lock)
        log.info("removed %s, left by an attempt killed while writing", leftover.name)
    start = time.perf_counter()
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    accel = Accel.from_config(cfg.get("accel"), resolve_device(cfg.device).type)
    with accel.applied():  # deterministic mode from before any tensor reaches the device, restored after
        if accel != Accel(device_type=accel.device_type):
            log.info("accel: %s", accel.describe())
        exp = Experiment(cfg, run_dir, accel)
        exp.run_plan(SCHEDULES.get(cfg.schedule.name)(cfg))
        recorder.finish_run_files(exp)
    # every file the shared tables' marker (SHARED_APPENDED: a rebuild takes a run with it as final) and
    # COMPLETE vouch for is on disk before either (core/atomic_io.py)
    sync_files(run_dir)
    if cfg.shared_results:
        outcome = shared_tables.append_run(results_dir, run_dir, rid)
        log.info("shared tables in %s: %s", results_dir, outcome)
    crashpoints.reached("before-complete")
    atomic_write_text(run_dir / COMPLETE_FILE, rid + "\n", durable=True)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    if cfg.shared_results:
        log.info("results: %s (this run) and %s (shared CSVs)", run_dir, results_dir)
    else:
        log.info("results: %s (this run; shared_results=false: no shared CSVs)", run_dir)
    total = time.perf_counter() - start
    t = exp.timing
    log.info(
        "run %s timing: %.3f s in all: data %.3f s, training %.3f s, recording (evaluation, metrics, per-run files) %.3f s, "
        "other %.3f s (this attempt; scripts/bench_sweep.py reads this line)",
        rid,
        total,
        t["data"],
        t["training"],
        t["recording"],
        total - t["data"] - t["training"] - t["recording"],
    )
    return run_dir
