"""prune-report audit of 2026-12-03 (sixth session): the direction of the cost metrics, and wording.

The report states which value of a metric is better (docs/report.md "Which way is better"). The README's
definitions fix the cost metrics' directions against the ones already stated: theoretical_speedup =
flops_dense / flops_sparse, so it rises as flops_sparse falls, like compression_ratio (all / nonzero
parameters) as params_nonzero falls; at the same dense model a higher speedup is the smaller model."""

from __future__ import annotations

import pytest

from prune_cli.report.compare import better_direction

OPPOSITE = {"higher": "lower", "lower": "higher"}


@pytest.mark.parametrize(
    "ratio, cost",
    [("theoretical_speedup", "flops_sparse"), ("compression_ratio", "params_nonzero"), ("compression_ratio", "prunable_nonzero")],
)
def test_a_cost_and_the_ratio_over_it_point_opposite_ways(ratio, cost):
    # by the definition: ratio = dense / cost with the dense value fixed, so ratio is higher exactly where cost is lower
    dense, costs = 1000.0, [100.0, 250.0]
    assert (dense / costs[0] > dense / costs[1]) == (costs[0] < costs[1])
    assert better_direction(ratio) == "higher", ratio  # theoretical_speedup had none ("not known to the report")
    assert better_direction(cost) == OPPOSITE[better_direction(ratio)], cost


def test_a_family_at_one_density_is_not_plural():
    from prune_cli.report.scaling import _family_lines

    row = {"method": "random", "dataset": "mnist1d", "model": "mlp", "schedule": "oneshot", "family": "f-1"}
    row.update(n_densities=1, n_seeds=3, status="skipped", reason="one density")
    assert ", 1 density, 3 seed(s): not fitted" in _family_lines(row)[0]
    assert ", 2 densities, " in _family_lines({**row, "n_densities": 2})[0]
