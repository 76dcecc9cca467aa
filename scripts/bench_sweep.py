"""Benchmark: how the total time of a `prune-run -m` sweep grows with its number of runs, and the per-run
overhead (everything except training and recording) and the fixed cost of a sweep.

Each sweep is one `prune-run -m seed=0,...,n-1 <small config>` process (Hydra's basic launcher: the
runs one after another in that process), for n in --sizes, --repeats times (after one untimed 1-run
sweep per variant), interleaved with the variants being compared (the variant that goes first rotates
from round to round: scripts/script_timing.py): this tree; with --baseline DIR, another checkout of prune-cli (e.g. the
commit before a change) on PYTHONPATH; with --memo-off, this tree with `PRUNE_CLI_DATA_MEMO_MB=0`
(no per-process dataset memo, prune_cli/data/cache.py). Small config: MNIST-1D (8000 training
examples), an MLP 40-32-32-10, one dense and one fine-tuning epoch, region counting off
(`metrics.regions.enabled=false`); the other default metrics stay on.

Printed, per variant and n (medians over the repeats):
- wall: the whole process, start-up included;
- per run: wall / n;
- train+rec: training and recording (evaluation, metrics, per-run CSVs and model files) per run, from
  each run's own timing line in its prune-run.log (prune_cli/run/experiment.py);
- in run: the rest of `run()` per run (data loading and splits, model building, checkpoints, shared
  tables) from the same line;
and per variant the least-squares line, against n, of each sweep's overhead (its wall time minus the
training+recording time of its own runs): the slope is the per-run overhead (Hydra's per-job work:
composing the job's config, the job's logging and .hydra files; the pre-run checks, the thread
choice, and "in run"), the intercept the fixed cost of a sweep (start-up, the first compositions,
the imports the first run pays). Subtracting each sweep's own training time keeps a run slowed down
by the machine's load out of the other sweeps' estimate.
It also prints the machine's load (os.getloadavg) before, during and after.

    PYTHONPATH=$PWD python scripts/bench_sweep.py --quick          # n = 1, 4, 16; single repeat, no median (a few minutes)
    PYTHONPATH=$PWD python scripts/bench_sweep.py                  # n = 1, 4, 16, 64; three repeats
    PYTHONPATH=$PWD python scripts/bench_sweep.py --quick --baseline ../prune-cli-before
    PYTHONPATH=$PWD python scripts/bench_sweep.py --profile 4      # cProfile of a 4-run sweep in this process
    PYTHONPATH=$PWD python scripts/bench_sweep.py --timers 16      # wall time of each per-job step, 16-run sweep
    PYTHONPATH=$PWD python scripts/bench_sweep.py --compose 20     # one Hydra compose: composition memo, schema memo only, neither
    PYTHONPATH=$PWD python scripts/bench_sweep.py --data 5         # a run's data loading: memo hit vs. a load
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from script_args import description, existing_dir, positive_int, refuse_repeated
from script_timing import SINGLE, print_load, repeats_note, rotated

REPO = Path(__file__).resolve().parent.parent
SMALL = [
    "dataset=mnist1d",
    "model=mlp",
    "model.widths=[32,32]",
    "train.epochs=1",
    "finetune.epochs=1",
    "metrics.regions.enabled=false",
]
TIMING = re.compile(
    r"timing: ([\d.]+) s in all: data ([\d.]+) s, training ([\d.]+) s, recording \(evaluation, metrics, per-run files\) ([\d.]+) s"
)


def sweep_args(n: int, results: Path) -> list[str]:
    seeds = ",".join(str(s) for s in range(n)) if n > 1 else "0"
    return ["-m", f"seed={seeds}", *SMALL, f"results_dir={results}", "shared_results=true"]


def env(tree: Path, memo: bool) -> dict:
    e = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    if not memo:
        e["PRUNE_CLI_DATA_MEMO_MB"] = "0"
    return e


def run_sweep(n: int, tree: Path, memo: bool, work: Path, tag: str) -> dict:
    """One sweep process: wall time and the runs' own timing lines."""
    results = work / tag
    cmd = [sys.executable, "-m", "prune_cli.cli", *sweep_args(n, results)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env(tree, memo), cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    runs = []
    for log in sorted((results / "runs").glob("*/prune-run.log")):
        m = TIMING.search(log.read_text())
        if m:
            total, data, training, recording = map(float, m.groups())
            runs.append({"total": total, "data": data, "training": training, "recording": recording})
    if len(runs) != n:
        raise SystemExit(f"expected {n} timing lines under {results}, found {len(runs)}")
    hits = sum("reused from this process's memo" in p.read_text() for p in (results / "runs").glob("*/prune-run.log"))
    return {"wall": wall, "runs": runs, "hits": hits}


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of ys against xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def benchmark(sizes: list[int], repeats: int, variants: dict[str, tuple[Path, bool]]) -> None:
    load = [os.getloadavg()[0]]
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Warm-up: generate MNIST-1D's file cache and the file-system cache of the imports.
        for label, (tree, memo) in variants.items():
            run_sweep(1, tree, memo, work, f"warmup-{label}")
        print_load("before")
        for r in range(repeats):
            # the variant that goes first rotates from round to round (scripts/script_timing.py), the sizes alternate direction
            order = [(label, n) for n in (sizes if r % 2 == 0 else sizes[::-1]) for label in rotated(variants, r)]
            for label, n in order:
                tree, memo = variants[label]
                results.setdefault((label, n), []).append(run_sweep(n, tree, memo, work, f"{label}-{n}-{r}"))
                load.append(os.getloadavg()[0])
                print(f"  done: {label} n={n} repeat {r}: {results[(label, n)][-1]['wall']:.1f} s, load {load[-1]:.1f}", flush=True)
        print_load("after")
    print(f"prune-run -m sweeps of n small runs ({' '.join(SMALL)}); {repeats_note(repeats)}, interleaved")
    print(f"load average (1 min) {min(load):.1f}-{max(load):.1f} (median {statistics.median(load):.1f}); {os.cpu_count()} CPUs")
    for label, (tree, memo) in variants.items():
        print(f"  {label}: {tree}{'' if memo else ', PRUNE_CLI_DATA_MEMO_MB=0'}")
    print(f"{'variant':<10}{'n':>4}{'wall s':>10}{'per run s':>11}{'train+rec s':>13}{'in run s':>10}{'data s':>9}{'hits':>6}")
    fits = {}
    for label in variants:
        overheads = []  # per sweep size: median of (wall - the sweep's own training+recording)
        for n in sizes:
            reps = results[(label, n)]
            wall = statistics.median(x["wall"] for x in reps)
            runs = [run for x in reps for run in x["runs"]]
            work_s = statistics.median(run["training"] + run["recording"] for run in runs)
            in_run = statistics.median(run["total"] - run["training"] - run["recording"] for run in runs)
            data = statistics.median(run["data"] for run in runs)
            hits = statistics.median(x["hits"] for x in reps)
            overheads.append(statistics.median(x["wall"] - sum(r["training"] + r["recording"] for r in x["runs"]) for x in reps))
            print(f"{label:<10}{n:>4}{wall:>10.2f}{wall / n:>11.2f}{work_s:>13.3f}{in_run:>10.3f}{data:>9.4f}{hits:>6.0f}")
        if len(sizes) > 1:
            fits[label] = line_fit([float(n) for n in sizes], overheads)
            print(f"{label}: overhead (wall minus the runs' training+recording) per n: " + ", ".join(f"{o:.1f} s" for o in overheads))
    for label, (slope, intercept) in fits.items():
        print(f"{label}: per-run overhead {slope:.2f} s (slope); fixed cost {intercept:.2f} s (intercept)")
    first = next(iter(fits), None)
    for label, (slope, _) in fits.items():
        if label != first and slope > 0:
            print(f"per-run overhead {first} / {label} (the baseline): {fits[first][0] / slope:.2f}x")
    if repeats == 1:
        print(f"{SINGLE}: one noisy sample per sweep on a shared machine; rerun with --repeats 3 before quoting a ratio")


def profile(n: int, top: int) -> None:
    """cProfile of one n-run sweep in this process (the console entry point, as a user runs it)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch  # noqa: F401  (imported before profiling: start-up is scripts/bench_startup.py's subject)

    from prune_cli import cli

    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["prune-run", *sweep_args(n, Path(tmp) / "results")]
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        try:
            cli.main()
        except SystemExit as stop:
            if stop.code:
                raise
        prof.disable()
        wall = time.perf_counter() - start
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"{n}-run sweep in-process: {wall:.1f} s under cProfile (load {os.getloadavg()[0]:.1f})")
    print(out.getvalue())


def timers(n: int) -> None:
    """Wall-clock totals of the per-job steps of one n-run sweep in this process (no profiler overhead):
    each function below is wrapped with a timer; calls, seconds and seconds per run."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import collections
    import functools

    import torch  # noqa: F401  (imported before timing: start-up is scripts/bench_startup.py's subject)
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core import utils as hydra_utils

    from prune_cli import cli, hydra_patches
    from prune_cli.core import identity
    from prune_cli.run import checkpoint, experiment, recorder, results, shared_tables

    total: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter = collections.Counter()

    def wrap(owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total[label] += time.perf_counter() - start
                calls[label] += 1

        setattr(owner, name, timed)

    steps = [
        (ConfigLoaderImpl, "load_configuration", "Hydra: one composition"),
        (hydra_utils, "_save_config", "Hydra: a .hydra/*.yaml file"),
        (hydra_utils, "configure_log", "Hydra: logging set-up"),
        (cli, "validate", "pre-run pass (validate)"),  # each job's, in hydra_main
        (hydra_patches, "validate", "pre-run pass (validate)"),  # the whole-sweep check before the first job
        (cli, "_limit_threads", "thread choice"),
        (experiment, "run", "run() in all"),
        (experiment.Experiment, "run_plan", "run(): the schedule's steps"),
        (experiment.Experiment, "__init__", "run(): data, model, context"),
        (recorder, "write_run_files", "per-run CSVs"),
        (checkpoint, "save", "checkpoint (state.pt)"),
        (shared_tables, "append_run", "shared tables"),
        (results, "provenance", "provenance"),
        (identity, "config_hash", "config hash"),
    ]
    for owner, name, label in steps:  # hydra_main imports run() from its module when it runs
        wrap(owner, name, label)
    experiment.config_hash = identity.config_hash  # imported by name there
    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["prune-run", *sweep_args(n, Path(tmp) / "results")]
        start = time.perf_counter()
        try:
            cli.main()
        except SystemExit as stop:
            if stop.code:
                raise
        wall = time.perf_counter() - start
    print(f"{n}-run sweep in-process: {wall:.1f} s (load {os.getloadavg()[0]:.1f}); per step: calls, seconds, seconds per run")
    for label, seconds in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<32} {calls[label]:5d} {seconds:9.3f} {seconds / n:9.3f}")


def compose_bench(repeats: int) -> None:
    """Time of composing one sweep job's config (a new seed each time, as the jobs of a sweep) with the
    per-process composition memo (prune_cli/run/composition_memo.py: the group choices composed once),
    with only the plugin source's schema memo (prune_cli/run/plugin_source.py; the composition memo
    cleared before each compose), and with neither (OmegaConf.structured every time), interleaved, in
    this process."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import prune_cli.cli  # noqa: F401  (the plugin config source, the composition memo)
    from prune_cli.run import composition_memo, plugin_source

    memoised = plugin_source._structured
    variants = ("composition memo", "schema memo only", "neither")
    times: dict[str, list[float]] = {v: [] for v in variants}
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        compose("config", overrides=SMALL)  # warm-up: plugin imports
        print_load("before")
        for r in range(repeats):
            for label in rotated(variants, r):  # the variant that goes first rotates from round to round
                plugin_source._structured = OmegaConf.structured if label == "neither" else memoised
                if label != "composition memo":
                    composition_memo.clear()
                start = time.perf_counter()
                compose("config", overrides=[*SMALL, f"seed={r}"])
                times[label].append(time.perf_counter() - start)
    plugin_source._structured = memoised
    print_load("after")
    base = statistics.median(times["schema memo only"])
    print(f"one compose of a sweep job's config (small config, a new seed each), {repeats_note(repeats)}, baseline: schema memo only:")
    for label in variants:
        t = statistics.median(times[label])
        print(f"  {label:<18} {t * 1000:6.0f} ms  ({t / base:.2f}x of schema memo only)")


def write_cifar10(root: Path, n_train: int = 50000, n_test: int = 10000) -> None:
    """CIFAR-10 in its real on-disk format (python pickles of uint8 rows), random pixels, full size."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int) -> dict:
        return {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}

    for i in range(5):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch(n_train // 5)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def data_bench(repeats: int) -> None:
    """A run's data step (prune_cli/run/experiment.py: `load_raw` then `build_splits`) as the first run of a
    process does it (a load) and as a later run of a sweep does it (a memo hit: a copy), interleaved."""
    import torch
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (the plugin config source)
    from prune_cli.data import build_splits
    from prune_cli.data import cache

    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(Path(tmp))
        cases = {
            "mnist1d (10000 signals)": ["dataset=mnist1d"],
            "cifar10 (60000 images, files)": ["dataset=cifar10", f"dataset.root={tmp}"],
        }
        print(f"a run's data step (load_raw + build_splits), {repeats_note(repeats)}, order rotating; baseline: a load")
        with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
            for label, overrides in cases.items():
                node = compose("config", overrides=overrides).dataset
                times: dict[str, list[float]] = {"load": [], "memo hit": []}
                cache.clear()
                build_splits(cache.load_raw(node), node, 0, torch.device("cpu"))  # untimed: a load, then a hit below
                build_splits(cache.load_raw(node), node, 0, torch.device("cpu"))
                print_load("before")
                for r in range(repeats):
                    for kind in rotated(("load", "memo hit"), r):  # the memo holds the data from the rounds before
                        if kind == "load":
                            cache.clear()
                        start = time.perf_counter()
                        build_splits(cache.load_raw(node), node, 0, torch.device("cpu"))
                        times[kind].append(time.perf_counter() - start)
                print_load("after")
                load, hit = statistics.median(times["load"]), statistics.median(times["memo hit"])
                print(f"  {label:<32} load {load:7.3f} s   memo hit {hit:7.3f} s   ({hit / load:.2f}x)")
        cache.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--sizes", type=positive_int, nargs="+", help="sweep sizes n (default 1 4 16 64; with --quick 1 4 16)")
    ap.add_argument("--repeats", type=positive_int, help=f"repeats of each sweep (default 3; with --quick 1: {SINGLE})")
    ap.add_argument(
        "--quick", action="store_true", help="smaller defaults: n = 1, 4, 16 and one repeat (--sizes, --repeats still apply)"
    )
    ap.add_argument("--baseline", type=existing_dir, help="another prune-cli source tree, measured interleaved with this one")
    ap.add_argument("--memo-off", action="store_true", help="also measure this tree without the dataset memo")
    ap.add_argument("--profile", type=positive_int, metavar="N", help="profile one N-run sweep in-process instead")
    ap.add_argument("--top", type=positive_int, help="--profile: functions listed (default 60)")
    ap.add_argument("--timers", type=positive_int, metavar="N", help="time the per-job steps of one N-run sweep in-process instead")
    ap.add_argument("--compose", type=positive_int, metavar="R", help="time R composes: composition memo, schema memo only, neither")
    ap.add_argument("--data", type=positive_int, metavar="R", help="time a run's data step, load vs. memo hit, R times instead")
    args = ap.parse_args()
    if args.sizes:  # a size given twice merged into one results key, and the overhead fit divided by zero at the end
        refuse_repeated(ap, "--sizes", args.sizes)

    def given(option: str) -> str:  # how argparse's messages name a value: "argument --x: 'VALUE'"; a flag by its name
        value = getattr(args, option[2:].replace("-", "_"))
        if value is True:
            return f"argument {option}"
        return f"argument {option}: {' '.join(map(str, value)) if isinstance(value, list) else str(value)!r}"

    modes = [f"--{m}" for m in ("data", "compose", "profile", "timers") if getattr(args, m)]
    sweep = [f"--{o.replace('_', '-')}" for o in ("sizes", "repeats", "quick", "baseline", "memo_off") if getattr(args, o)]
    if len(modes) > 1:
        ap.error(f"{given(modes[1])}: allowed: only without {modes[0]} (each is a benchmark of its own)")
    if modes and sweep:
        ap.error(f"{given(sweep[0])}: allowed: only for the sweep benchmark, not with {modes[0]} (which ignores it)")
    if args.top is not None and not args.profile:
        ap.error(f"{given('--top')}: allowed: only with --profile (the functions listed of its profile)")
    if args.data:
        data_bench(args.data)
        return
    if args.compose:
        compose_bench(args.compose)
        return
    if args.profile:
        profile(args.profile, args.top or 60)
        return
    if args.timers:
        timers(args.timers)
        return
    # --quick changes the defaults only: explicit --sizes / --repeats were dropped by it before 2026-12-02
    sizes = args.sizes or ([1, 4, 16] if args.quick else [1, 4, 16, 64])
    repeats = args.repeats or (1 if args.quick else 3)
    variants = {"this": (REPO, True)}
    if args.baseline:
        variants["baseline"] = (args.baseline.resolve(), True)
    if args.memo_off:
        variants["memo off"] = (REPO, False)
    benchmark(sizes, repeats, variants)


if __name__ == "__main__":
    main()
