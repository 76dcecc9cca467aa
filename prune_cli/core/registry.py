"""Decorator-based registries, so a new dataset/model/score is one function plus one decorator.

A registry fills lazily: `get(name)` imports the module that declares `name` (found by the plugin
index, prune_cli/core/plugins.py, without importing anything) the first time it is asked for."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from . import plugins
from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a builder; unknown names raise a ConfigError listing the valid ones."""

    def __init__(self, kind: str, config_key: str):
        self.kind = kind
        self.config_key = config_key
        self._entries: dict[str, T] = {}

    def register(self, *names: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            for name in names:
                if name in self._entries:
                    raise ValueError(f"{self.kind} '{name}' registered twice")
                self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries and isinstance(name, str):
            plugins.load(self.kind, name)
        if name not in self._entries:
            raise ConfigError(self.config_key, name, "one of " + ", ".join(self.names()))
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered or declared name (declared plugins are not imported by this)."""
        return sorted(set(self._entries) | set(plugins.names(self.kind)))

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in plugins.names(self.kind)
