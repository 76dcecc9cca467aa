"""The benchmark scripts under scripts/ measure what they print: each timed call does the work it
names (no cache hit in a repeat), variants compared by a ratio are timed in the same rounds, and an
option a script would ignore is refused. No wall-clock thresholds: the tests count calls and check
the order of the timed work."""

from __future__ import annotations

import runpy

import pandas as pd

from conftest import REPO


def _script(name: str, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the scripts import script_args from their folder
    return runpy.run_path(str(REPO / "scripts" / name), run_name=name.removesuffix(".py"))


def test_bench_regions_default_times_the_montecarlo_computation_in_every_repeat(monkeypatch, capsys):
    """bound_costs timed bound_columns on the same shapes and seed in each repeat, and
    montecarlo_rank_log_probs memoises in _MC_CACHE: from the second repeat on the Monte-Carlo time
    was a cache look-up (ratio 0.3x at --repeats 3 against 10.1x at --repeats 1). Every call made
    during the timing must find its key not yet cached, so it computes."""
    from prune_cli.analysis.regions import bounds

    original = bounds.montecarlo_rank_log_probs
    hits: list[bool] = []

    def recording(rows, cols, density, seed=0, sample_factor=48):
        hits.append((rows, cols, float(density), seed, sample_factor) in bounds._MC_CACHE)
        return original(rows, cols, density, seed, sample_factor)

    monkeypatch.setattr(bounds, "montecarlo_rank_log_probs", recording)
    bound_costs = _script("bench_regions_default.py", monkeypatch)["bound_costs"]
    bound_costs(3, widths=(6, 5))
    assert len(hits) == 2 * (1 + 3) * 3  # two nets, an untimed warm-up call and three repeats, three layers each
    assert not any(hits), hits
    assert capsys.readouterr().out.count("montecarlo median") == 2


class FakeClock:
    """time.perf_counter for a script whose timed calls advance it by chosen durations."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_bench_gpu_epoch_interleaves_the_variants_and_takes_the_speedup_from_the_same_rounds(tmp_path, monkeypatch):
    """bench_gpu_epoch.py measured each variant's repeats one variant after another and divided the
    fp32 median by each variant's median: drift between variants (another process, the clock, the
    GPU warming) entered the "speedup vs fp32". Now every repeat is a round over all variants and the
    speedup is the median of the per-round ratios. The training calls are stand-ins that log what they
    were asked to train and advance a fake clock by chosen durations: no real timing."""
    ns = _script("bench_gpu_epoch.py", monkeypatch)["main"].__globals__  # run_path returns a copy of them
    clock = FakeClock()
    log: list[tuple[str, str]] = []
    # per (side, variant): the warm-up, then the three timed epochs; per round the bare ratios fp32 /
    # channels_last are 2, 0.5 and 2 (median 2), the ratio of the medians 2 / 4 = 0.5
    durations = {
        ("runner", "fp32"): [9.0, 1.0, 1.0, 1.0],
        ("runner", "channels_last"): [9.0, 2.0, 2.0, 2.0],
        ("bare", "fp32"): [9.0, 1.0, 2.0, 10.0],
        ("bare", "channels_last"): [9.0, 0.5, 4.0, 5.0],
    }

    def advance(side: str, channels_last: bool) -> None:
        variant = "channels_last" if channels_last else "fp32"
        log.append((side, variant))
        clock.now += durations[(side, variant)].pop(0)

    def fake_train(model, data, cfg, gen, tag, accel):
        advance("runner", accel.channels_last)

    def fake_bare(model, x, y, batch_size, optimizer, gen, device, precision, channels_last):
        advance("bare", channels_last)

    monkeypatch.setitem(ns, "train", fake_train)
    monkeypatch.setitem(ns, "bare_epoch", fake_bare)
    monkeypatch.setitem(ns, "time", clock)
    out = tmp_path / "epoch.csv"
    argv = ["bench_gpu_epoch.py", "--device", "cpu", "--samples", "4", "--repeats", "3", "--variants", "fp32", "channels_last"]
    monkeypatch.setattr("sys.argv", [*argv, "--csv", str(out)])
    ns["main"]()
    timed = log[4:]  # after the two variants' warm-ups
    assert sorted(log[:4]) == sorted(durations)
    for r in range(3):  # each round holds both sides of both variants
        assert sorted(timed[4 * r : 4 * r + 4]) == sorted(durations), timed
    rows = pd.read_csv(out).set_index("variant")
    assert rows.loc["channels_last", "speedup_vs_fp32"] == 2.0
    assert rows.loc["fp32", "speedup_vs_fp32"] == 1.0
    assert rows.loc["channels_last", "runner_over_bare"] == 0.5  # per round 2 / 0.5, 2 / 4, 2 / 5


def test_bench_sweep_quick_keeps_the_sizes_and_repeats_given(monkeypatch):
    """`--quick` set sizes 1, 4, 16 and one repeat over whatever --sizes and --repeats said: an
    explicit value was dropped without a word. --quick now only changes the defaults."""
    ns = _script("bench_sweep.py", monkeypatch)["main"].__globals__
    asked = []
    monkeypatch.setitem(ns, "benchmark", lambda sizes, repeats, variants: asked.append((sizes, repeats, sorted(variants))))
    for argv in (["--quick", "--repeats", "3", "--sizes", "2", "5"], ["--quick", "--repeats", "2"], ["--quick"], []):
        monkeypatch.setattr("sys.argv", ["bench_sweep.py", *argv])
        ns["main"]()
    assert asked == [([2, 5], 3, ["this"]), ([1, 4, 16], 2, ["this"]), ([1, 4, 16], 1, ["this"]), ([1, 4, 16, 64], 3, ["this"])]


def test_bench_analysis_times_with_one_torch_thread_unless_told(monkeypatch):
    """docs/analysis.md states its ratios for one torch thread, but the script left torch's default (two
    threads on the shared machine gave an NTK ratio of 5.43x against 2.34x at one): it now sets the
    threads itself, `--threads` (default 1), before anything is timed."""
    import sys

    import torch

    seen: list[int] = []

    class Stop(Exception):
        pass

    def recording(variants, repeats):
        seen.append(torch.get_num_threads())
        raise Stop

    main = _script("bench_analysis.py", monkeypatch)["main"]
    monkeypatch.setitem(main.__globals__, "interleaved", recording)
    before = torch.get_num_threads()
    try:
        for argv, expected in (([], 1), (["--threads", "2"], 2)):
            monkeypatch.setattr(sys, "argv", ["bench_analysis.py", "--ntk-inputs", "2", *argv])
            try:
                main()
            except Stop:
                pass
            assert seen[-1] == expected
    finally:
        torch.set_num_threads(before)


def test_bench_sweep_refuses_a_size_given_twice_before_any_benchmark(monkeypatch, capsys):
    """`--sizes 4 4` ran the whole benchmark, merged both sizes into one results key, then died in the overhead
    fit (ZeroDivisionError: every size equal). Refused right after parsing, one line, exit 2."""
    import pytest

    ns = _script("bench_sweep.py", monkeypatch)["main"].__globals__
    asked = []
    monkeypatch.setitem(ns, "benchmark", lambda sizes, repeats, variants: asked.append(sizes))
    monkeypatch.setattr("sys.argv", ["bench_sweep.py", "--sizes", "1", "4", "4"])
    with pytest.raises(SystemExit) as stop:
        ns["main"]()
    assert stop.value.code == 2 and asked == []
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("error: argument --sizes: '1 4 4': allowed: each value once (4 is repeated)"), error
    monkeypatch.setattr("sys.argv", ["bench_sweep.py", "--sizes", "1", "4"])
    ns["main"]()
    assert asked == [[1, 4]]


def test_bench_training_loop_labels_a_single_repeat_and_prints_the_load_with_the_cpu_count(monkeypatch, capsys):
    """bench_training_loop.py printed "median" and a ratio for --repeats 1 and its load lines without the CPU
    count, unlike every other script (docs/performance.md). The training calls are stand-ins."""
    import os

    ns = _script("bench_training_loop.py", monkeypatch)["main"].__globals__
    calls = []
    monkeypatch.setitem(ns, "train", lambda *args: calls.append("runner"))
    monkeypatch.setitem(ns, "bare_epoch", lambda *args: calls.append("bare"))
    monkeypatch.setattr("sys.argv", ["bench_training_loop.py", "--repeats", "1", "--samples", "16", "--width", "4"])
    ns["main"]()
    out = capsys.readouterr().out
    assert calls == ["runner", "bare", "runner", "bare"]  # the warm-up, then one round
    loads = [line for line in out.splitlines() if line.startswith("load average")]
    assert [line.split(":")[0] for line in loads] == ["load average before", "load average after"]
    assert all(line.endswith(f" on {os.cpu_count()} CPUs") for line in loads), loads
    assert "single repeat (no median)" in out and "epoch median" not in out
    summary = ns["summary"]
    # one repeat: 10 ms against 8 ms, ratio 1.25
    assert summary([0.010], [0.008]) == [
        "runner epoch 10.0 ms, bare PyTorch epoch 8.0 ms (single repeat (no median))",
        "ratio runner/bare = 1.250  (target <= 1.10)",
        "single repeat (no median): one noisy sample on a shared machine; rerun with --repeats 3 before quoting the ratio",
    ]
    # three repeats: medians 20 ms and 10 ms, ratio 2.0
    assert summary([0.010, 0.030, 0.020], [0.010, 0.010, 0.016]) == [
        "runner epoch median 20.0 ms, bare PyTorch epoch median 10.0 ms (medians of 3 repeats)",
        "ratio runner/bare = 2.000  (target <= 1.10)",
    ]
