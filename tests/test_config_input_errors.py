"""Config input an audit found crashing (a traceback, exit 1) or accepted while it changed nothing:
interpolations that cannot resolve, sweeps the basic sweeper cannot expand, unknown Hydra keys added
with `+`, user config files that do not parse or that a packaged option hides. Each must stop before
any work: exit 2, one `prune-run: error:` line naming the key (or file), the value and what is
allowed, nothing created, a finished results folder byte-identical (README "Errors",
docs/robustness.md)."""

from __future__ import annotations

import pytest

from conftest import FAST, run_cli, snapshot

pytestmark = pytest.mark.xdist_group("config_input_errors")


def _one_error(proc) -> str:
    """The single error line of a rejected command (no traceback, no second report)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return proc.stderr.strip()


def _rejected(args, finished_results, *fragments):
    before = snapshot(finished_results)
    proc = run_cli(args, finished_results, check=False, keep_repeats=True)
    err = _one_error(proc)
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert snapshot(finished_results) == before  # nothing written, nothing created, nothing rewritten
    return err


# --------------------------------------------------------------------------- interpolations


INTERPOLATIONS = [
    # (overrides, the key named, what the message says about it)
    (["sparsity=${missing}"], "sparsity", "Interpolation key 'missing' not found"),
    (["sparsity=${sparsity}"], "sparsity", "Recursive interpolation"),
    (["train.lr=${finetune.lr}", "finetune.lr=${train.lr}"], "train.lr", "Recursive interpolation"),
    (["name=${oc.env:NOPE_X}"], "name", "NOPE_X"),
]


@pytest.mark.parametrize("args, key, reason", INTERPOLATIONS, ids=[" ".join(c[0]) for c in INTERPOLATIONS])
def test_an_interpolation_that_cannot_resolve_names_its_key(finished_results, monkeypatch, args, key, reason):
    # Before: OmegaConf's InterpolationKeyError / InterpolationResolutionError traceback, exit 1,
    # naming hydra.run.dir (the run directory whose resolution validates the config).
    monkeypatch.delenv("NOPE_X", raising=False)
    err = _rejected([*FAST, *args], finished_results, f"'{key}'", reason, "an interpolation")
    assert "hydra.run.dir" not in err


def test_an_interpolation_that_cannot_resolve_in_a_sweep_runs_no_job(finished_results):
    # Before: a traceback, exit 1, and runs/multirun.yaml overwritten (the sweep's clean-up never ran).
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    err = _rejected(["-m", *FAST, "seed=0,1", "sparsity=${missing}"], finished_results, "'sparsity'", "no job ran")
    assert "2 of 2 jobs of the sweep rejected" in err


def test_an_interpolation_that_cannot_resolve_in_a_new_sweep_creates_nothing(tmp_path):
    proc = run_cli(["-m", *FAST, "seed=0,1", "sparsity=${missing}"], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []


def test_cfg_job_resolve_names_the_interpolation_s_key(tmp_path):
    # Before: `--cfg job --resolve` printed OmegaConf's traceback, exit 1.
    proc = run_cli(["--cfg", "job", "--resolve", *FAST, "sparsity=${missing}"], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "'sparsity'" in err and "Interpolation key 'missing' not found" in err
    assert sorted(tmp_path.iterdir()) == []


def test_an_interpolation_that_resolves_still_runs(tmp_path):
    proc = run_cli(["--cfg", "job", "--resolve", *FAST, "finetune.lr=${train.lr}", "name=s${seed}"], tmp_path / "r")
    assert "name: s0" in proc.stdout


def test_a_bug_in_the_sweep_s_check_keeps_its_traceback_and_puts_the_folder_back(finished_results, monkeypatch):
    # Before: the sweep's check caught only prune-cli errors, so any other exception raised while it
    # validated the jobs left runs/multirun.yaml overwritten and results_dir/.sweeps behind.
    from prune_cli import cli

    def broken(cfg):
        raise RuntimeError("a bug in the pre-run pass")

    monkeypatch.setattr(cli, "validate", broken)
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    before = snapshot(finished_results)
    proc = run_cli(["-m", *FAST, "seed=0,1"], finished_results, check=False)
    assert proc.returncode == 1 and "a bug in the pre-run pass" in proc.stderr, proc.stderr[-3000:]
    assert snapshot(finished_results) == before


# --------------------------------------------------------------------------- sweeps the basic sweeper cannot expand

NO_MLP = [a for a in FAST if a != "model=mlp"]
SWEEPS = [
    # (sweep overrides, fragments of the message). Before: interval() was Hydra's HydraException traceback,
    # exit 1, results_dir/runs left behind; the others launched 0 jobs, "all 0 runs of the sweep completed",
    # exit 0, and wrote runs/multirun.yaml.
    (["model=mlp", "sparsity=interval(0,1)"], ["'sparsity'", "'interval(0,1)'", "Optuna", "range(start,stop"]),
    (["model=mlp", "seed=glob(*)"], ["'seed'", "'glob(*)'", "config groups", "no job"]),
    (["model=glob(zz*)"], ["'model'", "'glob(zz*)'", "mlp", "no job"]),
    (["model=mlp", "seed=range(0,0)"], ["'seed'", "'range(0,0)'", "no job"]),
]


@pytest.mark.parametrize("args, fragments", SWEEPS, ids=[c[0][-1] for c in SWEEPS])
def test_a_sweep_the_basic_sweeper_cannot_expand_into_jobs_is_rejected(finished_results, args, fragments):
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    _rejected(["-m", *NO_MLP, *args], finished_results, *fragments)


@pytest.mark.parametrize("args", [c[0] for c in SWEEPS], ids=[c[0][-1] for c in SWEEPS])
def test_a_sweep_with_no_job_creates_nothing(tmp_path, args):
    proc = run_cli(["-m", *NO_MLP, *args], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []
