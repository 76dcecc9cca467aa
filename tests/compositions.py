"""Test configs composed once per test process (issue 12, item 5; docs/performance.md#test-suite).

A Hydra composition reads and merges about 30 YAML files and schema nodes (0.3-0.4 s; Hydra builds a new
config repository for each). Tests compose many configs that differ only in values: `composed_once`
composes each set of config-group choices once and applies the value overrides to a copy with Hydra's
own step for them. tests/test_compositions.py checks the shortcut against full compositions.
"""

from __future__ import annotations

import copy
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from tests.helpers import REPO, composed

_GROUP_BASES: dict[tuple[str, ...], DictConfig] = {}


def _is_group_choice(override: str) -> bool:
    """`method=gp`, `experiment/points@_global_=it4`: a choice of a config group (a folder of configs/),
    which Hydra resolves in the defaults list; everything else is a value override."""
    key = override.split("=", 1)[0].split("@", 1)[0]
    return "." not in key and ("/" in key or (REPO / "configs" / key).is_dir())


def composed_once(*overrides) -> DictConfig:
    """tests/helpers.py's `composed` with the costly part done once per set of group choices in this
    process: Hydra composes the defaults of those choices (the defaults tree, one YAML file or schema
    per option: most of a composition's time) once, and each call applies its value overrides to a
    copy with Hydra's own code for them, `ConfigLoaderImpl._apply_overrides_to_config` (the function
    Hydra calls after composing the defaults, on the same struct-mode config). Overrides that add or
    delete keys (`+`, `~`) or set `hydra.*` take the whole composition. tests/test_compositions.py
    checks the two agree."""
    args = [o for x in overrides for o in ([x] if isinstance(x, str) else x)]
    if any(a.startswith(("+", "~", "hydra.", "hydra/")) for a in args):
        return composed(args)
    choices = tuple(a for a in args if _is_group_choice(a))
    if choices not in _GROUP_BASES:
        _GROUP_BASES[choices] = composed(list(choices))
    cfg = copy.deepcopy(_GROUP_BASES[choices])
    values = OverridesParser.create().parse_overrides([a for a in args if not _is_group_choice(a)])
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)  # noqa: SLF001 - Hydra's own step
    return cfg


def validated_once(*overrides) -> DictConfig:
    """`composed_once`, then the pre-run pass (prune_cli/run/prevalidate.py), as helpers.validated."""
    from prune_cli.run.prevalidate import validate

    cfg = composed_once(*overrides)
    validate(cfg)
    return cfg


def compose_once(overrides: list[str], results_dir: Path) -> DictConfig:
    """tests/helpers.py's `compose` (validated, results in `results_dir`) through `composed_once`."""
    return validated_once([*overrides, f"results_dir={results_dir}"])
