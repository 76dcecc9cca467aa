"""Layer pruning during training (issue 13 evidence; docs/training_time.md).

Guenter and Sideris, "Concurrent Training and Layer Pruning of Deep Neural Networks" (2024), claim
that irrelevant residual sections can be identified and removed early in training at little cost in
accuracy. A residual network is trained with `schedule=layer_pruning` for each penalty and seed; the
table lists which sections were removed (and in which epoch), the FLOPs of the final network
(flops_sparse of the FLOPs counter, prune_cli/metrics/cost.py) against the dense one, and test
accuracy against the dense network trained from the same initialisation without layer pruning.

`--model res_mlp` (default): a residual MLP on MNIST-1D. `--model resnet20`: ResNet-20, whose
BasicBlocks are the sections, on synthetic CIFAR-shaped data written in the real CIFAR-10 format
(ten classes, each a random smooth 3 x 32 x 32 template plus pixel noise; no real dataset needed).
The machine's load average is printed before and after, with the wall time.

Extra arguments are prune-run overrides; one of a key the script sets alike for every run
(dataset=synthetic with res_mlp, say) replaces the script's value. The keys it sets from its own
options or reads in its table are refused, naming the option (OWNED): results_dir, model, schedule,
schedule.penalty, schedule.prune_epochs, seed and train.epochs; model.width and model.blocks with
res_mlp; dataset, dataset.root and finetune.epochs with resnet20.

    python scripts/layer_pruning.py --results-dir results/layer_pruning
    python scripts/layer_pruning.py --model resnet20 --results-dir results/layer_pruning_resnet20 \
        --penalties 1.0 --epochs 6 --prune-epochs 3 --finetune-epochs 4
    python scripts/layer_pruning.py --results-dir results/layer_pruning --table-only
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from script_args import (
    comma_list,
    nonnegative_int,
    nonnegative_number,
    positive_int,
    refuse_given,
    refuse_owned,
    require_runs,
    run_or_exit,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from prune_cli.run.override_checks import last_value_wins  # noqa: E402 - a user's override replaces the script's

# keys the sweep sets from the script's options or its table reads: an override of one would be given to every
# run (`seed=3` against --seeds), so it is refused naming the option; the other keys the script sets alike for
# every run (dataset=mnist1d with res_mlp, metrics.regions.enabled=false) are replaced by the user's value
OWNED = {
    "results_dir": "set from --results-dir, the folder the table reads; give --results-dir",
    "model": "set from --model; give --model",
    "schedule": "the script runs schedule=layer_pruning, whose layer_pruning.csv its table reads",
    "schedule.penalty": "swept from --penalties; give --penalties",
    "schedule.prune_epochs": "set from --prune-epochs; give --prune-epochs",
    "seed": "swept from --seeds; give --seeds",
    "train.epochs": "set from --epochs; give --epochs",
}
OWNED_BY_MODEL = {
    "res_mlp": {"model.width": "set from --width; give --width", "model.blocks": "set from --blocks; give --blocks"},
    "resnet20": {
        "dataset": "the synthetic CIFAR-shaped data the script writes (--train-images, --test-images, --noise)",
        "dataset.root": "the folder of the synthetic data the script writes (--train-images, --test-images, --noise)",
        "finetune.epochs": "set from --finetune-epochs; give --finetune-epochs",
    },
}
# each model's own options and their defaults; the other model's options are refused, not ignored
RES_MLP = {"width": 64, "blocks": 6}
RESNET20 = {"finetune_epochs": 4, "train_images": 1000, "test_images": 500, "noise": 2.0}


def other_model(model: str) -> str:
    return "res_mlp" if model == "resnet20" else "resnet20"


def write_synthetic_cifar(root: Path, n_train: int, n_test: int, noise: float, seed: int = 0) -> None:
    """Ten classes of 3 x 32 x 32 images in the CIFAR-10 python format (five training batches and a
    test batch): class c is a smooth random template (4 x 4 x 3 Gaussian values, upsampled) plus
    Gaussian pixel noise of `noise` times the template's scale."""
    folder = root / "cifar-10-batches-py"
    if (folder / "test_batch").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = np.kron(rng.normal(size=(10, 3, 4, 4)), np.ones((1, 1, 8, 8)))

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        images = templates[labels] + noise * rng.normal(size=(n, 3, 32, 32))
        pixels = np.clip(128 + 40 * images, 0, 255).astype(np.uint8).reshape(n, -1)
        return {"data": pixels, "labels": labels.tolist()}

    for i in range(5):
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch(n_train // 5)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{c}" for c in range(10)]}))


def exact(value: float) -> str:
    """`value` spelled for a folder name, readable and exact: `:g` (2, 0.1, 1e-07) where that reads back
    as the same float, otherwise repr's shortest round-trip spelling (1.0000001, which `:g`, 6
    significant digits, spelled 1 like 1.0: two noise levels shared a folder and run ids). Two floats
    never share a spelling: each reads back as its own value."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def run(results_dir: Path, args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "prune_cli.cli", "-m", f"results_dir={results_dir}"]
    made: list[Path] = []
    if args.model == "resnet20":
        # a folder per set of data options: its path (dataset.root) is part of each run's id, so that runs on
        # other data never share ids, and a later call's options are never answered with an earlier call's data
        root = results_dir / f"synthetic_cifar-train{args.train_images}-test{args.test_images}-noise{exact(args.noise)}"
        made = [p for p in (results_dir, root) if not p.exists()]
        write_synthetic_cifar(root, args.train_images, args.test_images, args.noise)
        cmd += ["dataset=cifar10", f"dataset.root={root}", "model=resnet20", f"finetune.epochs={args.finetune_epochs}"]
    else:
        cmd += ["dataset=mnist1d", "model=res_mlp", f"model.width={args.width}", f"model.blocks={args.blocks}"]
    cmd += [f"train.epochs={args.epochs}", "schedule=layer_pruning"]
    cmd += [f"schedule.penalty={args.penalties}", f"schedule.prune_epochs={args.prune_epochs}", f"seed={args.seeds}"]
    cmd += ["metrics.regions.enabled=false", *args.overrides]
    cmd = last_value_wins(cmd)  # a user's override of a key set alike for every run (dataset=synthetic) replaces it
    print("running:", " ".join(cmd), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        run_or_exit(cmd, cwd=REPO, env=env)
    except SystemExit as stop:
        if stop.code == 2:  # prune-run refused the sweep before any run: the data written for it goes too
            for folder in reversed(made):
                shutil.rmtree(folder, ignore_errors=True)
        raise


def table(results_dir: Path) -> pd.DataFrame:
    import yaml

    from prune_cli.core.tables import dir_run_id

    rows = []
    for run_dir in sorted((results_dir / "runs").iterdir()):
        if not (run_dir / "COMPLETE").exists() or not (run_dir / "layer_pruning.csv").exists():
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        sections = pd.read_csv(run_dir / "layer_pruning.csv")
        m = pd.read_csv(run_dir / "metrics.csv").set_index(["phase", "split", "metric"]).value
        gone = sections[sections.removed]
        block = {r.section: r.layers.split()[0].rsplit(".", 1)[0] for r in sections.itertuples()}  # layer2.0, sections.3
        rows.append(
            {
                "run_id": dir_run_id(run_dir),
                "model": cfg["model"]["name"],
                "penalty": cfg["schedule"]["penalty"],
                "seed": cfg["seed"],
                "removed": " ".join(f"{block[r.section]}@e{int(r.epoch_removed)}" for r in gone.itertuples()) or "-",
                "n_removed": len(gone),
                "mflops_dense": m[("finetuned", "model", "flops_dense")] / 1e6,
                "mflops_pruned": m[("finetuned", "model", "flops_sparse")] / 1e6,
                "flops_saving": 1 - m[("finetuned", "model", "flops_sparse")] / m[("finetuned", "model", "flops_dense")],
                "dense_acc": m[("dense", "test", "accuracy")],
                "pruned_acc": m[("pruned", "test", "accuracy")],
                "finetuned_acc": m[("finetuned", "test", "accuracy")],
            }
        )
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values(["model", "penalty", "seed"])


SUMMARISED = ["n_removed", "mflops_pruned", "flops_saving", "dense_acc", "pruned_acc", "finetuned_acc"]


def summary(results_dir: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of `table`'s numbers, a row per model and penalty, and per setting:
    runs with different settings in one folder (another --width, --epochs or override) are kept
    apart by an index level per config key that differs between them (scripts/script_tables.py),
    not averaged as more seeds."""
    from script_tables import apart

    runs, keys = apart(results_dir, runs, ["model", "penalty"])
    return runs.groupby(["model", "penalty", *keys])[SUMMARISED].agg(["mean", "std"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "layer_pruning")
    p.add_argument("--model", choices=("res_mlp", "resnet20"), default="res_mlp")
    p.add_argument("--penalties", type=comma_list(nonnegative_number), default="0.2,0.3,0.4,0.5")
    p.add_argument("--seeds", type=comma_list(nonnegative_int), default="0,1,2")
    p.add_argument("--width", type=positive_int, help=f"res_mlp only: hidden width (default {RES_MLP['width']})")
    p.add_argument("--blocks", type=positive_int, help=f"res_mlp only: residual sections (default {RES_MLP['blocks']})")
    p.add_argument("--epochs", type=positive_int, default=12)
    p.add_argument("--prune-epochs", type=positive_int, default=4)
    p.add_argument(
        "--finetune-epochs",
        type=nonnegative_int,
        help=f"resnet20 only (default {RESNET20['finetune_epochs']}; res_mlp: the finetune config's)",
    )
    p.add_argument(
        "--train-images", type=positive_int, help=f"resnet20 only: synthetic training images (default {RESNET20['train_images']})"
    )
    p.add_argument(
        "--test-images", type=positive_int, help=f"resnet20 only: synthetic test images (default {RESNET20['test_images']})"
    )
    p.add_argument(
        "--noise",
        type=nonnegative_number,
        help=f"resnet20 only: pixel noise relative to the class templates (default {RESNET20['noise']})",
    )
    p.add_argument(
        "--table-only", action="store_true", help="only read the CSVs of an earlier run (--results-dir; the run's options are refused)"
    )
    p.add_argument("overrides", nargs="*", help="extra prune-run overrides")
    args = p.parse_args()
    if args.table_only:  # the options of a run would be ignored (--model too: the tables show every model's runs): refused
        why = "only without --table-only, which runs nothing: it prints the tables of the runs already in --results-dir"
        refuse_given(p, why, but=("results_dir", "table_only"))
    own, other = (RESNET20, RES_MLP) if args.model == "resnet20" else (RES_MLP, RESNET20)
    refuse_given(p, f"only with --model {other_model(args.model)}", among=other)  # the other model's options would be ignored
    for name, default in own.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.table_only:
        require_runs(p, args.results_dir, "--table-only: --results-dir", ("runs",))
    else:
        refuse_owned(p, args.overrides, {**OWNED, **OWNED_BY_MODEL[args.model]})
        load, start = os.getloadavg(), time.perf_counter()
        run(args.results_dir.resolve(), args)
        print(f"wall {time.perf_counter() - start:.0f} s on {os.cpu_count()} cores; load average (1, 5, 15 min) before")
        print(f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    from script_tables import apart

    t = table(args.results_dir)
    if t.empty:  # finished runs of other schedules only (or a run that ended before writing its table)
        p.error(f"--results-dir {args.results_dir}: no finished layer-pruning run (a run directory with layer_pruning.csv)")
    shown, keys = apart(args.results_dir, t, ["model", "penalty"])  # the settings that tell runs apart, as in the summary
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        shown = shown.sort_values(["model", "penalty", *keys, "seed"])
        print(shown[[*keys, *t.columns.drop("run_id")]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(summary(args.results_dir, t).to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
