"""Small statistics shared by the metrics and the report."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """n, mean, std (n-1), and the Student-t interval mean -/+ t_{(1+c)/2, n-1} std / sqrt(n) of the finite values."""
    from scipy.special import stdtrit  # the quantile that scipy.stats.t.ppf evaluates, without its per-call argument handling

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    half = float(stdtrit(n - 1, (1 + confidence) / 2) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n_seeds": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "ci_half": half}
