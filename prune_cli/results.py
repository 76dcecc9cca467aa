"""CSV schema, provenance, atomic per-run files and locked appends to the shared CSVs.

Per-run files (in the run directory) are the source of truth. The shared CSVs in
`results_dir` are a convenience appended under a file lock (local disks only honour it), and
can always be rebuilt from the per-run files with `rebuild_shared`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

import prune_cli

# Keys that do not change what a run computes, so they do not change its hash or directory.
HASH_EXCLUDED = ("hydra", "results_dir", "shared_results", "dense_cache", "fail_fast")

# Columns every row carries, in order.
CONTEXT_COLUMNS = [
    "run_id", "config_hash", "name", "seed", "dataset", "model", "method", "score", "allocation",
    "structure", "schedule", "target_sparsity", "dense_cache",
]
PROVENANCE_COLUMNS = ["git_sha", "git_dirty", "prune_cli_version", "torch_version", "device", "timestamp"]

TABLES = {
    # file name in the run dir -> (shared file name, table-specific columns)
    "metrics.csv": ("runs.csv", ["phase", "split", "metric", "value", "dense_value"]),
    "per_class.csv": ("per_class.csv", ["phase", "split", "class", "support", "recall", "precision",
                                        "dense_recall", "dense_precision"]),
    "layers.csv": ("layers.csv", ["phase", "layer", "kind", "shape", "prunable", "params", "nonzero",
                                  "density", "flops_dense", "flops_sparse"]),
}


def columns(table: str, rows: list[dict] = ()) -> list[str]:
    """Column order of a table: fixed for the core tables, from the rows for a metric's own table."""
    if table in TABLES:
        middle = TABLES[table][1]
    else:
        fixed = set(CONTEXT_COLUMNS) | set(PROVENANCE_COLUMNS) | {"phase"}
        middle = ["phase"] + list(dict.fromkeys(k for r in rows for k in r if k not in fixed))
    return CONTEXT_COLUMNS + middle + PROVENANCE_COLUMNS


def shared_name(table: str) -> str:
    return TABLES[table][0] if table in TABLES else table


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config, without keys that only say where results go."""
    keys = [k for k in cfg.keys() if k not in HASH_EXCLUDED]
    plain = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_id(cfg: DictConfig) -> str:
    """Readable and deterministic: the same command always maps to the same run directory."""
    return f"{cfg.name}-{cfg.method.name}-{cfg.schedule.name}-s{cfg.sparsity:g}-seed{cfg.seed}-{config_hash(cfg)[:8]}"


def _git(*args: str) -> str | None:
    source = Path(prune_cli.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(device: torch.device) -> dict[str, Any]:
    """Where the numbers came from: code version, library versions, device, time."""
    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": sha or "unknown",
        "git_dirty": bool(dirty) if sha else None,
        "prune_cli_version": prune_cli.__version__,
        "torch_version": torch.__version__,
        "device": str(device) if device.type != "cuda" else f"cuda:{torch.cuda.get_device_name(device)}",
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def environment_record(run_provenance: dict[str, Any]) -> dict[str, Any]:
    """Saved as provenance.json in the run dir: the rows' provenance plus the rest of the environment."""
    import hydra
    import numpy
    import pandas

    record = dict(run_provenance)
    record.update(python=platform.python_version(), platform=platform.platform(),
                  numpy=numpy.__version__, pandas=pandas.__version__, hydra=hydra.__version__)
    try:
        import torchvision

        record["torchvision"] = torchvision.__version__
    except Exception:  # noqa: BLE001 - optional at run time
        record["torchvision"] = None
    return record


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def append_shared(results_dir: Path, frames: dict[str, pd.DataFrame], marker: Path | None = None) -> None:
    """Append each run table to its shared CSV under one lock, header written once; `marker` is
    created inside the lock, so a restarted run can tell that its rows are already there.

    A shared file whose header differs from the current schema is never mixed: that is an error
    that says how to rebuild it from the per-run files."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(results_dir / ".results.lock")):
        for table, df in frames.items():
            path = results_dir / shared_name(table)
            if path.exists() and path.stat().st_size > 0:
                with open(path) as f:
                    header = f.readline().strip().split(",")
                if header != list(df.columns):
                    raise RuntimeError(
                        f"{path} was written with different columns; move it away and run "
                        f"`python -m prune_cli.results {results_dir}` to rebuild it from the run directories.")
                text = df.to_csv(index=False, header=False)
            else:
                text = df.to_csv(index=False)
            with open(path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        if marker is not None:
            atomic_write_text(marker, "")


def rebuild_shared(results_dir: Path) -> None:
    """Recreate the shared CSVs from every completed run directory under results_dir/runs."""
    results_dir = Path(results_dir)
    complete = [p.parent for p in sorted(results_dir.glob("runs/*/COMPLETE"))]
    tables = sorted({f.name for d in complete for f in d.glob("*.csv") if f.name != "history.csv"})
    with FileLock(str(results_dir / ".results.lock")):
        for table in tables:
            parts = [pd.read_csv(d / table) for d in complete if (d / table).exists()]
            atomic_write_csv(pd.concat(parts, ignore_index=True), results_dir / shared_name(table))


if __name__ == "__main__":
    import sys

    rebuild_shared(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
