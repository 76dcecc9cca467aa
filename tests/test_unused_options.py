"""Overrides of options that do nothing in the run (prune_cli/run/unused_options.py): rejected before any
work with the key, the value and what the option needs; in a sweep, only an override that no job reads.

Each rejected case ran before, pruning or training exactly as without the override under a run id of
its own. The declarations are checked against the code that reads the options, and the "does nothing"
of the training options against the optimizer and LR schedule themselves.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST, run_cli, snapshot

pytestmark = pytest.mark.xdist_group("unused_options")

REPO = Path(__file__).resolve().parents[1]


def _found(args: list[str]):
    """unused_overrides of the FAST config plus `args`, as prune-run checks them (pre-run pass first)."""
    from helpers import validated

    from prune_cli.run.unused_options import unused_overrides

    return unused_overrides(validated(FAST, args), [*FAST, *args])


def _errors(args: list[str]):
    """The error-level ones (not the notes)."""
    return [f for f in _found(args) if f.error]


@pytest.mark.parametrize(
    "args, override, needs",
    [
        (["method.nm_n=1"], "method.nm_n=1", "method.structure=nm"),
        (["method.nm_m=8"], "method.nm_m=8", "method.structure=nm"),
        (["method.block_shape=[2,2]"], "method.block_shape=[2,2]", "method.structure=bcr or block"),
        (["method.group_norm=l2"], "method.group_norm=l2", "method.structure="),
        (["method.erk_power=0.5"], "method.erk_power=0.5", "method.allocation=er, erk or erk_plus"),
        (["method.allocation=erk", "method.fc_density=0.5"], "method.fc_density=0.5", "method.allocation=erk_plus"),
        (
            ["method.allocation=erk", "method.threshold_impl=topk"],
            "method.threshold_impl=topk",
            "method.allocation=global or layerwise",
        ),
        (["method.faithful_uniform_plus=true"], "method.faithful_uniform_plus=true", "method.allocation=uniform_plus"),
        (["method.match_allocation=erk"], "method.match_allocation=erk", "method.allocation=matched"),
        (["method.round_schedule=linear"], "method.round_schedule=linear", "method.rounds=1"),
        (["schedule=iterative", "schedule.rewind_epoch=1"], "schedule.rewind_epoch=1", "schedule.restart_from=rewind"),
        (["train.optimizer=adam", "train.lr=0.001", "train.momentum=0.5"], "train.momentum=0.5", "train.optimizer=sgd"),
        (["train.milestones=[1]"], "train.milestones=[1]", "train.lr_schedule=multistep"),
        (["finetune.gamma=0.5"], "finetune.gamma=0.5", "finetune.lr_schedule=multistep"),
        (["metrics.hessian.top_k=3"], "metrics.hessian.top_k=3", "metrics.hessian.enabled is false"),
        (
            ["metrics.regions.enabled=false", "metrics.regions.segments=2"],
            "metrics.regions.segments=2",
            "metrics.regions.enabled is false",
        ),
        (["dataset.longtail_ratio=10"], "dataset.longtail_ratio=10", "dataset.imbalance=longtail"),
        (["dataset.augment=true"], "dataset.augment=true", "dataset=synthetic has inputs of shape (2,)"),
        (["accel.channels_last=true"], "accel.channels_last=true", "model=mlp has no 4-D (convolution) weights"),
        (["dense_cache.enabled=false", "dense_cache.dir=elsewhere"], "dense_cache.dir=elsewhere", "dense_cache.enabled is false"),
        (
            ["model=res_mlp", "model.width=16", "schedule=layer_pruning", "schedule.prune_epochs=1", "sparsity=0.5"],
            "sparsity=0.5",
            "schedule=layer_pruning",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_an_override_that_does_nothing_stops_the_run_before_any_work(finished_results, args, override, needs):
    before = snapshot(finished_results)
    fast = [a for a in FAST if not a.startswith("model")] if "model=res_mlp" in args else FAST
    proc = run_cli([*fast, *args], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert f"'{override}' has no effect in this run" in err and needs in err, err
    assert "Traceback" not in err
    assert snapshot(finished_results) == before  # the finished run byte-identical, nothing created


@pytest.mark.parametrize(
    "args",
    [
        ["method.structure=nm", "method.allocation=layerwise", "method.nm_n=1", "method.nm_m=2", "sparsity=0.5"],
        ["method.allocation=erk_plus", "method.erk_power=0.5", "method.fc_density=0.5"],
        ["method=synflow", "method.rounds=2", "method.round_schedule=linear"],
        ["train.lr_schedule=multistep", "train.milestones=[1]", "train.gamma=0.5"],
        ["dataset.imbalance=longtail", "dataset.longtail_ratio=2"],
    ],
    ids=" ".join,
)
def test_the_same_overrides_with_what_they_apply_to_pass(args):
    """Control: each option the cases above reject is accepted where it applies (the pre-run pass and
    the unused-option check on the composed config, as prune-run runs them)."""
    assert _found(args) == []


def test_augmentation_and_channels_last_apply_to_images_and_convolutions():
    """Decided from the dataset's declared input and the pre-run pass's model, without any data: MNIST
    images (1, 28, 28) can be cropped and flipped; LeNet-5 has convolution weights, LeNet-300-100 none."""
    from helpers import composed

    from prune_cli.run.unused_options import unused_options

    images = ["dataset=mnist", "accel.channels_last=true", "dataset.augment=true"]
    errors, _ = unused_options(composed(images, "model=lenet5"))
    assert "dataset.augment" not in errors and "accel.channels_last" not in errors
    errors, _ = unused_options(composed(images, "model=lenet_300_100"))
    assert "dataset.augment" not in errors and "model=lenet_300_100 has no 4-D" in errors["accel.channels_last"]


def test_a_sweep_override_that_no_job_reads_stops_the_sweep_before_any_job(finished_results):
    before = snapshot(finished_results)
    proc = run_cli(["-m", *FAST, "sparsity=0.5,0.6", "method.erk_power=0.5"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "'method.erk_power=0.5' has no effect in any of the sweep's 2 jobs" in proc.stderr
    assert snapshot(finished_results) == before


@pytest.mark.parametrize(
    "swept, idle",
    [
        (["metrics.ntk.enabled=true,false", "metrics.ntk.num_inputs=8,16"], "metrics.ntk.num_inputs"),
        (["metrics.regions.enabled=true,false", "metrics.regions.segments=4,6"], "metrics.regions.segments"),
        (["method.structure=unstructured,block", "method.block_shape=[2,2],[4,4]", "sparsity=0.5"], "method.block_shape"),
        # a note-level idle key (the review): finetune.* under a schedule that never fine-tunes
        (["schedule=gradual", "finetune.lr=0.1,0.01"], "finetune.lr"),
    ],
)
def test_a_sweep_whose_jobs_repeat_one_experiment_under_two_run_ids_stops_before_any_job(finished_results, swept, idle):
    """The audit of parallel launchers: the two jobs with the NTK metric disabled computed the same experiment
    under two run ids (a disabled built-in metric's node stays in the run id), both appended their rows to the
    shared tables, and prune-report counted one seed. Jobs whose overrides differ only in keys idle in both are
    one experiment; with two run ids the sweep is refused."""
    before = snapshot(finished_results)
    proc = run_cli(["-m", *FAST, *swept], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "are the same experiment under two run ids" in proc.stderr and f"{idle}: " in proc.stderr
    assert snapshot(finished_results) == before


def test_a_sweep_override_some_jobs_read_runs_and_the_others_say_so_in_their_logs(tmp_path):
    """global ignores erk_power and at_init never fine-tunes: both are notes in the job's log, not errors."""
    results = tmp_path / "r"
    run_cli(["-m", *FAST, "sparsity=0.5", "schedule=at_init", "method.allocation=global,erk", "method.erk_power=0.5"], results)
    runs = sorted((results / "runs").glob("*/prune-run.log"))
    assert len(runs) == 2
    for log in runs:
        text = log.read_text()
        global_ranking = "method.allocation=global" in (log.parent / ".hydra" / "overrides.yaml").read_text()
        assert "'finetune.epochs=1' has no effect in this run: schedule=at_init never fine-tunes" in text
        assert ("'method.erk_power=0.5' has no effect" in text) == global_ranking


def test_a_schedule_that_never_fine_tunes_notes_the_finetune_override_and_runs(tmp_path):
    proc = run_cli([*FAST, "schedule=lottery_ticket", "schedule.rounds=1"], tmp_path / "r")
    assert "'finetune.epochs=1' has no effect in this run: schedule=lottery_ticket never fine-tunes" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- the declarations


def _method_options_read_in(path: Path, options: set[str]) -> set[str]:
    """The options the code in `path` reads: attributes (`method.nm_n`, `m.erk_power`) and subscripts
    (`m["match_masks"]`), found in its syntax tree, so that a docstring or a column named like an option
    (regions.csv's "layer_densities") is not a read."""
    read = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in options:
            read.add(node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in options:
            read.add(node.slice.value)
    return read


def test_every_method_option_an_allocation_or_structure_reads_is_declared_by_it():
    """An option read by a plugin that does not declare it would be rejected as doing nothing while it
    does something: every method option that any allocation or structure declares is read only in the
    files of the plugins that declare it (plus the schema and the pre-run checks)."""
    from prune_cli.pruning import ALLOCATIONS, STRUCTURES

    declared: dict[str, set[str]] = {}  # option -> modules of the plugins declaring it
    for registry in (ALLOCATIONS, STRUCTURES):
        for name in registry.names():
            plugin = registry.get(name)
            module = (plugin.fn if hasattr(plugin, "fn") else plugin.masks).__module__
            for option in [f.name for f in dataclasses.fields(plugin.options)] if plugin.options else []:
                declared.setdefault(option, set()).add(module)
                declared[option].add(plugin.options.__module__)  # a shared options class (prune_cli/pruning/structure.py)
    assert {"nm_n", "erk_power", "block_shape", "group_norm", "layer_densities"} <= set(declared)
    exempt = {"prune_cli.core.config_base", "prune_cli.run.prevalidate", "prune_cli.run.unused_options"}
    exempt.add("prune_cli.core.paths")  # digests the files match_masks / match_method name (input_file_digests): identity only
    for path in (REPO / "prune_cli").rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if module in exempt:
            continue
        for option in _method_options_read_in(path, set(declared)):
            if option == "threshold_impl" and module == "prune_cli.pruning.allocation":
                continue  # the shared helper `threshold_impl(ctx)`, called only by global and layerwise
            assert module in declared[option], f"{module} reads method.{option}, declared only by {sorted(declared[option])}"


def test_momentum_does_nothing_under_adam_and_milestones_do_nothing_outside_multistep():
    """What the train schema declares unused, checked against the optimizer and the LR schedule."""
    from prune_cli.training import TrainConfig, lr_factor, make_optimizer

    def cfg(**kw):
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), kw)

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    weights = []
    for momentum in (0.0, 0.9):
        m = torch.nn.Linear(3, 2)
        m.load_state_dict(model.state_dict())
        opt = make_optimizer(m, cfg(optimizer="adam", lr=0.01, momentum=momentum))
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        weights.append(m.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
    for schedule in ("constant", "cosine"):
        a = cfg(epochs=10, lr_schedule=schedule)
        b = cfg(epochs=10, lr_schedule=schedule, milestones=[2, 5], gamma=0.5)
        assert [lr_factor(a, e / 2) for e in range(20)] == [lr_factor(b, e / 2) for e in range(20)]
    multistep = cfg(epochs=10, lr_schedule="multistep", milestones=[2, 5], gamma=0.5)
    assert lr_factor(multistep, 6) == 0.25  # and they do something where they apply


# ----------------------------------------------------------------------------- the shared schedule options

SHARED_VALUES = {  # a value other than the default for each shared schedule option
    "rounds": 3,
    "score_weights": "init",
    "restart_from": "reinit",
    "rewind_epoch": 1,
    "retrain": "train",
    "lr_rewind": True,
}
ONLY_SOME = {  # schedules that read only some of the shared options: the ones they read
    "gradual": {"restart_from", "rewind_epoch"},
    "admm": set(),
    "minmax": set(),
    "layer_pruning": set(),
}


def _plan(schedule: str, **options):
    from helpers import composed

    from prune_cli.schedules import SCHEDULES

    cfg = composed(FAST, f"schedule={schedule}", *(["schedule.prune_epochs=1"] if schedule == "layer_pruning" else []))
    for name, value in options.items():
        OmegaConf.update(cfg, f"schedule.{name}", value, merge=False)
    return SCHEDULES.get(schedule)(cfg)


@pytest.mark.parametrize("schedule", sorted(ONLY_SOME))
def test_the_shared_schedule_options_a_schedule_declares_unread_do_not_change_its_plan(schedule):
    """Independent of the declarations: a schedule's steps (prune_cli/schedules/steps.py) are the same
    whatever the value of each shared option it does not read, and `reads` names exactly those that
    change them (rewind_epoch changes the weights a Restart('rewind') loads, not the plan)."""
    from helpers import composed

    from prune_cli.core.config_base import ScheduleConfig

    assert set(OmegaConf.get_type(composed(FAST, f"schedule={schedule}").schedule).reads) == ONLY_SOME[schedule]
    base = _plan(schedule)
    for name in ScheduleConfig.SHARED:
        if name not in ONLY_SOME[schedule]:
            assert _plan(schedule, **{name: SHARED_VALUES[name]}) == base, name
    if "restart_from" in ONLY_SOME[schedule]:
        assert _plan(schedule, restart_from="rewind") != base


@pytest.mark.parametrize(
    "args, override",
    [
        (["schedule=gradual", "schedule.rounds=3"], "schedule.rounds=3"),
        (["schedule=gradual", "schedule.retrain=train"], "schedule.retrain=train"),
        (["schedule=gradual", "schedule.score_weights=init"], "schedule.score_weights=init"),
        (["schedule=admm", "schedule.restart_from=init"], "schedule.restart_from=init"),
        (["schedule=minmax", "dataset.val_fraction=0.2", "schedule.rounds=2"], "schedule.rounds=2"),
        (["schedule=minmax", "dataset.val_fraction=0.2", "schedule.restart_from=rewind"], "schedule.restart_from=rewind"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_shared_schedule_option_the_schedule_does_not_read_is_an_unused_override(args, override):

    found = _found(args)
    schedule = args[0].split("=")[1]
    assert [f"{f.key}={f.value}" for f in found if f.error] == [override]
    assert f"schedule={schedule} does not read it" in found[0].why


def test_gradual_reads_restart_from_and_rewind_epoch():
    """Control: gradual restarts from the rewound weights (Restart(restart_from)), so both are read."""
    args = ["schedule=gradual", "schedule.restart_from=rewind", "schedule.rewind_epoch=1"]
    assert _errors(args) == []


def test_a_schedule_option_the_run_does_not_read_stops_prune_run_before_any_work(finished_results):
    before = snapshot(finished_results)
    proc = run_cli([*FAST, "schedule=gradual", "schedule.rounds=3"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "'schedule.rounds=3' has no effect in this run: schedule=gradual does not read it" in proc.stderr
    assert "Traceback" not in proc.stderr and snapshot(finished_results) == before


def test_lr_rewind_to_epoch_zero_is_an_unused_override():
    """Resuming the LR schedule at epoch 0 is where training starts anyway (experiment._step_train's
    start_epoch); at a later rewind epoch it applies."""
    args = ["schedule=lottery_ticket", "schedule.rounds=1", "schedule.lr_rewind=true"]
    found = _found(args)
    assert [(f.key, f.error) for f in found if f.key.startswith("schedule")] == [("schedule.lr_rewind", True)]
    assert "schedule.rewind_epoch=0" in found[0].why
    later = [*args, "schedule.rewind_epoch=1"]
    assert [f for f in _found(later) if f.key.startswith("schedule")] == []


@pytest.mark.parametrize(
    "args, unused",
    [
        (["schedule=lottery_ticket", "schedule.restart_from=reinit", "schedule.rewind_epoch=1"], False),
        (["schedule=lottery_ticket", "schedule.restart_from=reinit", "schedule.rounds=1", "schedule.rewind_epoch=1"], True),
        (["schedule=oneshot", "schedule.retrain=train", "schedule.lr_rewind=true", "schedule.rewind_epoch=1"], False),
        (["schedule=oneshot", "schedule.retrain=train", "schedule.rewind_epoch=1"], True),
    ],
    ids=["reinit_control", "reinit_one_round", "lr_rewinding", "trained_without_lr_rewind"],
)
def test_rewind_epoch_is_read_where_the_run_rewinds_weights_or_the_lr(args, unused):
    """The reinit control over several rounds takes its masks from rewinding to rewind_epoch (Frankle &
    Carbin 2019), and learning-rate rewinding (restart_from=trained, lr_rewind) resumes the LR schedule
    there (Renda et al. 2020); with one round, or from trained weights without lr_rewind, it does nothing."""
    found = [f.key for f in _found(args) if f.key.startswith("schedule")]
    assert found == (["schedule.rewind_epoch"] if unused else [])


@pytest.mark.parametrize(
    "schedule, option, value",
    [
        ("admm", "invert", "true"),
        ("admm", "shuffle", "true"),
        ("admm", "reinit", "true"),
        ("admm", "rounds", "2"),
        ("admm", "threshold_impl", "strict_kth"),
        ("autoprune", "threshold_impl", "lap_round"),
    ],
)
def test_method_options_a_training_time_method_ignores_are_config_errors(schedule, option, value):
    """ADMM's Z-step and AutoPrune's gates choose the weights themselves (docs/training_time.md): a
    scoring round, a threshold rule or a mask ablation would be ignored, so it is an error, also when
    a preset sets it."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"method\.{option}.*with schedule={schedule}"):
        validated(FAST, f"schedule={schedule}", "method=magnitude", f"method.{option}={value}")


@pytest.mark.parametrize(
    "args, override, needs",
    [
        (["schedule.stop_at_target=false", "sparsity=0.5"], "sparsity=0.5", "the gates decide the sparsity"),
        (["schedule.surrogate=identity", "schedule.leak=0.3"], "schedule.leak=0.3", "schedule.surrogate=leaky_relu"),
    ],
)
def test_autoprune_options_that_do_nothing_are_unused_overrides(args, override, needs):

    typed = ["schedule=autoprune", "method=magnitude", *args]
    found = _errors(typed)
    assert [f"{f.key}={f.value}" for f in found] == [override] and needs in found[0].why
    control = ["schedule=autoprune", "method=magnitude", "sparsity=0.5", "schedule.leak=0.3"]
    assert _errors(control) == []


def test_autoprune_s_leak_does_nothing_with_the_identity_surrogate():
    """Against the rule itself: the identity surrogate's derivative is 1 wherever m is, whatever the
    leak (Xiao et al., NeurIPS 2019, the straight-through choice); the leak scales it where m <= 0."""
    from prune_cli.pruning.train_time.autoprune import surrogate_grad

    m = torch.tensor([-1.0, 0.0, 0.5])
    assert torch.equal(surrogate_grad(m, "identity", 0.1), surrogate_grad(m, "identity", 0.7))
    assert surrogate_grad(m, "leaky_relu", 0.1).tolist() == pytest.approx([0.1, 0.1, 1.0])


# ----------------------------------------------------------------------------- the regions metric's options

OTHER_METHOD_VALUES = {  # a value other than the default for each method-specific option of metrics.regions
    "segments": 2,
    "segment_kind": "direction",
    "segment_length": 0.5,
    "max_line_units": 3,
    "planes": 2,
    "plot": False,
    "tol": 1e-3,
    "eps_area": 1e-3,
    "samples": 50,
    "max_units": 2,
    "f_tol": 1e-2,
    "max_regions": 2,
    "domain": "square",
    "square_radius": 0.5,
    "box": [-9.0, 9.0],
}


@pytest.mark.parametrize("method", ["line", "sample", "exact"])
def test_regions_options_of_another_counting_method_change_no_row(method, tmp_path):
    """Independent of the declarations: the metric's rows (wall times left out) are the same with every
    option that RegionsConfig.READ_BY gives to other methods set to another value, and differ when one
    of this method's own options changes."""
    from helpers import Chain, composed, metric_context

    from prune_cli.data.splits import DataSplits
    from prune_cli.metrics.regions import RegionsConfig, regions

    torch.manual_seed(0)
    model = Chain(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, generator=g)
    data = DataSplits(x, torch.arange(12) % 3, x, torch.arange(12) % 3, x, torch.arange(12) % 3, num_classes=3)

    def rows(**options):
        node = OmegaConf.merge(composed().metrics.regions, {"method": method, "plot": False, **options})
        out = regions(metric_context(model, data, run_dir=tmp_path), "dense", node).tables["regions.csv"]
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in out]

    base = rows()
    other = {k: v for k, v in OTHER_METHOD_VALUES.items() if method not in RegionsConfig.READ_BY[k]}
    assert other and rows(**other) == base
    own = {"line": {"segments": 2}, "sample": {"samples": 50}, "exact": {"box": [-9.0, 9.0]}}[method]
    assert rows(**own) != base


@pytest.mark.parametrize(
    "args, override, needs",
    [
        (["metrics.regions.planes=3"], "metrics.regions.planes=3", "metrics.regions.method=plane"),
        (["metrics.regions.samples=50"], "metrics.regions.samples=50", "metrics.regions.method=sample"),
        (["metrics.regions.segment_length=0.5"], "metrics.regions.segment_length=0.5", "segment_kind=direction"),
        (
            ["metrics.regions.method=plane", "metrics.regions.square_radius=2"],
            "metrics.regions.square_radius=2",
            "metrics.regions.domain=square",
        ),
        (["metrics.regions.mc_sample_factor=8"], "metrics.regions.mc_sample_factor=8", "rank_models has montecarlo"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_regions_options_the_counting_method_does_not_read_are_unused_overrides(args, override, needs):

    found = _errors(args)
    assert [f"{f.key}={f.value}" for f in found] == [override] and needs in found[0].why


def test_regions_options_where_they_apply_pass():

    for args in (
        [
            "metrics.regions.method=plane",
            "metrics.regions.planes=2",
            "metrics.regions.domain=square",
            "metrics.regions.square_radius=2",
        ],
        ["metrics.regions.segment_kind=direction", "metrics.regions.segment_length=0.5"],
        ["metrics.regions.rank_models=[montecarlo]", "metrics.regions.mc_sample_factor=8"],
        ["metrics.regions.method=exact", "metrics.regions.max_units=8", "metrics.regions.box=[-1,1]"],
    ):
        assert _errors(args) == [], args


def test_max_train_samples_no_smaller_than_the_data_is_an_unused_override():
    """build_splits takes a subset only when max_train_samples is below the number of training
    examples; the synthetic data has exactly samples_per_class x num_classes of them."""
    from helpers import validated

    def errors(*args):
        typed = ["dataset.samples_per_class=20", "dataset.num_classes=3", *args]
        return _errors(typed)

    (found,) = errors("dataset.max_train_samples=60")
    assert found.key == "dataset.max_train_samples" and "dataset=synthetic has 60 training examples" in found.why
    assert errors("dataset.max_train_samples=59") == []
    # with an imbalance the kept counts are known only once the data is loaded: not judged here
    assert errors("dataset.max_train_samples=60", "dataset.imbalance=longtail", "dataset.longtail_ratio=2") == []
    # and against build_splits itself: the same splits with max_train_samples equal to the data's size
    from prune_cli.data.splits import RawData, build_splits

    g = torch.Generator().manual_seed(0)
    raw = RawData(torch.randn(60, 2, generator=g), torch.arange(60) % 3, torch.randn(9, 2, generator=g), torch.arange(9) % 3, 3)
    node = validated(FAST, "dataset.samples_per_class=20", "dataset.num_classes=3").dataset
    a = build_splits(raw, node, 0, torch.device("cpu"))
    b = build_splits(raw, OmegaConf.merge(node, {"max_train_samples": 60}), 0, torch.device("cpu"))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)


def test_ntk_output_index_applies_only_to_the_index_output():
    """empirical_ntk reads output_index only for output=index (f = one logit); for sum and trace the
    kernel is the same whatever it is (checked on the function itself)."""
    from helpers import TwoLayer

    from prune_cli.analysis.ntk import empirical_ntk

    typed = ["metrics.ntk.enabled=true", "metrics.ntk.output_index=2"]
    (found,) = _errors(typed)
    assert found.key == "metrics.ntk.output_index" and "metrics.ntk.output=index" in found.why
    typed = [*typed, "metrics.ntk.output=index"]
    assert _errors(typed) == []
    model, x = TwoLayer(seed=0), torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(empirical_ntk(model, x, output="sum", output_index=0), empirical_ntk(model, x, output="sum", output_index=2))
    assert not torch.equal(
        empirical_ntk(model, x, output="index", output_index=0), empirical_ntk(model, x, output="index", output_index=2)
    )


@pytest.mark.parametrize("typed", [["data_pruning=el2n", "data_pruning.keep=1"], ["data_pruning=random", "data_pruning.keep=1.0"]])
def test_a_data_pruning_rule_that_keeps_everything_is_an_unused_override(typed):
    """keep=1 keeps all N examples (kept_count, then every rule's selection of N of N)."""
    found = _errors(typed)
    assert {f.key for f in found} == {"data_pruning", "data_pruning.keep"}
    assert "keeps every training example" in found[0].why
    control = [typed[0], "data_pruning.keep=0.5"]
    assert _errors(control) == []


def test_recall_distortion_save_predictions_applies_only_to_splits_the_run_does_not_record(finished_results):
    """The recorder saves predictions.npz for every split of metrics.splits before any metric runs;
    save_predictions=false then changes nothing (checked on a run: the file holds the test split)."""
    base = ["metrics.recall_distortion.enabled=true", "metrics.recall_distortion.save_predictions=false"]
    (found,) = _errors(base)
    assert found.key == "metrics.recall_distortion.save_predictions" and "metrics.splits=['test']" in found.why
    outside = [*base, "metrics.recall_distortion.splits=[val,test]"]
    assert _errors(outside) == []
    (run,) = (finished_results / "runs").iterdir()  # a default run: the recall_distortion metric off
    with np.load(run / "predictions.npz") as saved:
        assert any("test" in name for name in saved.files)


def test_ntk_mlp_rescale_does_nothing_when_no_weight_is_pruned():
    """NTKLinear multiplies by 1/sqrt(q), q = the fraction of nonzero weights; with sparsity=0 under a
    schedule that prunes to `sparsity` no weight is zeroed, q = 1, and rescale changes no output
    (checked on the layer itself: a dense weight and a half-zeroed one)."""
    from prune_cli.models.ntk_mlp import NTKLinear

    model = ["model=ntk_mlp", "model.widths=[16,16]"]
    (found,) = _errors([*model, "sparsity=0", "model.rescale=false"])
    assert found.key == "model.rescale" and "sparsity=0" in found.why
    assert _errors([*model, "sparsity=0.5", "model.rescale=false"]) == []
    # a schedule that decides its own sparsity can zero weights at sparsity=0 (sparsity is then
    # itself unused): rescale applies
    autoprune = ["schedule=autoprune", "schedule.stop_at_target=false", "schedule.prune_epochs=1"]
    assert {f.key for f in _errors([*model, *autoprune, "sparsity=0", "model.rescale=false"])} == {"sparsity"}
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    on, off = NTKLinear(6, 4, rescale=True), NTKLinear(6, 4, rescale=False)
    off.load_state_dict(on.state_dict())
    assert torch.equal(on(x), off(x))
    with torch.no_grad():
        on.weight[:, :3] = 0
        off.weight[:, :3] = 0
    assert torch.allclose(on(x), off(x) * 2**0.5)


@pytest.mark.parametrize(
    "args, override, needs",
    [
        (["method=lookahead", "method.act_batches=5"], "method.act_batches=5", "method.activation=true"),
        (["method=lookahead", "method.act_batch_size=7"], "method.act_batch_size=7", "method.activation=true"),
        (["method=lookahead", "method.faithful_bn_flatten=true"], "method.faithful_bn_flatten=true", "method.bn=true"),
    ],
)
def test_lookahead_options_of_a_variant_not_chosen_are_unused_overrides(args, override, needs):
    """lookahead_scores estimates firing probabilities (act_batches x act_batch_size) only for LAP-act
    and reads faithful_bn_flatten only where a BatchNorm scale enters (LAP-BN); the masks were the
    default run's."""
    (found,) = _errors(args)
    assert f"{found.key}={found.value}" == override and needs in found.why
    variant = "method.activation=true" if "act_" in override else "method.bn=true"
    # with its variant the option is read (FAST's MLP has no BatchNorm, so LAP-BN's bn itself is unused: below)
    assert {f.key for f in _errors([*args, variant])} <= {"method.bn"}


@pytest.mark.parametrize(
    "args, key",
    [
        (["method=snip", "method.bn_mode=eval"], "method.bn_mode"),
        (["method=grasp", "method.bn_mode=eval"], "method.bn_mode"),
        (["method=lookahead", "method.bn=true"], "method.bn"),
    ],
)
def test_batchnorm_options_on_a_model_without_batchnorm_are_unused_overrides(args, key):
    """bn_mode puts the model in train or eval mode while scoring, and LAP-BN multiplies by the
    following BatchNorm's scale: on a model without BatchNorm (or dropout) neither changes anything
    (checked on the models: the MLP's output is the same in both modes, ResNet-20's is not). Decided
    from the pre-run pass's model, without data."""
    from helpers import composed

    from prune_cli.models import build_model
    from prune_cli.run.unused_options import unused_options

    errors, _ = unused_options(composed(args, "dataset=mnist", "model=lenet_300_100"))
    assert key in errors and "BatchNorm" in errors[key]
    errors, _ = unused_options(composed(args, "dataset=cifar10", "model=resnet20"))
    assert key not in errors
    mlp, resnet = composed("model=mlp").model, composed("model=resnet20", "dataset=cifar10").model
    for node, shape, same in ((mlp, (2,), True), (resnet, (3, 32, 32), False)):
        torch.manual_seed(0)
        net, x = build_model(node, shape, 3), torch.randn(4, *shape)
        train_mode = net.train()(x)
        assert torch.equal(train_mode, net.eval()(x)) == same


def test_milestones_past_dense_training_do_nothing():
    """FAST trains 2 epochs: lr_factor at every fractional epoch of them is 1 with milestones=[2] (no
    decay is ever reached), as with the constant schedule. A milestone inside training applies.
    Judged only without data pruning, whose proxy runs train with the train config for their own
    number of epochs."""
    from prune_cli.training import TrainConfig, lr_factor

    multistep = ["train.lr_schedule=multistep", "train.gamma=0.5"]
    found = {f.key for f in _errors([*multistep, "train.milestones=[2,5]"])}
    assert found == {"train.milestones", "train.gamma"}
    assert _errors([*multistep, "train.milestones=[1,5]"]) == []
    assert "train.milestones" not in {f.key for f in _errors([*multistep, "train.milestones=[2]", "data_pruning=el2n"])}
    # ... but only a rule that trains models with the train config, and only for as long as it trains them
    for rule in (
        ["data_pruning=random"],
        ["data_pruning=class_balanced"],
        ["data_pruning=grand"],  # proxy_epochs=0: scored at initialisation
        ["data_pruning=el2n", "data_pruning.proxy_epochs=2"],
        ["data_pruning=drop", "data_pruning.query_epochs=2"],
    ):
        assert {f.key for f in _errors([*multistep, "train.milestones=[2,5]", *rule])} == {"train.milestones", "train.gamma"}, rule
    for rule in (["data_pruning=el2n", "data_pruning.proxy_epochs=3"], ["data_pruning=forgetting"], ["data_pruning=drop"]):
        assert "train.milestones" not in {f.key for f in _errors([*multistep, "train.milestones=[2,5]", *rule])}, rule
    node = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 2, "lr_schedule": "multistep", "milestones": [2, 5]})
    steps = 6  # per epoch
    assert all(lr_factor(node, s / steps) == 1.0 for s in range(2 * steps))
    assert lr_factor(OmegaConf.merge(node, {"milestones": [1]}), 1.0) == 0.1


def test_a_finetuning_schedule_that_never_acts_is_unused():
    """finetune.milestones=[5] with FAST's finetune.epochs=1 (oneshot: one Train step of finetune.epochs):
    lr_factor is 1 at every fractional epoch of fine-tuning, as with the constant schedule, so the two runs
    gave identical results under two run ids; the train config's version was already refused. Likewise a
    warm-up covering all of fine-tuning leaves the schedule no epoch. ADMM's phase trains the finetune
    config at a constant LR, so under schedule=admm too the milestone acts nowhere (its training-time
    phases of other lengths: tests/test_training_options_audit.py)."""
    from prune_cli.training import TrainConfig, lr_factor

    multistep = ["finetune.lr_schedule=multistep", "finetune.gamma=0.5"]
    assert {f.key for f in _errors([*multistep, "finetune.milestones=[1,5]"])} == {"finetune.milestones", "finetune.gamma"}
    assert _errors([*multistep, "finetune.epochs=3", "finetune.milestones=[1,5]"]) == []  # epoch 1 decays
    warm = {f.key for f in _errors(["finetune.epochs=2", "finetune.warmup_epochs=2", "finetune.lr_schedule=cosine"])}
    assert warm == {"finetune.lr_schedule"}
    assert _errors(["finetune.epochs=3", "finetune.warmup_epochs=2", "finetune.lr_schedule=cosine"]) == []
    admm = [*multistep, "finetune.milestones=[5]", "schedule=admm", "schedule.epochs=4"]
    assert {f.key for f in _errors(admm)} == {"finetune.milestones", "finetune.gamma"}
    # by hand: the factor over fine-tuning's single epoch is 1 with milestones [1, 5]; the warm-up's ratio for 2 of 2 epochs
    node = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 1, "lr_schedule": "multistep", "milestones": [1, 5]})
    assert all(lr_factor(node, s / 8) == 1.0 for s in range(8))
    warm_node = OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 2, "warmup_epochs": 2, "lr_schedule": "cosine"})
    assert all(lr_factor(warm_node, s / 8) == (s / 8 + 1e-12) / 2 for s in range(16))


def test_gradual_curve_options_an_explicit_window_cannot_use_are_unused():
    """Zhu & Gupta's curve has a point between t0 and t_end only when the events leave one: with
    end_step = start_step the single event goes straight to sparsity (power, initial_sparsity and
    frequency changed nothing but the run id), and with frequency >= end_step - start_step the events
    are t0 (initial_sparsity) and t_end (sparsity) whatever the power. FAST trains 12 steps."""
    from omegaconf import OmegaConf as OC

    from prune_cli.schedules.gradual import gradual_sparsity

    single = ["schedule=gradual", "schedule.start_step=5", "schedule.end_step=5"]
    found = {f.key for f in _errors([*single, "schedule.power=2.0", "schedule.initial_sparsity=0.3", "schedule.frequency=3"])}
    assert found == {"schedule.power", "schedule.initial_sparsity", "schedule.frequency"}
    two = ["schedule=gradual", "schedule.start_step=0", "schedule.end_step=8", "schedule.frequency=8"]
    assert {f.key for f in _errors([*two, "schedule.power=2.0", "schedule.initial_sparsity=0.3"])} == {"schedule.power"}
    assert _errors(["schedule=gradual", "schedule.end_step=8", "schedule.frequency=2", "schedule.power=2.0"]) == []
    # end_step -1: judged from the dataset's declared size, FAST's 12 steps (tests/test_unused_train_time.py)
    assert {f.key for f in _errors(["schedule=gradual", "schedule.frequency=100", "schedule.power=2.0"])} == {"schedule.power"}
    assert _errors(["schedule=gradual", "schedule.frequency=5", "schedule.power=2.0"]) == []

    # by hand from the formula: the events and their sparsities do not depend on the options named
    def events(**options):
        node = OC.create({"start_step": 0, "end_step": 8, "frequency": 8, "initial_sparsity": 0.3, "power": 3.0, **options})
        return gradual_sparsity(node, 0.9, 12)

    assert events(power=2.0) == events(power=3.0) == pytest.approx({0: 0.3, 8: 0.9})
    assert events(start_step=5, end_step=5, power=2.0, initial_sparsity=0.0, frequency=3) == {5: 0.9}


def test_a_warmup_longer_than_dense_training_stops_before_the_run():
    """train.warmup_epochs=3 with train.epochs=2: the LR climbed to 2/3 of train.lr and the schedule
    never ran, without a word. The finetune config also serves phases of other lengths (ADMM's,
    AutoPrune's), so the pre-run pass holds only the train config to its own epochs; the finetune
    warm-up is held to finetune.epochs where the plan's fine-tuning is plain Train steps of that length
    (the unused-options pass, tests/test_training_options_audit.py)."""
    from helpers import validated

    from prune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'train.warmup_epochs'.*at most train.epochs=2"):
        validated(FAST, "train.warmup_epochs=3")
    validated(FAST, "train.warmup_epochs=2")
    validated(FAST, "finetune.warmup_epochs=3")  # the pre-run pass does not know the plan's fine-tuning lengths ...
    with pytest.raises(ConfigError, match=r"'finetune.warmup_epochs'.*at most finetune.epochs=1"):
        _found(["finetune.warmup_epochs=3"])  # ... the unused-options pass, which prune-run runs next, does


def test_greedy_forward_gate_sites_that_pick_the_same_layers_are_unused():
    """gate_sites=all gates every non-classifier layer, block_hidden those whose ReLU feeds one module:
    on a plain MLP every hidden layer qualifies, so both select the same units (checked on the sites
    themselves) and `all` was a run id of its own for the same experiment. On ResMLP, whose block
    outputs feed a residual add, the two differ and the option is read."""
    from helpers import composed

    from prune_cli.models import build_model
    from prune_cli.pruning.pruner import PruneContext
    from prune_cli.pruning.scores.greedy_forward import gate_sites
    from prune_cli.run.unused_options import unused_options

    args = ["method=greedy_forward", "method.allocation=layerwise", "method.gate_sites=all"]
    errors, _ = unused_options(composed(args, "model=mlp"))
    assert "method.gate_sites" in errors and "same layers" in errors["method.gate_sites"]
    errors, _ = unused_options(composed(args, "model=res_mlp"))
    assert "method.gate_sites" not in errors
    for model_args, same in ((["model=mlp"], True), (["model=res_mlp"], False)):
        cfg = composed(args, *model_args)
        net = build_model(cfg.model, (40,), 10)
        params = {f"{n}.weight": None for n, _ in net.prunable_layers()}
        sites = {}
        for where in ("all", "block_hidden"):
            method = OmegaConf.merge(cfg.method, {"gate_sites": where})
            sites[where] = gate_sites(net, params, PruneContext(method=method, generator=torch.Generator(), density=0.5))
        assert (sites["all"] == sites["block_hidden"]) == same


@pytest.mark.parametrize(
    "args, key",
    [
        # layer pruning removes whole residual sections by their learned keep probabilities: no method
        # chooses weights (the same accuracy with method=random, snip or allocation=layerwise)
        (["schedule=layer_pruning", "method=random"], "method"),
        (["schedule=layer_pruning", "method.allocation=layerwise"], "method.allocation"),
        # rho x 1 stays at schedule.rho <= rho_max: the ceiling never binds
        (["schedule=admm", "schedule.rho_growth=1", "schedule.rho_max=0.5"], "schedule.rho_max"),
        # AutoPrune's gates freeze at exactly the target's top k: the tolerance is never consulted
        (["schedule=autoprune", "method.sparsity_tolerance=0.1"], "method.sparsity_tolerance"),
    ],
)
def test_training_time_options_their_schedule_never_reads(args, key):
    from helpers import composed

    from prune_cli.run.unused_options import unused_overrides

    base = ["dataset=synthetic", "dataset.samples_per_class=60", "train.epochs=2", "finetune.epochs=1"]
    model = ["model=res_mlp", "schedule.prune_epochs=1"] if "schedule=layer_pruning" in args else ["model=mlp"]
    cfg = composed([*base, *model, *args])
    found = [f for f in unused_overrides(cfg, [*base, *model, *args]) if f.error]
    assert key in {f.key for f in found}, found


def test_a_sweep_override_unused_for_different_reasons_gives_each_jobs_reason():
    """-m train.lr_schedule=cosine,multistep train.milestones=[1] with 1 epoch: the cosine job does not
    read milestones, the multistep job has no milestone inside its epoch. The message gave the first
    job's reason only ("applies only with train.lr_schedule=multistep"), though job 2 is multistep."""
    from helpers import validated

    from prune_cli.run.unused_options import sweep_unused

    base = [*[a for a in FAST if not a.startswith("train.epochs")], "train.epochs=1", "train.milestones=[1]"]
    jobs = [([*base, f"train.lr_schedule={s}"], validated(*base, f"train.lr_schedule={s}")) for s in ("cosine", "multistep")]
    (found,) = [f for f in sweep_unused(jobs) if f.key == "train.milestones"]
    assert "with train.lr_schedule=cosine: it applies only with train.lr_schedule=multistep" in found.why
    assert "with train.lr_schedule=multistep: " in found.why and "inside" in found.why.split("multistep: ")[-1]


@pytest.mark.parametrize(
    "args, key",
    [
        # exact counts the whole box (from the training inputs or metrics.regions.box): the split gave
        # only the rows' label (100/93/93 with split=val as without); sample over the box likewise
        (["metrics.regions.method=exact", "metrics.regions.split=val"], "metrics.regions.split"),
        (["metrics.regions.method=sample", "metrics.regions.split=val"], "metrics.regions.split"),
        # exact draws nothing at random; the seed feeds only the Monte Carlo rank model
        (["metrics.regions.method=exact", "metrics.regions.seed=5", "metrics.regions.rank_models=[binomial]"], "metrics.regions.seed"),
    ],
)
def test_region_options_a_counting_method_never_reads(args, key):
    from helpers import composed

    from prune_cli.run.unused_options import unused_options

    errors, _ = unused_options(composed(args))
    assert key in errors, errors
    read = [a.replace("method=exact", "method=line").replace("method=sample", "method=plane") for a in args]
    assert key not in unused_options(composed(read))[0]


def test_region_bound_options_on_a_convolutional_model_are_unused():
    """The Serra and expected bounds apply to fully connected networks; on cnn1d the rows say
    bound_scope = none, and include_output_layer, rank_models and mc_sample_factor changed nothing
    (checked on bound_columns itself)."""
    from helpers import composed

    from prune_cli.metrics.regions import bound_columns
    from prune_cli.models import build_model
    from prune_cli.run.unused_options import unused_options

    args = ["metrics.regions.include_output_layer=false"]
    errors, _ = unused_options(composed(args, "model=cnn1d"))
    assert "metrics.regions.include_output_layer" in errors
    assert "metrics.regions.include_output_layer" not in unused_options(composed(args, "model=mlp"))[0]
    cfg = composed("model=cnn1d")
    net = build_model(cfg.model, (40,), 10)
    on, off = (bound_columns(net, 2, OmegaConf.merge(cfg.metrics.regions, {"include_output_layer": v})) for v in (True, False))
    assert on == off == {"bound_scope": "none (bounds apply to fully connected networks)"}


# ----------------------------------------------------------------------------- method.reinit and restarts


def _reinit_overwritten(plan) -> bool:
    """Independent of the check: whether every pruning event of `plan` is followed, before any training
    step, by a restart that loads other weights (init, rewind, reinit), which replaces the survivors
    that method.reinit re-drew."""
    from prune_cli.schedules.steps import Prune, Restart

    prunes = [i for i, step in enumerate(plan) if isinstance(step, Prune)]

    def overwritten(i: int) -> bool:
        for step in plan[i + 1 :]:
            if isinstance(step, Restart):
                return step.source != "trained"
            if step.kind not in ("record",):
                return False
        return False

    return bool(prunes) and all(overwritten(i) for i in prunes)


@pytest.mark.parametrize(
    "schedule, replaced",
    [
        (["schedule=lottery_ticket", "schedule.rounds=2"], True),
        (["schedule=post_prune_reinit"], True),
        (["schedule=at_init"], True),
        (["schedule=iterative", "schedule.restart_from=init"], True),
        (["schedule=oneshot"], False),
        (["schedule=iterative"], False),
        (["schedule=gradual", "schedule.restart_from=rewind"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_method_reinit_is_an_unused_override_where_a_restart_replaces_the_survivors(schedule, replaced):
    """method.reinit re-draws the surviving weights at each pruning event (prune_cli/pruning/ablations.py);
    a prune-and-retrain schedule restarting from init, rewind or reinit loads every weight right after
    (experiment._step_restart), so lottery tickets with method.reinit=true trained exactly the ticket
    without it, only the `pruned` phase's evaluation differed: accepted before. The re-initialisation
    control of lottery tickets is schedule.restart_from=reinit. Where training follows the pruning
    event (oneshot, iterative from the trained weights, gradual's events during training), it applies."""
    from helpers import composed

    from prune_cli.schedules import SCHEDULES

    cfg = composed(FAST, *schedule)
    assert _reinit_overwritten(SCHEDULES.get(cfg.schedule.name)(cfg)) == replaced
    found = [f for f in _errors([*schedule, "method.reinit=true"]) if f.key == "method.reinit"]
    assert bool(found) == replaced, found
    if found:
        assert "schedule.restart_from=reinit" in found[0].why and f"restart_from={cfg.schedule.restart_from}" in found[0].why


# ----------------------------------------------------------------------------- a training config that never trains


@pytest.mark.parametrize(
    "args, override",
    [
        (["finetune.epochs=0", "finetune.lr=0.3"], "finetune.lr=0.3"),
        (["finetune.epochs=0", "finetune.optimizer=adam"], "finetune.optimizer=adam"),
        (["train.epochs=0", "sparsity=0.5", "train.lr=0.3"], "train.lr=0.3"),
        (["train.epochs=0", "train.warmup_epochs=5"], "train.warmup_epochs=5"),
        (["schedule=lottery_ticket", "train.epochs=0", "train.momentum=0.5"], "train.momentum=0.5"),
        # rules that train no model with the train config (GraNd at initialisation, the default)
        (["train.epochs=0", "sparsity=0.5", "data_pruning=random", "train.lr=0.3"], "train.lr=0.3"),
        (["train.epochs=0", "sparsity=0.5", "data_pruning=class_balanced", "train.lr=0.3"], "train.lr=0.3"),
        (["train.epochs=0", "sparsity=0.5", "data_pruning=grand", "train.lr=0.3"], "train.lr=0.3"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_an_option_of_a_training_config_that_trains_zero_epochs_is_noted(args, override):
    """`finetune.epochs=0 finetune.lr=0.3` ran under a run id of its own with masks and weights
    tensor-identical to the run without finetune.lr (the audit compared them), without a word: no step
    of the plan trains with that config for an epoch. A note in the run's log, like the finetune node
    of a schedule that never fine-tunes (epochs=0 switches a phase off; the usual overrides stay)."""
    found = {f"{f.key}={f.value}": f for f in _found(args)}
    assert override in found and not found[override].error, found
    assert found[override].why.startswith("no step of this run trains")


@pytest.mark.parametrize(
    "args",
    [
        ["finetune.epochs=0", "finetune.eval_batch_size=64"],  # evaluation reads it
        ["train.epochs=0", "train.weight_decay=0.001", "method=undecayed"],  # the UP score's lambda interpolates it
        ["train.epochs=0", "train.l1=0.001", "metrics.pruning_limit.enabled=true"],  # the pruning-limit metric reads it
        ["schedule=admm", "finetune.epochs=0", "finetune.lr=0.05"],  # ADMM trains schedule.epochs with finetune
        ["train.epochs=0", "data_pruning=el2n", "train.lr=0.05"],  # the proxy runs train with the train config
        ["train.epochs=0", "data_pruning=grand", "data_pruning.proxy_epochs=1", "train.lr=0.05"],
        ["train.epochs=0", "data_pruning=drop", "train.lr=0.05"],  # DRoP's query model too
        ["finetune.epochs=1", "finetune.lr=0.3"],
    ],
    ids=" ".join,
)
def test_options_that_a_zero_epoch_run_still_reads_pass(args):
    given = {a.split("=")[0] for a in args if not a.endswith("epochs=0")}  # FAST's batch sizes are noted, rightly
    assert [f for f in _found(args) if f.key in given] == []


# ----------------------------------------------------------------------------- scoring rounds that change nothing


@pytest.mark.parametrize("allocation", ["global", "layerwise", "erk"])
def test_magnitude_scores_over_several_rounds_give_the_one_round_mask(allocation):
    """The fact the check below relies on, computed: |w| of the survivors does not change between the
    rounds of one pruning event, so each round's top-k is nested in the last and the final mask is the
    one-round mask."""
    from helpers import method_options

    from prune_cli.models.mlp import MLP
    from prune_cli.pruning import PruneContext, prune

    torch.manual_seed(0)
    model = MLP(20, [64, 32], 10)
    masks = [
        prune(
            model,
            0.8,
            PruneContext(method=method_options(allocation=allocation, rounds=r), generator=torch.Generator().manual_seed(0)),
        )
        for r in (1, 3, 7)
    ]
    assert all(torch.equal(masks[0][k], other[k]) for other in masks[1:] for k in masks[0])


@pytest.mark.parametrize(
    "args, flagged",
    [
        (["method.rounds=3"], True),  # magnitude, global
        (["method.allocation=layerwise", "method.rounds=3"], True),
        (["method=snip", "method.rounds=3"], False),  # re-scored on the pruned network each round
        (["method.allocation=layerwise", "method.structure=channel", "method.rounds=3", "sparsity=0.55"], False),
        (["method.invert=true", "method.rounds=3"], False),
        # the allocation reads the current masks each round (the audit of today's changes): rounds matter
        (["method.allocation=matched", "method.match_method=snip", "method.rounds=3"], False),
        (["method.allocation=region_bound", "method.rounds=3", "sparsity=0.7"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_method_rounds_with_magnitude_scores_is_an_unused_override(args, flagged):
    """`method.rounds=2` under method=magnitude ran under a run id of its own with the masks of one round."""
    found = [f for f in _errors(args) if f.key == "method.rounds"]
    assert bool(found) == flagged, found
    if found:
        assert "magnitude" in found[0].why and "one round" in found[0].why


@pytest.mark.parametrize("override", ["fail_fast=true", "allow_failures=true"])
def test_a_sweep_setting_in_a_single_run_is_an_unused_override(finished_results, override):
    """fail_fast and allow_failures decide what a sweep does after a failed run; a single run stops at
    its failure and exits non-zero either way, so the override did nothing (the audit)."""
    before = snapshot(finished_results)
    proc = run_cli([*FAST, override], finished_results, check=False)
    assert proc.returncode == 2 and f"'{override}' has no effect in this run" in proc.stderr, proc.stderr
    assert "sweeps (-m)" in proc.stderr and snapshot(finished_results) == before


@pytest.mark.parametrize("launcher", ["slurm", "parallel"])
def test_a_launcher_chosen_for_a_single_run_is_an_unused_override(finished_results, launcher):
    """Hydra uses the launcher for sweeps only: `prune-run hydra/launcher=slurm ...` without -m trained
    locally (on a cluster's login node) without a word, and so did hydra/launcher=parallel."""
    before = snapshot(finished_results)
    proc = run_cli([*FAST, f"hydra/launcher={launcher}"], finished_results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"'hydra/launcher={launcher}' has no effect in this run" in proc.stderr and "-m" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before


@pytest.mark.parametrize("basic", ["basic", "'basic'"])
def test_the_basic_launcher_named_for_a_single_run_is_accepted(tmp_path, basic):
    """hydra/launcher=basic is the launcher a single run has anyway; quoted, it is the same option."""
    proc = run_cli([*FAST, f"hydra/launcher={basic}"], tmp_path / "r", check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_preset_s_sweep_run_without_multirun_says_that_one_job_ran(tmp_path):
    """Every preset defines hydra.sweeper.params; `prune-run +experiment=X` without -m ran one job and
    dropped the sweep (2 methods x 5 sparsities x 3 seeds) without a word."""
    small = ["dataset.num_samples=400", "model.widths=[16,16]", "train.epochs=1", "finetune.epochs=1", "sparsity=0.5"]
    proc = run_cli(["+experiment=recall_distortion", *small], tmp_path / "r", check=False)
    assert proc.returncode == 0, proc.stderr
    log = next((tmp_path / "r" / "runs").glob("*/prune-run.log")).read_text()
    for text in (proc.stdout + proc.stderr, log):
        assert "this config defines a sweep (method: magnitude,random,gp,undecayed, sparsity: 0.5," in text, text[-2000:]
        assert "only this one job runs" in text and "add -m for the sweep" in text
    quiet = run_cli([*FAST], tmp_path / "q", check=False)  # a config without a sweep: no such line
    assert quiet.returncode == 0 and "defines a sweep" not in quiet.stdout + quiet.stderr


def test_a_plugin_rule_that_does_not_say_how_long_it_trains_leaves_the_train_options_alone():
    """A data-pruning rule from a plugin may train proxies with the train config (ctx.train_proxy) for
    epochs of its own; one that does not declare `train_config_epochs` is taken to (the built-in rules
    declare theirs, 0 for random and class_balanced), so neither train.milestones nor the options of a
    zero-epoch dense phase are named as doing nothing (the review of 2026-12-02 found them refused)."""
    from dataclasses import dataclass

    from helpers import validated

    from prune_cli.data.pruning import KeepFractionConfig, train_config_epochs
    from prune_cli.run.unused_options import _never_trained
    from prune_cli.schedules import SCHEDULES
    from prune_cli.training import TrainConfig

    @dataclass
    class HardestConfig(KeepFractionConfig):  # trains a 3-epoch proxy, says nothing about it
        name: str = "hardest"
        proxy_epochs: int = 3

    def with_plugin_rule(args):
        cfg = validated(FAST, ["data_pruning=random", *args])
        OmegaConf.set_struct(cfg, False)
        cfg.data_pruning = OmegaConf.structured(HardestConfig(keep=0.5))
        return cfg

    cfg = with_plugin_rule(["train.lr_schedule=multistep", "train.milestones=[2]"])
    assert train_config_epochs(cfg) is None
    assert "train.milestones" not in TrainConfig.unused(cfg, "train")
    cfg = with_plugin_rule(["train.epochs=0", "sparsity=0.5", "train.lr=0.3"])
    assert "train.lr" not in _never_trained(cfg, SCHEDULES.get(cfg.schedule.name)(cfg))


def test_a_launcher_a_preset_chooses_is_refused_for_a_single_run_too(finished_results, tmp_path):
    """A preset with `override /hydra/launcher: parallel` (or slurm) run without -m trained in the calling
    process without a word, where the same launcher typed on the command line is refused (above)."""
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    preset = "# @package _global_\ndefaults:\n  - override /hydra/launcher: parallel\nname: pl\n"
    (tmp_path / "mine" / "experiment" / "pl.yaml").write_text(preset)
    before = snapshot(finished_results)
    proc = run_cli(["--config-dir", str(tmp_path / "mine"), "+experiment=pl", *FAST], finished_results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'hydra/launcher'" in proc.stderr and "'parallel'" in proc.stderr and "add -m" in proc.stderr, proc.stderr
    assert snapshot(finished_results) == before
    shown = run_cli(["--config-dir", str(tmp_path / "mine"), "--cfg", "job", "+experiment=pl", *FAST], finished_results)
    assert "name: pl" in shown.stdout  # --cfg job shows one job's config, also of a sweep: not refused
