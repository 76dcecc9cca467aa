"""A sweep over a config group's options with an option those options declare (`-m method=snip,grasp
method.batches=2`): Hydra composes the sweep's master config with the group's default option, which
lacks the key, so the whole sweep was refused as "Unknown config key 'method.batches'" although every
job declares it (prune_cli/hydra_patches.py `_compose_group_sweeps_with_their_options`). And a sweep over
presets that define sweeps of their own (`-m +experiment=pa,pb`), which ran each preset once."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import FAST, run_cli, snapshot
from prune_cli.core.identity import run_id
from tests.helpers import composed

ONE_EPOCH = [a for a in FAST if not a.startswith(("train.epochs", "finetune.epochs"))] + ["train.epochs=1", "finetune.epochs=1"]
QUIET = ["metrics.regions.enabled=false"]


def test_an_option_every_swept_group_option_declares_runs_each_job_with_it(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, "method=snip,grasp", "method.batches=2"], results)
    assert "all 2 runs of the sweep completed" in proc.stderr
    expected = {run_id(composed(ONE_EPOCH, *QUIET, f"method={m}", "method.batches=2")) for m in ("snip", "grasp")}
    assert {p.name for p in (results / "runs").iterdir() if p.is_dir()} == expected
    runs = pd.read_csv(results / "runs.csv")
    assert set(runs["method"]) == {"snip", "grasp"}


@pytest.mark.parametrize("methods, job", [("snip,magnitude", "job 2 of 2"), ("magnitude,snip", "job 1 of 2")])
def test_an_option_one_swept_group_option_lacks_stops_the_sweep_naming_it(finished_results, methods, job):
    # magnitude first: the sweep's master config was composed with magnitude only, so the refusal was the
    # bare "Unknown config key 'method.batches'", naming neither the job nor snip, which declares it
    before = snapshot(finished_results)
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, f"method={methods}", "method.batches=2"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{job} (method=magnitude): Unknown config key 'method.batches'" in proc.stderr
    assert "1 of 2 jobs of the sweep rejected" in proc.stderr
    assert "Traceback" not in proc.stderr and snapshot(finished_results) == before


@pytest.mark.parametrize("key", ["method.batchez", "data_pruning.proxies"])
def test_a_key_no_swept_option_declares_is_still_unknown(finished_results, key):
    before = snapshot(finished_results)
    proc = run_cli(["-m", *ONE_EPOCH, *QUIET, "method=snip,grasp", f"{key}=2"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"Unknown config key '{key}'" in proc.stderr
    assert snapshot(finished_results) == before


def _presets(folder, **sweeps) -> str:
    """A config folder (for --config-dir) holding experiment presets: name -> its own sweep (hydra.sweeper.params
    as YAML lines, or "" for none)."""
    (folder / "experiment").mkdir(parents=True)
    for name, params in sweeps.items():
        own = f"hydra:\n  sweeper:\n    params:\n{params}" if params else ""
        (folder / "experiment" / f"{name}.yaml").write_text(f"# @package _global_\nname: {name}\nsparsity: 0.5\n{own}")
    return str(folder)


def test_a_sweep_over_presets_that_sweep_on_their_own_is_refused(finished_results, tmp_path):
    # Before: `-m +experiment=pa,pb` ran 2 jobs, both at seed 0, exit 0: Hydra expands the sweep's own
    # hydra.sweeper.params once, from its master config, which holds neither preset, so each preset's sweep
    # was dropped without a word (a single run of a preset at least says so: cli._sweep_not_run).
    presets = _presets(tmp_path / "mine", pa="      seed: 0,1\n", pb="      seed: 2,3\n", pc="")
    before = snapshot(finished_results)
    proc = run_cli(["--config-dir", presets, "-m", "+experiment=pa,pb,pc", *ONE_EPOCH], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    for text in ("experiment=pa (seed: 0,1)", "experiment=pb (seed: 2,3)", "no job ran", "one preset per -m command"):
        assert text in proc.stderr, (text, proc.stderr)
    assert "experiment=pc" not in proc.stderr
    assert snapshot(finished_results) == before


def test_a_sweep_over_the_published_presets_is_refused_naming_each(finished_results):
    # Before: 2 jobs, where the two presets sweep 60 and 6 runs
    before = snapshot(finished_results)
    proc = run_cli(["-m", "+experiment=recall_distortion,pruning_limit"], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "experiment=recall_distortion (" in proc.stderr and "experiment=pruning_limit (" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


def test_a_preset_of_such_a_sweep_that_does_not_compose_is_named_too(finished_results):
    # configs audit of 2026-12-03 (sixth session): with dataset=synthetic, pruning_limit's own dataset.num_samples is
    # not a key of the synthetic dataset; only recall_distortion's dropped sweep was named
    before = snapshot(finished_results)
    proc = run_cli(["-m", "dataset=synthetic", "+experiment=recall_distortion,pruning_limit"], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "experiment=recall_distortion (" in proc.stderr, proc.stderr
    assert "The sweep also rejects 1 of its 2 jobs" in proc.stderr and "+experiment=pruning_limit" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


def test_a_sweep_over_presets_whose_swept_keys_the_command_line_gives_runs(tmp_path):
    """Values given on the command line replace a preset's for the same key (docs/report.md, "Experiment
    presets"): nothing of the presets' own sweeps is dropped."""
    presets = _presets(tmp_path / "mine", pa="      seed: 0,1\n", pb="      seed: 2,3\n")
    proc = run_cli(["--config-dir", presets, "-m", "+experiment=pa,pb", "seed=5", *ONE_EPOCH, *QUIET], tmp_path / "r")
    assert "all 2 runs of the sweep completed" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "r" / "runs").glob("p*")) == ["pa", "pb"]


def _launcher_presets(folder, **launchers) -> str:
    """A config folder holding experiment presets that choose a launcher: name -> (launcher, its values as YAML lines)."""
    (folder / "experiment").mkdir(parents=True)
    for name, (launcher, values) in launchers.items():
        text = f"# @package _global_\ndefaults:\n  - override /hydra/launcher: {launcher}\n  - _self_\nname: {name}\n"
        (folder / "experiment" / f"{name}.yaml").write_text(text + (f"hydra:\n  launcher:\n{values}" if values else ""))
    return str(folder)


def test_a_sweep_over_presets_that_choose_a_launcher_is_refused(finished_results, tmp_path):
    # Before (launchers audit of 2026-12-03): exit 0, "all 2 runs of the sweep completed": Hydra builds the
    # launcher from the sweep's master config, which holds no swept preset, so both jobs trained in the calling
    # process (on a cluster, the login node) while each run's .hydra/hydra.yaml recorded hydra/launcher: slurm
    presets = _launcher_presets(tmp_path / "mine", sa=("slurm", "    partition: gpu\n"), sb=("slurm", "    partition: cpu\n"))
    before = snapshot(finished_results)
    proc = run_cli(["--config-dir", presets, "-m", "+experiment=sa,sb", *ONE_EPOCH], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    for text in ("no job ran", "experiment=sa: hydra/launcher: slurm where the sweep runs with basic", "experiment=sb"):
        assert text in proc.stderr, (text, proc.stderr)
    assert snapshot(finished_results) == before


def test_a_sweep_over_presets_that_set_other_launcher_values_is_refused(finished_results, tmp_path):
    """The command line chooses the launcher; a swept preset changes one of its values (n_jobs, 2 by default),
    which the sweep drops."""
    presets = _launcher_presets(tmp_path / "mine", pa=("parallel", "    n_jobs: 1\n"), pb=("parallel", ""))
    before = snapshot(finished_results)
    args = ["--config-dir", presets, "-m", "hydra/launcher=parallel", "+experiment=pa,pb", *ONE_EPOCH]
    proc = run_cli(args, finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "hydra.launcher.n_jobs=1 where the sweep runs with hydra.launcher.n_jobs=2" in proc.stderr, proc.stderr
    assert "experiment=pb" not in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


@pytest.mark.parametrize("sweep", [["allow_failures=choice(true)"], ["fail_fast=true,false"]])
def test_sweep_settings_given_as_sweep_values_are_refused(finished_results, sweep):
    # Before: `allow_failures=choice(true)` with a failing run exited 1 ("1 of 1 runs failed"): the end of the
    # sweep reads the master config, without swept values; `fail_fast=true,false` stopped nothing and ran the
    # failed run again under the same run id
    before = snapshot(finished_results)
    proc = run_cli(["-m", *sweep, *ONE_EPOCH], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    key = sweep[0].partition("=")[0]
    assert "no job ran" in proc.stderr and f"{key}: True where the sweep runs with False" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before
