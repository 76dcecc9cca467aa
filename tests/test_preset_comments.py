"""What each experiment preset says about itself is true (configs/experiment/*.yaml; researchers read
a preset's comments as its documentation):

- no key it sets does nothing (prune_cli/run/unused_options.py, the check prune-run applies to an
  override): a dead key misleads the reader and changes only the run id. A key that some jobs of the
  sweep read and others do not (a method option under a method sweep) is kept, as a sweep's override
  is (`sweep_unused`).
"""

from __future__ import annotations

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


def job_config(preset: str, job: list[str], folder: Path, extra: tuple[str, ...] = ()):
    """The composed config of one job (its overrides as a command line or the sweeper gives them, with
    `extra` before them): the group choices composed by Hydra, the values then applied as Hydra applies
    them (tests/test_report_presets.py `_point_configs`, checked there against a full composition)."""
    given = [o for o in job if o not in ("-m", "--multirun") and not o.startswith("+experiment=")]
    values = [o for o in given if not _group_choice(o)]
    [(_, cfg)] = list(_point_configs(preset, [values], folder / "results", (*extra, *(o for o in given if _group_choice(o)))))
    return cfg


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
