"""`method.allocation=matched` with `method.match_method=<name>` copies the per-layer counts `method=<name>`
chooses, over the layers that method prunes (its own exclude options, with this run's added), and checks that method's allocation
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


def test_a_layer_the_run_excludes_drops_out_of_the_matched_methods_layers():
    """The fair-comparison setup (the classifier dense for every method): matching magnitude with this run's
    exclude_classifier prunes what `method=magnitude method.exclude_classifier=true` prunes. On a 2-16-16-3
    MLP (net.1 32, net.3 256, net.5 48 weights) at sparsity 0.8 the run keeps round(0.2 x 288) = round(57.6) = 58
    of net.1 and net.3, split as the 58 largest |w| over both fall (counted here from the weights), and all 48
    of net.5 (this run excludes it)."""
    validate(composed(FAST, MATCHED, "method.match_method=magnitude", "method.exclude_classifier=true", "sparsity=0.8"))
    torch.manual_seed(5)
    model = MLP(2, [16, 16], 3)
    ctx = PruneContext(
        method=method_options(score="random", allocation="matched", match_method="magnitude", exclude_classifier=True),
        generator=torch.Generator().manual_seed(0),
        model=model,
    )
    counts = _kept(prune(model, 0.8, ctx))
    w1, w3 = model.net[1].weight.detach().abs().flatten(), model.net[3].weight.detach().abs().flatten()
    top = torch.cat([w1, w3]).argsort(descending=True)[:58]
    expected = {"net.1.weight": int((top < 32).sum()), "net.3.weight": int((top >= 32).sum())}
    assert sum(expected.values()) == 58
    assert {n: counts[n] for n in expected} == expected
    assert counts.get("net.5.weight", 48) == 48


def test_matched_region_bound_with_the_first_layer_excluded_runs():
    """This run excludes net.1 and region_bound its classifier: region_bound's own layer is net.3 alone; the run
    prunes net.3 and net.5 (304 weights) and at sparsity 0.7 keeps round(0.3 x 304) = round(91.2) = 91 of them:
    net.5's 48 and 91 - 48 = 43 of net.3's 256."""
    validate(composed(FAST, MATCHED, "method.match_method=region_bound", "method.exclude_first=true", "sparsity=0.7"))
    torch.manual_seed(3)
    model = MLP(2, [16, 16], 3)
    ctx = PruneContext(
        method=method_options(score="random", allocation="matched", match_method="region_bound", exclude_first=True),
        generator=torch.Generator().manual_seed(0),
        model=model,
    )
    counts = _kept(prune(model, 0.7, ctx))
    assert counts["net.3.weight"] == 43 and counts["net.5.weight"] == 48
    assert counts.get("net.1.weight", 32) == 32


def test_a_target_below_the_matched_methods_dense_layers_is_refused():
    """FAST: net.1 16x2 = 32, net.3 256, net.5 3x16 = 48; N = 336. region_bound keeps net.5's 48 dense and must
    leave each of its 2 layers a weight, so the run keeps at least 50: round((1 - s) x 336) >= 50 holds while
    (1 - s) x 336 >= 49.5 (49.5 rounds to the even 50), s <= 1 - 49.5/336 = 0.8526785..., so at most 0.852678
    (keeps round(49.500192) = 50); 0.852679 keeps round(49.499856) = 49. At 0.9 it keeps round(33.6) = 34."""
    for sparsity in ("0.9", "0.857", "0.852679"):
        with pytest.raises(ConfigError) as err:
            validate(composed(FAST, MATCHED, "method.match_method=region_bound", f"sparsity={sparsity}"))
        assert err.value.key == "sparsity" and "at most 0.852678 " in err.value.allowed
        assert "method.allow_collapse=true" in err.value.allowed
    validate(composed(FAST, MATCHED, "method.match_method=region_bound", "sparsity=0.852678"))


def test_allow_collapse_lowers_the_bound_to_the_dense_layers():
    """With method.allow_collapse=true only net.5's 48 must fit: (1 - s) x 336 >= 47.5, s <= 0.8586309..., at most
    0.85863 (keeps round(47.50032) = 48); 0.858631 keeps round(47.499984) = 47."""
    collapse = [*MATCHED, "method.match_method=region_bound", "method.allow_collapse=true"]
    validate(composed(FAST, collapse, "sparsity=0.857"))
    validate(composed(FAST, collapse, "sparsity=0.85863"))
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, collapse, "sparsity=0.858631"))
    assert err.value.key == "sparsity" and "at most 0.85863 " in err.value.allowed


def test_a_target_emptying_the_matched_methods_layers_creates_nothing(tmp_path):
    """sparsity 0.857 keeps round(48.048) = 48 = net.5's dense 48: net.1 and net.3 would keep nothing (before:
    a LayerCollapse after dense training)."""
    results = tmp_path / "results"
    args = [*FAST, *MATCHED, "method.match_method=region_bound", "sparsity=0.857"]
    proc = run_cli([*args, f"dense_cache.dir={tmp_path / 'cache'}"], results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'sparsity'" in proc.stderr and "at most 0.852678" in proc.stderr
    assert not results.exists() and not (tmp_path / "cache").exists()


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


def test_the_matched_allocations_own_remedies_are_not_passed_on():
    """uniform_plus's own refusal suggests method.exclude_first=true; at 0.99 that does not help this run
    (net.1 out, 304 weights: round(3.04) = 3 kept, the classifier at 0.2 holds 9.6), so only its reason is told."""
    args = [*MATCHED, "method.match_method=magnitude", "method.match_allocation=uniform_plus", "sparsity=0.99"]
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, args))
    assert "the dense first layer" in str(err.value) and "exclude_first" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate(composed(FAST, args, "method.exclude_first=true"))
    assert err.value.key == "sparsity" and "the 0.2-density classifier" in str(err.value)


def test_a_refused_match_allocation_creates_nothing(tmp_path):
    results = tmp_path / "results"
    args = [*FAST, *MATCHED, "method.match_method=magnitude", "sparsity=0.9", "method.match_allocation=erk_plus"]
    proc = run_cli([*args, f"dense_cache.dir={tmp_path / 'cache'}"], results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'sparsity'" in proc.stderr and "method.match_allocation=erk_plus" in proc.stderr
    assert not results.exists() and not (tmp_path / "cache").exists()
