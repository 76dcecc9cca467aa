"""`data_pruning=forgetting`: keep the most-forgotten examples (Toneva, Sordoni, Combes, Trischler,
Bengio and Gordon, "An Empirical Study of Example Forgetting during Deep Neural Network Learning",
ICLR 2019).

A forgetting event of a training example is a transition from correctly to incorrectly classified
between two successive observations during training. Examples forgotten often (or never learned)
are the informative ones; "unforgettable" examples, learned once and kept, can be removed with
little loss, so the round(keep x N) examples with the most forgetting events are kept.

Observations: the paper records correctness at each presentation of an example in a minibatch.
prune-cli's training loop does not expose the minibatch logits with the examples' indices, so each
proxy is observed after every epoch by classifying the whole (un-augmented) training split once:
one observation per example per epoch, as with the paper's per-presentation count (one presentation
per epoch), but measured with the weights at the end of the epoch rather than at the step that
presented the example. Documented in docs/data_pruning.md.

Conventions from the paper: the first observation is not an event (an example has no earlier
state), and an example never classified correctly in a proxy's run gets the largest possible
count, the number of observations T of that run (more than any learned example can reach:
at most floor(T / 2) events). Counts are averaged over `proxies` independent proxy runs (the
paper sums over runs: the same order). Ties, common since counts are small integers, are broken
by a random permutation from the rule's seeded generator, so the kept subsets for different
`keep` values are nested and no index range is favoured."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ...core.checks import positive_int
from ...core.config_base import config_schema
from . import DataPruningContext, KeepFractionConfig, Selection, class_rows, register_data_pruning


@config_schema("data_pruning", "forgetting")
@dataclass
class ForgettingDataPruningConfig(KeepFractionConfig):
    """Keep the examples with the most forgetting events during proxy training."""

    proxies: int = 1  # independent proxy training runs, counts averaged (the paper uses one run per ordering)
    proxy_epochs: int = 20  # epochs of each proxy = observations per example (the run's train options otherwise)

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        positive_int(cfg, key + ".proxies")
        positive_int(cfg, key + ".proxy_epochs", minimum=2)


def forgetting_counts(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting events per example from a (T, N) boolean matrix of correctness at T successive
    observations: the number of t >= 1 with correct[t-1] and not correct[t]; an example never
    correct gets T (the paper's convention for never-learned examples). Float64, shape (N,)."""
    correct = correct.bool()
    steps = correct.shape[0]
    events = (correct[:-1] & ~correct[1:]).sum(0).double()
    never_learned = ~correct.any(0)
    return torch.where(never_learned, torch.full_like(events, float(steps)), events)


def select_most_forgotten(counts: torch.Tensor, kept: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (sorted) of the `kept` examples with the most forgetting events; ties broken by a
    random permutation drawn from `generator`."""
    tiebreak = torch.randperm(len(counts), generator=generator)
    rank = torch.empty_like(tiebreak)
    rank[tiebreak] = torch.arange(len(counts))
    order = sorted(range(len(counts)), key=lambda i: (-float(counts[i]), int(rank[i])))
    return torch.tensor(order[:kept], dtype=torch.long).sort().values


@register_data_pruning("forgetting")
def forgetting(ctx: DataPruningContext, node: DictConfig) -> Selection:
    x, y = ctx.data.train_x, ctx.data.train_y

    def compute() -> torch.Tensor:
        counts = torch.zeros(len(y), dtype=torch.float64)
        for i in range(node.proxies):
            observed: list[torch.Tensor] = []
            ctx.train_proxy(
                i, node.proxy_epochs, observe=lambda model, epoch: observed.append((ctx.logits(model, x).argmax(1) == y).cpu())
            )
            counts += forgetting_counts(torch.stack(observed))
        return counts / node.proxies

    # the counts do not depend on keep: a sweep over it trains the proxies once
    counts = ctx.cached("forgetting", {"proxies": node.proxies, "proxy_epochs": node.proxy_epochs}, compute)
    kept = select_most_forgotten(counts, ctx.kept_count(node.keep), ctx.generator)
    y_cpu = y.cpu()
    mean_count = [float(counts[y_cpu == c].mean()) if bool((y_cpu == c).any()) else float("nan") for c in range(ctx.data.num_classes)]
    summary = {
        "forgetting_mean": float(counts.mean()),
        "unforgettable_fraction": float((counts == 0).double().mean()),
        "never_learned_fraction": float((counts >= node.proxy_epochs).double().mean()),
    }
    return Selection(kept, class_rows(y_cpu, kept, ctx.data.num_classes, mean_forgetting=mean_count), summary)
