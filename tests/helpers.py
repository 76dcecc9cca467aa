"""Helpers shared by the tests: config composition, tiny networks, metric contexts.

- `composed(overrides)`: the config prune-run composes for these overrides (in-process, Hydra's
  compose API, no subprocess); `validated` also runs the pre-run pass; `compose(overrides,
  results_dir)` is `validated` with the results in `results_dir`.
- tiny networks whose weights and outputs the tests work out by hand: `TwoLayer`, `Chain`,
  `BNNet`, `TinyConvPool` (conv -> max-pool -> fc), `TinyConvChain` (two convs -> avg-pool -> fc).
- `method_options(**overrides)`: a method node for calling the pruner directly;
- `metric_context`: the MetricContext a metric receives, for calling a metric directly.
- the random-pruning NTK experiment, a research helper in scripts/ntk_random.py (not part of the
  package, docs/architecture.md), which the tests reach from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from prune_cli.models.base import PrunableNet

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from ntk_random import random_pruning_ntk, unit_scaled_inputs  # noqa: E402

# ----------------------------------------------------------------------------- data


def three_blobs(n: int, dim: int, n_train: int, seed: int = 0):
    """Three Gaussian blobs in `dim` dimensions (centres N(0, 4), spread 0.5), n examples: the first
    n_train for training, the rest for both validation and test. The training-time pruning tests'
    data: separable enough to learn in a few steps, noisy enough that weights keep moving."""
    from prune_cli.data.splits import DataSplits

    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, dim, generator=g) * 2
    y = torch.arange(n) % 3
    x = centers[y] + 0.5 * torch.randn(n, dim, generator=g)
    return DataSplits(x[:n_train], y[:n_train], x[n_train:], y[n_train:], x[n_train:], y[n_train:], num_classes=3)


# ----------------------------------------------------------------------------- configs


def composed(*overrides) -> DictConfig:
    """The config prune-run would compose for these overrides (not validated); each argument is an
    override or a list of them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import prune_cli.cli  # noqa: F401  (the plugin config source, the run_id resolvers)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        args = [o for x in overrides for o in ([x] if isinstance(x, str) else x)]
        return hydra_compose(config_name="config", overrides=args)


def validated(*overrides) -> DictConfig:
    """`composed`, then the pre-run pass (prune_cli/run/prevalidate.py)."""
    from prune_cli.run.prevalidate import validate

    cfg = composed(*overrides)
    validate(cfg)
    return cfg


def prerun_and_pruner_agree(cfg: DictConfig, model, method: DictConfig, inexact: str) -> bool:
    """Whether the pre-run pass accepts `cfg`'s sparsity exactly when the pruner, run on `model` (random
    weights) with `method`, reaches it within the tolerance: a structure whose reach is a fact of the
    layer shapes must refuse before the run what the pruner would refuse after dense training (its
    refusal naming `inexact`, the structure's hint)."""
    from prune_cli.core.errors import ConfigError, PruneCliError
    from prune_cli.pruning import PruneContext, prune
    from prune_cli.run.prevalidate import validate

    try:
        validate(cfg)
        accepted = True
    except ConfigError as err:
        assert err.key == "sparsity", err
        accepted = False
    try:
        prune(model, cfg.sparsity, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
        reached = True
    except PruneCliError as err:
        assert inexact in str(err), err
        reached = False
    return accepted == reached


def refused_before_any_work(args: list[str], results: Path, *named: str) -> None:
    """`prune-run args` into a finished results folder: exit 2 with one error naming each of `named`, no
    traceback, the folder byte-identical."""
    from tests.conftest import run_cli, snapshot

    before = snapshot(results)
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert all(n in proc.stderr for n in named), proc.stderr
    assert snapshot(results) == before


def method_options(**overrides) -> DictConfig:
    """A method node for calling the pruner directly: magnitude, layerwise; every other option takes
    its schema default when the pruner converts it (prune_cli/pruning/pruner.py as_method_config)."""
    from omegaconf import OmegaConf

    return OmegaConf.create({"name": "t", "score": "magnitude", "allocation": "layerwise", **overrides})


def compose(overrides: list[str], results_dir: Path) -> DictConfig:
    """The composed, validated config prune-run would use, with its results in `results_dir`."""
    return validated([*overrides, f"results_dir={results_dir}"])


def counting_model_builder():
    """A model builder for `select_training_data` (run/data_selection.py) and the list it appends to
    each time it builds a proxy model: tests check that cached scores train no proxy again."""
    from prune_cli.models import build_model

    built = []

    def build(cfg, data):
        built.append(1)
        return build_model(cfg.model, data.input_shape, data.num_classes)

    return build, built


def proxy_scoring_splits():
    """60 training examples of 5 features in 3 balanced classes (seed 0), 9 for validation and test."""
    from prune_cli.data.splits import DataSplits

    torch.manual_seed(0)
    x = torch.randn(60, 5)
    y = torch.arange(60) % 3
    return DataSplits(x, y, x[:9], y[:9], x[:9], y[:9], num_classes=3)


class Crash(Exception):
    """A simulated crash (the process dies after a checkpoint)."""


def crash_and_resume(
    tmp_path: Path, monkeypatch, overrides: list[str], crash_at: tuple[str, int], after_crash=None
) -> tuple[Path, Path]:
    """Run `overrides` once uninterrupted, and once stopped by a crash right after the checkpoint of
    epoch `crash_at[1]` of training phase `crash_at[0]`, then run again (a resume). Returns the
    reference run directory and the resumed one; `after_crash(run_dir, results_dir)` sees the state
    the crash left."""
    from prune_cli.run.experiment import run

    reference = tmp_path / "reference"
    run(compose(overrides, reference), reference / "run")
    return reference / "run", resume_after_crash(tmp_path, monkeypatch, overrides, crash_at, after_crash)


def resume_after_crash(
    tmp_path: Path, monkeypatch, overrides: list[str], crash_at: tuple[str, int], after_crash=None, composer=None
) -> Path:
    """The crash and resume of `crash_and_resume` (without its reference run): the resumed run's
    directory. `composer(overrides, results_dir)`: how the config is made (default `compose`)."""
    import prune_cli.run.experiment as experiment
    from prune_cli.core.identity import run_id

    real_train = experiment.train

    def crashing_train(*args, on_epoch_end=None, **kwargs):
        phase = args[4]

        def stop(row, progress):
            on_epoch_end(row, progress)
            if (phase, progress.epoch) == tuple(crash_at):
                raise Crash(f"simulated crash after {phase} epoch {progress.epoch}")

        return real_train(*args, on_epoch_end=stop, **kwargs)

    results = tmp_path / "crashing"
    cfg = (composer or compose)(overrides, results)
    run_dir = results / "runs" / run_id(cfg)
    monkeypatch.setattr(experiment, "train", crashing_train)
    with pytest.raises(Crash):
        experiment.run(cfg, run_dir)
    if after_crash is not None:
        after_crash(run_dir, results)
    monkeypatch.setattr(experiment, "train", real_train)
    experiment.run(cfg, run_dir)
    return run_dir


def assert_same_run(a: Path, b: Path, tables=("metrics.csv",)) -> None:
    """Two run directories hold the same results: each of `tables` equal but for the columns that name
    the run or its time, and the same fine-tuned weights (a resumed run against an uninterrupted one)."""
    import pandas as pd

    ignore = ["timestamp", "run_id", "config_hash"]
    for table in tables:
        x, y = pd.read_csv(a / table), pd.read_csv(b / table)
        pd.testing.assert_frame_equal(x.drop(columns=[c for c in ignore if c in x]), y.drop(columns=[c for c in ignore if c in y]))
    ma, mb = torch.load(a / "model_finetuned.pt", weights_only=True), torch.load(b / "model_finetuned.pt", weights_only=True)
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


# of the moment, not of the computation: provenance, measured times
VOLATILE_COLUMNS = {"timestamp", "git_sha", "git_dirty", "wall_s"}


def run_dir_of(args: list[str], results: Path) -> Path:
    """Where `prune-run args results_dir=results` puts its run: results/runs/<run id>."""
    from prune_cli.core import identity

    return results / "runs" / identity.run_id(compose(args, results))


def assert_same_tables(got: Path, want: Path) -> None:
    """Two run directories hold the same CSV tables, value for value, but for the columns of the moment
    (`VOLATILE_COLUMNS`): a run that was stopped, waited or resumed against an uninterrupted one."""
    import pandas as pd

    def tables(run_dir: Path) -> dict:
        return {p.name: pd.read_csv(p).drop(columns=VOLATILE_COLUMNS, errors="ignore") for p in sorted(run_dir.glob("*.csv"))}

    a, b = tables(got), tables(want)
    assert sorted(a) == sorted(b)
    for name in b:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


def lock_freed_after_the_signal(events: list[str]):
    """A stand-in for filelock.FileLock: held by another process at first (a non-blocking acquire times out);
    the next acquire gets it as a Ctrl-C to the process group arrives (`interrupts.request(SIGINT)`), the
    other having freed it on its own stop. `events` records "acquired" and "released"."""
    import signal

    from filelock import Timeout

    from prune_cli.core import interrupts

    class FreedAfterTheSignal:
        def __init__(self, path):
            self.lock_file = path

        def acquire(self, timeout=None):
            if timeout == 0:
                raise Timeout(self.lock_file)  # another process holds it
            interrupts.request(signal.SIGINT)  # the group's Ctrl-C arrives while waiting; the other frees the lock
            events.append("acquired")

        def release(self):
            events.append("released")

    return FreedAfterTheSignal


# ----------------------------------------------------------------------------- tiny networks


class TwoLayer(PrunableNet):
    """d -> h (ReLU) -> k."""

    def __init__(self, d: int = 4, h: int = 3, k: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k))
        self.classifier = "net.2"

    def forward(self, x):
        return self.net(x)


class Chain(PrunableNet):
    """The given layers in sequence; the last is the classifier."""

    def __init__(self, *layers):
        super().__init__()
        self.net = nn.Sequential(*layers)
        self.classifier = f"net.{len(layers) - 1}"

    def forward(self, x):
        return self.net(x)


class BNNet(PrunableNet):
    """4 -> 5 (BatchNorm, ReLU) -> 3."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
        self.classifier = "net.3"

    def forward(self, x):
        return self.net(x)


class TinyConvPool(PrunableNet):
    """1x5x5 -> conv 2 filters (3x3, padding 1) -> 2x2 max-pool -> fc 8 -> 3."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)  # 5x5 -> 5x5
        self.pool = nn.MaxPool2d(2)  # -> 2x2
        self.fc = nn.Linear(8, 3)
        self.classifier = "fc"

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


class TinyConvChain(PrunableNet):
    """4 channels -> conv 8 -> conv 8 (ReLUs) -> adaptive avg-pool 2x2 -> fc 32 -> 4."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32, 4)
        self.classifier = "fc"

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(self.pool(x).flatten(1))


# ----------------------------------------------------------------------------- metrics


def metric_context(model, data, dense=None, run_dir=None, eval_batch_size: int = 16, masks=None, state=None, accel=None):
    """A MetricContext for calling a metric function directly: `dense` is the trained dense model
    (None: no dense reference yet)."""
    from omegaconf import OmegaConf

    from prune_cli.metrics import MetricContext

    names = tuple(f"{n}.weight" for n, _ in model.prunable_layers()) if hasattr(model, "prunable_layers") else ()
    return MetricContext(
        model=model,
        data=data,
        masks=masks or {},
        prunable=names,
        device=torch.device("cpu"),
        train=OmegaConf.create({"eval_batch_size": eval_batch_size}),
        run_dir=Path(run_dir or "."),
        dense=(lambda: dense) if dense is not None else None,
        state=state if state is not None else {},
        **({"accel": accel} if accel is not None else {}),
    )


__all__ = [
    "BNNet",
    "Chain",
    "TinyConvChain",
    "TinyConvPool",
    "TwoLayer",
    "compose",
    "composed",
    "metric_context",
    "random_pruning_ntk",
    "unit_scaled_inputs",
    "validated",
]


class ConcatNet(nn.Module):
    """Two branches joined by torch.cat: what channel tracing cannot follow (compaction and
    channel_group refuse it, naming the operation)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(torch.cat([self.a(x), self.b(x)], 1))


def write_scaling_run(
    root: Path, run_id: str, config: dict, error: float, eps_np: float, allocation: str = "global", achieved_offset: float = 0.0
) -> None:
    """A completed run folder in the real formats (metrics.csv, config.yaml, COMPLETE) holding what
    the scaling-law report reads: the dense and fine-tuned test accuracy (1 - error) and the achieved
    sparsity (the target plus `achieved_offset`). `config` has seed, sparsity, name, method, model
    and any scale keys (dataset, data_pruning)."""
    import pandas as pd
    import yaml

    d = root / "runs" / run_id
    d.mkdir(parents=True)
    seed, sparsity = config["seed"], config["sparsity"]
    ctx = dict(run_id=run_id, name=config["name"], seed=seed, dataset="mnist1d", model="mlp", method="magnitude", score="magnitude")
    ctx.update(allocation=allocation, structure="unstructured", schedule="oneshot", target_sparsity=sparsity)
    rows = [
        {**ctx, "phase": "dense", "split": "test", "metric": "accuracy", "value": 1 - eps_np, "dense_value": 1 - eps_np},
        {**ctx, "phase": "finetuned", "split": "test", "metric": "accuracy", "value": 1 - error, "dense_value": 1 - eps_np},
        {
            **ctx,
            "phase": "finetuned",
            "split": "model",
            "metric": "sparsity_prunable",
            "value": sparsity + achieved_offset,
            "dense_value": 0.0,
        },
    ]
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    (d / "COMPLETE").write_text(run_id)


def outside_plugin(tmp_path: Path, monkeypatch, package: str, module: str, source: str) -> None:
    """Write `source` as `package.module` under tmp_path/src, a package outside the repository, and put
    that folder on the PYTHONPATH of the commands the test starts (docs/architecture.md, "Plugins")."""
    import os

    (tmp_path / "src" / package).mkdir(parents=True)
    (tmp_path / "src" / package / "__init__.py").write_text("")
    (tmp_path / "src" / package / f"{module}.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
