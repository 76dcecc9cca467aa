"""Benchmark: what one prune-run costs a test, by how the test starts it (docs/performance.md#test-suite).

The same rejected run (`prune-run sparsity=2`: compose, validate, exit 2) and the same tiny finished
run (the tests' FAST settings, `train.epochs=1`), each started three ways, interleaved (the order of the
ways rotating from round to round: scripts/script_timing.py), repeated after one untimed round; medians
and their ratio to the new interpreter (the baseline, what the tests used before):

- new interpreter: `python -m prune_cli.cli ...` (subprocess.run)
- forked child:    tests/cli_runner.py start_forked (a process of its own, forked from this one)
- in-process:      tests/cli_runner.py run_in_process

It prints the load average before and after, since the machine is shared.

    PYTHONPATH=$PWD python scripts/bench_test_runner.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from cli_runner import run_in_process, start_forked  # noqa: E402
from conftest import FAST  # noqa: E402

from prune_cli.run.override_checks import last_value_wins  # noqa: E402
from script_args import positive_int  # noqa: E402
from script_timing import print_load, repeats_note, rotated  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
# FAST sets train.epochs too, and prune-run refuses a key given twice: the later value replaces it, as tests/conftest.py does
CASES = {"rejected (sparsity=2)": (["sparsity=2"], 2), "tiny run (FAST, 1 epoch)": (last_value_wins([*FAST, "train.epochs=1"]), 0)}


def new_interpreter(argv: list[str], results: Path) -> int:
    cmd = [sys.executable, "-m", "prune_cli.cli", *argv, f"results_dir={results}"]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV}, cwd=results.parent).returncode


def forked(argv: list[str], results: Path) -> int:
    child = start_forked(argv, results)
    child.communicate(timeout=600)
    return child.returncode


def in_process(argv: list[str], results: Path) -> int:
    return run_in_process([*argv, f"results_dir={results}"], cwd=results.parent, env=ENV).returncode


WAYS = {"new interpreter": new_interpreter, "forked child": forked, "in-process": in_process}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as tests/conftest.py
    print(f"{args.repeats} timed rounds after one untimed round, order rotating; {repeats_note(args.repeats)}")
    print_load("before")
    times: dict[tuple[str, str], list[float]] = {(c, w): [] for c in CASES for w in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # the first round warms caches (MNIST-1D, imports) and is not timed
            for case, (argv, code) in CASES.items():
                for way in rotated(WAYS, rep):  # the order of the ways rotates from round to round
                    start = WAYS[way]
                    results = Path(tmp) / f"{rep}-{len(times)}-{way.replace(' ', '_')}-{case[:4]}" / "results"
                    results.parent.mkdir(parents=True)
                    t0 = time.perf_counter()
                    got = start(argv, results)
                    elapsed = time.perf_counter() - t0
                    assert got == code, (case, way, got)
                    if rep:
                        times[case, way].append(elapsed)
    print_load("after")
    print(f"{'case':28s} {'way':16s} {'median s':>9s} {'vs new interpreter':>19s}")
    for case in CASES:
        base = statistics.median(times[case, "new interpreter"])
        for way in WAYS:
            med = statistics.median(times[case, way])
            print(f"{case:28s} {way:16s} {med:9.2f} {base / med:18.1f}x")


if __name__ == "__main__":
    main()
