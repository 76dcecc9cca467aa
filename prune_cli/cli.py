"""Console entry point `prune-run`: compose the config (Hydra), validate it, run the experiment."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .config import register_schemas, validate
from .errors import ConfigError, PruneCliError
from .results import atomic_write_text, run_id

log = logging.getLogger("prune_cli")

FAILED_FILE = "failed.json"  # written into the run directory of a run that stopped with an error


def _config_path() -> str:
    """The top-level configs/ of a source checkout, else the copy shipped inside the package."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if (checkout / "config.yaml").exists():
        return str(checkout)
    return "pkg://prune_cli.configs"


register_schemas()
if not OmegaConf.has_resolver("run_id"):
    OmegaConf.register_new_resolver("run_id", lambda *, _root_: run_id(_root_), use_cache=False)


@hydra.main(version_base="1.3", config_path=_config_path(), config_name="config")
def main(cfg: DictConfig) -> None:
    from .experiment import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    _limit_threads()
    try:
        validate(cfg)
        run(cfg, run_dir)
    except Exception as err:  # noqa: BLE001 - every failure is recorded; the sweep decides whether to go on
        if not in_sweep or cfg.get("fail_fast", False):
            _fail(err, run_dir, hydra_cfg, cfg, in_sweep)
            raise  # errors that are not PruneCliError (traceback); fail-fast sweeps with parallel launchers
        _record_failure(err, run_dir, hydra_cfg, cfg)
        log.error("run %s failed (%s: %s); details in %s; the sweep goes on (fail_fast=true stops it)",
                  run_dir.name, type(err).__name__, err, run_dir / FAILED_FILE)
        print(f"prune-run: error in {run_dir.name}: {err}", file=sys.stderr)
    else:
        (run_dir / FAILED_FILE).unlink(missing_ok=True)  # an earlier attempt failed; this one completed


def _fail(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig, in_sweep: bool) -> None:
    """A single run stops as before: a rejected config leaves no directory, prune-cli errors exit 2."""
    if isinstance(err, ConfigError) and not in_sweep:
        _remove_if_empty(run_dir)
    else:
        _record_failure(err, run_dir, hydra_cfg, cfg)
    if isinstance(err, PruneCliError) and not in_sweep:
        log.debug("stopping: %s", err)  # keeps the reason in the run's log file
        print(f"prune-run: error: {err}", file=sys.stderr)
        sys.exit(2)
    if in_sweep:
        log.error("run %s failed (%s: %s); fail_fast=true: stopping the sweep", run_dir.name, type(err).__name__, err)
        print(f"prune-run: error in {run_dir.name}: {err} (fail_fast: sweep stopped)", file=sys.stderr)
        if "BasicLauncher" in str(hydra_cfg.launcher.get("_target_", "")):
            sys.exit(1)  # jobs run one after another in this process: stop before the next one
        # parallel launchers: the raised error fails this job; Hydra stops after the current batch


def _record_failure(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig) -> None:
    """failed.json in the run directory: what failed and how, for the sweep summary and prune-report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "failed", "run_dir": str(run_dir), "error_type": type(err).__name__, "message": str(err),
        "config_error": isinstance(err, ConfigError),
        "overrides": list(hydra_cfg.overrides.task), "job_num": hydra_cfg.job.get("num"),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "traceback": traceback.format_exc(),
    }
    atomic_write_text(run_dir / FAILED_FILE, json.dumps(record, indent=2, default=str))


def _limit_threads() -> None:
    """Honour OMP_NUM_THREADS set per job by a launcher (hydra.job.env_set): torch was imported, and
    sized its thread pool, before Hydra set the variable, so apply it explicitly."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        import torch

        if torch.get_num_threads() != int(value):
            torch.set_num_threads(int(value))
        log.info("torch intra-op threads: %d (OMP_NUM_THREADS)", torch.get_num_threads())


def _remove_if_empty(run_dir: Path) -> None:
    """A run rejected before it started leaves no directory behind (only Hydra's own files were there)."""
    if run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
