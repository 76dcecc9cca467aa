"""A run's identity: the hash of its resolved config and the readable run id built from it.

The run id names the run directory and the dense-cache key is derived from the same config, so
a renamed, added or retyped config key moves every run directory (`tests/test_config_identity.py`
pins a set of ids)."""

from __future__ import annotations

import hashlib
import json
import re

from omegaconf import Container, DictConfig, OmegaConf

from . import accel
from .paths import with_normal_paths

# Keys that do not change what a run computes, so they do not change its hash or directory.
HASH_EXCLUDED = ("hydra", "results_dir", "shared_results", "dense_cache", "fail_fast", "allow_failures", "plugins", "threads")

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config, without keys that only say where results go, and without the
    disabled node of an optional metric added after the built-in ones (its schema says
    `hashed_when_disabled = False`): installing a metric plugin must not change every run id."""
    keys = [k for k in cfg.keys() if k not in HASH_EXCLUDED and not _no_data_pruning(cfg, k) and not _default_accel(cfg, k)]
    # Each kept node converted in place (its interpolations resolve against the whole config): the
    # same dict as converting OmegaConf.masked_copy(cfg, keys), without deep-copying the config first
    # (3.5x faster; computed several times per run, docs/performance.md "Sweeps").
    plain = {k: _plain(cfg, k) for k in keys}
    metrics = cfg.get("metrics") if "metrics" in keys else None
    if isinstance(metrics, DictConfig):
        for name in list(plain["metrics"]):
            node = metrics._get_node(name)
            if (
                isinstance(node, DictConfig)
                and not node.get("enabled", False)
                and not getattr(OmegaConf.get_type(node), "hashed_when_disabled", False)
            ):
                del plain["metrics"][name]
    if isinstance(plain.get("method"), dict):
        for option in unhashed_plugin_options(plain["method"]):
            del plain["method"][option]
    if isinstance(plain.get("schedule"), dict):
        plain["schedule"] = decided_schedule(plain["schedule"])
    if isinstance(plain.get("dataset"), dict):  # one spelling of the data's folder (`/x/`, `/x/.` are `/x`)
        plain["dataset"] = with_normal_paths(cfg._get_node("dataset"), plain["dataset"])
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def decided_schedule(schedule: dict) -> dict:
    """The schedule node (a plain dict) with a null `lr_rewind` replaced by the value it stands for
    (config_base.ScheduleConfig.lr_rewinds): null means "decided by the other options". The run id hashes
    that value, so that it tells weight rewinding with the LR schedule resumed from the hybrid that retrains
    all epochs while runs saved before the null default (false) keep their ids; the experiment keys of
    prune_cli.results and the recall-distortion setups compare it too, so that a run saved with false and
    one saved with null, the same experiment, are not two. A copy; the input is not changed."""
    if "lr_rewind" not in schedule or schedule["lr_rewind"] is not None:
        return schedule
    from .config_base import ScheduleConfig

    return {**schedule, "lr_rewind": ScheduleConfig.lr_rewinds(schedule)}


def _plain(cfg: DictConfig, key) -> object:
    node = cfg._get_node(key)
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, Container) else cfg[key]


def unhashed_plugin_options(method: dict, declared=None) -> set[str]:
    """The options of allocations and structures (prune_cli/core/plugins.py `plugin_options`) left out
    of the hash: those of a plugin that is not chosen, which can only hold their default (an override
    of one is rejected as having no effect; a sweep's, where another job's plugin reads it, has none),
    so installing a plugin with options keeps every run id. Options that were MethodConfig fields
    before plugins declared them (`in_every_run_id`) stay in every hash, so that the run ids from
    before are kept. `declared`: the PluginOptions to go by (default: this process's index)."""
    from . import plugins

    declared = (plugins.plugin_options() if declared is None else declared).values()
    chosen = {o for d in declared if method.get(d.kind) == d.name for o in d.names()}
    kept = chosen | {o for d in declared if d.in_every_run_id for o in d.names()}
    return {o for d in declared for o in d.names() if o not in kept and o in method}


def _no_data_pruning(cfg: DictConfig, key: str) -> bool:
    """`data_pruning=none` (the default) is left out of the hash, so adding the data-pruning axis
    kept every earlier run id (docs/data_pruning.md)."""
    return key == "data_pruning" and cfg.get("data_pruning", {}).get("name", "none") == "none"


def _default_accel(cfg: DictConfig, key: str) -> bool:
    """`accel` with every default (fp32, eager, contiguous, non-deterministic) is left out of the
    hash, so adding the accelerator settings kept every earlier run id; any other value (bf16 changes
    the numbers) is hashed (prune_cli/core/accel.py)."""
    return key == "accel" and accel.is_default(cfg.get("accel"))


def run_id(cfg: DictConfig) -> str:
    """Readable and deterministic: the same command always maps to the same run directory."""
    return f"{cfg.name}-{cfg.method.name}-{cfg.schedule.name}-s{cfg.sparsity:g}-seed{cfg.seed}-{config_hash(cfg)[:8]}"


def safe_name(name) -> bool:
    """`name` becomes part of a directory name: letters, digits and . _ + - only, no '..'."""
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and ".." not in name
