"""Atomic writes, durable at the commit points: a node that loses power (or a cluster job whose node
is rebooted) after a rename must find the new file's bytes, not an empty file under the new name. On
ext4, XFS and most network file systems the rename can reach the disk before the data, so a commit
point's data is fsynced before the rename and the directory entry after it (write-fsync-rename-
fsync(dir)), after the files it vouches for were synced (docs/robustness.md, "Durability")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prune_cli.core import atomic_io


@pytest.fixture
def sync_log(monkeypatch):
    """Every fsync and rename, in order, with the path each acted on."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    monkeypatch.setattr(atomic_io.os, "replace", replace)
    return log


def _writers(path: Path, durable: bool):
    import pandas as pd
    import torch

    writers = {
        "text": lambda: atomic_io.atomic_write_text(path, "a,b\n1,2\n", durable=durable),
        "bytes": lambda: atomic_io.atomic_write_bytes(path, b"\x00\x01", durable=durable),
    }
    if not durable:  # the writes no commit point makes: tables rewritten at every phase, checkpoints
        writers["csv"] = lambda: atomic_io.atomic_write_csv(pd.DataFrame({"a": [1]}), path)
        writers["torch"] = lambda: atomic_io.atomic_torch_save({"w": torch.ones(2)}, path)
    return writers


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_a_durable_write_fsyncs_the_data_before_the_rename_and_the_folder_after(tmp_path, sync_log, kind):
    target = tmp_path / "out.file"
    _writers(target, durable=True)[kind]()
    replaces = [i for i, e in enumerate(sync_log) if e[0] == "replace"]
    assert len(replaces) == 1, sync_log
    (at,) = replaces
    tmp = sync_log[at][1]
    assert sync_log[at][2] == str(target.resolve())
    assert ("fsync", tmp) in sync_log[:at], f"the temporary file's data was not fsynced before the rename: {sync_log}"
    assert ("fsync", str(tmp_path.resolve())) in sync_log[at + 1 :], f"the folder was not fsynced after the rename: {sync_log}"
    assert target.read_bytes()  # and the file is whole


@pytest.mark.parametrize("kind", ["text", "bytes", "csv", "torch"])
def test_an_ordinary_write_is_atomic_without_an_fsync(tmp_path, sync_log, kind):
    """An fsync costs milliseconds, and a run rewrites its tables at every recorded phase: those writes
    are made durable once, by `sync_files` before the run's COMPLETE."""
    target = tmp_path / "out.file"
    _writers(target, durable=False)[kind]()
    assert [e[0] for e in sync_log] == ["replace"] and target.read_bytes()


def test_sync_files_fsyncs_every_file_of_the_folder_and_the_folder(tmp_path, sync_log):
    for name in ("metrics.csv", "masks.pt", ".hidden"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    atomic_io.sync_files(tmp_path)
    synced = {e[1] for e in sync_log if e[0] == "fsync"}
    assert synced == {str((tmp_path / n).resolve()) for n in ("metrics.csv", "masks.pt", ".hidden")} | {str(tmp_path.resolve())}


def test_content_is_unchanged(tmp_path):
    import torch

    atomic_io.atomic_write_text(tmp_path / "t.csv", "x\n")
    atomic_io.atomic_write_bytes(tmp_path / "b.bin", b"xyz")
    atomic_io.atomic_torch_save({"w": torch.arange(3)}, tmp_path / "m.pt")
    assert (tmp_path / "t.csv").read_text() == "x\n"
    assert (tmp_path / "b.bin").read_bytes() == b"xyz"
    assert torch.equal(torch.load(tmp_path / "m.pt", weights_only=True)["w"], torch.arange(3))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_that_cannot_be_fsynced_does_not_fail_the_write(tmp_path, monkeypatch):
    """Some file systems refuse fsync on a directory (EINVAL); the data itself was synced, so the
    write stands."""
    real_fsync = os.fsync

    def fsync(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    atomic_io.atomic_write_text(tmp_path / "t.csv", "x\n", durable=True)
    atomic_io.sync_files(tmp_path)
    assert (tmp_path / "t.csv").read_text() == "x\n"


def test_a_run_s_files_are_on_disk_before_its_marker_and_its_complete(tmp_path, sync_log):
    """SHARED_APPENDED (a rebuild takes a run with it as final) and COMPLETE vouch for the run
    directory's files: each is fsynced before the first of them is renamed into place (and COMPLETE
    itself durably), so a node lost right after it never leaves a complete run with an empty
    metrics.csv."""
    from conftest import FAST, run_cli

    results = tmp_path / "results"
    run_cli(FAST, results)
    (run_dir,) = (results / "runs").iterdir()
    complete = str((run_dir / "COMPLETE").resolve())
    # SHARED_APPENDED, the shared tables' marker, already vouches for them: a rebuild takes a run with it
    marker = str((run_dir / "SHARED_APPENDED").resolve())
    at = next(i for i, e in enumerate(sync_log) if e[0] == "replace" and e[2] in (marker, complete))
    before = {e[1] for e in sync_log[:at] if e[0] == "fsync"}
    files = [p for p in run_dir.iterdir() if p.is_file() and p.name not in ("COMPLETE", "SHARED_APPENDED", "state.pt", ".run.lock")]
    assert {"metrics.csv", "per_class.csv", "config.yaml", "masks.pt"} <= {p.name for p in files}
    assert not [p.name for p in files if str(p.resolve()) not in before], "files not on disk before COMPLETE"
    assert sync_log[at][2] == marker, "the marker comes first"
    last = next(i for i, e in enumerate(sync_log) if e[0] == "replace" and e[2] == complete)
    assert any(e[0] == "fsync" and e[1].endswith(".tmp") for e in sync_log[at + 1 : last]), "COMPLETE's data was not fsynced"


def _dead_pid() -> int:
    """The pid of a process that has exited (a child started and waited for)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_leftovers_dead_only_keeps_a_running_process_s_temporary_file(tmp_path):
    """In a folder other processes write in outside the caller's lock, only a dead writer's temporary file may go:
    a running one's is mid-write and its rename would fail."""
    dead, live = _dead_pid(), os.getppid()
    for name in (f".dense.pt.{dead}.tmp", f".dense.pt.{live}.tmp", f".runs.csv.{dead}.tmp", "dense.pt", ".x.tmp"):
        (tmp_path / name).write_text("x")
    removed = atomic_io.remove_leftovers(tmp_path, dead_only=True, names=lambda name: name.endswith(".pt"))
    assert [p.name for p in removed] == [f".dense.pt.{dead}.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".dense.pt.{live}.tmp", f".runs.csv.{dead}.tmp", "dense.pt", ".x.tmp"]
    )


def test_storing_a_dense_cache_entry_removes_the_model_copies_a_killed_store_left(tmp_path):
    """A kill between a write and its rename in `DenseCache.store` left `.dense.pt.<pid>.tmp` (a whole model) in the
    entry for good: store removed only `.partial.pt.*.tmp`. Now a dead process's are removed; a live one's stays."""
    from prune_cli.run.dense_cache import DenseCache

    cache = DenseCache(tmp_path / "cache", "key", {})
    cache.path.mkdir(parents=True)
    dead, live = _dead_pid(), os.getppid()
    for name in (f".dense.pt.{dead}.tmp", f".init.pt.{dead}.tmp", f".trained_with.json.{live}.tmp"):
        (cache.path / name).write_bytes(b"a model")
    cache.store({}, {}, {}, [], "run-x")
    assert sorted(p.name for p in cache.path.glob(".*.tmp")) == [f".trained_with.json.{live}.tmp"]


def test_writing_several_files_leaves_every_one_as_it_was_when_one_write_fails(tmp_path, monkeypatch):
    """`atomic_write_texts` (the rebuild's tables): the second file's write fails (a full disk): the first is not
    renamed into place either, no temporary file stays, and the error names the file being written."""
    import errno

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("old a")
    real_open = open

    def full_at_b(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode and Path(file).name.startswith(".b.csv."):
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return f

    monkeypatch.setattr(atomic_io, "open", full_at_b, raising=False)
    with pytest.raises(OSError) as err:
        atomic_io.atomic_write_texts({a: "new a", b: "new b"}, durable=True)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"] and a.read_text() == "old a"
    monkeypatch.setattr(atomic_io, "open", real_open, raising=False)
    atomic_io.atomic_write_texts({a: "new a", b: "new b"})
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
