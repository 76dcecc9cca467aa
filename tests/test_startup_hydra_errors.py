"""Config errors that Hydra itself finds while composing (a value of the wrong type, a key without `+`
that no schema has, an option that does not exist, an override it cannot parse) exit with status 2
like every error of the pre-run pass (docs/robustness.md), with a message that names the key, the
value and what is allowed, and create nothing: single runs and sweeps alike.

Expected answers are written out by hand from the config schemas (TrainConfig.epochs is an int,
configs/model/ holds the model options), not taken from the code under test."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from typing import Optional

import pytest

from conftest import run_cli
from prune_cli.run.composition_errors import describe_type

CASES = [
    # (overrides, fragments the message must hold: key, value, what is allowed)
    (["train.epochs=abc"], ["'train.epochs'", "'abc'", "an integer"]),
    (["finetune.lr=fast"], ["'finetune.lr'", "'fast'", "a number", "declared float"]),
    (["train.epoch=5"], ["'train.epoch'", "5", "epochs"]),  # a typo without `+`: Hydra names the schema
    (["model=nope"], ["'model'", "'nope'", "mlp", "resnet20"]),  # the options of configs/model/
    (["train.epochs=[1"], ["train.epochs=[1"]),  # the override grammar: the whole override is the value
]


@pytest.mark.parametrize("args, fragments", CASES, ids=[c[0][0] for c in CASES])
def test_hydra_config_errors_exit_2_and_create_nothing(tmp_path, args, fragments):
    results = tmp_path / "results"
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    line = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: error:")]
    assert line, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in line[-1], (fragment, line[-1])
    assert proc.stderr.strip() == line[-1], "one message, not Hydra's report of the same error before it"
    assert not results.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a rejected config created files"


def test_a_type_error_in_a_sweep_exits_2_and_creates_nothing(tmp_path):
    """The sweeper composes every job before the first one runs: one bad value stops the sweep with 2,
    and the sweep's record and multirun.yaml it had written are removed again."""
    results = tmp_path / "results"
    proc = run_cli(["-m", "train.epochs=2,abc"], results, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "prune-run: error: 1 of 2 jobs of the sweep rejected; no job ran:" in proc.stderr
    assert "job 2 of 2 (train.epochs=abc): Invalid value for config key 'train.epochs': 'abc'" in proc.stderr  # the job named
    assert not results.exists(), sorted(str(p) for p in results.rglob("*"))


def test_a_rejected_sweep_of_the_module_command_creates_nothing_and_says_it_once(tmp_path):
    """`python -m prune_cli.cli` in a new interpreter: there the file runs as `__main__` while Hydra
    imports the sweep's callback by its name, `prune_cli.sweep_lifecycle.SweepSummary`. The folders that
    callback made for the sweep's record (results_dir/.sweeps) must still be removed when the sweep is
    rejected: the entry point and the callback share one copy of the sweep's state."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    command = [sys.executable, "-m", "prune_cli.cli", "-m", "train.epochs=2,abc", "results_dir=results"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=work)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == (
        "prune-run: error: 1 of 2 jobs of the sweep rejected; no job ran:\n"
        "  job 2 of 2 (train.epochs=abc): Invalid value for config key 'train.epochs': 'abc'. "
        "Allowed: an integer (TrainConfig.epochs is declared int)."
    )
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == []


def test_with_hydra_full_error_the_traceback_is_kept_and_the_exit_is_still_2(tmp_path):
    from cli_runner import run_in_process

    proc = run_in_process(["train.epochs=abc", f"results_dir={tmp_path / 'results'}"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" in proc.stderr and "prune-run: error: Invalid value for config key 'train.epochs'" in proc.stderr
    assert not (tmp_path / "results").exists()


class _Color(enum.Enum):
    red = 1
    blue = 2


@pytest.mark.parametrize(
    "declared, words",
    [
        (int, "an integer"),
        (Optional[float], "a number or null"),
        (list[int], "a list of integers, e.g. [1,2]"),
        (Optional[list[float]], "a list of numbers, e.g. [1,2] or null"),
        (_Color, "one of red, blue"),
        (bool, "true or false"),
    ],
)
def test_allowed_values_in_words(declared, words):
    assert describe_type(declared) == words


# Command lines Hydra's own argument handling failed on with a traceback or a wrong hint (audit).
USAGE = [
    # (arguments, fragments of the one line). Before: `--resolve` alone was Hydra's ValueError traceback, exit 1;
    # `=0.5` (no key) was "ValueError: Config group override must be a string or a list. Got float", exit 1.
    (["--resolve"], ["--resolve", "--cfg"]),
    (["=0.5"], ["'=0.5'", "no key", "key=value"]),
    (["+=0.5"], ["'+=0.5'", "no key"]),
]


@pytest.mark.parametrize("args, fragments", USAGE, ids=[" ".join(c[0]) for c in USAGE])
def test_a_usage_error_is_one_line_and_exit_2(tmp_path, args, fragments):
    from cli_runner import run_in_process

    proc = run_in_process(args, cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("prune-run: error:"), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert sorted(tmp_path.iterdir()) == []


def test_hydra_help_with_an_override_of_the_experiment_prints_hydra_s_help(tmp_path):
    # Before: a ConfigCompositionException traceback, then "To append to your config use +sparsity=0.5"
    # (Hydra's help composes its own config only, without prune-run's, so no experiment key is there).
    from cli_runner import run_in_process

    proc = run_in_process(["--hydra-help", "sparsity=0.5", "hydra/launcher=parallel"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Hydra (" in proc.stdout and "hydra/launcher" in proc.stdout and proc.stderr == "", proc.stderr[-2000:]
    assert sorted(tmp_path.iterdir()) == []


def test_version_prints_its_line_once(tmp_path):
    from cli_runner import run_in_process

    proc = run_in_process(["--version"], cwd=tmp_path, env={})
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).count("Hydra ") == 1, (proc.stdout, proc.stderr)


INFO = [
    # (arguments, fragments of the one line). Before: the first two printed Hydra's traceback before prune-run's
    # line; `--info all sparsity=1.5` printed the config, exit 0, a config every run refuses.
    (["--info", "config", "seed=0,1"], ["'seed=0,1'", "--multirun"]),
    (["--info", "config", "sparsity=abc"], ["'sparsity'", "'abc'", "a number"]),
    (["--info", "all", "sparsity=1.5"], ["'sparsity'", "1.5", "[0.0, 1.0)"]),
    (["--info", "config", "method.nm_n=1"], ["method.nm_n=1", "no effect"]),
]


@pytest.mark.parametrize("args, fragments", INFO, ids=[" ".join(c[0]) for c in INFO])
def test_info_of_a_config_a_run_refuses_is_one_line_and_exit_2(tmp_path, args, fragments):
    """`--info config` and `--info all` show the job's config, as `--cfg job` does, and check it as `--cfg job`
    does; `--info defaults`, `defaults-tree`, `searchpath` and `plugins` show no config and check none."""
    from cli_runner import run_in_process

    proc = run_in_process([*args, f"results_dir={tmp_path / 'results'}"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("prune-run: error:"), proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert sorted(tmp_path.iterdir()) == []


def test_info_of_a_valid_config_shows_it(tmp_path):
    from cli_runner import run_in_process

    proc = run_in_process(
        ["--info", "config", "sparsity=0.75", f"results_dir={tmp_path / 'r'}"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"}
    )
    assert proc.returncode == 0 and "sparsity: 0.75" in proc.stdout and "Defaults Tree" in proc.stdout, proc.stderr[-2000:]
    shown = run_in_process(["--info", "defaults", "sparsity=1.5"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "0"})
    assert shown.returncode == 0, shown.stderr[-2000:]  # the defaults list: no config shown, none checked
    assert sorted(tmp_path.iterdir()) == []


PRESET_WITH_PLUGINS = "# @package _global_\ndefaults:\n  - override /method: taylor\nplugins: [my_lab.taylor]\n"


@pytest.mark.parametrize("how", ["preset", "command line"])
def test_an_option_no_module_declares_hints_at_plugins_on_the_command_line(tmp_path, how):
    """Before: a preset choosing an outside plugin's option and setting `plugins: [my_lab.taylor]` was told only
    the built-in options; the check that says a config file cannot add plugin modules (prune_cli/run/prevalidate.py)
    is never reached, composition failing first. The message keeps its first part and adds where plugins go."""
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "t.yaml").write_text(PRESET_WITH_PLUGINS)
    args = ["--config-dir", str(tmp_path / "extra"), "+experiment=t"] if how == "preset" else ["method=taylor"]
    proc = run_cli([*args, "threads=1"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    first = "prune-run: error: Invalid value for config key 'method': 'taylor'. Allowed: one of gp, "
    assert proc.stderr.startswith(first) and "magnitude" in proc.stderr and "(the options of config group 'method')." in proc.stderr
    assert "plugins=[my_lab.module] method=taylor" in proc.stderr and "a config file cannot add plugin modules" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra"]


def test_a_launcher_option_no_module_declares_gets_no_plugin_hint(tmp_path):
    proc = run_cli(["hydra/launcher=nope", "threads=1"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and "'hydra/launcher': 'nope'" in proc.stderr and "plugins=" not in proc.stderr, proc.stderr


def test_a_misspelt_built_in_option_is_pointed_at_the_option_not_at_plugins(tmp_path):
    """The plugin hint was added to every option not found, so `method=magnitde` (a typo of a built-in) was told
    that an outside plugin's module goes on the command line; it is told the built-in it is closest to."""
    proc = run_cli(["method=magnitde", "threads=1"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "'method': 'magnitde'" in proc.stderr and "plugins=" not in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("Did you mean 'method=magnitude'?"), proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "typed, meant",
    [
        ("metrics=ful", "metrics=full"),
        ("+experiment=lotery_ticket", "+experiment=lottery_ticket"),
        ("hydra/launcher=paralel", "hydra/launcher=parallel"),
    ],
)
def test_a_misspelt_option_of_any_group_gets_the_close_one(tmp_path, typed, meant):
    """Only the groups plugins add options to got a "Did you mean" (docs audit of 2026-12-03)."""
    proc = run_cli(["-m", typed, "threads=1"], tmp_path / "r", check=False)  # -m: a launcher is chosen for a sweep
    assert proc.returncode == 2 and proc.stderr.rstrip().endswith(f"Did you mean '{meant}'?"), proc.stderr
    assert "plugins=" not in proc.stderr and not (tmp_path / "r").exists()


def test_an_option_not_found_with_plugins_on_the_command_line_gets_no_plugin_hint():
    """`prune-run plugins=[my_lab.taylor] method=taylr`: the module is on the command line already, so the
    hint that it belongs there is wrong (the allowed list names `taylor`)."""
    from hydra.errors import MissingConfigException

    from prune_cli.run.composition_errors import as_config_error

    err = MissingConfigException("not found", missing_cfg_file="method/taylr", options=["magnitude", "taylor"])
    text = str(as_config_error(err, ["plugins=[my_lab.taylor]", "method=taylr"]))
    assert "plugins=[my_lab.module]" not in text and "a config file cannot add plugin modules" not in text, text
    assert text.endswith("Did you mean 'method=taylor'?"), text
    far = str(as_config_error(MissingConfigException("x", missing_cfg_file="method/zzz", options=["magnitude"]), ["method=zzz"]))
    assert "plugins=[my_lab.module] method=zzz" in far, far  # no module given, nothing close: the hint stays
