"""A relative `dataset.root` (the image datasets' default is `data`) names another folder from another
working directory. The run id and the dense-cache key hashed only its spelling, so a run made from a second
folder into the same results_dir was "already complete" with the first folder's numbers, and another
method's run there loaded a dense model trained on the first folder's files (README, "Every run gets its
own directory": the same experiment with its data in another folder gets another run id)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from cli_runner import run_in_process
from conftest import snapshot
from test_data import _write_mnist

ARGS = [
    "dataset=mnist",
    "dataset.root=data",
    "model=mlp",
    "model.widths=[8]",
    "train.epochs=1",
    "finetune.epochs=1",
    "train.batch_size=25",
    "finetune.batch_size=25",
    "threads=1",
]
ENV = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _working_dir(tmp_path: Path, name: str, seed: int) -> Path:
    """A working directory whose ./data holds tiny MNIST files of its own (other pixels and labels per seed)."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / name
    train_y, test_y = rng.permutation(np.arange(100) % 10), rng.permutation(np.arange(20) % 10)
    _write_mnist(
        folder / "data" / "MNIST" / "raw", rng.integers(0, 256, (100, 28, 28)), train_y, rng.integers(0, 256, (20, 28, 28)), test_y
    )
    return folder


def _run(cwd: Path, results: Path, *extra: str):
    flags, extra = [e for e in extra if e.startswith("-")], [e for e in extra if not e.startswith("-")]
    given = {e.split("=", 1)[0] for e in extra}
    args = [*flags, *(a for a in ARGS if a.split("=", 1)[0] not in given), *extra, f"results_dir={results}"]
    return run_in_process(args, cwd=cwd, env=ENV)


def _dense_rows(results: Path) -> pd.DataFrame:
    (run,) = [p for p in (results / "runs").iterdir() if (p / "COMPLETE").is_file() and "s0.8" in p.name]
    rows = pd.read_csv(run / "metrics.csv")
    return rows[rows["phase"] == "dense"][["metric", "split", "value"]].reset_index(drop=True)


def test_a_run_made_from_another_working_directory_is_not_taken_for_this_one(tmp_path):
    first, second, shared = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1), tmp_path / "shared"
    done = _run(first, shared)
    assert done.returncode == 0, done.stderr
    assert "already complete" in _run(first, shared).stderr + _run(first, shared).stdout  # the same folder: the same run
    before = snapshot(shared)
    refused = _run(second, shared)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    message = " ".join(refused.stderr.split())
    assert "dataset.root" in message and str(first / "data") in message and str(second / "data") in message, message
    assert snapshot(shared) == before


def test_another_method_s_run_from_another_working_directory_trains_its_own_dense_model(tmp_path):
    first, second, shared = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1), tmp_path / "shared"
    assert _run(first, shared, "sparsity=0.5").returncode == 0
    assert _run(second, shared, "sparsity=0.8").returncode == 0
    alone = tmp_path / "alone"
    assert _run(second, alone, "sparsity=0.8").returncode == 0
    # the dense model of second's run is the one trained on second's files, as in a results folder of its own
    pd.testing.assert_frame_equal(_dense_rows(shared), _dense_rows(alone))


def test_the_data_memo_reads_a_relative_root_from_each_working_directory(tmp_path, monkeypatch):
    """The per-process memo (a sweep's jobs share one load) was keyed on the spelling: a second working
    directory's `root=data` got the first one's images."""
    from omegaconf import OmegaConf

    from prune_cli.data import cache
    from prune_cli.data.vision import VisionConfig

    node = OmegaConf.merge(OmegaConf.structured(VisionConfig), {"name": "mnist", "root": "data"})
    loaded = {}
    for name, seed in (("A", 0), ("B", 1)):
        monkeypatch.chdir(_working_dir(tmp_path, name, seed))
        loaded[name] = cache.load_raw(node)
    monkeypatch.chdir(tmp_path / "B")
    expected = cache.DATASETS.get("mnist")(node)  # read from B's files, no memo
    assert loaded["B"].train_y.tolist() == expected.train_y.tolist() != loaded["A"].train_y.tolist()
    assert np.array_equal(loaded["B"].train_x.numpy(), expected.train_x.numpy())


def test_one_folder_reached_by_another_relative_path_or_moved_with_its_project_is_the_same_data(tmp_path):
    """`../data` from two sibling folders is one folder (it was refused, and trained two dense models); a project
    moved with its data (`mv`: the folder keeps its inode) finishes its runs from the new place."""
    project, shared = tmp_path / "P", tmp_path / "shared"
    _working_dir(tmp_path, "P", 0)
    for sub in ("b", "c"):
        (project / sub).mkdir()
    first = _run(project / "b", shared, "dataset.root=../data")
    assert first.returncode == 0, first.stderr
    again = _run(project / "c", shared, "dataset.root=../data")
    assert again.returncode == 0 and "already complete" in again.stderr + again.stdout, again.stderr
    assert len([p for p in (shared / "dense_cache").iterdir() if p.is_dir()]) == 1  # one entry
    moved = tmp_path / "P2"
    project.rename(moved)
    after = _run(moved / "b", shared, "dataset.root=../data")
    assert after.returncode == 0 and "already complete" in after.stderr + after.stdout, after.stderr


def test_a_sweep_s_jobs_are_checked_where_the_launcher_puts_them(tmp_path):
    """hydra.sweep.dir places the runs elsewhere than results_dir/runs: the check looked at results_dir/runs
    <run id> (a run there from another folder refused a sweep that would not use it, and the sweep directory's
    own run from another folder was 'already complete')."""
    first, second = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1)
    results, sweep_dir = tmp_path / "results", tmp_path / "sweep"
    assert _run(first, results, "-m", "seed=0", f"hydra.sweep.dir={sweep_dir}").returncode == 0
    before = snapshot(sweep_dir)
    refused = _run(second, results, "-m", "seed=0", f"hydra.sweep.dir={sweep_dir}")
    assert refused.returncode == 2 and "dataset.root" in refused.stderr, refused.stderr + refused.stdout
    assert snapshot(sweep_dir) == before
    assert _run(first, results, "seed=0").returncode == 0  # a run of A's in results_dir/runs
    elsewhere = _run(second, results, "-m", "seed=0", f"hydra.sweep.dir={tmp_path / 'sweep2'}")
    assert elsewhere.returncode == 0, elsewhere.stderr  # its directory holds no run: nothing to refuse


def test_a_run_that_was_still_starting_elsewhere_is_checked_under_its_lock(tmp_path, monkeypatch):
    """The pre-run check cannot see a run another process is still starting (no provenance.json yet): the
    run's own check under its lock refuses it, without marking the other folder's run as failed."""
    from prune_cli import run_directories

    first, second, shared = _working_dir(tmp_path, "A", 0), _working_dir(tmp_path, "B", 1), tmp_path / "shared"
    assert _run(first, shared).returncode == 0
    (run,) = (shared / "runs").iterdir()
    kept = lambda: {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "prune-run.log"}  # noqa: E731
    results_before = kept()
    monkeypatch.setattr(run_directories, "check_data_location", lambda *a, **k: None)  # as if it passed earlier
    refused = _run(second, shared)
    assert refused.returncode == 2 and "dataset.root" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert kept() == results_before  # no failed.json, its tables and marks kept (its log has the refusal's lines)


def test_a_run_recorded_before_links_were_resolved_is_found_through_its_link(tmp_path):
    """Runs recorded earlier on 2026-12-03 hold the folder as spelled from the working directory, unresolved, and
    no device and inode: a `data` that is a symbolic link was then refused as another folder (and an absolute
    root was told it was a relative path)."""
    from omegaconf import OmegaConf

    from prune_cli.core.paths import other_data_folder
    from prune_cli.data.vision import VisionConfig

    store = _working_dir(tmp_path, "store", 0) / "data"
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "data").symlink_to(store)
    node = OmegaConf.merge(OmegaConf.structured(VisionConfig), {"name": "mnist", "root": str(tmp_path / "proj" / "data")})
    recorded = {"data_location": {"dataset.root": str(tmp_path / "proj" / "data")}}  # as the first version wrote it
    assert other_data_folder(node, json.loads(json.dumps(recorded))) is None
    elsewhere = {"data_location": {"dataset.root": str(tmp_path / "other" / "data")}}
    assert other_data_folder(node, elsewhere) == ("root", str(tmp_path / "other" / "data"), str(store))


def test_an_absolute_root_whose_link_now_leads_elsewhere_does_not_reuse_the_dense_model(tmp_path):
    """The dense-cache key keeps an absolute dataset.root as spelled (existing keys stay valid), so with a
    symbolic link switched to another folder another method's run loaded the dense model trained on the first
    folder's files (dense-cache audit of 2026-12-03: dense_cache=hit, the first folder's model_dense.pt). The
    entry records the folder it was trained on; a run reading another one trains its own."""
    a, b = _working_dir(tmp_path, "A", 0) / "data", _working_dir(tmp_path, "B", 1) / "data"
    link, shared, alone = tmp_path / "link", tmp_path / "shared", tmp_path / "alone"
    link.symlink_to(a)
    assert _run(tmp_path, shared, f"dataset.root={link}", "sparsity=0.5").returncode == 0
    link.unlink()
    link.symlink_to(b)
    proc = _run(tmp_path, shared, f"dataset.root={link}", "sparsity=0.8")
    assert proc.returncode == 0, proc.stderr
    assert "was trained on the data in dataset.root=" in proc.stdout + proc.stderr
    assert _run(tmp_path, alone, f"dataset.root={link}", "sparsity=0.8").returncode == 0
    pd.testing.assert_frame_equal(_dense_rows(shared), _dense_rows(alone))  # b's own dense model
    # the same folder again: the entry (now b's) is reused
    proc = _run(tmp_path, shared, f"dataset.root={link}", "sparsity=0.8", "seed=0", "method=random")
    assert proc.returncode == 0 and "dense model loaded from the cache" in proc.stdout + proc.stderr


def _replace_data(data: Path, seed: int) -> None:
    """Write other tiny MNIST files (seed `seed`'s pixels and labels) over the four files in `data`, in place."""
    other = _working_dir(data.parent / f"other{seed}", "x", seed) / "data" / "MNIST" / "raw"
    for f in sorted(other.iterdir()):
        (data / "MNIST" / "raw" / f.name).write_bytes(f.read_bytes())


def test_data_files_replaced_in_place_do_not_reuse_the_dense_model_trained_on_the_old_ones(tmp_path):
    """Data audit of 2026-12-04: the dense-cache key holds dataset.root's folder, not its files, so after the four
    MNIST files were replaced in place another method's run loaded the model trained on the old files
    (dense_cache=hit, the old numbers). The entry records its files' digests; other bytes train a new model, whose
    numbers are those of a run that never saw the old files (its own results_dir, its own cache)."""
    data, shared, alone = _working_dir(tmp_path, "A", 0) / "data", tmp_path / "shared", tmp_path / "alone"
    assert _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.5").returncode == 0
    [entry] = [p for p in (shared / "dense_cache").iterdir() if p.is_dir()]
    _replace_data(data, 1)
    proc = _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.8", "method=random")
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert f"dense cache entry {entry} was trained on other data files (MNIST/raw/t10k-images-idx3-ubyte holds other" in said
    assert "dense model loaded from the cache" not in said and len(list(entry.parent.glob(f"{entry.name}.corrupt-*"))) == 1
    assert _run(tmp_path, alone, f"dataset.root={data}", "sparsity=0.8", "method=random").returncode == 0
    pd.testing.assert_frame_equal(_dense_rows(shared), _dense_rows(alone))
    (run,) = [p for p in (shared / "runs").iterdir() if (p / "COMPLETE").is_file() and "s0.8" in p.name]
    assert set(pd.read_csv(run / "metrics.csv")["dense_cache"]) == {"miss"}


def test_the_same_data_files_copied_without_their_times_still_reuse_the_dense_model(tmp_path):
    """Only other bytes count: the same files rewritten (a `cp` without -p gives them new modification times) are read
    and found equal, the entry is reused, and its record takes the new times (the next check need not read them)."""
    data, shared = _working_dir(tmp_path, "A", 0) / "data", tmp_path / "shared"
    assert _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.5").returncode == 0
    [entry] = [p for p in (shared / "dense_cache").iterdir() if p.is_dir()]
    image = data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    os.utime(image, ns=(1_000_000_000, 1_000_000_000))  # the same bytes, another time (as a fresh copy has)
    proc = _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.8", "method=random")
    assert proc.returncode == 0 and "dense model loaded from the cache" in proc.stdout + proc.stderr
    recorded = json.loads((entry / "trained_with.json").read_text())["data_files"]["MNIST/raw/train-images-idx3-ubyte"]
    assert recorded["mtime_ns"] == 1_000_000_000 and recorded["size"] == 16 + 100 * 28 * 28
    assert recorded["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()


def test_data_files_replaced_while_the_run_trains_are_not_recorded_as_the_ones_it_trained_on(tmp_path, monkeypatch):
    """Review of the data-file record: it was taken when the entry and the score file were stored, after the
    proxies' and the dense model's training, not when the data was read. Files replaced meanwhile (during a long
    training) were recorded with their new bytes beside a model and scores computed from the old ones, so the next
    run on the new files reused both. The record is taken at the read: here the files are replaced as the first
    proxy starts training, and the next run (a new process) on the new files computes both again."""
    import prune_cli.data.cache as data_cache
    import prune_cli.run.data_selection as data_selection

    data, shared = _working_dir(tmp_path, "A", 0) / "data", tmp_path / "shared"
    image = data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    read = hashlib.sha256(image.read_bytes()).hexdigest()
    real_train, replaced = data_selection.train, []

    def replaced_first(*args, **kwargs):
        if not replaced:
            _replace_data(data, 1)
            replaced.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(data_selection, "train", replaced_first)
    data_cache.clear()
    pruning = ["data_pruning=el2n", "data_pruning.proxies=1", "data_pruning.proxy_epochs=1"]
    assert _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.5", *pruning).returncode == 0
    monkeypatch.setattr(data_selection, "train", real_train)
    assert replaced and hashlib.sha256(image.read_bytes()).hexdigest() != read
    [entry] = [p for p in (shared / "dense_cache").iterdir() if p.is_dir() and p.name != "data_pruning"]
    [scores] = list((shared / "dense_cache" / "data_pruning").glob("el2n-*.pt"))
    recorded = json.loads((entry / "trained_with.json").read_text())["data_files"]["MNIST/raw/train-images-idx3-ubyte"]
    assert recorded["sha256"] == read  # the bytes the model was trained on
    data_cache.clear()  # a new process: reads the new files
    proc = _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.8", "method=random", *pruning)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert f"dense cache entry {entry} was trained on other data files" in said
    assert f"score cache file {scores} was computed from other data files" in said
    assert "dense model loaded from the cache" not in said


def test_the_data_memo_keeps_the_record_of_the_read_that_loaded_it(tmp_path):
    """One process's sweep: the memo serves the tensors of a read to later jobs with that read's record; files
    replaced between two jobs are read again (the memo kept the old tensors, which the later job trained on while
    the record taken at store time described the new files), with the record of that new read."""
    import prune_cli.data.cache as data_cache
    from prune_cli.data.vision import VisionConfig
    from test_data import cfg_of

    data = _working_dir(tmp_path, "A", 0) / "data"
    node = cfg_of(VisionConfig, name="mnist", root=str(data))
    name = "MNIST/raw/train-images-idx3-ubyte"
    digest = lambda: hashlib.sha256((data / name).read_bytes()).hexdigest()  # noqa: E731
    data_cache.clear()
    first, record = data_cache.load_raw_recorded(node)
    assert record[name]["sha256"] == digest()
    again, remembered = data_cache.load_raw_recorded(node)
    assert data_cache.STATS["hits"] == 1 and remembered == record and (again.train_x == first.train_x).all()
    _replace_data(data, 1)
    other, record = data_cache.load_raw_recorded(node)
    assert data_cache.STATS["hits"] == 1 and data_cache.STATS["misses"] == 2
    assert record[name]["sha256"] == digest() and not (other.train_x == first.train_x).all()
    data_cache.clear()


def test_data_files_changed_while_they_are_read_get_a_record_no_file_matches(tmp_path, monkeypatch, caplog):
    """Files replaced during the read itself: which bytes were read is unknown, so nothing stored from them is reused."""
    import logging

    import prune_cli.data.cache as data_cache
    from prune_cli.core.file_digest import changed_file
    from prune_cli.data.vision import VisionConfig
    from test_data import cfg_of

    data = _working_dir(tmp_path, "A", 0) / "data"
    node = cfg_of(VisionConfig, name="mnist", root=str(data))
    loader = data_cache.memo_key(node)[0]

    def replaced_while_read(n):
        raw = loader(n)
        _replace_data(data, 1)
        return raw

    with caplog.at_level(logging.WARNING, logger="prune_cli.data.cache"):
        _, record = data_cache._read_recorded(node, replaced_while_read)  # noqa: SLF001
    assert "changed while it was read" in caplog.text
    assert changed_file(record, VisionConfig.source_files(node))[0] is not None


def test_a_cache_file_the_loader_rebuilds_during_the_read_is_recorded_as_rebuilt(tmp_path, caplog):
    """Review of the record taken at the read: MNIST-1D moves an unreadable cache file aside and writes the dataset
    again, so the file's size, time and inode differ across the read; that was taken for an outside change (a
    record no file matches), and the next process threw away the dense model trained on the rebuilt file. The
    second read (streams restored) is stable: its record is the rebuilt file's sha256, computed here with hashlib,
    and a later load of the file gets the same record."""
    import logging

    import prune_cli.data.cache as data_cache
    from prune_cli.core.file_digest import changed_file
    from prune_cli.core import random_streams
    from prune_cli.data.mnist1d import Mnist1dConfig
    from test_data import cfg_of

    node = cfg_of(Mnist1dConfig, name="mnist1d", num_samples=200, cache_dir=str(tmp_path / "m1d"))
    cache = tmp_path / "m1d" / "mnist1d_n200_seed42.npz"
    cache.parent.mkdir()
    cache.write_text("garbage")
    data_cache.clear()
    try:
        with caplog.at_level(logging.INFO, logger="prune_cli.data.cache"):
            streams = random_streams.capture()
            first, record = data_cache.load_raw_recorded(node)
            after_first = random_streams.capture()
        assert "never reused" not in caplog.text, caplog.text
        assert record == {cache.name: {**record[cache.name], "sha256": hashlib.sha256(cache.read_bytes()).hexdigest()}}
        assert record[cache.name]["size"] == cache.stat().st_size
        assert changed_file(record, Mnist1dConfig.source_files(node))[0] is None
        # the first read's draws stand (the second read's are undone): a later plain load of the rebuilt file from
        # the same streams leaves them where the first load did
        data_cache.clear()
        random_streams.restore(streams)
        again, same_record = data_cache.load_raw_recorded(node)
        assert random_streams.same(random_streams.capture(), after_first)
        assert same_record == record and (again.train_x == first.train_x).all()
    finally:
        data_cache.clear()


def test_a_hit_whose_record_cannot_be_refreshed_is_still_a_hit(tmp_path, monkeypatch):
    """Review of the refresh: the same bytes under a new time rewrite trained_with.json, and on a read-only entry or
    a full disk that write's OSError failed a run the entry would have served. The refresh is best effort now."""
    import prune_cli.run.dense_cache as dense_cache

    data, shared = _working_dir(tmp_path, "A", 0) / "data", tmp_path / "shared"
    assert _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.5").returncode == 0
    [entry] = [p for p in (shared / "dense_cache").iterdir() if p.is_dir()]
    before = (entry / "trained_with.json").read_text()
    os.utime(data / "MNIST" / "raw" / "train-images-idx3-ubyte", ns=(1_000_000_000, 1_000_000_000))
    real = dense_cache.atomic_write_text

    def read_only(path, *args, **kwargs):
        if Path(path).name == "trained_with.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dense_cache, "atomic_write_text", read_only)
    proc = _run(tmp_path, shared, f"dataset.root={data}", "sparsity=0.8", "method=random")
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert "dense model loaded from the cache" in said
    assert f"could not refresh {entry / 'trained_with.json'} with the data files' new modification times" in said
    assert (entry / "trained_with.json").read_text() == before
