"""Typed config schemas (registered in Hydra's ConfigStore) and the checks Hydra cannot do.

Hydra/OmegaConf already reject unknown keys and wrong types and name the key. `validate`
adds range, choice and cross-field checks, and runs before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from .analysis.settings import HessianMetricConfig, NTKMetricConfig, PruningLimitConfig
from .errors import ConfigError, UnknownKeyError

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
class RandomMethodConfig(MethodConfig):
    sampling: str = "exact"  # exact (achieved = target) | bernoulli (i.i.d. keep with p = density)


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


@dataclass
class GradualScheduleConfig(ScheduleConfig):
    start_step: int = 0  # optimizer step of the first pruning event
    end_step: int = -1  # step of the last event (-1: the last step of training)
    frequency: int = 100  # steps between events
    initial_sparsity: float = 0.0
    power: float = 3.0  # 3 = the cubic curve of Zhu & Gupta (2017)


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
    l1: float = 0.0  # coefficient of the L1 norm of the prunable layers' weights added to the loss


@dataclass
class RecallDistortionConfig:
    """Per-class recall distortion against the dense model of the same seed (metrics/recall_distortion.py)."""
    enabled: bool = False
    splits: list[str] = field(default_factory=lambda: ["test"])  # evaluated each phase (val | test)
    save_predictions: bool = True  # per-image predictions (preds_<phase>_<split>.npz) for the randomisation null


@dataclass
class SimilarityConfig:
    """SVCCA and linear CKA per prunable layer, dense vs current model (metrics/similarity.py)."""
    enabled: bool = False
    split: str = "test"  # where the fixed batch of inputs comes from (val | test)
    num_samples: int = 256  # inputs in the fixed batch (capped by the split size)
    batch_seed: int = 0  # which inputs; the same batch is used in every phase
    svcca_variance: float = 0.99  # SVCCA keeps the top singular directions explaining this variance ...
    svcca_max_dims: int = 32  # ... but at most this many (CCA needs samples >> dimensions)


@dataclass
class MembershipConfig:
    """Loss / confidence threshold membership-inference attack (metrics/membership.py)."""
    enabled: bool = False
    num_samples: int = 1000  # members (training split) and as many non-members (test split), at most
    sample_seed: int = 0  # which examples, and the calibration / evaluation halves for the threshold


@dataclass
class LatencyConfig:
    """Measured inference latency of the dense and the current model (metrics/latency.py)."""
    enabled: bool = False
    batch_size: int = 128
    warmup: int = 5  # untimed forward passes before timing
    repeats: int = 30  # timed forward passes per model; the median is reported


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
    recall_distortion: RecallDistortionConfig = field(default_factory=RecallDistortionConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    ntk: NTKMetricConfig = field(default_factory=NTKMetricConfig)
    hessian: HessianMetricConfig = field(default_factory=HessianMetricConfig)
    pruning_limit: PruningLimitConfig = field(default_factory=PruningLimitConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)


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


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"base": DatasetConfig, "synthetic": SyntheticConfig, "mnist1d": Mnist1dConfig,
                "vision": VisionConfig},
    "model": {"base": ModelConfig, "mlp": MLPConfig, "cnn1d": CNN1DConfig},
    "method": {"base": MethodConfig, "random": RandomMethodConfig},
    "schedule": {"base": ScheduleConfig, "gradual": GradualScheduleConfig},
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
    for key in ("lr", "momentum", "weight_decay", "gamma", "l1"):
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
    if "root" in d and not d.download:
        from .data.vision import SOURCES, check_files

        if d.name in SOURCES:
            check_files(d.name, d.root)  # missing files stop the run before any directory exists


@validator
def _validate_allocation_structure(cfg: DictConfig) -> None:
    """method.* keys of allocations, structures and ablations (docs/allocation.md)."""
    m = cfg.method
    if "allocation" not in m:
        return
    structure = m.get("structure", "unstructured")
    _fraction(cfg, "method.sparsity_tolerance", 0.0, 1.0, hi_open=False)
    _check(_finite(m.erk_power) and m.erk_power > 0, "method.erk_power", m.erk_power, "a number > 0")
    _fraction(cfg, "method.fc_density", 0.0, 1.0, hi_open=False)
    _choice(cfg, "method.group_norm", {"l1", "l2"})
    _choice(cfg, "method.threshold_impl", {"topk", "lap_round", "shrinkbench_quantile", "strict_kth"})
    if m.threshold_impl != "topk":
        _check(m.allocation in ("global", "layerwise"), "method.threshold_impl", m.threshold_impl,
               f"topk with method.allocation={m.allocation} (the other rules apply to global and layerwise)")
    if m.allocation == "explicit":
        dens = None if m.layer_densities is None else list(m.layer_densities)
        _check(bool(dens) and all(_finite(d) and 0 <= d <= 1 for d in dens), "method.layer_densities", dens,
               "a list of densities in [0, 1], one per prunable layer in forward order, with "
               "method.allocation=explicit")
    elif m.layer_densities is not None:
        _check(False, "method.layer_densities", list(m.layer_densities), "null unless method.allocation=explicit")
    if m.allocation == "matched":
        _check(bool(m.match_masks) != bool(m.match_method), "method.match_masks / method.match_method",
               [m.match_masks, m.match_method], "exactly one of them set with method.allocation=matched")
        if m.match_method:
            from .pruning import ALLOCATIONS
            from .pruning.allocation import method_option, method_options

            _check(m.match_method in method_options(), "method.match_method", m.match_method,
                   "a method config name: one of " + ", ".join(method_options()))
            if m.match_allocation is not None:
                choices = [a for a in ALLOCATIONS.names() if a != "matched"]
                _check(m.match_allocation in choices, "method.match_allocation", m.match_allocation,
                       "null (the matched method's own allocation) or one of " + ", ".join(choices))
            other = method_option(m.match_method)
            _check(other.allocation != "matched", "method.match_method", m.match_method,
                   "a method whose own allocation is not matched")
        if m.match_masks:
            from .pruning.masks import read_masks_file

            read_masks_file(m.match_masks)  # a missing or corrupt file stops the run before any work
    else:
        for key in ("match_masks", "match_method"):
            _check(m[key] is None, f"method.{key}", m[key], "null unless method.allocation=matched")
    bernoulli = m.get("sampling", "exact") == "bernoulli" and m.score == "random"
    if structure != "unstructured":
        _check(not bernoulli, "method.sampling", "bernoulli",
               f"exact with method.structure={structure} (Bernoulli sampling picks single weights)")
        _check(not m.shuffle, "method.shuffle", True,
               f"false with method.structure={structure} (shuffling single positions would break the structure)")
    if m.invert:
        _check(not bernoulli, "method.invert", True, "false with method.sampling=bernoulli (inverting i.i.d. "
               "uniform scores changes nothing)")
    if structure == "nm":
        _positive_int(cfg, "method.nm_n")
        _positive_int(cfg, "method.nm_m")
        _check(m.nm_n <= m.nm_m, "method.nm_n", m.nm_n, f"an integer in [1, method.nm_m={m.nm_m}]")
        _check(m.allocation == "layerwise", "method.allocation", m.allocation,
               "layerwise with method.structure=nm (every layer keeps exactly N/M)")
        want = 1 - m.nm_n / m.nm_m
        _check(abs(cfg.sparsity - want) < 1e-9, "sparsity", cfg.sparsity,
               f"{want} with method.structure=nm and N:M = {m.nm_n}:{m.nm_m} (sparsity = 1 - N/M)")
    single_event = m.get("rounds", 1) == 1 and cfg.schedule.get("rounds", 1) == 1 and "frequency" not in cfg.schedule
    fixed = ("method.allocation", m.allocation) if m.allocation == "explicit" else (
        ("method.match_masks", m.match_masks) if m.allocation == "matched" and m.match_masks else (
            ("method.structure", "nm") if structure == "nm" else None))
    if fixed is not None:
        _check(single_event, fixed[0], fixed[1],
               "a single pruning event (method.rounds=1 and a schedule with rounds=1, not gradual): it fixes "
               "the final per-layer densities, which intermediate sparsities cannot have")
    if structure == "channel":
        _check(m.allocation == "layerwise", "method.allocation", m.allocation,
               "layerwise with method.structure=channel (every hidden layer keeps the same fraction of units)")
    if structure == "block":
        shape = list(m.block_shape)
        _check(len(shape) == 2 and all(isinstance(v, int) and v >= 1 for v in shape), "method.block_shape",
               shape, "two positive integers [rows, cols]")


def _validate_schedule(cfg: DictConfig) -> None:
    s = cfg.schedule
    _positive_int(cfg, "schedule.rounds")
    _choice(cfg, "schedule.score_weights", {"trained", "init"})
    _choice(cfg, "schedule.restart_from", {"trained", "init", "rewind", "reinit"})
    _choice(cfg, "schedule.retrain", {"finetune", "train"})
    _positive_int(cfg, "schedule.rewind_epoch", minimum=0)
    if s.restart_from == "rewind":
        _check(s.rewind_epoch <= cfg.train.epochs, "schedule.rewind_epoch", s.rewind_epoch,
               f"an epoch of dense training, 0..train.epochs={cfg.train.epochs}")
    if s.lr_rewind:
        _check(s.restart_from == "rewind" and s.retrain == "train", "schedule.lr_rewind", True,
               "true only with schedule.restart_from=rewind and schedule.retrain=train")
    if s.score_weights == "init":
        _check(s.rounds == 1, "schedule.rounds", s.rounds,
               "1 when schedule.score_weights=init (score the initialisation once; use method.rounds "
               "for iterative scoring such as SynFlow)")
    if "frequency" in s:
        _positive_int(cfg, "schedule.start_step", minimum=0)
        _positive_int(cfg, "schedule.frequency")
        _check(isinstance(s.end_step, int) and (s.end_step == -1 or s.end_step >= s.start_step),
               "schedule.end_step", s.end_step, "-1 (last step) or a step >= schedule.start_step")
        _fraction(cfg, "schedule.initial_sparsity", 0.0, cfg.sparsity, hi_open=False)
        _check(_finite(s.power) and s.power > 0, "schedule.power", s.power, "a positive number (3 = cubic)")


# ----------------------------------------------------------------------------- unknown keys

GROUPS = ("dataset", "model", "method", "schedule", "train", "finetune", "metrics")
GROUP_SCHEMA = {"finetune": "train"}  # finetune options use the train schema


def _fields(cls: type) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _unknown_keys(node: DictConfig, cls: type, prefix: str) -> list[tuple[str, Any, list[str]]]:
    """(dotted key, value, valid names at that level) for every key of `node` its schema lacks,
    descending into fields whose type is itself a schema (metrics.regions, ...)."""
    fields = _fields(cls)
    hints = typing.get_type_hints(cls)
    found = []
    for key in node.keys():
        if key not in fields:
            found.append((f"{prefix}{key}", OmegaConf.select(node, str(key), throw_on_missing=False),
                          sorted(fields)))
            continue
        ftype = hints.get(key)
        sub = node._get_node(key)
        if isinstance(sub, DictConfig) and isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
            found += _unknown_keys(sub, ftype, f"{prefix}{key}.")
    return found


def _schema_of(node: DictConfig, group: str) -> tuple[type, list]:
    """The schema of a group's node and its unknown keys. Each option's YAML merges its schema first,
    so the composed node is typed with it (OmegaConf.get_type); a node composed without one (a user's
    --config-dir option without defaults) is checked against the group's schema leaving the fewest
    unknown keys."""
    typed = OmegaConf.get_type(node)
    if isinstance(typed, type) and dataclasses.is_dataclass(typed):
        return typed, _unknown_keys(node, typed, f"{group}.")
    candidates = list(SCHEMAS.get(GROUP_SCHEMA.get(group, group), {}).values())
    scored = [(len(_unknown_keys(node, c, f"{group}.")), -len(_fields(c)), i, c) for i, c in enumerate(candidates)]
    best = min(scored)[3]
    return best, _unknown_keys(node, best, f"{group}.")


def check_known_keys(cfg: DictConfig) -> None:
    """Every key of the composed config belongs to a schema: a typo added with `+` (Hydra's own
    hint after a rejected `train.epoch=50`) must stop the run, not train the default silently."""
    unknown = [(k, OmegaConf.select(cfg, k, throw_on_missing=False), sorted(_fields(Config)))
               for k in cfg.keys() if k != "hydra" and k not in _fields(Config)]
    for group in GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            unknown += _schema_of(node, group)[1]
    for key, value, valid in unknown:
        leaf = key.rsplit(".", 1)[-1]
        parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
        close = [parent + c for c in difflib.get_close_matches(leaf, valid, n=3, cutoff=0.6)]
        if parent and leaf in _fields(Config):
            close.insert(0, leaf)  # a top-level key put under a group (+method.sparsity=0.5)
        raise UnknownKeyError(key, value, valid, close)


# ----------------------------------------------------------------------------- validation

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def safe_name(name) -> bool:
    """`name` becomes part of a directory name: letters, digits and . _ + - only, no '..'."""
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and ".." not in name


def validate(cfg: DictConfig) -> None:
    """Check every value Hydra's type system cannot; raise ConfigError naming the key."""
    from .models import MODELS
    from .pruning import ALLOCATIONS, SCORES, STRUCTURES
    from .schedules import SCHEDULES

    check_known_keys(cfg)
    _fraction(cfg, "sparsity", 0.0, 1.0)
    _positive_int(cfg, "seed", minimum=0)
    _choice(cfg, "device", {"auto", "cpu", "cuda"})
    _check(bool(cfg.results_dir), "results_dir", cfg.results_dir, "a non-empty path")
    _check(safe_name(cfg.name), "name", cfg.name,
           "a short label (1-64 characters: letters, digits, '.', '_', '+', '-'; no '/' and no '..')")
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
    _validate_schedule(cfg)
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
