"""`prune-run` start-up as a new interpreter sees it (docs/performance.md, "Start-up"): one new interpreter
runs the console entry point, `prune_cli.cli.main`, for several commands in turn (Hydra's global state
cleared between them) and reports, per command, its exit code and the modules it added to `sys.modules`,
and at the end whether `torch._dynamo` was ever imported.

Two test files read the one report (conftest's `startup_report`, made once per test session):
test_startup_imports (the commands that do no work load no heavy module) and test_startup_model_check
(config errors found on the model do not import torch._dynamo). Their commands run in this order in the
one interpreter: first the no-work commands, each measured from a fresh interpreter's state onwards as
before, then the model errors (the memo of checked models keeps the first command's model, so every
model config is still built in this interpreter). One start-up (torch and Hydra: about 4 CPU-seconds)
instead of one per file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# test_startup_imports: name -> (arguments, exit code)
NO_WORK = {
    "cfg job": (["--cfg", "job"], 0),
    "help": (["--help"], 0),
    "value error": (["sparsity=2"], 2),
    "model error": (["method.exclude=[nope]"], 2),
}

# test_startup_model_check: config errors found on the model (exit 2 each)
MODEL_ERRORS = {
    "mlp exclude": ["method.exclude=[nope]"],
    "cnn1d exclude": ["model=cnn1d", "method.exclude=[nope]"],
    "resnet20 on mnist1d": ["model=resnet20", "dataset=mnist1d"],
    # schedule=layer_pruning's own check of the model (residual sections) builds it too
    "layer_pruning cnn1d": ["schedule=layer_pruning", "model=cnn1d", "dataset=mnist1d"],
    "layer_pruning mlp": ["schedule=layer_pruning", "model=mlp", "dataset=mnist1d"],
}

DRIVER = """
import json, sys
from hydra.core.global_hydra import GlobalHydra
import prune_cli.cli as cli

out = {}
for name, args in json.loads(sys.argv[1]):
    before = set(sys.modules)
    sys.argv = ["prune-run", *args]
    code = 0
    try:
        cli.main()
    except SystemExit as stop:
        code = stop.code or 0
    GlobalHydra.instance().clear()
    out[name] = {"rc": code, "added": sorted(set(sys.modules) - before)}
print("RESULT " + json.dumps({"commands": out, "dynamo": "torch._dynamo" in sys.modules}))
"""


def commands() -> list[tuple[str, list[str]]]:
    """The commands in the order the driver runs them (names are unique across the two tables)."""
    return [(name, args) for name, (args, _) in NO_WORK.items()] + list(MODEL_ERRORS.items())


def run(cwd: Path) -> subprocess.CompletedProcess:
    """The driver in a new interpreter, working directory `cwd`."""
    cmd = [sys.executable, "-c", DRIVER, json.dumps(commands())]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def report(proc: subprocess.CompletedProcess) -> dict:
    """The driver's report: {"commands": {name: {"rc", "added"}}, "dynamo": bool}."""
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])
