"""The thread policy (prune_cli/core/threads.py): usable CPUs from fake cgroup files and environment
variables against hand-worked values, the auto rule, the MAC count against hand-computed layer
sizes, and the `threads` key on the command line (rejected before any work; not in the run id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cli_runner import start_forked
from prune_cli.core import threads
from tests.conftest import FAST, run_cli
from tests.helpers import composed


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _no_proc(tmp_path: Path) -> Path:
    return tmp_path / "no-such-proc-cgroup"


# --------------------------------------------------------------------------- cgroups


@pytest.mark.parametrize(
    "cpu_max,expected",
    [("250000 100000\n", 2), ("150000 100000\n", 1), ("50000 100000\n", 1), ("400000 50000\n", 8), ("max 100000\n", None)],
)
def test_cgroup_v2_quota_rounds_down_to_whole_cpus(tmp_path, cpu_max, expected):
    _write(tmp_path / "cpu.max", cpu_max)  # 2.5 CPUs -> 2, 1.5 -> 1, half a CPU -> 1, 400/50 -> 8
    assert threads.cgroup_cpus(tmp_path, _no_proc(tmp_path)) == expected


def test_cgroup_v2_smallest_quota_along_own_hierarchy(tmp_path):
    """/proc/self/cgroup names the process's cgroup; a parent's quota limits it too."""
    proc = tmp_path / "proc-cgroup"
    _write(proc, "0::/user.slice/job42\n")
    _write(tmp_path / "fs" / "cpu.max", "max 100000\n")
    _write(tmp_path / "fs" / "user.slice" / "cpu.max", "300000 100000\n")  # 3 CPUs
    _write(tmp_path / "fs" / "user.slice" / "job42" / "cpu.max", "max 100000\n")
    assert threads.cgroup_cpus(tmp_path / "fs", proc) == 3
    _write(tmp_path / "fs" / "user.slice" / "job42" / "cpu.max", "100000 100000\n")  # 1 CPU
    assert threads.cgroup_cpus(tmp_path / "fs", proc) == 1


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, folder):
    _write(tmp_path / folder / "cpu.cfs_quota_us", "350000\n")
    _write(tmp_path / folder / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_cpus(tmp_path, _no_proc(tmp_path)) == 3
    _write(tmp_path / folder / "cpu.cfs_quota_us", "-1\n")  # no quota
    assert threads.cgroup_cpus(tmp_path, _no_proc(tmp_path)) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert threads.cgroup_cpus(tmp_path / "absent", _no_proc(tmp_path)) is None


# --------------------------------------------------------------------------- usable CPUs


def test_usable_cpus_is_the_smallest_limit(tmp_path):
    _write(tmp_path / "cpu.max", "400000 100000\n")  # 4 CPUs
    kw = dict(affinity=8, cgroup=tmp_path, proc_cgroup=_no_proc(tmp_path))
    assert threads.usable_cpus({}, **kw) == (4, "cgroup CPU quota")
    assert threads.usable_cpus({"SLURM_CPUS_PER_TASK": "3"}, **kw) == (3, "SLURM_CPUS_PER_TASK")
    assert threads.usable_cpus({"SLURM_CPUS_PER_TASK": "6"}, **kw) == (4, "cgroup CPU quota")
    assert threads.usable_cpus({}, affinity=2, cgroup=tmp_path, proc_cgroup=_no_proc(tmp_path)) == (2, "CPU affinity")


def test_parallel_launcher_share(tmp_path):
    kw = dict(affinity=8, cgroup=tmp_path / "absent", proc_cgroup=_no_proc(tmp_path))
    assert threads.usable_cpus({}, n_jobs=2, **kw)[0] == 4  # 8 CPUs, 2 jobs at once
    assert threads.usable_cpus({}, n_jobs=3, **kw)[0] == 2  # 8 // 3
    assert threads.usable_cpus({}, n_jobs=16, **kw)[0] == 1  # never below one
    assert threads.usable_cpus({}, n_jobs=-1, **kw)[0] == 1  # joblib: one job per CPU
    assert threads.usable_cpus({}, n_jobs=-5, **kw)[0] == 2  # 8 + 1 - 5 = 4 jobs
    assert threads.usable_cpus({}, n_jobs=1, **kw) == (8, "CPU affinity")


def test_affinity_matches_the_os():
    assert threads.affinity_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value,expected", [("3", 3), ("4,2", 4), ("0", None), ("", None), ("x", None), ("-2", None)])
def test_explicit_omp_threads(value, expected):
    assert threads.explicit_omp_threads({"OMP_NUM_THREADS": value}) == expected


def test_slurm_cpus():
    assert threads.slurm_cpus({"SLURM_CPUS_PER_TASK": "12"}) == 12
    assert threads.slurm_cpus({"SLURM_CPUS_PER_TASK": "0"}) is None
    assert threads.slurm_cpus({}) is None


# --------------------------------------------------------------------------- the choice


def test_auto_one_thread_for_small_models_usable_cpus_for_large():
    usable = (6, "CPU affinity")
    assert threads.choose_threads("auto", {}, usable, 10_000_000).threads == 1  # the default MLP batch
    large = threads.choose_threads("auto", {}, usable, 5_190_000_000)  # a ResNet-20 CIFAR batch
    assert large.threads == 6 and "6 usable CPUs" in large.reason
    assert threads.choose_threads("auto", {}, usable, None).threads == 6


def test_omp_num_threads_wins_over_auto_and_config_wins_over_omp():
    usable = (6, "CPU affinity")
    assert threads.choose_threads("auto", {"OMP_NUM_THREADS": "3"}, usable, 10**12) == threads.ThreadChoice(3, "OMP_NUM_THREADS")
    explicit = threads.choose_threads(8, {"OMP_NUM_THREADS": "3"}, usable, 10**3)
    assert explicit.threads == 8 and "more than the 6 usable CPUs" in explicit.reason


@pytest.mark.parametrize(
    "value,ok", [("auto", True), (1, True), (16, True), (0, False), (-1, False), ("foo", False), (True, False), (2.0, False)]
)
def test_valid_setting(value, ok):
    assert threads.valid_setting(value) is ok


def test_wait_policy_set_only_when_the_user_did_not():
    env = {}
    assert threads.quiet_openmp_wait(env) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not threads.quiet_openmp_wait(env) and env == {"OMP_WAIT_POLICY": "ACTIVE"}


# --------------------------------------------------------------------------- MACs


def test_macs_of_linear_and_conv_layers_by_hand():
    mlp = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    assert threads.macs_per_example(mlp, torch.zeros(1, 40)) == 40 * 256 + 256 * 256 + 256 * 10
    # conv 3->8, 3x3, padding 1 on 8x8: 8*8 positions x 8 outputs x 3*9 inputs; stride 2 grouped conv
    # 8->8 in 2 groups, 3x3, no padding on 8x8: 3x3 positions x 8 outputs x (8/2)*9; linear 72 -> 5
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, groups=2), nn.Flatten(), nn.Linear(72, 5))
    expected = 64 * 8 * 27 + 9 * 8 * 36 + 72 * 5
    assert threads.macs_per_example(cnn, torch.zeros(1, 3, 8, 8)) == expected
    with torch.device("meta"):  # shapes only: the pre-run model costs no memory
        meta = nn.Sequential(nn.Conv1d(1, 4, 5), nn.Flatten(), nn.Linear(4 * 36, 10))
        assert threads.macs_per_example(meta, torch.empty(1, 1, 40)) == 36 * 4 * 5 + 144 * 10


# --------------------------------------------------------------------------- the command line


def test_threads_is_not_part_of_the_run_id():
    from prune_cli.core.identity import run_id

    assert run_id(composed("threads=3", "results_dir=r")) == run_id(composed("results_dir=r"))


@pytest.mark.parametrize("value", ["0", "foo", "-2", "1.5"])
def test_bad_threads_rejected_before_any_work(tmp_path, value):
    results = tmp_path / "results"
    proc = run_cli([f"threads={value}"], results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "config key 'threads'" in proc.stderr and "auto or a positive integer" in proc.stderr
    assert not results.exists()


def test_run_logs_the_choice(tmp_path):
    """Without OMP_NUM_THREADS the tiny model gets one thread (auto) and the run's log says why; a
    config `threads=2` is applied even when OMP_NUM_THREADS says 1."""
    results = tmp_path / "results"
    proc = start_forked(FAST, results, env={"OMP_NUM_THREADS": None, "OMP_WAIT_POLICY": None})  # a process of its own
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run_cli([*FAST, "threads=2", "seed=1"], results)
    logs = {p.parent.name: p.read_text() for p in results.glob("runs/*/prune-run.log")}
    (auto,) = [t for name, t in logs.items() if "seed0" in name]
    (fixed,) = [t for name, t in logs.items() if "seed1" in name]
    assert "torch intra-op threads: 1 (threads=auto: small model" in auto
    assert "torch intra-op threads: 2 (threads=2)" in fixed


# One new interpreter imports prune_cli.cli, as the console script does before calling main, then forks a
# child per preset of OMP_WAIT_POLICY: each child starts from exactly what a new interpreter has imported at
# that point (torch not yet), sets its preset and runs prune-run with a spy on the wait-policy call. One
# interpreter start-up for both cases instead of one each.
SPY = """
import json, os, sys
from prune_cli import cli
set_policy = cli.threads.quiet_openmp_wait
for preset in json.loads(sys.argv[1]):
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        continue
    code = None
    try:
        if preset is not None:
            os.environ["OMP_WAIT_POLICY"] = preset
        sys.argv = ["prune-run", "threads=0"]
        torch_loaded = []
        def spy(env):
            torch_loaded.append("torch" in sys.modules)
            return set_policy(env)
        cli.threads.quiet_openmp_wait = spy
        try:
            cli.main()
        except SystemExit as stop:
            code = stop.code
        print("RESULT", json.dumps([preset, code, torch_loaded, os.environ.get("OMP_WAIT_POLICY")]))
    finally:
        sys.stdout.flush()
        os._exit(0)
"""
PRESETS = [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")]


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def wait_policy_spy(tmp_path_factory) -> dict:
    """{preset: (exit code, [torch loaded when the policy was set], OMP_WAIT_POLICY after)} for each preset."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    cwd = tmp_path_factory.mktemp("spy")
    presets = json.dumps([preset for preset, _ in PRESETS])
    proc = subprocess.run([sys.executable, "-c", SPY, presets], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    got = [json.loads(line[len("RESULT ") :]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return {preset: (code, loaded, policy) for preset, code, loaded, policy in got}, proc.stdout + proc.stderr


@pytest.mark.xdist_group("wait_policy_spy")  # both cases read one module fixture
@pytest.mark.parametrize("preset,expected", PRESETS)
def test_prune_run_sets_passive_wait_before_torch_loads(wait_policy_spy, preset, expected):
    """OpenMP reads OMP_WAIT_POLICY when torch loads it, so prune-run must set it first; a value the
    user set is kept."""
    got, output = wait_policy_spy
    assert preset in got, output
    assert got[preset] == (2, [False], expected), output
