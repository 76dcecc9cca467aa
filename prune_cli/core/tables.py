"""The result tables: their columns, in order, and the shared file each per-run table goes to."""

from __future__ import annotations

import heapq

from pathlib import Path

# Columns every row carries, in order.
CONTEXT_COLUMNS = [
    "run_id",
    "config_hash",
    "name",
    "seed",
    "dataset",
    "model",
    "method",
    "score",
    "allocation",
    "structure",
    "schedule",
    "target_sparsity",
    "dense_cache",
]
PROVENANCE_COLUMNS = ["git_sha", "git_dirty", "prune_cli_version", "torch_version", "device", "timestamp"]

TABLES = {
    # file name in the run dir -> (shared file name, table-specific columns)
    "metrics.csv": ("runs.csv", ["phase", "split", "metric", "value", "dense_value"]),
    "per_class.csv": (
        "per_class.csv",
        ["phase", "split", "class", "support", "recall", "precision", "dense_recall", "dense_precision"],
    ),
    "layers.csv": (
        "layers.csv",
        ["phase", "layer", "kind", "shape", "prunable", "params", "nonzero", "density", "flops_dense", "flops_sparse"],
    ),
}
# Columns that hold text whatever it looks like: labels, hashes and versions. Read as numbers (or as
# missing values), a run named "NA" became NaN, "007" became 7, and the config hashes 1e2345678901 and
# 1e9876543210 both became infinity (prune_cli/results reads them as written).
TEXT_COLUMNS = frozenset(
    {
        *(c for c in CONTEXT_COLUMNS if c not in ("seed", "target_sparsity")),
        *(c for c in PROVENANCE_COLUMNS if c != "git_dirty"),
        "phase",
        "split",
        "metric",
        "layer",
        "kind",
        "shape",
    }
)
CORE_TABLES = {table: shared for table, (shared, _) in TABLES.items()}  # per-run file -> shared file
# The per-run tables every finished run holds, whatever its schedule and options: each schedule's plan
# records the dense phase first (prune_cli/schedules/), and every record writes metrics.csv
# (prune_cli/run/recorder.py); per_class.csv and layers.csv are not written with metrics.per_class=false or
# metrics.layers=false, a metric's table only with that metric. A run directory without one is damaged.
ALWAYS_WRITTEN = ("metrics.csv",)
NOT_SHARED = ("history.csv",)  # per-epoch training curves stay in the run directory
DATA_PRUNING_TABLE = "data_pruning.csv"  # per class, the training examples kept (data_pruning)
LAYER_PRUNING_TABLE = "layer_pruning.csv"  # per residual section, whether it was removed (schedule=layer_pruning)
# Tables the run itself writes, in its directory or shared: a metric's own table takes another name.
RUN_TABLES = frozenset({*TABLES, *CORE_TABLES.values(), *NOT_SHARED, DATA_PRUNING_TABLE, LAYER_PRUNING_TABLE})
# The tables of the built-in metrics (MetricResult.tables of prune_cli/metrics/): with RUN_TABLES, the names
# a rebuild may remove from results_dir when no completed run writes them any more (tests/test_shared_tables.py
# checks that every table name in prune_cli/metrics is listed here).
BUILTIN_METRIC_TABLES = frozenset(
    {
        "regions.csv",
        "hessian_density.csv",
        "hessian_slq_nodes.csv",
        "latency.csv",
        "pruning_limit_sweep.csv",
        "recall_distortion.csv",
        "similarity.csv",
        "speedup.csv",
    }
)


def columns(table: str, rows: list[dict] = ()) -> list[str]:
    """Column order of a table: fixed for the core tables, from the rows for a metric's own table."""
    if table in TABLES:
        middle = TABLES[table][1]
    else:
        fixed = set(CONTEXT_COLUMNS) | set(PROVENANCE_COLUMNS) | {"phase"}
        middle = ["phase"] + list(dict.fromkeys(k for r in rows for k in r if k not in fixed))
    return CONTEXT_COLUMNS + middle + PROVENANCE_COLUMNS


def union_columns(headers) -> list[str]:
    """The columns of several headers of one table in one order, whatever order the headers come in
    (a shared table grown run by run and its rebuild from the run directories get the same header):
    every header's own column order is kept, columns no header orders against each other (two
    data-pruning rules' `quota` and `mean_el2n`) go alphabetically, and the provenance columns come
    last (README "CSV columns": every row ends with provenance). Before, new columns followed
    `timestamp`, in the order the runs happened to come. Headers that order two columns differently
    (a grown table of an older prune-cli) are merged as far as they agree. One header is kept as it is."""
    headers = [list(h) for h in headers]
    if len({tuple(h) for h in headers}) == 1:
        return headers[0]
    provenance = [c for c in PROVENANCE_COLUMNS if any(c in h for h in headers)]
    headers = [[c for c in h if c not in PROVENANCE_COLUMNS] for h in headers]
    nodes = list(dict.fromkeys(c for h in headers for c in h))
    after: dict[str, set[str]] = {c: set() for c in nodes}
    before = dict.fromkeys(nodes, 0)
    for h in headers:
        for a, b in zip(h, h[1:]):
            if b not in after[a]:
                after[a].add(b)
                before[b] += 1
    ready = [c for c in nodes if before[c] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(nodes):
        if not ready:  # headers that disagree: take the least constrained column left, alphabetically
            ready = [min((c for c in nodes if c not in placed), key=lambda c: (before[c], c))]
        c = heapq.heappop(ready)
        if c in placed:
            continue
        order.append(c)
        placed.add(c)
        for d in sorted(after[c]):
            before[d] -= 1
            if before[d] == 0 and d not in placed:
                heapq.heappush(ready, d)
    return order + provenance


def shared_name(table: str) -> str:
    """The shared file a per-run table is appended to (metrics.csv -> runs.csv)."""
    return CORE_TABLES.get(table, table)


# Files of a run directory whose first line is its run id (prune_cli/run/experiment.py writes COMPLETE,
# prune_cli/run/shared_tables.py the marker SHARED_APPENDED).
RUN_ID_FILES = ("COMPLETE", "SHARED_APPENDED")


def recorded_run_id(run_dir: Path) -> str | None:
    """The run id a run directory's COMPLETE or marker names (its first line); None when neither does."""
    for name in RUN_ID_FILES:
        try:
            first = (run_dir / name).read_text().split("\n", 1)[0].strip()
        except (OSError, UnicodeDecodeError):
            continue
        if first:
            return first
    return None


PROVENANCE_FILE = "provenance.json"  # a run's environment and data folders (prune_cli/run/results.py)


def recorded_data_folders(run_dir: Path) -> dict:
    """What a run's provenance.json recorded of its data folders when it started: {"data_location": {"dataset.root":
    folder}, "data_folder_id": {"dataset.root": [device, inode]}} ({} when there is none: a run started before
    2026-12-03, a dataset without data options, or a record that cannot be read; prune_cli/core/paths.py
    `other_data_folder` compares them)."""
    import json

    try:
        record = json.loads((Path(run_dir) / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {k: record[k] for k in ("data_location", "data_folder_id", "input_files") if isinstance(record.get(k), dict)}


def dir_run_id(run_dir: Path) -> str:
    """The run id a run directory holds (first line of COMPLETE or of its marker), else its name."""
    return recorded_run_id(run_dir) or run_dir.name


def one_per_run_id(run_dirs: list[Path]) -> tuple[list[Path], dict[str, str]]:
    """Each run id once: of several directories holding one run id (a copy such as "<id> (copy)"), the
    one named by its run id is kept (else the first by name); returns the kept directories, in the
    given order, and {skipped directory name: why}, so a copied run never counts twice."""
    by_id: dict[str, list[Path]] = {}
    for d in run_dirs:
        by_id.setdefault(dir_run_id(d), []).append(d)
    kept, skipped = set(), {}
    for rid, dirs in by_id.items():
        keep = next((d for d in dirs if d.name == rid), sorted(dirs)[0])
        kept.add(keep)
        for d in dirs:
            if d != keep:
                skipped[d.name] = f"a second directory of run {rid} (its name is not its run id)"
    return [d for d in run_dirs if d in kept], skipped
