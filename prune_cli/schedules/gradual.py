"""`schedule=gradual`: prune during training on the cubic sparsity curve of Zhu & Gupta, "To prune,
or not to prune" (ICLR workshop 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from ..core.checks import check, finite, fraction, positive_int
from ..core.config_base import ScheduleConfig, config_schema
from ..core.errors import ConfigError
from . import register_schedule
from .steps import Dense, Gradual, Record, Restart, Step


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
        steps = cfg.train.epochs * -(-examples // cfg.train.batch_size)
        return [sparsity for _, sparsity in sorted(gradual_sparsity(cfg.schedule, cfg.sparsity, steps).items())]

    @staticmethod
    def check_training_examples(cfg: DictConfig, examples: int, exact: bool) -> None:
        """The events fit in dense training's optimizer steps, from the number of training examples
        (prune_cli/run/prevalidate.py check_data_sizes: as declared, `exact=False` for an upper bound,
        and once loaded)."""
        check_event_window(cfg.schedule, cfg.train.epochs * -(-examples // cfg.train.batch_size), exact)

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """The curve's options where an explicit event window leaves the curve nothing to shape
        (`gradual_sparsity`): end_step = start_step is one event, straight to `sparsity` (power,
        initial_sparsity and frequency unused); a frequency of at least end_step - start_step gives
        the two events t0 (initial_sparsity) and t_end (sparsity), so power is unused. With end_step
        -1 the window is known only with the data: not judged here."""
        s = OmegaConf.select(cfg, key)
        if not isinstance(s.end_step, int) or s.end_step < 0 or s.end_step < s.start_step:
            return {}
        span = s.end_step - s.start_step
        if span == 0:
            why = f"{key}.end_step = {key}.start_step = {s.start_step}: a single pruning event, straight to sparsity"
            return {f"{key}.{name}": why for name in ("power", "initial_sparsity", "frequency")}
        if s.frequency >= span:
            why = (
                f"{key}.frequency={s.frequency} >= end_step - start_step = {span}: two events, at initial_sparsity and "
                "at sparsity, and no point of the curve between them"
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
