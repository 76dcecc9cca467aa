"""Schedules decide WHEN to prune; a schedule drives an Experiment through its phases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .registry import Registry

if TYPE_CHECKING:
    from .experiment import Experiment

SCHEDULES: Registry[Callable[["Experiment"], None]] = Registry("schedule", "schedule.name")


@SCHEDULES.register("oneshot")
def oneshot(exp: "Experiment") -> None:
    """Train dense -> prune once to the target sparsity -> fine-tune with the mask fixed."""
    exp.train("dense", exp.cfg.train)
    exp.record("dense")
    exp.prune(exp.cfg.sparsity)
    exp.record("pruned")
    exp.train("finetuned", exp.cfg.finetune)
    exp.record("finetuned")
