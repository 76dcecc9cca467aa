"""Inputs an audit found accepted (or accepted too late) that must stop before any work: exit 2, one line
naming the key and the value, nothing created and a finished results folder byte-identical
(docs/robustness.md, "Bad input"). Each case ran, relabelled a run or wrote into a finished one before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FAST, run_cli, snapshot

pytestmark = pytest.mark.xdist_group("rejected_overrides")


def _rejected(args, finished_results, key):
    before = snapshot(finished_results)
    proc = run_cli(args, finished_results, check=False, keep_repeats=True)
    assert proc.returncode == 2, proc.stderr
    assert f"'{key}'" in proc.stderr and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert snapshot(finished_results) == before  # nothing written, nothing created, nothing rewritten
    return proc.stderr


@pytest.mark.parametrize(
    "args, key",
    [
        (["~dense_cache"], "dense_cache"),  # ran, and rewrote the finished run's .hydra files
        (["~shared_results"], "shared_results"),  # internal error, failed.json in the finished run
        (["~method"], "method"),  # Hydra's AssertionError traceback
        (["~threads"], "threads"),  # ran with the default, unseen
        (["method.name=snip"], "method.name"),  # a magnitude run recorded as snip
        (["schedule.name=lottery_ticket"], "schedule.name"),  # oneshot's settings recorded as lottery_ticket
        (["dataset.name=mnist"], "dataset.name"),  # internal error after the run directory existed
        (["method={name:snip}"], "method.name"),  # the dict form: a magnitude run recorded as run-snip-...
        (["sparsity=0.5", "sparsity=0.8"], "sparsity"),  # the last one won, silently
        (["method=random", "method=snip"], "method"),
        (["seed=1", "+seed=2"], "seed"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_overrides_that_delete_relabel_or_repeat_a_key_are_rejected(finished_results, args, key):
    _rejected([*FAST, *args], finished_results, key)


def test_a_repeated_key_names_both_values(finished_results):
    err = _rejected([*FAST, "seed=1", "seed=2"], finished_results, "seed")
    assert "seed=1 and then seed=2" in err and "-m seed=a,b" in err


def test_a_repeated_preset_says_one_preset_per_command(finished_results):
    """`-m experiment=a,b` (the hint for any other key) fails in Hydra (no `experiment` in the defaults), and a sweep
    over presets is refused, since each carries its own sweep (configs audit of 2026-12-03, sixth session)."""
    err = _rejected([*FAST, "+experiment=lap_mlp", "+experiment=ntk_random"], finished_results, "experiment")
    assert "one preset per command" in err and "-m experiment=a,b" not in err, err


def test_a_key_repeated_with_the_same_value_changes_nothing_and_runs(tmp_path):
    proc = run_cli(["--cfg", "job", *FAST, "seed=3", "seed=3"], tmp_path / "r", keep_repeats=True)
    assert "seed: 3" in proc.stdout


def test_a_relabelled_group_says_how_to_choose_the_option(finished_results):
    err = _rejected([*FAST, "method.name=snip"], finished_results, "method.name")
    assert "method=snip" in err


@pytest.mark.parametrize("value", ["", "file", "/proc/no-such-dir"], ids=["empty", "a-file", "uncreatable"])
def test_an_unusable_dense_cache_dir_is_rejected_before_any_work(finished_results, tmp_path, value):
    # Before: '' wrote the dense cache into the current directory; /proc/... failed after the data
    # was loaded, with a run directory and a message naming no key.
    if value == "file":
        value = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("")
    err = _rejected([*FAST, f"dense_cache.dir={value}"], finished_results, "dense_cache.dir")
    assert "a directory prune-run can write or create" in err


def test_an_uncreatable_results_dir_is_rejected_as_results_dir():
    # os.access says yes to root on /proc; creating a directory there is what fails. The message names
    # results_dir (before: dense_cache.dir, whose default lies inside it).
    proc = run_cli([*FAST], Path("/proc/no-such-dir"), check=False)
    assert proc.returncode == 2 and "'results_dir'" in proc.stderr and "cannot be created" in proc.stderr


def test_a_seed_beyond_64_bits_is_rejected(finished_results):
    # Before: accepted, then torch.manual_seed overflowed after the run directory was created.
    err = _rejected([*FAST, f"seed={2**64}"], finished_results, "seed")
    assert str(2**63 - 1) in err


def test_a_sweep_with_one_rejected_job_runs_none_of_them(finished_results):
    # Before: the 0.5 job trained and finished, then the 1.5 job left a run directory with failed.json,
    # and runs/multirun.yaml was added to the finished folder.
    err = _rejected(["-m", *FAST, "sparsity=0.5,1.5"], finished_results, "sparsity")
    assert "1 of 2 jobs of the sweep rejected; no job ran" in err and "job 2 of 2 (sparsity=1.5" in err


def test_a_sweep_with_an_unknown_key_in_every_job_lists_ten_and_counts_the_rest(finished_results):
    err = _rejected(["-m", *FAST, "seed=0,1,2,3,4,5,6,7,8,9,10,11", "+train.epoch=3"], finished_results, "train.epoch")
    assert "12 of 12 jobs of the sweep rejected" in err and "... and 2 more" in err
    assert err.count("Unknown config key 'train.epoch'") == 10


def test_a_sweep_hydra_cannot_compose_leaves_a_finished_folder_byte_identical(finished_results):
    # Before: runs/multirun.yaml was added (or an earlier sweep's replaced) although nothing ran.
    (finished_results / "runs" / "multirun.yaml").write_text("an earlier sweep's record\n")
    _rejected(["-m", *FAST, "method=magnitude,lookahed"], finished_results, "method")


def test_an_unknown_node_names_the_key_and_value_that_were_typed(finished_results):
    # Before: "Unknown config key 'metrics.regoins' (value None)", the '.enabled' and 'true' lost.
    err = _rejected([*FAST, "metrics.regoins.enabled=true"], finished_results, "metrics.regoins.enabled")
    assert "(value 'true')" in err and "Did you mean 'metrics.regions.enabled'?" in err


def test_two_modes_at_once_are_a_usage_error_not_a_traceback(finished_results):
    # Before: Hydra's ValueError with its traceback, exit 1.
    before = snapshot(finished_results)
    proc = run_cli(["--cfg", "job", "-m", *FAST, "sparsity=0.5,0.9"], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--cfg job" in proc.stderr
    assert snapshot(finished_results) == before


def test_tables_switched_off_are_not_written(tmp_path):
    # Before: metrics.per_class=false and metrics.layers=false still wrote both files, header only.
    results = tmp_path / "results"
    run_cli([*FAST, "metrics.per_class=false", "metrics.layers=false"], results)
    [run_dir] = [p.parent for p in results.glob("runs/*/COMPLETE")]
    assert (run_dir / "metrics.csv").is_file()
    assert not (run_dir / "per_class.csv").exists() and not (run_dir / "layers.csv").exists()
    assert not (results / "per_class.csv").exists() and not (results / "layers.csv").exists()


def test_a_stop_before_the_first_checkpoint_does_not_claim_one(tmp_path, capsys):
    # Before: "keeps its last checkpoint (state.pt)" although no state.pt existed yet.
    import signal

    from prune_cli import cli
    from prune_cli.core.interrupts import Interrupted

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(SystemExit) as stop:
        cli._stopped(Interrupted(signal.SIGTERM), run_dir)
    err = capsys.readouterr().err
    assert stop.value.code == 128 + signal.SIGTERM
    assert "has no checkpoint yet" in err and "state.pt" not in err
    (run_dir / "state.pt").write_bytes(b"x")
    with pytest.raises(SystemExit):
        cli._stopped(Interrupted(signal.SIGTERM), run_dir)
    assert "keeps its last checkpoint (state.pt)" in capsys.readouterr().err


def test_a_rejected_command_leaves_an_earlier_sweep_s_record_alone(tmp_path):
    # In one process (tests, tools): a finished sweep, then a command Hydra cannot compose. The
    # rejection used to put back the multirun.yaml seen when that earlier sweep started (none),
    # deleting the finished sweep's record.
    swept = tmp_path / "swept"
    run_cli(["-m", *FAST, "seed=0"], swept)
    record = swept / "runs" / "multirun.yaml"
    before = record.read_bytes()
    proc = run_cli([*FAST, "model=nope"], tmp_path / "other", check=False)
    assert proc.returncode == 2 and record.read_bytes() == before


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_rerun_that_finds_the_run_finished_leaves_its_record_as_it_was(finished_results, sweep):
    # Before: Hydra rewrote the finished run's .hydra/{config,hydra,overrides}.yaml with the rerun's
    # command, so its record said threads=1 although it ran with threads=auto.
    before = snapshot(finished_results)
    args = ["threads=1", *reversed(FAST)]  # same run (threads and order are not part of it)
    proc = run_cli(["-m", *args] if sweep else args, finished_results)
    assert "already complete" in proc.stdout + proc.stderr
    after = snapshot(finished_results)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    sweep_record = ["runs/multirun.yaml"] if sweep else []  # a sweep ran: its own record is new
    assert [k for k in changed if not k.endswith("prune-run.log")] == sweep_record


@pytest.mark.parametrize("value", ["2", "null"])
def test_an_environment_value_that_is_not_text_is_rejected(finished_results, value):
    """hydra.job.env_set.OMP_NUM_THREADS=2 with the parallel launcher: Hydra reads 2 as an integer and
    the job failed inside the launcher (joblib's `TypeError: str expected, not int`), after the sweep's
    run directory and record existed. Environment values are text: the quoted form is the one that works."""
    key = "hydra.job.env_set.OMP_NUM_THREADS"
    err = _rejected(["-m", *FAST, "hydra/launcher=parallel", f"{key}={value}"], finished_results, key)
    assert f"{key}='2'" in err


# ----------------------------------------------------------------------------- found by the config audit


@pytest.mark.parametrize(
    "args",
    [["train={epochs:3}"], ["train={epochs:3,lr:0.05}"], ["+finetune={lr:0.2}", "finetune.lr=0.1"]],
    ids=" ".join,
)
def test_a_dict_override_that_repeats_a_key_with_another_value_is_rejected(finished_results, args):
    """`train.epochs=2 train={epochs:3}` trained 3 epochs: the one-value-per-key check compared the
    typed keys, `train` and `train.epochs`, which never collide. The dict's keys count as typed."""
    key = "finetune.lr" if "finetune.lr=0.1" in args else "train.epochs"
    _rejected([*FAST, *args], finished_results, key)


def test_a_dict_override_that_agrees_with_the_other_overrides_runs(tmp_path):
    proc = run_cli(["--cfg", "job", *FAST, "train={epochs:2,lr:0.05}"], tmp_path / "r", keep_repeats=True)
    assert "lr: 0.05" in proc.stdout


def test_method_score_of_a_score_with_its_own_method_config_is_rejected(finished_results):
    """`method.score=random` under method=magnitude ran random pruning labelled magnitude (run id
    run-magnitude-..., method column magnitude). A score with its own method config is chosen with
    method=<it>; method.score stays for a score no method config names (a plugin score)."""
    err = _rejected([*FAST, "method.score=random", "sparsity=0.5"], finished_results, "method.score")
    assert "method=random" in err


def test_method_score_repeating_the_method_s_own_score_runs(tmp_path):
    proc = run_cli(["--cfg", "job", *FAST, "method=random", "method.score=random"], tmp_path / "r")
    assert "score: random" in proc.stdout


def test_a_run_directory_holding_another_finished_run_is_refused(finished_results, tmp_path):
    """`hydra.run.dir=<a finished run's directory>` with another config found COMPLETE there and said
    'already complete' (exit 0) after Hydra rewrote the finished run's .hydra/ record with the other
    config. Its COMPLETE names its run id: another run's directory is refused, nothing rewritten."""
    [finished] = [p.parent for p in (finished_results / "runs").glob("*/COMPLETE")]
    err = _rejected([*FAST, "sparsity=0.5", f"hydra.run.dir={finished}"], finished_results, "hydra.run.dir")
    assert finished.name in err


def test_an_unused_override_with_a_custom_run_directory_is_rejected(finished_results, tmp_path):
    """With `hydra.run.dir` set, the run directory is not resolved through prune-run's check, and an
    override that does nothing (method.nm_n without structure=nm) was only a warning in the log."""
    before = snapshot(finished_results)
    run_dir = tmp_path / "own_dir"
    proc = run_cli([*FAST, f"hydra.run.dir={run_dir}", "method.nm_n=1"], finished_results, check=False)
    assert proc.returncode == 2 and "'method.nm_n=1' has no effect in this run" in proc.stderr, proc.stderr
    assert not run_dir.exists() and snapshot(finished_results) == before


def test_minus_zero_sparsity_is_rejected(finished_results):
    """`sparsity=-0.0` passed the range check (-0.0 >= 0) and made a run `...-s-0-...` of its own, with
    target_sparsity -0.0 and another hash, beside sparsity=0's."""
    err = _rejected([*FAST, "sparsity=-0.0"], finished_results, "sparsity")
    assert "not -0.0" in err


def test_a_command_that_waited_for_its_run_leaves_the_record_of_the_command_that_ran_it(finished_results):
    """The same run started while another process is running it waits on the run's lock, then finds the
    run complete; Hydra had already rewritten the run's .hydra/ record with the waiting command's
    (`threads=1` in overrides.yaml of a run made with threads=auto; the race audit, 2 of 2). Here the
    other process is the test holding the lock, its run completing (COMPLETE written) before it lets go."""
    import time

    from filelock import FileLock

    from cli_runner import start_forked

    [run_dir] = [p.parent for p in (finished_results / "runs").glob("*/COMPLETE")]
    record = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
    (run_dir / "COMPLETE").unlink()  # still running, as far as the waiting command can tell
    lock = FileLock(str(run_dir / ".run.lock"))
    lock.acquire()
    waiting = start_forked(["threads=1", *reversed(FAST)], finished_results)
    try:
        for _ in range(600):  # until the waiting command has written its record and waits on the lock
            if (run_dir / ".hydra" / "overrides.yaml").read_bytes() != record["overrides.yaml"] or waiting.poll() is not None:
                break
            time.sleep(0.1)
        (run_dir / "COMPLETE").write_text(run_dir.name + "\n")  # the other process completes the run
    finally:
        lock.release()
    assert waiting.wait(timeout=120) == 0
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == record


@pytest.mark.parametrize(
    "args, key",
    [
        (["method=null"], "method"),  # Hydra's ValueError traceback, exit 1
        (["model=123"], "model"),
        (["data_pruning=true"], "data_pruning"),
        (["hydra/launcher=null"], "hydra/launcher"),
        (["method=[magnitude,random]"], "method"),  # ran the last option only, silently
        (["-m", "method=magnitude,null"], "method"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_config_group_given_a_value_that_is_not_an_option_name_is_rejected(finished_results, args, key):
    flags = [a for a in args if a.startswith("-")]
    err = _rejected([*flags, *FAST, *[a for a in args if not a.startswith("-")]], finished_results, key)
    assert "an option name of the config group" in err


def test_a_sweep_over_results_dir_is_rejected(finished_results, tmp_path):
    """`-m results_dir=A,B` ran both runs in A and B but wrote the sweep's runs/multirun.yaml into
    ./results (overwriting an earlier sweep's there), and failed naming a value never given when
    ./results was a file."""
    err = _rejected(["-m", *FAST, f"results_dir={tmp_path / 'a'},{tmp_path / 'b'}"], finished_results, "results_dir")
    assert "one folder per sweep" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    repeated = _rejected([*FAST, f"results_dir={tmp_path / 'a'}", f"results_dir={tmp_path / 'b'}"], finished_results, "results_dir")
    assert "give results_dir once" in repeated and "-m results_dir" not in repeated


@pytest.mark.parametrize("launchers", ["parallel,paralel", "parallel,slurm", "submitit_local,parallel", "glob(*)"])
def test_a_sweep_over_the_launcher_is_rejected(finished_results, launchers):
    """`-m hydra/launcher=parallel,paralel` ran the sweep with one launcher and dropped the other value, the
    typo included, exit 0 (the audit of parallel launchers): Hydra refuses sweeps over its `hydra.*` keys
    but not over its config groups."""
    err = _rejected(["-m", *FAST, f"hydra/launcher={launchers}"], finished_results, "hydra/launcher")
    assert "one option per sweep" in err and "run one sweep per option" in err


SWEEPER_PARAMS = [
    # (overrides, the key named, the sweep to type instead). Before: OmegaConf's AttributeError traceback (the
    # first; hydra.sweeper.params is null until a config sets it) or Hydra's AssertionError traceback, exit 1.
    (["-m", "+hydra.sweeper.params={seed:'0,1'}"], "hydra.sweeper.params", "seed=0,1"),
    (["-m", "hydra.sweeper.params.seed='0,1'"], "hydra.sweeper.params.seed", "seed=0,1"),
    (["-m", "++hydra.sweeper.params={seed:'0,1',sparsity:'0.5,0.9'}"], "hydra.sweeper.params", "seed=0,1 sparsity=0.5,0.9"),
    (["hydra.sweeper.params.seed='0,1'"], "hydra.sweeper.params.seed", "seed=0,1"),
]


@pytest.mark.parametrize("args, key, sweep", SWEEPER_PARAMS, ids=[" ".join(c[0]) for c in SWEEPER_PARAMS])
def test_a_sweep_given_as_hydra_sweeper_params_on_the_command_line_says_how_to_sweep(finished_results, args, key, sweep):
    flags = [a for a in args if a == "-m"]
    err = _rejected([*flags, *FAST, *[a for a in args if a != "-m"]], finished_results, key)
    assert f"-m {sweep}" in err, err


def _run_preset_sweep(tmp_path, params: str, override: str) -> str:
    """Run preset `p` of a --config-dir whose hydra.sweeper.params are `params` (YAML lines) with
    `override` added to the sweep; prune-run's stderr."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    preset = "# @package _global_\nname: p\nhydra:\n  sweeper:\n    params:\n" + params
    (tmp_path / "mine" / "experiment" / "p.yaml").write_text(preset)
    args = ["--config-dir", str(tmp_path / "mine"), "-m", "+experiment=p", *FAST, "train.epochs=1", override]
    return run_cli(args, tmp_path / "r").stderr


def test_hydra_sweeper_params_null_still_runs_a_preset_without_its_own_sweep(tmp_path):
    """The one command-line value of hydra.sweeper.params that is kept: it sets no sweep."""
    err = _run_preset_sweep(tmp_path, "      seed: 0,1\n", "hydra.sweeper.params=null")
    assert "all 1 runs of the sweep completed" in err, err[-2000:]


def test_deleting_one_key_of_a_preset_s_sweep_still_runs_without_that_key(tmp_path):
    """`~hydra.sweeper.params.seed` drops one dimension of a preset's sweep (Hydra's delete, the `~` form
    of `=null`); the check of command-line hydra.sweeper.params refused it, suggesting `-m seed=None`
    (the review of 2026-12-02)."""
    err = _run_preset_sweep(tmp_path, "      seed: 0,1\n      sparsity: 0.5,0.9\n", "~hydra.sweeper.params.seed")
    assert "all 2 runs of the sweep completed" in err, err[-2000:]
