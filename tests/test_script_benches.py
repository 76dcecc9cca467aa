"""The benchmark scripts under scripts/ measure what they print: each timed call does the work it
names (no cache hit in a repeat), variants compared by a ratio are timed in the same rounds, and an
option a script would ignore is refused. No wall-clock thresholds: the tests count calls and check
the order of the timed work."""

from __future__ import annotations

import runpy

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
    assert len(hits) == 2 * 3 * 3  # two nets, three repeats, three layers each
    assert not any(hits), hits
    assert capsys.readouterr().out.count("montecarlo median") == 2
