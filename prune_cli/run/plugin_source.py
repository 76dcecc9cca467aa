"""Hydra reads each plugin's config schema from the plugin itself, imported only when chosen.

Every option's YAML starts with `defaults: [/schema/<group>/<name>@_here_]`. Hydra looks those
up along its search path; `configs/config.yaml` adds `prune-plugins://` to it, served by
`PluginSchemaSource`: `schema/method/gp` imports the module that declares `@config_schema("method",
"gp")` (found by the plugin index, prune_cli/core/plugins.py) and returns its dataclass. Only the
chosen dataset, model, method and schedule modules are imported at composition.

An option without a YAML file (a plugin added with `plugins=[my_lab.scores]` or an entry point) is
served too: `method/taylor` is the dataclass's defaults, so `prune-run method=taylor` works with
nothing but the plugin module. `metrics/base` is the assembled metrics schema (one node per metric
plugin, prune_cli/metrics/__init__.py `metrics_config`).
"""

from __future__ import annotations

import copy
from typing import List, Optional

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import DictConfig, OmegaConf

from ..core import plugins

SCHEME = "prune-plugins"


def _schema_class(group: str, name: str) -> type:
    if (group, name) == ("metrics", "base"):
        from ..metrics import metrics_config

        return metrics_config()
    return plugins.schema(group, name)


_STRUCTURED: dict[type, DictConfig] = {}


def _structured(cls: type) -> DictConfig:
    """A fresh copy of `OmegaConf.structured(cls)`, converted once per process: Hydra loads the
    schemas again for every job of a sweep (twice: the sweeper's check of the job's overrides, then the
    job), and converting a dataclass costs several times more than copying the node it gives
    (the metrics schema, one node per metric plugin, most). Keyed by the class itself, so a metrics
    schema assembled again with more plugins is converted again."""
    if cls not in _STRUCTURED:
        _STRUCTURED[cls] = OmegaConf.structured(cls)
    return copy.deepcopy(_STRUCTURED[cls])


def _groups() -> set[str]:
    from ..core.config_base import SCHEMAS

    return {g for g, _ in plugins.index().schemas} | set(SCHEMAS) | {"metrics"}


def _options(group: str) -> list[str]:
    """Schema names of `group`; `metrics` has the one assembled schema."""
    return ["base"] if group == "metrics" else plugins.schema_names(group)


def _outside_options(group: str) -> list[str]:
    """Options of `group` declared by plugins from outside the repository (they may have no YAML)."""
    idx = plugins.index()
    return sorted(n for (g, n), module in idx.schemas.items() if g == group and module in idx.outside)


def _name_an_option_without_yaml(node: DictConfig, group: str, name: str) -> None:
    """An outside plugin's option served without YAML is named by its option name where its dataclass
    leaves `name` unset (the built-in schemas leave it to their YAML, and a plugin author copies them);
    a method's `score`, left unset, is the score registered under the same name (one file declaring
    `@config_schema("method", "taylor")` and `@register_score("taylor", ...)`). Anything else left unset
    is named by the pre-run pass (prune_cli/run/prevalidate.py `check_missing_values`)."""
    keys = set(node.keys())  # `in node` is False for an unset value
    if "name" in keys and OmegaConf.is_missing(node, "name"):
        node.name = name
    if group == "method" and "score" in keys and OmegaConf.is_missing(node, "score") and ("score", name) in plugins.index().kinds:
        node.score = name


class PluginSchemaSource(ConfigSource):
    """A read-only Hydra config source over the plugin index (no files)."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    @staticmethod
    def _parts(path: str) -> list[str]:
        return [p for p in path.strip("/").split("/") if p]

    def _config_key(self, config_path: str) -> Optional[tuple[bool, str, str]]:
        """(is a schema, group, name) of a config path this source serves, or None."""
        path = config_path[:-5] if config_path.endswith(".yaml") else config_path
        parts = self._parts(path)
        if len(parts) == 3 and parts[0] == "schema" and parts[2] in _options(parts[1]):
            return True, parts[1], parts[2]
        if len(parts) == 2 and parts[0] in _groups() and parts[0] != "metrics":
            # an option without YAML: an outside plugin's schema name in its group (built-in options
            # all have YAML files, which come first on the search path)
            if parts[1] in _outside_options(parts[0]):
                return False, parts[0], parts[1]
        return None

    def is_group(self, config_path: str) -> bool:
        parts = self._parts(config_path)
        if parts in ([], ["schema"]):
            return True
        if len(parts) == 2 and parts[0] == "schema":
            return parts[1] in _groups()
        return len(parts) == 1 and parts[0] in _groups()

    def is_config(self, config_path: str) -> bool:
        return self._config_key(config_path) is not None

    def load_config(self, config_path: str) -> ConfigResult:
        key = self._config_key(self._normalize_file_name(config_path))
        if key is None:
            raise ConfigLoadError(f"{SCHEME}: no plugin config {config_path}")
        is_schema, group, name = key
        node = _structured(_schema_class(group, name))
        if not is_schema:
            _name_an_option_without_yaml(node, group, name)
        return ConfigResult(provider="prune-cli plugins", path=f"{SCHEME}://{config_path}", config=node, header={"package": None})

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        parts = self._parts(config_path)
        want_groups = results_filter in (None, ObjectType.GROUP)
        want_configs = results_filter in (None, ObjectType.CONFIG)
        if parts == []:
            return sorted(({"schema"} | _groups()) if want_groups else set())
        if parts == ["schema"]:
            return sorted(_groups()) if want_groups else []
        if len(parts) == 2 and parts[0] == "schema" and want_configs:
            return sorted(_options(parts[1]))
        if len(parts) == 1 and want_configs and parts[0] in _groups() and parts[0] != "metrics":
            return _outside_options(parts[0])
        return []


def register() -> None:
    """Make `prune-plugins://` known to Hydra (before composition; idempotent)."""
    from hydra._internal.sources_registry import SourcesRegistry

    SourcesRegistry.instance().register(PluginSchemaSource)
