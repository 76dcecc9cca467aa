"""region_bound's checks against the model, before any work (its `check_model` hook, run by the pre-run
pass on the meta model): `method.bound_search=lagrange3` needs exactly two pruned layers, and the
bound covers plain fully connected chains, not models with residual connections (the regions
metric's bound_scope says so for them)."""

from __future__ import annotations

import pytest

from prune_cli.core.errors import ConfigError
from tests.conftest import FAST
from tests.helpers import refused_before_any_work, validated

# FAST's MLP 16-16: three Linear layers net.1, net.3, net.5 (the classifier pruned too)
THREE = ["method=region_bound", "method.bound_search=lagrange3", "method.exclude_classifier=false"]


@pytest.mark.parametrize("rank_model", ["binomial", "montecarlo"])
def test_lagrange3_with_three_pruned_layers_is_refused_before_any_work(finished_results, rank_model):
    """It crashed: the binomial model in the pre-run collapse check with a raw traceback (exit 1), the
    Monte-Carlo one after dense training as an internal error."""
    refused_before_any_work(
        [*FAST, *THREE, f"method.bound_rank_model={rank_model}"],
        finished_results,
        "'method.bound_search'",
        "'lagrange3'",
        "exactly two pruned layers",
        "3 (net.1, net.3, net.5)",
        "auto or search",
    )


def test_lagrange3_with_one_pruned_layer_is_refused_and_two_pass():
    with pytest.raises(ConfigError) as err:
        validated(*FAST, *THREE, "method.exclude=[net.3,net.5]")
    assert err.value.key == "method.bound_search" and "1 (net.1)" in str(err.value)
    validated(*FAST, "method=region_bound", "method.bound_search=lagrange3")  # classifier dense: two
    validated(*FAST, *THREE[:1], "method.exclude_classifier=false", "method.bound_search=search")


@pytest.mark.parametrize("method", [["method=region_bound"], ["method.allocation=region_bound"]])
def test_a_model_with_residual_connections_is_refused_before_any_work(finished_results, method):
    """It optimised a chain bound on res_mlp and ran, while the same run's regions.csv said the bounds do
    not apply ("model has residual connections")."""
    fast = [a for a in FAST if not a.startswith("model")]
    refused_before_any_work(
        [*fast, "model=res_mlp", *method, "sparsity=0.9"],
        finished_results,
        "'method.allocation'",
        "'region_bound'",
        "plain fully connected chain",
        "residual connections",
    )
