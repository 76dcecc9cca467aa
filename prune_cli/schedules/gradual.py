"""`schedule=gradual`: prune during training on the cubic sparsity curve of Zhu & Gupta, "To prune,
or not to prune" (ICLR workshop 2018)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..core.checks import check, finite, fraction, positive_int
from ..core.config_base import ScheduleConfig, config_schema
from ..core.errors import ConfigError
from . import register_schedule
from .steps import Dense, Gradual, Record, Restart, Step

log = logging.getLogger(__name__)


@config_schema("schedule", "gradual")
@dataclass
class GradualScheduleConfig(ScheduleConfig):
    start_step: int = 0  # optimizer step of the first pruning event
    end_step: int = -1  # step of the last event (-1: the last step of training)
    frequency: int = 100  # steps between events
    initial_sparsity: float = 0.0
    power: float = 3.0  # 3 = the cubic curve of Zhu & Gupta (2017)

    reads = ("restart_from", "rewind_epoch")  # one training run with pruning events: no rounds, no retraining

    @staticmethod
    def single_event(cfg: DictConfig) -> bool:
        return False  # prunes many times during training

    @staticmethod
    def event_sparsities(cfg: DictConfig, examples: int) -> list[float]:
        """The target sparsity of each pruning event, in order, for `examples` training examples (the
        pre-run pass checks a structure can reach each: prune_cli/run/prevalidate.py check_event_reach)."""
        return [sparsity for _, sparsity in sorted(curve(cfg.schedule, cfg.sparsity, training_steps(cfg, examples)).items())]

    @staticmethod
    def check_training_examples(cfg: DictConfig, examples: int, exact: bool) -> None:
        """The events fit in dense training's optimizer steps, from the number of training examples
        (prune_cli/run/prevalidate.py check_data_sizes: as declared, `exact=False` for an upper bound,
        and once loaded)."""
        check_event_window(cfg.schedule, training_steps(cfg, examples), exact)

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """The curve's options where the event window leaves the curve nothing to shape
        (`gradual_sparsity`): end_step = start_step is one event, straight to `sparsity` (power,
        initial_sparsity and frequency unused); a frequency of at least end_step - start_step gives
        the two events t0 (initial_sparsity) and t_end (sparsity), so power is unused. With end_step
        -1 the window ends at training's last optimizer step, judged where the dataset declares its
        training examples exactly (`declared_training_steps`); otherwise it is known only with the data,
        and a window that collapses is a warning in the run's log (`gradual_sparsity`)."""
        s = OmegaConf.select(cfg, key)
        if not isinstance(s.end_step, int) or (s.end_step >= 0 and s.end_step < s.start_step):
            return {}
        if s.end_step >= 0:
            t_end, where = s.end_step, f"{key}.end_step"
        else:
            steps = declared_training_steps(cfg)
            if steps is None or not 0 <= s.start_step < steps:  # unknown, or a window check_event_window refuses
                return {}
            t_end, where = steps - 1, f"{key}.end_step=-1 (the last of training's {steps} optimizer steps, step {steps - 1})"
        span = t_end - s.start_step
        if span == 0:
            why = f"{where} = {key}.start_step = {s.start_step}: a single pruning event, straight to sparsity"
            return {f"{key}.{name}": why for name in ("power", "initial_sparsity", "frequency")}
        if s.frequency >= span:
            why = (
                f"{key}.frequency={s.frequency} >= end_step - start_step = {span} with {where}: two events, at initial_sparsity "
                "and at sparsity, and no point of the curve between them"
            )
            return {f"{key}.power": why}
        return {}

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.start_step", minimum=0)
        positive_int(cfg, f"{key}.frequency")
        check(
            isinstance(s.end_step, int) and (s.end_step == -1 or s.end_step >= s.start_step),
            f"{key}.end_step",
            s.end_step,
            "-1 (last step) or a step >= schedule.start_step",
        )
        fraction(cfg, f"{key}.initial_sparsity", 0.0, cfg.sparsity, hi_open=False)
        check(finite(s.power) and s.power > 0, f"{key}.power", s.power, "a positive number (3 = cubic)")


def declared_training_steps(cfg: DictConfig) -> int | None:
    """Dense training's optimizer steps, train.epochs x ceil(training examples / train.batch_size), where
    the dataset declares its training examples exactly (the pre-run pass's count, prune_cli/run/prevalidate.py
    check_data_sizes: its split, then the examples data pruning keeps); None where they are known only once
    the data is loaded (a random subset, a dataset that declares only its total)."""
    from ..core.config_base import declared_train_examples
    from ..data.pruning import kept_examples
    from ..data.splits import planned_train_size

    spec = declared_train_examples(cfg.dataset)
    if spec is None:
        return None
    try:
        examples, exact = planned_train_size(cfg.dataset, *spec)
    except ConfigError:  # a split that leaves a class nothing: the pre-run pass refuses it
        return None
    if not exact:
        return None
    if cfg.data_pruning.name != "none":
        examples = kept_examples(cfg.data_pruning.keep, examples)
    return training_steps(cfg, examples)


def training_steps(cfg: DictConfig, examples: int) -> int:
    """Dense training's optimizer steps for `examples` training examples: train.epochs x
    ceil(examples / train.batch_size) (the last batch of an epoch may be smaller; none is dropped)."""
    return cfg.train.epochs * -(-examples // cfg.train.batch_size)


def check_event_window(schedule: DictConfig, total_steps: int, exact: bool = True) -> int:
    """The last event's step; a window outside training is a ConfigError. With `exact=False`,
    `total_steps` is an upper bound (the pre-run pass, before the data is loaded): what fails for
    the bound fails for the real count too."""
    t0 = schedule.start_step
    t_end = total_steps - 1 if schedule.end_step < 0 else schedule.end_step
    has = f"{total_steps}" if exact else f"at most {total_steps}"
    if total_steps < 1:  # epochs * batches: no epoch
        raise ConfigError("train.epochs", 0, "at least 1 with schedule=gradual (its pruning events are optimizer steps of training)")
    if not 0 <= t0 < total_steps:  # the start is the key that puts the window outside training
        raise ConfigError("schedule.start_step", t0, f"a step in [0, {total_steps - 1}] (training has {has} optimizer steps)")
    if not t0 <= t_end < total_steps:
        raise ConfigError(
            "schedule.end_step",
            schedule.end_step,
            f"a step in [schedule.start_step={t0}, {total_steps - 1}] (training has {has} optimizer steps), or -1 for the last step",
        )
    return t_end


@register_schedule("gradual")
def gradual_plan(cfg: DictConfig) -> list[Step]:
    """dense (the baseline) -> restart -> training with pruning events -> final rows."""
    return [Dense(), Record("dense"), Restart(cfg.schedule.restart_from), Gradual(), Record("finetuned")]


def gradual_sparsity(schedule: DictConfig, final: float, total_steps: int) -> dict[int, float]:
    """The run's pruning events (`curve`), with a warning in its log where the default window
    (`end_step` -1: training's last step) leaves the curve nothing to shape: training is too short
    for more than the events at start_step and at its last step, so `power` changes nothing (an override
    of it, or of a window that collapses, is refused before the run where the dataset declares its size:
    `GradualScheduleConfig.unused`)."""
    events = curve(schedule, final, total_steps)
    if schedule.end_step < 0 and len(events) <= 2:
        t0, t_end = min(events), max(events)
        head = (
            f"schedule=gradual: training has {total_steps} optimizer steps, so the window from schedule.start_step={t0} "
            f"to the last step ({t_end}, schedule.end_step=-1)"
        )
        # the window cannot reach past the last step and frequency is >= 1: where the window is one or two steps
        # wide only an earlier start_step gives more events
        earlier = f"lower schedule.start_step (below {t0}{', the last step' if t0 == t_end else ''}) for more events"
        if t0 == t_end:
            log.warning(
                "%s gives a single pruning event, straight to sparsity, so schedule.power=%s, schedule.initial_sparsity=%s "
                "and schedule.frequency=%d change nothing; %s",
                head,
                schedule.power,
                schedule.initial_sparsity,
                schedule.frequency,
                earlier,
            )
        else:
            log.warning(
                "%s with schedule.frequency=%d gives only two pruning events (initial_sparsity, sparsity), and "
                "schedule.power=%s changes nothing; %s",
                head,
                schedule.frequency,
                schedule.power,
                f"lower schedule.frequency (below {t_end - t0})" if t_end - t0 > 1 else earlier,
            )
    return events


def curve(schedule: DictConfig, final: float, total_steps: int) -> dict[int, float]:
    """Pruning events {optimizer step: sparsity} of Zhu & Gupta (2017):
    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))^power at t = t0, t0 + f, ..., t_end
    (power 3 is their cubic curve). `end_step` -1 means the last step of training."""
    t0, f = schedule.start_step, schedule.frequency
    t_end = check_event_window(schedule, total_steps)
    s_i = schedule.initial_sparsity
    events = list(range(t0, t_end + 1, f))
    if events[-1] != t_end:
        events.append(t_end)
    if t_end == t0:  # one event, at t_end: the curve's end, s_f
        return {t0: final}
    return {t: final + (s_i - final) * (1 - (t - t0) / (t_end - t0)) ** schedule.power for t in events}
