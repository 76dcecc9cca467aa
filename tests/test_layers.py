"""The package's import graph: no new import cycle, no import that points up a layer, and
`prune-report` never loads torch. Ratchet: ALLOWED lists the violations of main at c185496
(see docs/architecture.md); every refactor commit deletes the lines it fixes, and the test also
fails when a listed violation is gone but still listed, so the list only shrinks. When it is
empty the test is strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from import_graph import CURRENT_LAYERS, TARGET_LAYERS, import_closure, collect, violation_keys

PACKAGE = Path(__file__).resolve().parent.parent / "prune_cli"
LAYERS = {**CURRENT_LAYERS, **TARGET_LAYERS}  # old and new module names while the refactor runs

ALLOWED = {
    'cycle-edge: prune_cli.data -> prune_cli.data.mnist1d',
    'cycle-edge: prune_cli.data -> prune_cli.data.synthetic',
    'cycle-edge: prune_cli.data -> prune_cli.data.vision',
    'cycle-edge: prune_cli.data.mnist1d -> prune_cli.data',
    'cycle-edge: prune_cli.data.synthetic -> prune_cli.data',
    'cycle-edge: prune_cli.data.vision -> prune_cli.data',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.hessian',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.latency',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.membership',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.ntk',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.pruning_limit',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.recall_distortion',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.regions',
    'cycle-edge: prune_cli.metrics -> prune_cli.metrics.similarity',
    'cycle-edge: prune_cli.metrics.hessian -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.latency -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.membership -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.ntk -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.pruning_limit -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.pruning_limit -> prune_cli.metrics.hessian',
    'cycle-edge: prune_cli.metrics.recall_distortion -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.regions -> prune_cli.metrics',
    'cycle-edge: prune_cli.metrics.similarity -> prune_cli.metrics',
    'cycle-edge: prune_cli.models -> prune_cli.models.cnn',
    'cycle-edge: prune_cli.models -> prune_cli.models.mlp',
    'cycle-edge: prune_cli.models -> prune_cli.models.ntk_mlp',
    'cycle-edge: prune_cli.models -> prune_cli.models.resnet',
    'cycle-edge: prune_cli.models -> prune_cli.models.vgg',
    'cycle-edge: prune_cli.models.cnn -> prune_cli.models',
    'cycle-edge: prune_cli.models.mlp -> prune_cli.models',
    'cycle-edge: prune_cli.models.ntk_mlp -> prune_cli.models',
    'cycle-edge: prune_cli.models.resnet -> prune_cli.models',
    'cycle-edge: prune_cli.models.vgg -> prune_cli.models',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.allocation',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.pruner',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.region_bound',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.scores.magnitude',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.scores.random',
    'cycle-edge: prune_cli.pruning -> prune_cli.pruning.structure',
    'cycle-edge: prune_cli.pruning.allocation -> prune_cli.pruning',
    'cycle-edge: prune_cli.pruning.pruner -> prune_cli.pruning',
    'cycle-edge: prune_cli.pruning.pruner -> prune_cli.pruning.structure',
    'cycle-edge: prune_cli.pruning.region_bound -> prune_cli.pruning',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.gp',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.grasp',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.greedy_forward',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.lookahead',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.mp_global_normalize',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.snip',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.synflow',
    'cycle-edge: prune_cli.pruning.scores -> prune_cli.pruning.scores.undecayed',
    'cycle-edge: prune_cli.pruning.scores.gp -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.grasp -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.greedy_forward -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.lookahead -> prune_cli.pruning',
    'cycle-edge: prune_cli.pruning.scores.lookahead -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.magnitude -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.mp_global_normalize -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.random -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.snip -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.snip -> prune_cli.pruning.scores.gp',
    'cycle-edge: prune_cli.pruning.scores.synflow -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.undecayed -> prune_cli.pruning.scores',
    'cycle-edge: prune_cli.pruning.scores.undecayed -> prune_cli.pruning.scores.gp',
    'cycle-edge: prune_cli.pruning.structure -> prune_cli.pruning',
}


def test_no_new_cycle_or_upward_import():
    found = violation_keys(PACKAGE, LAYERS)
    new = sorted(found - ALLOWED)
    fixed = sorted(ALLOWED - found)
    assert not new, "new import cycles / upward imports:\n" + "\n".join(new)
    assert not fixed, "fixed, remove from ALLOWED:\n" + "\n".join(fixed)


def test_report_closure_has_no_torch_statically():
    _, external = import_closure(collect(PACKAGE), "prune_cli.report")
    assert "torch" not in external, external.get("torch")


def test_report_import_does_not_load_torch():
    code = "import sys, prune_cli.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
