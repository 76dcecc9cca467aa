"""The config base classes every plugin schema extends, the root `Config`, and the two decorators
a feature module uses to declare its options: `@config_schema(group, name)` on a dataclass and
`@validator` on a check that runs before any data is loaded (prune_cli/run/prevalidate.py).

Hydra/OmegaConf reject unknown keys and wrong types and name the key; the schemas here give every
option its type and default. A feature's own schema lives next to its code (data/synthetic.py,
models/mlp.py, pruning/scores/gp.py, metrics/similarity.py, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

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


# ----------------------------------------------------------------------------- models


@dataclass
class ModelConfig:
    name: str = MISSING


# ----------------------------------------------------------------------------- pruning


@dataclass
class MethodConfig:
    name: str = MISSING
    score: str = MISSING  # registered score function
    # How many weights each layer keeps (docs/allocation.md): global | layerwise | explicit | er | erk |
    # uniform_plus | erk_plus | matched
    allocation: str = "global"
    # global/layerwise thresholding rule: topk (round-half-even count, index tie-break) | lap_round (same
    # count, LAP) | shrinkbench_quantile (keep s >= np.quantile(s, 1-d)) | strict_kth (prune ceil((1-d)n), ties pruned)
    threshold_impl: str = "topk"
    layer_densities: Optional[list[float]] = None  # allocation=explicit: one density per prunable layer
    erk_power: float = 1.0  # er/erk/erk_plus: raw densities raised to this power (RigL erk_power_scale)
    fc_density: float = 1.0  # erk_plus: density of the classifier (1.0 = dense)
    faithful_uniform_plus: bool = False  # uniform_plus as coded in Random_Pruning (total != target)
    match_masks: Optional[str] = None  # allocation=matched: masks.pt of another run (its per-layer counts)
    match_method: Optional[str] = None  # allocation=matched: a method config (configs/method/<name>.yaml) run here
    match_allocation: Optional[str] = None  # matched + match_method: override that method's allocation (null = its own)
    # Which weights are removed together: unstructured | channel | nm | block
    structure: str = "unstructured"
    group_norm: str = "l1"  # channel/block: norm of the scores in a unit/block, l1 | l2
    nm_n: int = 2  # structure=nm: keep N ...
    nm_m: int = 4  # ... of every M consecutive weights along the input dimension
    block_shape: list[int] = field(default_factory=lambda: [4, 4])  # structure=block: [rows, cols]
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


@dataclass
class ScheduleConfig:
    """When to prune; see prune_cli/schedules.py. oneshot/iterative/at_init share one code path."""

    name: str = MISSING
    rounds: int = 1  # pruning rounds; each removes the same fraction of the remaining weights
    score_weights: str = "trained"  # trained | init: which weights are scored
    restart_from: str = "trained"  # trained | init | rewind | reinit: weights training restarts from
    rewind_epoch: int = 0  # with restart_from=rewind: the dense training epoch to rewind to (0 = init)
    retrain: str = "finetune"  # finetune | train: the training config run after each pruning event
    lr_rewind: bool = False  # with retrain=train and restart_from=rewind: resume the LR schedule at rewind_epoch


# ----------------------------------------------------------------------------- metrics


@dataclass
class BaseMetricsConfig:
    """The metrics every run records; each optional metric adds its node (prune_cli/metrics/__init__.py)."""

    splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated every phase
    per_class: bool = True  # recall, precision, support per class
    layers: bool = True  # per-layer density and FLOPs table


# ----------------------------------------------------------------------------- the root config


@dataclass
class DenseCacheConfig:
    enabled: bool = True  # reuse a trained dense model with the same data, model, train config and seed
    dir: str = "${results_dir}/dense_cache"


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
    fail_fast: bool = False  # in a sweep (-m), stop at the first failed run instead of recording it and going on
    allow_failures: bool = False  # a sweep with failed runs still exits 0 (it always lists them)
    dense_cache: DenseCacheConfig = field(default_factory=DenseCacheConfig)


# Every schema by group and option name; stored in Hydra's ConfigStore as schema/<group>/<name>.
# The bases are here; feature modules add theirs with @config_schema when they are imported.
SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base": DatasetConfig},
    "model": {"base": ModelConfig},
    "method": {"base": MethodConfig},
    "schedule": {"base": ScheduleConfig},
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


def as_plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (for hashing, saving and kwargs)."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node
