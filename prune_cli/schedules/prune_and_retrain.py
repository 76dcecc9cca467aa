"""`schedule=oneshot | iterative | at_init | lottery_ticket | post_prune_reinit`: dense training, then
rounds of prune -> restart -> retrain. One-shot pruning (Han et al. 2015), iterative magnitude
pruning and lottery tickets with rewinding (Frankle & Carbin, ICLR 2019; Frankle et al., ICML
2020) and pruning at initialisation (SNIP, GraSP, SynFlow) differ only in the schedule's options
(configs/schedule/*.yaml). restart_from=reinit over several rounds is Frankle & Carbin's (ICLR 2019)
random-reinitialisation control: the masks of every level are those of IMP with rewinding, and each
level's recorded model is a fresh random draw trained under that level's mask."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from ..core.config_base import ScheduleConfig

from . import register_schedule
from .steps import Branch, Dense, Prune, Record, Rejoin, Restart, Step, Train, round_density


@register_schedule("oneshot", "iterative", "at_init", "lottery_ticket", "post_prune_reinit")
def prune_and_retrain_plan(cfg: DictConfig) -> list[Step]:
    """dense -> k x (prune [scored on trained or init weights] -> restart -> retrain) with rows
    after every round. The last round's rows are labelled `pruned` and `finetuned`; earlier
    rounds are `round_1`, `round_2`, ...

    restart_from=reinit with rounds > 1 (the random-reinitialisation control, Frankle & Carbin 2019):
    each level prunes the model of the rewinding trajectory (restart from `rewind_epoch`, retrain),
    and records a fresh random draw under that level's mask, trained like it:
    prune -> [restart(reinit) -> retrain -> record] -> restart(rewind) -> retrain (history rows
    `rewind_round_<r>`) -> prune ...; the bracket is a branch that draws no random number the
    trajectory would (`Branch`/`Rejoin`), so the masks are those of the rewinding run with the same seed.
    Before the last level this trains each level twice."""
    schedule = cfg.schedule
    schema = OmegaConf.get_type(schedule)
    schema = schema if isinstance(schema, type) and issubclass(schema, ScheduleConfig) else ScheduleConfig
    lr_from = schedule.rewind_epoch if schema.lr_rewinds(schedule) else 0  # the LR schedule's epoch retraining starts at
    control = schedule.restart_from == "reinit" and schedule.rounds > 1
    plan: list[Step] = [Dense(), Record("dense")]
    for r in range(1, schedule.rounds + 1):
        last = r == schedule.rounds
        recorded = "finetuned" if last else f"round_{r}"
        if schedule.score_weights == "init":
            plan.append(Restart("init"))
        plan.append(Prune(round_density(1.0 - cfg.sparsity, r, schedule.rounds)))
        if last:
            plan.append(Record("pruned"))
        if not control:
            plan += [Restart(schedule.restart_from), Train(schedule.retrain, lr_from), Record(recorded)]
            continue
        # the recorded control: a fresh draw from initialisation, so its LR schedule starts at epoch 0
        branch = [Restart("reinit"), Train(schedule.retrain), Record(recorded)]
        if last:
            plan += branch
        else:
            plan += [Branch(), *branch, Rejoin(), Restart("rewind"), Train(schedule.retrain, lr_from, f"rewind_round_{r}")]
    return plan
