"""Data pruning: keep a fraction of the training split, chosen by a rule (docs/data_pruning.md).

An axis orthogonal to weight pruning: `data_pruning=<rule>` (configs/data_pruning/) selects the
training examples after the splits are built and before dense training, so the dense model, the
pruned model and the fine-tuned model all see the same reduced training set (validation and test
splits are untouched). Each rule is one plugin module here with its config dataclass
(`@config_schema("data_pruning", name)`) and its selection function
(`@register_data_pruning(name)`), found by discovery (prune_cli/core/plugins.py).

Rules that need a model (EL2N's proxies, DRoP's query model) receive a `train_proxy` callable from
the run layer, so this package stays below training in the layer order.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from torch import nn

from ...core.checks import check, finite
from ...core.registry import Registry
from ..splits import DataSplits

DATA_PRUNING: Registry = Registry("data_pruning", "data_pruning.name")


def register_data_pruning(name: str) -> Callable:
    return DATA_PRUNING.register(name)


@dataclass
class DataPruningConfig:
    """`data_pruning.*` of every rule: its name and the fraction kept. `none` keeps the whole
    training split (keep = 1) and is left out of the run id and the dense-cache key
    (prune_cli/core/identity.py). `keep` is declared here, for every rule, so that a sweep
    `-m data_pruning=random,el2n data_pruning.keep=0.3` composes (Hydra applies the override to the
    default option too). `name` is unset here, as in the other groups' base schemas: each rule's YAML
    sets it, and a rule from outside the repository without YAML gets its option's name
    (docs/architecture.md); a default "none" here was inherited by such a rule, which was then taken
    for `none`."""

    name: str = MISSING
    keep: float = 1.0

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = OmegaConf.select(cfg, key)
        if node.name == "none":
            check(
                node.keep == 1,
                key + ".keep",
                node.keep,
                "1 with data_pruning=none (choose a rule, e.g. data_pruning=random, to keep a fraction; "
                "a sweep of the none baseline and a rule at another keep: run the none baseline as a command of its own, "
                "since its config would carry a keep it does not apply)",
            )


@dataclass
class KeepFractionConfig(DataPruningConfig):
    """A rule that keeps round(keep x N) of the N training examples (at least one)."""

    keep: float = 0.5  # fraction of the training split kept, in (0, 1]

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        keep = OmegaConf.select(cfg, key + ".keep")
        check(finite(keep) and 0 < keep <= 1, key + ".keep", keep, "a number in (0, 1]: the fraction of training examples kept")

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """keep=1 keeps every example whatever the rule (kept_count is N): the rule and its options
        (proxies, query epochs, ...) would be computed for nothing."""
        node = OmegaConf.select(cfg, key)
        if node.keep == 1:
            return {key: f"{key}.keep=1 keeps every training example, so {key}={node.name} selects nothing (that is {key}=none)"}
        return {}

    @staticmethod
    def check_training_split(cfg: DictConfig, examples: int, exact: bool) -> None:
        """Given the training split's size N (prune_cli/run/prevalidate.py `check_data_sizes`): a keep
        that rounds to all N examples selects nothing, like keep=1 (refused only for an exact N; keep=1
        itself is `unused`'s: an unused override in a run, a note for the jobs of a sweep)."""
        keep = cfg.data_pruning.keep
        if exact and examples > 1 and keep < 1:
            check(
                kept_examples(keep, examples) < examples,
                "data_pruning.keep",
                keep,
                f"a fraction that leaves out at least one example: round(keep x {examples}) keeps all {examples} training "
                f"examples, so data_pruning={cfg.data_pruning.name} would select nothing; "
                f"keep <= {largest_keep_leaving_one_out(examples):.6f} leaves one out",
            )


def train_config_epochs(cfg: DictConfig) -> int | None:
    """The epochs of the longest training the run's rule does with the train config (its proxy or
    query models: `train_proxy`), 0 for a rule that trains none, as the rule's schema declares it
    (`train_config_epochs(node)`). What the train options can act on besides dense training
    (prune_cli/run/unused_options.py, `TrainConfig.unused`). None: unknown, a rule (a plugin's) that
    does not declare it may train proxies for any number of epochs, so nothing is judged unused."""
    if cfg.data_pruning.name == "none":
        return 0
    schema = OmegaConf.get_type(cfg.data_pruning)
    epochs = getattr(schema, "train_config_epochs", None)
    return int(epochs(cfg.data_pruning)) if callable(epochs) else None


def kept_examples(keep: float, examples: int) -> int:
    """How many of `examples` training examples a rule keeps: round(keep x N), at least one. The
    pre-run checks that depend on the training set's size (prune_cli/run/prevalidate.py) count these."""
    return max(1, round(keep * examples))


def largest_keep_leaving_one_out(examples: int) -> float:
    """The largest keep of 6 decimals with kept_examples(keep, N) < N, the bound a refusal quotes: about
    (N - 0.5)/N, found by trying the values near it, since round() halves to even and (N-1)/N, which the
    message quoted, is far below it (keep=0.996 of N=162 keeps 161 and passes; (N-1)/N = 0.993827)."""
    k = math.floor((examples - 0.5) / examples * 1e6) + 2
    while k > 1 and kept_examples(k / 1e6, examples) >= examples:
        k -= 1
    return k / 1e6


def smallest_offset_skipping_one(examples: int) -> float:
    """The smallest offset of 6 decimals with round(offset x N) > 0 (about 0.5/N, not 1/N): the bound
    an offset that skips no example is refused with."""
    k = max(1, math.floor(0.5 / examples * 1e6) - 2)
    while round(k / 1e6 * examples) == 0:
        k += 1
    return k / 1e6


@dataclass(frozen=True)
class DataPruningContext:
    """What a rule may read: the full splits, the number to keep, a seeded generator for random
    choices and, for rules that score examples with a model, `train_proxy(index, epochs,
    observe=None)`: a model of the run's architecture trained on the full training split from its
    own seed (the run layer builds it with the run's training options). `observe(model, epoch)`,
    when given, is called after every training epoch (epoch = 1, 2, ...) with the model being
    trained, which it may evaluate (its training mode is restored afterwards);
    `observe_batch(indices, logits, y)`, when given, at every optimizer step with the batch's
    indices into the training split and the training forward's logits for it, before the update
    (detached; no second forward pass): forgetting scores follow each example's classification
    through training, per presentation (Toneva et al., ICLR 2019) or per epoch."""

    data: DataSplits
    generator: torch.Generator
    train_proxy: Callable[..., nn.Module]
    eval_batch_size: int = 1024
    # cached(name, key, compute, trains=True, shape=None): compute() once per (run's data/model/train/seed,
    # name, key) when the run layer has a cache (the dense cache's folder), else every time; trains=False:
    # the proxies train nothing, so the train options are not part of the key; shape: the tensor's shape
    # the rule expects (a stored tensor of another shape is computed again)
    cached: Callable[..., torch.Tensor] = lambda name, key, compute, trains=True, shape=None: compute()

    def kept_count(self, keep: float) -> int:
        return kept_examples(keep, len(self.data.train_y))

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([model(x[s : s + self.eval_batch_size]) for s in range(0, len(x), self.eval_batch_size)])


@dataclass
class Selection:
    """The kept training indices (sorted) and one row per class for data_pruning.csv."""

    indices: torch.Tensor
    per_class: list[dict]
    summary: dict = dataclasses.field(default_factory=dict)  # extra scalars for the log


def _exact(weight) -> Fraction:
    """A weight as an exact fraction: Fractions and Python ints as they are, anything else (floats,
    numpy or torch scalars) through float."""
    return weight if isinstance(weight, Fraction) else Fraction(weight) if type(weight) is int else Fraction(float(weight))


def water_fill(sizes: list[int], weights: list, total: int) -> list[int]:
    """Integer per-class quotas: proportional to `weights`, never above a class's size, summing to
    `total` (<= sum of sizes). A class whose proportional share exceeds its size keeps all of its
    examples and the surplus is shared among the others in proportion to their weights, repeated
    until no class overflows; fractional shares are rounded by largest remainder (ties: lower class
    index). Classes of weight 0 get examples only when the others are all full (then equally). The
    shares are exact fractions of the weights as given (floats, ints or Fractions): float rounding of
    remaining * w / norm broke exact ties against the rule."""
    sizes = [int(s) for s in sizes]
    total = min(int(total), sum(sizes))
    quota = [0] * len(sizes)
    for tier in ([k for k, w in enumerate(weights) if w > 0], [k for k, w in enumerate(weights) if w <= 0]):
        active = [k for k in tier if sizes[k] > 0]
        w = {k: (_exact(weights[k]) if weights[k] > 0 else Fraction(1)) for k in active}
        remaining = total - sum(quota)
        while active and remaining > 0:
            norm = sum(w[k] for k in active)
            full = [k for k in active if remaining * w[k] / norm >= sizes[k]]
            if not full:
                share = {k: remaining * w[k] / norm for k in active}
                base = {k: math.floor(share[k]) for k in active}
                left = remaining - sum(base.values())
                order = sorted(active, key=lambda k: (-(share[k] - base[k]), k))
                for k in active:
                    quota[k] = base[k]
                for k in order[:left]:
                    quota[k] += 1
                remaining = 0
                break
            for k in full:
                quota[k] = sizes[k]
            active = [k for k in active if k not in full]
            remaining = total - sum(quota)
    return quota


def random_within_classes(y: torch.Tensor, quotas: list[int], gen: torch.Generator) -> torch.Tensor:
    """quotas[c] examples of class c drawn uniformly without replacement; sorted indices."""
    picked = []
    for c, q in enumerate(quotas):
        idx = (y == c).nonzero(as_tuple=True)[0]
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:q]])
    return torch.cat(picked).sort().values if picked else y.new_zeros(0, dtype=torch.long)


def class_rows(y: torch.Tensor, kept: torch.Tensor, num_classes: int, **columns: list) -> list[dict]:
    """One row per class: available and kept examples (and any per-class column given)."""
    available = torch.bincount(y, minlength=num_classes).tolist()
    counts = torch.bincount(y[kept], minlength=num_classes).tolist()
    rows = []
    for c in range(num_classes):
        row = {"class": c, "available": available[c], "kept": counts[c]}
        row.update({name: values[c] for name, values in columns.items()})
        rows.append(row)
    return rows


@dataclass
class ScoreOffsetConfig(KeepFractionConfig):
    """`offset` of the rules that keep the highest scores (EL2N, GraNd; Paul, Ganguli and Dziugaite,
    NeurIPS 2021): skip that fraction of the very highest first, the paper's remedy at aggressive
    pruning, where the hardest examples are often mislabelled or ambiguous."""

    offset: float = 0.0  # fraction of the training split, highest scores first, skipped before keeping

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = OmegaConf.select(cfg, key)
        check(
            finite(node.offset) and 0 <= node.offset and node.offset + node.keep <= 1,
            key + ".offset",
            node.offset,
            f"a number >= 0 with offset + keep <= 1 (keep = {node.keep})",
        )

    @staticmethod
    def check_training_split(cfg: DictConfig, examples: int, exact: bool) -> None:
        """KeepFractionConfig's check, and an offset above 0 that rounds to no skipped example (the
        selection is offset=0's under another run id)."""
        KeepFractionConfig.check_training_split(cfg, examples, exact)
        offset = cfg.data_pruning.offset
        if exact and offset > 0:
            check(
                round(offset * examples) > 0,
                "data_pruning.offset",
                offset,
                f"0, or a fraction that skips at least one example: round(offset x {examples}) skips no example of the "
                f"{examples} in the training split; offset >= {smallest_offset_skipping_one(examples):.6f} skips one",
            )


def top_indices(scores: torch.Tensor, kept: int, skip: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted indices of the examples ranked skip+1 .. skip+kept by score, highest first. Ties: lower
    index first, or, with `generator`, in the order of a random permutation drawn from it (scores
    that are small integers, like forgetting counts, tie often: no index range is favoured, and the
    subsets for different `kept` are nested)."""
    scores = scores.detach().cpu()
    perm = torch.randperm(len(scores), generator=generator) if generator is not None else torch.arange(len(scores))
    order = perm[torch.sort(-scores[perm], stable=True).indices]
    return order[skip : skip + kept].sort().values


def class_means(values: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[float]:
    """Per class, the mean of `values` over its examples (NaN for a class without examples)."""
    y = y.cpu()
    sums = torch.bincount(y, weights=values.detach().cpu().double(), minlength=num_classes)
    return (sums / torch.bincount(y, minlength=num_classes)).tolist()


def keep_highest(ctx: "DataPruningContext", node: DictConfig, scores: torch.Tensor, name: str) -> Selection:
    """The selection of EL2N and GraNd: sort by score, highest first (ties: lower index first), skip
    the `node.offset` fraction of the highest, keep the next round(keep x N); per class, the mean
    score as column `mean_<name>`, and `<name>_mean` overall. When offset + keep = 1 and both round
    up, the skip gives way by one example so that round(keep x N) are still kept."""
    y = ctx.data.train_y.cpu()
    kept_n = ctx.kept_count(node.keep)
    kept = top_indices(scores, kept_n, skip=min(round(node.offset * len(y)), len(y) - kept_n))
    rows = class_rows(y, kept, ctx.data.num_classes, **{f"mean_{name}": class_means(scores, y, ctx.data.num_classes)})
    return Selection(kept, rows, {f"{name}_mean": float(scores.mean())})


def apply_selection(data: DataSplits, indices: torch.Tensor) -> DataSplits:
    """The splits with the training split reduced to `indices` (validation and test unchanged)."""
    idx = indices.to(data.train_x.device)
    return dataclasses.replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx])


__all__ = [
    "DATA_PRUNING",
    "DataPruningConfig",
    "DataPruningContext",
    "KeepFractionConfig",
    "ScoreOffsetConfig",
    "Selection",
    "apply_selection",
    "class_means",
    "class_rows",
    "keep_highest",
    "random_within_classes",
    "train_config_epochs",
    "register_data_pruning",
    "top_indices",
    "water_fill",
]
