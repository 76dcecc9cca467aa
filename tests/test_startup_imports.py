"""Start-up (issue 12, docs/performance.md "Start-up"): the commands that do no work import none of the
heavy optional modules.

`prune-run --cfg job`, `prune-run --help` and the config errors of the pre-run pass (a value check,
`sparsity=2`, and a check against the model built on the meta device, `method.exclude=[nope]`) must
not load scipy, matplotlib, torchvision, pandas, the analysis package (prune_cli/analysis/) or a
plugin module the config did not choose (the static plugin index, prune_cli/core/plugins.py, finds
them without importing them). One new interpreter runs the real entry point, `prune_cli.cli.main`, for
each command in turn and reports what each one added to `sys.modules` (tests/startup_driver.py; the
same interpreter then runs test_startup_model_check's commands); a wall-clock threshold would
measure the machine, not the code, so none is used (the timings are scripts/bench_startup.py's job).
"""

from __future__ import annotations

import pytest
from startup_driver import NO_WORK

from prune_cli.analysis.hessian import HVP_MODES as ANALYSIS_HVP_MODES
from prune_cli.analysis.ntk import OUTPUTS as ANALYSIS_OUTPUTS
from prune_cli.metrics.hessian import HVP_MODES
from prune_cli.metrics.ntk import OUTPUTS

HEAVY = ("scipy", "matplotlib", "torchvision", "pandas", "sklearn", "prune_cli.analysis")


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.xdist_group("startup_report")  # with test_startup_model_check, which reads the same report
def test_commands_that_do_no_work_load_no_heavy_module(startup_report):
    got = startup_report.commands
    assert list(got)[: len(NO_WORK)] == list(NO_WORK)  # the driver ran these first, in a fresh interpreter
    loaded: set[str] = set()
    for name, (_, rc) in NO_WORK.items():
        assert got[name]["rc"] == rc, (name, got[name]["rc"])
        assert _heavy(got[name]["added"]) == [], (name, _heavy(got[name]["added"]))
        loaded |= set(got[name]["added"])
    # torch itself is needed (the chosen model's module defines an nn.Module); it is the floor the
    # start-up benchmark compares with.
    assert "torch" in loaded
    # Only the chosen plugins (default config: mnist1d, mlp, magnitude, oneshot) were imported.
    assert "prune_cli.models.mlp" in loaded
    for other in ("prune_cli.models.resnet", "prune_cli.models.vgg", "prune_cli.data.vision", "prune_cli.data.synthetic"):
        assert other not in loaded, other
    scores = {m for m in loaded if m.startswith("prune_cli.pruning.scores.")}
    assert scores <= {"prune_cli.pruning.scores.magnitude", "prune_cli.pruning.scores.common"}, scores
    cwd = startup_report.cwd
    assert cwd.exists() and not any(cwd.iterdir()), "a command that does no work created files"


def test_metric_checks_accept_exactly_what_the_analysis_accepts():
    """The hessian and ntk adapters check their options against their own copies of the values the
    analysis functions accept (so that checking a config does not import the analysis package)."""
    assert HVP_MODES == ANALYSIS_HVP_MODES
    assert OUTPUTS == ANALYSIS_OUTPUTS
