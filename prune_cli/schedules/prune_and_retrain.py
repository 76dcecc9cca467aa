"""`schedule=oneshot | iterative | at_init | lottery_ticket | post_prune_reinit`: dense training, then
rounds of prune -> restart -> retrain. One-shot pruning (Han et al. 2015), iterative magnitude
pruning and lottery tickets with rewinding (Frankle & Carbin, ICLR 2019; Frankle et al., ICML
2020) and pruning at initialisation (SNIP, GraSP, SynFlow) differ only in the schedule's options
(configs/schedule/*.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from . import register_schedule
from .steps import Dense, Prune, Record, Restart, Step, Train, round_density


@register_schedule("oneshot", "iterative", "at_init", "lottery_ticket", "post_prune_reinit")
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
        plan.append(Prune(round_density(1.0 - cfg.sparsity, r, schedule.rounds)))
        if last:
            plan.append(Record("pruned"))
        plan += [Restart(schedule.restart_from), Train(schedule.retrain), Record("finetuned" if last else f"round_{r}")]
    return plan
