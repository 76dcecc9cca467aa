"""PNG of plane slices with every activation region filled (one colour per region)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402


def plot_slices(panels: list[tuple[str, object]], path: Path, seed: int = 0) -> Path:
    """One panel per (title, PlaneCount); regions get seeded random colours, edges drawn thin."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    for ax, (title, result) in zip(axes[0], panels):
        colours = np.random.default_rng(seed).random((len(result.polygons), 3)) * 0.8 + 0.2
        ax.add_collection(PolyCollection(result.polygons, facecolors=colours, edgecolors="k", linewidths=0.1))
        verts = np.concatenate(result.polygons)
        ax.set_xlim(verts[:, 0].min(), verts[:, 0].max())
        ax.set_ylim(verts[:, 1].min(), verts[:, 1].max())
        ax.set_aspect("equal")
        ax.set_title(f"{title}: {result.count} regions")
        ax.set_xlabel("u1")
        ax.set_ylabel("u2")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
