"""prune-report's scaling-law points (prune_cli/report/scaling.py) on hand-made points whose seed
means are known."""

from __future__ import annotations

import pandas as pd
import pytest

from prune_cli.report import scaling


def test_dense_error_is_a_mean_over_seeds_not_runs(monkeypatch):
    """Seed 0 ran at 6 densities with dense error 0.10, seed 1 at one with 0.30: eps_np, the seed
    mean of the dense error, is 0.20. It was the run mean, (6 x 0.10 + 0.30) / 7 = 0.1286, which
    weights a seed by how many densities it ran."""
    densities = [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625]
    runs = [(0, d, 0.10) for d in densities] + [(1, 0.5, 0.30)]
    points = pd.DataFrame(
        [
            {
                "family": "f",
                "dataset": "toy",
                "model": "mlp",
                "method": "magnitude",
                "schedule": "oneshot",
                "dataset_size": 100.0,
                "run_id": f"r{i}",
                "seed": seed,
                "density": density,
                "target_density": density,
                "error": eps_np + (1 - density) * 0.3,
                "eps_np": eps_np,
            }
            for i, (seed, density, eps_np) in enumerate(runs)
        ]
    )
    seen = []
    real = scaling.fit_scaling_law
    monkeypatch.setattr(scaling, "fit_scaling_law", lambda mean, scales: (seen.append(mean), real(mean, scales))[1])
    scaling.fit_families(points)
    (mean,) = seen
    assert mean["eps_np"].tolist() == pytest.approx([0.20] * len(densities))
