"""Checks of config values that hold for every key, whatever its schema: part of the pre-run pass
(prune_cli/run/prevalidate.py `validate`).

- A list typed `list[str]`, `list[int]`, ... holds values. Hydra's merge of an override such as
  `method.exclude=[[net.1]]` lets a nested list into a typed list without OmegaConf's element check
  (assigning it directly is refused), so a run crashed where the list was read, or the node's check
  failed with a TypeError that named the node instead of the key.
- A number is never written `-0.0`: it equals 0 everywhere it is used, but the run id hashes the
  text `-0.0`, so the same experiment got a run id (and rows in the shared tables) of its own. The
  fraction checks (`sparsity`, `dataset.val_fraction`) refused it already; this covers the rest,
  plugins' options included (docs/robustness.md, "Measured: bad inputs").
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..core.errors import ConfigError
from .composition_errors import describe_type

VALUE_TYPES = (int, float, str, bool)


def _nodes(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, child node) of every node below `node`, depth first; not below `hydra`, and not
    into interpolations (checked where they resolve) or unset values."""
    listed = isinstance(node, ListConfig)
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return
    for k in range(len(node)) if listed else list(node.keys()):
        if not prefix and k == "hydra":
            continue
        key = f"{prefix}[{k}]" if listed else f"{prefix}.{k}" if prefix else str(k)
        child = node._get_node(k)
        if child is None:
            continue
        yield key, child
        if isinstance(child, (DictConfig, ListConfig)):
            yield from _nodes(child, key)


def check_list_elements(cfg: DictConfig) -> None:
    """Every element of a list declared to hold values (`list[str]`, `Optional[list[int]]`) is a value."""
    for key, node in _nodes(cfg):
        element_type = getattr(node._metadata, "element_type", None) if isinstance(node, ListConfig) else None
        if element_type not in VALUE_TYPES or node._is_none() or node._is_missing() or node._is_interpolation():
            continue
        for i in range(len(node)):
            if isinstance(node._get_node(i), (DictConfig, ListConfig)):
                raise ConfigError(
                    key,
                    OmegaConf.to_container(node, resolve=True),
                    describe_type(list[element_type]),
                    f"Element {i} ({OmegaConf.to_container(node._get_node(i), resolve=True)!r}) is not one.",
                )


def check_signed_zeros(cfg: DictConfig) -> None:
    """No number is written -0.0."""
    for key, node in _nodes(cfg):
        if isinstance(node, (DictConfig, ListConfig)) or node._is_interpolation():
            continue
        value = node._value()
        if isinstance(value, float) and value == 0 and math.copysign(1.0, value) < 0:
            raise ConfigError(
                key,
                value,
                "the same value written 0 (write 0, not -0.0)",
                "-0.0 equals 0 in every computation, but the run id would hash it as a run of its own.",
            )
