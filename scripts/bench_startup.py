"""Benchmark: how long `prune-run` takes before it does any work, against the floor of importing torch.

Commands (each a fresh process, run --repeats times, interleaved; medians):

- floor:        python -c "import torch"
- cfg job:      prune-run --cfg job          (compose and print the config)
- config error: prune-run sparsity=2         (compose, validate, exit 2)
- model error:  prune-run method.exclude=[nope]  (compose, validate against the model built for the
                dataset's declared input, exit 2)
- conv model error: prune-run model=cnn1d method.exclude=[nope]  (the same for a model whose
                constructor sizes its classifier with a dry run)
- type error:   prune-run train.epochs=abc   (Hydra rejects the override while composing, exit 2)
- help:         prune-run --help
- reference:    python -c "import torch, torch._dynamo"  (what running PyTorch 2's meta kernels adds:
                they import torch._dynamo on first use)

With --baseline DIR (another checkout of prune-cli, e.g. the commit before a change) every prune-run
command also runs with that tree on PYTHONPATH, interleaved with this one, so that both are measured
under the same load. It prints each median and its ratio to the floor (target, issue 12: <= 2x), the
machine's load, and an import-time breakdown of `prune-run --cfg job` (`python -X importtime`): the
cumulative import time of each top-level package and of the heaviest prune_cli modules.

    PYTHONPATH=$PWD python scripts/bench_startup.py [--repeats 5] [--baseline ../prune-cli-before]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from script_args import description, existing_dir, positive_int
from script_timing import print_load, repeats_note, rotated

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "prune_cli.cli"]
FLOORS = {
    "floor (import torch)": ([sys.executable, "-c", "import torch"], 0),
    "import torch, torch._dynamo": ([sys.executable, "-c", "import torch, torch._dynamo"], 0),
}
PRUNE_RUN = {
    "prune-run --cfg job": (["--cfg", "job"], 0),
    "prune-run sparsity=2": (["sparsity=2"], 2),
    "prune-run method.exclude=[nope]": (["method.exclude=[nope]"], 2),
    "prune-run model=cnn1d method.exclude=[nope]": (["model=cnn1d", "method.exclude=[nope]"], 2),
    "prune-run train.epochs=abc": (["train.epochs=abc"], 2),
    "prune-run --help": (["--help"], 0),
}


def commands(baseline: Path | None) -> dict[str, tuple[list[str], int, Path]]:
    """name -> (command, expected exit code, source tree on PYTHONPATH)."""
    out = {name: (cmd, rc, REPO) for name, (cmd, rc) in FLOORS.items()}
    for name, (args, rc) in PRUNE_RUN.items():
        out[name] = ([*CLI, *args], rc, REPO)
        if baseline is not None:
            out[f"{name} [baseline]"] = ([*CLI, *args], rc, baseline)
    return out


def env(tree: Path = REPO) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}


def timed(cmd: list[str], expected_rc: int, cwd: str, tree: Path = REPO) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env(tree), cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expected_rc:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}, expected {expected_rc}:\n{proc.stderr[-2000:]}")
    return elapsed


def import_breakdown(cwd: str, top: int) -> None:
    """Cumulative import time per top-level package and the heaviest prune_cli modules."""
    cmd = [sys.executable, "-X", "importtime", *CLI[1:], "--cfg", "job"]
    proc = subprocess.run(cmd, env=env(), cwd=cwd, capture_output=True, text=True)
    line = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    packages: dict[str, int] = defaultdict(int)
    ours: dict[str, int] = {}
    for m in line.finditer(proc.stderr):
        cumulative, indent, name = int(m.group(2)), len(m.group(3)), m.group(4)
        if indent == 1:  # imported from the top level: its cumulative time counts once
            packages[name.split(".")[0]] += cumulative
        if name.startswith("prune_cli"):
            ours[name] = max(ours.get(name, 0), cumulative)
    total = sum(packages.values())
    print(f"\nimport-time breakdown of `prune-run --cfg job` (cumulative, top level): {total / 1e6:.2f} s in all")
    for name, us in sorted(packages.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {name:<28} {us / 1e6:6.2f} s")
    print("heaviest prune_cli modules (cumulative, including what they import):")
    for name, us in sorted(ours.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {name:<40} {us / 1e6:6.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=description(__doc__))
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--top", type=positive_int, default=12)
    ap.add_argument("--baseline", type=existing_dir, help="another prune-cli source tree, measured interleaved with this one")
    args = ap.parse_args()
    todo = commands(args.baseline.resolve() if args.baseline else None)
    times: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as cwd:
        for name, (cmd, rc, tree) in todo.items():  # warm the file cache once
            timed(cmd, rc, cwd, tree)
        print_load("before")
        load = [os.getloadavg()[0]]
        for r in range(args.repeats):
            for name in rotated(todo, r):  # the command that goes first rotates from round to round
                cmd, rc, tree = todo[name]
                times[name].append(timed(cmd, rc, cwd, tree))
            load.append(os.getloadavg()[0])
        print_load("after")
        floor = statistics.median(times["floor (import torch)"])
        spread = f"load {min(load):.1f}-{max(load):.1f}; {os.cpu_count()} CPUs"
        print(f"{repeats_note(args.repeats)} per command (interleaved, order rotating); {spread}")
        for name, values in times.items():
            med = statistics.median(values)
            print(f"  {name:<56} {med:6.2f} s  {med / floor:5.2f}x floor   (min {min(values):.2f}, max {max(values):.2f})")
        import_breakdown(cwd, args.top)


if __name__ == "__main__":
    main()
