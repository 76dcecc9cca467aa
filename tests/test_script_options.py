"""Options of the evidence scripts that used to be ignored or fixed in the code now follow the
config: train_time_pruning.py sized GReg's regularization phase with a hard-coded
STEPS_PER_EPOCH = ceil(7199 / 128) (MNIST-1D's default training split, batch 128), so a user's
`finetune.batch_size=64` gave a phase of half the epochs the budget meant. The prune-run sweeps are
replaced by a recorder: nothing trains."""

from __future__ import annotations

import math
from pathlib import Path
import sys

import pytest

import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
import train_time_pruning


def _commands(monkeypatch, tmp_path, *argv) -> list[list[str]]:
    commands = []
    monkeypatch.setattr(train_time_pruning, "run", lambda results_dir, overrides, sparsities, seeds, extra: commands.append(overrides))
    monkeypatch.setattr(train_time_pruning, "accuracies", lambda results_dir: (None, []))
    monkeypatch.setattr(train_time_pruning, "report", lambda acc, keys=(): "")
    monkeypatch.setattr(train_time_pruning, "setup", lambda results_dir: "")  # the heading reads the runs' configs
    monkeypatch.setattr(sys, "argv", ["train_time_pruning.py", "--results-dir", str(tmp_path / "r"), *argv])
    train_time_pruning.main()
    return commands


def _stabilize(commands) -> dict[str, int]:
    found = {}
    for cmd in commands:
        schedule = next(a.split("=", 1)[1] for a in cmd if a.startswith("schedule="))
        for a in cmd:
            if a.startswith("schedule.stabilize_steps="):
                found[schedule] = int(a.split("=", 1)[1])
    return found


def test_greg_phase_fills_half_the_budget_at_the_batch_size_given(monkeypatch, tmp_path):
    """MNIST-1D's training split holds 7199 examples: 57 steps per epoch at batch 128, 113 at 64.
    GReg's phase trains with the finetune config; half of --budget 10 is 5 epochs of steps."""
    raising1 = train_time_pruning.raising_steps(train_time_pruning.GREG1_OPTIONS)
    raising2 = train_time_pruning.raising_steps(train_time_pruning.GREG2_OPTIONS)
    found = _stabilize(_commands(monkeypatch, tmp_path, "--seeds", "0"))
    assert found == {"greg1": 5 * 57 - raising1, "greg2": 5 * 57 - raising2}
    found = _stabilize(_commands(monkeypatch, tmp_path, "--seeds", "0", "finetune.batch_size=64"))
    assert found == {"greg1": 5 * math.ceil(7199 / 64) - raising1, "greg2": 5 * math.ceil(7199 / 64) - raising2}


def _limit_commands(monkeypatch, tmp_path, *argv) -> list[tuple[list[str], dict]]:
    """pruning_limit_mnist1d.py's prune-run commands (and their environments) for `argv`; nothing runs."""
    import pandas as pd

    import pruning_limit_mnist1d

    commands = []
    monkeypatch.setattr(pruning_limit_mnist1d, "run_or_exit", lambda cmd, **kw: commands.append((cmd, kw.get("env", {}))))
    monkeypatch.setattr(pruning_limit_mnist1d, "summary", lambda results: pd.DataFrame({"run": []}))
    monkeypatch.setattr(sys, "argv", ["pruning_limit_mnist1d.py", "--results", str(tmp_path), *argv])
    pruning_limit_mnist1d.main()
    return commands


def test_pruning_limit_an_override_of_a_key_the_script_sets_replaces_it(monkeypatch, tmp_path):
    """metrics.pruning_limit.ratios=20 was added after the script's own ratios=1000 and prune-run
    refused the key given twice; the script also set HYDRA_FULL_ERROR=1 (43 traceback frames for a
    bad override)."""
    commands = _limit_commands(monkeypatch, tmp_path, "--seeds", "0,1", "--l1", "0", "metrics.pruning_limit.ratios=20")
    assert len(commands) == 2
    for cmd, env in commands:
        ratios = [a for a in cmd if a.startswith("metrics.pruning_limit.ratios=")]
        assert ratios == ["metrics.pruning_limit.ratios=20"]
        assert "HYDRA_FULL_ERROR" not in env


def test_pruning_limit_seeds_do_not_swallow_an_override(monkeypatch, tmp_path):
    """--seeds took nargs="+": `--seeds 0 train.epochs=5` took the override for a seed (train.epochs
    is now --epochs' own, refused as an override: train.lr here)."""
    commands = _limit_commands(monkeypatch, tmp_path, "--seeds", "0", "train.lr=0.02")
    assert len(commands) == 3 and all("train.lr=0.02" in cmd for cmd, _ in commands)


def test_layer_pruning_synthetic_cifar_is_keyed_on_its_options(monkeypatch, tmp_path):
    """write_synthetic_cifar returned early when a test batch existed: a later call's --noise,
    --train-images and --test-images were ignored, and its runs had the old runs' ids (the same
    dataset.root). Each set of options now has a folder (and so run ids) of its own."""
    import argparse

    import layer_pruning

    commands = []
    monkeypatch.setattr(layer_pruning, "run_or_exit", lambda cmd, **kw: commands.append(cmd))
    for noise in (1.0, 2.0):
        args = argparse.Namespace(model="resnet20", train_images=10, test_images=5, noise=noise, finetune_epochs=1)
        args.__dict__.update(epochs=1, penalties="0.5", prune_epochs=1, seeds="0", overrides=[])
        layer_pruning.run(tmp_path, args)
    roots = [next(a.split("=", 1)[1] for a in cmd if a.startswith("dataset.root=")) for cmd in commands]
    assert roots[0] != roots[1]
    batches = [(Path(root) / "cifar-10-batches-py" / "test_batch").read_bytes() for root in roots]
    assert batches[0] != batches[1]


def test_mia_pruning_help_example_override_works_with_every_method(monkeypatch):
    """--help's example override was `schedule.epochs=5`, which prune-run refuses for the default
    --methods' magnitude (schedule=oneshot has no such key): the example passes the pre-run pass
    with every method's overrides."""
    import argparse
    import re

    import pytest

    import mia_pruning
    from tests.helpers import validated

    built = []

    def stop(self, *args, **kwargs):  # the parser main builds, before any work
        built.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(SystemExit):
        mia_pruning.main()
    (helped,) = [a.help for a in built[0]._actions if a.dest == "overrides"]
    example = re.search(r"e\.g\. (\S+)", helped).group(1)
    for own in mia_pruning.METHODS.values():
        validated([*mia_pruning.COMMON, *mia_pruning.METHOD, *own, "dataset.max_train_samples=800", "sparsity=0.8", example])


@pytest.mark.parametrize("method", ["admm", "minmax"])
def test_mia_pruning_at_sparsity_zero_gives_no_method_keys(monkeypatch, tmp_path, method):
    """Review of e6cc200, F4: every sweep got method=magnitude method.allocation=layerwise, which prune-run refuses
    as having no effect under admm or minmax when every job is at sparsity 0 (`--methods admm --sparsities 0`)."""
    import mia_pruning
    from tests.helpers import validated

    from prune_cli.run.unused_options import unused_overrides

    commands = []

    def ran(cmd, **kwargs):
        commands.append(cmd)
        raise _Ran(" ".join(cmd))

    monkeypatch.setattr(mia_pruning, "run_or_exit", ran)
    monkeypatch.setattr(
        sys, "argv", ["mia_pruning.py", "--results-dir", str(tmp_path / "r"), "--methods", method, "--sparsities", "0"]
    )
    with pytest.raises(_Ran):
        mia_pruning.main()
    (cmd,) = commands
    overrides = cmd[cmd.index("prune_cli.cli") + 2 :]  # after prune-run's -m
    assert not [o for o in overrides if o.startswith("method")], overrides
    one = [o.replace("seed=0,1,2", "seed=0") for o in overrides if not o.startswith("results_dir=")]
    assert [f for f in unused_overrides(validated(one), one) if f.error] == []
    # a sweep with a sparsity that prunes reads the criterion: kept
    assert mia_pruning.method_keys(method, "0,0.8") == mia_pruning.METHOD == mia_pruning.method_keys("magnitude", "0")


class _Ran(Exception):
    """prune-run would have started."""


def _never(cmd, **kwargs):
    raise _Ran(" ".join(cmd))


# (script module, its arguments with RESULTS for a results folder, an override of a key the script sets
# for each run, the key): the override was applied to every command by last_value_wins, so the runs
# were mislabelled (pruning_limit_mnist1d.py named train.l1=0.001 runs limit-l10 / limit-l15e-05), the
# script's loop collapsed (seed=, sparsity=, the compared methods) or the summary read another folder
# than the runs were in (results_dir=); before last_value_wins prune-run refused the key given twice
OWNED = [
    ("pruning_limit_mnist1d", ["--results", "RESULTS", "--l1", "0,5e-5", "--seeds", "0,1"], "train.l1=0.001", "train.l1"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS", "--seeds", "0,1"], "seed=3", "seed"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "name=mine", "name"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "train.epochs=3", "train.epochs"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "metrics.pruning_limit.enabled=false", "metrics.pruning_limit.enabled"),
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "train={l1:0.001}", "train.l1"),  # a dict sets its keys
    ("pruning_limit_mnist1d", ["--results", "RESULTS"], "+seed=3", "seed"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "method.allocation=erk", "method.allocation"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "method=magnitude", "method"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "seed=5", "seed"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "sparsity=0.5", "sparsity"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "name=other", "name"),
    ("random_erk_vs_layerwise", ["--results-dir", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("analysis_metrics_sweep", ["--results", "RESULTS"], "seed=4", "seed"),
    ("analysis_metrics_sweep", ["--results", "RESULTS"], "sparsity=0.5", "sparsity"),
    ("analysis_metrics_sweep", ["--results", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "method=snip", "method"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "method.allocation=global", "method.allocation"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "model.widths=[8]", "model.widths"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "seed=1", "seed"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "sparsity=0.5", "sparsity"),
    ("lap_vs_magnitude", ["--results-dir", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "schedule=admm", "schedule"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "train.epochs=3", "train.epochs"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "model.widths=[8]", "model.widths"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "dataset.max_train_samples=100", "dataset.max_train_samples"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "seed=1", "seed"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "sparsity=0.5", "sparsity"),
    ("mia_pruning", ["--results-dir", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "finetune.epochs=3", "finetune.epochs"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "schedule.stabilize_steps=0", "schedule.stabilize_steps"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "schedule.delta=0.1", "schedule.delta"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "schedule=greg1", "schedule"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "method=snip", "method"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "method.allocation=layerwise", "method.allocation"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "seed=1", "seed"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "sparsity=0.5", "sparsity"),
    ("train_time_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "results_dir=elsewhere", "results_dir"),
    # layer_pruning.py did not use last_value_wins: prune-run refused every override of a key it sets
    ("layer_pruning", ["--results-dir", "RESULTS", "--seeds", "0"], "seed=3", "seed"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "schedule.penalty=0.1", "schedule.penalty"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "schedule.prune_epochs=1", "schedule.prune_epochs"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "train.epochs=2", "train.epochs"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "model.width=8", "model.width"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "model=mlp", "model"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "schedule=oneshot", "schedule"),
    ("layer_pruning", ["--results-dir", "RESULTS"], "results_dir=elsewhere", "results_dir"),
    ("layer_pruning", ["--results-dir", "RESULTS", "--model", "resnet20"], "finetune.epochs=1", "finetune.epochs"),
    ("layer_pruning", ["--results-dir", "RESULTS", "--model", "resnet20"], "dataset.root=/tmp", "dataset.root"),
]


@pytest.mark.parametrize("module, argv, override, key", OWNED, ids=[f"{m} {o}" for m, _, o, _ in OWNED])
def test_an_override_of_a_key_the_script_sets_per_run_is_refused(monkeypatch, tmp_path, capsys, module, argv, override, key):
    import importlib

    import script_args

    script = importlib.import_module(module)
    monkeypatch.setattr(script_args, "run_or_exit", _never)  # lap_vs_magnitude imports it when it runs
    if hasattr(script, "run_or_exit"):
        monkeypatch.setattr(script, "run_or_exit", _never)
    results = tmp_path / "r"
    argv = [str(results) if a == "RESULTS" else a for a in argv]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{module}.py", *argv, override])
    with pytest.raises(SystemExit) as stop:
        script.main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"{module}.py: error: argument overrides: {override!r}: allowed: "), err[-1]
    assert f"({key}: " in err[-1], err[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing created"


def test_pruning_limit_prints_the_command_it_runs(monkeypatch, tmp_path, capsys):
    """The `$` line showed the script's metrics.pruning_limit.ratios=1000 and the user's =20, prune-run
    got only the latter (last_value_wins)."""
    commands = _limit_commands(monkeypatch, tmp_path, "--l1", "0", "metrics.pruning_limit.ratios=20")
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert len(commands) == 1 and len(shown) == 1
    assert shown[0] == "$ " + " ".join(commands[0][0][1:])
    assert shown[0].count("metrics.pruning_limit.ratios=") == 1 and "metrics.pruning_limit.ratios=20" in shown[0]


def test_random_erk_prints_the_command_it_runs(monkeypatch, tmp_path, capsys):
    import pandas as pd

    import random_erk_vs_layerwise as script

    commands = []
    monkeypatch.setattr(script, "run_or_exit", lambda cmd, **kw: commands.append(cmd))
    monkeypatch.setattr(script, "dense_lines", lambda results: [])
    monkeypatch.setattr(script, "table", lambda results: pd.DataFrame())
    monkeypatch.setattr(sys, "argv", ["random_erk_vs_layerwise.py", "--results-dir", str(tmp_path), "method.sampling=bernoulli"])
    script.main()
    (shown,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("+ ")]
    assert shown == "+ " + " ".join(commands[0])
    assert shown.count("method.sampling=") == 1 and "method.sampling=bernoulli" in shown


def test_layer_pruning_override_replaces_the_scripts_value(monkeypatch, tmp_path, capsys):
    """`layer_pruning.py ... dataset=synthetic` (given once) was refused by prune-run, "dataset=mnist1d and
    then dataset=synthetic": the script's command kept its own dataset=mnist1d before the user's. Now
    the user's value replaces the script's (last_value_wins), and the printed command is the one run."""
    import pandas as pd

    import layer_pruning

    commands = []
    monkeypatch.setattr(layer_pruning, "run_or_exit", lambda cmd, **kw: commands.append(cmd))
    monkeypatch.setattr(layer_pruning, "table", lambda results_dir: pd.DataFrame())  # nothing ran: the script stops after
    argv = ["--results-dir", str(tmp_path / "r"), "--penalties", "0.5", "--seeds", "0", "--width", "8", "--blocks", "3"]
    monkeypatch.setattr(sys, "argv", ["layer_pruning.py", *argv, "--epochs", "3", "--prune-epochs", "2", "dataset=synthetic"])
    with pytest.raises(SystemExit):
        layer_pruning.main()
    (cmd,) = commands
    assert [a for a in cmd if a.startswith("dataset=")] == ["dataset=synthetic"]
    assert cmd.index("dataset=synthetic") < cmd.index("model=res_mlp")  # at the script's place for the key
    (shown,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("running: ")]
    assert shown == "running: " + " ".join(cmd)


def test_layer_pruning_synthetic_cifar_folder_spells_the_noise_exactly(monkeypatch, tmp_path):
    """The folder was named with `{noise:g}` (6 significant digits): --noise 1.0 and --noise 1.0000001
    shared a folder, so the second call's runs reused the first call's data and run ids."""
    import argparse

    import layer_pruning

    commands = []
    monkeypatch.setattr(layer_pruning, "run_or_exit", lambda cmd, **kw: commands.append(cmd))
    for noise in (1.0, 1.0000001, 2.0, 0.1, 1e-7):
        args = argparse.Namespace(model="resnet20", train_images=10, test_images=5, noise=noise, finetune_epochs=1)
        args.__dict__.update(epochs=1, penalties="0.5", prune_epochs=1, seeds="0", overrides=[])
        layer_pruning.run(tmp_path, args)
    roots = [Path(next(a.split("=", 1)[1] for a in cmd if a.startswith("dataset.root="))).name for cmd in commands]
    suffix = "synthetic_cifar-train10-test5-noise"
    # readable for ordinary values (and the names of earlier folders kept: noise2), exact for the others
    assert roots == [f"{suffix}1", f"{suffix}1.0000001", f"{suffix}2", f"{suffix}0.1", f"{suffix}1e-07"]
