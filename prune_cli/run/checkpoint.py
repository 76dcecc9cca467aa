"""The run's checkpoint, `state.pt` in the run directory: written after every step of the plan
and every training epoch, read back when a killed run is started again (docs/robustness.md).

The format is unchanged by the move out of experiment.py, so runs stopped by an older version
resume: tensors (model, masks, generator and torch RNG states, init/dense/rewind weights, and the
optimizer, generator and training-time hook state of a half-finished training step) plus one JSON string with the rows,
history and counters. Newer checkpoints also hold the other global random streams (numpy, Python,
CUDA; prune_cli/core/random_streams.py) under "global_rng"; a checkpoint without them still loads.
A checkpoint written inside a branch of the plan (prune_cli/schedules/steps.py `Branch`) also holds the
random streams set aside for its `Rejoin` under "branch_streams".
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Optional

import torch

from ..core import crashpoints, random_streams
from ..core.atomic_io import atomic_torch_save
from ..core.errors import AnotherRunsDirectory, unreadable_reason
from ..training import TrainProgress

if TYPE_CHECKING:
    from .experiment import Experiment

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def misfit(model: torch.nn.Module, state: dict, where: str) -> Optional[str]:
    """Why `state` (weights saved in `where`: "the entry", "the checkpoint") cannot be loaded into `model`
    (its names or shapes differ: a model of another architecture, or of code that built it otherwise),
    or None when it fits. At most three differences are named."""
    own = model.state_dict()
    if not isinstance(state, dict):
        return f"{where} holds no weights"
    out = [f"{k} is missing from {where}" for k in own if k not in state]
    out += [f"{where} has {k}, which this code's model has not" for k in state if k not in own]
    out += [
        f"{k} is {list(state[k].shape)} in {where}, {list(own[k].shape)} in this code's model"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    out += [f"{k} is not a tensor in {where}" for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    if not out:
        return None
    return "; ".join(out[:3]) + (f"; and {len(out) - 3} more" if len(out) > 3 else "")


def _unfit(model: torch.nn.Module, state: dict) -> Optional[str]:
    """Why the weights and masks a checkpoint holds cannot go into `model`, or None (`misfit`)."""
    try:
        states = [state["model"], state["init_state"], *state["rewind_states"].values()]
        states += [state["dense_state"]] if state["dense_state"] else []  # empty until the dense step ended
        masks = state["masks"]
    except (KeyError, TypeError, AttributeError) as err:
        return f"it lacks {err}"
    found = next((m for m in (misfit(model, s, "the checkpoint") for s in states) if m), None)
    if found is None:
        own = model.state_dict()
        found = next(
            (
                f"the mask of {k} is {list(m.shape)} in the checkpoint, {list(own[k].shape)} in this code's model"
                for k, m in masks.items()
                if k in own and isinstance(m, torch.Tensor) and tuple(m.shape) != tuple(own[k].shape)
            ),
            None,
        )
    return found


def save(exp: Experiment, progress: Optional[TrainProgress] = None) -> None:
    state = {
        "step_index": exp.step_index,
        "plan": plan_text(exp.plan),  # the steps step_index counts: a resume with another plan starts over
        "model": cpu_state(exp.model),
        "masks": {k: v.cpu() for k, v in exp.masks.items()},
        "generator": exp.generator.get_state(),
        "torch_rng": torch.get_rng_state(),  # kept under its old name: older checkpoints have only this
        "global_rng": {k: v for k, v in random_streams.capture().items() if k != "torch"},
        "init_state": exp.init_state,
        "dense_state": exp.dense_state,
        "rewind_states": {str(k): v for k, v in exp.rewind_states.items()},
        "json": json.dumps(
            {
                "tables": exp.tables,
                "history": exp.history,
                "rounds_done": exp.rounds_done,
                "dense_values": [[list(k), v] for k, v in exp.dense_values.items()],
                "dense_per_class": [[list(k), list(v)] for k, v in exp.dense_per_class.items()],
                "context": exp.context,
                "provenance": exp.provenance,
                "progress_epoch": progress.epoch if progress else None,
            }
        ),
    }
    if exp.branch_streams is not None:  # inside a branch of the plan: the streams its Rejoin gives back
        state["branch_streams"] = exp.branch_streams
    if progress is not None:
        state["progress"] = {"optimizer": progress.optimizer, "generator": progress.generator}
        if progress.hook:  # a training-time method's state (prune_cli/train_hooks.py); absent otherwise
            state["progress"]["hook"] = progress.hook
    atomic_torch_save(state, exp.run_dir / STATE_FILE, crash_point="checkpoint-write")
    if exp.dense_partial is not None and progress is not None:  # training a dense-cache entry's model under its lock
        try:
            exp.dense_partial.keep_partial(exp.run_dir / STATE_FILE)
        except OSError as err:  # optional: the run's own checkpoint is written; only the hand-over is lost
            log.warning(
                "dense cache: could not keep this checkpoint as the entry's partial training (%s: %s); training goes on, "
                "and another run of this dense key would train the model from its own checkpoint or from epoch 1",
                type(err).__name__,
                err,
            )
            exp.dense_partial = None  # not tried again every epoch
    crashpoints.hold("checkpoint-saved")


def plan_text(plan: list) -> list[str]:
    """The plan's steps as text (their dataclass reprs: kind and arguments)."""
    return [repr(step) for step in plan]


def _other_plan(state: dict, plan: list) -> str | None:
    """Why the checkpoint's step_index does not count the steps of `plan`, or None when it does. A
    checkpoint without a saved plan (older versions) counts them unless the plan has steps those versions
    never made (`Branch`/`Rejoin`, the lottery-ticket reinit control over several rounds): resumed there,
    a step index of the old plan pointed at another step of the new one."""
    saved = state.get("plan")
    if saved is not None:
        return None if list(saved) == plan_text(plan) else "it was written for another plan of steps (another prune-cli version)"
    new_kinds = sorted({step.kind for step in plan} & {"branch", "rejoin"})
    return f"it was written by an older prune-cli whose plan had no {'/'.join(new_kinds)} steps" if new_kinds else None


def _set_aside(path, what: str, why: str) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = path.with_name(f"{STATE_FILE}.{what}-{stamp}")
    os.replace(path, aside)
    log.warning("checkpoint %s %s; moved it to %s and starting the run from the beginning", path, why, aside)


def saved_run_id(run_dir) -> str | None:
    """The run id the checkpoint in `run_dir` was written by; None without a checkpoint, for one that
    cannot be read (the run sets it aside when it starts, `load`) and for one of a version that saved none.
    The tensors are memory-mapped, not read: only the JSON part is."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        saved = json.loads(state["json"]).get("context", {}).get("run_id")
    except Exception:  # noqa: BLE001 - unreadable: `load` moves it aside
        return None
    return saved if isinstance(saved, str) else None


def another_run_s_checkpoint(run_dir, saved_id: str, rid: str) -> AnotherRunsDirectory:
    """The error for a run directory whose checkpoint is another run's."""
    return AnotherRunsDirectory(  # resumed, it finished as this run with that run's epochs (a hydra.run.dir reused)
        f"run directory {run_dir} holds the unfinished run {saved_id} (its checkpoint {STATE_FILE}), not this run "
        f"({rid}); nothing was run. Each run needs a directory of its own: leave hydra.run.dir, "
        "hydra.sweep.dir and hydra.sweep.subdir out (each run gets results_dir/runs/<run id>) or give a pattern that "
        "tells the runs apart"
    )


def load(exp: Experiment) -> bool:
    """Restore the checkpoint into `exp` (whose `plan` is the run's); an unreadable one, one written for
    another plan, or one whose weights do not fit this code's model, is moved aside (warning) and the run
    starts over (False)."""
    path = exp.run_dir / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        extra = json.loads(state["json"])
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: keep it for inspection, redo the work
        _set_aside(path, "corrupt", f"is unreadable ({unreadable_reason(err)})")
        return False
    saved_id = extra.get("context", {}).get("run_id")
    if saved_id is not None and saved_id != exp.context["run_id"]:  # checked before the run wrote anything too
        raise another_run_s_checkpoint(exp.run_dir, saved_id, exp.context["run_id"])
    other = _other_plan(state, exp.plan)
    if other is not None:
        _set_aside(path, "other-plan", f"cannot be resumed: {other}")
        return False
    unfit = _unfit(exp.model, state)
    if unfit is not None:  # written by code whose model differs (a wider layer): checked before anything is restored
        _set_aside(path, "corrupt", f"does not fit this code's model ({unfit})")
        return False
    exp.step_index = state["step_index"]
    exp.model.load_state_dict(state["model"])
    exp.masks = {k: v.bool() for k, v in state["masks"].items()}
    exp.generator.set_state(state["generator"])
    random_streams.restore({**state.get("global_rng", {}), "torch": state["torch_rng"]})
    exp.init_state, exp.dense_state = state["init_state"], state["dense_state"]
    exp.rewind_states = {int(k): v for k, v in state["rewind_states"].items()}
    exp.tables, exp.history = extra["tables"], extra["history"]
    exp.rounds_done = extra["rounds_done"]
    exp.dense_values = {tuple(k): v for k, v in extra["dense_values"]}
    exp.dense_per_class = {tuple(k): tuple(v) for k, v in extra["dense_per_class"]}
    exp.context, exp.provenance = extra["context"], extra["provenance"]
    exp.branch_streams = state.get("branch_streams")
    if "progress" in state:
        p = state["progress"]
        exp.progress = TrainProgress(extra["progress_epoch"], p["optimizer"], p["generator"], p.get("hook", {}))
    return True


def adopt_dense_progress(exp: Experiment, path, keep: tuple[int, ...], own: int) -> Optional[tuple[str, int]]:
    """Continue `exp`'s dense training from `path`, a dense-cache entry's partial training: the checkpoint
    of another run with the same dense key (so the same data, model, training config, seed and code),
    written while it trained the entry's model under its lock (dense_cache.py `keep_partial`). Takes what
    the run itself would resume its dense step from: weights, initial weights, optimizer, batch-order and
    global random streams, the dense history rows and the rewind states `keep` asks for. Returns (the run
    id that wrote it, its epochs done); None, changing nothing, when it holds no more than the `own` epochs
    of `exp`'s checkpoint; raises ValueError saying why it cannot be used, before changing anything."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        extra = json.loads(state["json"])
        epoch, plan, index = extra["progress_epoch"], state["plan"], state["step_index"]
        progress = TrainProgress(
            epoch, state["progress"]["optimizer"], state["progress"]["generator"], state["progress"].get("hook", {})
        )
        streams = {**state.get("global_rng", {}), "torch": state["torch_rng"]}
        generator, history = state["generator"], [r for r in extra["history"] if r["phase"] == "dense"]
        rewind = {int(k): v for k, v in state["rewind_states"].items()}
    except Exception as err:  # noqa: BLE001 - a deleted, truncated or foreign file: the dense model is trained here
        raise ValueError(f"it is unreadable ({unreadable_reason(err)})") from err
    if not isinstance(epoch, int) or not (0 <= index < len(plan)) or not str(plan[index]).startswith("Dense("):
        raise ValueError("it is not a checkpoint taken during dense training")
    if epoch <= own:
        return None
    missing = [e for e in keep if e <= epoch and e not in rewind]
    if missing:
        raise ValueError(f"it lacks the weights of rewind epoch {missing[0]} (its run kept other rewind epochs)")
    unfit = _unfit(exp.model, state)
    if unfit is not None:
        raise ValueError(f"it does not fit this code's model ({unfit})")
    exp.model.load_state_dict(state["model"])
    exp.generator.set_state(generator)
    random_streams.restore(streams)
    exp.init_state = state["init_state"]
    # every rewind state the other run kept, not only `keep`'s: stored with the entry, they let that run
    # load it (a hit) when it comes back, where it keeps rewind epochs this run does not
    exp.rewind_states = dict(rewind)
    exp.history = [r for r in exp.history if r["phase"] != "dense"] + history
    exp.progress = progress
    return str(extra.get("context", {}).get("run_id")), epoch
