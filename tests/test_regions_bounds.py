"""Bounds and bound-guided densities against reference values computed with the authors' code (Cai et al., CPAIOR 2023)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.analysis.regions.bounds import (
    choose_layer_densities,
    expected_bound,
    expected_bound_from_probs,
    montecarlo_rank_log_probs,
    rank_ub,
    serra2018,
)
from prune_cli.models.mlp import MLP
from prune_cli.pruning import PruneContext, prune
from tests.helpers import composed


@pytest.mark.parametrize(
    "n0,widths,bound",
    [
        (1, [3], 4),
        (2, [3], 7),
        (2, [3, 3], 40),
        (1, [4, 4, 4], 125),
        (2, [8, 8], 1369),
        (784, [8, 14], 600370),
        (784, [11, 11], 2449868),
        (2, [100, 100], 25512601),
        (2, [100, 100, 10], 1428705656),
    ],
)
def test_serra_reference_values(n0, widths, bound):
    assert serra2018(n0, widths) == bound


def test_serra_properties_and_log_value():
    assert math.log(serra2018(784, [100, 100])) == pytest.approx(137.991107, abs=1e-6)
    assert serra2018(1, [3, 5, 2]) == 4 * 6 * 3  # n0 = 1: product of (n_l + 1)
    assert serra2018(3, [6]) == sum(math.comb(6, j) for j in range(4))  # one layer: arrangement bound
    assert rank_ub(2, [100, 100], [100, 100]) == serra2018(2, [100, 100])  # full rank = Serra


@pytest.mark.parametrize(
    "n,p,ln_value",
    [
        ([784, 100, 100, 10], (1, 1, 1), 144.922579),
        ([784, 100, 100, 10], (0.001, 0.001, 1), 119.804899),
        ([784, 100, 100, 10], (0.0005, 0.0015, 1), 121.584237),
        ([2, 100, 100, 10], (0.0005, 0.0005, 1), 15.000459),
        ([784, 100, 100, 10], (0.01, 0.01, 1), 144.918),
        ([784, 100, 100, 10], (0.0001, 0.0001, 1), 62.822),
        ([2, 100, 100, 10], (1, 1, 1), 21.080),
        ([2, 100, 100, 10], (0.01, 0.01, 1), 20.169),
        ([2, 100, 100, 10], (0.001, 0.001, 1), 16.378),
        ([2, 100, 100, 10], (0.0001, 0.0001, 1), 10.564),
    ],
)
def test_expected_bound_binomial_reference_values(n, p, ln_value):
    digits = len(str(ln_value).split(".")[1])
    assert expected_bound(n, p) == pytest.approx(ln_value, abs=0.6 * 10**-digits)


def test_expected_bound_large_value_and_dense_consistency():
    assert math.exp(expected_bound([784, 100, 100, 10], (0.01, 0.01, 1))) == pytest.approx(8.652808e62, rel=1e-6)
    assert expected_bound([2, 100, 100, 10], (1, 1, 1)) == pytest.approx(math.log(1428705656), abs=1e-9)
    dense_mc = expected_bound([2, 30, 30], (1, 1), rank_model="montecarlo")
    assert dense_mc == pytest.approx(math.log(serra2018(2, [30, 30])))


@pytest.mark.parametrize("n", [[3, 4, 2], [2, 5, 3, 4], [6, 3, 5, 2], [1, 4, 4, 4]])
def test_expected_bound_is_the_expectation_of_the_rank_bound_over_all_rank_combinations(n):
    """Brute force: E[UB] = sum over every combination of ranks (k_1..k_L) of prod_l P_l(k_l) times
    the exact integer bound UB(k_1..k_L), with random rank distributions (rank 0 included in some
    layers and left out in others, as the binomial model drops it)."""
    gen = torch.Generator().manual_seed(sum(n))
    log_probs = []
    for l in range(len(n) - 1):
        top = min(n[l], n[l + 1])
        ranks = list(range(l % 2, top + 1))
        weights = torch.rand(len(ranks), generator=gen, dtype=torch.float64) + 0.05
        log_probs.append({k: math.log(float(v)) for k, v in zip(ranks, weights / weights.sum())})
    expectation = 0.0
    for ks in itertools.product(*[sorted(lp) for lp in log_probs]):
        prob = math.exp(sum(lp[k] for lp, k in zip(log_probs, ks)))
        expectation += prob * rank_ub(n[0], n[1:], list(ks))
    assert expected_bound_from_probs(n, log_probs) == pytest.approx(math.log(expectation), rel=1e-12, abs=1e-12)


def test_montecarlo_rank_model_matches_exact_2x2_distribution():
    # 2x2 Gaussian with Bernoulli(p) mask: rank 0 iff all zero; rank 2 iff a diagonal pair is non-zero
    p = 0.5
    exact = {0: (1 - p) ** 4, 2: 1 - (1 - p * p) ** 2}
    exact[1] = 1 - exact[0] - exact[2]
    probs = montecarlo_rank_log_probs(2, 2, p, seed=0, sample_factor=400)
    for k, value in exact.items():
        assert math.exp(probs.get(k, -math.inf)) == pytest.approx(value, abs=0.04)


def _significant(value: float, reference: str) -> str:
    """`value` printed with as many significant digits as the reference string has."""
    digits = len(reference.lower().split("e")[0].replace(".", "").lstrip("0"))
    return f"{float(f'{value:.{digits}g}'):.6e}"


@pytest.mark.parametrize(
    "p,chosen,ln_chosen",
    [
        (0.01, ("0.00575", "0.04333"), 144.923),
        (0.0025, ("0.00146", "0.01063"), 144.921),
        (0.001, ("0.000606", "0.00409"), 137.790),
        (0.0001, ("6.37e-5", "3.84e-4"), 70.016),
    ],
)
def test_lagrange3_chosen_densities_reference_values(p, chosen, ln_chosen):
    """The paper's procedure (named: since 2026-12-04 `auto` keeps the coordinate search's choice where its
    bound is higher, as at 0.0025, 0.001 and 0.0001 here)."""
    n = [784, 100, 100, 10]
    dens = choose_layer_densities(n, p, [78400, 10000, 1000], [True, True, False], method="lagrange3")
    # the reference table rounds to 3-4 significant digits: agree to those digits (or 1e-3 relative)
    for value, reference in zip(dens[:2], chosen):
        assert _significant(value, reference) == f"{float(reference):.6e}" or value == pytest.approx(float(reference), rel=1e-3)
    assert dens[2] == 1.0
    assert expected_bound(n, dens) == pytest.approx(ln_chosen, abs=1e-3)
    assert dens[0] * 78400 + dens[1] * 10000 == pytest.approx(p * 88400)  # same weight budget


def test_general_search_keeps_budget_and_does_not_lower_the_bound():
    # half the widths of a 20-30-30-30-5 net: the search costs a fifth, and it still raises the bound
    # above uniform density (ln 31.96 against 31.33), so a search that lowered it would fail here
    n = [10, 15, 15, 15, 5]
    dims = [150, 225, 225, 75]
    pruned = [True, True, True, False]
    dens = choose_layer_densities(n, 0.05, dims, pruned, method="search")
    kept = sum(d * s for d, s, f in zip(dens, dims, pruned) if f)
    assert kept == pytest.approx(0.05 * 600)
    assert expected_bound(n, dens) >= expected_bound(n, [0.05, 0.05, 0.05, 1.0]) - 1e-12


def test_region_bound_allocation_prunes_to_the_chosen_densities():
    model = MLP(784, [100, 100], 10)
    method = OmegaConf.create(
        {
            "name": "rb",
            "score": "magnitude",
            "allocation": "region_bound",
            "structure": "unstructured",
            "exclude": [],
            "exclude_classifier": True,
            "exclude_first": False,
            "allow_collapse": False,
        }
    )
    ctx = PruneContext(method=method, generator=torch.Generator().manual_seed(0))
    masks = prune(model, 1 - 0.01, ctx)
    assert abs(int(masks["net.1.weight"].sum()) - 0.00575 * 78400) <= 1e-3 * 451 + 1  # the paper's chosen densities
    assert abs(int(masks["net.3.weight"].sum()) - 0.04333 * 10000) <= 1e-3 * 433 + 1
    assert "net.5.weight" not in masks
    # README: per-layer counts add up to exactly round(density x N); each layer rounded alone kept
    # 7577 of round(0.1 x 75776) = 7578 on the default MLP
    for net, d in ((model, 0.01), (MLP(40, [256, 256], 10), 0.1)):
        masks_d = prune(net, 1 - d, ctx)
        assert sum(int(m.sum()) for m in masks_d.values()) == round(d * sum(m.numel() for m in masks_d.values()))
    kept = masks["net.1.weight"]
    weights = model.net[1].weight.abs()
    assert weights[kept].min() >= weights[~kept].max()  # top |w| within the layer


def test_bad_bound_settings_name_the_key():
    from prune_cli.core.errors import ConfigError
    from prune_cli.pruning.allocations.region_bound import RegionBoundMethodConfig
    from prune_cli.run.prevalidate import validate_node

    method = {"bound_rank_model": "binomial", "bound_objective_n0": "full", "bound_search": "newton"}
    with pytest.raises(ConfigError, match="method.bound_search.*newton"):
        typed = OmegaConf.merge(OmegaConf.structured(RegionBoundMethodConfig(name="t", score="magnitude")), method)
        validate_node(OmegaConf.create({"method": typed}), "method")
    from prune_cli.metrics.regions import RegionsConfig

    node = OmegaConf.structured(RegionsConfig)
    node.box = [1.0, 0.0]
    with pytest.raises(ConfigError, match="metrics.regions.box"):
        validate_node(OmegaConf.create({"metrics": {"regions": node}}), "metrics.regions")
    node.box, node.rank_models = None, ["exact"]
    with pytest.raises(ConfigError, match="metrics.regions.rank_models"):
        validate_node(OmegaConf.create({"metrics": {"regions": node}}), "metrics.regions")


def test_lagrange3_at_full_density_keeps_every_weight_without_dividing_by_zero():
    """At p = 1 (sparsity 0) the only feasible point is (1, 1): the three interpolation nodes
    coincide. It returned (1, 1) through NaN arithmetic and printed numpy's divide-by-zero warnings."""
    import warnings

    from prune_cli.analysis.regions.bounds import lagrange3

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lagrange3(1.0, (10, 20), lambda p0, p1: p0 + 2 * p1) == (1.0, 1.0)


def _regions_node(**kw):
    return OmegaConf.merge(composed().metrics.regions, {"rank_models": ["binomial"], **kw})


def test_a_layer_without_weights_leaves_the_binomial_bound_empty_not_zero_regions():
    """The binomial rank model drops P(rank = 0), as the authors' code does; for a layer of density 0
    nothing is left and the bound came out ln = -inf, i.e. 0 regions, beside counts of 1 and 2 (metrics
    audit; a network has at least one region). It is recorded empty, and the scope says why."""
    from prune_cli.metrics.regions import bound_columns

    net = MLP(2, [4, 3], 3)
    with torch.no_grad():
        list(net.prunable_layers())[1][1].weight.zero_()
    row = bound_columns(net, 2, _regions_node())
    assert math.isnan(row["bound_ln_expected_binomial"]), row
    assert "density 0" in row["bound_scope"], row


def test_a_residual_mlp_gets_no_chain_bound():
    """res_mlp was bounded as a rectified chain of its 6 Linear layers ("fully connected, output layer
    rectified", widths 4-4-4-4-4-3) although only 3 are followed by a ReLU and the skips add the stream
    back; a working network got exp(bound) = 0 beside 9 counted regions (metrics audit)."""
    from prune_cli.metrics.regions import bound_columns
    from prune_cli.models.res_mlp import ResMLP

    row = bound_columns(ResMLP(2, 4, 2, 3), 2, _regions_node())
    assert row == {"bound_scope": "none (bounds apply to plain fully connected chains; model has residual connections)"}


@pytest.mark.parametrize(
    "option,other",
    [
        ("include_output_layer", False),
        ("rank_models", ["binomial"]),
        ("mc_sample_factor", 12),
    ],
)
def test_bound_options_on_a_residual_mlp_are_refused_as_unused(option, other):
    """res_mlp gets bound_scope none, like cnn1d, but its bound options were accepted though they changed
    nothing: the metric's whole output (every row, every scalar) with the option changed equals the one
    with the default, and the option is named unused; on a plain MLP it changes the rows and is not."""
    from prune_cli.metrics.regions import regions
    from prune_cli.models.res_mlp import ResMLP
    from prune_cli.run.unused_options import unused_options
    from tests.helpers import metric_context
    from tests.test_regions_default import _data

    key = f"metrics.regions.{option}"
    value = str(other).replace("'", "").replace(" ", "").lower()
    with_montecarlo = [] if option == "rank_models" else ["metrics.regions.rank_models=[binomial,montecarlo]"]
    assert key in unused_options(composed("model=res_mlp", f"{key}={value}", with_montecarlo))[0]
    assert key not in unused_options(composed("model=mlp", f"{key}={value}", with_montecarlo))[0]
    base = OmegaConf.merge(composed().metrics.regions, {"rank_models": ["binomial", "montecarlo"]})
    changed = OmegaConf.merge(base, {option: other})
    torch.manual_seed(0)
    mlp = MLP(3, [4, 4], 3)
    with torch.no_grad():  # half the weights pruned: the rank models then differ from full rank
        for _, layer in mlp.prunable_layers():
            layer.weight.mul_(torch.rand(layer.weight.shape) < 0.5)
    for model, effect in ((ResMLP(3, 4, 2, 3), False), (mlp, True)):
        outputs = []
        for node in (base, changed):
            out = regions(metric_context(model, _data((3,))), "dense", node)
            rows = [{k: v for k, v in r.items() if k != "wall_s"} for r in out.tables["regions.csv"]]
            outputs.append((rows, out.scalars))
        assert (outputs[0] != outputs[1]) == effect, (model, option)


def _brute_force_split(n, sizes, kept):
    """The best integer split (k0, k1) of `kept` weights over two pruned layers of `sizes` weights, the
    classifier dense, by ln E[UB] at densities k_l / size_l: every split tried."""
    splits = [(k, kept - k) for k in range(max(0, kept - sizes[1]), min(sizes[0], kept) + 1)]
    values = {s: expected_bound(n, [s[0] / sizes[0], s[1] / sizes[1], 1.0]) for s in splits}
    best = max(values, key=values.get)
    return best, values[best]


def test_auto_keeps_the_better_of_lagrange3_and_the_search():
    """40-100-100-10, classifier dense, density 0.01 (140 of 14000 weights kept): lagrange3 stops at
    ln E[UB] 134.664 (densities 0.0196/0.0062), below the brute-force maximum over the 141 integer splits
    (135.373 at 91/49), which the search reaches and `auto` now keeps (it kept lagrange3's)."""
    n, sizes = [40, 100, 100, 10], (4000, 10000)
    (k0, k1), best = _brute_force_split(n, sizes, 140)
    assert (k0, k1) == (91, 49) and best == pytest.approx(135.373, abs=1e-3)
    paper = choose_layer_densities(n, 0.01, [*sizes, 1000], [True, True, False], method="lagrange3")
    assert expected_bound(n, paper) < best - 0.5
    auto = choose_layer_densities(n, 0.01, [*sizes, 1000], [True, True, False])
    assert expected_bound(n, auto) >= best - 1e-3
    assert auto[0] * 4000 + auto[1] * 10000 == pytest.approx(140)
    # where the two agree (the bound saturates: 784-100-100-10 at 0.01) auto keeps lagrange3's choice
    args = ([784, 100, 100, 10], 0.01, [78400, 10000, 1000], [True, True, False])
    assert choose_layer_densities(*args) == choose_layer_densities(*args, method="lagrange3")


def test_the_region_bound_allocation_keeps_the_brute_force_split_under_auto():
    """2-20-20-3 at density 0.03: 13 of the 440 weights of the two pruned layers. Every integer split by
    hand: 7/6 has the highest bound (12.588), lagrange3's 5/8 12.504; the allocation kept 5/8."""
    from tests.test_region_bound_caps import TINY, allocate

    n = [2, 20, 20, 3]
    best, _ = _brute_force_split(n, (40, 400), 13)
    assert best == (7, 6)
    for search, expected in (("auto", best), ("lagrange3", (5, 8))):
        counts, _ = allocate(composed(*TINY, f"method.bound_search={search}"), 0.03, None)
        assert (counts["net.1.weight"], counts["net.3.weight"]) == expected
