"""`metrics.<name>=null` is refused before any work, for every optional metric's node.

Audit of 2026-12-04: `metrics.membership=null` and `metrics.similarity=null` were accepted silently (exit 0,
config.yaml recording `similarity: null`, a run id other than the same computation's without the override),
because the pre-run pass checked a metric's node only when it had a dataclass type, and a null node has none.
"""

from __future__ import annotations

import pytest

from helpers import validated
from prune_cli.core import plugins
from prune_cli.core.errors import ConfigError

# written out, so that a registry that lost a metric cannot make this test check nothing
KNOWN = ["hessian", "latency", "membership", "ntk", "pruning_limit", "recall_distortion", "regions", "similarity", "speedup"]


def test_every_known_metric_is_registered():
    assert set(KNOWN) <= set(plugins.schema_names("metric"))


@pytest.mark.parametrize("name", sorted(set(KNOWN) | set(plugins.schema_names("metric"))))
def test_a_null_metric_node_is_refused(name):
    with pytest.raises(ConfigError) as err:
        validated(f"metrics.{name}=null")
    assert err.value.key == f"metrics.{name}" and err.value.value is None
    assert f"metrics.{name}.enabled=false" in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["metrics=full"],
        ["metrics.similarity.enabled=false", "metrics.membership.enabled=false", "metrics.regions.enabled=false"],
        ["metrics.similarity.enabled=true", "metrics.membership.enabled=true"],
    ],
)
def test_metric_nodes_that_are_mappings_are_accepted(overrides):
    validated(*overrides)


def test_a_null_metric_node_stops_prune_run_before_any_work(finished_results):
    from conftest import FAST
    from helpers import refused_before_any_work

    refused_before_any_work([*FAST, "metrics.similarity=null"], finished_results, "metrics.similarity", "enabled=false")
    refused_before_any_work([*FAST, "metrics.membership=null"], finished_results, "metrics.membership", "enabled=false")
