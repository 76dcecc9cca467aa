"""The shortcuts that make prune-report quick (issue 15) give exactly what the plain computations
give: config blocks parsed once against a whole-document yaml parse, the flattened config against a
plain recursive flattening, and the exact bootstrap's index table against itertools.product."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from prune_cli.report.compare import exact_bootstrap_means
from prune_cli.results import _read_configs, flatten_config

SWEEP = """dataset:
  name: mnist1d
  cache_dir: ~/.cache/prune-cli/mnist1d
  class_counts: null
model:
  name: mlp
  widths:
  - 256
  - 256
method:
  name: {method}
  erk_power: 1.0
sparsity: {sparsity}
seed: {seed}
tags:
- a
- b: 1
note: |
  two lines,

  with a blank one
empty:
"""

# Not plainly top-level blocks: the whole document must be parsed (anchors, comments, markers, a list).
ODD = [
    "base: &b\n  x: 1\nother: *b\n",
    "# a comment\nx: 1\n",
    "---\nx: 1\n",
    "- 1\n- 2\n",
    "",
    "x: 'a: b'\n'quoted key': 2\n",
    "x: !!str 3\n",
]


def _plain_parse(path: Path):
    return yaml.safe_load(path.read_text()) or {}


def test_config_blocks_parse_like_the_whole_document(tmp_path: Path) -> None:
    paths = {}
    for i, (method, sparsity, seed) in enumerate(itertools.product(("magnitude", "random"), (0.5, 0.9), (0, 1))):
        paths[f"run{i}"] = tmp_path / f"run{i}.yaml"
        paths[f"run{i}"].write_text(SWEEP.format(method=method, sparsity=sparsity, seed=seed))
    for j, text in enumerate(ODD):
        paths[f"odd{j}"] = tmp_path / f"odd{j}.yaml"
        paths[f"odd{j}"].write_text(text)
    got, bad = _read_configs(paths)
    for run, path in paths.items():
        whole = _plain_parse(path)
        if isinstance(whole, dict) and whole:
            assert repr(got[run]) == repr(whole), run  # same keys, order, values and types
        else:  # a list or an empty document is no config: left out and named with why (docs/report.md)
            assert run not in got and run in bad, run
    # a block shared by runs is parsed once but never shared: changing one config leaves the others
    got["run0"]["model"]["widths"].append(1)
    assert got["run1"]["model"]["widths"] == [256, 256]


def _reference_flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_reference_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node if isinstance(node, str) else json.dumps(node, sort_keys=True, default=str)}


def test_flatten_config_matches_plain_recursion() -> None:
    cfg = {
        "a": {"b": 1, "c": [16, 16], "d": None, "e": True, "f": False, "g": 0.1, "h": float("inf"), "i": "x"},
        "j": {"k": {"l": {"m": 2**70}}, "n": {}},
        "o": -3,
        "p": [{"q": 1}],
        "r": 1e-12,
    }
    got = flatten_config(cfg)
    assert list(got.items()) == list(_reference_flatten(cfg).items())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_exact_bootstrap_enumerates_every_ordered_resample(n: int) -> None:
    d = np.random.default_rng(n).normal(size=n)
    want = np.array([np.mean(d[list(idx)]) for idx in itertools.product(range(n), repeat=n)])
    np.testing.assert_array_equal(exact_bootstrap_means(d), want)
