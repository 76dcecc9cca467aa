"""Console entry point `prune-run`: compose the config (Hydra), validate it, run the experiment."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import register_schemas, validate
from .errors import ConfigError, PruneCliError
from .results import run_id

log = logging.getLogger("prune_cli")


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

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate(cfg)
        run(cfg, run_dir)
    except PruneCliError as err:
        log.debug("stopping: %s", err)  # keeps the reason in the run's log file
        if isinstance(err, ConfigError):
            _remove_if_empty(run_dir)
        print(f"prune-run: error: {err}", file=sys.stderr)
        sys.exit(2)


def _remove_if_empty(run_dir: Path) -> None:
    """A run rejected before it started leaves no directory behind (only Hydra's own files were there)."""
    if run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
