"""How many intra-op threads a run gives torch: never more than the CPUs this process may use, and
one for a small model, whose per-operation work is too small to pay for a parallel region.

Why a policy and not torch's default (one thread per visible core): torch's GNU OpenMP pool spins
while it waits for work, so a run whose threads outnumber the free cores (a shared node, a laptop,
a local parallel sweep, four runs started at once) slows down by an order of magnitude instead of
sharing the cores (measured in docs/performance.md). The usable CPUs are the smallest of:

- the CPU affinity mask (`os.sched_getaffinity`: taskset, cpusets, SLURM's task binding);
- the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`: containers,
  Kubernetes limits), rounded down (a fractional CPU is time-sliced, not a core to run on);
- `SLURM_CPUS_PER_TASK`, what a SLURM job was allocated;
- the per-job share when a local launcher runs several runs at once (usable // runs at once, at least
  1): `hydra/launcher=parallel` (or joblib) runs `n_jobs` at once, or the sweep's batch when it has fewer
  jobs; `hydra/launcher=submitit_local` runs every job of the batch at once (submitit's local executor
  has no array_parallelism; a batch is the whole sweep unless `hydra.sweeper.max_batch_size` splits it).

An `OMP_NUM_THREADS` the user set (in the shell that started prune-run, or per job with
`hydra.job.env_set.OMP_NUM_THREADS`) is the user's decision and is honoured; one that joblib's loky
backend sets in its workers (cpu_count // n_jobs, unless the sweep's process had one) is not the user's
and is ignored: the sweep's process records what it had (`note_sweep_batch`), and a job compares. A
`threads=N` in the config is honoured as given. Either, when it is more than the usable CPUs (a local
sweep's per-job share included), is noted in the run's log.

This module imports nothing from the package and torch only inside the function that needs it
(docs/architecture.md, layer 0).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

# Below this many multiply-accumulates in one training batch's forward pass, one thread is chosen.
# Calibrated with scripts/bench_threads.py (docs/performance.md): the default MLP on MNIST-1D
# (about 1e7 per batch of 128) gains at most about 1.2x from a second thread on a quiet machine
# and loses 10x or more on a busy one; a CIFAR ResNet-20 batch (about 5e9) gains from every core.
SMALL_MODEL_MACS = 100_000_000

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # one line for the run's log: where the number came from


def valid_setting(value) -> bool:
    """`threads` is `auto` or a positive integer (a bool is not an integer here)."""
    return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


# Set by a sweep's process before it launches each batch (prune_cli/hydra_patches.py), read by its jobs
# (which inherit its environment: loky workers, submitit's local processes):
SWEEP_OMP = "PRUNE_CLI_SWEEP_OMP_NUM_THREADS"  # OMP_NUM_THREADS as the sweep's process had it ("" unset)
SWEEP_BATCH = "PRUNE_CLI_SWEEP_BATCH_JOBS"  # how many jobs the launcher is given at once


def note_sweep_batch(env: dict, jobs: int, first: bool) -> None:
    """Record, in the sweep's process before its launcher gets a batch of `jobs`, what its jobs need to
    tell their share of the CPUs: the batch's size, and at the sweep's first batch the user's
    OMP_NUM_THREADS (set or not), so that a job can tell it from the one loky sets in its workers."""
    env[SWEEP_BATCH] = str(jobs)
    if first:
        env[SWEEP_OMP] = env.get("OMP_NUM_THREADS", "")


def users_env(env: Mapping[str, str], env_set: Mapping | None, launcher: Mapping | None = None) -> Mapping[str, str]:
    """`env` without an OMP_NUM_THREADS the launcher set rather than the user: in a joblib worker, one
    that differs from what the sweep's process had (`SWEEP_OMP`; loky's cpu_count // n_jobs) and that the
    job's `hydra.job.env_set` does not set. Unchanged outside a sweep (no `SWEEP_OMP`) and under any other
    launcher: a SLURM job's OMP_NUM_THREADS may come from its setup lines, `export=` or the cluster's
    prolog, and differs from the submit host's for a reason (review)."""
    if launcher is not None and "Joblib" not in str(launcher.get("_target_", "")):
        return env
    if SWEEP_OMP not in env or "OMP_NUM_THREADS" not in env or "OMP_NUM_THREADS" in (env_set or {}):
        return env
    if env["OMP_NUM_THREADS"] == env[SWEEP_OMP]:
        return env
    return {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}


def local_sweep_jobs(launcher: Mapping, env: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(runs at once in joblib's convention, jobs in the batch) of a local sweep's `launcher` config, for
    `usable_cpus`; (None, None) for a launcher whose jobs do not share this machine's CPUs."""
    target = str(launcher.get("_target_", ""))
    batch = env.get(SWEEP_BATCH, "")
    batch = int(batch) if batch.isdigit() and int(batch) > 0 else None
    if "Joblib" in target:
        return launcher.get("n_jobs"), batch
    if target.endswith("submitit_launcher.LocalLauncher"):  # every job of the batch at once
        return batch, None
    return None, None


def explicit_omp_threads(env: Mapping[str, str]) -> int | None:
    """OMP_NUM_THREADS when it is set to a positive integer (a list such as "4,2" is OpenMP's nested
    setting: its first entry is the outer level, the one torch uses)."""
    value = env.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _quota_cpus(quota: float, period: float) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.floor(quota / period))


def _own_cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup directory and its ancestors up to `root` (each may hold a quota), from
    /proc/self/cgroup; only `root` when the file is not there."""
    dirs = [root]
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return dirs
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] == "0" and parts[2].strip() not in ("", "/"):  # cgroup v2 entry
            own = root / parts[2].strip().lstrip("/")
            dirs = [own, *[p for p in own.parents if p.is_relative_to(root)]]
    return dirs


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The CPU quota of this process's cgroup as whole CPUs (the smallest along its hierarchy), or
    None when no quota is set. cgroup v2: `cpu.max` holds "<quota> <period>" or "max <period>";
    cgroup v1: `cpu.cfs_quota_us` (-1 = none) and `cpu.cfs_period_us` under `cpu/` or `cpu,cpuacct/`."""
    found: list[int] = []
    for folder in _own_cgroup_dirs(root, proc_cgroup):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max":
            cpus = _quota_cpus(float(quota), float(period))
            if cpus is not None:
                found.append(cpus)
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota = float((root / sub / "cpu.cfs_quota_us").read_text())
            period = float((root / sub / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        cpus = _quota_cpus(quota, period)
        if cpus is not None:
            found.append(cpus)
    return min(found) if found else None


def slurm_cpus(env: Mapping[str, str]) -> int | None:
    value = env.get("SLURM_CPUS_PER_TASK", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def parallel_jobs(n_jobs, cpus: int) -> int:
    """How many runs a joblib launcher runs at once: n_jobs, or joblib's negative convention
    (-1 = one per CPU, -2 = all CPUs but one, ...)."""
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def usable_cpus(
    env: Mapping[str, str],
    n_jobs: int | None = None,
    batch: int | None = None,
    affinity: int | None = None,
    cgroup: Path = CGROUP_ROOT,
    proc_cgroup: Path = Path("/proc/self/cgroup"),
) -> tuple[int, str]:
    """(CPUs this process may use, which limit decided it): its share when `n_jobs` runs share them (joblib's
    convention), or the `batch` of jobs the launcher was given when that is fewer."""
    limits = {"CPU affinity": affinity if affinity is not None else affinity_cpus()}
    quota = cgroup_cpus(cgroup, proc_cgroup)
    if quota is not None:
        limits["cgroup CPU quota"] = quota
    slurm = slurm_cpus(env)
    if slurm is not None:
        limits["SLURM_CPUS_PER_TASK"] = slurm
    cpus = min(limits.values())
    name = min(limits, key=limits.get)
    jobs = parallel_jobs(n_jobs, cpus) if n_jobs is not None else 1
    if batch is not None:
        jobs = min(jobs, batch)
    if jobs > 1:
        share = max(1, cpus // jobs)
        return share, f"{name} {cpus} shared by {jobs} parallel jobs"
    return cpus, name


def choose_threads(setting, env: Mapping[str, str], usable: tuple[int, str], macs_per_batch: int | None) -> ThreadChoice:
    """The intra-op thread count for `threads=setting` (`auto` or N)."""
    cpus, limit = usable
    if setting != "auto":
        note = "" if setting <= cpus else f"; more than the {cpus} usable CPUs ({limit})"
        return ThreadChoice(int(setting), f"threads={setting}{note}")
    omp = explicit_omp_threads(env)
    if omp is not None:
        note = "" if omp <= cpus else f"; more than the {cpus} usable CPUs ({limit})"
        return ThreadChoice(omp, f"OMP_NUM_THREADS{note}")
    if macs_per_batch is None:
        return ThreadChoice(cpus, f"threads=auto: model size unknown before loading data; {cpus} usable CPUs ({limit})")
    if macs_per_batch < SMALL_MODEL_MACS:
        return ThreadChoice(1, f"threads=auto: small model ({macs_per_batch:.3g} MACs per training batch < {SMALL_MODEL_MACS:.0e})")
    return ThreadChoice(cpus, f"threads=auto: {macs_per_batch:.3g} MACs per training batch; {cpus} usable CPUs ({limit})")


@dataclass
class MacCounter:
    """Multiply-accumulates counted by `counting_macs` (`total`, per example)."""

    total: int = 0


@contextmanager
def counting_macs(model):
    """Count the multiply-accumulates of the Linear and Conv layers in the forward passes of `model`
    run inside the block, per example (each layer: weight elements times output positions, divided
    by the batch size). Reads shapes only, so it works on any device."""
    from torch import nn

    counter = MacCounter()

    def count(module, _inputs, output) -> None:
        channels = output.shape[1] if isinstance(module, nn.modules.conv._ConvNd) else output.shape[-1]
        counter.total += module.weight.numel() * (output.numel() // max(1, channels)) // max(1, output.shape[0])

    layers = (nn.Linear, nn.modules.conv._ConvNd)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, layers)]
    try:
        yield counter
    finally:
        for h in hooks:
            h.remove()


def macs_per_example(model, example) -> int:
    """Multiply-accumulates of the Linear and Conv layers in one forward pass of `example` (one
    input with a batch dimension of 1). The pre-run pass counts them during its own check of the
    model (prune_cli/run/prevalidate.py `checked_model`), so a run builds its model once for both."""
    import torch

    with counting_macs(model) as macs, torch.no_grad():
        model(example)
    return macs.total


def quiet_openmp_wait(env: dict) -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it: OpenMP threads then sleep instead of
    spinning while they wait, so threads of other processes on the same cores are not starved.
    Must run before torch is imported (OpenMP reads it when it loads). Returns whether it set it."""
    if "OMP_WAIT_POLICY" in env:
        return False
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
