"""prune-run under faults, races, signals and bad input (issue: results a researcher can trust).

Each test drives the real console entry point (kills, signals and races in a process of their own,
forked from the test's: tests/cli_runner.py ForkedRun; one rejected run as the console command in a
new interpreter, conftest's `rejected_console_run`, which test_cli_in_process also reads; the rest
in-process) and checks what a researcher
relies on: the shared tables hold every run's rows exactly once, a restarted run gives the rows
of an uninterrupted one, and a rejected or failed run says why, in one message, and creates
nothing outside results_dir."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_runner import ForkedRun, run_in_process, start_forked
from conftest import FAST, REJECTED, REJECTED_RESULTS_DIR, SHARED_RUN, copy_results, run_cli
from tests.helpers import compose, lock_freed_after_the_signal
from prune_cli.core import crashpoints, identity
from prune_cli.core.errors import UnknownKeyError

VOLATILE = ["timestamp", "git_sha", "git_dirty"]  # provenance of the moment, not of the computation
# The signal tests hold the run after its first checkpoint until the signal arrives
# (crashpoints.HOLD_ENV), so the signal lands in the middle of dense training on any machine; the
# SIGTERM case resumes the run to the end.
LONG_EPOCHS = 6
LONG = [a for a in FAST if not a.startswith("train.epochs")] + [f"train.epochs={LONG_EPOCHS}"]


def _start(args: list[str], results_dir: Path, cwd: Path | None = None, **env) -> ForkedRun:
    """prune-run in its own process (kills, signals, two processes on one run id), forked from this
    one: the process is the point, a new interpreter's start-up is not (tests/cli_runner.py)."""
    return start_forked(args, results_dir, cwd=cwd, env=env)


def _run_dir(args: list[str], results_dir: Path) -> Path:
    return results_dir / "runs" / identity.run_id(compose(args, results_dir))


def _shared(results_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_csv(results_dir / name)
        .drop(columns=VOLATILE)
        .sort_values(list(pd.read_csv(results_dir / name).drop(columns=VOLATILE).columns))
        .reset_index(drop=True)
        for name in ("runs.csv", "per_class.csv", "layers.csv")
    }


@pytest.fixture
def reference(shared_run):
    """An uninterrupted run of SHARED_RUN: what every interrupted-then-restarted run must reproduce."""
    return shared_run.results


def _same_rows(results_dir: Path, reference: Path) -> None:
    got, want = _shared(results_dir), _shared(reference)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False)
    history = pd.read_csv(next(results_dir.glob("runs/*/history.csv")))
    assert not history.duplicated(["phase", "epoch"]).any()


# ------------------------------------------------------------------------------ typos and bad input


@pytest.mark.parametrize(
    "override,suggestion",
    [
        ("+train.epoch=50", "'train.epochs'"),
        ("+method.sparsity=0.5", "'sparsity'"),
        ("+metrics.regions.enabld=true", "'metrics.regions.enabled'"),
        ("+seeed=3", "'seed'"),
    ],
)
def test_a_key_no_schema_declares_is_rejected_with_the_closest_names(tmp_path, override, suggestion):
    with pytest.raises(UnknownKeyError, match=f"Did you mean {suggestion}"):
        compose([override], tmp_path)


def test_a_rejected_run_creates_nothing_anywhere(tmp_path, rejected_console_run):
    # The console command in a new interpreter (`sparsity=2`, made once per session and also read by
    # test_cli_in_process): exit 2, one message, nothing in its folder but its empty working directory.
    console = rejected_console_run
    assert REJECTED == ["sparsity=2"] and REJECTED_RESULTS_DIR == "results_dir=deep/results"
    assert console.proc.returncode == 2 and console.proc.stderr.startswith("prune-run: error:"), console.proc.stderr
    assert "Traceback" not in console.proc.stderr
    assert console.created == ["work"]  # not even results_dir
    # The same in this process, for that and three more rejections.
    work = tmp_path / "work"
    work.mkdir()
    missing_files = ["dataset=cifar10", "dataset.root=/nonexistent", "model=resnet20", "train.epochs=1"]
    for args in (["+train.epoch=5"], ["name=../../escaped"], ["sparsity=2"], missing_files):
        fast = FAST if args is not missing_files else []
        argv = [*fast, *args, "results_dir=deep/results"]
        done = run_in_process(argv, cwd=work, env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
        code, err = done.returncode, done.stderr
        assert code == 2 and err.startswith("prune-run: error:"), err
        assert "Traceback" not in err
    assert list(work.iterdir()) == [] and list(tmp_path.iterdir()) == [work]  # not even results_dir


def test_an_unsafe_name_in_a_sweep_stops_the_sweep_and_creates_nothing(tmp_path):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    results_dir = work / "results"
    proc = run_cli(["-m", *FAST, "name=../../x,ok", "train.epochs=1"], results_dir, check=False)
    # Every job is validated before the first runs: the sweep stops, nothing is created anywhere
    # (before, the `ok` job ran and the unsafe one left runs/invalid-name-*/failed.json).
    assert proc.returncode == 2 and "1 of 2 jobs of the sweep rejected; no job ran" in proc.stderr
    assert "'name': '../../x'" in proc.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b"]


def test_unusable_results_dir_is_one_message(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli([*FAST], tmp_path / "file", check=False)
    assert proc.returncode == 2 and "results_dir" in proc.stderr and "is not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("model", ["resnet20", "lenet5"])  # fails in the forward pass / in the constructor
def test_model_that_does_not_fit_the_data_is_one_message(tmp_path, model):
    proc = run_cli([f"model={model}", "dataset=synthetic", "train.epochs=1"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and f"Invalid value for config key 'model': '{model}'" in proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "r").glob("runs/*"))


def test_corrupt_match_masks_is_one_message_that_never_suggests_unsafe_loading(tmp_path):
    bad = tmp_path / "masks.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    proc = run_cli([*FAST, "method.allocation=matched", f"method.match_masks={bad}"], tmp_path / "r", check=False)
    assert proc.returncode == 2 and "method.match_masks" in proc.stderr and "could not be read" in proc.stderr
    assert "weights_only" not in proc.stderr and not (tmp_path / "r").exists()


def test_cifar_batches_are_read_without_running_code(tmp_path):
    from prune_cli.data.vision import read_cifar_file
    from prune_cli.core.errors import DatasetFileUnreadable

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "evil").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DatasetFileUnreadable, match=r"evil.*refused to load posix\.system"):
        read_cifar_file(str(tmp_path / "evil"))
    assert not (tmp_path / "pwned").exists()
    good = {"data": np.arange(6, dtype=np.uint8), "labels": [1, 2]}
    (tmp_path / "good").write_bytes(pickle.dumps(good, protocol=2))
    assert read_cifar_file(str(tmp_path / "good"))["labels"] == [1, 2]
    (tmp_path / "cut").write_bytes(pickle.dumps(good)[:40])
    with pytest.raises(DatasetFileUnreadable, match=f"cannot read {tmp_path / 'cut'}"):
        read_cifar_file(str(tmp_path / "cut"))


# ------------------------------------------------------------------------------ kills and restarts


@pytest.mark.parametrize("point", ["cache-stored", "checkpoint-write", "shared-table-1", "before-complete"])
def test_a_run_killed_at_a_point_and_restarted_equals_an_uninterrupted_run(tmp_path, reference, point):
    out = tmp_path / "results"
    proc = _start(SHARED_RUN, out, **{crashpoints.ENV: point})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL  # it really died there
    run_cli(SHARED_RUN, out)
    _same_rows(out, reference)
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.dense_cache) == {"miss"}  # the run trained its dense model itself, killed or not


def test_two_processes_on_one_run_id_write_its_rows_once(tmp_path, reference):
    out = tmp_path / "results"
    procs = [_start(SHARED_RUN, out) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum("being run by another process" in err for _, err in outs) <= 1
    _same_rows(out, reference)
    log = next(out.glob("runs/*/prune-run.log")).read_text()
    assert log.count("dense epoch 1/") == 1  # the second process never trained


def test_a_sequential_sweep_naming_one_run_twice_runs_it_once_and_writes_its_rows_once(tmp_path, reference):
    """`prune-run -m ... seed=0,0` (a double submission within one sweep): Hydra does not merge the two
    jobs; the basic launcher runs them one after the other in one process, so there is no lock to wait
    on: the second job finds the run complete and does nothing. Its rows are in the shared tables once,
    as an uninterrupted run's. Two processes at once are test_two_processes_on_one_run_id_write_its_rows_once."""
    out = tmp_path / "results"
    proc = run_cli(["-m", *SHARED_RUN, "seed=0,0"], out)
    said = proc.stdout + proc.stderr
    assert "Launching 2 jobs" in said, said[-3000:]  # Hydra kept both jobs
    [run_dir] = [p for p in (out / "runs").iterdir() if p.is_dir()]
    log = (run_dir / "prune-run.log").read_text()
    assert log.count("dense epoch 1/") == 1  # trained once
    assert log.count("is already complete") == 1  # the second job found it done
    assert "being run by another process" not in said + log  # one process: no lock wait
    assert "prune-run: all 1 runs of the sweep completed" in proc.stderr, proc.stderr[-3000:]
    _same_rows(out, reference)


def test_an_unreadable_checkpoint_is_moved_aside_and_the_run_redone(tmp_path, reference):
    out = tmp_path / "results"
    run_dir = _run_dir(SHARED_RUN, out)
    run_dir.mkdir(parents=True)
    (run_dir / "state.pt").write_bytes(b"truncated")
    proc = run_cli(SHARED_RUN, out)
    assert list(run_dir.glob("state.pt.corrupt-*"))
    assert f"checkpoint {run_dir / 'state.pt'} is unreadable" in proc.stderr + (run_dir / "prune-run.log").read_text()
    _same_rows(out, reference)


@pytest.mark.parametrize("saved_plan", [["Dense()", "Other()"], None])
def test_a_checkpoint_of_another_plan_is_moved_aside_and_the_run_redone(tmp_path, reference, monkeypatch, saved_plan):
    """A checkpoint's step index counts the steps of the plan that wrote it: the lottery-ticket reinit
    control gained steps (Branch/Rejoin), and a run stopped under the older plan resumed at the index of
    another step. A checkpoint whose saved plan differs is set aside and the run redone; one without a
    saved plan (older versions) is resumed unless the plan holds steps those versions never made (here
    a Branch is added to the run's plan for the test)."""
    out = tmp_path / "results"
    proc = _start(SHARED_RUN, out, **{crashpoints.ENV: "shared-table-1"})  # every step done and checkpointed
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    run_dir = _run_dir(SHARED_RUN, out)
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert state["plan"][0] == "Dense()"  # the plan is saved with the checkpoint
    if saved_plan is None:
        del state["plan"]
        from prune_cli.schedules import SCHEDULES
        from prune_cli.schedules.steps import Branch, Rejoin

        plan_of = SCHEDULES.get("oneshot")
        monkeypatch.setitem(SCHEDULES._entries, "oneshot", lambda cfg: [*plan_of(cfg), Branch(), Rejoin()])
    else:
        state["plan"] = saved_plan
    torch.save(state, run_dir / "state.pt")
    proc = run_cli(SHARED_RUN, out, separate_process=False)
    log = (run_dir / "prune-run.log").read_text()
    assert f"checkpoint {run_dir / 'state.pt'} cannot be resumed" in log, log
    assert list(run_dir.glob("state.pt.other-plan-*"))
    got, want = _shared(out), _shared(reference)  # redone from the start: its dense model from the cache the first try filled
    assert set(got["runs.csv"]["dense_cache"]) == {"hit"}
    for name in want:
        pd.testing.assert_frame_equal(got[name].drop(columns="dense_cache"), want[name].drop(columns="dense_cache"), check_dtype=False)


def test_a_killed_append_is_settled_by_the_rebuild_command_as_the_readme_says(tmp_path):
    """README: until the next writer, a plain read of the shared tables may see part of a run killed
    inside its append, with the journal beside them; `python -m prune_cli.results DIR` settles it (the
    run, killed before COMMIT, is rolled back: none of its rows stays in any shared table)."""
    from prune_cli.run.results import main as rebuild

    out = tmp_path / "results"
    proc = _start(SHARED_RUN, out, **{crashpoints.ENV: "shared-table-1"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    rid = _run_dir(SHARED_RUN, out).name
    assert (out / ".append-journal.json").is_file()
    partial = [p.name for p in out.glob("*.csv") if rid in p.read_text()]
    assert partial  # what a plain read sees before the rebuild: part of the killed run
    assert rebuild([str(out)]) == 0
    assert not (out / ".append-journal.json").exists()
    assert not [p.name for p in out.glob("*.csv") if rid in p.read_text()]


def test_a_run_given_the_directory_of_another_unfinished_run_does_not_resume_its_checkpoint(tmp_path):
    """`hydra.run.dir` reused for another seed while the first run was unfinished: the second run resumed the
    first's checkpoint ("resuming run ...-seed0-...") and finished under its own id with seed 0's dense
    training. Its checkpoint names its run id: the second run stops, naming both, and changes nothing."""
    out = tmp_path / "results"
    proc = _start(SHARED_RUN, out, **{crashpoints.ENV: "shared-table-1"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    run_dir = _run_dir(SHARED_RUN, out)
    state = (run_dir / "state.pt").read_bytes()
    proc = run_cli([*SHARED_RUN, "seed=5", f"hydra.run.dir={run_dir}"], out, check=False)
    assert proc.returncode != 0
    assert f"holds the unfinished run {run_dir.name} (its checkpoint state.pt)" in proc.stderr, proc.stderr[-2000:]
    assert (run_dir / "state.pt").read_bytes() == state and not (run_dir / "failed.json").exists()


def _every_file(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _killed_with_a_checkpoint(args: list[str], out: Path) -> None:
    """`prune-run args` killed (SIGKILL) once its dense model is stored: its run directory keeps state.pt."""
    proc = _start(args, out, **{crashpoints.ENV: "cache-stored"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL


def test_a_run_given_the_directory_of_another_unfinished_run_leaves_it_as_it_was(tmp_path):
    """The run above stopped only when it loaded the checkpoint (AnotherRunsDirectory, exit 1), after Hydra had
    rewritten the other run's .hydra record and the run its config.yaml with seed 5's. Now it is refused as a
    hydra.run.dir holding another finished run is: exit 2 before Hydra writes anything."""
    out = tmp_path / "results"
    _killed_with_a_checkpoint(SHARED_RUN, out)
    run_dir = _run_dir(SHARED_RUN, out)
    before = _every_file(out)
    assert {"state.pt", "config.yaml", ".hydra/config.yaml"} <= set(_every_file(run_dir))
    proc = run_cli([*SHARED_RUN, "seed=5", f"hydra.run.dir={run_dir}"], out, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "'hydra.run.dir'" in proc.stderr and f"holds the unfinished run {run_dir.name} (its checkpoint state.pt)" in proc.stderr
    assert _every_file(out) == before


def test_a_sweep_job_whose_directory_holds_another_unfinished_run_stops_the_sweep_before_any_job(tmp_path):
    """`-m seed=1,0 'hydra.sweep.subdir=${hydra.job.num}'` after seed 0's run was stopped in runs/0: job 0
    (seed 1) failed there at run time, after Hydra had rewritten runs/0's .hydra record and the job its
    config.yaml with seed 1's (the checkpoint still seed 0's), and job 1 trained seed 0 again in runs/1.
    Now no job runs and nothing changes, as for a directory holding another finished run."""
    out = tmp_path / "results"
    subdir = "hydra.sweep.subdir=${hydra.job.num}"
    _killed_with_a_checkpoint(["-m", *SHARED_RUN, "seed=0", subdir], out)
    assert (out / "runs" / "0" / "state.pt").is_file()
    before = _every_file(out)
    proc = run_cli(["-m", *SHARED_RUN, "seed=1,0", subdir], out, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for text in ("'hydra.sweep.subdir'", "Job 0 (seed=1", f"{out / 'runs' / '0'}", "(its checkpoint state.pt)", "No job ran"):
        assert text in proc.stderr, (text, proc.stderr[-2000:])
    assert _every_file(out) == before


def test_a_run_that_finds_another_run_s_checkpoint_writes_nothing_in_its_directory(tmp_path):
    """The last line (prune_cli/run/experiment.py, for a directory that changed since the checks before the
    run): the run wrote its config.yaml, then found the checkpoint another run's."""
    from prune_cli.core.errors import AnotherRunsDirectory
    from prune_cli.run.experiment import run

    out = tmp_path / "results"
    _killed_with_a_checkpoint(SHARED_RUN, out)
    run_dir = _run_dir(SHARED_RUN, out)
    before = _every_file(run_dir)
    with pytest.raises(AnotherRunsDirectory, match="holds the unfinished run"):
        run(compose([*SHARED_RUN, "seed=5"], out), run_dir)
    assert _every_file(run_dir) == before


def test_a_corrupt_dense_cache_entry_is_moved_aside_and_retrained(tmp_path, shared_run):
    out = copy_results(shared_run.results, tmp_path / "results")  # a finished SHARED_RUN (sparsity 0.5)
    [entry] = [p for p in (out / "dense_cache").iterdir() if p.is_dir()]
    (entry / "dense.pt").write_bytes(b"garbage")
    run_cli([*FAST, "sparsity=0.7"], out)
    assert list((out / "dense_cache").glob(f"{entry.name}.corrupt-*"))
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.groupby("target_sparsity").dense_cache.first()) == ["miss", "miss"]
    log = next(out.glob("runs/*s0.7*/prune-run.log")).read_text()
    assert f"dense cache entry {entry} is unreadable" in log
    run_cli([*FAST, "sparsity=0.8"], out)  # the retrained entry serves the next run
    assert pd.read_csv(out / "runs.csv").query("target_sparsity == 0.8").dense_cache.iloc[0] == "hit"


@pytest.mark.parametrize(
    "file, content, why",
    [
        ("history.json", "{}", "history.json holds a dict, not a list of epoch rows"),
        ("history.json", "[1]", "history.json holds a list with a non-object row, not a list of epoch rows"),
        ("dense.pt", None, "dense.pt holds a Tensor, not a state dict"),
    ],
)
def test_a_dense_cache_entry_of_readable_files_of_the_wrong_type_is_moved_aside_and_retrained(
    tmp_path, shared_run, file, content, why
):
    """Audit of 2026-12-04: a history.json holding valid JSON of another type (`{}`) crashed every run of the key
    with a TypeError traceback and left the entry in place; README promises such an entry is renamed
    `.corrupt-<time>` with a warning and the model trained again. The retrained model's dense rows are those
    the original run computed."""
    out = copy_results(shared_run.results, tmp_path / "results")  # a finished SHARED_RUN (sparsity 0.5)
    [entry] = [p for p in (out / "dense_cache").iterdir() if p.is_dir()]
    if content is None:
        torch.save(torch.zeros(3), entry / file)
    else:
        (entry / file).write_text(content)
    proc = run_cli([*FAST, "sparsity=0.7"], out, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((out / "dense_cache").glob(f"{entry.name}.corrupt-*"))) == 1
    log = next(out.glob("runs/*s0.7*/prune-run.log")).read_text()
    assert f"dense cache entry {entry} is unreadable ({why}); moved it to" in log
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.groupby("target_sparsity").dense_cache.first()) == ["miss", "miss"]

    def dense_rows(sparsity: str) -> pd.DataFrame:
        rows = pd.read_csv(next(out.glob(f"runs/*s{sparsity}*/metrics.csv"))).query("phase == 'dense'")
        return rows.sort_values(["metric", "split"])[["metric", "split", "value"]].reset_index(drop=True)

    assert len(dense_rows("0.5")) and dense_rows("0.5").equals(dense_rows("0.7"))


def test_shared_results_false_then_true_appends_the_rows_once(tmp_path, reference):
    out = tmp_path / "results"
    run_cli([*FAST, "sparsity=0.5", "shared_results=false"], out)
    assert not (out / "runs.csv").exists()
    run_cli(SHARED_RUN, out)
    run_cli(SHARED_RUN, out)
    _same_rows(out, reference)


def test_a_symlinked_shared_table_stops_the_run_before_training(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (tmp_path / "other.csv").write_text("x\n")
    (out / "runs.csv").symlink_to(tmp_path / "other.csv")
    proc = run_cli([*FAST], out, check=False)
    assert proc.returncode == 2 and "is a symlink" in proc.stderr
    assert (tmp_path / "other.csv").read_text() == "x\n"
    assert sorted(p.name for p in out.iterdir()) == ["runs.csv"]  # no run directory: refused before Hydra makes one


def test_a_shared_table_with_a_byte_order_mark_stops_the_run_before_training(finished_results):
    """runs.csv saved again by a spreadsheet ("CSV UTF-8": a BOM before run_id) was "grown" by a second
    run_id column, and the new run's rows had an empty run_id. It is refused before training, and (docs
    audit of 2026-12-03) before the run's directory is made: "nothing was written" left a run directory
    with failed.json, which the results rebuild then listed as a failed run."""
    from conftest import snapshot

    path = finished_results / "runs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    before = snapshot(finished_results)
    proc = run_cli([*FAST, "seed=5"], finished_results, check=False)
    assert proc.returncode == 2 and str(path) in proc.stderr and "python -m prune_cli.results" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before
    proc = run_cli(["-m", *FAST, "seed=5,6"], finished_results, check=False)  # a sweep: refused before any job
    assert proc.returncode == 2 and str(path) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


def _text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _same_multiset(shared: pd.DataFrame, per_run: pd.DataFrame) -> None:
    shared = shared[list(per_run.columns)]
    assert sorted(map(tuple, shared.values.tolist())) == sorted(map(tuple, per_run.values.tolist()))


def test_a_run_directory_copied_into_another_results_dir_is_appended_there_once(finished_results, tmp_path):
    """The SHARED_APPENDED marker meant "appended to some results_dir" and was read as "to this one": a run
    directory copied into another results_dir was "already complete (nothing to do)" and its rows never
    reached that folder's shared tables. Moving a whole results_dir must still not append them twice."""
    import shutil

    (src,) = (finished_results / "runs").iterdir()
    other = tmp_path / "other"
    shutil.copytree(src, other / "runs" / src.name)
    run_cli([*FAST], other)
    run_cli([*FAST], other)  # again: nothing more
    for table, shared in (("metrics.csv", "runs.csv"), ("per_class.csv", "per_class.csv"), ("layers.csv", "layers.csv")):
        _same_multiset(_text(other / shared), _text(src / table))
    moved = tmp_path / "moved"
    finished_results.rename(moved)  # a whole results_dir moved: its tables hold the run already
    proc = run_cli([*FAST], moved)
    said = proc.stdout + proc.stderr  # one consistent statement (it said "not in the shared tables yet: already in ...")
    assert "its rows are in the shared tables (appended when the results_dir was" in said and "yet" not in said, said[-2000:]
    _same_multiset(_text(moved / "runs.csv"), _text(moved / "runs" / src.name / "metrics.csv"))


def _copied_without_its_rows(finished_results: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a results_dir whose one completed run is not in the shared tables there yet (its marker and
    the shared tables removed): the same command appends its rows from its per-run files."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(finished_results, other)
    (run_dir,) = (other / "runs").iterdir()
    (run_dir / "SHARED_APPENDED").unlink()
    for table in other.glob("*.csv"):
        table.unlink()
    return other, run_dir


def _unchanged_but_its_log(before: dict, after: dict, run_dir: Path, results: Path) -> None:
    """Byte-identical but for the run's log, to which every command on the run adds its lines (a no-op too)."""
    log_file = str((run_dir / "prune-run.log").relative_to(results))
    assert {k: v for k, v in after.items() if k != log_file} == {k: v for k, v in before.items() if k != log_file}


@pytest.mark.parametrize("damage", ["zero-byte", "missing"])
def test_a_copied_completed_run_whose_metrics_csv_is_empty_or_missing_is_refused_and_left_as_it_was(
    finished_results, tmp_path, damage
):
    """A copied completed run with a zero-byte metrics.csv was refused (exit 2, "nothing was written") but the
    refusal wrote failed.json into that completed run's directory; one without metrics.csv was appended without
    its runs.csv rows ("appended to 3 shared table(s)", exit 0) and its marker said they were in."""
    from conftest import snapshot

    other, run_dir = _copied_without_its_rows(finished_results, tmp_path)
    if damage == "zero-byte":
        (run_dir / "metrics.csv").write_bytes(b"")
    else:
        (run_dir / "metrics.csv").unlink()
    before = snapshot(other)
    proc = run_cli([*FAST], other, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert str(run_dir / "metrics.csv") in proc.stderr and "nothing was written" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    _unchanged_but_its_log(before, snapshot(other), run_dir, other)  # no failed.json, no marker, no shared table


# ------------------------------------------------------------------------------ signals


def _wait_for_checkpoint(out: Path, proc: ForkedRun) -> None:
    deadline = time.time() + 120
    while not list(out.glob("runs/*/state.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list(out.glob("runs/*/state.pt")), "the run never checkpointed"


def test_a_stopped_sweep_leaves_no_sweep_record(tmp_path):
    """The sweep's outcome record (results_dir/.sweeps/*.jsonl) is read by the sweep's summary at its
    end; a sweep stopped by a signal never got there and left the record behind, which nothing reads.
    The stopped run keeps its checkpoint and the same command resumes the sweep."""
    out = tmp_path / "results"
    proc = _start(["-m", *LONG, "sparsity=0.5,0.6"], out, **{crashpoints.HOLD_ENV: "checkpoint-saved"})
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert not (out / ".sweeps").exists(), list((out / ".sweeps").iterdir())
    assert len(list(out.glob("runs/*/state.pt"))) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2, signal.SIGINT])
def test_a_stop_signal_checkpoints_says_how_to_resume_and_exits_128_plus_signal(tmp_path, sig):
    out = tmp_path / "results"
    proc = _start([*LONG, "sparsity=0.5"], out, **{crashpoints.HOLD_ENV: "checkpoint-saved"})
    _wait_for_checkpoint(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    [run_dir] = out.glob("runs/*")
    lines = [line for line in err.splitlines() if line.startswith("prune-run:")]
    assert lines == [
        f"prune-run: stopped by {signal.Signals(sig).name}; run {run_dir} keeps its last checkpoint "
        "(state.pt); run the same command again to resume it"
    ]
    assert "Traceback" not in err and (run_dir / "state.pt").exists()
    if sig == signal.SIGTERM:  # and it resumes to a complete run with every epoch once
        run_cli([*LONG, "sparsity=0.5"], out)
        history = pd.read_csv(run_dir / "history.csv")
        assert sorted(history[history.phase == "dense"].epoch) == list(range(1, LONG_EPOCHS + 1))
        assert "resuming run" in (run_dir / "prune-run.log").read_text()


def _long_step_after_the_first_checkpoint(monkeypatch):
    """Make the step after the first checkpoint a long one without a safe point (until a second Ctrl-C
    or the hang guard): a child forked from this process runs the patched hold. Returns the real hold."""
    real_hold = crashpoints.hold

    def long_step(name: str) -> None:
        if name != "checkpoint-saved":
            return real_hold(name)
        deadline = time.monotonic() + crashpoints.HOLD_S
        while time.monotonic() < deadline:
            time.sleep(0.01)

    monkeypatch.setattr(crashpoints, "hold", long_step)
    return real_hold


def _second_ctrl_c(proc: ForkedRun) -> str:
    """Send the second SIGINT; the process exits 130 without a traceback. Returns its stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    return err


def test_a_second_ctrl_c_before_the_safe_point_stops_at_once_with_one_line(tmp_path, monkeypatch):
    """A second Ctrl-C while the run is still on its way to the next safe point (a long step) stops it at
    once (prune_cli/core/interrupts.py raises KeyboardInterrupt). It printed a 40-line KeyboardInterrupt
    traceback, no line naming the run, and the process died by SIGINT. Now: the one line of a stop,
    saying it stopped at once, exit 130; the checkpoint stays usable and the same command resumes the
    run to the end. The long step is the hold after the first checkpoint, made to go on past the first
    signal (the child is forked from this process, so it runs the patched hold)."""
    real_hold = _long_step_after_the_first_checkpoint(monkeypatch)
    out = tmp_path / "results"
    proc = _start([*LONG, "sparsity=0.5"], out)
    _wait_for_checkpoint(out, proc)
    [run_dir] = out.glob("runs/*")
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while "received SIGINT" not in (run_dir / "prune-run.log").read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the first Ctrl-C stopped the run, though no safe point was reached"
    err = _second_ctrl_c(proc)
    lines = [line for line in err.splitlines() if line.startswith("prune-run:")]
    assert lines == [
        f"prune-run: stopped at once by a second SIGINT; run {run_dir} keeps its last checkpoint (state.pt); "
        "run the same command again to resume it"
    ], err[-3000:]
    assert (run_dir / "state.pt").exists() and not (run_dir / "COMPLETE").exists()
    monkeypatch.setattr(crashpoints, "hold", real_hold)
    run_cli([*LONG, "sparsity=0.5"], out)
    assert "resuming run" in (run_dir / "prune-run.log").read_text()
    history = pd.read_csv(run_dir / "history.csv")
    assert sorted(history[history.phase == "dense"].epoch) == list(range(1, LONG_EPOCHS + 1))
    assert pd.read_csv(out / "runs.csv").run_id.nunique() == 1
    assert not pd.read_csv(out / "runs.csv").duplicated(["run_id", "phase", "split", "metric"]).any()


def test_a_second_ctrl_c_in_a_sweep_stops_it_at_once_with_lines_not_a_traceback(tmp_path, monkeypatch):
    """The same in a sweep (basic launcher): the sweep's own handler raised KeyboardInterrupt and the
    process ended in a 74-line traceback with no line naming the run (review). Now the run's line, the
    sweep's line, exit 130; the same command resumes the run and runs the other job."""
    real_hold = _long_step_after_the_first_checkpoint(monkeypatch)
    out = tmp_path / "results"
    args = ["-m", *LONG, "sparsity=0.5", "seed=0,1"]
    proc = _start(args, out)
    _wait_for_checkpoint(out, proc)
    [run_dir] = [d for d in out.glob("runs/*") if d.is_dir()]
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while not list(out.glob(".sweeps/*.stop")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the first Ctrl-C stopped the sweep, though no safe point was reached"
    err = _second_ctrl_c(proc)
    assert (
        f"prune-run: stopped at once by a second SIGINT; run {run_dir} keeps its last checkpoint (state.pt); "
        "run the same command again to resume it"
    ) in err, err[-3000:]
    assert "prune-run: sweep stopped at once by a second SIGINT" in err, err[-3000:]
    assert (run_dir / "state.pt").exists() and not (run_dir / "COMPLETE").exists()
    assert not (out / ".sweeps").exists()
    monkeypatch.setattr(crashpoints, "hold", real_hold)
    run_cli(args, out)
    assert "resuming run" in (run_dir / "prune-run.log").read_text()
    runs = pd.read_csv(out / "runs.csv")
    assert runs.run_id.nunique() == 2 and not runs.duplicated(["run_id", "phase", "split", "metric"]).any()


def test_a_ctrl_c_while_waiting_for_another_process_s_run_stops_the_wait_and_says_so(tmp_path):
    """Process B waits on the run's lock while process A runs it: a first Ctrl-C did nothing (the wait
    had no safe point) and a second said B's run "keeps its last checkpoint ... resume it" though A was
    still running it (review). Now the first stops B's wait, with a line saying that another process
    runs the run and goes on; exit 130; A is untouched and completes it."""
    out = tmp_path / "results"
    release = tmp_path / "release"
    a = _start(LONG, out, **{crashpoints.HOLD_ENV: "checkpoint-saved", crashpoints.RELEASE_ENV: str(release)})
    _wait_for_checkpoint(out, a)
    [run_dir] = [d for d in out.glob("runs/*") if d.is_dir()]
    b = _start(LONG, out)
    deadline = time.monotonic() + 60
    while "being run by another process" not in (run_dir / "prune-run.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    b.send_signal(signal.SIGINT)
    _, err = b.communicate(timeout=60)
    assert b.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("prune-run:") and "waiting for it" not in line]
    assert lines == [
        f"prune-run: stopped by SIGINT while waiting for run {run_dir}, which another process is running; that process goes on with it"
    ], err[-3000:]
    assert a.poll() is None  # A was not touched
    release.touch()
    _, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a[-3000:]
    assert (run_dir / "COMPLETE").exists()


def test_a_waiting_process_whose_lock_comes_free_after_a_stop_signal_does_not_take_the_run_over(tmp_path, monkeypatch):
    """A Ctrl-C to the process group reaches both processes: the one running the run stops at its safe
    point and frees the lock, and the waiting one's next try took it and "taking the run over from its
    checkpoint" resumed the run it had been told to stop (review). Now it frees the lock again and stops,
    saying the other stopped too. The lock is a stand-in whose wait ends as the signal arrives."""

    from prune_cli.core import interrupts
    from prune_cli.run import experiment

    events = []

    monkeypatch.setattr(experiment, "FileLock", lock_freed_after_the_signal(events))
    cfg = compose([*FAST], tmp_path / "results")
    try:
        with pytest.raises(interrupts.StoppedWaiting) as stop:
            experiment.run(cfg, tmp_path / "results" / "runs" / "r")
    finally:
        interrupts.reset()
    assert stop.value.other_stopped and stop.value.signum == signal.SIGINT
    assert events == ["acquired", "released"]  # freed again, nothing run under it
    assert not (tmp_path / "results" / "runs" / "r" / "state.pt").exists()


def test_a_checkpoint_temporary_file_left_by_a_kill_is_removed_on_resume(tmp_path):
    """A kill between writing state.pt's temporary file and renaming it left `.state.pt.<pid>.tmp` in the
    run directory for good, one full-size copy per kill (resume audit). The process that takes the run
    over (it holds the run's lock, so no other process writes there) removes such leftovers."""
    results = tmp_path / "results"
    killed = _start([*FAST], results, **{crashpoints.ENV: "checkpoint-write"})
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    [run_dir] = (results / "runs").iterdir()
    assert list(run_dir.glob(".state.pt.*.tmp")), sorted(p.name for p in run_dir.iterdir())
    run_cli([*FAST], results)
    assert (run_dir / "COMPLETE").exists()
    assert not list(run_dir.glob(".*.tmp")), sorted(p.name for p in run_dir.iterdir())


def test_a_checkpoint_holding_other_objects_is_named_without_torch_s_unsafe_advice(tmp_path):
    """A state.pt that is a pickle of other objects (not a checkpoint of prune-run's): the warning
    copied torch's first line, "Weights only load failed. This file can still be loaded, to do so you
    have two options, <ESC>[1mdo those steps only if you trust...": advice to load it unsafely
    (docs/robustness.md: never suggested) and raw ANSI codes in prune-run.log."""
    import argparse

    import torch

    out = tmp_path / "results"
    run_dir = _run_dir(SHARED_RUN, out)
    run_dir.mkdir(parents=True)
    torch.save(argparse.Namespace(x=1), run_dir / "state.pt")
    proc = run_cli(SHARED_RUN, out)
    said = proc.stderr + (run_dir / "prune-run.log").read_text()
    assert list(run_dir.glob("state.pt.corrupt-*")) and (run_dir / "COMPLETE").exists()
    assert "it holds objects other than tensors and plain containers" in said, said[-3000:]
    assert "\x1b[" not in said and "can still be loaded" not in said
