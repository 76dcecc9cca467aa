"""What each experiment preset says about itself is true (configs/experiment/*.yaml; researchers read
a preset's comments as its documentation):

- every `prune-run` command in its comment (a line `#   prune-run ...`, the paper-scale recipes among
  them), and every command of README.md and docs/*.md that runs a preset, composes and passes the
  pre-run checks for every job of its sweep, and no override of it does nothing in every job, as
  `prune-run -m` checks a sweep before its first job (tiny files in the real format where the dataset
  reads files; `device=cuda` checked as on the GPU machine it is written for);
- the run counts it quotes are the sizes of its commands' sweeps, the dense models it quotes are the
  distinct dense models of its sweep, and the trainings per run it quotes are the schedule's plan;
- no key it sets does nothing (prune_cli/run/unused_options.py, the check prune-run applies to an
  override): a dead key misleads the reader and changes only the run id (and the dense-cache key when
  dense training reads its group). A key that some jobs of the
  sweep read and others do not (a method option under a method sweep) is kept, as a sweep's override
  is (`sweep_unused`), and no two jobs are one experiment under two run ids (`sweep_duplicates`).
- docs/report.md's table of presets has a row for each, and the exact region counts docs/regions.md
  gives for the region_bound preset fit the exact counter's budget of hidden units.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import REPO
from test_report_presets import PRESETS, _data_overrides, _group_choice, _point_configs

PRESET_DIR = REPO / "configs" / "experiment"

# 60 jobs that each build VGG-16 on the meta device: slow here (tests/test_report_presets.py validates
# its sweep under -m slow as well; tests/test_presets_published.py one point of it fast).
SLOW = {"synflow_vgg16_cifar10"}

PRESET_PARAMS = [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in PRESETS]


def comment(preset: str) -> list[str]:
    """The lines of the preset's leading comment, without their `#`."""
    lines = []
    for line in (PRESET_DIR / f"{preset}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line[1:])
    return lines


def prose(preset: str) -> str:
    """The comment as one line of text (a number and its noun may be on two lines)."""
    return " ".join(line.strip() for line in comment(preset))


def commands(preset: str) -> list[list[str]]:
    """The arguments of each `prune-run` command in the preset's comment: an indented line
    `#   prune-run ...` (continued by a trailing backslash), up to a `&&` or a note after two spaces."""
    found, current = [], None
    for line in comment(preset):
        if current is None and not re.match(r"\s{2,}prune-run ", line):
            continue
        current = line.strip() if current is None else f"{current} {line.strip()}"
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        text = re.split(r"\s{2,}\(", current.split("&&")[0])[0]
        found.append(shlex.split(text)[1:])
        current = None
    return found


def sweep_jobs(preset: str, args: list[str], skip_seeds: bool = False) -> tuple[bool, list[list[str]]]:
    """(is a sweep, the overrides of each job) of `prune-run args`, as Hydra's basic sweeper makes them:
    the preset's hydra.sweeper.params, then the command line (a key given there replaces the preset's).
    `skip_seeds`: the first seed of each point only."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    sweep = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if not sweep:
        return False, [overrides]
    params = OmegaConf.load(PRESET_DIR / f"{preset}.yaml").hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + overrides)
    [jobs] = BasicSweeper.split_arguments(parsed, None)
    first = next((o for job in jobs for o in job if o.startswith("seed=")), None)
    return True, [job for job in jobs if not skip_seeds or first is None or first in job]


def _command_id(args: list[str]) -> str:
    return " ".join(args)


def _preset_commands() -> list:
    cases = []
    for preset in PRESETS:
        for args in commands(preset):
            marks = [pytest.mark.slow] if preset in SLOW else []
            cases.append(pytest.param(preset, args, marks=marks, id=f"{preset}: {_command_id(args)}"))
    return cases


def _files_for(preset: str, args: list[str], folder: Path) -> list[str]:
    """`args` with `dataset.root=...` pointing at tiny files of the real format (MNIST and CIFAR-10) in
    `folder`, and without a results_dir (each test composes into its own)."""
    from test_expect import write_tiny_mnist
    from test_presets_published import write_tiny_cifar10

    root = folder / "data"
    if not root.exists():
        write_tiny_cifar10(write_tiny_mnist(root))
    out = [a for a in args if not a.startswith(("dataset.root=", "results_dir="))]
    return [*out, f"dataset.root={root}"] if any(a.startswith("dataset.root=") for a in args) else out


def job_config(preset: str, job: list[str], folder: Path, extra: tuple[str, ...] = ()):
    """The composed config of one job (its overrides as a command line or the sweeper gives them, with
    `extra` before them): the group choices composed by Hydra, the values then applied as Hydra applies
    them (tests/test_report_presets.py `_point_configs`, checked there against a full composition)."""
    given = [o for o in job if o not in ("-m", "--multirun") and not o.startswith("+experiment=")]
    values = [o for o in given if not _group_choice(o)]
    [(_, cfg)] = list(_point_configs(preset, [values], folder / "results", (*extra, *(o for o in given if _group_choice(o)))))
    return cfg


def check_command(preset: str, args: list[str], folder: Path) -> None:
    """`prune-run args` composes and passes the pre-run checks for every job (the first seed of each
    point), and no override of it does nothing (in every job of a sweep), as prune-run checks it."""
    from prune_cli.core.accel import CHECKS_THIS_MACHINE
    from prune_cli.run.prevalidate import validate
    from prune_cli.run.unused_options import jobs_unused, sweep_duplicates, sweep_unused, unused_overrides

    assert f"+experiment={preset}" in args, args  # a command of this preset
    sweep, jobs = sweep_jobs(preset, _files_for(preset, args, folder), skip_seeds=True)
    checked = []
    for job in jobs:
        cfg = job_config(preset, job, folder)
        # device=cuda is checked where the command runs (a GPU machine), as a cluster's jobs check it on their nodes
        here = CHECKS_THIS_MACHINE.set(False) if cfg.device == "cuda" else None
        try:
            validate(cfg)
        finally:
            if here is not None:
                CHECKS_THIS_MACHINE.reset(here)
        assert cfg.name == preset
        checked.append((job, cfg))
    if sweep:
        per_job = jobs_unused(checked)
        assert [u.message() for u in sweep_unused(checked, per_job)] == []
        assert sweep_duplicates(checked, per_job) is None  # no experiment twice under two run ids
    else:
        [(job, cfg)] = checked
        assert [u.message() for u in unused_overrides(cfg, job) if u.error] == []


@pytest.mark.parametrize(("preset", "args"), _preset_commands())
def test_every_command_in_a_preset_s_comment_composes_and_validates_for_every_job(preset, args, tmp_path):
    check_command(preset, args, tmp_path)


def _doc_commands() -> list:
    """The `prune-run` commands of README.md and docs/*.md that run a preset (`+experiment=NAME`, not
    the placeholder NAME): in code blocks (a line, continued by a trailing backslash, or a comment
    `# = prune-run ...` saying what a script runs; up to `&&` or a `#` comment) and in inline code
    (which may wrap)."""
    cases = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        inline = re.findall(r"(`+)(.+?)\1", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.S)
        lines = [" ".join(span.split()) for _, span in inline]
        for block in blocks:
            lines += [" ".join(line.split()) for line in block.replace("\\\n", " ").splitlines()]
        for line in lines:
            line = re.sub(r"^#\s*=\s*", "", line)  # `# = prune-run ...`: what a script line runs
            line = re.split(r"\s#\s", line.split("&&")[0])[0].strip()
            preset = re.search(r"\+experiment=([a-z0-9_]+)", line)
            if line.startswith("prune-run ") and preset and preset.group(1) in PRESETS:
                marks = [pytest.mark.slow] if preset.group(1) in SLOW else []
                args = shlex.split(line)[1:]
                cases.append(pytest.param(preset.group(1), args, marks=marks, id=f"{path.name}: {_command_id(args)}"))
    return cases


@pytest.mark.parametrize(("preset", "args"), _doc_commands())
def test_every_preset_command_in_the_docs_composes_and_validates_for_every_job(preset, args, tmp_path):
    check_command(preset, args, tmp_path)


def test_a_preset_that_says_how_to_go_to_paper_scale_gives_the_command():
    """A comment that says "Paper scale" (the lead of a recipe) has a second `prune-run` command that a
    researcher can type (docs/report.md: a file gives its paper-scale recipe as a command); before, they were
    fragments such as `add dataset=mnist ...` or `lanczos_iter=128 samples=0` that could not be typed
    as written, and that the command test above could not check."""
    for preset in PRESETS:
        if re.search(r"\bPaper scale\b", prose(preset)):
            assert len(commands(preset)) >= 2, preset


# ----------------------------------------------------------------------------- counts


def _sizes(preset: str) -> dict[str, list[list[str]]]:
    """The jobs of the preset's own sweep (`prune-run -m +experiment=NAME`, which
    scripts/scaling_law_mnist1d.sh runs too) and of each `prune-run -m` command of its comment, by the
    command's text."""
    found = {}
    for args in [["-m", f"+experiment={preset}"], *commands(preset)]:
        sweep, jobs = sweep_jobs(preset, args)
        if sweep:
            found[_command_id(args)] = jobs
    return found


@pytest.mark.parametrize("preset", PRESETS)
def test_run_counts_quoted_in_a_preset_s_comment_are_its_sweep_s(preset):
    """`N runs` is the number of jobs of one of the comment's sweeps; `N rewind runs` / `N reinit runs`
    the jobs of that restart_from (lottery_ticket said 48 runs of its 24)."""
    text = prose(preset)
    sweeps = _sizes(preset)
    for quoted in re.findall(r"\b(\d[\d,]*) runs\b", text):
        assert int(quoted.replace(",", "")) in {len(jobs) for jobs in sweeps.values()}, (preset, quoted, sweeps.keys())
    for quoted, kind in re.findall(r"\b(\d+) (rewind|reinit) runs\b", text):
        counts = {sum(f"schedule.restart_from={kind}" in job for job in jobs) for jobs in sweeps.values()}
        assert int(quoted) in counts, (preset, quoted, kind)


def test_ntk_random_s_widths_are_its_sweep_s():
    """The hidden widths the comment lists are those of the sweep (it said 64-1024; the sweep, and the
    results in docs/analysis.md, include 2048)."""
    quoted = re.search(r"widths (.+?), p in", prose("ntk_random"))
    assert quoted is not None
    _, jobs = sweep_jobs("ntk_random", ["-m", "+experiment=ntk_random"])
    swept = {tuple(OverridesParser.create().parse_override(o).value()) for job in jobs for o in job if o.startswith("model.widths=")}
    assert {w for widths in swept for w in widths} == {int(w) for w in re.findall(r"\d+", quoted.group(1))}


DENSE_QUOTED = r"\b(\d+) dense models\b|\b(a|one) dense model per seed\b"
TRAININGS_QUOTED = r"\b(\d+) (rewind|reinit) runs of (\d+) x (\d+) epochs"


def test_the_quotes_checked_below_are_found():
    """The patterns of the two tests below find the quotes they check (a reworded quote is checked too)."""
    assert {"expect_mnist1d", "lottery_ticket", "synflow_vgg16_cifar10"} <= {p for p in PRESETS if re.search(DENSE_QUOTED, prose(p))}
    assert {"openlth_resnet20_imp", "renda_resnet20_lottery"} <= {p for p in PRESETS if re.search(TRAININGS_QUOTED, prose(p))}


@pytest.mark.parametrize(
    "preset",
    [pytest.param(p, marks=[pytest.mark.slow] if p in SLOW else []) for p in PRESETS if re.search(DENSE_QUOTED, prose(p))],
)
def test_dense_models_quoted_in_a_preset_s_comment_are_its_sweep_s(preset, tmp_path):
    """`N dense models` and `a dense model per seed` count the distinct dense-cache keys of the
    preset's own sweep (prune_cli/run/dense_cache.py): what it trains before any pruning."""
    from prune_cli.run.dense_cache import dense_key

    text = prose(preset)
    quoted = [int(n) for n in re.findall(r"\b(\d+) dense models\b", text)]
    per_seed = re.search(r"\b(a|one) dense model per seed\b", text) is not None
    _, jobs = sweep_jobs(preset, ["-m", f"+experiment={preset}"])
    extra = _data_overrides(preset, tmp_path)
    keys, seeds = set(), set()
    for job in jobs:
        cfg = job_config(preset, job, tmp_path, extra)
        keys.add(dense_key(cfg, "cpu"))
        seeds.add(cfg.seed)
    for n in quoted:
        assert n == len(keys), (preset, n, len(keys))
    if per_seed:
        assert len(keys) == len(seeds), (preset, len(keys), len(seeds))


@pytest.mark.parametrize("preset", [p for p in PRESETS if re.search(TRAININGS_QUOTED, prose(p))])
def test_trainings_per_run_quoted_in_a_preset_s_comment_are_the_plan_s(preset, tmp_path):
    """`N rewind runs of T x E epochs`: the plan of a job with that restart_from (prune_cli/schedules)
    trains T times after the dense model, each time E epochs (openlth_resnet20_imp said 21 x 160 for
    the 20 of its rewinding runs, renda_resnet20_lottery 11 x 182 for their 10)."""
    from prune_cli.schedules import SCHEDULES
    from prune_cli.schedules.steps import Dense, Train

    quoted = re.findall(TRAININGS_QUOTED, prose(preset))
    extra = _data_overrides(preset, tmp_path)
    for _, kind, times, epochs in quoted:
        cfg = job_config(preset, [f"schedule.restart_from={kind}"], tmp_path, extra)
        plan = SCHEDULES.get(cfg.schedule.name)(cfg)
        assert isinstance(plan[0], Dense)
        trains = [step for step in plan if isinstance(step, Train)]
        assert (len(trains), {cfg[step.which].epochs - step.start_epoch for step in trains}) == (int(times), {int(epochs)}), kind


def test_lottery_ticket_s_paper_scale_prunes_a_fifth_of_the_survivors_per_round(tmp_path):
    """The comment's claim (20 % of the survivors per round, Frankle & Carbin's rate for LeNet's hidden
    layers) holds for every job of its paper-scale command: before, the command set no sparsity, so
    under -m the sweep's 0.5 ... 0.9375 stayed and 20 rounds kept (1 - 0.9375)^(1/20) = 0.871 per round
    at most, not 0.8."""
    from prune_cli.schedules.steps import round_density

    assert "20 % of the survivors per round" in prose("lottery_ticket")
    [paper] = [args for args in commands("lottery_ticket") if "dataset=mnist" in args]
    _, jobs = sweep_jobs("lottery_ticket", _files_for("lottery_ticket", paper, tmp_path))
    for job in jobs:
        cfg = job_config("lottery_ticket", job, tmp_path)
        rounds = cfg.schedule.rounds
        assert rounds == 20
        for r in range(1, rounds + 1):
            kept = round_density(1 - cfg.sparsity, r, rounds) / round_density(1 - cfg.sparsity, r - 1, rounds)
            assert kept == pytest.approx(0.8, rel=1e-6), (job, r)


def test_lap_mlp_s_iterations_on_mnist_are_its_epochs_of_batches(tmp_path):
    """The iterations the comment quotes for the sweep on MNIST are its epochs of ceil(training images /
    batch) steps (prune_cli/training.py), on MNIST's 60,000 training images less the validation split
    (before: "50k + 50k iterations", the authors' count, for 15 + 5 epochs of batch 128)."""
    [on_mnist] = [args for args in commands("lap_mlp") if "dataset=mnist" in args]
    quoted = re.search(r"epochs of the 54,000 training images at batch \d+ are ([\d,]+) \+ ([\d,]+) iterations", prose("lap_mlp"))
    assert quoted is not None
    cfg = job_config("lap_mlp", _files_for("lap_mlp", on_mnist, tmp_path), tmp_path)
    train_images = round(60000 * (1 - cfg.dataset.val_fraction))
    assert train_images == 54000
    steps = [cfg[which].epochs * math.ceil(train_images / cfg[which].batch_size) for which in ("train", "finetune")]
    assert [int(n.replace(",", "")) for n in quoted.groups()] == steps


# ----------------------------------------------------------------------------- keys that do nothing


def _leaves(node, prefix: str = ""):
    for key, value in node.items():
        if OmegaConf.is_dict(value):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _set_keys(preset: str, job: list[str]) -> set[str]:
    """The leaf keys a job of the preset gets from files: the preset's own (not `defaults`, `hydra`) and
    those of an operating-point file it chooses (`experiment/lap_mlp_mnist_points@_global_: it4`), as
    the job chooses it."""
    text = OmegaConf.load(PRESET_DIR / f"{preset}.yaml")
    keys = {k for k in _leaves(text) if not k.startswith(("defaults", "hydra."))}
    chosen = {}
    for entry in OmegaConf.to_container(text).get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                if not group.startswith("override ") and "@" in group:
                    chosen[f"experiment/{group}"] = option
    for override in job:
        group, _, option = override.partition("=")
        if group in chosen:
            chosen[group] = option
    for group, option in chosen.items():
        keys |= set(_leaves(OmegaConf.load(REPO / "configs" / group.split("@")[0] / f"{option}.yaml")))
    return keys - {"name"}


@pytest.mark.parametrize("preset", PRESET_PARAMS)
def test_no_key_a_preset_sets_does_nothing_in_every_job_of_its_sweep(preset, tmp_path):
    """Each leaf key the preset sets, and each key of its sweep, checked as prune-run checks an override
    (errors and notes: a preset is no researcher's set of habitual overrides): one that no job of the
    sweep reads is a dead key. lap_mlp and lap_mlp_mnist set train.momentum and finetune.momentum
    under Adam, which prune-run refuses as overrides; lottery_ticket set finetune.epochs under a schedule
    that never fine-tunes."""
    from prune_cli.run.prevalidate import validate
    from prune_cli.run.unused_options import _covering, unused_options

    _, jobs = sweep_jobs(preset, ["-m", f"+experiment={preset}"], skip_seeds=True)
    extra = _data_overrides(preset, tmp_path)
    unused: dict[str, list[str]] = {}
    read: set[str] = set()
    for job in jobs:
        cfg = job_config(preset, job, tmp_path, extra)
        validate(cfg)
        errors, notes = unused_options(cfg)
        swept = {o.split("=", 1)[0].split("@")[0] for o in job if not o.startswith("+experiment=")}
        for key in _set_keys(preset, job) | {k for k in swept if "/" not in k}:
            why = _covering(key, errors) or _covering(key, notes)
            if why is None:
                read.add(key)
            else:
                unused.setdefault(key, []).append(why)
    dead = {key: whys[0] for key, whys in unused.items() if key not in read}
    assert dead == {}


# ----------------------------------------------------------------------------- docs


def test_the_report_doc_s_preset_table_has_a_row_for_every_preset():
    """docs/report.md's table under "Experiment presets" has one row per file of configs/experiment/
    (it left out scaling_mnist1d, scaling_mnist1d_depth and scaling_mnist1d_scales)."""
    section = (REPO / "docs" / "report.md").read_text().split("## Experiment presets", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)) == PRESETS


def test_exact_counts_the_regions_doc_gives_for_the_region_bound_preset_fit_the_exact_counter_s_budget(tmp_path):
    """`metrics.regions.method=exact` counts a network of at most metrics.regions.max_units hidden units
    (prune_cli/analysis/regions/exact.py); docs/regions.md suggested adding it to the region_bound preset,
    whose MLP has 200, so every row of regions.csv read "not counted: ... more than
    metrics.regions.max_units=64". Each exact count the page gives for the preset (a command, or a
    suggestion `add `...``) composes, validates and fits the budget."""
    from prune_cli.run.prevalidate import validate

    text = (REPO / "docs" / "regions.md").read_text()
    cases = [shlex.split(c)[1:] for c in re.findall(r"prune-run [^\n`]*\+experiment=region_bound[^\n`]*", text)]
    cases = [args for args in cases if "metrics.regions.method=exact" in args]
    suggested = re.findall(r"add `([^`]*metrics\.regions\.method=exact[^`]*)`", text)  # added to the preset's command
    cases += [["+experiment=region_bound", *shlex.split(a)] for a in suggested]
    assert cases
    for args in cases:
        cfg = job_config("region_bound", args, tmp_path)
        validate(cfg)
        assert cfg.model.name == "mlp" and cfg.metrics.regions.method == "exact"
        assert sum(cfg.model.widths) <= cfg.metrics.regions.max_units, args
