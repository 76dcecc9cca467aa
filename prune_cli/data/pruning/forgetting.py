"""`data_pruning=forgetting`: keep the most-forgotten examples (Toneva, Sordoni, Combes, Trischler,
Bengio and Gordon, "An Empirical Study of Example Forgetting during Deep Neural Network Learning",
ICLR 2019).

A forgetting event of a training example is a transition from correctly to incorrectly classified
between two successive observations of it during training. Examples forgotten often (or never
learned) are the informative ones; "unforgettable" examples, learned once and kept, can be removed
with little loss, so the round(keep x N) examples with the most forgetting events are kept.

Observations (`observe`):

- `presentation` (default, the paper's): an example is observed each time it is presented in a
  minibatch, from the logits of the training forward pass that trains on it, before that step's
  update (the run layer's proxy training hands them over with the batch's indices: no second
  forward pass). With data augmentation the observed input is the augmented one the step trains on.
- `epoch`: after every epoch the proxy classifies the whole un-augmented training split once, with
  the end-of-epoch weights. One observation per example per epoch as well, but of the network at
  fixed points rather than while it moves within the epoch, independent of augmentation and of the
  batch order; it costs one extra forward pass over the split per epoch. Offered as an ablation
  of the observation protocol (and to reproduce selections made before `presentation` existed).

Conventions from the paper: the first observation is not an event (an example has no earlier
state), and an example never classified correctly in a proxy's run gets the largest possible
count, its number of observations T in that run (more than any learned example can reach:
at most floor(T / 2) events). Counts are averaged over `proxies` independent proxy runs (the
paper sums over runs: the same order). Ties, common since counts are small integers, are broken
by a random permutation from the rule's seeded generator, so the kept subsets for different
`keep` values are nested and no index range is favoured."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import choice, positive_int
from ...core.config_base import config_schema
from . import DataPruningContext, KeepFractionConfig, Selection, class_means, class_rows, register_data_pruning, top_indices

OBSERVATIONS = ("presentation", "epoch")


@config_schema("data_pruning", "forgetting")
@dataclass
class ForgettingDataPruningConfig(KeepFractionConfig):
    """Keep the examples with the most forgetting events during proxy training."""

    proxies: int = 1  # independent proxy training runs, counts averaged (the paper uses one run per ordering)
    proxy_epochs: int = 20  # epochs of each proxy = observations per example (the run's train options otherwise)
    observe: str = "presentation"  # presentation: each minibatch presentation (the paper) | epoch: whole split after each epoch

    @staticmethod
    def train_config_epochs(node: DictConfig) -> int:
        """Each proxy trains `proxy_epochs` epochs with the train config."""
        return node.proxy_epochs

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, key + ".proxies")
        positive_int(cfg, key + ".proxy_epochs", minimum=2)
        choice(cfg, key + ".observe", set(OBSERVATIONS))


class ForgettingCounter:
    """Forgetting events of N examples, updated one observation at a time: `update(indices,
    correct)` records the correctness of the examples `indices` at their next observation (each
    index at most once per call). `counts()`: events per example, and for an example never correct
    its number of observations (the paper's convention for never-learned examples)."""

    def __init__(self, n: int):
        self.last = torch.zeros(n, dtype=torch.bool)  # correct at the previous observation
        self.events = torch.zeros(n, dtype=torch.long)
        self.learned = torch.zeros(n, dtype=torch.bool)
        self.observations = torch.zeros(n, dtype=torch.long)

    def update(self, indices: torch.Tensor, correct: torch.Tensor) -> None:
        indices, correct = indices.cpu(), correct.cpu().bool()
        # the first observation of an example cannot be an event: `last` is still False there
        self.events[indices] += (self.last[indices] & ~correct).long()
        self.last[indices] = correct
        self.learned[indices] |= correct
        self.observations[indices] += 1

    def counts(self) -> torch.Tensor:
        return torch.where(self.learned, self.events, self.observations).double()


def forgetting_counts(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting events per example from a (T, N) boolean matrix of correctness at T successive
    observations: the number of t >= 1 with correct[t-1] and not correct[t]; an example never
    correct gets T (the paper's convention for never-learned examples). Float64, shape (N,)."""
    counter = ForgettingCounter(correct.shape[1])
    everyone = torch.arange(correct.shape[1])
    for row in correct:
        counter.update(everyone, row)
    return counter.counts()


def select_most_forgotten(counts: torch.Tensor, kept: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (sorted) of the `kept` examples with the most forgetting events; ties broken by a
    random permutation drawn from `generator`."""
    return top_indices(counts, kept, generator=generator)


def proxy_counts(ctx: DataPruningContext, index: int, epochs: int, observe: str) -> torch.Tensor:
    """Forgetting counts of every training example during proxy `index`'s `epochs` epochs."""
    x, y = ctx.data.train_x, ctx.data.train_y
    counter = ForgettingCounter(len(y))
    if observe == "presentation":

        def observe_batch(indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
            counter.update(indices, logits.argmax(1) == targets)

        ctx.train_proxy(index, epochs, observe_batch=observe_batch)
    else:
        everyone = torch.arange(len(y))
        ctx.train_proxy(index, epochs, observe=lambda model, epoch: counter.update(everyone, ctx.logits(model, x).argmax(1) == y))
    if not bool((counter.observations == epochs).all()):
        seen = sorted(set(counter.observations.tolist()))
        raise RuntimeError(f"forgetting: each example must be observed once per epoch ({epochs}); observed {seen} times")
    return counter.counts()


@register_data_pruning("forgetting")
def forgetting(ctx: DataPruningContext, node: DictConfig) -> Selection:
    y = ctx.data.train_y.cpu()

    def compute() -> torch.Tensor:
        total = sum(proxy_counts(ctx, i, node.proxy_epochs, node.observe) for i in range(node.proxies))
        return total / node.proxies

    # the counts do not depend on keep: a sweep over it trains the proxies once
    key = {"proxies": node.proxies, "proxy_epochs": node.proxy_epochs, "observe": node.observe}
    counts = ctx.cached("forgetting", key, compute, shape=(len(ctx.data.train_y),))
    kept = select_most_forgotten(counts, ctx.kept_count(node.keep), ctx.generator)
    summary = {
        "forgetting_mean": float(counts.mean()),
        "unforgettable_fraction": float((counts == 0).double().mean()),
        "never_learned_fraction": float((counts >= node.proxy_epochs).double().mean()),
    }
    mean_count = class_means(counts, y, ctx.data.num_classes)
    return Selection(kept, class_rows(y, kept, ctx.data.num_classes, mean_forgetting=mean_count), summary)
