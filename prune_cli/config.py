"""Typed config schemas (registered in Hydra's ConfigStore) and the checks Hydra cannot do.

Hydra/OmegaConf already reject unknown keys and wrong types and name the key. `validate`
adds range, choice and cross-field checks, and runs before any data is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .errors import ConfigError

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


@dataclass
class SyntheticConfig(DatasetConfig):
    kind: str = "blobs"  # blobs | spirals
    input_dim: int = 2
    num_classes: int = 3
    noise: float = 0.5
    samples_per_class: int = 500  # training samples per class (before the validation split)
    test_samples_per_class: int = 200
    data_seed: int = 0  # the data itself; the run's seed drives splits and training


@dataclass
class Mnist1dConfig(DatasetConfig):
    num_samples: int = 10000  # total; mnist1d keeps 80 % for training, 20 % for test
    data_seed: int = 42  # mnist1d's generation seed (42 = the published dataset)
    cache_dir: str = "~/.cache/prune-cli/mnist1d"


@dataclass
class VisionConfig(DatasetConfig):
    root: str = "data"
    download: bool = False


# ----------------------------------------------------------------------------- models


@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class MLPConfig(ModelConfig):
    widths: list[int] = field(default_factory=lambda: [100, 100])
    bias: bool = True


@dataclass
class CNN1DConfig(ModelConfig):
    channels: list[int] = field(default_factory=lambda: [32, 32, 32])
    kernel_size: int = 5
    hidden: int = 64


# ----------------------------------------------------------------------------- pruning


@dataclass
class MethodConfig:
    name: str = MISSING
    score: str = MISSING  # registered score function
    allocation: str = "global"  # global | layerwise
    structure: str = "unstructured"
    exclude: list[str] = field(default_factory=list)  # layer names never pruned
    exclude_classifier: bool = False
    exclude_first: bool = False
    allow_collapse: bool = False  # a prunable layer left with no weight is an error unless true
    rounds: int = 1  # scoring rounds inside one pruning event (SynFlow uses 100)
    round_schedule: str = "exponential"  # density per round: exponential (SynFlow) | linear


@dataclass
class RandomMethodConfig(MethodConfig):
    sampling: str = "exact"  # exact (achieved = target) | bernoulli (i.i.d. keep with p = density)


@dataclass
class ScheduleConfig:
    name: str = MISSING


# ----------------------------------------------------------------------------- training


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | multistep | cosine
    milestones: list[int] = field(default_factory=list)  # epochs, for multistep
    gamma: float = 0.1  # multistep decay factor
    warmup_epochs: int = 0  # linear warm-up before the schedule


@dataclass
class RegionsConfig:
    """Linear-region counting (prune_cli/metrics/regions; docs/regions.md)."""

    enabled: bool = False
    method: str = "line"  # line | plane | sample | exact
    split: str = "test"  # inputs the segments / planes pass through: test | val | train
    seed: int = 0  # which inputs and directions; counts are deterministic given it
    segments: int = 10  # method=line: number of seeded segments
    segment_kind: str = "pairs"  # pairs (between two inputs) | direction (through an input, random direction)
    segment_length: Optional[float] = None  # direction: length; null = median distance between inputs
    planes: int = 1  # method=plane: planes through three inputs each
    domain: str = "box"  # plane/sample: box (valid input range) | square ([-R, R]^2 in plane coordinates)
    box: Optional[list[float]] = None  # [lo, hi]; null = min and max of the training inputs
    square_radius: Optional[float] = None  # null = 1.5 x the farthest of the three inputs from their centroid
    plot: bool = True  # method=plane: PNG of every slice, dense vs this phase
    samples: int = 10000  # method=sample: points (box or plane, by domain)
    max_units: int = 64  # method=exact: budget on hidden units
    max_regions: int = 100000  # plane/exact: stop with an error beyond this many regions
    tol: float = 1e-9  # plane: a line cuts a polygon when vertex values exceed tol x max|value| on both sides
    eps_area: float = 1e-12  # plane: pieces below this area are not split off
    f_tol: float = 1e-6  # exact: a pattern counts when its margin f exceeds f_tol
    rank_models: list[str] = field(default_factory=lambda: ["binomial", "montecarlo"])
    include_output_layer: bool = True  # bounds treat the output layer as rectified (authors' code)
    mc_sample_factor: int = 48  # Monte Carlo rank model stopping rule


@dataclass
class MetricsConfig:
    splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated every phase
    per_class: bool = True  # recall, precision, support per class
    layers: bool = True  # per-layer density and FLOPs table
    regions: RegionsConfig = field(default_factory=RegionsConfig)


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    schedule: Any = MISSING
    train: Any = MISSING
    finetune: Any = MISSING
    metrics: Any = MISSING
    sparsity: float = 0.9
    seed: int = 0
    device: str = "auto"
    results_dir: str = "results"
    name: str = "run"
    shared_results: bool = True  # also append rows to the shared CSVs in results_dir


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base": DatasetConfig, "synthetic": SyntheticConfig, "mnist1d": Mnist1dConfig,
                "vision": VisionConfig},
    "model": {"base": ModelConfig, "mlp": MLPConfig, "cnn1d": CNN1DConfig},
    "method": {"base": MethodConfig, "random": RandomMethodConfig},
    "schedule": {"base": ScheduleConfig},
    "train": {"base": TrainConfig},
    "metrics": {"base": MetricsConfig},
}

# Extra checks contributed by feature modules: fn(cfg) raising ConfigError.
VALIDATORS: list[Callable[[DictConfig], None]] = []


def config_schema(group: str, name: str):
    """Class decorator: a feature module declares the schema of its config option next to its code.

    The option's YAML then starts with `defaults: [/schema/<group>/<name>@_here_]`."""

    def decorator(cls: type) -> type:
        SCHEMAS.setdefault(group, {})[name] = cls
        return cls

    return decorator


def validator(fn: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Function decorator: run `fn(cfg)` as part of `validate`, before any data is loaded."""
    VALIDATORS.append(fn)
    return fn


def register_schemas() -> None:
    """Store every schema under `schema/<group>/<name>` so options pull them in by defaults."""
    import prune_cli.data  # noqa: F401  (feature modules declare schemas and validators on import)
    import prune_cli.metrics  # noqa: F401
    import prune_cli.models  # noqa: F401
    import prune_cli.pruning  # noqa: F401
    import prune_cli.schedules  # noqa: F401

    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


# ----------------------------------------------------------------------------- validation


def _check(ok: bool, key: str, value, allowed: str, hint: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, allowed, hint)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _choice(cfg: DictConfig, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    _check(value in choices, key, value, "one of " + ", ".join(sorted(choices)))


def _positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    _check(isinstance(value, int) and value >= minimum, key, value, f"an integer >= {minimum}")


def _fraction(cfg: DictConfig, key: str, lo: float, hi: float, hi_open: bool = True) -> None:
    value = OmegaConf.select(cfg, key)
    ok = _finite(value) and lo <= value and (value < hi if hi_open else value <= hi)
    _check(ok, key, value, f"a number in [{lo}, {hi}{')' if hi_open else ']'}")


def _validate_training(cfg: DictConfig, group: str) -> None:
    _positive_int(cfg, f"{group}.epochs", minimum=0)
    _positive_int(cfg, f"{group}.batch_size")
    _positive_int(cfg, f"{group}.eval_batch_size")
    _choice(cfg, f"{group}.optimizer", {"sgd", "adam"})
    _choice(cfg, f"{group}.lr_schedule", {"constant", "multistep", "cosine"})
    for key in ("lr", "momentum", "weight_decay", "gamma"):
        value = cfg[group][key]
        _check(_finite(value) and value >= 0, f"{group}.{key}", value, "a finite number >= 0")
    _check(cfg[group].momentum < 1, f"{group}.momentum", cfg[group].momentum, "a number in [0, 1)")
    _positive_int(cfg, f"{group}.warmup_epochs", minimum=0)
    milestones = list(cfg[group].milestones)
    _check(all(m > 0 for m in milestones) and milestones == sorted(milestones),
           f"{group}.milestones", milestones, "increasing positive epoch numbers")
    if cfg[group].optimizer == "adam":
        _check(not cfg[group].nesterov, f"{group}.nesterov", True, "false with optimizer=adam")


def _validate_dataset(cfg: DictConfig) -> None:
    from .data import DATASETS

    d = cfg.dataset
    DATASETS.get(d.name)
    _fraction(cfg, "dataset.val_fraction", 0.0, 1.0)
    _choice(cfg, "dataset.imbalance", {"none", "longtail", "counts"})
    if d.imbalance == "longtail":
        _check(_finite(d.longtail_ratio) and d.longtail_ratio >= 1, "dataset.longtail_ratio",
               d.longtail_ratio, "a number >= 1 (largest class size / smallest class size)")
    if d.imbalance == "counts":
        counts = None if d.class_counts is None else list(d.class_counts)
        _check(bool(counts) and all(c >= 1 for c in counts), "dataset.class_counts", counts,
               "a list with one positive integer per class when dataset.imbalance=counts")
    elif d.class_counts is not None:
        _check(False, "dataset.class_counts", list(d.class_counts), "null unless dataset.imbalance=counts")
    if d.max_train_samples is not None:
        _positive_int(cfg, "dataset.max_train_samples")
    if "kind" in d:
        _choice(cfg, "dataset.kind", {"blobs", "spirals"})
        _positive_int(cfg, "dataset.input_dim", minimum=2 if d.kind == "spirals" else 1)
        _positive_int(cfg, "dataset.num_classes", minimum=2)
        _positive_int(cfg, "dataset.samples_per_class")
        _positive_int(cfg, "dataset.test_samples_per_class")
        _check(_finite(d.noise) and d.noise >= 0, "dataset.noise", d.noise, "a finite number >= 0")
    if "num_samples" in d:
        _positive_int(cfg, "dataset.num_samples", minimum=100)


def validate(cfg: DictConfig) -> None:
    """Check every value Hydra's type system cannot; raise ConfigError naming the key."""
    from .models import MODELS
    from .pruning import ALLOCATIONS, SCORES, STRUCTURES
    from .schedules import SCHEDULES

    _fraction(cfg, "sparsity", 0.0, 1.0)
    _positive_int(cfg, "seed", minimum=0)
    _choice(cfg, "device", {"auto", "cpu", "cuda"})
    _check(bool(cfg.results_dir), "results_dir", cfg.results_dir, "a non-empty path")
    _check(bool(cfg.name) and "/" not in cfg.name, "name", cfg.name, "a non-empty name without '/'")
    _validate_dataset(cfg)
    MODELS.get(cfg.model.name)
    if "widths" in cfg.model:
        widths = list(cfg.model.widths)
        _check(len(widths) >= 1 and all(w >= 1 for w in widths), "model.widths", widths,
               "a non-empty list of positive integers")
    SCORES.get(cfg.method.score)
    ALLOCATIONS.get(cfg.method.allocation)
    STRUCTURES.get(cfg.method.structure)
    _positive_int(cfg, "method.rounds")
    _choice(cfg, "method.round_schedule", {"exponential", "linear"})
    if "sampling" in cfg.method:
        _choice(cfg, "method.sampling", {"exact", "bernoulli"})
    SCHEDULES.get(cfg.schedule.name)
    _validate_training(cfg, "train")
    _validate_training(cfg, "finetune")
    splits = list(cfg.metrics.splits)
    _check(len(splits) >= 1 and set(splits) <= {"val", "test"}, "metrics.splits", splits,
           "a non-empty list drawn from [val, test]")
    for check in VALIDATORS:
        check(cfg)
    if cfg.device == "cuda":
        import torch

        _check(torch.cuda.is_available(), "device", "cuda", "auto or cpu on this machine",
               "torch.cuda.is_available() is False here.")


def as_plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (for hashing, saving and kwargs)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
