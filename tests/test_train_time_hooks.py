"""The training loop's hook points (prune_cli/train_hooks.py, docs/training_time.md): each is called
where the design says, a hook's state makes a resumed phase bit-identical to an uninterrupted one,
`finished()` stops at an epoch boundary, validation runs in the hook's `evaluation` context, and the
step type dispatches through the experiment."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.data.splits import DataSplits
from prune_cli.train_hooks import TrainHook
from prune_cli.training import TrainProgress, train
from tests.helpers import TwoLayer, outside_plugin


def data() -> DataSplits:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return DataSplits(x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], num_classes=3)


def cfg(epochs: int = 3, **kw):
    base = dict(epochs=epochs, batch_size=16, eval_batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False)
    base.update(weight_decay=0.0, lr_schedule="constant", milestones=[], gamma=0.1, warmup_epochs=0, l1=0.0)
    base.update(kw)
    return OmegaConf.create(base)


class ScaledGate(TrainHook):
    """Uses every hook point: an auxiliary scale `a` (its own Adam optimizer) multiplies the first
    layer's output in the forward pass; a penalty c * a^2 whose c grows after every step; a gradient
    edit (the first bias gets no gradient); masks that drop the first weight after step 5."""

    def __init__(self):
        self.calls: list[str] = []

    def start(self, model):
        self.calls.append("start")
        self.a = torch.ones(1, requires_grad=True)
        self.opt = torch.optim.Adam([self.a], lr=0.05)
        self.c = 0.0
        self.steps = 0
        self.masks = None

    def forward(self, model, x):
        h = torch.relu(model.net[0](x) * self.a)
        return model.net[2](h)

    def extra_loss(self, model, x, y, logits):
        return self.c * (self.a**2).sum()

    def before_step(self, model, step):
        model.net[0].bias.grad = None
        self.opt.step()
        self.opt.zero_grad()

    def after_step(self, model, step):
        self.steps += 1
        self.c += 0.01
        if self.steps == 5:
            mask = torch.ones_like(model.net[0].weight, dtype=torch.bool)
            mask[0, 0] = False
            self.masks = {"net.0.weight": mask}
            return self.masks
        return None

    def current_masks(self):
        return self.masks

    @contextlib.contextmanager
    def evaluation(self, model):
        self.calls.append("evaluation")
        w = model.net[0].weight.data.clone()
        b = model.net[0].bias.data.clone()
        model.net[0].weight.data *= self.a.detach()
        model.net[0].bias.data *= self.a.detach()
        try:
            yield
        finally:
            model.net[0].weight.data.copy_(w)
            model.net[0].bias.data.copy_(b)

    def epoch_row(self):
        return {"scale": float(self.a.detach()), "penalty_c": self.c}

    def state_dict(self):
        state = {"a": self.a.detach().clone(), "opt": copy.deepcopy(self.opt.state_dict()), "c": self.c, "steps": self.steps}
        return state if self.masks is None else {**state, "masks": {n: m.clone() for n, m in self.masks.items()}}

    def resume(self, model, state):
        self.calls.append("resume")
        self.a = state["a"].clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.a], lr=0.05)
        self.opt.load_state_dict(state["opt"])
        self.c, self.steps = state["c"], state["steps"]
        self.masks = state.get("masks")


def run(hook, epochs=3, model=None, resume=None, keep=None):
    model = model or TwoLayer(seed=3)
    gen = torch.Generator().manual_seed(7)
    rows = train(model, data(), cfg(epochs), gen, "phase", hook=hook, resume=resume, on_epoch_end=keep)
    return model, rows


def test_every_hook_point_takes_effect():
    hook = ScaledGate()
    model, rows = run(hook)
    plain, _ = run(None)
    assert hook.calls[0] == "start" and hook.calls.count("evaluation") == 3
    assert float(model.net[0].weight[0, 0].detach()) == 0.0 and float(plain.net[0].weight[0, 0].detach()) != 0.0  # after_step masks
    assert torch.equal(model.net[0].bias, TwoLayer(seed=3).net[0].bias)  # before_step removed its gradient
    assert float(hook.a.detach()) != 1.0  # the auxiliary parameter trained with its own optimizer
    assert [r["penalty_c"] for r in rows] == pytest.approx([0.04, 0.08, 0.12])  # epoch_row; 4 steps per epoch


def test_validation_runs_in_the_hooks_evaluation_context():
    hook = ScaledGate()
    model, rows = run(hook, epochs=1)
    d = data()
    with torch.no_grad():
        logits = hook.forward(model, d.val_x)
    expected = float((logits.argmax(1) == d.val_y).float().mean())
    assert rows[0]["val_accuracy"] == expected


@pytest.mark.parametrize("stop_after", [1, 2])  # epoch 2: after the hook's masks (step 5) must be enforced again
def test_resumed_phase_is_bit_identical_to_an_uninterrupted_one(stop_after):
    full_hook = ScaledGate()
    full_model, full_rows = run(full_hook)

    saved = {}

    def keep(row, progress: TrainProgress):
        if progress.epoch == stop_after:
            saved["model"] = copy.deepcopy(full_model_1.state_dict())
            saved["progress"] = copy.deepcopy(progress)

    full_model_1 = TwoLayer(seed=3)
    run(ScaledGate(), epochs=3, model=full_model_1, keep=keep)  # checkpointed after an epoch (as state.pt would be)

    resumed_model = TwoLayer(seed=99)
    resumed_model.load_state_dict(saved["model"])
    hook = ScaledGate()
    _, rows = run(hook, model=resumed_model, resume=saved["progress"])
    assert hook.calls[0] == "resume" and "start" not in hook.calls
    for name, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name
    assert torch.equal(hook.a, full_hook.a) and hook.c == full_hook.c
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in full_rows[stop_after:]]


class StopAfter(TrainHook):
    def __init__(self, steps: int):
        self.limit, self.steps = steps, 0

    def after_step(self, model, step):
        self.steps += 1

    def finished(self):
        return self.steps >= self.limit


def test_finished_stops_at_the_end_of_the_epoch():
    hook = StopAfter(5)  # 4 steps per epoch: reached during epoch 2, which still completes
    _, rows = run(hook, epochs=10)
    assert [r["epoch"] for r in rows] == [1, 2] and hook.steps == 8


def test_no_hook_and_a_no_op_hook_train_identically():
    a, rows_a = run(None)
    b, rows_b = run(TrainHook())
    for name, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], value)
    assert rows_a == rows_b


def test_a_no_op_hook_adds_nothing_to_the_loss():
    model = TwoLayer()
    x = torch.randn(3, 4)
    assert TrainHook().extra_loss(model, x, torch.zeros(3, dtype=torch.long), model(x)) is None
    assert torch.equal(TrainHook().forward(model, x), model(x))


OUTSIDE_METHOD = '''
from dataclasses import dataclass

import torch

from prune_cli.core.config_base import ScheduleConfig, config_schema
from prune_cli.pruning.train_time import register_train_hook
from prune_cli.schedules import register_schedule
from prune_cli.schedules.steps import Dense, Record, TrainWithHook
from prune_cli.train_hooks import TrainHook


@config_schema("schedule", "drop_first_row")
@dataclass
class DropFirstRowConfig(ScheduleConfig):
    name: str = "drop_first_row"
    strength: float = 0.5


class DropFirstRow(TrainHook):
    """Penalises the first row of the first prunable weight, then removes it."""

    def __init__(self, ctx):
        self.name, self.strength = ctx.prunable[0], ctx.config.schedule.strength

    def start(self, model):
        self.w = dict(model.named_parameters())[self.name]

    def resume(self, model, state):
        self.start(model)

    def extra_loss(self, model, x, y, logits):
        return self.strength * self.w[0].pow(2).sum()

    def final_masks(self):
        keep = torch.ones_like(self.w, dtype=torch.bool)
        keep[0] = False
        return {self.name: keep}


@register_train_hook("drop_first_row")
def build(ctx):
    return DropFirstRow(ctx)


@register_schedule("drop_first_row")
def plan(cfg):
    return [Dense(), Record("dense"), TrainWithHook("drop_first_row", "finetune", "shaped", 2), Record("finetuned")]
'''


def _forget_module(module: str) -> None:
    """Remove what `module` registered (schedules, training-time hooks, config schemas), so that later
    tests see the registries the package's own modules fill (tests/test_plugins.py's index check)."""
    from prune_cli.core.config_base import SCHEMAS
    from prune_cli.pruning.train_time import TRAIN_HOOKS
    from prune_cli.schedules import SCHEDULES

    def of(obj) -> bool:
        return getattr(obj, "__module__", None) == module or getattr(type(obj), "__module__", None) == module

    for registry in (SCHEDULES, TRAIN_HOOKS):
        for name in [n for n, obj in registry._entries.items() if of(obj)]:
            del registry._entries[name]
    for names in SCHEMAS.values():
        for name in [n for n, cls in names.items() if of(cls)]:
            del names[name]


def test_a_method_from_outside_the_repository_plugs_in(tmp_path, monkeypatch, request):
    """docs/training_time.md: one module with the config, the hook and the plan, named by plugins=[...]."""
    import pandas as pd

    from conftest import FAST
    from prune_cli.core import plugins
    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run as run_experiment
    from tests.helpers import compose

    (tmp_path / "outside_train_hook.py").write_text(OUTSIDE_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    # on a copy of the index: left in the process's, the module was an outside plugin of every later test
    # (whose provenance then recorded it); its registered names are removed at the end (_forget_module)
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    request.addfinalizer(lambda: _forget_module("outside_train_hook"))
    plugins.add_modules(["outside_train_hook"])
    results = tmp_path / "results"
    cfg = compose([*FAST, "plugins=[outside_train_hook]", "schedule=drop_first_row", "dense_cache.enabled=false"], results)
    run_dir = run_experiment(cfg, results / "runs" / run_id(cfg))
    masks = torch.load(run_dir / "masks.pt", weights_only=True)
    ((name, keep),) = masks.items()
    assert not bool(keep[0].any()) and bool(keep[1:].all())
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history[history.phase == "shaped"].epoch) == [1, 2]
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert set(rows.phase) == {"dense", "finetuned"}


def _documented_method() -> str:
    """The Python block of docs/training_time.md's "Writing a method"."""
    from tests.conftest import REPO

    section = (REPO / "docs" / "training_time.md").read_text().split("## Writing a method\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _run_method(tmp_path, monkeypatch, source: str, *args: str):
    """`source` as `skellab/my_method.py` outside the repository, run with prune-run in a new interpreter."""
    from tests.conftest import FAST, run_cli

    outside_plugin(tmp_path, monkeypatch, "skellab", "my_method", source)
    results = tmp_path / "results"
    overrides = ["plugins=[skellab.my_method]", *FAST, "schedule=my_method", "sparsity=0.5", "dense_cache.enabled=false"]
    return run_cli([*overrides, *args], results, check=False), results


def test_the_documented_method_skeleton_runs_as_printed(tmp_path, monkeypatch):
    """Plugin audit: the skeleton had no imports, no final_masks and no steps_needed, though its step
    runs epochs=-1; copied and completed as written, it crashed after dense training with "internal
    error". Now it runs: its phase lasts ceil(steps / steps per epoch) epochs and it prunes to the target."""
    import math

    import pandas as pd

    proc, results = _run_method(tmp_path, monkeypatch, _documented_method(), "schedule.steps=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (results / "runs").iterdir()
    history = pd.read_csv(run / "history.csv")
    assert list(history[history.phase == "shaped"].epoch) == [1]  # 3 steps fit in one epoch of any FAST split
    rows = pd.read_csv(run / "metrics.csv")
    sparsity = rows[(rows.metric == "sparsity_prunable")].set_index("phase").value
    assert sparsity["pruned"] == pytest.approx(0.5, abs=0.01) and sparsity["finetuned"] == pytest.approx(0.5, abs=0.01)
    assert math.isfinite(rows[(rows.metric == "accuracy") & (rows.phase == "finetuned")].value.iloc[0])


BROKEN_METHODS = {  # edit of the documented skeleton -> what the one message must say
    "no steps_needed": (
        ("    def steps_needed(self):", "    def _unused(self):"),
        ["'my_method' (module skellab.my_method)", "must define steps_needed()", "returned None"],
    ),
    "final_masks returns None": (
        ("        return prune_to_density(self.model, self.ctx.density, self.ctx.prune)", "        return None"),
        ["'my_method' (module skellab.my_method)", "MyHook.final_masks() returned None", "stay dense at target sparsity 0.5"],
    ),
}


@pytest.mark.parametrize("name", list(BROKEN_METHODS))
def test_a_method_that_breaks_the_hook_contract_is_named(tmp_path, monkeypatch, name):
    """Plugin audit: a hook without steps_needed() on an epochs=-1 step failed after dense training with
    "internal error ... this is a bug in prune-cli" and a TypeError's traceback; a hook whose final_masks()
    returns None, with no later pruning step, gave a "pruned" run that was dense (sparsity 0.0000 at
    target 0.5), exit 0, no word. Both are the plugin's mistakes: one message naming the method, its
    module and what it must do, no traceback, and no finished run."""
    (old, new), said = BROKEN_METHODS[name]
    source = _documented_method()
    assert old in source
    proc, results = _run_method(tmp_path, monkeypatch, source.replace(old, new), "train.epochs=1")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    for part in said:
        assert part in proc.stderr, proc.stderr[-3000:]
    assert not list(results.glob("runs/*/COMPLETE")) and not list(results.glob("runs/*/masks.pt"))
