"""Compose each set of config-group choices once per process.

A Hydra composition has two costly steps that depend only on the config files and on the overrides
that choose config-group options (`method=lookahead`, `+experiment=x`, `hydra/launcher=parallel`):
building the defaults list (about half of a composition) and merging the files and schema nodes it
names (about 40 %); only then are the value overrides (`sparsity=0.9`, `seed=3`) applied. One
composition takes 0.3-0.4 s, the largest per-job cost of an in-process sweep of small runs after
training (docs/performance.md, "Sweeps") and about 30 % of the test suite's CPU time, whose runs and
configs mostly share their group choices.

`install()` wraps those two steps of Hydra's `ConfigLoaderImpl._load_configuration_impl` (the name
`create_defaults_list` it calls, and `_compose_config_from_defaults_list`) with a per-process memo;
everything after them (struct mode, the value overrides, the `hydra.overrides`, `runtime` and `job`
fields) runs as before on a deep copy of the memoised config. The memo key holds everything the two
steps read:

- the config name, `prepend_hydra`, `skip_missing`, and the override lines that are not value
  overrides (Hydra's own split, `defaults_list.Overrides`);
- the state of every config source on the search path: for a folder, a digest of every file's path
  and bytes (an edited YAML is read again); for the structured config store, a counter of
  its `store` calls; for prune-cli's plugin schemas, the plugin index (names and modules, outside
  modules) and the assembled metrics schema; package sources (Hydra's own configs) are fixed.

A composition that raises is not memoised (the next one raises again), and errors keep Hydra's own
messages. `tests/test_composition_memo.py` compares memoised compositions with fresh ones.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from ..core.file_digest import tree_digest

MEMO_SIZE = 64  # compositions kept (about 0.2 MB each); the oldest is dropped first

_DEFAULTS: OrderedDict[tuple, Any] = OrderedDict()
_CONFIGS: OrderedDict[tuple, Any] = OrderedDict()
_STORE_GENERATION = [0]
_STATS = {"defaults_hits": 0, "defaults_misses": 0, "config_hits": 0, "config_misses": 0}


def clear() -> None:
    """Forget every memoised composition (the next composition of each choice reads the files)."""
    _DEFAULTS.clear()
    _CONFIGS.clear()


def stats() -> dict[str, int]:
    return dict(_STATS)


def _remember(memo: OrderedDict, key: tuple, value: Any) -> None:
    memo[key] = value
    while len(memo) > MEMO_SIZE:
        memo.popitem(last=False)


def _plugin_state() -> tuple:
    from ..core import plugins
    from ..metrics import metrics_config  # every composition reads it (`metrics/base`)

    idx = plugins.index()
    return (tuple(sorted(idx.schemas.items())), tuple(sorted(idx.kinds.items())), tuple(idx.outside), metrics_config())


def _sources_state(repo) -> tuple:
    """The state of every source on the repository's search path; computed once per composition
    (Hydra builds a new caching repository for each, and both memoised steps ask)."""
    kept = getattr(repo, "_prune_cli_sources_state", None)
    if kept is not None:
        return kept
    from .plugin_source import SCHEME

    state = []
    for source in repo.get_sources():
        scheme = source.scheme()
        item: tuple = (scheme, source.provider, source.path)
        if scheme == "file":
            item += (tree_digest(source.path),)  # paths and bytes, not modification times
        elif scheme == "structured":
            item += (_STORE_GENERATION[0],)
        elif scheme == SCHEME:
            item += (_plugin_state(),)
        state.append(item)
    repo._prune_cli_sources_state = tuple(state)
    return repo._prune_cli_sources_state


def install() -> None:
    """Wrap Hydra's two composition steps (idempotent)."""
    from hydra._internal import config_loader_impl
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.defaults_list import DefaultsList, Overrides
    from hydra.core.config_store import ConfigStore

    create_defaults_list = config_loader_impl.create_defaults_list
    if getattr(create_defaults_list, "memoised", False):
        return
    compose_from_defaults = ConfigLoaderImpl._compose_config_from_defaults_list  # noqa: SLF001
    store = ConfigStore.store

    def counted_store(self, *args, **kwargs):
        _STORE_GENERATION[0] += 1
        return store(self, *args, **kwargs)

    def memoised_create_defaults_list(repo, config_name, overrides_list, prepend_hydra, skip_missing):
        try:
            overrides = Overrides(repo=repo, overrides_list=overrides_list)
        except Exception:  # noqa: BLE001 - Hydra's own call raises it with its message
            return create_defaults_list(repo, config_name, overrides_list, prepend_hydra, skip_missing)
        values = {id(o) for o in overrides.config_overrides}
        choices = tuple(o.input_line for o in overrides_list if id(o) not in values)
        key = (config_name, prepend_hydra, skip_missing, choices, _sources_state(repo))
        kept = _DEFAULTS.get(key)
        if kept is None:
            _STATS["defaults_misses"] += 1
            kept = create_defaults_list(repo, config_name, overrides_list, prepend_hydra, skip_missing)
            _remember(_DEFAULTS, key, kept)
            return kept
        _STATS["defaults_hits"] += 1
        # The defaults (and the choices Hydra records in hydra.runtime.choices) are the memoised ones;
        # the value overrides are this call's.
        return DefaultsList(
            defaults=kept.defaults,
            defaults_tree=kept.defaults_tree,
            config_overrides=overrides.config_overrides,
            overrides=kept.overrides,
        )

    def memoised_compose(self, defaults, repo):
        key = (
            tuple((d.config_path, d.parent, d.package, d.is_self, d.primary, d.override_key) for d in defaults),
            _sources_state(repo),
        )
        kept = _CONFIGS.get(key)
        if kept is None:
            _STATS["config_misses"] += 1
            cfg = compose_from_defaults(self, defaults, repo)
            _remember(_CONFIGS, key, copy.deepcopy(cfg))
            return cfg
        _STATS["config_hits"] += 1
        return copy.deepcopy(kept)

    memoised_create_defaults_list.memoised = True  # type: ignore[attr-defined]
    ConfigStore.store = counted_store  # type: ignore[method-assign]
    config_loader_impl.create_defaults_list = memoised_create_defaults_list
    ConfigLoaderImpl._compose_config_from_defaults_list = memoised_compose  # type: ignore[method-assign]  # noqa: SLF001
