"""A stop signal during a long metric stops the run at the metric's next safe point
(prune_cli/core/interrupts.py): before every metric, between region-counting segments, before every
Hessian-vector product, between the latency repeats. Counting the work done after the signal (not
timing it) shows how promptly; the stopped run says how to resume like any other interrupted run,
and resumes to the results of an uninterrupted one."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.analysis import hessian as hessian_math
from prune_cli.analysis.regions import line as line_math
from prune_cli.core import interrupts
from prune_cli.metrics import METRICS
from prune_cli.metrics.hessian import AtSafePoints
from prune_cli.metrics.latency import time_models
from prune_cli.metrics.regions import RegionsConfig
from prune_cli.models.mlp import MLP
from tests.conftest import FAST, run_cli
from tests.helpers import metric_context

HESSIAN = [
    *FAST,
    "train.epochs=1",
    "metrics.regions.enabled=false",
    "sparsity=0.5",
    "metrics.hessian.enabled=true",
    "metrics.hessian.samples=64",
    "metrics.hessian.batch_size=64",
    "metrics.hessian.lanczos_iter=20",
    "metrics.hessian.hutchinson_probes=20",
]
VOLATILE = ["timestamp", "git_sha", "git_dirty", "wall_s"]  # the moment and the clock, not the computation


@pytest.fixture
def flag_reset():
    interrupts.reset()
    yield
    interrupts.reset()


def _signal_self() -> None:
    """SIGTERM to this process, as SLURM or `kill` would send it; only with prune-run's handler in
    place (the default action would end the test process)."""
    assert signal.getsignal(signal.SIGTERM) is interrupts._handler  # noqa: SLF001
    os.kill(os.getpid(), signal.SIGTERM)


def _tables(run_dir) -> dict[str, pd.DataFrame]:
    names = ("metrics.csv", "per_class.csv", "layers.csv", "history.csv", "hessian_density.csv", "hessian_slq_nodes.csv")
    return {n: pd.read_csv(run_dir / n).drop(columns=VOLATILE, errors="ignore") for n in names}


def test_sigterm_during_the_hessian_stops_within_one_hvp_and_resumes_to_the_same_results(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run_cli(HESSIAN, reference)
    [reference_dir] = (reference / "runs").iterdir()

    hvps = []
    original = hessian_math.HessianOperator.__call__

    def counting(self, v):
        hvps.append(interrupts.requested())
        if len(hvps) == 3:  # the dense phase's Hessian, three HVPs into its 40
            _signal_self()
        return original(self, v)

    out = tmp_path / "results"
    with monkeypatch.context() as patch:
        patch.setattr(hessian_math.HessianOperator, "__call__", counting)
        stopped = run_cli(HESSIAN, out, check=False)
    [run_dir] = (out / "runs").iterdir()
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert [line for line in stopped.stderr.splitlines() if line.startswith("prune-run:")] == [
        f"prune-run: stopped by SIGTERM; run {run_dir} keeps its last checkpoint (state.pt); run the same command again to resume it"
    ]
    # no HVP started once the signal had arrived (the one it arrived in finished); without the safe
    # points the other 37 of this Hessian would have run, and the run would have stopped after the phase
    assert len(hvps) == 3 and [r for r in hvps if r is not None] == []
    assert (run_dir / "state.pt").exists() and not (run_dir / "COMPLETE").exists()
    assert not (run_dir / "hessian_density.csv").exists()  # the phase's rows were not kept

    resumed = run_cli(HESSIAN, out)
    assert "resuming run" in (run_dir / "prune-run.log").read_text(), resumed.stderr
    assert (run_dir / "COMPLETE").exists()
    got, want = _tables(run_dir), _tables(reference_dir)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False, obj=name)


def _regions(data, segments: int) -> tuple:
    torch.manual_seed(0)
    model = MLP(data.input_shape[0], [8, 8], data.num_classes).eval()
    node = OmegaConf.structured(RegionsConfig(enabled=True, segments=segments, rank_models=["binomial"]))
    return metric_context(model, data), node


def _stopping_at_call(original, calls: list, at: int):
    """`original`, counting its calls in `calls`; call number `at` first sets the stop flag, as a
    SIGTERM arriving during it would."""

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            interrupts._handler(signal.SIGTERM, None)  # noqa: SLF001 - what the signal does: set the flag
        return original(*args, **kwargs)

    return counting


def test_region_counting_stops_between_segments(monkeypatch, flag_reset, tiny_data):
    ctx, node = _regions(tiny_data, segments=12)
    counted = []
    monkeypatch.setattr(line_math, "count_line", _stopping_at_call(line_math.count_line, counted, 2))
    with pytest.raises(interrupts.Interrupted):
        METRICS.get("regions")(ctx, "dense", node)
    assert len(counted) == 2  # not 12


def test_a_signal_before_a_metric_stops_it_before_any_work(monkeypatch, flag_reset, tiny_data):
    ctx, node = _regions(tiny_data, segments=3)
    counted = []
    original = line_math.count_line
    monkeypatch.setattr(line_math, "count_line", lambda *a, **k: counted.append(1) or original(*a, **k))
    interrupts._handler(signal.SIGTERM, None)  # noqa: SLF001
    with pytest.raises(interrupts.Interrupted):
        METRICS.get("regions")(ctx, "dense", node)
    assert counted == []
    interrupts.reset()
    assert len(METRICS.get("regions")(ctx, "dense", node).tables["regions.csv"]) == 3  # without a signal: all
    assert len(counted) == 3


def test_hvps_start_at_safe_points(flag_reset):
    calls = []

    class Operator:
        dim = 7

        def __call__(self, v):
            calls.append(v)
            return v

    op = AtSafePoints(Operator())
    assert op.dim == 7 and torch.equal(op(torch.ones(2)), torch.ones(2))
    interrupts._handler(signal.SIGUSR2, None)  # noqa: SLF001
    with pytest.raises(interrupts.Interrupted) as stop:
        op(torch.ones(2))
    assert len(calls) == 1 and stop.value.exit_code == 128 + signal.SIGUSR2


def test_latency_repeats_stop_at_the_next_repeat_and_restore_the_mode(flag_reset):
    calls = []

    class Model(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            if len(calls) == 3:  # the first timed repeat (after two warm-up calls)
                interrupts._handler(signal.SIGTERM, None)  # noqa: SLF001
            return x

    model = Model().train()
    with pytest.raises(interrupts.Interrupted):
        time_models({"m": model}, torch.zeros(1), warmup=2, repeats=50)
    assert len(calls) == 3 and model.training


def test_exact_region_counting_stops_between_milp_solves(monkeypatch, flag_reset):
    """method=exact solves one MILP per region (enumeration with no-good cuts); a 32-unit MLP can
    take many minutes. A SIGTERM used to be logged and then ignored until the count ended; now the
    next solve does not start."""
    from prune_cli.analysis.regions import exact as exact_math

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).double()
    solves = []
    monkeypatch.setattr(exact_math, "milp", _stopping_at_call(exact_math.milp, solves, 2))
    with pytest.raises(interrupts.Interrupted):
        exact_math.count_exact(net, (2,), (-1.0, 1.0))
    assert len(solves) == 2
    interrupts.reset()
    assert exact_math.count_exact(net, (2,), (-1.0, 1.0)).solves > 3  # the count takes more solves than that


def test_the_timing_warm_up_is_a_safe_point_too(flag_reset):
    """Latency and speedup timing checked for a stop signal only between timed repeats: a SIGTERM
    during a long warm-up (metrics.latency.warmup=3000000) waited 166 s for it to end (accel audit),
    past SLURM's grace period. Now every warm-up pass is a safe point."""
    from prune_cli.metrics.latency import time_models

    calls = []

    class Model(torch.nn.Module):
        def forward(self, x):
            calls.append(1)
            if len(calls) == 3:
                interrupts._handler(signal.SIGTERM, None)  # noqa: SLF001 - what the signal does: set the flag
            return x

    with pytest.raises(interrupts.Interrupted):
        time_models({"dense": Model(), "sparse": Model()}, torch.zeros(1, 2), warmup=1_000_000, repeats=1)
    assert len(calls) <= 4  # the pass the signal came in (and its other model), then no more
