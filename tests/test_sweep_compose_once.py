"""A sweep composes each job's config once (prune_cli/hydra_patches.py `_compose_each_sweep_job_once`): Hydra's
sweeper composes every job to check its overrides, and the launcher then gets that composition
instead of composing again. These tests fail if the wrapper stops applying (a Hydra upgrade that
renames or bypasses `ConfigLoaderImpl.load_sweep_config`) and if a job ever gets another job's config.

The expected run ids come from Hydra's compose API, one composition per job, outside any sweep."""

from __future__ import annotations

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from omegaconf import OmegaConf

from conftest import FAST, run_cli
import prune_cli.cli  # noqa: F401  (installs the wrappers)
from prune_cli import hydra_patches, sweep_lifecycle
from prune_cli.core.identity import run_id
from tests.helpers import composed

ONE_EPOCH = [a for a in FAST if not a.startswith(("train.epochs", "finetune.epochs"))] + ["train.epochs=1", "finetune.epochs=1"]


def test_the_wrapper_is_installed():
    assert getattr(ConfigLoaderImpl.load_sweep_config, "composes_each_job_once", False)


def test_a_sweep_composes_each_job_once_and_runs_the_config_of_each_job(tmp_path, monkeypatch):
    compositions = []
    real = ConfigLoaderImpl.load_configuration

    def counting(self, *args, **kwargs):
        compositions.append(kwargs.get("overrides"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counting)
    results = tmp_path / "results"
    seeds = [0, 1]
    run_cli(["-m", *ONE_EPOCH, "metrics.regions.enabled=false", f"seed={','.join(map(str, seeds))}"], results)
    # Hydra's own: one to learn the run mode, one of the sweep; then one per job (not two).
    assert len(compositions) == 2 + len(seeds), compositions
    expected = {run_id(composed(ONE_EPOCH, "metrics.regions.enabled=false", f"seed={s}")) for s in seeds}
    assert {p.name for p in (results / "runs").iterdir() if p.is_dir()} == expected
    assert sweep_lifecycle._SWEEP_JOBS == {}  # noqa: SLF001 - nothing kept after the sweep


class _Loader:
    """Stands in for Hydra's config loader: counts compositions, each a new config."""

    def __init__(self):
        self.calls = 0


def test_a_kept_composition_is_handed_out_once_and_is_a_copy(monkeypatch):
    """Same loader, master config and overrides: the second call gets an equal copy of the first
    composition, the third composes again (a sweep that lists the same overrides twice)."""
    made = []

    def compose(self, master_config, sweep_overrides):
        self.calls += 1
        made.append(OmegaConf.create({"overrides": list(sweep_overrides), "n": self.calls}))
        return made[-1]

    monkeypatch.setattr(hydra_patches, "_SWEEP_JOBS", {})
    original = ConfigLoaderImpl.load_sweep_config
    monkeypatch.setattr(ConfigLoaderImpl, "load_sweep_config", compose)
    hydra_patches._compose_each_sweep_job_once()  # noqa: SLF001 - wraps the stand-in
    wrapped = ConfigLoaderImpl.load_sweep_config
    assert wrapped is not compose and wrapped is not original
    basic = {"hydra": {"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}}}
    loader, master = _Loader(), OmegaConf.create(basic)
    first = wrapped(loader, master, ["seed=1"])
    second = wrapped(loader, master, ["seed=1"])
    assert loader.calls == 1 and second == first and second is not first
    first.n = 99  # the checker's result may be changed: the launcher's copy is not
    assert second.n == 1
    third = wrapped(loader, master, ["seed=1"])
    assert loader.calls == 2 and third.n == 2
    wrapped(loader, master, ["seed=1"])  # the third composition was kept: hand it out
    other = wrapped(loader, OmegaConf.create(basic), ["seed=1"])  # another sweep's master config
    assert loader.calls == 3 and other.n == 3
    joblib = OmegaConf.create({"hydra": {"launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher"}}})
    wrapped(loader, joblib, ["seed=1"])  # jobs run in workers: nothing kept
    assert wrapped(loader, joblib, ["seed=1"]).n == 5


@pytest.mark.parametrize("bad", ["train.epochs=1,abc"])
def test_a_bad_job_is_still_rejected_before_any_job_runs(tmp_path, bad):
    results = tmp_path / "results"
    proc = run_cli(["-m", *[a for a in ONE_EPOCH if not a.startswith("train.epochs")], bad], results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert not results.exists()
