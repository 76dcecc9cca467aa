"""Benchmark: the thread policy (`threads=auto`) against fixed thread counts, with 1, 2 and 4 runs
of the default experiment started at once on this machine.

Each measurement is the wall time of a real `prune-run` process (default config: MNIST-1D, the
MLP, magnitude pruning to 90 %; `--quick` shortens training). Settings:

- `auto`, `1`, `2`: `prune-run threads=<setting>` as shipped (OpenMP threads sleep while waiting,
  OMP_WAIT_POLICY=PASSIVE, unless the user sets it);
- `torch-default` (the "before"): torch's own default, one thread per core with OpenMP's default
  spin-waiting; `threads=<cores>` and OMP_WAIT_POLICY left to libgomp's default.

For each concurrency k, every setting runs k copies at once; settings are interleaved (the setting
that goes first rotates from round to round: scripts/script_timing.py) after one untimed run of each,
and the whole round is repeated; each cell is the median over repeats of the median per-process wall
time. Ratios are against a baseline named before the timing (`--baseline`, default the fixed setting
`1`), so machine noise hits all sides alike and no ratio is taken against whichever setting came out
best; auto is also compared with each fixed setting (1 and 2) on its own. The machine's load
(`os.getloadavg`) is printed before and after the timing and around every batch. Target (issue 12):
auto within 10 % of the faster fixed setting in every case. `--quick` runs a single repeat (no
median), and says so.

    PYTHONPATH=$PWD python scripts/bench_threads.py --quick       # single repeat (no median), some minutes on 2 cores
    PYTHONPATH=$PWD python scripts/bench_threads.py --repeats 3   # the full default run
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

from script_args import description, positive_int
from script_timing import SINGLE, print_load, repeats_note, rotated

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ["auto", "1", "2", "torch-default"]
QUICK = ["train.epochs=4", "finetune.epochs=2"]


def command(setting: str, results: Path, seed: int, extra: list[str]) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(REPO)
    if setting == "torch-default":
        # libgomp treats an empty value as unset (its default spin-then-sleep) and prune-run keeps it
        env["OMP_WAIT_POLICY"] = ""
        threads = f"threads={os.cpu_count()}"
    else:
        threads = f"threads={setting}"
    args = [sys.executable, "-m", "prune_cli.cli", threads, f"seed={seed}", "dense_cache.enabled=false"]
    return [*args, "shared_results=false", f"results_dir={results}", *extra], env


def batch(setting: str, k: int, extra: list[str], work: Path) -> list[float]:
    """Start k runs at once; return each one's wall time."""
    procs = []
    for i in range(k):
        cmd, env = command(setting, work / f"{setting}-{k}-{i}-{time.monotonic_ns()}", i, extra)
        procs.append((time.perf_counter(), subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    times = []
    for start, proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"prune-run failed ({setting}, k={k}):\n{err.decode()[-2000:]}")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--quick", action="store_true", help=f"shortened runs ({' '.join(QUICK)}), one repeat: {SINGLE}")
    ap.add_argument("--repeats", type=positive_int, default=None, help="rounds over the settings (default 3; with --quick 1)")
    ap.add_argument("--concurrency", type=positive_int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    ap.add_argument(
        "--baseline", default="1", choices=SETTINGS, help="the setting every ratio divides by, named before timing (default 1)"
    )
    ap.add_argument("overrides", nargs="*", help="extra prune-run overrides (e.g. model=cnn1d)")
    args = ap.parse_args()
    if args.baseline not in args.settings:
        ap.error(f"argument --baseline: {args.baseline!r}: allowed: one of the settings measured ({' '.join(args.settings)})")
    repeats = args.repeats or (1 if args.quick else 3)
    extra = [*(QUICK if args.quick else []), *args.overrides]
    cells: dict[tuple[int, str], list[float]] = {}
    print(f"cores (affinity) {len(os.sched_getaffinity(0))}; runs: prune-run {' '.join(extra) or '(default)'}")
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:  # warm-up, untimed: file cache, MNIST-1D generated and cached once, each setting once
            batch(setting, 1, extra, Path(tmp))
        print_load("before")
        for r in range(repeats):
            for k in args.concurrency:
                for setting in rotated(args.settings, r):  # the setting that goes first rotates from round to round
                    before = os.getloadavg()[0]
                    times = batch(setting, k, extra, Path(tmp))
                    cells.setdefault((k, setting), []).append(statistics.median(times))
                    print(
                        f"  repeat {r} k={k} {setting:>13}: per-run median {statistics.median(times):7.2f} s "
                        f"(max {max(times):.2f}); load {before:.1f} -> {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        print_load("after")
    print(f"\nwall time per run, {repeats_note(repeats)}; ratio = setting / {args.baseline} (the baseline, named before timing)")
    print(f"{'runs at once':>12} " + " ".join(f"{s:>22}" for s in args.settings))
    for k in args.concurrency:
        med = {s: statistics.median(cells[(k, s)]) for s in args.settings}
        row = [f"{med[s]:10.2f} s{f' ({med[s] / med[args.baseline]:5.2f}x)':>10}" for s in args.settings]
        print(f"{k:>12} " + " ".join(f"{c:>22}" for c in row))
    fixed = [s for s in ("1", "2") if s in args.settings]
    if "auto" in args.settings and fixed:
        for s in fixed:  # each fixed setting on its own: no best one picked after the timing
            worst = max(statistics.median(cells[(k, "auto")]) / statistics.median(cells[(k, s)]) for k in args.concurrency)
            print(f"auto / threads={s}, worst over the concurrencies: {worst:.2f}x (issue 12's target: <= 1.10 against the faster)")
    if repeats == 1:
        print(f"{SINGLE}: one noisy sample per cell on a shared machine; rerun with --repeats 3 before quoting a ratio")


if __name__ == "__main__":
    main()
