"""GReg's magnitude-ratio stop for filter pruning (Wang, Qin, Zhang and Fu, "Neural Pruning via
Growing Regularization", ICLR 2021, as the paper's public implementation runs it; docs/training_time.md,
"GReg-1 and GReg-2").

With whole filters (`method.structure=channel`) the implementation does not only raise the penalty
until it exceeds the ceiling: at every penalty update it also measures, per layer, how far the
growing penalty has separated the filters, the ratio of the kept filters' mean |w| to the chosen
filters' mean |w| (a filter's |w| being the mean absolute value of its weights), smoothed by a
running average (first value the ratio itself, then 0.9 * previous + 0.1 * ratio), and stops
raising once that average reaches `mag_ratio_limit` (1000 in the implementation):

- GReg-1: a layer stops raising at an update when, right after its own average was updated and its
  factor raised, the averages of *all* layers seen so far are at or above the limit (or its factor
  is above the ceiling). The layers are visited in forward order, so a layer visited before the last
  one to cross the limit stops one update later (with one more raise) than the layers after it.
- GReg-2: each layer stops on its own average (or the ceiling), and only from the update of the
  choice on. Before the choice the implementation still runs the average, over the provisional
  choice of the moment: the same number of filters with the smallest |w|. That number is known only
  at the choice here, so the average is kept for every possible number and the one of the choice
  is taken then (the same values, without calling the pruner before its time).

A stopped layer keeps its last factors (and its average); the stabilization starts when the last
layer has stopped. The implementation does not compute the ratio for single weights (too costly,
its comment says), so unstructured GReg stops at the ceiling only. A layer with no chosen filter
(the classifier, whose rows are the classes), or with every filter chosen, has no ratio: the
implementation leaves such layers out of the rule; here their chosen weights (the input columns of
removed filters) keep being pushed until every layer with a ratio has stopped, then they stop too.

The rule is pure bookkeeping over per-filter magnitudes, so `MagnitudeRatioStop` holds no model and
is checkpointed as plain numbers and tensors (`state_dict`)."""

from __future__ import annotations

import math
from typing import Optional

import torch

EMA_KEEP = 0.9  # the implementation's running average: 0.9 * previous + 0.1 * new


def filter_magnitudes(weight: torch.Tensor) -> torch.Tensor:
    """Mean |w| of every filter (output row) of a Linear or Conv weight, in double precision on the CPU."""
    return weight.detach().abs().flatten(1).mean(1).to("cpu", torch.float64)


def ratios_for_every_count(magnitudes: torch.Tensor) -> torch.Tensor:
    """Kept-to-chosen mean-magnitude ratio when the n smallest filters are chosen, for n = 1 .. N-1
    (entry n - 1): the implementation's provisional choice before GReg-2 picks."""
    s = magnitudes.sort().values
    n = torch.arange(1, len(s), dtype=torch.float64)
    low = s.cumsum(0)[:-1]
    high = s.sum() - low
    return (high / (len(s) - n)) / (low / n)


class MagnitudeRatioStop:
    """Per layer: the running average of the kept/chosen filter-magnitude ratio and the penalty update
    (u: iterations u * interval ..) at which the layer stopped raising. `update(u, magnitudes)` is
    called at every update, before the iterations it governs, with the per-filter magnitudes of the
    layers that have not stopped; `choose(chosen_rows)` gives the chosen filters (GReg-1 before the
    first update, GReg-2 at the update of its choice, before that update's `update`)."""

    def __init__(self, names: tuple[str, ...], limit: float, greg2: bool, pick_update: int, last_update: int):
        self.names = names
        self.limit = limit
        self.greg2 = greg2
        self.pick_update = pick_update  # the update at which the weights are chosen (GReg-1: 0)
        self.last_update = last_update  # the update whose factor first exceeds the ceiling
        self.chosen: Optional[dict[str, torch.Tensor]] = None  # per layer: bool per filter, True = chosen
        self.ratio: dict[str, float] = {}  # running averages, in the order the layers were first measured
        self.provisional: dict[str, torch.Tensor] = {}  # GReg-2 before the choice: the average for every count
        self.stop: dict[str, int] = {}  # the update of each stopped layer's last raise
        self.reason: dict[str, str] = {}  # "ratio", "ceiling" or "follows" (a layer without ratio)
        self.ratio_stop: Optional[int] = None  # the first update at which the ratio stopped a layer

    # -- the rule --------------------------------------------------------------------------

    def measured(self) -> tuple[str, ...]:
        """The layers with a ratio: some filters chosen and some kept (all of them before the choice)."""
        if self.chosen is None:
            return self.names
        return tuple(n for n in self.names if 0 < int(self.chosen[n].sum()) < len(self.chosen[n]))

    def choose(self, chosen_rows: dict[str, torch.Tensor]) -> None:
        self.chosen = {n: chosen_rows[n].to("cpu", torch.bool) for n in self.names}

    def update(self, u: int, magnitudes: dict[str, torch.Tensor]) -> None:
        measured = self.measured()
        for name in measured:
            if name in self.stop:
                continue
            m = magnitudes[name]
            if self.chosen is None:  # GReg-2 before its choice: only the running averages move
                self._average_every_count(name, m)
                continue
            if self.greg2 and u == self.pick_update:  # GReg-2's choice: this update on the provisional choice
                self._average_every_count(name, m)
                self.ratio[name] = float(self.provisional.pop(name)[int(self.chosen[name].sum()) - 1])
            else:
                chosen = self.chosen[name]
                r = float(m[~chosen].mean() / m[chosen].mean())
                self.ratio[name] = EMA_KEEP * self.ratio[name] + (1 - EMA_KEEP) * r if name in self.ratio else r
            if self.greg2:
                by_ratio = self.ratio[name] >= self.limit
            else:
                by_ratio = all(v >= self.limit for v in self.ratio.values())
            if by_ratio or u >= self.last_update:
                self._stop(name, u, "ratio" if by_ratio else "ceiling")
        if self.chosen is not None:
            self.provisional.clear()  # layers without a ratio: their provisional averages mean nothing
            others = [n for n in self.names if n not in measured and n not in self.stop]
            if (measured and all(n in self.stop for n in measured)) or u >= self.last_update:
                for name in others:
                    self._stop(name, u, "follows" if u < self.last_update else "ceiling")

    def _average_every_count(self, name: str, magnitudes: torch.Tensor) -> None:
        r = ratios_for_every_count(magnitudes)
        old = self.provisional.get(name)
        self.provisional[name] = r if old is None else EMA_KEEP * old + (1 - EMA_KEEP) * r

    def _stop(self, name: str, u: int, reason: str) -> None:
        self.stop[name] = u
        self.reason[name] = reason
        if reason == "ratio" and self.ratio_stop is None:
            self.ratio_stop = u

    # -- results ---------------------------------------------------------------------------

    def pending(self) -> tuple[str, ...]:
        """The layers whose filter magnitudes the next update needs."""
        return tuple(n for n in self.measured() if n not in self.stop)

    def end_update(self) -> Optional[int]:
        """The update of the last raise of all (the stabilization starts there); None while raising."""
        return max(self.stop.values()) if len(self.stop) == len(self.names) else None

    def smallest_ratio(self) -> float:
        return min(self.ratio.values()) if self.ratio else math.nan

    # -- checkpoint ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {
            "ratio": dict(self.ratio),
            "provisional": {n: v.clone() for n, v in self.provisional.items()},
            "stop": dict(self.stop),
            "reason": dict(self.reason),
            "ratio_stop": -1 if self.ratio_stop is None else self.ratio_stop,
        }
        if self.chosen is not None:
            state["chosen"] = {n: v.clone() for n, v in self.chosen.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.ratio = {n: float(v) for n, v in state["ratio"].items()}
        self.provisional = {n: v.clone() for n, v in state["provisional"].items()}
        self.stop = {n: int(v) for n, v in state["stop"].items()}
        self.reason = dict(state["reason"])
        self.ratio_stop = None if state["ratio_stop"] < 0 else int(state["ratio_stop"])
        self.chosen = {n: v.clone() for n, v in state["chosen"].items()} if "chosen" in state else None
