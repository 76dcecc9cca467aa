"""Plugin discovery (prune_cli/core/plugins.py): the static index agrees with what the modules
register, a run imports only the plugins it chose, and plugins from outside the repository (a
score, a dataset, a metric, an allocation and a schedule, each one short file) run with no edit to
any file of the repository."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
import torch

from prune_cli.core import plugins
from prune_cli.core.config_base import SCHEMAS
from tests.conftest import FAST, REPO, run_cli
from tests.helpers import outside_plugin

KIND_REGISTRIES = {
    "score": "prune_cli.pruning:SCORES",
    "allocation": "prune_cli.pruning:ALLOCATIONS",
    "structure": "prune_cli.pruning:STRUCTURES",
    "schedule": "prune_cli.schedules:SCHEDULES",
    "dataset": "prune_cli.data:DATASETS",
    "model": "prune_cli.models:MODELS",
    "metric": "prune_cli.metrics:METRICS",
}


def _registry(kind: str):
    module, name = KIND_REGISTRIES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def test_declarations_read_literal_names_only():
    source = textwrap.dedent("""
        @register_score("gp", "gradient_magnitude", options=DataScoreConfig)
        @DATASETS.register("mnist", 'cifar10')  # comment
        @config_schema("method", "gp")
        @register_metric(NAME)
        @dataclass
    """)
    kinds, schemas = plugins.declarations(source)
    assert kinds == [("score", "gp"), ("score", "gradient_magnitude"), ("dataset", "mnist"), ("dataset", "cifar10")]
    assert schemas == [("method", "gp")]


def test_index_matches_what_the_modules_register():
    """Importing every indexed module registers exactly the names the index read from the source."""
    idx = plugins.index()
    for module in sorted(set(idx.kinds.values()) | set(idx.schemas.values())):
        importlib.import_module(module)
    for kind in KIND_REGISTRIES:
        registered = set(_registry(kind)._entries)
        indexed = {n for k, n in idx.kinds if k == kind}
        assert registered == indexed, kind
    declared = {(g, n) for g, names in SCHEMAS.items() for n in names if n != "base" or g == "train"}
    assert declared == set(idx.schemas), set(idx.schemas) ^ declared


LAZY = """
import json, sys
from hydra import compose, initialize_config_dir
import prune_cli.cli  # noqa: F401
from prune_cli.core import plugins
from prune_cli.run.prevalidate import validate
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose("config", overrides=sys.argv[2:])
validate(cfg)
idx = plugins.index()
chosen = set(idx.kinds.values()) - {m for (k, _), m in idx.kinds.items() if k == "metric"}
print(json.dumps({"plugins": sorted(m for m in sys.modules if m in chosen),
                  "heavy": [m for m in ("scipy", "matplotlib", "torchvision", "pandas") if m in sys.modules]}))
"""


@pytest.mark.xdist_group("plugins_fresh_interpreter")  # shares its module fixture
def test_a_run_imports_only_the_plugins_it_chose(fresh_interpreter):
    """Composing and validating `method=magnitude` imports one score, one allocation, one structure,
    one dataset, one model, one schedule and one data-pruning module, and none of scipy, matplotlib or torchvision."""
    got = fresh_interpreter.imports
    assert got["plugins"] == sorted(
        [
            "prune_cli.data.pruning.none",
            "prune_cli.data.synthetic",
            "prune_cli.models.mlp",
            "prune_cli.pruning.scores.magnitude",
            "prune_cli.pruning.allocations.global_ranking",
            "prune_cli.pruning.structures.unstructured",
            "prune_cli.schedules.prune_and_retrain",
        ]
    )
    assert not {"scipy", "matplotlib", "torchvision"} & set(got["heavy"]), got["heavy"]


# ----------------------------------------------------------------------------- plugins from outside

LAB = {
    "taylor.py": '''
        """A score: first-order Taylor importance (w * dL/dw)^2 (Molchanov et al., CVPR 2019)."""
        from dataclasses import dataclass

        from prune_cli.core.config_base import config_schema
        from prune_cli.pruning.scores import register_score
        from prune_cli.pruning.scores.common import DataScoreConfig
        from prune_cli.pruning.scores.gp import weight_gradients


        @config_schema("method", "taylor")
        @dataclass
        class TaylorConfig(DataScoreConfig):
            name: str = "taylor"
            score: str = "taylor"


        @register_score("taylor", options=TaylorConfig)
        def taylor(model, params, ctx):
            grads = weight_gradients(model, params, ctx, "taylor")
            return {n: (params[n].detach() * grads[n]) ** 2 for n in params}
    ''',
    "rings.py": '''
        """A dataset: concentric rings in the plane, class k near radius k + 1."""
        from dataclasses import dataclass

        import torch

        from prune_cli.core.config_base import DatasetConfig, config_schema
        from prune_cli.data import DATASETS
        from prune_cli.data.splits import RawData


        @config_schema("dataset", "rings")
        @dataclass
        class RingsConfig(DatasetConfig):
            name: str = "rings"
            num_classes: int = 3
            per_class: int = 60

            @classmethod
            def declared_input(cls, node):
                return (2,), int(node.num_classes)


        @DATASETS.register("rings")
        def rings(cfg):
            g = torch.Generator().manual_seed(0)

            def make(n):
                y = torch.arange(cfg.num_classes).repeat_interleave(n)
                angle = torch.rand(len(y), generator=g) * 6.2832
                radius = y.float() + 1 + 0.1 * torch.randn(len(y), generator=g)
                return torch.stack([radius * angle.cos(), radius * angle.sin()], 1), y

            (tx, ty), (sx, sy) = make(cfg.per_class), make(cfg.per_class // 2)
            return RawData(tx, ty, sx, sy, num_classes=cfg.num_classes)
    ''',
    "weight_norm.py": '''
        """A metric: the p-norm of all prunable weights of the current model."""
        from dataclasses import dataclass

        from prune_cli.core.config_base import config_schema
        from prune_cli.metrics import MetricResult, register_metric


        @config_schema("metric", "weight_norm")
        @dataclass
        class WeightNormConfig:
            enabled: bool = False
            p: int = 2


        @register_metric("weight_norm")
        def weight_norm(exp, phase, node):
            params = dict(exp.model.named_parameters())
            total = sum(float(params[n].detach().abs().pow(node.p).sum()) for n in exp.prunable) ** (1 / node.p)
            return MetricResult(scalars=[{"split": "model", "metric": "weight_norm", "value": total}])
    ''',
    "first_dense.py": '''
        """An allocation: the first prunable layer stays dense, the others share the rest uniformly."""
        from prune_cli.pruning.allocation import counts_from_densities, register_allocation, total_kept


        @register_allocation("first_dense")
        def first_dense(scores, density, ctx):
            sizes = {n: s.numel() for n, s in scores.items()}
            first, total = next(iter(sizes)), total_kept(scores, density)
            rest = (total - sizes[first]) / (sum(sizes.values()) - sizes[first])
            dens = {n: 1.0 if n == first else rest for n in sizes}
            return counts_from_densities(dens, sizes, total, frozen=(first,))
    ''',
    "prune_twice.py": '''
        """A schedule: prune half-way (in log density), record, prune to the target, fine-tune."""
        from dataclasses import dataclass

        from prune_cli.core.config_base import ScheduleConfig, config_schema
        from prune_cli.schedules import register_schedule
        from prune_cli.schedules.steps import Dense, Prune, Record, Restart, Train


        @config_schema("schedule", "prune_twice")
        @dataclass
        class PruneTwiceConfig(ScheduleConfig):
            name: str = "prune_twice"
            reads = ()  # its plan reads none of ScheduleConfig's prune-and-retrain options (rounds, ...)


        @register_schedule("prune_twice")
        def prune_twice(cfg):
            final = 1 - cfg.sparsity  # steps carry densities (fraction kept)
            return [Dense(), Record("dense"), Prune(final ** 0.5), Record("halfway"), Prune(final),
                    Record("pruned"), Restart("trained"), Train("finetune"), Record("finetuned")]
    ''',
}
MODULES = [f"lab.{name.removesuffix('.py')}" for name in LAB]


def _write_lab(root: Path) -> Path:
    (root / "lab").mkdir(parents=True)
    (root / "lab" / "__init__.py").write_text("")
    for name, text in LAB.items():
        (root / "lab" / name).write_text(textwrap.dedent(text).lstrip())
    return root


def _git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.xdist_group("plugins_lab_runs")  # shares its module fixture
def test_five_outside_plugins_run_without_editing_the_repository(lab_runs):
    """A score, a dataset, a metric, an allocation and a schedule, each one file outside the
    repository, used together in one run; the results are checked against their definitions."""
    returncode, stdout, stderr, lab_before = lab_runs.done["five"]
    assert returncode == 0, stdout + stderr
    assert lab_before == []  # the first run of the interpreter: it imported the five itself
    assert lab_runs.git_after == lab_runs.git_before  # nothing in the repository changed (any run)
    results = lab_runs.results["five"]
    (run,) = (results / "runs").iterdir()
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics.phase.unique()) == ["dense", "halfway", "pruned", "finetuned"]
    sparsity = metrics[metrics.metric == "sparsity_prunable"].set_index("phase").value
    assert sparsity["halfway"] == pytest.approx(0.5, abs=0.01) and sparsity["pruned"] == pytest.approx(0.75, abs=0.01)
    layers = pd.read_csv(run / "layers.csv")
    first = layers[(layers.phase == "pruned")].iloc[0]
    assert first.density == 1.0  # the allocation kept the first layer dense
    state = torch.load(run / "model_finetuned.pt")
    prunable = layers[(layers.phase == "finetuned") & layers.prunable].layer
    norm = sum(float(state[f"{layer}.weight"].pow(2).sum()) for layer in prunable) ** 0.5
    value = metrics[(metrics.metric == "weight_norm") & (metrics.phase == "finetuned")].value.item()
    assert value == pytest.approx(norm, rel=1e-6)
    assert pd.read_csv(run / "per_class.csv")["class"].nunique() == 3  # the rings dataset's classes


# Every check that needs the `lab` plugins imported shares one interpreter (a new one costs 5-14 s of
# start-up on a loaded 2-core machine; outside plugins cannot run in the test process, whose imports
# they would outlive: docs/performance.md#test-suite). tests/cli_runner.py runs each prune-run there as
# a console command would. The order is what each check needs: the five-plugin run comes first, with
# nothing imported or composed before it (it imports its plugins itself, and the metrics schema is
# built with its metric); the rejected runs cannot depend on what was imported before (their checks
# run before any plugin is imported, or only read a plugin's config class), but each records the lab
# modules it found imported so the tests can say so; the clash, which leaves a half-registered
# module, comes last.
LAB_RUNS = """
import copy, json, sys
from pathlib import Path
from typing import NamedTuple
sys.path.insert(0, sys.argv[1])
from cli_runner import run_in_process
from hydra import compose, initialize_config_dir
import prune_cli.cli  # noqa: F401
from prune_cli.cli import command_line_plugins
from prune_cli.core import plugins
from prune_cli.core.identity import run_id
out = {}
for name, step in json.loads(sys.argv[2]):
    lab_before = sorted(m for m in sys.modules if m == "lab" or m.startswith("lab."))
    if step["kind"] == "run":
        p = run_in_process(step["argv"], cwd=Path(step["cwd"]), env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
        out[name] = [p.returncode, p.stdout, p.stderr, lab_before]
    else:  # run ids of several override lists, composed the way prune-run composes (plugins first)
        index = copy.deepcopy(plugins.index())
        ids = []
        for overrides in step["overrides"]:
            plugins.add_modules(command_line_plugins(overrides))
            with initialize_config_dir(config_dir=step["configs"], version_base="1.3"):
                ids.append(run_id(compose("config", overrides=overrides)))
        plugins._INDEX = index  # noqa: SLF001 - as the runs after it would find it in a new interpreter
        out[name] = [ids, lab_before]
Path(sys.argv[3]).write_text(json.dumps(out))
"""

FIVE = [
    f"plugins=[{','.join(MODULES)}]",
    "dataset=rings",
    "method=taylor",
    "method.allocation=first_dense",
    "schedule=prune_twice",
    "metrics.weight_norm.enabled=true",
    "model=mlp",
    "model.widths=[16,16]",
    "train.epochs=2",
    "finetune.epochs=1",
    "train.batch_size=32",
    "finetune.batch_size=32",
    "sparsity=0.75",
]
BAD_PLUGIN_LISTS = {  # name: (arguments, the key the message names)
    "no_such_module": (["plugins=[no_such_lab.scores]"], "'plugins'"),
    "not_a_list": (["plugins=lab.taylor"], "'plugins'"),
    "clash": (["plugins=[lab.clash]"], "'plugins'"),  # registers the built-in name `magnitude` again
    # the package instead of its plugin module: indexed, never imported, so it did nothing, silently
    "declares_nothing": (["plugins=[lab]"], "lab declares none"),
}
CLASH = (
    "from prune_cli.pruning.scores import register_score\n\n\n"
    '@register_score("magnitude")\ndef mine(model, params, ctx):\n'
    "    return {}\n"
)


class LabRuns(NamedTuple):
    done: dict  # name: [exit code, stdout, stderr, lab modules imported before] (run ids: [ids, lab modules])
    results: dict[str, Path]  # name: its results_dir
    git_before: str
    git_after: str


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def lab_runs(tmp_path_factory) -> LabRuns:
    """The runs and compositions with the `lab` plugins, in one new interpreter, in this order: the
    five-plugin run, a preset that sets `plugins`, two bad plugin lists that import nothing, the run
    ids with the metric plugin, an invalid option of the outside score, and a plugin that clashes
    with a built-in name."""
    base = tmp_path_factory.mktemp("lab_runs")
    root = _write_lab(base / "src")
    (root / "lab" / "clash.py").write_text(CLASH)
    extra = base / "extra" / "experiment"
    extra.mkdir(parents=True)
    (extra / "with_lab.yaml").write_text("# @package _global_\nplugins: [lab.taylor]\n")
    with_plugin = ["plugins=[lab.weight_norm]"]
    runs = {
        "five": FIVE,
        "config_file": ["--config-dir", str(base / "extra"), "+experiment=with_lab"],
        **{name: args for name, (args, _) in BAD_PLUGIN_LISTS.items() if name != "clash"},
        "run_ids": None,
        "options": ["plugins=[lab.taylor]", "method=taylor", "method.batches=0"],
        "clash": BAD_PLUGIN_LISTS["clash"][0],
    }
    results = {name: base / name / "results" for name in runs}
    plan = []
    for name, args in runs.items():
        if args is None:
            overrides = [with_plugin, [*with_plugin, "metrics.weight_norm.enabled=true"]]
            plan.append([name, {"kind": "run_ids", "configs": str(REPO / "configs"), "overrides": overrides}])
            continue
        results[name].parent.mkdir()
        plan.append([name, {"kind": "run", "argv": [*args, f"results_dir={results[name]}"], "cwd": str(results[name].parent)}])
    old = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *([old] if old else [])])}
    record = base / "runs.json"
    git_before = _git_status()
    command = [sys.executable, "-c", LAB_RUNS, str(REPO / "tests"), json.dumps(plan), str(record)]
    subprocess.run(command, env=env, check=True, timeout=600)
    done = json.loads(record.read_text())
    assert list(done) == list(runs)
    return LabRuns(done, results, git_before, _git_status())


@pytest.mark.xdist_group("plugins_lab_runs")  # shares its module fixture
def test_plugin_options_are_validated_like_built_in_ones(lab_runs):
    """The outside score extends DataScoreConfig, so the shared data-score checks apply to it."""
    returncode, _, stderr, _ = lab_runs.done["options"]
    assert returncode == 2
    assert "'method.batches': 0" in stderr
    assert not lab_runs.results["options"].exists()


@pytest.mark.xdist_group("plugins_fresh_interpreter")  # shares its module fixture
def test_entry_point_plugins_need_no_command_line(fresh_interpreter):
    """An installed package naming a module in the `prune_cli.plugins` entry-point group: its score
    runs with no `plugins=` on the command line (and nothing imported it before the run)."""
    returncode, stdout, stderr, before = fresh_interpreter.runs["entry_point"]
    assert returncode == 0, stdout + stderr
    assert EP_MODULE not in before  # the run imported it, found by its entry point
    results = fresh_interpreter.results["entry_point"]
    assert len(list((results / "runs").iterdir())) == 1
    (run,) = (results / "runs").iterdir()
    assert (pd.read_csv(run / "layers.csv").score == "ep_taylor").all()


@pytest.mark.xdist_group("plugins_lab_runs")  # shares its module fixture
@pytest.mark.parametrize("name", list(BAD_PLUGIN_LISTS))
def test_bad_plugin_lists_stop_before_anything_is_created(lab_runs, name):
    returncode, _, stderr, lab_before = lab_runs.done[name]
    assert returncode == 2, stderr
    assert BAD_PLUGIN_LISTS[name][1] in stderr
    assert not lab_runs.results[name].exists()
    assert "lab.clash" not in lab_before  # the clash itself was not imported before its run


@pytest.mark.xdist_group("plugins_lab_runs")  # shares its module fixture
def test_plugins_set_in_a_config_file_are_rejected(lab_runs):
    """Plugins are indexed before composition, so a preset cannot add them; it must say so."""
    returncode, _, stderr, _ = lab_runs.done["config_file"]
    assert returncode == 2, stderr
    assert "'plugins'" in stderr and "command line" in stderr
    assert not lab_runs.results["config_file"].exists()


def _plain_run_id() -> str:
    """The run id of the default config, composed in this process (no outside plugin is ever imported here)."""
    from hydra import compose, initialize_config_dir

    import prune_cli.cli  # noqa: F401  (schemas, run_id resolver)
    from prune_cli.core.identity import run_id

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return run_id(compose("config", overrides=[]))


@pytest.mark.xdist_group("plugins_lab_runs")  # shares its module fixture
def test_a_metric_plugin_does_not_change_run_ids(lab_runs):
    """A disabled metric added by a plugin is not part of the run id; enabling it is."""
    # Composed in the plugins' interpreter (their imports cannot be undone here): one run id for
    # `plugins=[lab.weight_norm]`, one with the metric enabled.
    (disabled_id, enabled_id), _ = lab_runs.done["run_ids"]
    plain = _plain_run_id()
    assert disabled_id == plain
    assert enabled_id != plain


def _readme_example() -> tuple[str, str]:
    """The README's plugin section: its Python file and its command."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own method, dataset or metric, without forking", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    command = section.split("```bash\n", 1)[1].split("```", 1)[0].strip()
    return code, command


# After LAZY's import check, the same interpreter runs the README's command in-process (as prune-run
# runs it, tests/cli_runner.py): one new interpreter for both, the check first, since it is about what
# an interpreter has imported before any run.
README_AFTER_LAZY = (
    LAZY
    + """
import os
from pathlib import Path
sys.path.insert(0, os.environ["PRUNE_TESTS_DIR"])
from cli_runner import run_in_process
runs, record = json.loads(os.environ["PRUNE_TESTS_RUNS"])
done = {}
for name, argv, cwd in runs:
    before = sorted(m for m in sys.modules if m.startswith("eplab"))
    p = run_in_process(argv, cwd=Path(cwd), env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
    done[name] = [p.returncode, p.stdout, p.stderr, before]
Path(record).write_text(json.dumps(done))
"""
)

# The entry-point test's installed package: LAB's Taylor score under another name (`ep_taylor`),
# so that it shares the README example's interpreter (whose score is `taylor`) without a clash.
EP_MODULE = "eplab.taylor_ep"
EP_SOURCE = textwrap.dedent(LAB["taylor.py"]).lstrip().replace('"taylor"', '"ep_taylor"')


def _install_entry_point_package(root: Path) -> None:
    """`eplab`, with a dist-info naming its module in the `prune_cli.plugins` entry-point group."""
    (root / "eplab").mkdir()
    (root / "eplab" / "__init__.py").write_text("")
    (root / "eplab" / "taylor_ep.py").write_text(EP_SOURCE)
    info = root / "eplab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eplab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[prune_cli.plugins]\nep_taylor = {EP_MODULE}\n")


# The README's command with tiny data appended (the score and the sparsity are the point, not the
# data's size: 60 + 30 examples per class instead of the synthetic default 500 + 200).
README_TINY_DATA = [
    "dataset=synthetic",
    "dataset.samples_per_class=60",
    "dataset.test_samples_per_class=30",
    "model=mlp",
    "model.widths=[8]",
    "train.epochs=1",
    "finetune.epochs=1",
]


class FreshInterpreter(NamedTuple):
    imports: dict  # LAZY's answer: the plugin modules and heavy libraries imported
    runs: dict  # name: exit code, stdout, stderr, eplab modules imported before the run
    results: dict[str, Path]  # name: its results_dir


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def fresh_interpreter(tmp_path_factory) -> FreshInterpreter:
    """One new interpreter, with the README example's folder on PYTHONPATH (as its `PYTHONPATH=.`)
    and an installed entry-point package there: LAZY's import check of `dataset=synthetic` (before
    anything else, and the installed plugin is not imported: it was not chosen), then the README's
    plugin command, then a run of the entry-point package's score with no `plugins=`."""
    base = tmp_path_factory.mktemp("readme")
    code, command = _readme_example()
    (base / "my_lab").mkdir()
    (base / "my_lab" / "__init__.py").write_text("")
    (base / "my_lab" / "taylor.py").write_text(code)
    _install_entry_point_package(base)
    results = {name: base / name / "results" for name in ("readme", "entry_point")}
    runs = [
        ["readme", [*command.split()[2:], *README_TINY_DATA, f"results_dir={results['readme']}"], str(base)],
        ["entry_point", ["method=ep_taylor", *README_TINY_DATA, f"results_dir={results['entry_point']}"], str(base)],
    ]
    record = base / "runs.json"
    old = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(base), *([old] if old else [])]),
        "PRUNE_TESTS_DIR": str(REPO / "tests"),
        "PRUNE_TESTS_RUNS": json.dumps([runs, str(record)]),
    }
    out = subprocess.run(
        [sys.executable, "-c", README_AFTER_LAZY, str(REPO / "configs"), "dataset=synthetic"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    imports = json.loads(out.stdout.strip().splitlines()[-1])
    return FreshInterpreter(imports, json.loads(record.read_text()), results)


@pytest.mark.xdist_group("plugins_fresh_interpreter")  # shares its module fixture
def test_the_readme_plugin_example_runs(fresh_interpreter):
    """The README's plugin section, as written: its file (at most 20 lines) and its command (with
    tiny data appended) run to the asked sparsity with the plugin's score."""
    code, command = _readme_example()
    assert command.startswith("PYTHONPATH=. prune-run "), command
    assert len(code.strip().splitlines()) <= 20
    returncode, stdout, stderr, _ = fresh_interpreter.runs["readme"]
    assert returncode == 0, stdout + stderr
    (run,) = (fresh_interpreter.results["readme"] / "runs").iterdir()
    metrics = pd.read_csv(run / "metrics.csv")
    sparsity = metrics[(metrics.metric == "sparsity_prunable") & (metrics.phase == "pruned")].value.item()
    assert sparsity == pytest.approx(0.9, abs=0.005)
    assert (pd.read_csv(run / "layers.csv").score == "taylor").all()


@pytest.mark.parametrize(
    "result, message",
    [
        ({"scalars": [{"metric": "w", "value": 1.0}]}, r"scalar row 0 lacks 'split'"),
        ({"scalars": [{"split": "test", "metric": "w"}]}, r"scalar row 0 lacks 'value'"),
        ({"scalars": "w=1"}, r"scalars: a str, not a list of dicts"),
        ({"tables": {"w.csv": {"a": 1}}}, r"table w.csv: a dict, not a list of dicts"),
        # a value the CSV would hold as text: prune-report then failed on its sums, not naming the metric
        ({"scalars": [{"split": "x", "metric": "m", "value": [1, 2]}]}, r"scalar row 0: value \[1, 2\] is a list, not a number"),
        ({"scalars": [{"split": "x", "metric": "m", "value": "0.5"}]}, r"scalar row 0: value '0.5' is a str, not a number"),
        ({"scalars": [{"split": "x", "metric": "m", "value": torch.tensor(0.5)}]}, r"is a Tensor, not a number"),
        ({"scalars": [{"split": 1, "metric": "m", "value": 0.5}]}, r"scalar row 0: split 1 is a int, not a str"),
        # a table name that left the run directory, or mixed rows into a table the run itself writes
        ({"tables": {"../../escape.csv": [{"a": 1}]}}, r"table name '../../escape.csv'"),
        ({"tables": {"mine.txt": [{"a": 1}]}}, r"table name 'mine.txt'"),
        ({"tables": {"layers.csv": [{"a": 1}]}}, r"table name 'layers.csv' is one the run writes itself"),
        ({"tables": {"runs.csv": [{"a": 1}]}}, r"table name 'runs.csv' is one the run writes itself"),
        ({"tables": {"layer_pruning.csv": [{"a": 1}]}}, r"table name 'layer_pruning.csv' is one the run writes itself"),
    ],
)
def test_a_metric_returning_rows_the_recorder_cannot_write_is_named(monkeypatch, result, message):
    """A metric plugin's scalar row without "split" crashed the recorder with KeyError: 'split', reported
    as a bug in prune-cli. The registered metric now checks what its function returns."""
    from prune_cli.core.errors import PruneCliError
    from prune_cli.metrics import METRICS, MetricResult, register_metric

    name = f"rows_check_{abs(hash(message)) % 10**8}"
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))  # the registration ends with the test
    register_metric(name)(lambda ctx, phase, node: MetricResult(**result))
    with pytest.raises(PruneCliError, match=rf"metric {name} returned .*{message}"):
        METRICS.get(name)(None, "dense", None)


def test_a_metric_s_numbers_of_any_numeric_type_and_its_own_table_pass(monkeypatch):
    """Control: ints, floats, numpy scalars, NaN and bools are numbers; `mine.csv` is the metric's own table."""
    import numpy as np

    from prune_cli.metrics import METRICS, MetricResult, register_metric

    values = [1, 0.5, np.float32(0.25), np.int64(3), float("nan"), True]
    result = MetricResult(
        scalars=[{"split": "test", "metric": f"m{i}", "value": v} for i, v in enumerate(values)], tables={"mine.csv": [{"a": 1}]}
    )
    monkeypatch.setattr(METRICS, "_entries", dict(METRICS._entries))
    register_metric("rows_check_numbers")(lambda ctx, phase, node: result)
    assert METRICS.get("rows_check_numbers")(None, "dense", None) is result


BROKEN = {  # plugin modules whose import fails (a dependency not installed), one per kind that has a schema
    "score": (
        '@config_schema("method", "needs_pkg")\n@dataclass\nclass C(MethodConfig):\n    name: str = "needs_pkg"\n'
        '    score: str = "needs_pkg"\n\n\n@register_score("needs_pkg", options=C)\ndef f(model, params, ctx):\n'
        "    return {n: p.abs() for n, p in params.items()}\n",
        ["method=needs_pkg"],
    ),
    "dataset": (
        '@config_schema("dataset", "needs_pkg")\n@dataclass\nclass C(DatasetConfig):\n    name: str = "needs_pkg"\n\n\n'
        '@DATASETS.register("needs_pkg")\ndef f(cfg):\n    pass\n',
        ["dataset=needs_pkg"],
    ),
    "metric": (
        '@config_schema("metric", "needs_pkg")\n@dataclass\nclass C:\n    enabled: bool = False\n\n\n'
        '@register_metric("needs_pkg")\ndef f(ctx, phase, node):\n    pass\n',
        [],
    ),
}
BROKEN_HEAD = (
    "from dataclasses import dataclass\n\nimport a_package_that_is_not_installed  # noqa: F401\n"
    "from prune_cli.core.config_base import DatasetConfig, MethodConfig, config_schema\nfrom prune_cli.data import DATASETS\n"
    "from prune_cli.metrics import register_metric\nfrom prune_cli.pruning.scores import register_score\n\n\n"
)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_plugin_that_does_not_import_is_one_message_naming_it(tmp_path, monkeypatch, kind):
    """A plugin module whose import raises (a missing dependency), chosen on the command line (a score,
    a dataset) or only indexed (a metric whose node every run composes): its ConfigError was raised
    inside Hydra's composition, so Hydra printed a traceback of about 100 lines and exit 1. The promise
    (docs/architecture.md): one message naming the module and the import error, exit 2, nothing created."""
    text, choose = BROKEN[kind]
    outside_plugin(tmp_path, monkeypatch, "brokenlab", "needs_pkg", BROKEN_HEAD + text)
    results = tmp_path / "results"
    proc = run_cli(["plugins=[brokenlab.needs_pkg]", *FAST, *choose], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'plugins': 'brokenlab.needs_pkg'" in proc.stderr and "a_package_that_is_not_installed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not results.exists()


class _NoClassifier(torch.nn.Module):
    pass


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: torch.nn.Sequential(torch.nn.Linear(2, 3)), r"returned a Sequential, not a PrunableNet"),
        ("no classifier", r"its classifier is '', not the name of one of its prunable layers \(net\.0, net\.2\)"),
        ("wrong classifier", r"its classifier is 'head', not the name of one of its prunable layers \(net\.0, net\.2\)"),
    ],
    ids=["plain module", "no classifier", "wrong classifier"],
)
def test_a_model_plugin_that_breaks_the_model_contract_is_named(monkeypatch, make, message):
    """A model plugin returning a plain nn.Module crashed inside the pre-run pass (a 121-line traceback
    naming neither the plugin nor the contract); one without `classifier` ran, and
    method.exclude_classifier=true silently pruned its last layer. The contract (prune_cli/models/base.py):
    a PrunableNet whose `classifier` names its final prunable layer."""
    from omegaconf import OmegaConf

    from prune_cli.core.errors import ConfigError
    from prune_cli.models import MODELS, build_model
    from prune_cli.models.base import PrunableNet

    class Tiny(PrunableNet):
        classifier = "" if make == "no classifier" else "head"

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))

        def forward(self, x):
            return self.net(x)

    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    MODELS.register("contract_check")(lambda cfg, shape, classes: make() if callable(make) else Tiny())
    with pytest.raises(ConfigError, match=message) as err:
        build_model(OmegaConf.create({"name": "contract_check"}), (2,), 3)
    assert err.value.key == "model" and err.value.value == "contract_check"


NAMELESS_HEAD = (
    "from dataclasses import dataclass\n\nfrom prune_cli.core.config_base import MethodConfig, config_schema\n"
    "from prune_cli.pruning.scores import register_score\n\n\n"
)
NAMELESS = (  # outside method plugins whose dataclasses set neither `name` nor `score`
    '@config_schema("method", "plainabs")\n@dataclass\nclass PlainAbs(MethodConfig):\n    pass\n\n\n'
    '@register_score("plainabs", options=PlainAbs)\ndef plainabs(model, params, ctx):\n'
    "    return {n: p.detach().abs() for n, p in params.items()}\n\n\n"
    '@config_schema("method", "orphan")\n@dataclass\nclass Orphan(MethodConfig):\n    pass\n'
)


def _nameless_lab(tmp_path: Path, monkeypatch) -> None:
    outside_plugin(tmp_path, monkeypatch, "namelesslab", "plain", NAMELESS_HEAD + NAMELESS)


def test_an_outside_plugin_s_dataclass_without_name_composes_its_option_name(tmp_path, monkeypatch):
    """docs/architecture.md: an outside plugin needs no YAML, `method=<option>` composes the dataclass's
    defaults. A dataclass that did not set `name` (and, for a score, `score`), as the built-in schemas a
    user copies do not (their YAML sets them), crashed with Hydra's 100-line traceback ending in
    MissingMandatoryValue, exit 1. An option without YAML is named by its option name, and a method's
    score is the score registered under that name."""
    _nameless_lab(tmp_path, monkeypatch)
    results = tmp_path / "results"
    proc = run_cli(["plugins=[namelesslab.plain]", *FAST, "method=plainabs", "sparsity=0.5"], results, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = next(results.glob("runs/*/config.yaml")).read_text()
    assert "name: plainabs" in config and "score: plainabs" in config, config


FIRST_HALF_RULE = """
from dataclasses import dataclass

import torch

from prune_cli.core.config_base import config_schema
from prune_cli.data.pruning import KeepFractionConfig, Selection, class_rows, register_data_pruning


@config_schema("data_pruning", "firsthalf")
@dataclass
class FirstHalfConfig(KeepFractionConfig):
    pass


@register_data_pruning("firsthalf")
def firsthalf(ctx, node):
    kept = torch.arange(ctx.kept_count(node.keep))
    return Selection(kept, class_rows(ctx.data.train_y.cpu(), kept, ctx.data.num_classes))
"""


def test_a_data_pruning_rule_without_yaml_or_name_runs_under_its_option_name(tmp_path, monkeypatch):
    """A data-pruning rule from outside the repository, its dataclass built on KeepFractionConfig as the
    built-in rules are and `name` left unset (docs/architecture.md: the option's name fills it), was
    refused naming `data_pruning.name`='none' and asking to "build none" (audit of the plugin system):
    the rules' base class declared name="none", so the name was not unset but inherited. It now runs as
    `data_pruning.name=firsthalf` and keeps the first round(0.5 x N) training examples."""
    outside_plugin(tmp_path, monkeypatch, "rulelab", "firsthalf", FIRST_HALF_RULE)
    results = tmp_path / "results"
    args = ["plugins=[rulelab.firsthalf]", *FAST, "data_pruning=firsthalf", "data_pruning.keep=0.5", "sparsity=0.5"]
    proc = run_cli(args, results, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = next(results.glob("runs/*/config.yaml")).read_text()
    assert "name: firsthalf" in config, config
    rows = pd.read_csv(results / "data_pruning.csv")
    assert set(rows["rule"]) == {"firsthalf"}
    assert int(rows["kept"].sum()) == round(0.5 * int(rows["available"].sum())), rows


def test_a_method_plugin_without_a_score_is_one_message_naming_the_key(tmp_path, monkeypatch):
    """A method option whose score is set nowhere (no default in its dataclass, no score registered under
    its name): one message naming `method.score` and the schema, exit 2, nothing created (it was a
    traceback, exit 1)."""
    _nameless_lab(tmp_path, monkeypatch)
    results = tmp_path / "results"
    proc = run_cli(["plugins=[namelesslab.plain]", *FAST, "method=orphan"], results, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'method.score'" in proc.stderr and "Orphan" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not results.exists()


NODEFAULT_METRIC = """
from dataclasses import dataclass

from prune_cli.core.config_base import config_schema
from prune_cli.metrics import MetricResult, register_metric


@config_schema("metric", "nodefm")
@dataclass
class NoDefM:
    threshold: float
    enabled: bool = False


@register_metric("nodefm")
def nodefm(exp, phase, node):
    return MetricResult(scalars=[{"split": "model", "metric": "above", "value": float(node.threshold > 0.25)}])
"""
NODEFAULT_RUNS = {  # name: (extra arguments, exit code, what stderr names)
    "disabled": ([], 0, []),
    "enabled_unset": (["metrics.nodefm.enabled=true"], 2, ["'metrics.nodefm.threshold'", "NoDefM"]),
    "enabled_set": (["metrics.nodefm.enabled=true", "metrics.nodefm.threshold=0.5"], 0, []),
}


def test_a_metric_schema_field_without_a_default_is_named_only_where_it_is_needed(tmp_path):
    """Plugin audit: a metric plugin whose schema has a field without a default (`threshold: float`)
    broke every run, with `NoDefM.__init__() missing 1 required positional argument` (naming neither
    the key nor the module), even with metrics.nodefm.threshold set: the metrics schema built each node
    with `cls()`. Now the field is unset like any plugin schema's: a run that does not enable the metric
    runs, enabling it without the value is one message naming the key and the schema (exit 2, nothing
    created), and enabling it with the value runs it."""
    from tests.test_plugin_options import DRIVER

    (tmp_path / "src" / "nodeflab").mkdir(parents=True)
    (tmp_path / "src" / "nodeflab" / "__init__.py").write_text("")
    (tmp_path / "src" / "nodeflab" / "nodefm.py").write_text(NODEFAULT_METRIC)
    plan, results = [], {}
    for name, (args, _, _) in NODEFAULT_RUNS.items():
        results[name] = tmp_path / name / "results"
        results[name].parent.mkdir()
        argv = ["plugins=[nodeflab.nodefm]", *FAST, *args, f"results_dir={results[name]}"]
        plan.append([name, {"argv": argv, "cwd": str(results[name].parent)}])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    record = tmp_path / "runs.json"
    command = [sys.executable, "-c", DRIVER, str(REPO / "tests"), json.dumps(plan), str(record)]
    subprocess.run(command, env=env, check=True, timeout=600)
    done = json.loads(record.read_text())
    for name, (_, code, said) in NODEFAULT_RUNS.items():
        returncode, stdout, stderr = done[name]
        assert returncode == code and "Traceback" not in stderr, (name, stderr[-3000:])
        for part in said:
            assert part in stderr, (name, stderr)
    assert not results["enabled_unset"].exists()
    (run,) = (results["enabled_set"] / "runs").iterdir()
    rows = pd.read_csv(run / "metrics.csv")
    assert set(rows[rows.metric == "above"].value) == {1.0}


@pytest.mark.parametrize("group, name", [("method", "magnitude"), ("dataset", "mnist"), ("schedule", "oneshot")])
def test_a_plugin_schema_for_a_built_in_yaml_option_is_refused(tmp_path, monkeypatch, group, name):
    """Plugin audit: `@config_schema("method", "magnitude")` (magnitude exists only as YAML, schema
    method/base) was accepted and silently ignored: the run used the YAML (allocation global) and the
    plugin's own field was an "Unknown config key". docs/architecture.md promises that a clash with a
    built-in is rejected before the run; the module is refused when it is indexed, naming it."""
    import copy

    from prune_cli.core.errors import ConfigError

    (tmp_path / "yamlclash.py").write_text(
        f'@config_schema("{group}", "{name}")\n@dataclass\nclass Mine:\n    name: str = "{name}"\n    extra: int = 1\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    assert (REPO / "configs" / group / f"{name}.yaml").exists()
    with pytest.raises(
        ConfigError, match=rf"'plugins': 'yamlclash'.*schema {group} '{name}' is the built-in option configs/{group}/{name}\.yaml"
    ):
        plugins.add_modules(["yamlclash"])
    assert "yamlclash" not in plugins.index().outside and (group, name) not in {
        k for k, m in plugins.index().schemas.items() if m == "yamlclash"
    }
