"""Why a saved torch file cannot be read (prune_cli/core/errors.py `unreadable_reason`), for the warning
that sets a checkpoint, a dense-cache entry or a proxy-score cache file aside. torch's safe reader
(weights_only=True) says "Weights only load failed" both for a pickle of other objects and for bytes
that are no pickle at all; the warning called a corrupt file "objects other than tensors" (audit of
data pruning's score cache), and a text file read as torch's legacy format was only "KeyError: 101"."""

from __future__ import annotations

import fractions
import pickle

import pytest
import torch

from prune_cli.core.errors import unreadable_reason


def reason(path) -> str:
    with pytest.raises(Exception) as err:
        torch.load(path, map_location="cpu", weights_only=True)
    return unreadable_reason(err.value)


def test_a_torch_file_of_other_objects_is_named_as_such(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"scores": fractions.Fraction(1, 3)}, path)
    assert reason(path).startswith("it holds objects other than tensors and plain containers")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the plain pickle
@pytest.mark.parametrize("content", [b"garbage\n", b"hello world", pickle.dumps({"scores": [1, 2]}, protocol=4)])
def test_bytes_torch_save_never_writes_are_called_corrupt_or_foreign(tmp_path, content):
    path = tmp_path / "damaged.pt"
    path.write_bytes(content)
    said = reason(path)
    assert said.startswith("it is not a file torch.save writes, or it is damaged"), said
    assert "objects other than tensors" not in said


def test_a_truncated_torch_file_keeps_torch_s_own_words(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"scores": torch.ones(100)}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert reason(cut).startswith("RuntimeError: PytorchStreamReader failed reading zip archive"), reason(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert reason(empty) == "EOFError (no message; the file may be empty or truncated)"


def test_an_error_from_reading_the_loaded_contents_keeps_its_own_words():
    assert unreadable_reason(KeyError("json")) == "KeyError: 'json'"
