"""The typed steps of a schedule's plan; the experiment (prune_cli/run/experiment.py) dispatches on
the type. `kind` names the step in logs; `args` are its fields in order."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class Step:
    kind: ClassVar[str] = ""

    @property
    def args(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Dense(Step):
    """The trained dense model (from the dense cache or trained)."""

    kind: ClassVar[str] = "dense"


@dataclass(frozen=True)
class Prune(Step):
    """One pruning event to `density`, the fraction of the prunable weights kept (the internal unit;
    `sparsity` = 1 - density exists only at the user-facing edge)."""

    density: float
    kind: ClassVar[str] = "prune"


@dataclass(frozen=True)
class Restart(Step):
    """Set the weights training restarts from: trained | init | rewind | reinit."""

    source: str
    kind: ClassVar[str] = "restart"


@dataclass(frozen=True)
class Train(Step):
    """Train with the `train` or `finetune` config, epochs start_epoch+1..epochs at the LR schedule's
    rates for those epochs (start_epoch > 0: weight or learning-rate rewinding, Renda et al. 2020). Its
    history rows are labelled `phase`, or when empty the phase the plan records next."""

    which: str
    start_epoch: int = 0
    phase: str = ""
    kind: ClassVar[str] = "train"


@dataclass(frozen=True)
class Branch(Step):
    """Set the random streams aside (the run's generator and the global ones) for a side branch of the
    plan, given back by the next `Rejoin`: the steps after the branch draw what they would without it
    (the re-initialised control of a lottery-ticket level, whose masks must be the rewinding run's)."""

    kind: ClassVar[str] = "branch"


@dataclass(frozen=True)
class Rejoin(Step):
    """Give back the random streams the last `Branch` set aside."""

    kind: ClassVar[str] = "rejoin"


@dataclass(frozen=True)
class Gradual(Step):
    """Train while raising the sparsity along the gradual curve."""

    kind: ClassVar[str] = "gradual"


@dataclass(frozen=True)
class TrainWithHook(Step):
    """Train with the `which` config (train | finetune) while the training-time method `hook` (a
    plugin of prune_cli/pruning/train_time/, docs/training_time.md) shapes the weights; its history
    rows are labelled `phase`. `epochs` -1 runs as many epochs as the hook's `steps_needed()`;
    `constant_lr` holds the config's LR fixed (GReg's regularization phase). The masks the hook
    leaves become the run's masks."""

    hook: str
    which: str
    phase: str
    epochs: int = -1
    constant_lr: bool = False
    kind: ClassVar[str] = "train_with_hook"


@dataclass(frozen=True)
class Record(Step):
    """Evaluate and add the rows of `phase`."""

    phase: str
    kind: ClassVar[str] = "record"


def round_density(final_density: float, round_index: int, rounds: int) -> float:
    """Geometric schedule: every round removes the same fraction of the remaining weights."""
    return final_density ** (round_index / rounds)
