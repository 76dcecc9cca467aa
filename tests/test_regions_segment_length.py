"""The default segment length of segment_kind=direction is what docs/regions.md says it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prune_cli.metrics.regions import default_segment_length


def test_default_segment_length_is_the_median_of_the_full_distance_matrix():
    x = torch.randn(200, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    length = default_segment_length(x, torch.Generator().manual_seed(7))
    chosen = torch.randperm(200, generator=torch.Generator().manual_seed(7))[:64].numpy()
    sample = x.numpy().reshape(200, -1)[chosen]
    full = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(axis=2))  # 64 x 64, zero diagonal
    # torch.median's lower middle value of the 4096 entries, self-distances included
    assert length == pytest.approx(np.sort(full.ravel())[(full.size - 1) // 2], rel=1e-12)
    pairs = np.sort(full[np.triu_indices(64, k=1)])  # the 2016 pairwise distances
    assert length == pytest.approx(pairs[991], rel=1e-12)  # the 992nd smallest
    assert length < np.median(pairs)
