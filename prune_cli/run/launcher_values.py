"""The numeric options of hydra-submitit-launcher (`hydra/launcher=slurm`, and the plugin's own
`submitit_slurm` and `submitit_local`), checked on the submitting machine once per sweep, before
anything is submitted (docs/robustness.md). Unchecked, they reached sbatch as given: `--time=-5`,
`--array=0-1%0`, `--signal=USR2@-30` (sbatch's error, exit 1, after the sweep had started) or
`--mem=0GB` (all of each node's memory) and `max_num_timeout=-1` (accepted, no requeue).

Which options are numeric is read from the plugin's queue config dataclasses (the one whose `_target_`
is the sweep's launcher); what each one means, and so its smallest value, is `SUBMITIT_RANGES`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..core.checks import check

# Each numeric option of the plugin's queue configs: its smallest value and what it means (the sbatch
# option submitit writes for it, https://slurm.schedmd.com/sbatch.html; or submitit's own use).
SUBMITIT_RANGES: dict[str, tuple[int, str]] = {
    "timeout_min": (1, "the time limit of each job in minutes (sbatch --time)"),
    "cpus_per_task": (1, "CPUs per task (sbatch --cpus-per-task)"),
    "gpus_per_node": (0, "GPUs per node (sbatch --gpus-per-node; 0: a job without GPUs)"),
    "tasks_per_node": (1, "tasks per node (sbatch --ntasks-per-node)"),
    "mem_gb": (1, "memory per node in GB (sbatch --mem)"),
    "nodes": (1, "nodes per job (sbatch --nodes)"),
    "cpus_per_gpu": (1, "CPUs per GPU (sbatch --cpus-per-gpu)"),
    "gpus_per_task": (0, "GPUs per task (sbatch --gpus-per-task)"),
    "signal_delay_s": (0, "seconds before the time limit at which SIGUSR2 asks a job to checkpoint and requeue (sbatch --signal)"),
    "max_num_timeout": (0, "how many times a job that reaches its time limit is requeued (submitit's; 0: never)"),
    "array_parallelism": (1, "how many of the sweep's jobs run at once (the %N of sbatch --array)"),
}

# What the options of `submitit_local` mean there: submitit's local executor starts each job as a process on
# this machine and writes no sbatch script (submitit/local/local.py, `LocalExecutor._internal_update_parameters`:
# it reads timeout_min, gpus_per_node, tasks_per_node and nodes, and ignores the others).
LOCAL_MEANINGS: dict[str, str] = {
    "timeout_min": "the time limit of each job in minutes (submitit's local executor sends the job SIGUSR2 30 s before "
    "it and requeues it, up to 3 times, resuming from its checkpoint)",
    "cpus_per_task": "CPUs per task (submitit's local executor ignores it)",
    "gpus_per_node": "GPUs per job (submitit's local executor makes that many visible to it, CUDA_VISIBLE_DEVICES; 0: none)",
    "tasks_per_node": "processes per job (submitit's local executor starts that many)",
    "mem_gb": "memory per job in GB (submitit's local executor ignores it)",
}

# Options that start a job more than once: prune-run is not distributed, so each task (each process on each
# node) would run the same job: on SLURM twice the resources reserved, and submitit requeues from task 0 only;
# with submitit_local a second process that waits on the run's lock and then finds it complete.
NOT_DISTRIBUTED = ("tasks_per_node", "nodes")
NOT_DISTRIBUTED_WHY = "prune-run is not distributed, so each further task would run the same job again"

# sbatch --signal takes a delay of at most 65535 s (https://slurm.schedmd.com/sbatch.html, --signal).
MAX_SIGNAL_DELAY_S = 65535

# mem_gb=0 is refused, although sbatch reads --mem=0 as "all of each node's memory": a 0 typed by
# mistake is likelier than one meant that way, and `all` has an explicit spelling of its own.
ALL_MEMORY = "+hydra.launcher.additional_parameters.mem=0"


def queue_config(target: str) -> type | None:
    """The plugin's queue config dataclass whose launcher is `target` (`hydra.launcher._target_`); None
    for another launcher, or without the plugin."""
    if "hydra_submitit_launcher" not in target:
        return None
    try:
        from hydra_plugins.hydra_submitit_launcher import config
    except ImportError:
        return None
    for conf in vars(config).values():
        if isinstance(conf, type) and dataclasses.is_dataclass(conf) and getattr(conf, "_target_", None) == target:
            return conf
    return None


def numeric_fields(conf: type) -> dict[str, bool]:
    """The integer options of a queue config dataclass, each with whether null is allowed (Optional)."""
    hints = typing.get_type_hints(conf)
    found = {}
    for f in dataclasses.fields(conf):
        args = typing.get_args(hints[f.name])
        optional = typing.get_origin(hints[f.name]) is typing.Union and type(None) in args
        kind = next((a for a in args if a is not type(None)), None) if optional else hints[f.name]
        if kind in (int, float):
            found[f.name] = optional
    return found


def check_submitit_values(cfg: DictConfig, target: str) -> None:
    """Every numeric option of the submitit launcher `target` is in its range (ConfigError naming the key)."""
    conf = queue_config(target)
    if conf is None:
        return
    local = "LocalLauncher" in target
    timeout_min = OmegaConf.select(cfg, "hydra.launcher.timeout_min", default=None)
    for name, optional in numeric_fields(conf).items():
        if name not in SUBMITIT_RANGES:
            continue  # an option of a newer plugin: tests/test_launchers.py asks for its range
        key, (lowest, meaning) = f"hydra.launcher.{name}", SUBMITIT_RANGES[name]
        if local:
            meaning = LOCAL_MEANINGS.get(name, meaning)
        value = OmegaConf.select(cfg, key, default=None)
        if value is None and optional:
            continue
        integer = isinstance(value, int) and not isinstance(value, bool)
        if name == "nodes" and local:
            check(value == 1 and integer, key, value, "1 (submitit's local executor runs its jobs on this machine)")
            continue
        if name in NOT_DISTRIBUTED:
            check(value == 1 and integer, key, value, f"1, {meaning}: {NOT_DISTRIBUTED_WHY}")
            continue
        if name == "signal_delay_s" and isinstance(timeout_min, int):
            highest = min(timeout_min * 60, MAX_SIGNAL_DELAY_S + 1)
            allowed = (
                f"an integer in [0, {highest}): {meaning}, below the time limit (hydra.launcher.timeout_min={timeout_min} "
                f"minutes) and sbatch's largest delay ({MAX_SIGNAL_DELAY_S} s)"
            )
            check(integer and 0 <= value < highest, key, value, allowed)
            continue
        allowed = f"an integer >= {lowest}{' or null' if optional else ''}: {meaning}"
        if name == "mem_gb" and not local:
            allowed += f"; null leaves it to the cluster's default; all of each node's memory (sbatch --mem=0) is {ALL_MEMORY}"
        check(integer and value >= lowest, key, value, allowed)


def joblib_workers(n_jobs: int) -> int:
    """How many jobs joblib runs at once for `n_jobs` (its convention: -1 one per CPU, -2 all but one, ...; the
    CPUs as joblib counts them, affinity and cgroup quota included)."""
    from joblib import cpu_count

    return n_jobs if n_jobs > 0 else max(cpu_count() + 1 + n_jobs, 1)


def dispatch_amount(pre_dispatch: Any, workers: int) -> int | None:
    """What joblib makes of `pre_dispatch` (an integer, or an expression of `n_jobs` such as '2*n_jobs',
    joblib.Parallel's documented form) with `workers` jobs at once: it substitutes the number, evaluates the
    arithmetic with its own evaluator and takes int(); None where that fails (joblib's ValueError)."""
    try:
        from joblib._utils import eval_expr  # joblib's own evaluator (joblib/parallel.py), so the check matches its reading
    except ImportError:  # a joblib older than its evaluator: joblib decides at the sweep's start, as before
        return 1
    try:
        return int(eval_expr(str(pre_dispatch).replace("n_jobs", str(workers))))
    except (ValueError, TypeError):
        return None


def check_joblib_values(cfg: DictConfig) -> None:
    """hydra-joblib-launcher's options that reach joblib.Parallel as given, checked once per sweep before it
    starts (sweeps audit of 2026-12-03): a bad `batch_size` or `pre_dispatch`, or a `require` that contradicts
    the processes the launcher always uses, was joblib's ValueError at the sweep's start (exit 1, no key named);
    `pre_dispatch=0` dispatched no job and reported "all 0 runs of the sweep completed", exit 0."""
    node = OmegaConf.select(cfg, "hydra.launcher")
    batch_size = str(node.get("batch_size", "auto"))
    check(
        batch_size == "auto" or (batch_size.isdigit() and int(batch_size) >= 1),
        "hydra.launcher.batch_size",
        node.get("batch_size"),
        "'auto' or an integer >= 1 (how many jobs joblib hands a worker at once)",
    )
    n_jobs = node.get("n_jobs")
    workers = joblib_workers(n_jobs) if isinstance(n_jobs, int) and n_jobs != 0 else 1
    pre_dispatch = node.get("pre_dispatch", "2*n_jobs")
    amount = None if str(pre_dispatch) == "all" else dispatch_amount(pre_dispatch, workers)
    check(
        str(pre_dispatch) == "all" or (amount is not None and amount >= 1),
        "hydra.launcher.pre_dispatch",
        pre_dispatch,
        f"'all', an integer >= 1, or an arithmetic expression of n_jobs that is >= 1 at n_jobs={workers} (joblib's "
        "form, e.g. 2*n_jobs: how many jobs are queued ahead of the workers; 0 queues none)",
    )
    check(
        node.get("require") is None,
        "hydra.launcher.require",
        node.get("require"),
        "null: the launcher always runs its jobs in separate processes (prefer=processes), which require=sharedmem "
        "(joblib's only value) contradicts",
    )
