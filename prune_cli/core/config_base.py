"""The config base classes every plugin schema extends, the root `Config`, `@config_schema(group,
name)` with which a feature module declares its options, and `run_checks`, which runs the checks a
schema declares.

A schema checks what Hydra's types cannot in a static method `check(cfg, key)` (`cfg` the whole
config, `key` the node's dotted path). The pre-run pass (prune_cli/run/prevalidate.py) picks the
checks by the node's schema type (`OmegaConf.get_type`) and runs every `check` along its MRO, base
class first: a new data-driven score that extends `DataScoreConfig` gets the shared data-score
checks without being listed anywhere. The same way, a static method `unused(cfg, key) -> {dotted
key: why}` says which of the schema's options do nothing in the composed config (`collect_unused`);
an override of one is rejected (prune_cli/run/unused_options.py).

Hydra/OmegaConf reject unknown keys and wrong types and name the key; the schemas here give every
option its type and default. A feature's own schema lives next to its code (data/synthetic.py,
models/mlp.py, pruning/scores/gp.py, metrics/similarity.py, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from typing import Any, ClassVar, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .accel import AccelConfig
from .checks import check, choice, finite, fraction, positive_int
from .errors import ConfigError, PruneCliError

# ----------------------------------------------------------------------------- datasets


@dataclass
class DatasetConfig:
    name: str = MISSING
    val_fraction: float = 0.1  # seeded hold-out taken from the training split
    imbalance: str = "none"  # none | longtail | counts
    longtail_ratio: float = 1.0  # n_max / n_min for imbalance=longtail (e.g. 100)
    class_counts: Optional[list[int]] = None  # exact per-class training counts for imbalance=counts
    max_train_samples: Optional[int] = None  # subset of the training split (seeded), None = all
    augment: bool = False  # random crop + horizontal flip on the tensors (image datasets)
    # options holding a folder's path: the run id, the dense-cache key and the run's config.yaml hold one
    # spelling of each (prune_cli/core/paths.py `normal_path`), so the same folder written differently is one run
    path_options: ClassVar[tuple[str, ...]] = ()
    # those of them whose folder's files are the data itself (not a cache of data the options determine): a
    # relative spelling names another folder from another working directory, so the dense-cache key and the
    # data memo hold the folder it names, and a run records it (prune_cli/core/paths.py `data_locations`)
    data_options: ClassVar[tuple[str, ...]] = ()
    # whether `declared_train_examples`' total is exact where its per-class counts are unknown (None): MNIST-1D's
    # split of a shuffled dataset has a known size but unknown class counts
    declared_total_exact: ClassVar[bool] = False

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        d = OmegaConf.select(cfg, key)
        fraction(cfg, f"{key}.val_fraction", 0.0, 1.0)
        choice(cfg, f"{key}.imbalance", {"none", "longtail", "counts"})
        if d.imbalance == "longtail":
            check(
                finite(d.longtail_ratio) and d.longtail_ratio > 1,
                f"{key}.longtail_ratio",
                d.longtail_ratio,
                "a number > 1 (largest class size / smallest class size; every class as it is: dataset.imbalance=none)",
            )
        if d.imbalance == "counts":
            counts = None if d.class_counts is None else list(d.class_counts)
            check(
                bool(counts) and all(c >= 1 for c in counts),
                f"{key}.class_counts",
                counts,
                "a list with one positive integer per class when dataset.imbalance=counts",
            )
            declared = declared_input(cfg)  # the dataset's classes, known before loading it
            check(
                declared is None or len(counts) == declared[1],
                f"{key}.class_counts",
                counts,
                f"a list of exactly {declared[1] if declared else '?'} counts (one per class)",
            )
        elif d.class_counts is not None:
            check(False, f"{key}.class_counts", list(d.class_counts), "null unless dataset.imbalance=counts")
        if d.max_train_samples is not None:
            positive_int(cfg, f"{key}.max_train_samples")

    @staticmethod
    def check_writes(cfg: DictConfig, key: str) -> None:
        """The folders the dataset writes (a cache, a download), tried: an empty directory made and removed
        there (prune_cli/core/writable.py `_can_create_in`), because `check` asks only `os.access`, which
        says yes to root everywhere, /proc included. Called where a run or sweep is about to start, after
        `check` (prune_cli/run_directories.py `check_written_directories`), as results_dir and
        dense_cache.dir are tried. Nothing here: a dataset that only reads writes nothing."""

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        d = OmegaConf.select(cfg, key)
        found = {}
        if d.imbalance != "longtail":
            found[f"{key}.longtail_ratio"] = f"it applies only with {key}.imbalance=longtail; here {key}.imbalance={d.imbalance}"
        spec = declared_input(cfg)
        if spec is not None and len(spec[0]) != 3:  # data/splits.py augments image datasets only
            found[f"{key}.augment"] = (
                f"crops and flips apply to image datasets (C, H, W); {key}={d.name} has inputs of shape {tuple(spec[0])}"
            )
        declared = OmegaConf.get_type(d).declared_train_examples(d) if d.imbalance == "none" else None
        if d.max_train_samples is not None and declared is not None and d.max_train_samples >= declared[0]:
            # unknown per-class counts: the total is an upper bound, unless the dataset says it is exact (MNIST-1D)
            counted = getattr(OmegaConf.get_type(d), "declared_total_counted", lambda _: False)(d)  # its files' own count
            exact = declared[1] is not None or OmegaConf.get_type(d).declared_total_exact or counted
            exactly = "" if exact else "at most "
            found[f"{key}.max_train_samples"] = (
                f"{key}={d.name} has {exactly}{declared[0]} training examples{' (its files)' if counted else ''}, and a "
                f"subset is taken only when {key}.max_train_samples is smaller"
            )
        return found

    @classmethod
    def declared_input(cls, node) -> "tuple[tuple[int, ...], int] | None":
        """(input shape without the batch dimension, number of classes) as the dataset declares them,
        without loading it: the pre-run check builds the model for them (run/prevalidate.py).
        None: not declared (the check then happens once the data is loaded)."""
        return None

    @classmethod
    def source_files(cls, node) -> dict[str, str]:
        """{name: path} of the files the loader reads the data from for `node`, those that exist (a name the
        same wherever the folder is: the path under its data folder). A dense-cache entry and a data-pruning
        score file record their bytes (prune_cli/core/file_digest.py `files_record`), because the key holds
        the folder, not its contents: files replaced in place reused a model trained on the old ones.
        {}: a dataset generated from its options alone (synthetic), nothing to record."""
        return {}

    @classmethod
    def declared_train_examples(cls, node) -> "tuple[int, list[int] | None] | None":
        """(training examples before imbalance, subsetting and the validation split, their count per
        class or None when unknown) as the dataset declares them without loading it; the total may be
        an upper bound when the per-class counts are None. The pre-run pass derives the number of
        optimizer steps from it (prune_cli/data/splits.py `planned_train_size`). None: not declared."""
        return None

    @classmethod
    def declared_total_counted(cls, node) -> bool:
        """Whether `declared_train_examples`' total was counted from the data's own files (an IDX header), so exact,
        not a published size: "has 200 training examples (its files)", not "at most 200"."""
        return False

    @classmethod
    def declared_test_examples(cls, node) -> "int | None":
        """Test examples as the dataset declares them without loading it, exactly (`build_splits` keeps the
        whole test split): the pre-run pass checks a metric's inputs drawn from it (metrics.regions.split).
        None: not declared (checked once the data is loaded)."""
        return None


# ----------------------------------------------------------------------------- models


@dataclass
class ModelConfig:
    name: str = MISSING


# ----------------------------------------------------------------------------- pruning


@dataclass
class MethodConfig:
    """The options every method has. The options of an allocation or a structure (erk_power, nm_n,
    block_shape, layer_densities, ...) are declared by that plugin in its own file and added to every
    method schema (prune_cli/core/plugins.py `with_plugin_options`, "Options of an allocation or a
    structure")."""

    name: str = MISSING
    score: str = MISSING  # registered score function
    # How many weights each layer keeps (docs/allocation.md): global | layerwise | explicit | er | erk |
    # uniform_plus | erk_plus | matched | region_bound
    allocation: str = "global"
    # Which weights are removed together: unstructured | channel | channel_group | nm | block | bcr
    structure: str = "unstructured"
    # Ablations (any method): invert = keep the lowest scores; shuffle = permute each layer's mask;
    # reinit = re-draw the surviving weights with the layer's default initialisation
    invert: bool = False
    shuffle: bool = False
    reinit: bool = False
    exclude: list[str] = field(default_factory=list)  # layer names never pruned
    exclude_classifier: bool = False
    exclude_first: bool = False
    allow_collapse: bool = False  # an empty layer or a cut input-output path is an error unless true
    sparsity_tolerance: float = 0.005  # max |achieved - reachable sparsity 1-round(dN)/N| (exempt: Bernoulli, faithful u+)
    rounds: int = 1  # scoring rounds inside one pruning event (SynFlow uses 100)
    round_schedule: str = "exponential"  # density per round: exponential (SynFlow) | linear

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, f"{key}.rounds")
        choice(cfg, f"{key}.round_schedule", {"exponential", "linear"})
        exclude = list(OmegaConf.select(cfg, f"{key}.exclude") or [])
        check(
            len(set(exclude)) == len(exclude),
            f"{key}.exclude",
            exclude,
            "names of prunable layers, each once (a repeated name would only change the run id)",
        )

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        rounds = OmegaConf.select(cfg, f"{key}.rounds")
        if rounds == 1:
            return {f"{key}.round_schedule": f"it spaces the densities of scoring rounds; here {key}.rounds=1"}
        return {}


@dataclass
class ScheduleConfig:
    """When to prune; see prune_cli/schedules.py. oneshot/iterative/at_init share one code path."""

    name: str = MISSING
    rounds: int = 1  # pruning rounds; each removes the same fraction of the remaining weights
    score_weights: str = "trained"  # trained | init: which weights are scored
    # trained | init | rewind | reinit: weights training restarts from. reinit with rounds > 1 is Frankle &
    # Carbin's (ICLR 2019) random-reinitialisation control: the masks come from IMP with rewinding, and each
    # level's recorded model is a fresh random draw under that level's mask.
    restart_from: str = "trained"
    # with restart_from=rewind (and reinit with rounds > 1, whose masks come from rewinding): the dense training
    # epoch to rewind to (0 = init); with restart_from=trained and lr_rewind: the epoch the LR schedule resumes at
    rewind_epoch: int = 0
    retrain: str = "finetune"  # finetune | train: the training config run after each pruning event
    # With retrain=train: retraining runs epochs rewind_epoch+1..train.epochs at the LR schedule's rates for those
    # epochs. With restart_from=rewind that is weight rewinding (Frankle et al. 2020, "Linear mode connectivity
    # and the lottery ticket hypothesis"; Renda et al. 2020): weights and LR schedule go back to rewind_epoch.
    # With restart_from=trained it is Renda et al.'s learning-rate rewinding: the trained weights are retrained
    # for the last train.epochs - rewind_epoch epochs of the schedule. null (the default) = true exactly when the
    # run rewinds weights to an epoch > 0 with retrain=train (`lr_rewinds`), false otherwise; false with
    # restart_from=rewind and rewind_epoch > 0 retrains all train.epochs from the rewound weights.
    lr_rewind: Optional[bool] = None

    # The options above are those of the prune-and-retrain schedules (oneshot, iterative, at_init,
    # lottery_ticket). A schedule whose plan reads only some of them names those in `reads`; an
    # override of any other is rejected as having no effect (docs/robustness.md).
    SHARED: ClassVar[tuple[str, ...]] = ("rounds", "score_weights", "restart_from", "rewind_epoch", "retrain", "lr_rewind")
    reads: ClassVar[tuple[str, ...]] = SHARED

    @staticmethod
    def single_event(cfg: DictConfig) -> bool:
        """Whether the run prunes once (the final per-layer densities can be fixed in advance)."""
        return cfg.schedule.rounds == 1

    @staticmethod
    def rewinds(s: Any) -> bool:
        """Whether retraining restarts from the weights of dense epoch `rewind_epoch` (0 = init): with
        restart_from=rewind, and with restart_from=reinit over several rounds, whose masks are those of the
        rewinding run (`s`: the schedule node, or its plain dict)."""
        return s.get("restart_from") == "rewind" or (s.get("restart_from") == "reinit" and s.get("rounds", 1) > 1)

    @classmethod
    def lr_rewinds(cls, s: Any) -> bool:
        """The effective `lr_rewind` of the schedule node `s` (or its plain dict): its value, or for null
        true exactly when the run rewinds weights (`rewinds`) to an epoch > 0 with retrain=train."""
        value = s.get("lr_rewind")
        if value is not None:
            return bool(value)
        return cls.rewinds(s) and s.get("retrain") == "train" and s.get("rewind_epoch", 0) > 0

    @classmethod
    def check(cls, cfg: DictConfig, key: str) -> None:
        """Bound to the run's schedule schema (`run_checks`): the combinations below are checked only
        for options the schedule reads; `unused` refuses an override of the others as having no effect
        (advice about an option the schedule ignores could not be followed)."""
        s = OmegaConf.select(cfg, key)
        reads = set(cls.reads)
        positive_int(cfg, f"{key}.rounds")
        choice(cfg, f"{key}.score_weights", {"trained", "init"})
        choice(cfg, f"{key}.restart_from", {"trained", "init", "rewind", "reinit"})
        choice(cfg, f"{key}.retrain", {"finetune", "train"})
        positive_int(cfg, f"{key}.rewind_epoch", minimum=0)
        if cls.rewinds(s) and "rewind_epoch" in reads:
            check(
                s.rewind_epoch <= cfg.train.epochs,
                f"{key}.rewind_epoch",
                s.rewind_epoch,
                f"an epoch of dense training, 0..train.epochs={cfg.train.epochs}",
            )
        if s.lr_rewind and "lr_rewind" in reads:
            check(
                (cls.rewinds(s) or s.restart_from == "trained") and s.retrain == "train",
                f"{key}.lr_rewind",
                True,
                "true only with schedule.retrain=train and schedule.restart_from=rewind (weight rewinding), trained "
                "(learning-rate rewinding, Renda et al. 2020) or reinit with schedule.rounds > 1 (its masks come from "
                "rewinding)",
            )
        if cls.lr_rewinds(s) and "lr_rewind" in reads:
            # retraining runs epochs rewind_epoch+1..train.epochs (Renda et al. 2020): none at the last
            check(
                s.rewind_epoch < cfg.train.epochs,
                f"{key}.rewind_epoch",
                s.rewind_epoch,
                f"an epoch below train.epochs={cfg.train.epochs} with {key}.lr_rewind (retraining resumes the LR "
                f"schedule at rewind_epoch and runs to train.epochs: rewind_epoch=train.epochs leaves it no epoch)",
            )
        if s.score_weights == "init" and "rounds" in reads:
            check(
                s.rounds == 1,
                f"{key}.rounds",
                s.rounds,
                "1 when schedule.score_weights=init (score the initialisation once; use method.rounds "
                "for iterative scoring such as SynFlow)",
            )

    @classmethod
    def unused(cls, cfg: DictConfig, key: str) -> dict[str, str]:
        """Called bound to the run's schedule schema (`collect_unused`), so `cls.reads` is that schedule's."""
        s = OmegaConf.select(cfg, key)
        reads = ", ".join(f"{key}.{name}" for name in cls.reads) or "none"
        found = {
            f"{key}.{name}": f"schedule={s.name} does not read it (of the shared schedule options it reads {reads})"
            for name in cls.SHARED
            if name not in cls.reads
        }
        lr_rewound = "lr_rewind" in cls.reads and s.restart_from == "trained" and cls.lr_rewinds(s)
        if "restart_from" in cls.reads and not cls.rewinds(s) and not lr_rewound:
            found[f"{key}.rewind_epoch"] = (
                f"it applies only with {key}.restart_from=rewind (as schedule=lottery_ticket sets), with "
                f"{key}.restart_from=reinit over several rounds, or with {key}.restart_from=trained and "
                f"{key}.lr_rewind=true; here {key}.restart_from={s.restart_from}"
                + (f" with {key}.rounds={s.rounds}" if s.restart_from == "reinit" else "")
            )
        if "lr_rewind" in cls.reads and s.lr_rewind and s.rewind_epoch == 0:
            found[f"{key}.lr_rewind"] = f"the LR schedule already starts at epoch 0; here {key}.rewind_epoch=0"
        return found


# ----------------------------------------------------------------------------- metrics


@dataclass
class BaseMetricsConfig:
    """The metrics every run records; each optional metric adds its node (prune_cli/metrics/__init__.py)."""

    splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated every phase
    per_class: bool = True  # recall, precision, support per class
    layers: bool = True  # per-layer density and FLOPs table

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        splits = list(OmegaConf.select(cfg, f"{key}.splits"))
        check(
            len(splits) >= 1 and set(splits) <= {"val", "test"} and len(set(splits)) == len(splits),
            f"{key}.splits",
            splits,
            "a non-empty list drawn from [val, test], each split once (a repeated split would record its rows twice)",
        )


# ----------------------------------------------------------------------------- the root config


@dataclass
class DenseCacheConfig:
    enabled: bool = True  # reuse a trained dense model with the same data, model, train config and seed
    dir: str = "${results_dir}/dense_cache"

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        if not OmegaConf.select(cfg, f"{key}.enabled"):
            return {f"{key}.dir": f"{key}.enabled is false: no dense model is read or written"}
        return {}


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    schedule: Any = MISSING
    train: Any = MISSING
    finetune: Any = MISSING
    metrics: Any = MISSING
    data_pruning: Any = MISSING  # training-set pruning rule (prune_cli/data/pruning); `none` is not hashed
    sparsity: float = 0.9
    seed: int = 0
    device: str = "auto"
    results_dir: str = "results"
    name: str = "run"
    shared_results: bool = True  # also append rows to the shared CSVs in results_dir
    fail_fast: bool = False  # in a sweep (-m), stop at the first failed run instead of recording it and going on
    allow_failures: bool = False  # a sweep with failed runs still exits 0 (it always lists them)
    dense_cache: DenseCacheConfig = field(default_factory=DenseCacheConfig)
    # Plugin modules from outside the repository, given on the command line (plugins=[my_lab.scores]);
    # they are indexed before composition (prune_cli/core/plugins.py) and not part of the run id.
    plugins: list[str] = field(default_factory=list)
    # torch intra-op threads: auto (1 for a small model, else the usable CPUs) or a positive integer;
    # not part of the run id (prune_cli/core/threads.py, docs/performance.md).
    threads: Any = "auto"
    # bf16 autocast, channels-last, torch.compile, deterministic mode (prune_cli/core/accel.py); part of
    # the run id only when a value differs from its default (prune_cli/core/identity.py).
    accel: AccelConfig = field(default_factory=AccelConfig)


# Every schema by group and option name; stored in Hydra's ConfigStore as schema/<group>/<name>.
# The bases are here; feature modules add theirs with @config_schema when they are imported.
SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base": DatasetConfig},
    "model": {"base": ModelConfig},
    "method": {"base": MethodConfig},
    "schedule": {"base": ScheduleConfig},
}


def config_schema(group: str, name: str):
    """Class decorator: a feature module declares the schema of its config option next to its code.

    The option's YAML then starts with `defaults: [/schema/<group>/<name>@_here_]`."""

    def decorator(cls: type) -> type:
        SCHEMAS.setdefault(group, {})[name] = cls
        return cls

    return decorator


def run_checks(schema: type, cfg: DictConfig, key: str) -> None:
    """Run the `check(cfg, key)` of `schema` and of every base class that declares one, base first.

    Each class's own `check` runs once (a subclass that declares none inherits its bases' checks,
    which still run once each)."""
    for klass in reversed(schema.__mro__):
        own = vars(klass).get("check")
        if own is None:
            continue
        try:
            own.__get__(None, schema)(cfg, key)
        except PruneCliError:
            raise
        except Exception as err:  # noqa: BLE001 - a plugin's check that raises a plain exception
            node = OmegaConf.select(cfg, key)
            raise ConfigError(
                key,
                node.get("name", "(its options)") if isinstance(node, DictConfig) else node,
                f"what {klass.__module__}.{klass.__qualname__.split('.')[-1]}.check accepts; "
                f"{klass.__qualname__.split('.')[-1]}.check raised {type(err).__name__}: {err}",
                "(A schema's check raises ConfigError naming the key: docs/architecture.md.)",
            ) from err


def collect_unused(schema: type, cfg: DictConfig, key: str) -> dict[str, str]:
    """{dotted key: why it has no effect} from the `unused(cfg, key)` of `schema` and of every base
    class that declares one (each class's own hook once, as `run_checks`)."""
    found: dict[str, str] = {}
    for klass in reversed(schema.__mro__):
        own = vars(klass).get("unused")
        if own is not None:
            found.update(own.__get__(None, schema)(cfg, key))
    return found


def as_plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (for hashing, saving and kwargs)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def prunes_to_sparsity(cfg: DictConfig, schedule: type) -> bool:
    """Whether the run's schedule (schema `schedule`) prunes to the top-level `sparsity`; one that
    decides its own sparsity names it in its `unused` hook (layer_pruning, autoprune without
    stop_at_target)."""
    return "sparsity" not in collect_unused(schedule, cfg, "schedule")


def may_zero_weights(cfg: DictConfig) -> bool:
    """Whether the run can zero any weight: `sparsity` > 0, a schedule that decides its own sparsity
    (an untyped schedule node: assumed to), or method.threshold_impl=strict_kth, which prunes
    max(1, ceil((1 - d) n)) weights even at density 1 (docs/allocation.md). Options that act only on
    pruned weights do nothing otherwise."""
    schema = OmegaConf.get_type(cfg.schedule)
    typed = isinstance(schema, type) and is_dataclass(schema)
    strict_kth = OmegaConf.select(cfg, "method.threshold_impl", default=None) == "strict_kth"
    return cfg.sparsity > 0 or strict_kth or not typed or not prunes_to_sparsity(cfg, schema)


def declared_train_examples(dataset: DictConfig) -> "tuple[int, list[int] | None] | None":
    """What the dataset node's schema declares of its training examples without loading them
    (`DatasetConfig.declared_train_examples`); None when its schema declares nothing."""
    declared = OmegaConf.get_type(dataset)
    return declared.declared_train_examples(dataset) if hasattr(declared, "declared_train_examples") else None


def declared_test_examples(dataset: DictConfig) -> "int | None":
    """The test examples the dataset node's schema declares (`DatasetConfig.declared_test_examples`);
    None when it declares none."""
    declared = OmegaConf.get_type(dataset)
    return declared.declared_test_examples(dataset) if hasattr(declared, "declared_test_examples") else None


def declared_input(cfg: DictConfig) -> Optional[tuple[tuple[int, ...], int]]:
    """(input shape, number of classes) that the dataset config declares without loading any data
    (its schema's `declared_input`), or None when it declares none. The pre-run checks and the thread
    policy build the model from it (on the CPU, one zero example, then kept on the meta device:
    run/prevalidate.py); training-time methods build it on the meta device."""
    declared = OmegaConf.get_type(cfg.dataset)
    return declared.declared_input(cfg.dataset) if hasattr(declared, "declared_input") else None
