"""The file names of the figures prune-report draws (docs/report.md "Output folder"): the order build.py
writes them in, and the set report.html may embed (html.py embeds no other image). Standard library only."""

from __future__ import annotations

PLOT_ORDER = (
    "accuracy_vs_compression.png",
    "recall_change_vs_dense.png",
    "regions_vs_sparsity.png",
    "hessian_density.png",
    "ntk_vs_width.png",
)

# every figure of a report: those above and the scaling law's (scaling.py)
REPORT_FIGURES = frozenset((*PLOT_ORDER, "scaling_fit.png"))
