"""The points of the NTK figure (plots.ntk_vs_width), without matplotlib: build.py reads them too,
for the lines the report writes under the figure list (docs/report.md "Runs a key cannot tell apart")."""

from __future__ import annotations

from typing import NamedTuple, Optional

import pandas as pd

from .mixing import runs_of, without_mixed
from .regions import _part, _varying

NTK_FIGURE = "ntk_vs_width.png"
# rows of the NTK metric that are its settings, not measurements (prune_cli/metrics/ntk.py: the number of inputs used)
NTK_SETTINGS = ("ntk_num_inputs",)


class NtkPoints(NamedTuple):
    """`table`: one row per (metric, curve, width, seed) with the seed's mean value (runs repeating a
    seed with one configuration averaged); `notes`: one line per (curve, width) left out because one
    seed has runs of several configurations there."""

    table: pd.DataFrame
    notes: list[str]


def _final_phase(df: pd.DataFrame) -> pd.DataFrame:
    present = set(df["phase"])
    return df[df["phase"] == ("finetuned" if "finetuned" in present else "pruned" if "pruned" in present else sorted(present)[0])]


def ntk_points(metrics: pd.DataFrame, configs: dict[str, dict]) -> Optional[NtkPoints]:
    """NTK metrics (names starting with ntk_, less the settings NTK_SETTINGS) of the final sparse model per curve (method, target
    sparsity and the config keys that vary, model.widths aside) and width (model.widths[0] of each
    run's config.yaml). The x axis shows the first width only, so runs of widths [64, 64] and
    [64, 128] land on one point: where one seed has runs of several configurations at a (curve,
    width), that point is left out (mixing.py), not averaged. None without NTK rows of a known width."""
    if not len(metrics) or "metric" not in metrics.columns:
        return None
    names = metrics["metric"].astype(str)
    ntk = metrics[names.str.startswith("ntk_") & ~names.isin(NTK_SETTINGS) & (metrics["phase"] != "dense")].copy()
    widths = {run: ((cfg.get("model") or {}).get("widths") or [None])[0] for run, cfg in configs.items()}
    ntk["width"] = ntk["run_id"].map(widths)
    ntk = ntk[ntk["width"].notna()]
    if not len(ntk):
        return None
    ntk = _final_phase(ntk)
    keys = ["method", "target_sparsity"] + _varying(ntk, candidates=(), skip=("model.widths",))
    ntk["curve"] = [
        " ".join(f"sparsity {_part(k, r[k])}" if k == "target_sparsity" else _part(k, r[k]) for k in keys)
        for r in ntk[keys].to_dict(orient="records")
    ]
    notes = []
    if "seed" in ntk.columns:
        ntk, mixed = without_mixed(ntk, ["curve", "width"])
        notes = [
            f"{NTK_FIGURE}: {curve} at width {float(width):g} left out, its {runs_of(info)} that the figure does not tell "
            f"apart are not averaged as repeated runs (x is model.widths[0]: widths that differ after the first layer, "
            f"such as [64, 64] and [64, 128], share a point)"
            for (curve, width), info in mixed.items()
        ]
    table = ntk.groupby(["metric", "curve", "width", "seed"], sort=True)["value"].mean().reset_index()
    return NtkPoints(table, notes)
