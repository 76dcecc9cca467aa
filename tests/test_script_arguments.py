"""Every script under scripts/ answers a bad argument before any work: argparse's one-line error
naming the argument and the value (exit 2), no traceback, nothing created (scripts/script_args.py).
A script that starts prune-run and sees it refuse a value stops with prune-run's exit status and
prune-run's one-line message, without its table.

Each case runs in a process of its own, forked from one driver process that has imported torch and
pandas once (a new interpreter per case would spend most of this file's time importing torch): the
child sets sys.argv, sends its stdout and stderr to files and runs the script as `__main__`
(runpy), as `python scripts/NAME.py ARGS` does, in an empty working folder of its own. The Python
scripts' --help and bench_speedup.py's refusal of a structure it cannot measure run in the same driver."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO

pytestmark = pytest.mark.xdist_group("script_arguments")

NOT_A_GPU = not torch.cuda.is_available()
# (script, arguments, what the error line must hold); EMPTY is an empty folder in the case's working folder
CASES = [
    ("bench_channel_group_trace.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_dense_cache.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_dense_cache.py", ["--epochs", "0"], "argument --epochs: '0'"),
    ("bench_region_bound.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_regions.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_regions_default.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_test_runner.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_training_loop.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_report.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_report.py", ["--runs", "0"], "argument --runs: '0'"),
    ("bench_report.py", ["--compare-with", "/nonexist"], "argument --compare-with: '/nonexist'"),
    ("bench_report.py", ["--template", "/nonexist"], "argument --template: '/nonexist'"),
    ("bench_report.py", ["--worker", "on"], "argument --worker: 'on': allowed: only with --compare-with"),
    ("bench_report.py", ["--schedule"], "argument --schedule: allowed: only with --compare-with"),
    ("bench_report.py", ["--skip-cases"], "argument --skip-cases: allowed: only with --compare-with"),
    ("bench_analysis.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_analysis.py", ["--examples", "-5"], "argument --examples: '-5'"),
    ("bench_analysis.py", ["--threads", "0"], "argument --threads: '0'"),
    ("bench_sweep.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_sweep.py", ["--sizes", "0"], "argument --sizes: '0'"),
    ("bench_sweep.py", ["--baseline", "/nonexist"], "argument --baseline: '/nonexist'"),
    # an option the chosen mode would ignore is refused (bench_sweep.py --quick changes defaults only: test_script_benches.py)
    ("bench_sweep.py", ["--profile", "2", "--sizes", "4"], "argument --sizes: '4': allowed: only for the sweep benchmark"),
    ("bench_sweep.py", ["--top", "5"], "argument --top: '5': allowed: only with --profile"),
    ("bench_gpu_epoch.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_gpu_epoch.py", ["--device", "nosuch"], "argument --device: invalid choice: 'nosuch'"),
    *([("bench_gpu_epoch.py", ["--device", "cuda"], "argument --device: 'cuda'")] if NOT_A_GPU else []),
    ("bench_grand.py", ["--examples", "0"], "argument --examples: '0'"),
    ("bench_threads.py", ["--concurrency", "0"], "argument --concurrency: '0'"),
    ("bench_grand.py", ["--repeats", "0"], "argument --repeats: '0'"),
    ("bench_threads.py", ["--repeats", "0"], "argument --repeats: '0'"),
    # the ratios' baseline is named before timing and must be one of the settings measured
    ("bench_threads.py", ["--settings", "auto", "2", "--baseline", "1"], "argument --baseline: '1': allowed: one of the settings"),
    ("bench_speedup.py", ["--threads", "0"], "argument --threads: '0'"),
    ("bench_speedup.py", ["--sparsities", "1.5"], "argument --sparsities: '1.5'"),
    ("bench_startup.py", ["--baseline", "/nonexist"], "argument --baseline: '/nonexist'"),
    ("check_gpu_run.py", ["/nonexist"], "results /nonexist: the folder holds no runs"),
    ("fault_table.py", ["--out", "/proc/x"], "argument --out: '/proc/x'"),
    ("scaling_depth_analysis.py", ["/nonexist"], "results /nonexist: the folder holds no runs"),
    ("ntk_width_sweep.py", ["--seeds", "0"], "argument --seeds: '0'"),
    ("ntk_width_sweep.py", ["--ps", "1.5"], "argument --ps: '1.5'"),
    # the CSV was written after the whole computation: a FileNotFoundError traceback at the end
    ("ntk_width_sweep.py", ["--csv", "/proc/x.csv"], "argument --csv: '/proc/x.csv'"),
    ("ntk_width_sweep.py", ["--csv", "EMPTY"], "argument --csv: 'EMPTY': allowed: a file path"),
    ("regions_sparsity_sweep.py", ["--densities", "abc"], "argument --densities: 'abc'"),
    ("regions_sparsity_sweep.py", ["--skip-run", "--out", "EMPTY"], "--out EMPTY: the folder holds no runs"),
    ("mia_pruning.py", ["--methods", "nosuch"], "argument --methods: 'nosuch'"),
    ("mia_pruning.py", ["--table-only", "--results-dir", "EMPTY"], "--results-dir EMPTY: the folder holds no runs"),
    ("analysis_metrics_sweep.py", ["--results", "r", "--seeds", "-1"], "argument --seeds: '-1'"),
    ("analysis_metrics_sweep.py", ["--results", "r", "--sparsities", "0.5,1.5"], "argument --sparsities: '0.5,1.5'"),
    ("analysis_metrics_sweep.py", ["--results", "missing", "--skip-run"], "missing: the folder holds no runs"),
    ("lap_vs_magnitude.py", ["--results-dir", "r", "--sparsities", "1.5"], "argument --sparsities: '1.5'"),
    ("lap_vs_magnitude.py", ["--results-dir", "EMPTY", "--table-only"], "--results-dir EMPTY: the folder holds no runs"),
    ("layer_pruning.py", ["--results-dir", "r", "--penalties", "-1"], "argument --penalties: '-1'"),
    ("layer_pruning.py", ["--results-dir", "EMPTY", "--table-only"], "--results-dir EMPTY: the folder holds no runs"),
    (
        "layer_pruning.py",
        ["--results-dir", "r", "--model", "resnet20", "--width", "32"],
        "argument --width: '32': allowed: only with --model res_mlp",
    ),
    (
        "layer_pruning.py",
        ["--results-dir", "r", "--model", "resnet20", "--blocks", "3"],
        "argument --blocks: '3': allowed: only with --model res_mlp",
    ),
    ("layer_pruning.py", ["--results-dir", "r", "--noise", "1"], "argument --noise: '1.0': allowed: only with --model resnet20"),
    ("random_erk_vs_layerwise.py", ["--results-dir", "r", "--seeds", "abc"], "argument --seeds: 'abc'"),
    # an unknown option was passed on to prune-run, which refused it with its own usage text
    ("random_erk_vs_layerwise.py", ["--results-dir", "r", "--bogus", "1"], "unrecognized arguments: --bogus"),
    ("train_time_pruning.py", ["--results-dir", "r", "--budget", "2"], "argument --budget: '2'"),
    ("train_time_pruning.py", ["--results-dir", "r", "--seeds", "0,,1"], "argument --seeds: '0,,1'"),
    ("train_time_pruning.py", ["--results-dir", "EMPTY", "--table-only"], "--results-dir EMPTY: the folder holds no runs"),
    # GReg's phase is sized from the composed config's training split (test_script_options.py): what leaves it unknown is refused
    ("train_time_pruning.py", ["--results-dir", "r", "data_pruning=random"], "'data_pruning=random': allowed: no data pruning"),
    (
        "train_time_pruning.py",
        ["--results-dir", "r", "finetune.batch_size=64,128"],
        "argument overrides: 'finetune.batch_size=64,128'",
    ),
    ("data_pruning_longtail.py", ["r", "--keep", "1.5"], "argument --keep: '1.5'"),
    # --table-only / --skip-run run nothing: an option only a run uses is refused, not ignored, even at its default value
    # (given explicitly); the results folder (and what shapes the printed tables) is still taken: the EMPTY cases above
    ("lap_vs_magnitude.py", ["--table-only", "--seeds", "0"], "argument --seeds: '0': allowed: only without --table-only"),
    ("lap_vs_magnitude.py", ["--table-only", "--sparsities", "0.98,0.99,0.995"], "argument --sparsities: '0.98,0.99,0.995'"),
    ("lap_vs_magnitude.py", ["--table-only", "--widths", "[64,64]"], "argument --widths: '[64,64]': allowed: only without"),
    ("lap_vs_magnitude.py", ["--table-only", "train.epochs=10"], "argument overrides: 'train.epochs=10': allowed: only without"),
    ("mia_pruning.py", ["--table-only", "--epochs", "5"], "argument --epochs: '5': allowed: only without --table-only"),
    ("mia_pruning.py", ["--table-only", "--methods", "admm"], "argument --methods: 'admm': allowed: only without --table-only"),
    ("mia_pruning.py", ["--table-only", "--train-samples", "800"], "argument --train-samples: '800': allowed: only without"),
    ("mia_pruning.py", ["--table-only", "--frontier-sparsities", "0.5"], "argument --frontier-sparsities: '0.5': allowed:"),
    ("mia_pruning.py", ["--table-only", "seed=1", "train.lr=0.1"], "argument overrides: 'seed=1 train.lr=0.1': allowed:"),
    ("train_time_pruning.py", ["--table-only", "--budget", "10"], "argument --budget: '10': allowed: only without --table-only"),
    ("train_time_pruning.py", ["--table-only", "--seeds", "0,1"], "argument --seeds: '0,1': allowed: only without --table-only"),
    ("train_time_pruning.py", ["--table-only", "finetune.lr=0.1"], "argument overrides: 'finetune.lr=0.1': allowed: only without"),
    ("layer_pruning.py", ["--table-only", "--model", "resnet20"], "argument --model: 'resnet20': allowed: only without --table-only"),
    ("layer_pruning.py", ["--table-only", "--width", "32"], "argument --width: '32': allowed: only without --table-only"),
    ("layer_pruning.py", ["--table-only", "--epochs", "3"], "argument --epochs: '3': allowed: only without --table-only"),
    ("layer_pruning.py", ["--table-only", "--penalties", "0.5"], "argument --penalties: '0.5': allowed: only without --table-only"),
    ("layer_pruning.py", ["--table-only", "schedule.lr=1"], "argument overrides: 'schedule.lr=1': allowed: only without --table-only"),
    (
        "analysis_metrics_sweep.py",
        ["--results", "EMPTY", "--skip-run", "--seeds", "0"],
        "argument --seeds: '0': allowed: only without --skip-run",
    ),
    (
        "analysis_metrics_sweep.py",
        ["--results", "EMPTY", "--skip-run", "metrics=full"],
        "argument overrides: 'metrics=full': allowed:",
    ),
    ("analysis_metrics_sweep.py", ["--results", "EMPTY", "--skip-run", "--n-perm", "10"], "EMPTY: the folder holds no runs"),  # used
    (
        "regions_sparsity_sweep.py",
        ["--skip-run", "--out", "EMPTY", "--epochs", "30"],
        "argument --epochs: '30': allowed: only without --skip-run",
    ),
    (
        "regions_sparsity_sweep.py",
        ["--skip-run", "--densities", "0.1"],
        "argument --densities: '0.1': allowed: only without --skip-run",
    ),
    ("pruning_limit_mnist1d.py", ["--results", "r", "--epochs", "0"], "argument --epochs: '0'"),
    # --l1 and --seeds are comma lists: a bare value after them is neither swallowed nor passed on as an override
    ("pruning_limit_mnist1d.py", ["--results", "r", "--l1", "0", "5e-5"], "argument overrides: '5e-5'"),
    ("data_pruning_longtail.py", ["r", "--keep", "1"], "argument --keep: '1'"),  # prune-run refused it after the `none` sweep
    # an override of a key the script sets per run was given to every run (last_value_wins): runs named
    # limit-l10 / limit-l15e-05 trained with train.l1=0.001 (test_script_options.py: every such script)
    (
        "pruning_limit_mnist1d.py",
        ["--results", "r", "--l1", "0,5e-5", "--seeds", "0,1", "train.l1=0.001"],
        "argument overrides: 'train.l1=0.001': allowed: overrides of keys the script does not set per run (train.l1: ",
    ),
    ("random_erk_vs_layerwise.py", ["--results-dir", "r", "seed=5"], "argument overrides: 'seed=5': allowed: "),
    # the `none` sweep trained, then prune-run refused the rule sweep's jobs (exit 1, failed run folders left)
    (
        "data_pruning_longtail.py",
        ["r", "--keep", "0.9999", "--rules", "none,random", "--seeds", "0", "--epochs", "1"],
        "argument --keep: '0.9999': allowed: a fraction that leaves out at least one training example",
    ),
    # a misspelt rule was refused by prune-run only in the rule sweep, after the `none` sweep had trained
    (
        "data_pruning_longtail.py",
        ["r", "--rules", "nosuch", "--seeds", "0"],
        "argument --rules: 'nosuch': item 'nosuch': allowed: one of",
    ),
    (
        "data_pruning_longtail.py",
        ["r", "--rules", "none,randm", "--epochs", "1", "--seeds", "0"],
        "argument --rules: 'none,randm': item 'randm': allowed: one of none, random, class_balanced",
    ),
    # a repeated width or p ran the same configuration again, pooled as extra seeds (the std shrank)
    (
        "ntk_width_sweep.py",
        ["--widths", "8", "8", "--ps", "0.5", "--seeds", "2"],
        "argument --widths: '8 8': allowed: each value once (8 is repeated)",
    ),
    ("ntk_width_sweep.py", ["--widths", "8", "--ps", "0.5", "0.5"], "argument --ps: '0.5 0.5': allowed: each value once (0.5 is"),
    # --widths went to prune-run unchecked: "running: ..." then prune-run's error, or one error line per sweep job
    (
        "lap_vs_magnitude.py",
        ["--results-dir", "r", "--widths", "foo"],
        "argument --widths: 'foo': allowed: a non-empty list of positive",
    ),
    (
        "lap_vs_magnitude.py",
        ["--results-dir", "r", "--widths", "[]"],
        "argument --widths: '[]': allowed: a non-empty list of positive",
    ),
    (
        "lap_vs_magnitude.py",
        ["--results-dir", "r", "--widths", "[0]"],
        "argument --widths: '[0]': allowed: a non-empty list of positive",
    ),
    ("mia_pruning.py", ["--results-dir", "r", "--widths", "foo"], "argument --widths: 'foo': allowed: a non-empty list of positive"),
    ("mia_pruning.py", ["--results-dir", "r", "--widths", "[]"], "argument --widths: '[]': allowed: a non-empty list of positive"),
    ("mia_pruning.py", ["--results-dir", "r", "--widths", "[64,0]"], "argument --widths: '[64,0]': allowed: a non-empty list"),
    # review of e6cc200, F5: class_balanced's lower bound (one example per class), likewise refused by prune-run
    # only in the rule sweep, after the `none` sweep had trained
    (
        "data_pruning_longtail.py",
        ["r", "--keep", "0.001", "--rules", "none,class_balanced", "--seeds", "0", "--epochs", "1"],
        "argument --keep: '0.001': allowed: with class_balanced, a fraction that keeps at least one example of each of the 10",
    ),
]
# the values only prune-run knows: prune-run's own line and exit status, no table after it
PRUNE_RUN_REFUSES = [
    # the script set HYDRA_FULL_ERROR=1: a bad override ended in prune-run's full traceback
    ("pruning_limit_mnist1d.py", ["--results", "r", "--l1", "0", "nosuchkey=1"], "'nosuchkey'"),
    # the synthetic CIFAR data was written before prune-run refused the override, and left behind
    (
        "layer_pruning.py",
        ["--results-dir", "r", "--model", "resnet20", "--train-images", "10", "--test-images", "5", "sparsity=abc"],
        "sparsity",
    ),
]
# --help: the usage and exit 0, nothing on stderr, nothing created (no work started)
PYTHON_SCRIPTS = ["scaling_depth_analysis.py", "bench_analysis.py", "ntk_random.py"]
HELP = [(script, ["--help"], f"usage: {script} [-h]") for script in PYTHON_SCRIPTS]
# an unknown --structures name, or one of the other mode's, left an empty table: a pandas KeyError
# ('measured_speedup') after the start-up, instead of a message naming it
STRUCTURES = [
    ("bench_speedup.py", ["--quick", "--structures", "block 4x4"], "block 4x4"),
    ("bench_speedup.py", ["--quick", "--structures", "channel_group"], "channel_group"),  # a convnet structure only
    ("bench_speedup.py", ["--convnets", "--structures", "nm"], "nm"),  # an MLP structure only
]
DRIVEN = CASES + PRUNE_RUN_REFUSES + HELP + STRUCTURES
# modules preloaded by the driver before it forks (what most scripts import at the top)
PRELOAD = [
    "torch",
    "numpy",
    "pandas",
    "yaml",
    "omegaconf",
    "prune_cli.models",
    "prune_cli.pruning",
    "prune_cli.training",
    "prune_cli.run.override_checks",
    "prune_cli.analysis.regions.bounds",
]

DRIVER = r"""
import importlib, json, os, runpy, sys, traceback
cases, scripts, preload = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
for name in preload:
    importlib.import_module(name)
sys.path[0] = scripts  # as `python scripts/NAME.py` puts the script's folder first
done = []
for case in cases:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(case["cwd"])
            for fd, name in ((1, "out"), (2, "err")):
                target = os.open(case[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(target, fd)
                os.close(target)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            script = os.path.join(scripts, case["script"])
            sys.argv = [script, *case["args"]]
            try:
                runpy.run_path(script, run_name="__main__")
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if not isinstance(stop.code, (int, type(None))):
                    print(stop.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    done.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(done))
"""


def _ids(cases):
    return [f"{script}{''.join(' ' + a for a in args)}" for script, args, _ in cases]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{case id: (exit status, stdout, stderr, what the working folder holds afterwards)}."""
    root = tmp_path_factory.mktemp("script_arguments")
    cases = []
    for i, (script, args, _) in enumerate(DRIVEN):
        cwd = root / f"case{i}"
        (cwd / "EMPTY").mkdir(parents=True)
        cases.append({"script": script, "args": args, "cwd": str(cwd), "out": str(root / f"{i}.out"), "err": str(root / f"{i}.err")})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases), str(REPO / "scripts"), json.dumps(PRELOAD)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.splitlines()[-1])
    found = {}
    for case, code, cid in zip(cases, codes, _ids(DRIVEN)):
        cwd = case["cwd"]
        left = sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*"))
        found[cid] = (code, open(case["out"]).read(), open(case["err"]).read(), left)
    return found


@pytest.mark.parametrize("script, args, named", CASES, ids=_ids(CASES))
def test_a_bad_argument_is_one_line_exit_2(outcomes, script, args, named):
    code, out, err, left = outcomes[_ids([(script, args, named)])[0]]
    assert "Traceback" not in err and code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err
    assert errors[0].startswith(f"{script}: error: ") and named in errors[0], errors[0]
    assert out == "" and left == ["EMPTY"], (out, left)


@pytest.mark.parametrize("script, args, named", PRUNE_RUN_REFUSES, ids=_ids(PRUNE_RUN_REFUSES))
def test_a_value_prune_run_refuses_stops_the_script_with_its_status(outcomes, script, args, named):
    code, out, err, left = outcomes[_ids([(script, args, named)])[0]]
    assert "Traceback" not in err and code == 2, err[-2000:]
    assert err.splitlines()[-1].startswith("prune-run: error: ") and named in err.splitlines()[-1], err
    assert "accuracy" not in out and left == ["EMPTY"], (out, left)  # no table, no results folder


@pytest.mark.parametrize("script, args, usage", HELP, ids=_ids(HELP))
def test_python_script_help(outcomes, script, args, usage):
    code, out, err, left = outcomes[_ids([(script, args, usage)])[0]]
    assert (code, err) == (0, "")
    assert out.startswith(usage)
    assert left == ["EMPTY"], left


@pytest.mark.parametrize("script, args, named", STRUCTURES, ids=_ids(STRUCTURES))
def test_bench_speedup_refuses_a_structure_it_cannot_measure(outcomes, script, args, named):
    code, out, err, left = outcomes[_ids([(script, args, named)])[0]]
    assert code != 0 and "KeyError" not in err
    assert f"--structures {named}: not one of" in err, err[-1000:]


def test_results_module_help(monkeypatch, capsys):
    """`python -m prune_cli.results --help` took `--help` for the results folder (runpy runs the
    package's __main__ as -m does)."""
    monkeypatch.setattr(sys, "argv", ["prune_cli.results", "--help"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("prune_cli.results", run_name="__main__", alter_sys=True)
    out, err = capsys.readouterr()
    assert (stop.value.code, err) == (0, "")
    assert out.startswith("usage: python -m prune_cli.results [-h] [RESULTS_DIR]") and "Rebuild the shared tables" in out


def test_every_script_with_arguments_has_a_case():
    """A new script with options gets a bad-argument case here (ntk_random.py takes none)."""
    taking = {p.name for p in (REPO / "scripts").glob("*.py") if "add_argument(" in p.read_text() and p.name != "script_args.py"}
    assert taking - {script for script, _, _ in CASES + PRUNE_RUN_REFUSES} == set()


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="x.py")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("overrides", nargs="*")
    return parser


def test_given_arguments_are_those_the_command_line_names():
    """script_args.given_arguments: an option on the command line is given, at its default value too
    (comparing values with the defaults would take `--seeds 0,1,2` for not given); an option left out is
    not, nor an empty positional list (argparse sets it either way)."""
    import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
    from script_args import given_arguments

    parser = _parser()
    assert given_arguments(parser, []) == {}
    assert given_arguments(parser, ["--table-only"]) == {"table_only": True}
    given = given_arguments(parser, ["--seeds", "0,1,2", "--epochs", "40", "a=1", "b=2", "--sizes", "1", "4"])
    assert given == {"seeds": "0,1,2", "epochs": 40, "sizes": [1, 4], "overrides": ["a=1", "b=2"]}


def test_refuse_given_names_the_first_option_its_value_and_why(capsys):
    import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
    from script_args import refuse_given

    parser = _parser()
    refuse_given(parser, "only without --table-only", but=("table_only",), argv=["--table-only"])  # nothing else given: no error
    for argv, named in (
        (["--table-only", "--epochs", "40"], "argument --epochs: '40'"),
        (["--table-only", "--sizes", "1", "4"], "argument --sizes: '1 4'"),
        (["--table-only", "a=1", "b=2"], "argument overrides: 'a=1 b=2'"),
        (["--epochs", "40", "--table-only"], "argument --epochs: '40'"),
    ):
        with pytest.raises(SystemExit) as stop:
            refuse_given(parser, "only without --table-only", but=("table_only",), argv=argv)
        assert stop.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"x.py: error: {named}: allowed: only without --table-only"
    with pytest.raises(SystemExit):
        refuse_given(parser, "only with --x", among=("table_only",), argv=["--table-only"])
    assert capsys.readouterr().err.splitlines()[-1] == "x.py: error: argument --table-only: allowed: only with --x"


def test_help_descriptions_are_whole_sentences():
    """--help of data_pruning_longtail.py, pruning_limit_mnist1d.py and several benches showed the
    docstring's first line only, which stops mid-sentence ("... against a"): a script's description
    is its whole docstring or its first paragraph (script_args.description), never a cut line."""
    import tests.helpers  # noqa: F401  (puts scripts/ on sys.path)
    from script_args import description

    cut = sorted(p.name for p in (REPO / "scripts").glob("*.py") if "__doc__.splitlines()[0]" in p.read_text())
    assert cut == []
    doc = "Benchmark: one epoch vs a\nbare loop, same process.\n\nDetails.\n"
    assert description(doc) == "Benchmark: one epoch vs a bare loop, same process."


CHILD = r"""
import pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
def stop(signum, frame):  # prune-run's clean stop: finish what it writes, then exit with its status
    time.sleep(0.6)
    (folder / "stopped").write_text("clean")
    sys.exit(7)
signal.signal(signal.SIGINT, stop)
(folder / "ready").write_text("")
time.sleep(30)
"""


def test_ctrl_c_waits_for_prune_runs_clean_stop_and_exits_with_its_status(tmp_path):
    """On Ctrl-C run_or_exit (subprocess.run) ended in a KeyboardInterrupt traceback and SIGKILLed the
    child 0.25 s later, cutting prune-run's clean stop short. A fake child stands in for prune-run:
    its stop takes 0.6 s and exits 7; Ctrl-C is SIGINT to the terminal's process group."""
    import signal
    import time

    (tmp_path / "child.py").write_text(CHILD)
    wrapper = f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); from script_args import run_or_exit; "
    wrapper += f"run_or_exit([sys.executable, {str(tmp_path / 'child.py')!r}, {str(tmp_path)!r}]); print('after')"
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # generous limits: they only stop a hang (on a loaded machine, at 3x the suite's usual time, 20 s ran out once)
    deadline = time.monotonic() + 120
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # a SIGINT before the child installed its handler would test nothing (one between fork and exec is lost)
    assert (tmp_path / "ready").exists(), "the child did not start within 120 s"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert (tmp_path / "stopped").exists(), err  # the child finished its stop, not killed
    assert proc.returncode == 7 and "Traceback" not in err and out == "", (proc.returncode, err)
