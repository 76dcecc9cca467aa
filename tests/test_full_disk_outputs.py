"""A full disk under the files a run or a report writes besides its own tables (docs/robustness.md, "a
full disk"): the dense cache's partial hand-over, the MNIST-1D cache, prune-report's output. Each left a
temporary file behind or ended in tracebacks; the disk's refusal must be one line (or, for a cache that
is only a convenience, a warning), with no temporary file left. The errors are raised as a real full
disk raises them: `OSError(ENOSPC)` naming no file."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from prune_cli.run import dense_cache


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # no filename, as a real full disk says it


def test_a_partial_hand_over_that_does_not_fit_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The dense-cache folder on another file system than the run's: the hand-over copies the checkpoint;
    on a full disk the half-written copy (`.partial.pt.<pid>.tmp`) stayed, holding the disk's last free
    space, so the entry's own `init.pt` then failed to fit and a run that would have fit stopped."""
    state = tmp_path / "run" / "state.pt"
    state.parent.mkdir()
    state.write_bytes(b"x" * 4096)
    entry = dense_cache.DenseCache(tmp_path / "dc", "key", {})

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src), None, str(dst))

    def half_copy(src, dst):
        Path(dst).write_bytes(b"x" * 1024)
        _no_space()

    monkeypatch.setattr(os, "link", cross_device)
    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError) as err:
        entry.keep_partial(state)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in entry.path.iterdir()) == []  # no .partial.pt.<pid>.tmp, no partial.pt


class _FillsUp:
    """A file on a disk with `room` bytes free: the write that goes past them fails, as a full disk's does."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            self._f.write(data[: self._room])
            self._room = 0
            _no_space()
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _disk_full_under(folder: Path, monkeypatch, room: int = 512, named: str = "") -> None:
    """Files opened for writing under `folder` (by `open` or by zipfile's `io.open`) hold `room` bytes;
    with `named`, only those whose name holds it (an atomic write's `.<name>.<pid>.tmp` too)."""
    import builtins
    import io

    real_open = io.open

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(folder.resolve())
        inside = inside and named in Path(file).name
        return _FillsUp(f, room) if inside and any(m in mode for m in "wax") else f

    monkeypatch.setattr(io, "open", full_open)
    monkeypatch.setattr(builtins, "open", full_open)


def test_an_mnist1d_cache_that_does_not_fit_is_a_warning_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    """The MNIST-1D arrays are generated in memory; caching them is only a convenience for the next run.
    On a full disk the cache's write ended the run as a bug (`internal error`, three chained tracebacks)
    and left its `<name>.<pid>.tmp.npz` for good. Now one warning names the file and why, no temporary
    file is left, the run goes on with the same arrays, and the next run with room caches them."""
    import torch

    from omegaconf import OmegaConf

    from prune_cli.data import DATASETS
    from prune_cli.data.mnist1d import Mnist1dConfig

    cfg = OmegaConf.merge(OmegaConf.structured(Mnist1dConfig), dict(name="mnist1d", num_samples=200, cache_dir=str(tmp_path / "mc")))
    cache = tmp_path / "mc" / "mnist1d_n200_seed42.npz"
    with monkeypatch.context() as full:
        _disk_full_under(tmp_path / "mc", full)
        with caplog.at_level("WARNING"):
            data = DATASETS.get("mnist1d")(cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and str(cache) in warned[0] and "No space left on device" in warned[0], warned
    assert sorted(p.name for p in cache.parent.iterdir() if not p.name.endswith(".lock")) == []  # no temporary file
    again = DATASETS.get("mnist1d")(cfg)  # room again: generated and cached
    assert cache.is_file()
    assert torch.equal(data.train_x, again.train_x) and torch.equal(data.test_y, again.test_y)


def _results(tmp_path: Path) -> Path:
    from test_report_experiments import write_run

    root = tmp_path / "res"
    for seed in range(2):
        write_run(root, seed, "magnitude", 0.5, 10, 0.8)
        write_run(root, seed, "random", 0.5, 10, 0.6)
    return root


def test_a_report_on_a_full_disk_is_one_line_exit_2_and_the_earlier_report_stays(tmp_path, monkeypatch, capsys):
    """prune-report whose folder has no room: before, `OSError: [Errno 28]` tracebacks and exit 1 (only
    ReportInputError was caught). Now one line naming the file it could not write, exit 2, as prune-run
    says a full disk; the staging folder is removed and the earlier report stays byte for byte."""
    from prune_cli.report import build_report, main

    root, out = _results(tmp_path), tmp_path / "out"
    build_report(root, out, plots=False)
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    with monkeypatch.context() as full:
        _disk_full_under(out, full, room=0)
        with pytest.raises(SystemExit) as stop:
            main([str(root), "--out", str(out), "--no-plots"])
    assert stop.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"prune-report: error: cannot use {out}/"), said
    assert ".prune-report-" not in said[0], said  # the file as it would be in the report, not in the removed staging folder
    assert said[0].endswith(": No space left on device"), said
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # no staging folder, the earlier report as it was


@pytest.mark.parametrize("name", ["standards.txt", "summary.md", "accuracy_vs_compression.png"])
def test_each_report_file_that_does_not_fit_is_an_error_naming_it(tmp_path, monkeypatch, name):
    """standards.txt and summary.md were written with Path.write_text, the figures by savefig: on a full
    disk their errors named no file, so the report could not say which file did not fit."""
    from prune_cli.report import build_report

    root, out = _results(tmp_path), tmp_path / "out"
    _disk_full_under(out, monkeypatch, room=0, named=name)
    with pytest.raises(OSError) as err:
        build_report(root, out, plots=name.endswith(".png"), parallel=False)
    assert err.value.errno == errno.ENOSPC and err.value.filename and Path(err.value.filename).name == name, err.value
    assert not out.exists()  # the staging folder and the folder the report made are removed


def test_a_report_on_a_really_full_disk_is_one_line_exit_2(tmp_path, capsys):
    """End to end on a 16 KiB tmpfs (where this machine lets the tests mount one): the tables do not fit."""
    import subprocess

    from prune_cli.report import main

    root, disk = _results(tmp_path), tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(SystemExit) as stop:
            main([str(root), "--no-plots", "--out", str(disk / "rep")])
        left = sorted(disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    said = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(said) == 1, said
    assert said[0].startswith(f"prune-report: error: cannot use {disk / 'rep'}/") and said[0].endswith(": No space left on device"), (
        said
    )
    assert left == []  # neither the staging folder nor the folder the report made


def test_an_mnist1d_cache_folder_that_cannot_be_made_is_the_same_warning(tmp_path, monkeypatch, caplog):
    """On a full disk a new folder needs a block too: the cache folder's mkdir failed outside the warning's
    reach and stopped the run (review finding)."""
    from omegaconf import OmegaConf

    from prune_cli.data import DATASETS
    from prune_cli.data.mnist1d import Mnist1dConfig

    folder = tmp_path / "mc"
    cfg = OmegaConf.merge(OmegaConf.structured(Mnist1dConfig), dict(name="mnist1d", num_samples=200, cache_dir=str(folder)))
    real_mkdir = Path.mkdir

    def no_room(self, *args, **kwargs):
        if self == folder:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_room)
    with caplog.at_level("WARNING"):
        data = DATASETS.get("mnist1d")(cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("MNIST-1D is not cached" in w and "No space left on device" in w for w in warned), warned
    assert len(data.train_x) > 0 and not folder.exists()
