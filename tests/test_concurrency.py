"""Shared results under concurrency: N processes appending to the same results folder lose no row
and corrupt no CSV; rebuild_shared recreates the shared CSVs from the per-run files alone."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pandas as pd

from prune_cli.run import results

N_PROCS, N_APPENDS, N_ROWS = 6, 15, 120  # 10,800 rows per table; each append is ~30 KB (several write() calls)


def _frames(worker: int, append: int) -> dict[str, pd.DataFrame]:
    """Two tables with distinct, checkable rows; a long text column makes each append span many buffers."""
    ids = [f"w{worker}-a{append}-r{i}" for i in range(N_ROWS)]
    metrics = pd.DataFrame({"row": ids, "worker": worker, "append": append, "value": range(N_ROWS), "padding": ["x" * 200] * N_ROWS})
    per_class = pd.DataFrame({"row": ids, "class": [i % 10 for i in range(N_ROWS)], "recall": 0.5})
    return {"metrics.csv": metrics, "per_class.csv": per_class}


def _writer(results_dir: str, worker: int, start) -> None:
    start.wait()  # all writers begin together
    for append in range(N_APPENDS):
        results.append_shared(Path(results_dir), _frames(worker, append))


def test_parallel_appends_lose_no_row_and_keep_the_csv_valid(tmp_path):
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, start)) for w in range(N_PROCS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    expected = {f"w{w}-a{a}-r{i}" for w in range(N_PROCS) for a in range(N_APPENDS) for i in range(N_ROWS)}
    for shared, columns in (
        ("runs.csv", ["row", "worker", "append", "value", "padding"]),
        ("per_class.csv", ["row", "class", "recall"]),
    ):
        text = (tmp_path / shared).read_text()
        lines = text.splitlines()
        assert lines[0] == ",".join(columns)
        assert lines.count(lines[0]) == 1  # header written once
        df = pd.read_csv(tmp_path / shared)  # parses: no torn or interleaved line
        assert list(df.columns) == columns
        assert len(df) == len(expected) and set(df["row"]) == expected  # every row exactly once
        if shared == "runs.csv":
            assert (df["padding"] == "x" * 200).all()
            # each append's rows stay contiguous and in order (appends are not interleaved)
            for _, block in df.groupby(["worker", "append"]):
                assert list(block.index) == list(range(block.index[0], block.index[0] + N_ROWS))
                assert list(block["value"]) == list(range(N_ROWS))


def _run_dir(root: Path, name: str, complete: bool, extra: bool = False) -> pd.DataFrame:
    d = root / "runs" / name
    d.mkdir(parents=True)
    metrics = pd.DataFrame({"run_id": name, "phase": ["dense", "finetuned"], "metric": "accuracy", "value": [0.9, 0.8]})
    metrics.to_csv(d / "metrics.csv", index=False)
    pd.DataFrame({"run_id": name, "class": [0, 1], "recall": [0.7, 0.6]}).to_csv(d / "per_class.csv", index=False)
    pd.DataFrame({"phase": ["dense"], "epoch": [1]}).to_csv(d / "history.csv", index=False)
    if extra:
        pd.DataFrame({"run_id": [name], "grid": [0.0], "density": [1.0]}).to_csv(d / "hessian_density.csv", index=False)
    if complete:
        (d / "COMPLETE").write_text(name + "\n")
    return metrics


def test_rebuild_shared_uses_only_complete_runs(tmp_path):
    a = _run_dir(tmp_path, "run-a", complete=True)
    b = _run_dir(tmp_path, "run-b", complete=True, extra=True)
    _run_dir(tmp_path, "run-c", complete=False)  # unfinished: its rows must not appear
    (tmp_path / "runs.csv").write_text("garbage,from,a,broken\nappend\n")  # a damaged shared file
    results.rebuild_shared(tmp_path)
    runs = pd.read_csv(tmp_path / "runs.csv")
    pd.testing.assert_frame_equal(runs, pd.concat([a, b], ignore_index=True))
    per_class = pd.read_csv(tmp_path / "per_class.csv")
    assert list(per_class.run_id) == ["run-a", "run-a", "run-b", "run-b"]
    density = pd.read_csv(tmp_path / "hessian_density.csv")
    assert list(density.run_id) == ["run-b"]
    assert not (tmp_path / "history.csv").exists()
    # appends after a rebuild keep the same header and add rows once
    results.append_shared(tmp_path, {"metrics.csv": pd.read_csv(tmp_path / "runs" / "run-c" / "metrics.csv")})
    assert list(pd.read_csv(tmp_path / "runs.csv").run_id) == ["run-a"] * 2 + ["run-b"] * 2 + ["run-c"] * 2
