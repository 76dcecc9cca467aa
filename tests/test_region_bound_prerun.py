"""region_bound gives every layer weights wherever its chosen density keeps one (its densities are a fact of
the widths and options), and layerwise with threshold_impl=shrinkbench_quantile keeps at least a layer's
largest score, so the block pre-run check must not count an emptied residual layer as reachable: it did
(`may_empty` took every residual layer of an allocation whose counts are not `counts_from_shapes` as
emptiable), accepted the target, and the pruner refused it after dense training (audit of the pre-run
checks on residual models). region_bound now refuses residual models before any work (its bound covers
plain chains), so its cases run on a plain MLP of the same layers with method.allow_collapse=true, under
which a layer may be emptied as a residual one may."""

from __future__ import annotations

import itertools

import pytest
import torch

from prune_cli.core.errors import ConfigError
from tests.conftest import FAST, run_cli
from tests.helpers import composed, prerun_and_pruner_agree, refused_before_any_work, validated

# res_mlp width 8, two blocks, input 8: five 8x8 layers (four 4x4 blocks of 16 weights each) and a 3x8
# classifier (two 3x4 blocks of 12); N = 344
MODEL = ["dataset=synthetic", "dataset.input_dim=8", "model=res_mlp", "model.width=8", "model.blocks=2"]
MODEL += ["method.structure=block", "method.block_shape=[4,4]"]
# region_bound refuses residual models (its bound covers plain chains): the same layers as a plain MLP
# 8-8-8-8-8-8-3, where method.allow_collapse=true lets a layer be emptied as a residual one may
CHAIN = ["dataset=synthetic", "dataset.input_dim=8", "model=mlp", "model.widths=[8,8,8,8,8]", "method.allow_collapse=true"]
CHAIN += ["method.structure=block", "method.block_shape=[4,4]", "method.allocation=region_bound"]
QUANTILE = [*MODEL, "method.allocation=layerwise", "method.threshold_impl=shrinkbench_quantile"]
BLOCKS = [[16] * 4] * 5 + [[12] * 2]
N = 344


def totals_with_every_layer_kept() -> set[int]:
    """Every total of one non-empty subset of blocks per layer, enumerated."""
    per_layer = [{sum(c) for r in range(1, len(b) + 1) for c in itertools.combinations(b, r)} for b in BLOCKS]
    return {sum(t) for t in itertools.product(*per_layer)}


def accepted(kept: int, sparsity: float, tolerance: float = 0.005) -> bool:
    """The pruner's comparison (pruner.check_masks)."""
    return abs((1.0 - kept / N) - (1.0 - round((1.0 - sparsity) * N) / N)) <= tolerance


@pytest.mark.parametrize("config", [CHAIN, QUANTILE], ids=["region_bound", "layerwise-quantile"])
def test_a_target_only_an_emptiable_layer_reaches_is_refused_before_the_run(config):
    totals = totals_with_every_layer_kept()
    assert min(totals) == 5 * 16 + 12  # one block per layer: sparsity 1 - 92/344 = 0.732558
    assert not any(accepted(t, 0.92) for t in totals)  # 28 kept is the target: no choice keeping every layer meets it
    with pytest.raises(ConfigError) as err:
        validated(*config, "sparsity=0.92")
    assert err.value.key == "sparsity" and "the nearest is 0.732558;" in str(err.value)


@pytest.mark.parametrize("config", [CHAIN, QUANTILE], ids=["region_bound", "layerwise-quantile"])
@pytest.mark.parametrize("sparsity", [0.7, 0.732558, 0.8, 0.9, 0.92, 0.95])
def test_the_pre_run_check_agrees_with_the_pruner(sparsity, config):
    cfg = composed(*config, f"sparsity={sparsity}")
    from prune_cli.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, (8,), 3)
    assert prerun_and_pruner_agree(cfg, model, cfg.method, "Block pruning keeps whole blocks")
    assert any(accepted(t, sparsity) for t in totals_with_every_layer_kept()) == (sparsity <= 0.732558 + 1e-9)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_the_layers_named_empty_before_the_run_are_those_the_allocation_empties(sparsity):
    """On the model, with its real (dense) weights: at 0.99 (3 of 344 kept) some layers keep nothing."""
    from types import SimpleNamespace

    from prune_cli.models import build_model
    from prune_cli.pruning import ALLOCATIONS, select_prunable

    cfg = composed(*CHAIN, f"sparsity={sparsity}")
    model = build_model(cfg.model, (8,), 3)
    selected = select_prunable(model, cfg.method)
    allocation = ALLOCATIONS.get("region_bound")
    scores = {n: p.detach().abs() for n, p in selected.items()}
    ctx = SimpleNamespace(model=model, method=cfg.method, generator=torch.Generator().manual_seed(0))
    counts = allocation(scores, 1.0 - sparsity, ctx)
    emptied = allocation.empties(model, selected, cfg.method, 1.0 - sparsity)
    assert emptied == {n for n, k in counts.items() if k == 0}
    assert bool(emptied) == (sparsity == 0.99)


def test_refused_before_any_work(tmp_path):
    fast = [a for a in FAST if not a.startswith("model")]
    refused_before_any_work([*fast, *CHAIN, "sparsity=0.92"], tmp_path / "results", "sparsity", "0.92", "0.732558")


def test_the_suggested_reachable_neighbour_runs_end_to_end(tmp_path):
    assert any(accepted(t, 0.732558) for t in totals_with_every_layer_kept())
    fast = [a for a in FAST if not a.startswith("model")]
    proc = run_cli([*fast, *CHAIN, "sparsity=0.732558", "threads=1"], tmp_path / "results")
    assert "pruned to sparsity 0.7326" in proc.stdout + proc.stderr


@pytest.mark.parametrize("schedule", [["schedule=gradual"], ["schedule=iterative"]])
def test_the_suggestion_search_does_not_redo_region_bounds_density_search(monkeypatch, schedule):
    """region_bound's `empties` hook runs its density search (about 5 s a target on the default res_mlp):
    the search for suggestions asked it for every candidate it checked (26 targets for gradual at 0.92
    here, 14 for iterative; a refused gradual run on the default res_mlp took 83 s). Now only the refusal
    itself asks it, and the candidates count the totals met with every layer kept, which the hook cannot
    take away; the suggestion is the same and passes the whole pre-run check."""
    from prune_cli.pruning.allocations import region_bound

    asked = []
    real = region_bound._planned_empties
    monkeypatch.setattr(region_bound, "_planned_empties", lambda *a: (asked.append(a[2]), real(*a))[1])
    with pytest.raises(ConfigError) as err:
        validated(*CHAIN, "sparsity=0.92", *schedule)
    suggested = {"schedule=gradual": "0.328488", "schedule=iterative": "0.732558"}[schedule[0]]
    assert f"passes is {suggested};" in str(err.value), err.value
    assert len(asked) == 1, asked
    validated(*CHAIN, f"sparsity={suggested}", *schedule)


# A 2-16-16-3 MLP: prunable layers of 32, 256 and 48 weights (N = 336)
SMALL_MLP = ["dataset=synthetic", "dataset.input_dim=2", "model=mlp", "model.widths=[16,16]", "method.allocation=region_bound"]


def test_an_unstructured_region_bound_target_that_empties_a_layer_is_refused_before_the_run(tmp_path):
    """At 0.995 round(0.005 x 336) = 2 weights are kept over three layers: by pigeonhole one keeps none,
    whatever the densities. The pre-run collapse check skipped region_bound (its counts are not a fact of
    the shapes alone), so the run trained the dense model and the pruner refused it after; its `empties`
    hook knows the layers before the run."""
    assert round(0.005 * 336) == 2 < 3
    with pytest.raises(ConfigError) as err:
        validated(*SMALL_MLP, "sparsity=0.995")
    assert err.value.key == "sparsity" and "would keep none" in str(err.value), err.value
    validated(*SMALL_MLP, "sparsity=0.99")  # 3 kept: region_bound gives each layer one (densities 0.043, 0.0046, 0.017)
    validated(*SMALL_MLP, "sparsity=0.995", "method.allow_collapse=true")
    results = tmp_path / "results"
    run_cli([*FAST, *SMALL_MLP, "sparsity=0.9"], results)
    refused_before_any_work([*FAST, *SMALL_MLP, "sparsity=0.995"], results, "'sparsity'", "0.995", "would keep none")


def test_the_pre_run_collapse_check_and_the_run_share_one_region_bound_search(monkeypatch):
    """The binomial search is deterministic: the pre-run check's answer is the run's, so the run does not
    search again (a second search took 1-3 s on the default res_mlp)."""
    from prune_cli.analysis.regions import bounds
    from prune_cli.models import build_model
    from prune_cli.pruning import ALLOCATIONS, select_prunable
    from prune_cli.pruning.allocations import region_bound

    region_bound._binomial_densities.cache_clear()
    region_bound._planned_empties.cache_clear()
    calls = []
    search = bounds.choose_layer_densities
    monkeypatch.setattr(bounds, "choose_layer_densities", lambda *a, **k: calls.append(a) or search(*a, **k))
    cfg = validated(*SMALL_MLP, "sparsity=0.9")
    assert len(calls) == 1
    torch.manual_seed(0)
    model = build_model(cfg.model, (2,), 3)
    selected = select_prunable(model, cfg.method)
    scores = {n: torch.rand(p.shape) for n, p in selected.items()}
    ctx = type("Ctx", (), {"model": model, "method": cfg.method, "generator": torch.Generator().manual_seed(7)})()
    counts = ALLOCATIONS.get("region_bound")(scores, 1.0 - cfg.sparsity, ctx)  # the pruner's density
    assert len(calls) == 1, calls
    assert sum(counts.values()) == round(0.1 * 336)
