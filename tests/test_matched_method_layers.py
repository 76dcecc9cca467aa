"""`method.allocation=matched` with `method.match_method=<name>` copies the per-layer counts `method=<name>`
chooses, over the layers that method prunes (its own exclude options), and checks that method's allocation
before any work (docs/allocation.md, "matched")."""

from __future__ import annotations

import pytest
import torch

from prune_cli.core.errors import ConfigError
from prune_cli.models.mlp import MLP
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.allocations.matched import method_option
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST, run_cli
from tests.helpers import composed, method_options

MATCHED = ["method=random", "method.allocation=matched"]


def _kept(masks):
    return {n: int(m.sum()) for n, m in masks.items()}


def test_matched_region_bound_keeps_the_classifier_it_keeps_dense():
    """configs/method/region_bound.yaml sets exclude_classifier: true. On a 4-8-8-2 MLP (net.1 32, net.3 64,
    net.5 16 weights; N = 112) at sparsity 0.5 the run keeps round(0.5 x 112) = 56: the classifier's 16, and
    56 - 16 = 40 of region_bound's own 96 weights, split as method=region_bound splits them at density 40/96."""
    torch.manual_seed(3)
    model = MLP(4, [8, 8], 2)
    ctx = PruneContext(
        method=method_options(score="random", allocation="matched", match_method="region_bound"),
        generator=torch.Generator().manual_seed(0),
        model=model,
    )
    counts = _kept(prune(model, 0.5, ctx))
    assert counts["net.5.weight"] == 16
    assert sum(counts.values()) == 56
    direct = PruneContext(method=method_option("region_bound"), generator=torch.Generator().manual_seed(0), model=model)
    own = _kept(prune(model, 1 - 40 / 96, direct))
    assert set(own) == {"net.1.weight", "net.3.weight"} and sum(own.values()) == 40
    assert {n: counts[n] for n in own} == own


def test_matched_region_bound_with_the_same_exclusions_is_accepted():
    validate(composed(FAST, MATCHED, "method.match_method=region_bound", "method.exclude_classifier=true", "sparsity=0.7"))
    validate(composed(FAST, MATCHED, "method.match_method=region_bound", "sparsity=0.7"))  # classifier dense in both
    validate(composed(FAST, MATCHED, "method.match_method=magnitude", "sparsity=0.7"))


def test_a_layer_the_run_excludes_but_the_matched_method_prunes_is_refused():
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, MATCHED, "method.match_method=magnitude", "method.exclude_classifier=true", "sparsity=0.5"))
    assert err.value.key == "method.match_method" and "net.5" in err.value.allowed


def test_a_target_below_the_matched_methods_dense_layers_is_refused():
    """FAST: net.1 16x2 = 32, net.3 256, net.5 3x16 = 48; N = 336. region_bound keeps net.5's 48 dense, so the
    run keeps at least 48: sparsity at most 1 - 48/336 = 0.857143. At 0.9 it keeps round(33.6) = 34."""
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, MATCHED, "method.match_method=region_bound", "sparsity=0.9"))
    assert err.value.key == "sparsity" and "at most 0.857143" in err.value.allowed


RES_MLP = ["dataset=synthetic", "dataset.samples_per_class=60", "dataset.test_samples_per_class=30", "model=res_mlp"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["method.match_method=region_bound"], "method.match_method"),
        (["method.match_method=magnitude", "method.match_allocation=region_bound"], "method.match_allocation"),
    ],
)
def test_matched_region_bound_on_a_residual_model_is_refused(overrides, key):
    """method=region_bound refuses ResMLP (residual connections); matching it must too."""
    with pytest.raises(ConfigError) as err:
        validate(composed(RES_MLP, MATCHED, *overrides, "sparsity=0.7"))
    assert err.value.key == key and "residual" in str(err.value)


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (["sparsity=0.7", "method.match_allocation=explicit"], "method.match_allocation", "not explicit"),
        # uniform_plus at density 0.01 of 336: the dense first layer (32) alone exceeds round(3.36) = 3
        (["sparsity=0.99", "method.match_allocation=uniform_plus"], "sparsity", "method.match_allocation=uniform_plus"),
        # erk_plus at density 0.1 with fc_density 1: the other layers would need (33.6 - 48) / 288 < 0
        (["sparsity=0.9", "method.match_allocation=erk_plus"], "sparsity", "method.match_allocation=erk_plus"),
    ],
)
def test_a_match_allocation_that_cannot_run_is_refused_before_any_work(overrides, key, words):
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, MATCHED, "method.match_method=magnitude", *overrides))
    assert err.value.key == key and words in str(err.value)


def test_a_refused_match_allocation_creates_nothing(tmp_path):
    results = tmp_path / "results"
    args = [*FAST, *MATCHED, "method.match_method=magnitude", "sparsity=0.9", "method.match_allocation=erk_plus"]
    proc = run_cli([*args, f"dense_cache.dir={tmp_path / 'cache'}"], results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'sparsity'" in proc.stderr and "method.match_allocation=erk_plus" in proc.stderr
    assert not results.exists() and not (tmp_path / "cache").exists()
