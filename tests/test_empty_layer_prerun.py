"""A layer the run's pruning would leave with no weight, where that is a fact of the layer shapes.

With an allocation whose per-layer counts depend only on the layer shapes (layerwise, ER/ERK,
uniform_plus, explicit) and a structure that keeps exactly those counts (unstructured), an empty
layer (a layer collapse, Tanaka et al. 2020) is known before any data: the pre-run pass refuses it,
naming sparsity and the layers, instead of the pruner after dense training. Before, the run
trained the dense model, then stopped (a sweep's job failed after its dense training).
The expected empty layers are worked out by hand here from the shapes, round(d * n)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli, snapshot
from helpers import validated

# FAST's MLP on 2-D blobs: net.1 16x2 (32 weights), net.3 16x16 (256), net.5 3x16 (48).
# layerwise at sparsity 0.99 keeps round(0.32) = 0, round(2.56) = 3, round(0.48) = 0.


def test_layerwise_that_empties_layers_is_refused_before_training(finished_results):
    before = snapshot(finished_results)
    proc = run_cli([*FAST, "sparsity=0.99", "method.allocation=layerwise"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr
    assert "'sparsity'" in err and "0.99" in err and "net.1.weight" in err and "net.5.weight" in err, err[-2000:]
    assert "net.3.weight" not in err, err[-2000:]
    assert "method.allocation=erk" in err and "a lower sparsity" in err  # not layerwise, the allocation in use
    assert "dense epoch" not in proc.stdout + err  # nothing trained
    assert snapshot(finished_results) == before


def test_explicit_zero_density_is_refused_and_allow_collapse_accepts_it():
    # explicit [0.5, 0.0, 0.5] keeps 16 + 0 + 24 = 40 of 336: sparsity 1 - 40/336
    densities = ["method.allocation=explicit", "method.layer_densities=[0.5,0.0,0.5]", f"sparsity={1 - 40 / 336}"]
    with pytest.raises(Exception, match=r"net\.3\.weight") as err:
        validated(FAST, densities)
    # the densities given, not the sparsity, empty the layer: the key named is method.layer_densities
    assert err.value.key == "method.layer_densities" and "Lower the sparsity" not in str(err.value)
    assert "net.1.weight" not in str(err.value) and "allow_collapse" in str(err.value)
    validated(FAST, densities, "method.allow_collapse=true")


def test_score_dependent_and_sparing_allocations_are_not_refused():
    # global ranking: which layer empties depends on the trained scores, so the pruner decides;
    # ERK at 0.99 keeps max(1, ...) in every layer of this net (densities ~ (n_in + n_out) / (n_in n_out))
    validated(FAST, "sparsity=0.99", "method.allocation=global")
    validated(FAST, "sparsity=0.99", "method.allocation=erk")
    # a layerwise sparsity leaving every layer a weight: 0.9 keeps 3, 26, 5
    validated(FAST, "sparsity=0.9", "method.allocation=layerwise")


def test_an_empty_layer_inside_a_residual_section_is_not_a_collapse():
    # res_mlp: a residual section's layer with no weight adds 0, its skip carries the stream on
    # (the pruner's rule too). width 8, 1 block, 2-D input: stem 16, sections.0.0 64, sections.0.2 64, head 24.
    model = ["model=res_mlp", "model.width=8", "model.blocks=1"]
    kept = 16 + 0 + 32 + 24
    validated(FAST[:3], model, "method.allocation=explicit", "method.layer_densities=[1.0,0.0,0.5,1.0]", f"sparsity={1 - kept / 168}")
