"""scripts/script_timing.py, the benchmark scripts' shared timing loop: one untimed warm-up call per
variant, then rounds in which the variant that goes first rotates (a fixed order always gave the
first call of a round, a cold cache or a CPU frequency ramp, to the same variant), and a single
repeat labelled as such. No wall-clock timing: an injected clock advances by chosen amounts and the
tests check the recorded call order."""

from __future__ import annotations

import runpy

import pytest

from conftest import REPO


@pytest.fixture
def timing(monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return runpy.run_path(str(REPO / "scripts" / "script_timing.py"))


def test_interleaved_warms_up_each_variant_once_then_rotates_the_order(timing):
    calls: list[str] = []
    now = [0.0]
    cost = {"a": 1.0, "b": 2.0, "c": 4.0}

    def variant(name: str):
        def call() -> None:
            calls.append(name)
            now[0] += cost[name]

        return call

    times = timing["interleaved"]({n: variant(n) for n in "abc"}, 4, timer=lambda: now[0])
    assert calls[:3] == ["a", "b", "c"]  # one untimed call each
    rounds = [calls[3 + 3 * r : 6 + 3 * r] for r in range(4)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert [r[0] for r in rounds[:3]] == ["a", "b", "c"]  # each variant first in turn: a fixed order fails here
    assert times == {"a": [1.0] * 4, "b": [2.0] * 4, "c": [4.0] * 4}  # the warm-up is not among the times


def test_interleaved_without_warmup_and_two_variants_alternate(timing):
    calls: list[str] = []
    times = timing["interleaved"]({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")}, 3, warmup=False, timer=lambda: 0.0)
    assert calls == ["x", "y", "y", "x", "x", "y"]
    assert {k: len(v) for k, v in times.items()} == {"x": 3, "y": 3}


def test_rounds_and_the_single_repeat_note(timing):
    assert list(timing["rounds"](["p", "q"], 2)) == [(0, "p"), (0, "q"), (1, "q"), (1, "p")]
    assert timing["rotated"]([], 3) == []
    assert timing["repeats_note"](1) == "single repeat (no median)"
    assert timing["repeats_note"](5) == "medians of 5 repeats"
    assert "on" in timing["load_average"]() and "CPUs" in timing["load_average"]()


def test_ratio_lines_divide_by_the_named_baseline_not_the_fastest(timing):
    times = {"base": [2.0, 2.0, 2.0], "fast": [1.0, 1.0, 1.0], "slow": [4.0, 6.0, 4.0]}
    lines = timing["ratio_lines"](times, "base", unit=1.0, label="s")
    assert lines[0].startswith("  base (baseline): median 2.0 s")
    assert "fast / base = 0.50x" in lines[1] and "slow / base = 2.00x (per round 2.00x-3.00x)" in lines[2]


def _script(name: str, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return runpy.run_path(str(REPO / "scripts" / name), run_name=name.removesuffix(".py"))["main"].__globals__


def test_bench_threads_warms_up_rotates_and_divides_by_the_named_baseline(monkeypatch, capsys):
    """bench_threads.py divided by whichever fixed setting came out best (chosen after the timing) and,
    with --quick, printed one repeat as if it were a median; it reversed the order of four settings on
    odd rounds, so the middle ones never went first. The prune-run batches are stand-ins here."""
    ns = _script("bench_threads.py", monkeypatch)
    log: list[tuple[str, int]] = []
    seconds = {"auto": 3.0, "1": 4.0, "2": 2.0, "torch-default": 8.0}

    def fake_batch(setting, k, extra, work):
        log.append((setting, k))
        return [seconds[setting]] * k

    monkeypatch.setitem(ns, "batch", fake_batch)
    monkeypatch.setattr("sys.argv", ["bench_threads.py", "--quick", "--concurrency", "1", "--repeats", "4"])
    ns["main"]()
    settings = ["auto", "1", "2", "torch-default"]
    assert log[:4] == [(s, 1) for s in settings]  # one untimed run of each setting
    firsts = [log[4 + 4 * r][0] for r in range(4)]
    assert firsts == settings  # every setting goes first once in four rounds
    out = capsys.readouterr().out
    assert "ratio = setting / 1 (the baseline, named before timing)" in out
    assert "( 0.50x)" in out  # threads=2 against the baseline 1, although 2 is the fastest
    assert "auto / threads=1, worst over the concurrencies: 0.75x" in out
    assert "auto / threads=2, worst over the concurrencies: 1.50x" in out
    assert "single repeat" not in out  # --repeats 4 overrides --quick's single repeat

    log.clear()
    monkeypatch.setattr("sys.argv", ["bench_threads.py", "--quick", "--concurrency", "1"])
    ns["main"]()
    assert len(log) == 4 + 4  # warm-up and a single round
    assert capsys.readouterr().out.count("single repeat (no median)") >= 2


def test_bench_grand_names_the_loop_baseline_and_warms_up(monkeypatch, capsys):
    ns = _script("bench_grand.py", monkeypatch)
    seen: list[tuple[list[str], int, bool]] = []

    def recording(variants, repeats, warmup=True):
        seen.append((list(variants), repeats, warmup))
        return {name: [1.0] for name in variants}

    monkeypatch.setitem(ns, "interleaved", recording)
    monkeypatch.setattr("sys.argv", ["bench_grand.py", "--examples", "4", "--repeats", "1"])
    ns["main"]()
    assert seen == [(["loop", "vmap"], 1, True)]
    out = capsys.readouterr().out
    assert "single repeat (no median)" in out and out.count("load average") == 2


def test_bench_sweep_warms_up_each_variant_and_rotates_which_goes_first(monkeypatch, capsys):
    """bench_sweep.py's rounds listed the sizes and, within each, the variants in one order (reversed on
    odd rounds); the variant that goes first now rotates, and one repeat is labelled as such. The
    sweep processes are stand-ins that return made-up timings."""
    ns = _script("bench_sweep.py", monkeypatch)
    log: list[tuple[str, int]] = []

    def fake_sweep(n, tree, memo, work, tag):
        log.append((tag.rsplit("-", 2)[0] if not tag.startswith("warmup") else "warmup", n))
        return {"wall": 2.0 * n, "runs": [{"total": 1.0, "data": 0.1, "training": 0.5, "recording": 0.2}] * n, "hits": n - 1}

    monkeypatch.setitem(ns, "run_sweep", fake_sweep)
    variants = {"this": (REPO, True), "baseline": (REPO, True), "memo off": (REPO, False)}
    ns["benchmark"]([1, 2], 3, variants)
    assert log[:3] == [("warmup", 1)] * 3  # one untimed 1-run sweep per variant
    timed = log[3:]
    assert timed[:6] == [("this", 1), ("baseline", 1), ("memo off", 1), ("this", 2), ("baseline", 2), ("memo off", 2)]
    for n in (1, 2):  # at each size every variant goes first in one of the three rounds: a fixed or reversed order fails
        firsts = [[label for label, size in timed[6 * r : 6 * r + 6] if size == n][0] for r in range(3)]
        assert sorted(firsts) == sorted(variants), (n, firsts)
    out = capsys.readouterr().out
    assert "medians of 3 repeats" in out and out.count("load average before") == 1 and "single repeat" not in out
    ns["benchmark"]([1, 2], 1, variants)
    assert "single repeat (no median)" in capsys.readouterr().out
