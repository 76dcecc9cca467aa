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
