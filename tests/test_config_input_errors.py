"""Config input an audit found crashing (a traceback, exit 1) or accepted while it changed nothing:
interpolations that cannot resolve, sweeps the basic sweeper cannot expand, unknown Hydra keys added
with `+`, user config files that do not parse or that a packaged option hides. Each must stop before
any work: exit 2, one `prune-run: error:` line naming the key (or file), the value and what is
allowed, nothing created, a finished results folder byte-identical (README "Errors",
docs/robustness.md)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from omegaconf import MISSING, OmegaConf

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
    from prune_cli import hydra_patches

    def broken(cfg):
        raise RuntimeError("a bug in the pre-run pass")

    monkeypatch.setattr(hydra_patches, "validate", broken)
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


FLOAT_RANGES = [
    # Before: range(0.2,0.4,0.1) ran 3 jobs (0.2, 0.30000000000000004, 0.4; Python's range stops before 0.4)
    # and recorded target_sparsity 0.30000000000000004 under a run id that a later sparsity=0.3 run does not share.
    ("sparsity=range(0.2,0.4,0.1)", ["'sparsity'", "'range(0.2,0.4,0.1)'", "sparsity=0.2,0.3", "0.30000000000000004"]),
    ("sparsity=range(0.5,0.95,0.05)", ["'sparsity'", "0.7000000000000001", "sparsity=0.5,0.55,0.6,0.65,0.7,"]),
]


@pytest.mark.parametrize("arg, fragments", FLOAT_RANGES, ids=[c[0] for c in FLOAT_RANGES])
def test_a_range_sweep_over_floats_is_refused_with_the_values_to_list(finished_results, arg, fragments):
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    _rejected(["-m", *FAST, arg], finished_results, *fragments)


def test_a_range_sweep_over_floats_that_are_exact_runs_the_values_typed(tmp_path):
    """range(0.5,1.0,0.25) gives 0.5 and 0.75 exactly (binary fractions): it ran before the float-range check
    and was then refused with the advice to type the very values it gives."""
    proc = run_cli(["-m", *FAST, "train.epochs=1", "sparsity=range(0.5,1.0,0.25)"], tmp_path / "r")
    assert "all 2 runs of the sweep completed" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name.split("-s")[1].split("-")[0] for p in (tmp_path / "r" / "runs").glob("run-*")) == ["0.5", "0.75"]


def test_a_range_sweep_over_integers_runs(tmp_path):
    proc = run_cli(["-m", *FAST, "train.epochs=1", "seed=range(3,4)"], tmp_path / "r")
    assert "all 1 runs of the sweep completed" in proc.stderr


@pytest.mark.parametrize("args", [c[0] for c in SWEEPS], ids=[c[0][-1] for c in SWEEPS])
def test_a_sweep_with_no_job_creates_nothing(tmp_path, args):
    proc = run_cli(["-m", *NO_MLP, *args], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []


ZERO_STEPS = [
    # Before: seed's was Python's ValueError traceback ("range() arg 3 must not be zero"), sparsity's Hydra's
    # HydraException traceback; exit 1, and results_dir/runs was left behind.
    ("seed=range(0,1,0)", "'seed'", "'range(0,1,0)'"),
    ("sparsity=range(0.5,1.0,0)", "'sparsity'", "'range(0.5,1.0,0)'"),
]


@pytest.mark.parametrize("arg, key, value", ZERO_STEPS, ids=[c[0] for c in ZERO_STEPS])
def test_a_range_sweep_with_step_zero_is_rejected(finished_results, arg, key, value):
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    _rejected(["-m", *FAST, arg], finished_results, key, value, "step other than 0")


def test_a_range_sweep_with_step_zero_creates_nothing(tmp_path):
    proc = run_cli(["-m", *FAST, "seed=range(0,1,0)"], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []


def test_a_preset_s_range_sweep_with_step_zero_is_rejected(tmp_path):
    """The same range() in a preset's own sweep (hydra.sweeper.params)."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    preset = "# @package _global_\nname: zero\nhydra:\n  sweeper:\n    params:\n      seed: range(0,1,0)\n"
    (tmp_path / "mine" / "experiment" / "zero.yaml").write_text(preset)
    proc = run_cli(["--config-dir", str(tmp_path / "mine"), "-m", "+experiment=zero", *FAST], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "'seed'" in err and "'range(0,1,0)'" in err, err
    assert sorted(tmp_path.iterdir()) == [tmp_path / "mine"]


GLOB_TYPOS = [
    # (sweep, the pattern named). Before: glob([magnitude,randon]) ran magnitude alone and glob(*,exclude=
    # [random,magnitde]) ran every method, magnitude among them (exit 0): a pattern that matched no option
    # changed the sweep without a word, where -m method=magnitude,randon is refused.
    ("method=glob([magnitude,randon])", "'randon'"),
    ("method=glob(*,exclude=[random,magnitde])", "'magnitde'"),
    ("method=glob(magnitude*,exclude=radn?m)", "'radn?m'"),
    ("method=glob([snip,gasp*])", "'gasp*'"),
]


@pytest.mark.parametrize("arg, pattern", GLOB_TYPOS, ids=[c[0] for c in GLOB_TYPOS])
def test_a_glob_pattern_that_matches_no_option_is_rejected(finished_results, arg, pattern):
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    err = _rejected(["-m", *FAST, arg], finished_results, "'method'", pattern, "magnitude, ", "snip")
    assert f"'{arg.partition('=')[2]}'" in err, err


def test_a_glob_whose_every_pattern_matches_an_option_runs(tmp_path):
    proc = run_cli(["-m", *FAST, "train.epochs=1", "method=glob([magnitude,rand*],exclude=[random,snip])"], tmp_path / "r")
    assert "all 1 runs of the sweep completed" in proc.stderr, proc.stderr[-2000:]


def _unusable_sweep_dirs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """hydra.sweep.dir values no sweep can use, and what the message says of each."""
    (tmp_path / "a_file").write_text("a file of the user's\n")
    return {
        "a file": (str(tmp_path / "a_file"), "is not a directory"),
        "under a file": (str(tmp_path / "a_file" / "sweep"), "is a file"),
        "in /proc": ("/proc/prune-cli-sweep", "not writable"),
    }


@pytest.mark.parametrize("case", ["a file", "under a file", "in /proc"])
def test_an_unusable_hydra_sweep_dir_is_rejected_before_any_job(finished_results, tmp_path, case):
    # Before: the basic sweeper's mkdir raised FileExistsError / NotADirectoryError / FileNotFoundError with
    # Hydra's traceback, exit 1, after the sweep's start had written its record into results_dir.
    value, problem = _unusable_sweep_dirs(tmp_path)[case]
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    before = snapshot(tmp_path)
    _rejected(["-m", *FAST, "seed=0,1", f"hydra.sweep.dir={value}"], finished_results, "'hydra.sweep.dir'", repr(value), problem)
    assert snapshot(tmp_path) == before


def test_an_unusable_hydra_sweep_dir_in_a_new_results_dir_creates_nothing(tmp_path):
    value, _ = _unusable_sweep_dirs(tmp_path)["a file"]
    proc = run_cli(["-m", *FAST, "seed=0,1", f"hydra.sweep.dir={value}"], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


# --------------------------------------------------------------------------- Hydra's own keys added with +

HYDRA_KEYS = [
    # (overrides, key named, the closest existing key). Before: the first two ran (exit 0) as if the key
    # were not there; the basic launcher and sweeper failed with "Error in call to target ... unexpected
    # keyword argument" (exit 1) after results_dir/runs existed; joblib was handed n_job and ignored it.
    ([], ["+hydra.job.chdri=true"], "hydra.job.chdri", "hydra.job.chdir"),
    ([], ["+hydra.run.dirr=/tmp/elsewhere"], "hydra.run.dirr", "hydra.run.dir"),
    (["-m"], ["seed=0,1", "+hydra.launcher.n_job=2"], "hydra.launcher.n_job", ""),
    (["-m"], ["seed=0,1", "+hydra.sweeper.foo=1"], "hydra.sweeper.foo", ""),
    (["-m"], ["hydra/launcher=parallel", "seed=0,1", "+hydra.launcher.n_job=1"], "hydra.launcher.n_job", "hydra.launcher.n_jobs"),
    ([], ["++hydra.job.chdri=true"], "hydra.job.chdri", "hydra.job.chdir"),
]


JOBLIB_IGNORED = [("hydra.launcher.backend=foo", "'foo'"), ("hydra.launcher.prefer=threads", "'threads'")]


@pytest.mark.parametrize("override, value", JOBLIB_IGNORED, ids=[c[0] for c in JOBLIB_IGNORED])
def test_a_joblib_option_hydra_s_launcher_ignores_is_refused(finished_results, override, value):
    # Before: accepted and ignored (Hydra's joblib launcher always uses the loky backend, processes), exit 0.
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    args = ["-m", "hydra/launcher=parallel", *FAST, "seed=0,1", override]
    _rejected(args, finished_results, f"'{override.partition('=')[0]}'", value, "loky", "no effect")


@pytest.mark.parametrize("flags, args, key, close", HYDRA_KEYS, ids=[c[1][-1] + (" -m" if c[0] else "") for c in HYDRA_KEYS])
def test_an_unknown_hydra_key_added_with_plus_is_rejected(finished_results, flags, args, key, close):
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    err = _rejected([*flags, *FAST, *args], finished_results, f"Unknown config key '{key}'")
    if close:
        assert f"Did you mean '{close}'?" in err


def test_an_unknown_hydra_key_in_a_new_results_dir_creates_nothing(tmp_path):
    proc = run_cli(["-m", *FAST, "seed=0,1", "+hydra.launcher.n_job=2"], tmp_path / "results", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []


def test_keys_added_under_a_plain_mapping_of_hydra_s_config_are_kept(tmp_path):
    # hydra.launcher.additional_parameters (slurm) and hydra.job.env_set are mappings of any keys
    # (sbatch options, environment variables): adding one is what they are for. A single run checks
    # the whole config, Hydra's node included, before it starts.
    from hydra import compose, initialize_config_dir

    from prune_cli.core.paths import checkout_configs
    from prune_cli.run.prevalidate import check_added_hydra_keys

    added = ["+hydra.launcher.additional_parameters.mail-type=END", "+hydra.job.env_set.MY_VAR=x"]
    with initialize_config_dir(config_dir=str(checkout_configs()), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", *added], return_hydra_config=True)
        check_added_hydra_keys(cfg)  # no error
        typo = "+hydra.launcher.additional_parameter.x=1"
        cfg = compose("config", overrides=["hydra/launcher=slurm", typo], return_hydra_config=True)
        with pytest.raises(Exception, match="hydra.launcher.additional_parameters.x"):
            check_added_hydra_keys(cfg)  # the launcher's own node is a schema: a typo there is not a mapping's key
    proc = run_cli([*FAST, "+hydra.job.env_set.MY_VAR=x"], tmp_path / "results")
    assert proc.returncode == 0


# --------------------------------------------------------------------------- the user's config files


@pytest.fixture
def user_configs(tmp_path):
    """A --config-dir with a model file that does not parse, one whose name is another model's, and a
    primary config that does not parse."""
    folder = tmp_path / "my_configs"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "broken.yaml").write_text("defaults: [/schema/model/mlp@_here_]\nname: mlp\nwidths: [8\n")
    (folder / "model" / "mislabel.yaml").write_text("defaults: [/schema/model/mlp@_here_]\nname: cnn1d\nwidths: [8]\n")
    (folder / "mybroken.yaml").write_text("defaults:\n  - config\n  - _self_\nsparsity: [0.5\n")
    return folder


NO_MODEL = [a for a in FAST if not a.startswith("model")]


@pytest.mark.parametrize(
    "args, where",
    [
        (["model=broken"], "model/broken.yaml"),
        (["--config-name", "mybroken"], "mybroken.yaml"),
        (["-m", "model=mlp,broken"], "model/broken.yaml"),
    ],
    ids=["option", "primary config", "sweep"],
)
def test_a_config_file_that_is_not_yaml_names_the_file_and_line(finished_results, user_configs, args, where):
    # Before: yaml's ParserError with its traceback, exit 1.
    err = _rejected(["--config-dir", str(user_configs), *args, *NO_MODEL], finished_results, str(user_configs / where), "line ")
    assert "YAML" in err


def test_a_model_file_named_for_another_model_names_model_name(finished_results, user_configs):
    # Before: InterpolationResolutionError "Key 'channels' not in 'MLPConfig'" with its traceback, exit 1
    # (the cnn1d builder read the mlp schema's node).
    args = ["--config-dir", str(user_configs), "model=mislabel", *NO_MODEL]
    _rejected(args, finished_results, "'model.name'", "'cnn1d'", "MLPConfig", "mlp")


@pytest.mark.parametrize(
    "line, fragments",
    [
        ("widht: [8]", ("Unknown config key 'model.widht'", "model/typo", "Did you mean 'model.widths'")),
        ("widths: eight", ("'model.widths'", "'eight'", "model/typo", "a list of integers")),
    ],
    ids=["misspelt key", "wrong type"],
)
def test_a_bad_key_or_value_in_a_user_config_file_names_the_key_and_the_file(finished_results, user_configs, line, fragments):
    # Before: OmegaConf's own text ("In 'model/typo': ConfigKeyError raised while composing config: Key
    # 'widht' not in 'MLPConfig' full_key: model.widht object_type=MLPConfig"): no valid keys, no suggestion.
    (user_configs / "model" / "typo.yaml").write_text(f"defaults: [/schema/model/mlp@_here_]\nname: mlp\n{line}\n")
    _rejected(["--config-dir", str(user_configs), "model=typo", *NO_MODEL], finished_results, *fragments)


def test_a_bad_list_element_in_a_user_config_file_is_not_reported_as_the_command_line_s_value(finished_results, user_configs):
    # The review: the file's [8, abc] was reported as the command line's value, "'model.widths': '[8,8]'
    # ... Element 1 ('abc') is not one. It is set in config 'model/typo'".
    (user_configs / "model" / "typo.yaml").write_text("defaults: [/schema/model/mlp@_here_]\nname: mlp\nwidths: [8, abc]\n")
    err = _rejected(
        ["--config-dir", str(user_configs), "model=typo", *NO_MODEL, "model.widths=[8,8]"],
        finished_results,
        "'model.widths'",
        "Element 1 ('abc')",
        "model/typo",
    )
    assert "[8,8]" not in err


@pytest.mark.parametrize("override", ["+expected=expect_mnist1d", "expected=expect_mnist1d"])
def test_prune_report_s_expected_group_given_to_prune_run_says_whose_it_is(finished_results, override):
    # Before: OmegaConf's "Key 'expected' not in 'Config' full_key: expected object_type=Config" (with
    # `+`) and Hydra's "Could not override 'expected'. No match in the defaults list" (without).
    _rejected([*FAST, override], finished_results, "'expected'", "'expect_mnist1d'", "prune-report", "--expect expect_mnist1d")


def test_a_config_dir_that_is_not_there_is_named(tmp_path):
    # Before: Hydra's "Additional config directory ... not found", exit 1.
    proc = run_cli(["--config-dir", str(tmp_path / "nowhere"), *FAST], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert str(tmp_path / "nowhere") in err and "--config-dir" in err
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_user_file_with_a_packaged_option_s_name_is_rejected(finished_results, user_configs, sweep):
    # Before: Hydra's search path puts the packaged configs first, so model=mlp ran the packaged mlp
    # (widths [256, 256]) and the user's model/mlp.yaml (widths [8]) was silently ignored.
    (user_configs / "model" / "mlp.yaml").write_text("defaults: [/schema/model/mlp@_here_]\nname: mlp\nwidths: [8]\n")
    args = ["--config-dir", str(user_configs), *(["-m", "seed=0,1"] if sweep else []), "model=mlp", *NO_MODEL]
    err = _rejected(args, finished_results, str(user_configs / "model" / "mlp.yaml"), "'model'", "'mlp'", "another name")
    assert "shadow" in err or "ignored" in err


def test_a_user_file_shadowing_an_option_a_chosen_option_builds_on_is_rejected(tmp_path, user_configs):
    """dataset=mnist1d_small (which the lottery_ticket preset chooses) builds on the packaged
    dataset/mnist1d.yaml through its defaults list: a user's dataset/mnist1d.yaml was ignored there
    without a word (val_fraction 0.3 in the file, 0.1 in the run), the check looking only at the option
    chosen (the review of 2026-12-02; before the preset chose mnist1d_small, the same command was refused)."""
    (user_configs / "dataset").mkdir()
    mine = user_configs / "dataset" / "mnist1d.yaml"
    mine.write_text("defaults: [/schema/dataset/mnist1d@_here_]\nname: mnist1d\nval_fraction: 0.3\n")
    results = tmp_path / "results"
    proc = run_cli(["--config-dir", str(user_configs), "+experiment=lottery_ticket", "train.epochs=0"], results, check=False)
    err = _one_error(proc)
    assert str(mine) in err and "'dataset'" in err and "mnist1d" in err and ("shadow" in err or "ignored" in err), err
    assert not results.exists()


def test_a_user_copy_of_a_packaged_option_changes_nothing_and_runs(tmp_path, user_configs):
    from prune_cli.core.paths import checkout_configs

    (user_configs / "model" / "mlp.yaml").write_bytes((checkout_configs() / "model" / "mlp.yaml").read_bytes())
    proc = run_cli(["--config-dir", str(user_configs), *FAST], tmp_path / "results")
    assert proc.returncode == 0


# --------------------------------------------------------------------------- list values in Hydra's words


@pytest.mark.parametrize(
    "value, fragments",
    [
        ("[16.5]", ["'model.widths': '[16.5]'", "a list of integers, e.g. [1,2]"]),
        ("[16,abc]", ["'model.widths': '[16,abc]'", "a list of integers, e.g. [1,2]"]),
    ],
)
def test_a_list_element_of_the_wrong_type_names_the_list_s_key(tmp_path, value, fragments):
    # Before: OmegaConf's raw "Error merging override model.widths=[16.5] ... full_key: model.widths[0]".
    proc = run_cli([*FAST, f"model.widths={value}"], tmp_path / "results", check=False, keep_repeats=False)
    err = _one_error(proc)
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "full_key" not in err
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("method.layer_densities=[abc]", ["'method.layer_densities': '[abc]'", "a list of numbers", "Element 0 ('abc')"]),
        ("metrics.speedup.bsr_blocksize=[x,2]", ["'metrics.speedup.bsr_blocksize': '[x,2]'", "a list of integers"]),
    ],
)
def test_a_wrong_element_in_an_optional_list_names_the_list_s_key(tmp_path, override, fragments):
    # Before: OmegaConf's raw "Error merging override ... Value 'abc' of type 'str' could not be converted
    # to Float full_key: method.layer_densities[0] reference_type=Optional[List[float]]": only plain
    # list fields were explained.
    proc = run_cli([*FAST, override], tmp_path / "results", check=False, keep_repeats=False)
    err = _one_error(proc)
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "full_key" not in err
    assert sorted(tmp_path.iterdir()) == []


def test_a_list_of_strings_is_explained_with_strings(tmp_path):
    # Before: "a list of strings, e.g. [1,2]".
    proc = run_cli([*FAST, "metrics.splits=test"], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "a list of strings, e.g. [a,b]" in err and "[1,2]" not in err


# --------------------------------------------------------------------------- dataset options (audit of the data layer)


@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", str(2**32)])
def test_a_synthetic_data_seed_outside_numpy_s_range_is_refused_like_mnist1d_s(finished_results, seed):
    # Before: 99999999999999999999 ended in torch's "Overflow when unpacking long long" (a traceback,
    # exit 1, the run directory created); -1 ran, while dataset=mnist1d refused it.
    _rejected(
        [*FAST, f"dataset.data_seed={seed}"],
        finished_results,
        f"Invalid value for config key 'dataset.data_seed': {seed}. Allowed: an integer in [0, 2^32) (numpy's seed range).",
    )


MNIST1D = ["dataset=mnist1d", "dataset.num_samples=200", "model=mlp", "model.widths=[16]", "train.epochs=1", "finetune.epochs=1"]


@pytest.mark.parametrize(
    "below, reason",
    [("", "{file} exists and is not a directory"), ("mnist1d", "{file} is a file")],
    ids=["a_file", "below_a_file"],
)
def test_a_mnist1d_cache_dir_that_is_or_is_below_a_file_is_refused_before_anything_exists(finished_results, tmp_path, below, reason):
    # Before: exit 2 with "cannot use <path>: File exists", naming no key, after the run directory
    # (with failed.json) existed.
    a_file = tmp_path / "not_a_dir"
    a_file.write_text("a file\n")
    cache_dir = a_file / below if below else a_file
    _rejected(
        [*MNIST1D, f"dataset.cache_dir={cache_dir}"],
        finished_results,
        f"Invalid value for config key 'dataset.cache_dir': '{cache_dir}'. Allowed: a directory prune-run can write or create",
        reason.format(file=a_file),
    )
    assert a_file.read_text() == "a file\n"


# --------------------------------------------------------------------------- schedules (training-time audit)


@pytest.mark.parametrize(
    "args, fragment",
    [
        # a start after training: end_step=-1 (never typed) was blamed, with the empty range [12, 11] and -1 "allowed"
        (["schedule=gradual", "sparsity=0.8", "schedule.start_step=12"], "'schedule.start_step': 12. Allowed: a step in [0, 11]"),
        (["schedule=gradual", "train.epochs=0"], "'train.epochs': 0. Allowed: at least 1 with schedule=gradual"),
    ],
    ids=["start_after_training", "no_training"],
)
def test_a_gradual_window_outside_training_names_the_key_that_puts_it_there(finished_results, args, fragment):
    fast = [a for a in FAST if not (a.startswith("train.epochs=") and any(b.startswith("train.epochs=") for b in args))]
    err = _rejected([*fast, *args], finished_results, fragment)
    assert "schedule.end_step" not in err, err


def test_weight_rewinding_with_the_lr_to_the_last_dense_epoch_is_refused(finished_results):
    """rewind_epoch = train.epochs with lr_rewind=true retrains from epoch T to T: no epoch, so the
    "lottery ticket" was the pruned trained model, recorded as retrained (training-time audit)."""
    args = ["schedule=lottery_ticket", "schedule.rounds=1", "schedule.rewind_epoch=2", "schedule.lr_rewind=true"]
    _rejected([*FAST, *args], finished_results, "'schedule.rewind_epoch': 2. Allowed: an epoch below train.epochs=2")


def test_an_option_gradual_does_not_read_is_refused_as_unread_not_given_advice_that_cannot_apply(finished_results):
    """`schedule.lr_rewind=true` under gradual said "true only with schedule.restart_from=rewind and
    schedule.retrain=train"; adding schedule.retrain=train then said both have no effect under gradual."""
    args = ["schedule=gradual", "sparsity=0.5", "schedule.restart_from=rewind", "schedule.rewind_epoch=1", "schedule.lr_rewind=true"]
    err = _rejected([*FAST, *args], finished_results, "schedule.lr_rewind", "schedule=gradual does not read it")
    assert "schedule.retrain=train" not in err, err


# --------------------------------------------------------------------------- text options given a number or a bool


@pytest.mark.parametrize(
    "override, key, parsed",
    [("name=1e3", "name", "'1000.0'"), ("name=true", "name", "'True'"), ("method.allocation=1e3", "method.allocation", "'1000.0'")],
)
def test_a_text_option_hydra_reads_as_a_number_or_bool_must_be_quoted(finished_results, override, key, parsed):
    """`name=1e3` ran as the label '1000.0' (the run id, the folder name), `name=true` as 'True': Hydra
    parses the value before the schema turns it back into text. Refused, with the quoted form."""
    typed = override.partition("=")[2]
    _rejected([*FAST, override], finished_results, f"'{key}'", f"would be {parsed}", f"{key}='{typed}'")


@pytest.mark.parametrize(
    "sweep, element, parsed",
    [("name=a,1e3", "1e3", "'1000.0'"), ("name=true,b", "true", "'True'"), ("name=choice(a,1.50)", "1.50", "'1.5'")],
)
def test_a_sweep_element_of_a_text_option_hydra_reads_as_a_number_or_bool_must_be_quoted(finished_results, sweep, element, parsed):
    """`-m name=a,1e3` ran its second job as the label '1000.0' and `name=true,b` its first as 'True':
    the sweeper hands each job the element re-encoded (name=1000.0), which the single-run check cannot
    tell from a typed 1000.0. The whole sweep is refused before any job, naming the element and its
    quoted form."""
    key = sweep.partition("=")[0]
    _rejected(["-m", *FAST, sweep], finished_results, f"'{key}'", element, f"would be {parsed}", f"'{element}'")


def test_sweep_elements_whose_text_hydra_keeps_run():
    """`-m name=a,5,1.5,'1e3'`: 5 and 1.5 come back as the text typed and '1e3' is quoted: nothing to refuse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from prune_cli.run.prevalidate import text_changed_by_sweep

    parse = OverridesParser.create().parse_overrides
    assert text_changed_by_sweep(parse(["name=a,5,1.5,'1e3'"])[0]) == []
    assert text_changed_by_sweep(parse(["name=a,1e3,true"])[0]) == [("1e3", 1000.0), ("true", True)]


def test_text_that_hydra_keeps_as_typed_runs():
    """`name=5` is the int 5, whose text is the text typed: nothing changes, nothing to refuse."""
    from prune_cli.run.prevalidate import check_text_overrides
    from tests.helpers import composed

    cfg = composed("name=5", "results_dir=results")
    assert cfg.name == "5"
    check_text_overrides(cfg)


# --------------------------------------------------------------------------- values nothing sets (???)


@dataclasses.dataclass
class _ProbeMetric:
    enabled: bool = False
    reference: str = MISSING  # needed only when enabled


def test_an_unset_value_of_a_disabled_metric_does_not_stop_runs_and_an_enabled_one_names_its_dataclass():
    """A metric plugin with a field without default that only its enabled form needs: the check of unset
    values refused every run (its node is in every config) and named the assembled MetricsConfig instead
    of the plugin's dataclass. A disabled metric's node is not checked; an enabled one names the key and
    the plugin's own class."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.run.prevalidate import check_missing_values

    def cfg(enabled: bool):
        return OmegaConf.create({"seed": 0, "metrics": {"probe": OmegaConf.structured(_ProbeMetric(enabled=enabled))}})

    check_missing_values(cfg(False))
    with pytest.raises(ConfigError) as err:
        check_missing_values(cfg(True))
    assert err.value.key == "metrics.probe.reference" and f"{__name__}._ProbeMetric" in str(err.value), str(err.value)


# --------------------------------------------------------------------------- a directory per run in a sweep


def test_a_sweep_whose_jobs_share_a_directory_runs_no_job(tmp_path):
    # Before: both jobs used runs/magnitude_0.5; the seed-1 job found the seed-0 run's COMPLETE, said
    # "already complete" and never trained, rewrote that run's .hydra record to seed=1, and the sweep
    # reported "all 1 runs of the sweep completed", exit 0.
    args = ["-m", *FAST, "sparsity=0.5", "seed=0,1", "hydra.sweep.subdir=${method.name}_${sparsity}"]
    proc = run_cli(args, tmp_path / "r", check=False)
    err = _one_error(proc)
    for fragment in ("'hydra.sweep.subdir'", "'${method.name}_${sparsity}'", "seed=0", "seed=1", "magnitude_0.5", "No job ran"):
        assert fragment in err, (fragment, err)
    assert sorted(tmp_path.iterdir()) == []


def test_a_sweep_job_whose_directory_holds_another_finished_run_runs_no_job(finished_results):
    # Before: the job (another seed) was reported "already complete" and rewrote the finished run's record.
    (finished,) = [d for d in (finished_results / "runs").iterdir() if d.is_dir()]
    _rejected(
        ["-m", *FAST, "seed=1", f"hydra.sweep.subdir={finished.name}"],
        finished_results,
        "'hydra.sweep.subdir'",
        f"holds the finished run {finished.name}",
        "No job ran",
    )


def test_a_sweep_job_in_a_custom_directory_holding_its_own_run_finds_it_complete(finished_results):
    (finished,) = [d for d in (finished_results / "runs").iterdir() if d.is_dir()]
    record = snapshot(finished / ".hydra")
    proc = run_cli(["-m", *FAST, "threads=1", f"hydra.sweep.subdir={finished.name}"], finished_results)
    assert "already complete" in (finished / "prune-run.log").read_text(), proc.stderr[-2000:]
    assert snapshot(finished / ".hydra") == record  # the finished run's record is kept


def test_a_run_directory_holding_another_run_is_never_taken_as_this_run_s(tmp_path):
    from helpers import compose

    from prune_cli.core.errors import AnotherRunsDirectory
    from prune_cli.run.experiment import run

    cfg = compose([*FAST], tmp_path / "r")
    run_dir = tmp_path / "r" / "runs" / "somewhere"
    run_dir.mkdir(parents=True)
    (run_dir / "COMPLETE").write_text("run-magnitude-oneshot-s0.9-seed7-00000000\n")
    with pytest.raises(AnotherRunsDirectory, match="holds the finished run run-magnitude-oneshot-s0.9-seed7-00000000"):
        run(cfg, run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [".run.lock", "COMPLETE"]


# --------------------------------------------------------------------------- a results_dir given with ~


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_results_dir_given_with_a_tilde_is_the_home_folder_s(tmp_path, monkeypatch, sweep):
    # Before: "results_dir='~/x'" (Hydra keeps the quoted ~) was checked as $HOME/x but the run wrote
    # ./~/x/runs/..., its shared tables and its dense cache, relative to the working directory.
    from cli_runner import run_in_process

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    args = [*(["-m"] if sweep else []), *FAST, "results_dir='~/x'"]
    proc = run_in_process(args, cwd=cwd, env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(cwd.iterdir()) == []
    results = home / "x"
    (run_dir,) = [d for d in (results / "runs").iterdir() if d.is_dir()]
    assert (run_dir / "COMPLETE").is_file() and (results / "runs.csv").is_file()
    assert any((results / "dense_cache").iterdir())


# --------------------------------------------------------------------------- hydra.job.chdir


@pytest.mark.parametrize("flags", [[], ["-m", "seed=0,1"]], ids=["run", "sweep"])
def test_hydra_job_chdir_true_is_refused(finished_results, flags):
    # Before: the job changed into its run directory, so the relative results_dir (the default `results`)
    # put the shared tables and the dense cache inside the run directory (results/runs/<id>/results/...).
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    _rejected([*flags, *FAST, "hydra.job.chdir=true"], finished_results, "'hydra.job.chdir'", "True", "results_dir", "false")


# --------------------------------------------------------------------------- a sweep given its own hydra.sweep.dir


def test_an_unusable_results_dir_of_a_sweep_with_its_own_directory_is_named_and_creates_nothing(tmp_path):
    # Before: exit 2 naming 'dense_cache.dir' (not results_dir), and <sweep dir>/multirun.yaml left behind.
    from cli_runner import run_in_process

    args = ["-m", *FAST, f"hydra.sweep.dir={tmp_path}/x/sw", "results_dir=/proc/foo", "seed=0"]
    proc = run_in_process(args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
    err = _one_error(proc)
    assert "'results_dir'" in err and "/proc/foo" in err and "dense_cache" not in err, err
    assert sorted(tmp_path.iterdir()) == []


def test_a_rejected_sweep_with_its_own_directory_leaves_no_folder(tmp_path):
    # Before: exit 2, but the sweep directory Hydra's sweeper made (empty once multirun.yaml was removed) stayed.
    proc = run_cli(["-m", *FAST, f"hydra.sweep.dir={tmp_path}/x/sw2", "sparsity=0.5,1.5"], tmp_path / "r", check=False)
    _one_error(proc)
    assert sorted(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- interpolations in Hydra's recorded overrides


@pytest.mark.parametrize(
    "subdir, made",
    [("job${hydra.job.num}", "job0"), ("${hydra.job.override_dirname}", "seed=3")],
    ids=["job.num", "override_dirname"],
)
def test_a_sweep_subdir_interpolating_hydra_s_job_keys_runs(tmp_path, subdir, made):
    # Before: the pre-run pass read Hydra's recorded overrides resolved: hydra.job.num (set only by the
    # launcher) was an InterpolationToMissingValueError traceback, exit 1; override_dirname was parsed as the
    # override's value ("Hydra cannot parse the override 'hydra.sweep.subdir=dataset=synthetic,...'"), exit 2.
    args = ["-m", *FAST, "train.epochs=1", "seed=3", f"hydra.sweep.subdir={subdir}"]
    proc = run_cli([*args, "hydra.job.config.override_dirname.exclude_keys=[results_dir]"], tmp_path / "r", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [d for d in (tmp_path / "r" / "runs").iterdir() if d.is_dir()]
    assert made in run_dir.name and (run_dir / "COMPLETE").is_file()


def test_a_parallel_sweep_s_job_ids_are_the_launcher_s_when_directories_are_checked(finished_results, tmp_path):
    """Under hydra/launcher=parallel a job's hydra.job.id is "<job name>_<number>" (Hydra's joblib launcher),
    not the number: with `hydra.sweep.subdir=${hydra.job.id}` the up-front check looked at the wrong
    directory, the jobs started, and Hydra rewrote the finished run's .hydra record before they failed."""
    from conftest import copy_results

    results = copy_results(finished_results, tmp_path / "copy")
    (finished,) = [d for d in (results / "runs").iterdir() if d.is_dir()]
    finished = finished.rename(finished.with_name("prune-run_0"))
    before = snapshot(results)
    proc = run_cli(["-m", *FAST, "seed=1,2", "hydra/launcher=parallel", "hydra.sweep.subdir=${hydra.job.id}"], results, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "holds the finished run" in proc.stderr and "No job ran" in proc.stderr, proc.stderr[-2000:]
    assert snapshot(results) == before


@pytest.mark.parametrize("target", ["/nonexistent/config.pickle", "garbage"])
def test_experimental_rerun_is_refused_with_what_to_do_instead(tmp_path, target):
    # Before: Hydra's traceback (ValueError "File ... does not exist!", or pickle's error on a file that
    # is no pickle); prune-run's runs save no config.pickle, so the flag could not work.
    if target == "garbage":
        target = str(tmp_path / "config.pickle")
        Path(target).write_text("garbage\n")
    proc = run_cli(["--experimental-rerun", target], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "--experimental-rerun" in err and "repeat its command" in err and "state.pt" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("cfg_type", ["job", "all"])
def test_cfg_job_refuses_a_config_a_run_would_refuse(tmp_path, cfg_type):
    # Before: `--cfg job sparsity=1.5` printed the config, exit 0, as if it were a valid experiment;
    # the run with the same overrides stops with exit 2. The printed config is one a run accepts.
    proc = run_cli(["--cfg", cfg_type, *FAST, "sparsity=1.5"], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "'sparsity': 1.5" in err and "[0.0, 1.0)" in err
    assert "sparsity: 1.5" not in proc.stdout
    assert sorted(tmp_path.iterdir()) == []
    shown = run_cli(["--cfg", cfg_type, *FAST, "sparsity=0.5"], tmp_path / "results")
    assert "sparsity: 0.5" in shown.stdout


def test_cfg_job_refuses_an_override_that_does_nothing(tmp_path):
    # the review: `--cfg job method.erk_power=2` (global allocation) printed the config, exit 0; the run refuses it
    proc = run_cli(["--cfg", "job", *FAST, "method.erk_power=2"], tmp_path / "results", check=False)
    err = _one_error(proc)
    assert "method.erk_power" in err and "erk_power: 2" not in proc.stdout


def test_cfg_hydra_shows_hydra_s_config_without_the_run_s_checks(tmp_path):
    proc = run_cli(["--cfg", "hydra", *FAST, "sparsity=1.5"], tmp_path / "results")
    assert "run:" in proc.stdout and "sparsity: 1.5" not in proc.stdout


@pytest.mark.parametrize("key", ["train", "finetune"])
def test_a_repeated_milestone_is_refused(finished_results, key):
    # Before: [2,2] was accepted although the allowed text said "increasing": gamma applied twice at
    # epoch 2 (a likely typo for [2,3]).
    fast = [a for a in FAST if not a.startswith(f"{key}.epochs=")]
    args = [*fast, f"{key}.epochs=3", f"{key}.lr_schedule=multistep", f"{key}.milestones=[1,1]"]
    _rejected(args, finished_results, f"'{key}.milestones': [1, 1]", "strictly increasing")


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("method.exclude=[[net.1]]", "method.exclude", "a list of strings"),
        ("train.milestones=[[1]]", "train.milestones", "a list of integers"),
        ("metrics.splits=[[test]]", "metrics.splits", "a list of strings"),
    ],
)
def test_a_list_nested_in_a_list_of_values_is_refused_naming_the_key(finished_results, override, key, allowed):
    # Before: Hydra's merge let a nested list into a typed list; method.exclude=[[net.1]] crashed in
    # select_prunable (traceback, exit 1), train.milestones=[[1]] named the node 'train', not the key.
    _rejected([*FAST, override], finished_results, f"'{key}'", allowed, "Element 0")


@pytest.mark.parametrize("override", ["train.weight_decay=-0.0", "finetune.momentum=-0.0", "dataset.noise=-0.0"])
def test_negative_zero_is_refused_like_sparsity_s(finished_results, override):
    # Before: accepted, and -0.0 named a run of its own: the same experiment twice in runs.csv
    # (sparsity=-0.0 was already refused, fault table row 78).
    key = override.split("=")[0]
    _rejected([*FAST, override], finished_results, f"'{key}': -0.0", "write 0, not -0.0")


@pytest.mark.parametrize(
    "override, key",
    [
        ("method.exclude=[net.1,net.1]", "method.exclude"),
        ("metrics.regions.rank_models=[binomial,binomial]", "metrics.regions.rank_models"),
    ],
)
def test_a_repeated_entry_of_a_set_like_list_is_refused(finished_results, override, key):
    # Before: accepted; it changed nothing but the run id (the same experiment under a second id), as
    # metrics.splits' repeated split would (refused already).
    _rejected([*FAST, override], finished_results, f"'{key}'", "each once")


def test_an_expected_option_that_does_not_exist_lists_prune_report_s_presets(finished_results):
    # The review: `+expected=nonexistent` suggested `prune-report --expect nonexistent`.
    err = _rejected([*FAST, "+expected=nonexistent"], finished_results, "'expected'", "--expect <expect_mnist1d |")
    assert "--expect nonexistent" not in err


def test_a_glob_over_a_plugin_s_option_says_glob_cannot_list_it(tmp_path):
    """Hydra's glob() lists an option's YAML files only, so a plugin's option (served from its module,
    no YAML) is never in it: `glob([magnitude,taylor])` would run magnitude alone (refused, but the
    message called 'taylor' a typo), and `glob(*,exclude=[taylor])` excludes what glob(*) never
    includes (harmless; it was refused as a typo). The review of 2026-12-02."""
    from test_plugins import _write_lab

    lab = _write_lab(tmp_path / "plugins")
    env = {"PYTHONPATH": f"{lab}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    results = tmp_path / "r"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        refused = run_cli(["-m", "plugins=[lab.taylor]", *FAST, "method=glob([magnitude,taylor])"], results, check=False)
        assert refused.returncode == 2 and not results.exists()
        err = refused.stdout + refused.stderr
        assert "'taylor'" in err and "plugin" in err and "method=magnitude,taylor" in err, err
        ran = run_cli(
            ["-m", "plugins=[lab.taylor]", *FAST, "train.epochs=1", "method=glob(mag*,exclude=[taylor])"], results, check=False
        )
        assert ran.returncode == 0, (ran.stdout + ran.stderr)[-2000:]


def test_an_installed_package_reads_its_own_configs_not_a_foreign_configs_folder_beside_it(tmp_path, monkeypatch):
    """Audit of 2026-12-04: installed, the package's parent is site-packages, and a top-level `configs/config.yaml`
    there (another distribution's) was loaded instead of the wheel's `prune_cli.configs`. Only a source checkout
    (a pyproject.toml naming prune-cli beside the package) reads its configs/ folder."""
    from prune_cli.core import paths

    site = tmp_path / "site-packages"
    (site / "configs").mkdir(parents=True)
    (site / "configs" / "config.yaml").write_text("foreign: true\n")
    monkeypatch.setattr(paths, "__file__", str(site / "prune_cli" / "core" / "paths.py"))
    assert paths.checkout_configs() is None
    (site / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert paths.checkout_configs() is None
    (site / "pyproject.toml").write_text('[build-system]\nrequires = []\n\n[project]\nname = "prune-cli"\nversion = "0.1.0"\n')
    assert paths.checkout_configs() == site / "configs"


COMMENTED_PYPROJECTS = [
    '[project]  # meta\nname = "prune-cli"  # dist name\nversion = "0.1.0"\n',
    "[build-system]\nrequires = []\n\n[project]\nname = 'prune-cli'\n",
    '[ project ]\n  name = "Prune_CLI"\n',
    '[project]\nname = "prune.cli"\n\n[project.urls]\nname = "x"\n',
]


@pytest.mark.parametrize("text", COMMENTED_PYPROJECTS)
def test_a_source_checkout_is_recognised_by_any_valid_pyproject_naming_prune_cli(tmp_path, text):
    """Review of the source-checkout test: a regex wanting the exact lines `[project]` and `name = "prune-cli"`
    refused valid TOML with a trailing comment, so the configs silently came from another checkout installed in
    editable mode. pyproject.toml is parsed (tomllib; a tolerant pattern on Python 3.10), the name normalised as
    PEP 503 says."""
    from prune_cli.core import paths

    (tmp_path / "pyproject.toml").write_text(text)
    assert paths.is_source_checkout(tmp_path)
    assert paths._normal_name(paths._project_name_by_pattern(text)) == "prune-cli"  # noqa: SLF001 - the 3.10 path


@pytest.mark.parametrize(
    "text", ['[project]\nname = "prune-cli-extras"\n', '[tool.x]\nname = "prune-cli"\n', '[project\nname = "prune-cli"\n']
)
def test_a_pyproject_naming_another_project_is_no_source_checkout(tmp_path, text):
    from prune_cli.core import paths

    (tmp_path / "pyproject.toml").write_text(text)
    assert not paths.is_source_checkout(tmp_path)
