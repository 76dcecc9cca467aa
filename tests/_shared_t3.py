"""The default config composed once per test process, and value overrides applied to a copy of it.

A Hydra composition reads and merges about 30 YAML files and schema nodes (0.3-0.4 s; Hydra builds a
new config repository for each, docs/performance.md "Sweeps"). Tests that only change values of the
default config (`metrics.speedup.batch_size=0`, `method.structure=bcr`) do not need a composition of
their own: Hydra applies a value override to the composed config with
`OmegaConf.update(cfg, key, value, merge=True)`, in command-line order, which is what `with_values`
does (tests/test_report_presets.py::test_preset_points_compose_like_hydra checks this shortcut against
full compositions). Choices of a config group (`method=random`, `metrics=full`) still need
`helpers.composed`."""

from __future__ import annotations

import copy
import functools

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from tests.helpers import REPO, composed


@functools.cache
def _default_config() -> DictConfig:
    return composed()


def with_values(*overrides: str, base: DictConfig | None = None) -> DictConfig:
    """A copy of `base` (default: the default config, composed once) with the value overrides
    `key=value` applied the way Hydra applies them to a composed config."""
    cfg = copy.deepcopy(_default_config() if base is None else base)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.is_sweep_override() or override.input_line[0] in "+~" or (REPO / "configs" / key).is_dir():
            raise ValueError(f"with_values takes value overrides key=value, not {override.input_line!r} (compose it)")
        OmegaConf.update(cfg, key, override.value(), merge=True)
    return cfg


def xdist_group(name: str):
    """`pytest.mark.xdist_group(name)` where pytest-xdist runs the tests (its workers, --dist loadgroup:
    tests sharing a module fixture build it once), nothing elsewhere (-p no:xdist knows no such mark)."""
    import os

    import pytest

    return pytest.mark.xdist_group(name) if "PYTEST_XDIST_WORKER" in os.environ else lambda test: test
