"""Uninterrupted reference runs shared by crash-and-resume tests, to make less work for the same
checks (issue 12, item 5; docs/performance.md#test-suite).

- `ReferenceRuns`: the uninterrupted run of a list of overrides, made once per test module and
  read by every crash-and-resume case of those overrides (the cases differ only in where the
  crash happens, so their reference runs were the same run made several times).
- `crash_and_resume`: tests/helpers.py's crash_and_resume against such a shared reference.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import resume_after_crash, compose


class ReferenceRuns:
    """Uninterrupted runs in `folder`, one per list of overrides, each made the first time it is asked
    for (a module fixture holds one: tests that read it share a worker, `xdist_group`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.made: dict[tuple[str, ...], Path] = {}

    def __call__(self, overrides: list[str]) -> Path:
        """The run directory of the uninterrupted run of `overrides` (read it, do not write into it)."""
        from prune_cli.run.experiment import run

        key = tuple(overrides)
        if key not in self.made:
            results = self.folder / f"reference_{len(self.made)}"
            run(compose(list(overrides), results), results / "run")
            self.made[key] = results / "run"
        return self.made[key]


def crash_and_resume(
    reference: Path, tmp_path: Path, monkeypatch, overrides: list[str], crash_at: tuple[str, int], after_crash=None
) -> Path:
    """tests/helpers.py's crash and resume (`resume_after_crash`) of `overrides`, with a crash right
    after the checkpoint of epoch `crash_at[1]` of training phase `crash_at[0]`; the resumed run's
    directory, to compare with `reference` (the same overrides run uninterrupted, from ReferenceRuns)."""
    assert (reference / "COMPLETE").exists(), reference
    return resume_after_crash(tmp_path, monkeypatch, overrides, crash_at, after_crash, composer=compose)
