"""A single run composes its config once (prune_cli/hydra_patches.py `_compose_a_run_once`): Hydra composes it
to learn the run mode and again to run it; the first composition is now the run's. These tests fail
if the wrapper stops applying (a Hydra upgrade that renames `Hydra.get_mode` or
`ConfigLoaderImpl.load_configuration`), if a run gets another command's config, and if a composition
error is reported differently. The expected run ids come from Hydra's compose API (tests/helpers.py),
outside the console entry point."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra

from conftest import FAST, run_cli
import prune_cli.cli  # noqa: F401  (installs the wrappers)
from prune_cli import hydra_patches
from prune_cli.core.identity import run_id
from tests.helpers import composed


@pytest.fixture
def compositions(monkeypatch) -> list:
    """The overrides of every composition Hydra makes (its implementation, below the wrapper)."""
    made = []
    real = ConfigLoaderImpl._load_configuration_impl  # noqa: SLF001

    def counting(self, *args, **kwargs):
        made.append(list(kwargs.get("overrides", args[1] if len(args) > 1 else [])))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "_load_configuration_impl", counting)
    return made


def test_the_wrapper_is_installed():
    assert getattr(Hydra.get_mode, "composes_a_run_once", False)


def test_a_run_composes_once_and_runs_its_own_config(tmp_path, compositions):
    one_epoch = [a for a in FAST if not a.startswith(("train.epochs", "finetune.epochs"))] + ["train.epochs=1", "finetune.epochs=1"]
    args = [*one_epoch, "metrics.regions.enabled=false", "seed=4"]
    results = tmp_path / "results"
    run_cli(args, results)
    assert len(compositions) == 1, compositions  # was two: Hydra's run mode, then the run
    (run,) = [p.name for p in (results / "runs").iterdir() if p.is_dir()]
    assert run == run_id(composed(args, f"results_dir={results}"))
    assert hydra_patches._RUN_COMPOSITION == {}  # noqa: SLF001 - nothing kept after the run


def test_consecutive_commands_each_get_their_own_config(tmp_path, compositions):
    first = run_cli(["sparsity=2"], tmp_path / "a", check=False)
    second = run_cli(["seed=-1"], tmp_path / "b", check=False)
    assert first.returncode == second.returncode == 2
    assert "'sparsity'" in first.stderr and "'seed'" not in first.stderr
    assert "'seed'" in second.stderr and "'sparsity'" not in second.stderr
    assert len(compositions) == 2, compositions


def test_a_composition_error_is_reported_as_before_without_a_third_composition(tmp_path, compositions):
    """The run composition fails; Hydra's own (multirun) composition decides the mode (and fails too);
    the run then raises the kept error instead of composing a third time. The message is the one
    tests/test_startup_hydra_errors.py expects."""
    proc = run_cli(["train.epochs=abc"], tmp_path / "results", check=False)
    assert proc.returncode == 2
    assert "'train.epochs'" in proc.stderr and "'abc'" in proc.stderr and "an integer" in proc.stderr
    assert len(compositions) == 2, compositions
    assert hydra_patches._RUN_COMPOSITION == {}  # noqa: SLF001


def test_a_sweep_override_without_multirun_is_still_refused(tmp_path):
    """Hydra refuses `seed=0,1` without -m (a run composition checks sweep overrides): unchanged."""
    proc = run_cli(["seed=0,1"], tmp_path / "results", check=False)
    assert proc.returncode != 0
    assert "seed=0,1" in proc.stderr or "sweep" in proc.stderr.lower(), proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_the_kept_config_is_hydras_own_composition_of_the_run(tmp_path, monkeypatch):
    """What the run gets (the kept composition, with `hydra.mode=RUN` applied afterwards as Hydra's
    _run_app appends it) equals a fresh composition by Hydra of the run's overrides, hydra node and all."""
    from omegaconf import OmegaConf

    wrapped = ConfigLoaderImpl.load_configuration
    compared = []

    def spy(self, config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        cfg = wrapped(self, config_name, overrides, run_mode, from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides)
        if list(overrides)[-1:] == ["hydra.mode=RUN"]:
            fresh = self._load_configuration_impl(config_name, overrides, run_mode, from_shell, validate_sweep_overrides)  # noqa: SLF001
            compared.append((OmegaConf.to_container(cfg), OmegaConf.to_container(fresh)))
        return cfg

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", spy)
    run_cli(["sparsity=2", "model.widths=[8]", "train.lr=0.05"], tmp_path / "results", check=False)
    assert len(compared) == 1
    kept, fresh = compared[0]
    assert kept == fresh
    assert str(kept["hydra"]["mode"]) == "RunMode.RUN" and kept["hydra"]["overrides"]["hydra"][-1] == "hydra.mode=RUN"
