"""A run resumed by another version of the code, of torch, or on another device says so
(README "Resume", docs/robustness.md): a requeued cluster job after a `git pull` must not mix two
versions' numbers silently. The rows keep the provenance of the process that started the run;
provenance.json lists every process that resumed it, and a warning names each field that differs."""

from __future__ import annotations

import json
import logging

import pandas as pd

from conftest import FAST
from tests.helpers import resume_after_crash

OVERRIDES = [*FAST, "dense_cache.enabled=false"]


def _resume(tmp_path, monkeypatch, caplog, changed: dict):
    """Crash after the first dense epoch, then resume in an environment whose provenance differs by
    `changed`; the run directory."""
    import prune_cli.run.results as results

    def after_crash(run_dir, results_dir):
        started = json.loads((run_dir / "provenance.json").read_text())
        real = results.provenance
        monkeypatch.setattr(results, "provenance", lambda device: {**real(device), **changed})
        after_crash.started = started

    with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
        run_dir = resume_after_crash(tmp_path, monkeypatch, OVERRIDES, ("dense", 1), after_crash)
    return run_dir, after_crash.started


def test_a_run_resumed_by_other_code_warns_and_records_both(tmp_path, monkeypatch, caplog):
    run_dir, started = _resume(tmp_path, monkeypatch, caplog, {"git_sha": "feedbeef" * 5, "torch_version": "9.9.9"})
    warning = caplog.text
    assert f"git_sha: {started['git_sha']} -> {'feedbeef' * 5}" in warning
    assert f"torch_version: {started['torch_version']} -> 9.9.9" in warning
    assert "prune_cli_version" not in warning  # only the fields that differ
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["git_sha"] == started["git_sha"] and record["torch_version"] == started["torch_version"]
    (resume,) = record["resumed"]
    assert resume["git_sha"] == "feedbeef" * 5 and resume["torch_version"] == "9.9.9"
    assert resume["at_step"] == "dense"
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert set(rows.git_sha) == {started["git_sha"]}  # the rows keep the starting process's provenance


def test_an_uninterrupted_run_has_no_resumes(shared_run):
    """The same environment resuming is checked in tests/test_schedules.py's real kill."""
    assert json.loads((shared_run.run_dir / "provenance.json").read_text())["resumed"] == []


def test_a_run_resumed_with_another_torch_thread_count_says_so(tmp_path, monkeypatch, caplog):
    """On a CPU the number of torch intra-op threads changes how sums are split, so the last digits of a
    resumed run's losses differed from an uninterrupted run's (resume-audit: train_loss
    1.733663909483956 vs 1.7336640451364773 after `threads=1` -> `threads=2`) without a word, although
    `threads` is left out of the run id as a key that only changes speed. The thread count is recorded
    in provenance.json and a resume under another one is warned about like another torch version."""
    import torch

    before = torch.get_num_threads()

    def more_threads(run_dir, results_dir):
        torch.set_num_threads(before + 1)

    try:
        with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
            run_dir = resume_after_crash(tmp_path, monkeypatch, OVERRIDES, ("dense", 1), more_threads)
    finally:
        torch.set_num_threads(before)
    assert f"torch_threads: {before} -> {before + 1}" in caplog.text
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["torch_threads"] == before and record["resumed"][0]["torch_threads"] == before + 1


def test_a_run_resumed_by_edited_code_in_a_dirty_tree_says_so(tmp_path, monkeypatch, caplog):
    """The resume audit: in a working tree already dirty when the run started, an edit (the fine-tuning
    LR halved) left git_sha and git_dirty as they were, so the resumed run mixed two versions' numbers
    (finetuned test loss 0.0536 vs 0.0412 uninterrupted) without a word. provenance.json records the
    package's source digest (the dense cache's key already holds it) and the plugin modules' digests,
    and a resume under other ones is warned about like another commit."""
    import prune_cli.run.dense_cache as dense_cache

    def edited(run_dir, results_dir):
        monkeypatch.setattr(dense_cache, "package_digest", lambda: "e" * 64)

    with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
        run_dir = resume_after_crash(tmp_path, monkeypatch, OVERRIDES, ("dense", 1), edited)
    record = json.loads((run_dir / "provenance.json").read_text())
    started = record["prune_cli_source"]
    assert len(started) == 64 and started != "e" * 64 and record["plugin_sources"] == {}
    assert record["resumed"][0]["prune_cli_source"] == "e" * 64
    assert f"prune_cli_source: {started[:12]} -> {'e' * 12}" in caplog.text


def _git_repo(folder, *files: str) -> str:
    """A git repository at `folder` with `files` (empty) committed; its HEAD's sha, as git itself reports it."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_a_package_installed_inside_another_git_repository_does_not_take_its_commit(tmp_path, monkeypatch):
    """Audit of 2026-12-04: installed (not editable) into myproject/.venv/.../site-packages, provenance.json and every
    CSV row held myproject's commit and dirty flag (git looks upwards from the package). Only the package's own
    checkout (its parent the work tree's top level) is asked; elsewhere the commit is unknown."""
    import torch

    import prune_cli
    from prune_cli.run.results import provenance

    site = tmp_path / "myproject" / ".venv" / "lib" / "site-packages"
    _git_repo(tmp_path / "myproject", "README", ".venv/lib/site-packages/prune_cli/__init__.py")
    (tmp_path / "myproject" / "README").write_text("dirty")  # the enclosing project is dirty too
    monkeypatch.setattr(prune_cli, "__file__", str(site / "prune_cli" / "__init__.py"))
    record = provenance(torch.device("cpu"))
    assert (record["git_sha"], record["git_dirty"]) == ("unknown", None)
    # the package's own checkout: its commit, clean
    project = '[project]\nname = "prune-cli"\n'
    (tmp_path / "checkout").mkdir()
    (tmp_path / "checkout" / "pyproject.toml").write_text(project)
    sha = _git_repo(tmp_path / "checkout", "prune_cli/__init__.py")  # commits the pyproject.toml too
    monkeypatch.setattr(prune_cli, "__file__", str(tmp_path / "checkout" / "prune_cli" / "__init__.py"))
    record = provenance(torch.device("cpu"))
    assert (record["git_sha"], record["git_dirty"]) == (sha, False)
    # a checkout inside a larger repository (a monorepo): that repository's commit holds this code
    mono = tmp_path / "mono"
    (mono / "tools" / "prune-cli").mkdir(parents=True)
    (mono / "tools" / "prune-cli" / "pyproject.toml").write_text(project)
    mono_sha = _git_repo(mono, "tools/prune-cli/prune_cli/__init__.py")
    monkeypatch.setattr(prune_cli, "__file__", str(mono / "tools" / "prune-cli" / "prune_cli" / "__init__.py"))
    record = provenance(torch.device("cpu"))
    assert (record["git_sha"], record["git_dirty"]) == (mono_sha, False)
    # a folder whose pyproject.toml names another project (site-packages never has one; a vendored copy might)
    (mono / "pyproject.toml").write_text('[project]\nname = "myproject"\n')
    monkeypatch.setattr(prune_cli, "__file__", str(mono / "prune_cli" / "__init__.py"))
    assert provenance(torch.device("cpu"))["git_sha"] == "unknown"
