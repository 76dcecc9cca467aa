"""Schedules decide WHEN to prune. A schedule turns the config into a plan: a list of steps
(dense, prune, restart, train, gradual, record) that the Experiment executes with a checkpoint
after each one.

Three settings make one-shot pruning, pruning at initialisation, iterative pruning and lottery
tickets with rewinding the same code path: which weights are scored (`score_weights`), which
weights training restarts from (`restart_from`, `rewind_epoch`), and where the LR schedule
resumes (`retrain`, `lr_rewind`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, ClassVar

from omegaconf import DictConfig, OmegaConf

from .core.checks import check, finite, fraction, positive_int
from .core.config_base import ScheduleConfig, config_schema
from .core.registry import Registry

SCHEDULES: Registry[Callable[[DictConfig], list["Step"]]] = Registry("schedule", "schedule.name")


@config_schema("schedule", "gradual")
@dataclass
class GradualScheduleConfig(ScheduleConfig):
    start_step: int = 0  # optimizer step of the first pruning event
    end_step: int = -1  # step of the last event (-1: the last step of training)
    frequency: int = 100  # steps between events
    initial_sparsity: float = 0.0
    power: float = 3.0  # 3 = the cubic curve of Zhu & Gupta (2017)

    @staticmethod
    def single_event(cfg: DictConfig) -> bool:
        return False  # prunes many times during training

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.start_step", minimum=0)
        positive_int(cfg, f"{key}.frequency")
        check(isinstance(s.end_step, int) and (s.end_step == -1 or s.end_step >= s.start_step),
              f"{key}.end_step", s.end_step, "-1 (last step) or a step >= schedule.start_step")
        fraction(cfg, f"{key}.initial_sparsity", 0.0, cfg.sparsity, hi_open=False)
        check(finite(s.power) and s.power > 0, f"{key}.power", s.power, "a positive number (3 = cubic)")


# ----------------------------------------------------------------------------- typed steps
# A schedule's plan is a list of these; the experiment (prune_cli/run/experiment.py) dispatches on
# the type. `kind` names the step in logs; `args` are its fields in order.


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
    """One pruning event to `sparsity` (fraction of the prunable weights removed)."""

    sparsity: float
    kind: ClassVar[str] = "prune"


@dataclass(frozen=True)
class Restart(Step):
    """Set the weights training restarts from: trained | init | rewind | reinit."""

    source: str
    kind: ClassVar[str] = "restart"


@dataclass(frozen=True)
class Train(Step):
    """Train with the `train` or `finetune` config."""

    which: str
    kind: ClassVar[str] = "train"


@dataclass(frozen=True)
class Gradual(Step):
    """Train while raising the sparsity along the gradual curve."""

    kind: ClassVar[str] = "gradual"


@dataclass(frozen=True)
class Record(Step):
    """Evaluate and add the rows of `phase`."""

    phase: str
    kind: ClassVar[str] = "record"


def round_density(final_density: float, round_index: int, rounds: int) -> float:
    """Geometric schedule: every round removes the same fraction of the remaining weights."""
    return final_density ** (round_index / rounds)


def prune_and_retrain_plan(cfg: DictConfig) -> list[Step]:
    """dense -> k x (prune [scored on trained or init weights] -> restart -> retrain) with rows
    after every round. The last round's rows are labelled `pruned` and `finetuned`; earlier
    rounds are `round_1`, `round_2`, ..."""
    schedule = cfg.schedule
    plan: list[Step] = [Dense(), Record("dense")]
    for r in range(1, schedule.rounds + 1):
        last = r == schedule.rounds
        if schedule.score_weights == "init":
            plan.append(Restart("init"))
        plan.append(Prune(1.0 - round_density(1.0 - cfg.sparsity, r, schedule.rounds)))
        if last:
            plan.append(Record("pruned"))
        plan += [Restart(schedule.restart_from), Train(schedule.retrain),
                 Record("finetuned" if last else f"round_{r}")]
    return plan


for _name in ("oneshot", "iterative", "at_init", "lottery_ticket", "post_prune_reinit"):
    SCHEDULES.register(_name)(prune_and_retrain_plan)


@SCHEDULES.register("gradual")
def gradual_plan(cfg: DictConfig) -> list[Step]:
    """dense (the baseline) -> restart -> training with pruning events -> final rows."""
    return [Dense(), Record("dense"), Restart(cfg.schedule.restart_from), Gradual(), Record("finetuned")]


def gradual_sparsity(schedule: DictConfig, final: float, total_steps: int) -> dict[int, float]:
    """Pruning events {optimizer step: sparsity} of Zhu & Gupta (2017):
    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))^power at t = t0, t0 + f, ..., t_end
    (power 3 is their cubic curve). `end_step` -1 means the last step of training."""
    from .core.errors import ConfigError

    t0, f = schedule.start_step, schedule.frequency
    t_end = total_steps - 1 if schedule.end_step < 0 else schedule.end_step
    if not 0 <= t0 <= t_end < total_steps:
        raise ConfigError("schedule.end_step", schedule.end_step,
                          f"a step in [schedule.start_step={t0}, {total_steps - 1}] (training has "
                          f"{total_steps} optimizer steps), or -1 for the last step")
    s_i = schedule.initial_sparsity
    events = list(range(t0, t_end + 1, f))
    if events[-1] != t_end:
        events.append(t_end)
    span = max(t_end - t0, 1)
    return {t: final + (s_i - final) * (1 - (t - t0) / span) ** schedule.power for t in events}
