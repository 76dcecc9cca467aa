"""Benchmark of `prune-report` on a synthesised results folder (issue 15: "a report that is quick").

A real run directory (the template; by default one tiny `prune-run` on synthetic data, made here)
is cloned into N runs of 3 methods x 5 sparsities x seeds, with the context columns, `config.yaml`
(seed, method, sparsity) and the values changed, so the files have the real formats and sizes.
Then, interleaved and repeated, the script times in this process:

  floor      reading every per-run CSV and config.yaml file by file with plain pandas / yaml: the
             baseline of the ratios (not a lower bound: prune_cli.results reads the same files faster,
             each distinct config block parsed once by libyaml, each table's files by one read_csv)
  load       prune_cli.results.load and every table it offers (Results.tables): the same files as the
             floor (load alone reads the configs; a table is read when first asked for, so timing load
             alone against the floor, as until 2026-12-02, compared reading the configs with reading all)
  tables     build_report(plots=False)
  report     build_report(plots=True) (the figures in a second process when a CPU is idle)
  report1    build_report(plots=True, parallel=False): everything in this process
  report2    build_report(plots=True, parallel=True): the figures in a forked worker, whatever the load

and prints medians, the ratio of each to the floor, and the machine load; `--profile` prints the
top functions of one report under cProfile.

`--compare-with SRC` (a source tree of another version, e.g. `git archive <commit> | tar -x -C SRC`)
times the whole `prune-report ROOT` command (`python -m prune_cli.report`, a fresh process each time:
imports, the drawing process and every file included) of this checkout and of SRC, interleaved,
and prints medians of wall time and of CPU time (the command and every process it waited for) and
their ratios, with the load average before and after: the previous code path measured against the
current one in the same session. Only the wall time at a low load says what a user waits; under
load the CPU time is the steadier figure.

`--schedule` adds an estimate of the wall time on an idle 2-CPU machine from the CPU times of each
process (see `schedule`): what the wall time on a busy machine cannot show.
`--worker on` / `off` times instead `build_report(ROOT, OUT, parallel=True / False)` in a fresh
interpreter of each tree (imports included): the figures drawn by the forked worker, or in-process,
whatever the load (the command itself uses the worker only when the load leaves a CPU idle).

    python scripts/bench_report.py --runs 100 [--template RUN_DIR] [--repeats 3] [--profile]
        [--compare-with SRC [--worker auto on off] [--schedule]]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from script_args import existing_dir, positive_int
from script_timing import interleaved, print_load, repeats_note, rotated

METHODS = ("magnitude", "random", "snip")
SPARSITIES = (0.5, 0.75, 0.875, 0.9375, 0.96875)
TINY = [
    "dataset=synthetic",
    "dataset.samples_per_class=60",
    "dataset.test_samples_per_class=30",
    "model=mlp",
    "model.widths=[16,16]",
    "train.epochs=2",
    "finetune.epochs=1",
]


def make_template(workdir: Path) -> Path:
    """One real run directory from prune-run (about 20 s)."""
    results = workdir / "template"
    cmd = [sys.executable, "-m", "prune_cli.cli", *TINY, "method=magnitude", "sparsity=0.5", "seed=0", f"results_dir={results}"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return next(d for d in (results / "runs").iterdir() if (d / "COMPLETE").exists())


def synthesise(template: Path, root: Path, n_runs: int) -> None:
    """N clones of `template` under root/runs/ (3 methods x 5 sparsities x as many seeds as needed)."""
    rng = np.random.default_rng(0)
    tables = {p.name: pd.read_csv(p) for p in template.glob("*.csv") if p.name != "history.csv" and p.stat().st_size}
    config = yaml.safe_load((template / "config.yaml").read_text())
    combos = [(m, s, seed) for seed in range(n_runs) for m in METHODS for s in SPARSITIES][:n_runs]
    for method, sparsity, seed in combos:
        run_id = f"run-{method}-oneshot-s{sparsity:g}-seed{seed}-bench"
        d = root / "runs" / run_id
        d.mkdir(parents=True)
        for name, df in tables.items():
            df = df.copy()
            for col, value in (
                ("run_id", run_id),
                ("seed", seed),
                ("method", method),
                ("score", method),
                ("target_sparsity", sparsity),
            ):
                if col in df.columns:
                    df[col] = value
            for col in ("value", "recall"):
                if col in df.columns:
                    df[col] = df[col] + rng.normal(0, 0.01, len(df))
            df.to_csv(d / name, index=False)
        cfg = {**config, "seed": seed, "sparsity": sparsity, "method": {**config["method"], "name": method, "score": method}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        # COMPLETE holds the run's own id, as prune-run writes it (prune_cli/run/experiment.py): a copy of the
        # template's named the template's run, and prune-report read one directory of the N
        (d / "COMPLETE").write_text(run_id + "\n")
        if (template / "predictions.npz").exists():  # per-example predictions: the exemplars' input
            shutil.copy(template / "predictions.npz", d / "predictions.npz")


def floor(root: Path) -> None:
    for d in (root / "runs").iterdir():
        for p in d.glob("*.csv"):
            pd.read_csv(p)
        yaml.safe_load((d / "config.yaml").read_text())


def cases(root: Path, tmp: Path) -> dict:
    """The cases timed in this process, by name (the module docstring)."""
    from prune_cli.report import build_report
    from prune_cli.results import load

    return {
        "floor": lambda: floor(root),
        "load": lambda: load(root).tables,  # load reads the tables when asked for: all of them, as the floor
        "tables": lambda: build_report(root, tmp / "out_tables", plots=False),
        "report": lambda: build_report(root, tmp / "out_report", plots=True),
        "report1": lambda: build_report(root, tmp / "out_report1", plots=True, parallel=False),
        "report2": lambda: build_report(root, tmp / "out_report2", plots=True, parallel=True),
    }


# `--worker on|off`: build_report(parallel=True|False) in a fresh interpreter (imports included), the
# figures drawn by the forked worker or in-process whatever the load; both versions have the argument.
FORCED = "import sys; from prune_cli.report import build_report; build_report(sys.argv[1], sys.argv[2], parallel=sys.argv[3] == 'on')"


def timed_command(src: Path, root: Path, out: Path, worker: str = "auto") -> tuple[float, float]:
    """(wall, CPU) seconds of `python -m prune_cli.report root --out out` run from the source tree
    `src` (worker "auto": the command decides by the load), or of build_report with the worker forced
    on or off in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    command = (
        ["-m", "prune_cli.report", str(root), "--out", str(out)] if worker == "auto" else ["-c", FORCED, str(root), str(out), worker]
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *command],
        check=True,
        capture_output=True,
        env=env,
        cwd=src,  # `-m` puts the working directory first on sys.path, before PYTHONPATH
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(root: Path, tmp: Path, other: Path, repeats: int, n_runs: int, worker: str = "auto") -> None:
    """Whole `prune-report` commands of this checkout and of `other`, each a fresh process, interleaved."""
    here = Path(__file__).resolve().parents[1]
    sources = {"current": here, "other": other.resolve()}
    for name, src in sources.items():
        found = subprocess.run(
            [sys.executable, "-c", "import prune_cli; print(prune_cli.__file__)"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(src)},
            cwd=src,
        ).stdout.strip()
        if Path(found).resolve().parents[1] != src:
            raise SystemExit(f"the {name} command would import {found}, not the tree {src}")
    wall: dict[str, list[float]] = {k: [] for k in sources}
    cpu: dict[str, list[float]] = {k: [] for k in sources}
    for name, src in sources.items():  # one untimed command of each first: file caches, imports
        timed_command(src, root, tmp / f"out_{name}_warmup", worker)
    load_before = os.getloadavg()[0]
    for r in range(repeats):
        for name in rotated(sources, r):  # the tree that goes first rotates from round to round
            src = sources[name]
            w, c = timed_command(src, root, tmp / f"out_{name}_{r}", worker)
            wall[name].append(w)
            cpu[name].append(c)
    print(
        f"{n_runs} runs, "
        + ("the whole prune-report command" if worker == "auto" else f"build_report in a fresh interpreter, worker {worker}")
        + f", {repeats} interleaved repeats, load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs"
    )
    for name in sources:
        print(
            f"  {name:8s} ({sources[name]}): wall median {statistics.median(wall[name]):7.2f} s, "
            f"CPU median {statistics.median(cpu[name]):7.2f} s"
            "  all wall: " + " ".join(f"{t:.2f}" for t in wall[name]) + "  all CPU: " + " ".join(f"{t:.2f}" for t in cpu[name])
        )
    print(
        f"  other / current: wall {statistics.median(wall['other']) / statistics.median(wall['current']):.2f}x, "
        f"CPU {statistics.median(cpu['other']) / statistics.median(cpu['current']):.2f}x"
    )


# One build_report(parallel=True) that records CPU times: this process's at the fork, at each figure
# hand-over and at its first wait for a figure, the worker's for its import and for each figure. The
# worker appends its times to a file named by argv[3]; the last line printed is a JSON summary.
SCHEDULE = r"""
import json, os, sys, time
from concurrent.futures import Future
import prune_cli.report.painter as painter
log = sys.argv[3]
draw, warm_up, submit, init, result = painter._draw, painter._warm_up, painter.Painter.submit, painter.Painter.__init__, Future.result
def timed_draw(module, function, args, kwargs):
    t = time.process_time(); out = draw(module, function, args, kwargs)
    with open(log, "a") as f: f.write(json.dumps([function, time.process_time() - t]) + "\n")
    return out
def timed_warm_up():
    t = time.process_time(); warm_up()
    with open(log, "a") as f: f.write(json.dumps(["<import>", time.process_time() - t]) + "\n")
handed, waited, forked = {}, [], []
def timed_submit(self, module, function, *args, **kwargs):
    handed[function] = time.process_time(); return submit(self, module, function, *args, **kwargs)
def timed_result(self, timeout=None):
    if handed and not waited: waited.append(time.process_time())
    return result(self, timeout)
def timed_init(self, parallel=None):
    forked.append(time.process_time()); init(self, parallel)
painter._draw, painter._warm_up, painter.Painter.submit, painter.Painter.__init__ = timed_draw, timed_warm_up, timed_submit, timed_init
Future.result = timed_result
from prune_cli.report import build_report
build_report(sys.argv[1], sys.argv[2], parallel=True)
end = time.process_time()
Future.result = result
worker = [json.loads(line) for line in open(log)]
clock = forked[0] + sum(cpu for name, cpu in worker if name == "<import>")
for name, cpu in worker:
    if name != "<import>":
        clock = max(clock, handed[name]) + cpu
wait = waited[0] if waited else end
print(json.dumps({"fork": forked[0], "parent": end, "worker": sum(cpu for _, cpu in worker), "wait": wait,
                  "worker_done": clock, "estimate": max(wait, clock) + end - wait}))
"""


def schedule(root: Path, tmp: Path, other: Path, repeats: int, n_runs: int) -> None:
    """The wall time of a report with the figure worker on an idle 2-CPU machine, estimated from the
    CPU times of one run per tree and repeat (interleaved): this process's CPU time up to the fork, at
    each figure's hand-over and at its first wait; the worker's for its import and each figure,
    scheduled without contention (a figure starts once handed over and once the previous one is
    drawn); the estimate is when both are done plus what this process does after its wait. On a
    busy machine, where no CPU is idle, the wall time cannot show when the two processes run; the
    CPU times are inflated by the contention, so the estimate is an upper bound of sorts."""
    import json

    here = Path(__file__).resolve().parents[1]
    sources = {"current": here, "other": other.resolve()}
    rows: dict[str, list[dict]] = {k: [] for k in sources}
    load_before = os.getloadavg()[0]
    for r in range(repeats):
        for name in rotated(sources, r):  # the tree that goes first rotates from round to round
            src = sources[name]
            log = tmp / f"schedule_{name}_{r}.jsonl"
            log.write_text("")
            out = subprocess.run(
                [sys.executable, "-c", SCHEDULE, str(root), str(tmp / f"out_schedule_{name}_{r}"), str(log)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"},
                cwd=src,
            ).stdout
            rows[name].append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"{n_runs} runs, idle 2-CPU estimate from CPU times (build_report with the worker), {repeats} interleaved repeats, "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    for name in sources:
        med = {k: statistics.median(row[k] for row in rows[name]) for k in rows[name][0]}
        print(
            f"  {name:8s}: fork at {med['fork']:.2f} s, parent CPU {med['parent']:.2f} s (first wait at {med['wait']:.2f}), "
            f"worker CPU {med['worker']:.2f} s (done at {med['worker_done']:.2f}), estimate median {med['estimate']:.2f} s"
            "  all: " + " ".join(f"{row['estimate']:.2f}" for row in rows[name])
        )
    ratio = statistics.median(r["estimate"] for r in rows["other"]) / statistics.median(r["estimate"] for r in rows["current"])
    print(f"  other / current: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive_int, default=100)
    parser.add_argument("--template", type=existing_dir, default=None, help="a completed run directory to clone")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compare-with", type=existing_dir, default=None, help="source tree of another version to time against")
    parser.add_argument(
        "--worker",
        choices=("auto", "on", "off"),
        nargs="+",
        help="--compare-with: the whole command (auto, the default), or build_report with the figure worker forced on / off",
    )
    parser.add_argument("--schedule", action="store_true", help="--compare-with: also the idle 2-CPU estimate from CPU times")
    parser.add_argument("--skip-cases", action="store_true", help="only the --compare-with timing")
    parser.add_argument("--keep", type=Path, default=None, help="also copy the synthesised results folder here")
    args = parser.parse_args()
    if args.compare_with is None:  # these shape the --compare-with timing only: refused rather than ignored
        if args.worker is not None:
            parser.error(f"argument --worker: {' '.join(args.worker)!r}: allowed: only with --compare-with SRC")
        for flag in ("schedule", "skip_cases"):
            if getattr(args, flag):
                parser.error(f"argument --{flag.replace('_', '-')}: allowed: only with --compare-with SRC")
    if args.skip_cases and args.profile:
        parser.error("argument --profile: allowed: only without --skip-cases (the profile is of the in-process cases)")
    args.worker = args.worker or ["auto"]

    from prune_cli.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        template = args.template or make_template(tmp)
        root = tmp / "bench"
        synthesise(template, root, args.runs)
        if args.keep is not None:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        timed = cases(root, tmp)
        if args.compare_with is not None:
            for worker in dict.fromkeys(args.worker):
                compare(root, tmp, args.compare_with, args.repeats, args.runs, worker)
            if args.schedule:
                schedule(root, tmp, args.compare_with, args.repeats, args.runs)
        if args.skip_cases:
            return
        print_load("before")
        times = interleaved(timed, args.repeats)  # one untimed call each, then rounds in a rotating order
        print_load("after")
        base = statistics.median(times["floor"])
        print(f"{args.runs} runs, {repeats_note(args.repeats)}, interleaved, order rotating; baseline: floor")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:7s} median {med:7.3f} s  ({med / base:5.1f}x floor)  all: " + " ".join(f"{t:.3f}" for t in ts))
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(build_report, root, tmp / "out_prof", plots=True)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
