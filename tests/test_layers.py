"""The package's import graph: no import cycle, no import that points up a layer, and
`prune-report` never loads torch. ALLOWED was a ratchet over the violations of main at c185496
(docs/architecture.md); the refactor removed them all, so it is empty and the test is strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from import_graph import CURRENT_LAYERS, TARGET_LAYERS, import_closure, collect, violation_keys

PACKAGE = Path(__file__).resolve().parent.parent / "prune_cli"
LAYERS = {**CURRENT_LAYERS, **TARGET_LAYERS}  # old and new module names while the refactor runs

ALLOWED: set[str] = set()  # empty since plugin discovery: the test is strict


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
