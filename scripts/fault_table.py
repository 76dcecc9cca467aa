"""Evidence for docs/robustness.md: prune-run against bad inputs and injected faults.

    python scripts/fault_table.py [--out DIR] [--only bad|faults|kills]

Part 1 (bad inputs): a results folder holding one finished run, then each bad input in turn:
exit code, the first line of the message, whether a traceback was printed, whether the shared
tables stayed byte-identical and whether anything was created outside results_dir/runs.
Part 2 (faults): races, signals, corrupt files, torn tables, schema changes, each checked for
"every run's rows exactly once". Part 3: a run killed (SIGKILL) at every instrumented point,
then started again: duplicated and lost rows against an uninterrupted run.
Prints markdown tables. Takes about ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prune_cli.core import crashpoints  # noqa: E402
from prune_cli.run.override_checks import last_value_wins  # noqa: E402
from script_args import creatable_dir, description  # noqa: E402

FAST = [
    "dataset=synthetic",
    "dataset.samples_per_class=60",
    "dataset.test_samples_per_class=30",
    "model=mlp",
    "model.widths=[16,16]",
    "train.epochs=2",
    "finetune.epochs=1",
    "train.batch_size=32",
    "finetune.batch_size=32",
]
KEY = {
    "runs.csv": ["run_id", "phase", "split", "metric"],
    "per_class.csv": ["run_id", "phase", "split", "class"],
    "layers.csv": ["run_id", "phase", "layer"],
}


def prune_run(args, results, cwd=None, env=None, wait=True):
    cmd = [sys.executable, "-m", "prune_cli.cli", *args, f"results_dir={results}"]
    if cwd is None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.Popen(
        cmd, cwd=cwd or Path(results).parent, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def snapshot(results: Path) -> dict:
    return {p.name: p.read_bytes() for p in results.glob("*.csv")}


def first_message(err: str) -> str:
    """prune-run's own line, else the first line of another message."""
    lines = [x for x in err.splitlines() if x.startswith("prune-run:")]
    text = lines[0] if lines else next((x for x in err.splitlines() if x.strip()), "")
    return text.replace("|", "/")[:150]


def bad_inputs(work: Path) -> list[str]:
    results = work / "earlier" / "results"
    prune_run([*FAST, "sparsity=0.5"], results)
    before = snapshot(results)
    runs_before = sorted(p.name for p in (results / "runs").iterdir())
    data = work / "data"
    _cifar_files(data)
    garbage = work / "garbage.pt"
    garbage.write_bytes(b"not a tensor file")
    afile = work / "a_file"
    afile.write_text("")
    cases = [
        ("type", ["sparsity=abc"]),
        ("range", ["sparsity=1.5"]),
        ("range", ["sparsity=-0.1"]),
        ("range", ["seed=-1"]),
        ("type", ["train.epochs=two"]),
        ("range", ["train.epochs=-1"]),
        ("range", ["train.lr=-0.1"]),
        ("range", ["train.momentum=1.5"]),
        ("choice", ["train.optimizer=adagrad"]),
        ("choice", ["train.lr_schedule=step"]),
        ("range", ["train.milestones=[5,2]"]),
        ("range", ["train.batch_size=0"]),
        ("choice", ["device=tpu"]),
        ("range", ["dataset.val_fraction=1.5"]),
        ("range", ["dataset.imbalance=longtail", "dataset.longtail_ratio=0.5"]),
        ("combination", ["dataset.imbalance=counts"]),
        ("choice", ["dataset.kind=moons"]),
        ("range", ["dataset.noise=-1"]),
        ("choice", ["method=foo"]),
        ("choice", ["model=foo"]),
        ("choice", ["schedule=foo"]),
        ("choice", ["method.allocation=foo"]),
        ("choice", ["method.structure=foo"]),
        ("choice", ["method.score=foo"]),
        ("combination", ["method.allocation=explicit"]),
        ("combination", ["method.structure=nm", "method.allocation=layerwise"]),
        ("combination", ["schedule.restart_from=rewind", "schedule.rewind_epoch=99"]),
        ("combination", ["schedule=iterative", "schedule.score_weights=init", "schedule.rounds=3"]),
        ("choice", ["metrics.splits=[train]"]),
        ("choice", ["metrics.regions.enabled=true", "metrics.regions.method=grid"]),
        ("typo", ["+train.epoch=50"]),
        ("typo", ["+method.sparsity=0.5"]),
        ("typo", ["+metrics.regions.enabld=true"]),
        ("typo", ["+seeed=1"]),
        ("typo", ["train.epoch=50"]),
        ("path escape", ["name=../../x"]),
        ("path escape", ["name=a/b"]),
        ("path escape", ["name="]),
        ("unwritable", ["results_dir=" + str(afile)]),
        ("unwritable", ["results_dir=/proc/prune-cli"]),
        ("missing file", ["dataset=cifar10", "dataset.root=/nonexistent", "model=resnet20"]),
        ("corrupt file", ["dataset=cifar10", f"dataset.root={data / 'truncated'}", "model=resnet20"]),
        ("untrusted file", ["dataset=cifar10", f"dataset.root={data / 'malicious'}", "model=resnet20"]),
        ("missing file", ["method.allocation=matched", "method.match_masks=/nonexistent/masks.pt"]),
        ("corrupt file", ["method.allocation=matched", f"method.match_masks={garbage}"]),
        ("shape", ["model=resnet20"]),
        ("shape", ["model=lenet5"]),
        ("diverges", ["train.lr=1e12"]),
        ("does nothing", ["method.nm_n=1"]),
        ("does nothing", ["train.milestones=[20]"]),
        ("does nothing", ["metrics.hessian.top_k=3"]),
        ("combination", ["train.momentum=0", "train.nesterov=true"]),
        ("combination", ["schedule=admm", "method.invert=true"]),
        ("does nothing", ["schedule=gradual", "schedule.rounds=3"]),
        ("does nothing", ["metrics.regions.planes=3"]),
        ("empty split", ["dataset.val_fraction=0.001", "metrics.splits=[val,test]"]),
        ("range", ["metrics.splits=[test,test]"]),
        ("type", ["train.momentum=0.9", "train.nesterov=2"]),
        ("range", ["sparsity=0.999"]),
        ("combination", ["method=lookahead", "method.mode=forward", "method.structure=channel", "method.allocation=layerwise"]),
        ("range", ["schedule=admm", "schedule.epochs=2", "schedule.update_every=13"]),
        ("range", ["metrics.hessian.enabled=true", "metrics.hessian.lanczos_iter=1"]),
        ("does nothing", ["method=lookahead", "method.act_batches=5"]),
        ("does nothing", ["model=ntk_mlp", "sparsity=0", "model.rescale=false"]),
        ("does nothing", ["method=greedy_forward", "method.allocation=layerwise", "method.gate_sites=all"]),
        ("range", ["dataset.imbalance=longtail"]),
        ("range", ["dataset.imbalance=counts", "dataset.class_counts=[1,60,60]", "dataset.val_fraction=0.6"]),
        ("range", ["schedule=admm", "schedule.epochs=2", "schedule.update_every=3", "data_pruning=random", "data_pruning.keep=0.1"]),
        ("range", ["schedule=minmax", "schedule.attack_width=63"]),
        ("does nothing", ["schedule=admm", "schedule.rho_growth=1", "schedule.rho_max=0.5"]),
        ("type", ["-m", "hydra/launcher=parallel", "hydra.job.env_set.OMP_NUM_THREADS=2"]),
        ("interpolation", ["sparsity=${missing}"]),
        ("interpolation", ["train.lr=${finetune.lr}", "finetune.lr=${train.lr}"]),
        ("sweep", ["-m", "sparsity=interval(0,1)"]),
        ("sweep", ["-m", "seed=glob(*)"]),
        ("typo", ["+hydra.job.chdri=true"]),
        ("type", ["model.widths=[16,abc]"]),
        ("range", ["sparsity=-0.0"]),
        ("relabel", ["method.score=random"]),
        ("repeat", ["train.epochs=2", "train={epochs:3}"]),
        ("does nothing", ["method.rounds=3"]),
        ("does nothing", ["schedule=lottery_ticket", "method.reinit=true"]),
        ("unreachable", ["dataset=mnist1d", "model=cnn1d", "method.structure=channel", "method.allocation=layerwise", "sparsity=0.5"]),
        ("type", ["method.exclude=[[net.1]]"]),
        ("type", ["method.layer_densities=[abc]"]),
        ("range", ["train.weight_decay=-0.0"]),
        ("range", ["train.lr_schedule=multistep", "train.milestones=[1,1]"]),
        ("repeat", ["method.exclude=[net.1,net.1]"]),
        ("range", ["dataset.imbalance=counts", "dataset.class_counts=[10,10]"]),
        ("range", ["method=snip", "method.batch_seed=18446744073709551616"]),
        ("range", ["method=grasp", "method.batches=1000"]),
        ("combination", ["schedule=greg2", "method=random"]),
        ("group", ["+expected=expect_mnist1d"]),
        ("sweep", ["-m", "seed=range(0,1,0)"]),
        ("sweep", ["-m", "method=glob([magnitude,randon])"]),
        ("sweep", ["-m", "method=glob(*,exclude=[random,magnitde])"]),
        ("sweep", ["-m", "seed=0,1", f"hydra.sweep.dir={afile}"]),
        ("sweep", ["-m", "hydra.sweeper.params.seed='0,1'"]),
        ("sweep", ["-m", "+experiment=recall_distortion,pruning_limit", "dataset=mnist1d"]),
    ]
    rows = [
        "| # | kind | arguments | exit | message (first line) | traceback | shared tables unchanged | nothing new outside runs/ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (kind, args) in enumerate(cases, 1):
        groups = tuple(a.split("=")[0] for a in args if "." not in a.split("=")[0] and not a.startswith("+"))
        fast = [a for a in FAST if not a.startswith(groups)] if groups else FAST
        override_results = [a for a in args if a.startswith("results_dir=")]
        target = Path(override_results[0].split("=", 1)[1]) if override_results else results
        args_run = [a for a in args if not a.startswith("results_dir=")]
        before_names = sorted(p.name for p in work.iterdir())
        flags = [a for a in args_run if a.startswith("-")]  # -m before the overrides (argparse takes flags first)
        overrides = last_value_wins([*fast, *(a for a in args_run if not a.startswith("-"))])  # the case's value replaces FAST's
        code, _, err = prune_run([*flags, *overrides], target, cwd=work)
        unchanged = snapshot(results) == before
        new_runs = sorted(set(p.name for p in (results / "runs").iterdir()) - set(runs_before))
        outside_clean = sorted(p.name for p in work.iterdir()) == before_names
        row = (
            f"| {i} | {kind} | `{' '.join(args)}` | {code} | {first_message(err.replace(str(work), '<tmp>'))} | "
            f"{'yes' if 'Traceback' in err else 'no'} | {'yes' if unchanged else 'NO'} | "
            f"{'yes' if outside_clean else 'NO'}{' (run dir: failed.json)' if new_runs else ''} |"
        )
        rows.append(row.replace(str(work), "<tmp>"))
        for name in new_runs:  # a run that failed after starting keeps failed.json; clear it for the next case
            shutil.rmtree(results / "runs" / name)
    return rows


def _cifar_files(data: Path) -> None:
    import numpy as np

    for variant in ("truncated", "malicious"):
        folder = data / variant / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        batch = {"data": np.zeros((4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
            (folder / name).write_bytes(pickle.dumps(batch))
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    (data / "truncated" / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(batch)[:100])

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/prune-cli-pwned",))

    (data / "malicious" / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Evil()}))


def rows_once(results: Path, n_runs: int) -> str:
    problems = []
    for name, key in KEY.items():
        if not (results / name).exists():
            return f"{name} missing"
        df = pd.read_csv(results / name)
        if df.duplicated(key).any():
            problems.append(f"{df.duplicated(key).sum()} duplicated in {name}")
        if df.run_id.nunique() != n_runs:
            problems.append(f"{df.run_id.nunique()} runs in {name}")
    return "yes" if not problems else "NO: " + "; ".join(problems)


def unreadable_warning(results: Path, log_glob: str) -> str:
    """The warning a run logged about the unreadable file it moved aside."""
    log = next(results.glob(log_glob)).read_text()
    return next(x for x in log.splitlines() if "unreadable" in x).split(" - ", 1)[-1][:120]


def faults(work: Path) -> list[str]:
    rows = ["| fault | exit codes | message | every run's rows exactly once |", "|---|---|---|---|"]

    def fresh(name):
        return work / name / "results"

    long = [a for a in FAST if not a.startswith("train.epochs")] + ["train.epochs=150"]
    # the same run started twice at once (seed=0,0; a double submission)
    r = fresh("race")
    procs = [prune_run([*FAST], r, wait=False) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    msg = next((e for _, e in outs if "another process" in e), "").strip().splitlines()
    rows.append(
        f"| same run id started twice at once | {[p.returncode for p in procs]} | "
        f"{(msg[0] if msg else '(the second found it complete)')[:120]} | {rows_once(r, 1)} |"
    )
    # a repeated sweep value
    r = fresh("seed00")
    code, _, err = prune_run(["-m", *FAST, "seed=0,0"], r)
    rows.append(f"| sweep with a repeated value `seed=0,0` | {code} | {first_message(err)} | {rows_once(r, 1)} |")
    for sig in (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT):
        r = fresh(f"sig{sig}")
        p = prune_run([*long], r, wait=False)
        deadline = time.time() + 120
        while not list(r.glob("runs/*/state.pt")) and time.time() < deadline:
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=600)
        code2, _, _ = prune_run([*long], r)
        rows.append(
            f"| {signal.Signals(sig).name} during training, then the same command | {p.returncode}, "
            f"{code2} | {first_message(err)} | {rows_once(r, 1)} |"
        )
    r = fresh("corrupt_state")
    p = prune_run([*long], r, wait=False)
    while not list(r.glob("runs/*/state.pt")):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=600)
    state = next(r.glob("runs/*/state.pt"))
    state.write_bytes(state.read_bytes()[:200])
    code, _, _ = prune_run([*long], r)
    rows.append(
        f"| truncated state.pt, then the same command | {code} | {unreadable_warning(r, 'runs/*/prune-run.log')} | {rows_once(r, 1)} |"
    )
    r = fresh("corrupt_cache")
    prune_run([*FAST, "sparsity=0.5"], r)
    entry = next(p for p in (r / "dense_cache").iterdir() if p.is_dir())
    (entry / "dense.pt").write_bytes(b"garbage")
    code, _, _ = prune_run([*FAST, "sparsity=0.7"], r)
    rows.append(
        f"| garbage dense_cache/<key>/dense.pt, then another run of that seed | {code} | "
        f"{unreadable_warning(r, 'runs/*s0.7*/prune-run.log')} | {rows_once(r, 2)} |"
    )
    r = fresh("torn")
    prune_run([*FAST, "sparsity=0.5"], r)
    with open(r / "runs.csv", "a") as f:
        f.write("torn,line,without,newl")
    code, _, _ = prune_run([*FAST, "sparsity=0.7"], r)
    rows.append(
        f"| runs.csv ends in a torn line, then a run | {code} | cut into {next(r.glob('runs.csv.torn-*')).name} | {rows_once(r, 2)} |"
    )
    r = fresh("schema")
    prune_run(
        [*FAST, "sparsity=0.5", "metrics.regions.enabled=true", "metrics.regions.method=sample", "metrics.regions.samples=200"], r
    )
    code, _, err = prune_run(
        [*FAST, "sparsity=0.7", "metrics.regions.enabled=true", "metrics.regions.method=line", "metrics.regions.segments=2"], r
    )
    cols = pd.read_csv(r / "regions.csv")
    rows.append(
        f"| a run whose regions.csv has other columns | {code} | regions.csv grew to {len(cols.columns)} "
        f"columns, {len(cols)} rows | {rows_once(r, 2)} |"
    )
    r = fresh("shared_flag")
    prune_run([*FAST, "shared_results=false"], r)
    code, _, _ = prune_run([*FAST], r)
    rows.append(
        f"| `shared_results=false`, then the same command with true | {code} | rows appended from the "
        f"run's files | {rows_once(r, 1)} |"
    )
    r = fresh("symlink")
    r.mkdir(parents=True)
    (work / "symlink" / "elsewhere.csv").write_text("x\n")
    (r / "runs.csv").symlink_to(work / "symlink" / "elsewhere.csv")
    code, _, err = prune_run([*FAST], r)
    rows.append(
        f"| runs.csv is a symlink | {code} | {first_message(err)[:120]} | refused; target unchanged: "
        f"{(work / 'symlink' / 'elsewhere.csv').read_text() == 'x' + chr(10)} |"
    )
    r = fresh("sweep")
    code, _, err = prune_run(["-m", *FAST, "train.lr=1e12,0.05"], r)
    rows.append(
        f"| a sweep in which one of two runs diverges | {code} | "
        f"{[x for x in err.splitlines() if 'runs failed' in x][0]} | {rows_once(r, 1)} |"
    )
    return rows


def kills(work: Path) -> list[str]:
    ref = work / "reference" / "results"
    prune_run([*FAST, "sparsity=0.5"], ref)

    def table(results):
        out = {}
        for name, key in KEY.items():
            df = pd.read_csv(results / name)
            out[name] = (df, key)
        return out

    want = table(ref)
    rows = [
        "| killed at | exit of the killed run | exit of the restart | duplicated rows | lost rows | "
        "values equal the uninterrupted run |",
        "|---|---|---|---|---|---|",
    ]
    for point in crashpoints.POINTS:
        r = work / f"kill-{point}" / "results"
        code1, _, _ = prune_run([*FAST, "sparsity=0.5"], r, env={crashpoints.ENV: point})
        code2, _, _ = prune_run([*FAST, "sparsity=0.5"], r)
        got = table(r)
        dup = sum(int(got[n][0].duplicated(k).sum()) for n, (_, k) in want.items())
        lost = sum(
            len(want[n][0].merge(got[n][0][k], on=k, how="left", indicator=True).query("_merge == 'left_only'"))
            for n, (_, k) in want.items()
        )
        volatile = ["timestamp", "git_sha", "git_dirty"]
        equal = all(
            got[n][0]
            .drop(columns=volatile)
            .sort_values(k)
            .reset_index(drop=True)
            .equals(want[n][0].drop(columns=volatile).sort_values(k).reset_index(drop=True))
            for n, (_, k) in want.items()
        )
        rows.append(f"| `{point}` | {code1} | {code2} | {dup} | {lost} | {'yes' if equal else 'NO'} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--out", type=creatable_dir, default=None, help="parent of the working folder (created if missing)")
    parser.add_argument("--only", choices=("bad", "faults", "kills"), default=None)
    args = parser.parse_args()
    if args.out is not None:  # mkdtemp needs its folder; resolved, since prune-run runs in other directories
        args.out = args.out.resolve()
        args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="prune-faults-", dir=args.out))
    print(f"load average at start: {os.getloadavg()}")
    for part, fn in (("bad", bad_inputs), ("faults", faults), ("kills", kills)):
        if args.only in (None, part):
            start = time.perf_counter()
            print("\n".join(fn(work)))
            print(f"\n({part}: {time.perf_counter() - start:.0f} s)\n")
    print(f"load average at end: {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
