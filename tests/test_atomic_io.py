"""Atomic writes must also be durable: a node that loses power (or a cluster job whose node is
rebooted) after a rename must find the new file's bytes, not an empty file under the new name.
On ext4, XFS and most network file systems the rename can reach the disk before the data, so the
data has to be fsynced before the rename and the directory entry after it (the classic
write-fsync-rename-fsync(dir) sequence; see docs/robustness.md, "Durability")."""

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


def _writers(path: Path):
    import pandas as pd
    import torch

    return {
        "text": lambda: atomic_io.atomic_write_text(path, "a,b\n1,2\n"),
        "bytes": lambda: atomic_io.atomic_write_bytes(path, b"\x00\x01"),
        "csv": lambda: atomic_io.atomic_write_csv(pd.DataFrame({"a": [1]}), path),
        "torch": lambda: atomic_io.atomic_torch_save({"w": torch.ones(2)}, path),
    }


@pytest.mark.parametrize("kind", ["text", "bytes", "csv", "torch"])
def test_data_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, sync_log, kind):
    target = tmp_path / "out.file"
    _writers(target)[kind]()
    replaces = [i for i, e in enumerate(sync_log) if e[0] == "replace"]
    assert len(replaces) == 1, sync_log
    (at,) = replaces
    tmp = sync_log[at][1]
    assert sync_log[at][2] == str(target.resolve())
    assert ("fsync", tmp) in sync_log[:at], f"the temporary file's data was not fsynced before the rename: {sync_log}"
    assert ("fsync", str(tmp_path.resolve())) in sync_log[at + 1 :], f"the folder was not fsynced after the rename: {sync_log}"
    assert target.read_bytes()  # and the file is whole


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
    atomic_io.atomic_write_text(tmp_path / "t.csv", "x\n")
    assert (tmp_path / "t.csv").read_text() == "x\n"
