"""Turn a source's raw train/test tensors into seeded train/val/test splits on the device."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ..core.config_base import declared_train_examples
from ..core.errors import ConfigError, DatasetContentError
from ..core.notices import say
from .batches import to_device

log = logging.getLogger(__name__)


@dataclass
class RawData:
    """What a source returns: CPU tensors, inputs already scaled to floats."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    image: bool = False  # (C, H, W) inputs that random crop + flip make sense for


@dataclass
class DataSplits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def train_class_counts(self) -> list[int]:
        """Training examples of each class 0..num_classes - 1."""
        return torch.bincount(self.train_y.cpu(), minlength=self.num_classes).tolist()


def longtail_counts(available: list[int], ratio: float, warn: bool = True) -> list[int]:
    """Exponential profile n_c = round(n_head x ratio^(-c/(C-1))) (Cui et al. 2019), so that class 0 is
    the largest, class C-1 the smallest and n_0 / n_{C-1} = `ratio` (README: longtail_ratio is largest /
    smallest class) up to rounding to whole examples.

    The head is the largest every class can supply, n_head = floor(min_c available[c] x ratio^(c/(C-1))):
    anchored on the largest class instead, a class 0 smaller than it was cut to its own size and the
    achieved ratio fell short (88.4 for 100 on MNIST, whose largest class is 1). Counts are rounded half
    to even, like the validation split's round(val_fraction x n); a real number at most an integer
    rounds to at most that integer, so no class asks more than it has. At least one example per class
    (a class with none in the data is refused by `_take_counts`).

    `warn`: say so when the data is too small for the ratio. The pre-run planners (`_planned_counts`)
    pass False: the run says it once, where `build_splits` takes the counts (it was said by each
    planner too, seven times on the console and four in prune-run.log)."""
    classes = len(available)
    if classes == 1:
        return [max(1, available[0])]
    scale = [ratio ** (c / (classes - 1)) for c in range(classes)]
    # the relative 1e-12 keeps a head that is a whole number in exact arithmetic from losing one to float error
    n_head = math.floor(min(have * s for have, s in zip(available, scale)) * (1 + 1e-12))
    counts = [max(1, min(have, round(n_head / s))) for have, s in zip(available, scale)]
    floored = [c for c, s in enumerate(scale) if round(n_head / s) < 1]
    if floored and warn:  # the data is too small for this ratio: the tail is flatter than asked, which the run must say
        log.warning(
            "dataset.longtail_ratio=%g: class(es) %s would keep less than one example (head %d); they keep one, "
            "so largest/smallest is %.3g, not %g",
            ratio,
            ", ".join(map(str, floored)),
            n_head,
            counts[0] / counts[-1],
            ratio,
        )
    return counts


def _per_class_indices(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(len(y), generator=gen)
    shuffled = y[order]
    return [order[shuffled == c] for c in range(num_classes)]


def _take_counts(y, num_classes, counts, gen, cfg: DictConfig) -> torch.Tensor:
    """Seeded subset with exactly counts[c] examples of class c (dataset.class_counts were checked
    against the classes by `check_class_counts`; a long tail raises for a class without examples)."""
    per_class = _per_class_indices(y, num_classes, gen)
    for c, (have, want) in enumerate(zip((len(i) for i in per_class), counts)):
        if want > have and cfg.imbalance == "longtail":  # only for a class the data has no example of (longtail_counts)
            raise ConfigError(
                "dataset.imbalance",
                cfg.imbalance,
                f"none or counts for {_dataset(cfg)}: dataset.imbalance=longtail (dataset.longtail_ratio={cfg.longtail_ratio:g}) "
                f"keeps at least one training example of every class, and class {c} has none in the dataset's training data",
            )
    return torch.cat([idx[:n] for idx, n in zip(per_class, counts)])


def _dataset(cfg: DictConfig) -> str:
    """The dataset as messages name it: "dataset 'mnist'" (a node without a name: "the dataset")."""
    name = cfg.get("name")
    return f"dataset {name!r}" if name else "the dataset"


def classes_without_examples(y: torch.Tensor, num_classes: int) -> list[int]:
    """The classes 0..num_classes - 1 of which `y` holds no example."""
    return [c for c, n in enumerate(torch.bincount(y.cpu(), minlength=num_classes).tolist()) if n == 0]


def warn_classes_without_training_examples(classes: list[int], num_classes: int, cause: str) -> None:
    """A warning in the run's log and on stderr: these classes have no training example left. Not an
    error (a class removed from training is a legitimate experiment), but never silent."""
    if not classes:
        return
    listed = ", ".join(str(c) for c in classes)
    line = (
        f"{'classes' if len(classes) > 1 else 'class'} {listed} of {num_classes} "
        f"{'have' if len(classes) > 1 else 'has'} no training examples (removed by {cause}); "
        "the model is trained without them"
    )
    say(log, f"prune-run: warning: {line}", log_line=line)


def warn_classes_lost(before_y: torch.Tensor, after_y: torch.Tensor, num_classes: int, cause: str) -> None:
    """The warning for the classes a selection of training examples (`cause`) left without any, that
    had some before it."""
    before = classes_without_examples(before_y, num_classes)
    removed = [c for c in classes_without_examples(after_y, num_classes) if c not in before]
    warn_classes_without_training_examples(removed, num_classes, cause)


def check_examples(raw: RawData, dataset: str) -> None:
    """Both splits hold examples, each labelled with a class 0..num_classes - 1 (a label outside them
    was dropped from training without a word, and crashed the evaluation after dense training), with
    finite inputs: a NaN or infinite input (a dataset plugin's division by a zero norm) made the loss NaN,
    and the run stopped after training as "Training diverged ... lower the learning rate", advice about
    the wrong thing. One `torch.isfinite(x).all()` per split; the example is found only when it fails."""
    for what, x, y in (("training", raw.train_x, raw.train_y), ("test", raw.test_x, raw.test_y)):
        if len(y) == 0:
            raise DatasetContentError(f"{dataset} has no {what} examples: the {what} split would be empty")
        if not bool(torch.isfinite(x).all()):
            bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
            first = int(bad.nonzero()[0, 0])
            raise DatasetContentError(
                f"{dataset} has {what} inputs that are not finite numbers (NaN or infinite): {int(bad.sum())} of its "
                f"{len(x)} {what} examples, the first at index {first}. Allowed: finite inputs (a dataset returns "
                "them already scaled to floats)"
            )
        bad = torch.unique(y[(y < 0) | (y >= raw.num_classes)]).tolist()
        if bad:
            shown = ", ".join(str(v) for v in bad[:10]) + (f", ... ({len(bad)} in all)" if len(bad) > 10 else "")
            raise DatasetContentError(
                f"{dataset} has {what} labels outside its {raw.num_classes} classes: {shown}. "
                f"Allowed: 0..{raw.num_classes - 1} (one label per class, counted from 0)"
            )


def _planned_counts(cfg: DictConfig, per_class: list[int]) -> list[int]:
    """Examples per class after the imbalance and before any random subset and the validation split."""
    counts = list(per_class)
    if cfg.imbalance == "longtail":
        counts = longtail_counts(counts, cfg.longtail_ratio, warn=False)  # build_splits says it, once
    elif cfg.imbalance == "counts" and cfg.class_counts is not None:
        counts = [int(c) for c in cfg.class_counts]
        check_class_counts(counts, list(per_class))
    return counts


def check_class_counts(counts: list[int], available: list[int]) -> None:
    """`dataset.class_counts` against the examples of each class: one count per class, none above what
    the class has (before the run from the dataset's declared counts, `_planned_counts`; once loaded,
    `build_splits`)."""
    if len(counts) != len(available):
        raise ConfigError("dataset.class_counts", counts, f"a list of exactly {len(available)} counts (one per class)")
    for c, (want, have) in enumerate(zip(counts, available)):
        if want > have:
            raise ConfigError("dataset.class_counts", counts, f"at most {have} examples for class {c} (the training split's size)")


def _kept_for_training(cfg: DictConfig, n: int) -> int:
    """Of a class's n examples, those the stratified validation split leaves for training."""
    return n - int(round(cfg.val_fraction * n))


def planned_train_size(cfg: DictConfig, total: int, per_class: list[int] | None) -> tuple[int, bool]:
    """(training examples `build_splits` will keep, whether that is exact) from the dataset's
    declared counts, without loading it: exact when the per-class counts are known and no random
    subset is taken (the validation split rounds per class); otherwise an upper bound. A validation
    split that would take a whole class is a ConfigError (`check_training_left`)."""
    if per_class is None:
        return min(total, cfg.max_train_samples or total), False
    counts = _planned_counts(cfg, per_class)
    if cfg.max_train_samples is not None and cfg.max_train_samples < sum(counts):
        return int(cfg.max_train_samples), False
    check_training_left(cfg, counts)
    return sum(_kept_for_training(cfg, n) for n in counts), True


def planned_train_counts(cfg: DictConfig, total: int, per_class: list[int] | None) -> tuple[list[int], bool]:
    """(training examples `build_splits` will keep of each class, whether they are exact) from the
    dataset's declared counts, as `planned_train_size`: exact when the per-class counts are known and
    no random subset is taken. Otherwise each is an upper bound on its class: with a random subset of
    max_train_samples, what the class would keep if the subset drew only from it; with unknown counts
    one value, `planned_train_size`'s bound, which bounds every class."""
    if per_class is None:
        return [planned_train_size(cfg, total, None)[0]], False
    counts = _planned_counts(cfg, per_class)
    if cfg.max_train_samples is not None and cfg.max_train_samples < sum(counts):
        subset = int(cfg.max_train_samples)
        return [_kept_for_training(cfg, min(n, subset)) for n in counts], False  # non-decreasing in n
    check_training_left(cfg, counts)
    return [_kept_for_training(cfg, n) for n in counts], True


def planned_val_size(cfg: DictConfig) -> int | None:
    """Validation examples `build_splits` will hold out (per class round(val_fraction x n)), known
    without loading the data: 0 when val_fraction is 0; None when the per-class counts are not
    declared or a random subset (max_train_samples) is taken first."""
    if cfg.val_fraction == 0:
        return 0
    spec = declared_train_examples(cfg)
    if spec is None or spec[1] is None:
        return None
    counts = _planned_counts(cfg, spec[1])
    if cfg.max_train_samples is not None and cfg.max_train_samples < sum(counts):
        return None
    return sum(int(round(cfg.val_fraction * n)) for n in counts)


def empty_val_reason(cfg: DictConfig) -> str:
    """Why the validation split is empty, for the messages of the checks that need one."""
    if cfg.val_fraction == 0:
        return "the validation split is empty (dataset.val_fraction=0)"
    return (
        f"the validation split is empty (dataset.val_fraction={cfg.val_fraction:g} holds out round({cfg.val_fraction:g} x n) = 0 "
        "of the n training examples of every class)"
    )


def check_training_left(cfg: DictConfig, counts: list[int]) -> None:
    """Every class with examples keeps one for training: the stratified hold-out takes round(val_fraction
    x n) of a class's n, all of them for a small class (one example at val_fraction 0.6), and the model
    would then train without that class."""
    for c, n in enumerate(counts):
        if n > 0 and int(round(cfg.val_fraction * n)) >= n:
            raise ConfigError(
                "dataset.val_fraction",
                cfg.val_fraction,
                f"a fraction that leaves every class a training example: class {c} has {n} example(s) and "
                f"round({cfg.val_fraction:g} x {n}) = {n} would all go to validation",
            )


def build_splits(raw: RawData, cfg: DictConfig, seed: int, device: torch.device) -> DataSplits:
    """Imbalance, subsetting and a stratified, seeded validation split, then move to the device."""
    check_examples(raw, _dataset(cfg))
    gen = torch.Generator().manual_seed(seed)
    x, y, k = raw.train_x, raw.train_y, raw.num_classes
    warn_classes_without_training_examples(classes_without_examples(y, k), k, "the dataset's files")
    if cfg.imbalance != "none":
        available = torch.bincount(y, minlength=k).tolist()
        if cfg.imbalance == "longtail":
            counts = longtail_counts(available, cfg.longtail_ratio)
        else:
            counts = list(cfg.class_counts)
            check_class_counts(counts, available)
        keep = _take_counts(y, k, counts, gen, cfg)
        x, y = x[keep], y[keep]
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(y):
        keep = torch.randperm(len(y), generator=gen)[: cfg.max_train_samples]
        warn_classes_lost(y, y[keep], k, f"dataset.max_train_samples={cfg.max_train_samples}")
        x, y = x[keep], y[keep]
    val_parts, train_parts = [], []
    per_class = _per_class_indices(y, k, gen)
    check_training_left(cfg, [len(idx) for idx in per_class])
    for idx in per_class:
        n_val = int(round(cfg.val_fraction * len(idx)))
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    val_idx, train_idx = torch.cat(val_parts), torch.cat(train_parts)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]

    # asynchronous from page-locked memory on CUDA (prune_cli/data/batches.py to_device)
    return DataSplits(
        train_x=to_device(x[train_idx], device),
        train_y=to_device(y[train_idx], device),
        val_x=to_device(x[val_idx], device),
        val_y=to_device(y[val_idx], device),
        test_x=to_device(raw.test_x, device),
        test_y=to_device(raw.test_y, device),
        num_classes=k,
        augment=bool(cfg.augment) and raw.image,
    )
