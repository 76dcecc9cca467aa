"""Helpers shared by some of the tests' files (CLI, schedules, training-time methods) to make less
work for the same checks (issue 12, item 5; docs/performance.md#test-suite).

- `ReferenceRuns`: the uninterrupted run of a list of overrides, made once per test module and
  read by every crash-and-resume case of those overrides (the cases differ only in where the
  crash happens, so their reference runs were the same run made several times).
- `crash_and_resume`: tests/helpers.py's crash_and_resume against such a shared reference.
- `composed_once` / `validated_once`: tests/helpers.py's `composed` / `validated`, composing each
  set of config-group choices once per process and applying the value overrides the way Hydra does.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from tests.helpers import REPO, Crash, composed


class ReferenceRuns:
    """Uninterrupted runs in `folder`, one per list of overrides, each made the first time it is asked
    for (a module fixture holds one: tests that read it share a worker, `xdist_group`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.made: dict[tuple[str, ...], Path] = {}

    def __call__(self, overrides: list[str]) -> Path:
        """The run directory of the uninterrupted run of `overrides` (read it, do not write into it)."""
        from prune_cli.run.experiment import run

        key = tuple(overrides)
        if key not in self.made:
            results = self.folder / f"reference_{len(self.made)}"
            run(compose_once(list(overrides), results), results / "run")
            self.made[key] = results / "run"
        return self.made[key]


def crash_and_resume(
    reference: Path, tmp_path: Path, monkeypatch, overrides: list[str], crash_at: tuple[str, int], after_crash=None
) -> Path:
    """Run `overrides` stopped by a crash right after the checkpoint of epoch `crash_at[1]` of training
    phase `crash_at[0]`, then again (a resume); return the resumed run's directory, to compare with
    `reference` (the same overrides run uninterrupted). `after_crash(run_dir, results_dir)` sees the
    state the crash left. The crash and resume are tests/helpers.py's crash_and_resume."""
    import prune_cli.run.experiment as experiment
    from prune_cli.core.identity import run_id

    assert (reference / "COMPLETE").exists(), reference
    real_train = experiment.train

    def crashing_train(*args, on_epoch_end=None, **kwargs):
        phase = args[4]

        def stop(row, progress):
            on_epoch_end(row, progress)
            if (phase, progress.epoch) == tuple(crash_at):
                raise Crash(f"simulated crash after {phase} epoch {progress.epoch}")

        return real_train(*args, on_epoch_end=stop, **kwargs)

    results = tmp_path / "crashing"
    cfg = compose_once(overrides, results)
    run_dir = results / "runs" / run_id(cfg)
    monkeypatch.setattr(experiment, "train", crashing_train)
    with pytest.raises(Crash):
        experiment.run(cfg, run_dir)
    if after_crash is not None:
        after_crash(run_dir, results)
    monkeypatch.setattr(experiment, "train", real_train)
    experiment.run(cfg, run_dir)
    return run_dir


# ----------------------------------------------------------------------------- compositions


_GROUP_BASES: dict[tuple[str, ...], DictConfig] = {}


def _is_group_choice(override: str) -> bool:
    """`method=gp`, `experiment/points@_global_=it4`: a choice of a config group (a folder of configs/),
    which Hydra resolves in the defaults list; everything else is a value override."""
    key = override.split("=", 1)[0].split("@", 1)[0]
    return "." not in key and ("/" in key or (REPO / "configs" / key).is_dir())


def composed_once(*overrides) -> DictConfig:
    """tests/helpers.py's `composed` with the costly part done once per set of group choices in this
    process: Hydra composes the defaults of those choices (the defaults tree, one YAML file or schema
    per option: most of a composition's time) once, and each call applies its value overrides to a
    copy with Hydra's own code for them, `ConfigLoaderImpl._apply_overrides_to_config` (the function
    Hydra calls after composing the defaults, on the same struct-mode config). Overrides that add or
    delete keys (`+`, `~`) or set `hydra.*` take the whole composition. test_metrics_full_cli's
    test_composed_once_equals_hydras_composition checks the two agree."""
    args = [o for x in overrides for o in ([x] if isinstance(x, str) else x)]
    if any(a.startswith(("+", "~", "hydra.", "hydra/")) for a in args):
        return composed(args)
    choices = tuple(a for a in args if _is_group_choice(a))
    if choices not in _GROUP_BASES:
        _GROUP_BASES[choices] = composed(list(choices))
    cfg = copy.deepcopy(_GROUP_BASES[choices])
    values = OverridesParser.create().parse_overrides([a for a in args if not _is_group_choice(a)])
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)  # noqa: SLF001 - Hydra's own step
    return cfg


def validated_once(*overrides) -> DictConfig:
    """`composed_once`, then the pre-run pass (prune_cli/run/prevalidate.py), as helpers.validated."""
    from prune_cli.run.prevalidate import validate

    cfg = composed_once(*overrides)
    validate(cfg)
    return cfg


def compose_once(overrides: list[str], results_dir: Path) -> DictConfig:
    """tests/helpers.py's `compose` (validated, results in `results_dir`) through `composed_once`."""
    return validated_once([*overrides, f"results_dir={results_dir}"])
