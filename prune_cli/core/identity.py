"""A run's identity: the hash of its resolved config and the readable run id built from it.

The run id names the run directory and the dense-cache key is derived from the same config, so
a renamed, added or retyped config key moves every run directory (`tests/test_config_identity.py`
pins a set of ids)."""

from __future__ import annotations

import hashlib
import json
import re

from omegaconf import DictConfig, OmegaConf

# Keys that do not change what a run computes, so they do not change its hash or directory.
HASH_EXCLUDED = ("hydra", "results_dir", "shared_results", "dense_cache", "fail_fast", "allow_failures")

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config, without keys that only say where results go."""
    keys = [k for k in cfg.keys() if k not in HASH_EXCLUDED]
    plain = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_id(cfg: DictConfig) -> str:
    """Readable and deterministic: the same command always maps to the same run directory."""
    return f"{cfg.name}-{cfg.method.name}-{cfg.schedule.name}-s{cfg.sparsity:g}-seed{cfg.seed}-{config_hash(cfg)[:8]}"


def safe_name(name) -> bool:
    """`name` becomes part of a directory name: letters, digits and . _ + - only, no '..'."""
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and ".." not in name
