"""What the dense cache and the data-pruning score cache hand out is what their key describes, and a
checkpoint resumes only into a model it fits (docs/robustness.md): an entry trained partly by other
code is never stored, an entry or checkpoint that does not match is set aside with a warning naming
why, and the work is done again."""

from __future__ import annotations

import json
import logging

from conftest import FAST
from tests.helpers import resume_after_crash


def _dense_entries(results_dir):
    return [p for p in (results_dir / "dense_cache").iterdir() if p.is_dir() and (p / "COMPLETE").exists()]


def test_a_dense_model_resumed_under_other_code_is_not_stored_in_the_cache(tmp_path, monkeypatch, caplog):
    """Audit A1: a run killed after dense epoch 1 by one version and resumed by another stored a dense
    model partly trained by the other code under the current code's key; later runs loaded it as a hit."""
    import prune_cli.run.results as results

    def other_code(run_dir, results_dir):
        record = json.loads((run_dir / "provenance.json").read_text())
        record["git_sha"], record["prune_cli_source"] = "feedbeef" * 5, "e" * 64
        (run_dir / "provenance.json").write_text(json.dumps(record))
        real = results.provenance
        monkeypatch.setattr(results, "provenance", lambda device: {**real(device), "git_sha": "0123abcd" * 5})

    with caplog.at_level(logging.INFO, logger="prune_cli.run.experiment"):
        run_dir = resume_after_crash(tmp_path, monkeypatch, FAST, ("dense", 1), other_code)
    assert (run_dir / "COMPLETE").exists()
    assert "not stored in the dense cache: part of its training ran under other code (" in caplog.text
    assert "git_sha: " + "feedbeef" * 5 in caplog.text and "prune_cli_source: eeeeeeeeeeee" in caplog.text
    assert "stored in the cache" not in caplog.text
    assert _dense_entries(tmp_path / "crashing") == []


def test_a_dense_model_resumed_after_a_commit_that_left_the_package_alone_is_stored(tmp_path, monkeypatch, caplog):
    """Another git commit or a dirty file outside the package (docs, tests), with the package's source
    digest unchanged, trained nothing differently: the resumed dense model is stored (review)."""
    import prune_cli.run.results as results

    def other_commit(run_dir, results_dir):
        record = json.loads((run_dir / "provenance.json").read_text())
        record["git_sha"], record["git_dirty"] = "feedbeef" * 5, not record.get("git_dirty")
        (run_dir / "provenance.json").write_text(json.dumps(record))
        real = results.provenance
        monkeypatch.setattr(results, "provenance", lambda device: {**real(device), "git_sha": "0123abcd" * 5})

    with caplog.at_level(logging.INFO, logger="prune_cli.run.experiment"):
        resume_after_crash(tmp_path, monkeypatch, FAST, ("dense", 1), other_commit)
    assert "dense model trained and stored in the cache" in caplog.text, caplog.text
    assert len(_dense_entries(tmp_path / "crashing")) == 1


def test_a_dense_model_resumed_by_the_same_code_is_stored(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="prune_cli.run.experiment"):
        resume_after_crash(tmp_path, monkeypatch, FAST, ("dense", 1))
    assert "dense model trained and stored in the cache" in caplog.text
    assert len(_dense_entries(tmp_path / "crashing")) == 1


def _runs(results_dir):
    import pandas as pd

    return pd.read_csv(results_dir / "runs.csv")


def test_a_dense_cache_entry_of_another_config_under_a_key_is_set_aside_and_retrained(tmp_path):
    """Audit A4: seed 1's entry copied over seed 0's key was loaded as a hit (seed 1's weights in a seed-0
    run, no warning). The entry's config.json is compared with the key's description."""
    import shutil

    from conftest import run_cli

    out = tmp_path / "results"
    run_cli(["-m", *FAST, "seed=0,1"], out)
    entries = {json.loads((p / "config.json").read_text())["seed"]: p for p in _dense_entries(out)}
    shutil.rmtree(entries[0])
    shutil.copytree(entries[1], entries[0])
    run_cli([*FAST, "seed=0", "sparsity=0.5"], out)
    log = next(out.glob("runs/*s0.5-seed0*/prune-run.log")).read_text()
    assert f"dense cache entry {entries[0]} holds another model than its key describes (seed: 1 -> 0)" in log, log[-3000:]
    assert list((out / "dense_cache").glob(f"{entries[0].name}.corrupt-*"))
    assert set(_runs(out).query("target_sparsity == 0.5").dense_cache) == {"miss"}
    assert json.loads((entries[0] / "config.json").read_text())["seed"] == 0  # trained again and stored


def _scores_cache(tmp_path, *extra):
    """`_disk_cache(...)("el2n", ...)` of a synthetic el2n config with `extra` overrides: its compute calls
    are counted in `calls`, each returning a tensor of 5 scores."""
    import torch

    from prune_cli.run.data_selection import _disk_cache
    from tests.helpers import composed

    calls = []

    def compute():
        calls.append(1)
        return torch.full((5,), float(len(calls)))

    cfg = composed(["dataset=synthetic", "data_pruning=el2n", f"dense_cache.dir={tmp_path}", *extra])
    return (lambda **kw: _disk_cache(cfg, torch.device("cpu"))("el2n", {"proxies": 1, "proxy_epochs": 1}, compute, **kw)), calls


def _score_files(tmp_path):
    return sorted((tmp_path / "data_pruning").glob("el2n-*.pt"))


def test_a_score_file_of_another_config_under_its_name_is_set_aside_and_computed_again(tmp_path, caplog):
    """Audit A4: seed 1's EL2N scores copied under seed 0's file name were used silently (the file held
    no key). The file now holds the description its name hashes and it is checked on load."""
    import shutil

    import torch

    seed0, calls0 = _scores_cache(tmp_path, "seed=0")
    seed0()
    [file0] = _score_files(tmp_path)
    seed1, _ = _scores_cache(tmp_path, "seed=1")
    seed1()
    [file1] = [f for f in _score_files(tmp_path) if f != file0]
    shutil.copyfile(file1, file0)
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        seed0()
    assert len(calls0) == 2  # computed again
    assert f"score cache file {file0} was computed for another configuration (seed: 1 -> 0)" in caplog.text, caplog.text
    assert len(list(file0.parent.glob(f"{file0.name}.corrupt-*"))) == 1
    assert seed0().tolist() == [2.0] * 5 and len(calls0) == 2  # the new file serves the next call
    torch.save(torch.zeros(5), file0)  # a file of an older prune-cli: scores without their key
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        seed0()
    assert (
        len(calls0) == 3 and "holds no key (an older prune-cli's file), so what it was computed for cannot be checked" in caplog.text
    )


def _widened(state: dict) -> dict:
    """`state` with its first weight one unit wider: the model of another architecture (a wider MLP)."""
    import torch

    name = next(k for k in state if k.endswith("weight"))
    return {**state, name: torch.zeros(state[name].shape[0] + 1, *state[name].shape[1:])}


def test_a_dense_cache_entry_of_another_architecture_is_set_aside_and_retrained(tmp_path, shared_run):
    """Audit B1: an entry whose model does not fit the run's (size mismatch for net.1.weight) stopped every
    run of its config with an internal-error traceback, exit 1, the entry left in place."""
    import torch

    from conftest import copy_results, run_cli

    out = copy_results(shared_run.results, tmp_path / "results")
    [entry] = _dense_entries(out)
    for name in ("dense.pt", "init.pt"):
        torch.save(_widened(torch.load(entry / name, weights_only=True)), entry / name)
    run_cli([*FAST, "sparsity=0.7"], out)
    log = next(out.glob("runs/*s0.7*/prune-run.log")).read_text()
    assert f"dense cache entry {entry} holds a model that does not fit this code's model (" in log, log[-3000:]
    assert "is [17, " in log and "[16, " in log
    assert list((out / "dense_cache").glob(f"{entry.name}.corrupt-*"))
    assert set(_runs(out).query("target_sparsity == 0.7").dense_cache) == {"miss"}
    assert torch.load(entry / "dense.pt", weights_only=True).keys()  # trained again and stored


def test_a_checkpoint_whose_model_does_not_fit_this_code_s_is_set_aside_and_the_run_redone(tmp_path, monkeypatch, caplog):
    """Audit B2: a state.pt written by a version whose MLP was one unit wider stopped the resume with a
    size-mismatch traceback (exit 1), state.pt left in place: checkpoint.load caught only unreadable files."""
    import torch

    def wider(run_dir, results_dir):
        state = torch.load(run_dir / "state.pt", weights_only=True)
        state["model"], state["init_state"] = _widened(state["model"]), _widened(state["init_state"])
        torch.save(state, run_dir / "state.pt")

    with caplog.at_level(logging.WARNING, logger="prune_cli.run.checkpoint"):
        run_dir = resume_after_crash(tmp_path, monkeypatch, [*FAST, "dense_cache.enabled=false"], ("dense", 1), wider)
    assert (run_dir / "COMPLETE").exists() and list(run_dir.glob("state.pt.corrupt-*"))
    assert (
        f"checkpoint {run_dir / 'state.pt'} does not fit this code's model (net.1.weight is [17, 2] in the checkpoint" in caplog.text
    )
    assert "starting the run from the beginning" in caplog.text


def test_a_score_file_of_the_wrong_length_is_set_aside_and_computed_again(tmp_path, caplog):
    """Audit B3: a score file of another length under a rule's name (another val_fraction's) stopped the run
    with `RuntimeError: weights should be 1-d and have the same length as input` in class_means. Another
    configuration's file is caught by its key; one of the right key but the wrong shape by its shape."""
    import torch

    from prune_cli.run.data_selection import select_training_data
    from tests.helpers import composed, counting_model_builder, proxy_scoring_splits

    build, built = counting_model_builder()
    data = proxy_scoring_splits()
    overrides = ["model=mlp", "model.widths=[8]", "data_pruning=el2n", "data_pruning.proxies=1", "data_pruning.proxy_epochs=1"]
    overrides += ["train.batch_size=20", f"results_dir={tmp_path}"]
    first = select_training_data(composed(*overrides, "data_pruning.keep=0.5"), data, torch.device("cpu"), build, tmp_path)
    [path] = (tmp_path / "dense_cache" / "data_pruning").glob("el2n-*.pt")
    stored = torch.load(path, weights_only=True)
    torch.save({**stored, "scores": stored["scores"][:-3]}, path)
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        again = select_training_data(composed(*overrides, "data_pruning.keep=0.5"), data, torch.device("cpu"), build, tmp_path)
    n = len(data.train_y)
    assert f"score cache file {path} holds scores of shape [{n - 3}], [{n}] expected" in caplog.text, caplog.text
    assert len(built) == 2 and torch.equal(again.train_x, first.train_x)  # computed again: the same selection
    assert list(path.parent.glob(f"{path.name}.corrupt-*"))


def test_an_empty_score_file_is_named_with_its_reason_and_set_aside(tmp_path, caplog):
    """Audit C3: a zero-byte score file was reported as "unreadable cache entry ... (); computing again"
    (torch's error has no text) and overwritten. It is moved aside like a dense-cache entry, the warning
    naming the error's type."""
    cache, calls = _scores_cache(tmp_path)
    cache()
    [path] = _score_files(tmp_path)
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        cache()
    assert len(calls) == 2
    assert f"score cache file {path} is unreadable (" in caplog.text and "()" not in caplog.text, caplog.text
    [aside] = path.parent.glob(f"{path.name}.corrupt-*")
    assert aside.read_bytes() == b""


def _finished_run_again(shared_run, tmp_path, change):
    """A copy of the finished SHARED_RUN, `change(run_dir)` applied, then its command run again: its stderr."""
    from conftest import SHARED_RUN, copy_results, run_cli

    out = copy_results(shared_run.results, tmp_path / "results")
    [run_dir] = (out / "runs").iterdir()
    change(run_dir)
    return run_cli(SHARED_RUN, out).stderr, run_dir


def test_a_finished_run_without_provenance_is_compared_by_its_csv_columns(tmp_path, shared_run):
    """Audit C1: with provenance.json missing or corrupt, code_differences returned [] and a rerun said only
    "already complete", whatever code made the run. The per-run CSVs' git_sha and versions are read instead,
    and a line says the provenance could not be read."""
    import pandas as pd

    def other_commit_no_provenance(run_dir):
        (run_dir / "provenance.json").write_text("{torn")
        metrics = pd.read_csv(run_dir / "metrics.csv", dtype=str, keep_default_na=False)
        metrics["git_sha"] = "feedbeef" * 5
        metrics.to_csv(run_dir / "metrics.csv", index=False)

    said, run_dir = _finished_run_again(shared_run, tmp_path, other_commit_no_provenance)
    assert "is complete and kept, but it was made by other code (git_sha: " + "feedbeef" * 5 + " -> " in said, said
    assert f"{run_dir / 'provenance.json'} is unreadable" in said and "metrics.csv" in said


def test_a_finished_run_without_any_provenance_says_its_code_cannot_be_compared(tmp_path, shared_run):
    def nothing_left(run_dir):
        """No provenance.json, and per-run tables without the code's columns (a run directory whose
        tables were cut down by hand or by another tool; every completed run keeps its metrics.csv)."""
        import pandas as pd

        (run_dir / "provenance.json").unlink()
        for table in run_dir.glob("*.csv"):
            rows = pd.read_csv(table, dtype=str, keep_default_na=False)
            rows.drop(columns=[c for c in ("git_sha", "prune_cli_version", "torch_version") if c in rows.columns]).to_csv(
                table, index=False
            )

    said, run_dir = _finished_run_again(shared_run, tmp_path, nothing_left)
    assert f"{run_dir / 'provenance.json'} is missing" in said and "cannot be compared" in said, said


def test_a_score_file_computed_from_data_files_since_replaced_is_set_aside_and_computed_again(tmp_path, caplog):
    """Data audit of 2026-12-04: the score file's key holds dataset.root's folder, not its files, so EL2N scores of
    MNIST files since replaced in place were used for the new files. The file records its data files' digests:
    other bytes compute the scores again; the same bytes with a new modification time (a `cp` without -p) do not."""
    import os

    import numpy as np
    from test_data import _write_mnist

    raw = tmp_path / "data" / "MNIST" / "raw"

    def write(seed):
        rng = np.random.default_rng(seed)
        train_x, test_x = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
        _write_mnist(raw, train_x, np.arange(30) % 10, test_x, np.arange(10) % 10)

    write(0)
    scores, calls = _scores_cache(tmp_path, "dataset=mnist", f"dataset.root={tmp_path / 'data'}")
    scores()
    assert scores().tolist() == [1.0] * 5 and len(calls) == 1  # read back while the files are unchanged
    os.utime(raw / "train-labels-idx1-ubyte", ns=(7, 7))  # the same bytes under another time
    assert scores().tolist() == [1.0] * 5 and len(calls) == 1
    write(1)  # other pixels, same labels: only the image files differ
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        assert scores().tolist() == [2.0] * 5
    assert len(calls) == 2
    [file] = _score_files(tmp_path)
    assert f"score cache file {file} was computed from other data files (MNIST/raw/t10k-images-idx3-ubyte holds other" in caplog.text
    assert len(list(file.parent.glob(f"{file.name}.corrupt-*"))) == 1
    assert scores().tolist() == [2.0] * 5 and len(calls) == 2


def test_a_score_file_whose_record_cannot_be_refreshed_is_still_used(tmp_path, monkeypatch, caplog):
    """Review of the refresh: the same bytes under a new time rewrite the score file, and on a read-only file or a
    full disk that write's OSError failed a run the file would have served. The refresh is best effort now."""
    import os

    import numpy as np
    from test_data import _write_mnist

    import prune_cli.run.data_selection as data_selection

    raw = tmp_path / "data" / "MNIST" / "raw"
    rng = np.random.default_rng(0)
    _write_mnist(raw, rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10, rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)
    scores, calls = _scores_cache(tmp_path, "dataset=mnist", f"dataset.root={tmp_path / 'data'}")
    scores()
    os.utime(raw / "train-labels-idx1-ubyte", ns=(7, 7))  # the same bytes under another time

    def read_only(obj, path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data_selection, "atomic_torch_save", read_only)
    with caplog.at_level(logging.WARNING, logger="prune_cli.run.data_selection"):
        assert scores().tolist() == [1.0] * 5 and len(calls) == 1
    [file] = _score_files(tmp_path)
    assert f"could not refresh {file} with the data files' new modification times" in caplog.text
