"""Experiment presets (configs/experiment/): every preset composes and validates for every point of
its sweep, `--cfg job` prints it, and one preset runs end to end as a sweep followed by prune-report."""

from __future__ import annotations

import copy
import itertools
import os

import pandas as pd
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import REPO, run_cli

PRESETS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))
EXPECTED = {
    "lap_mlp",
    "recall_distortion",
    "region_bound",
    "pruning_limit",
    "ntk_random",
    "lottery_ticket",
    "pai_baselines",
    "representations",
    "scaling_mnist1d",
    "scaling_mnist1d_scales",
    "scaling_mnist1d_depth",
    "expect_mnist1d",
    "lap_mlp_mnist",
    "synflow_vgg16_cifar10",
    "openlth_resnet20_imp",
    "renda_resnet20_lottery",
}


def _missing_features(preset: str) -> str:
    """Presets written for features of branches not merged yet: what is missing here ('' = nothing)."""
    import prune_cli.cli  # noqa: F401  (registers everything)

    needs = {
        "lap_mlp": [("method=lookahead", (REPO / "configs/method/lookahead.yaml").exists())],
        "pai_baselines": [(f"method={m}", (REPO / f"configs/method/{m}.yaml").exists()) for m in ("snip", "grasp", "synflow")],
    }.get(preset, [])
    return ", ".join(name for name, ok in needs if not ok)


def _sweep_points(preset: str, skip=("seed",)) -> list[list[str]]:
    """Every combination of the preset's hydra.sweeper.params values (Hydra's own override parser)."""
    from omegaconf import OmegaConf

    params = OmegaConf.load(REPO / "configs" / "experiment" / f"{preset}.yaml").hydra.sweeper.params
    parser = OverridesParser.create()
    axes = []
    for key, value in params.items():
        if key in skip:
            continue
        [override] = parser.parse_overrides([f"{key}={value}"])
        axes.append([f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()])
    return [list(point) for point in itertools.product(*axes)]


def test_all_presets_exist():
    assert set(PRESETS) == EXPECTED


def test_the_readme_lists_every_preset_and_no_other():
    """README's "Presets:" sentence names each file of configs/experiment/ (the audit found it checked
    only against this module's own list)."""
    import re

    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"`([a-z0-9_]+)`", readme.split("Presets: ", 1)[1].split("Details:", 1)[0]))
    assert listed == set(PRESETS)


def _group_choice(override: str) -> bool:
    """`method=lookahead`: a choice of a config group (configs/<group>/), not a value."""
    key = override.split("=", 1)[0].split("@", 1)[0]  # `experiment/points@_global_=it4` chooses a file too
    return "." not in key and (REPO / "configs" / key).is_dir()


# Compositions of (base overrides, group choices), shared by the tests of this module that compose the
# same preset in the same folder (`presets_dir`): test_preset_points_compose_like_hydra reuses those of
# test_preset_composes_and_validates_at_every_sweep_point (both in one xdist group). Copies are handed out.
_COMPOSED: dict[tuple[str, ...], object] = {}


def _point_configs(preset: str, points: list[list[str]], results_dir, extra: tuple[str, ...] = ()):
    """The config of every sweep point. Hydra composes each distinct set of group choices once; the
    point's value overrides (`sparsity=0.9`, `model.widths=[64,64]`) are then applied to a copy the way
    Hydra applies value overrides to a composed config (`OmegaConf.update(cfg, key, value, merge=True)`,
    in command-line order). test_preset_points_compose_like_hydra checks this equals a full composition."""
    from omegaconf import OmegaConf

    from tests.helpers import composed

    base = [f"+experiment={preset}", f"results_dir={results_dir}", *extra]
    for point in points:
        choices = tuple(o for o in point if _group_choice(o))
        key = (*base, *choices)
        if key not in _COMPOSED:
            _COMPOSED[key] = composed(base, list(choices))
        cfg = copy.deepcopy(_COMPOSED[key])
        for override in OverridesParser.create().parse_overrides([o for o in point if not _group_choice(o)]):
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        yield point, cfg


# 60 points, each building VGG-16 on the meta device (about 30 s on a busy 2-core machine): slow here;
# every method at both ends of its curve is validated fast in tests/test_presets_published.py.
SLOW_SWEEPS = {"synflow_vgg16_cifar10"}


# The tests that share _COMPOSED run on one pytest-xdist worker (--dist loadgroup); the mark is only
# known where xdist runs the tests (its workers), so elsewhere (-p no:xdist) it is left out.
SHARES_COMPOSITIONS = pytest.mark.xdist_group("report_presets") if "PYTEST_XDIST_WORKER" in os.environ else lambda test: test


@pytest.fixture(scope="session")  # session: built once per worker even when its tests are not consecutive (xdist)
def presets_dir(tmp_path_factory):
    """One results_dir (and data folder) for the compositions of this module, so that they can be shared."""
    return tmp_path_factory.mktemp("presets")


def _data_overrides(preset: str, folder) -> tuple[str, ...]:
    """A paper-scale preset reads real files: tiny files in the real format under folder/data<preset>."""
    text = (REPO / "configs" / "experiment" / f"{preset}.yaml").read_text()
    if "override /dataset: mnist\n" in text:
        from test_expect import write_tiny_mnist

        return (f"dataset.root={write_tiny_mnist(folder / f'data_{preset}')}",)
    if "override /dataset: cifar10\n" in text:
        from test_presets_published import write_tiny_cifar10

        return (f"dataset.root={write_tiny_cifar10(folder / f'data_{preset}')}",)
    return ()


@SHARES_COMPOSITIONS
@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_SWEEPS else p for p in PRESETS])
def test_preset_composes_and_validates_at_every_sweep_point(preset, presets_dir):
    missing = _missing_features(preset)
    if missing:
        pytest.skip(f"{preset} needs {missing} (branch not merged yet)")
    from prune_cli.run.prevalidate import validate

    points = _sweep_points(preset)
    assert len(points) >= 2  # a preset is a sweep
    for point, cfg in _point_configs(preset, points, presets_dir, _data_overrides(preset, presets_dir)):
        validate(cfg)
        assert cfg.name == preset
        for override in point:
            key, text = override.split("=", 1)
            if "/" in key:  # an operating point chosen as a config file: its sparsity is set
                from omegaconf import OmegaConf

                point_file = REPO / "configs" / key.split("@")[0] / f"{text}.yaml"
                assert cfg.sparsity == OmegaConf.load(point_file).sparsity
                continue
            if "." not in key and key in ("method", "schedule", "model", "dataset"):
                assert cfg[key].name == text  # a group choice: the option's own name
                continue
            expected = OverridesParser.create().parse_override(override).value()
            assert _select(cfg, key) == expected, (key, _select(cfg, key), expected)


@SHARES_COMPOSITIONS
@pytest.mark.parametrize("preset", ["ntk_random", "lap_mlp", "lap_mlp_mnist"])  # list values and group choices
def test_preset_points_compose_like_hydra(preset, presets_dir):
    """The shortcut of _point_configs gives exactly Hydra's full composition of the point's overrides."""
    from omegaconf import OmegaConf

    from tests.helpers import composed

    points = _sweep_points(preset)
    extra = _data_overrides(preset, presets_dir)
    for point in (points[0], points[-1]):
        [(_, fast)] = list(_point_configs(preset, [point], presets_dir, extra))
        full = composed(f"+experiment={preset}", f"results_dir={presets_dir}", *extra, point)
        assert OmegaConf.to_container(fast) == OmegaConf.to_container(full)
        assert OmegaConf.get_type(fast.method) is OmegaConf.get_type(full.method)


def _select(cfg, key):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def test_preset_sweep_sizes():
    seeds = {p: len(_sweep_points(p, skip=())) // max(1, len(_sweep_points(p))) for p in PRESETS}
    assert all(n >= 3 for n in seeds.values()), seeds  # R4: at least three seeds per point
    assert len(_sweep_points("recall_distortion", skip=())) == 4 * 5 * 3
    assert len(_sweep_points("ntk_random", skip=())) == 4 * 2 * 2 * 3


def test_cfg_job_prints_a_preset(tmp_path):
    proc = run_cli(["--cfg", "job", "+experiment=recall_distortion"], tmp_path / "results")
    assert "name: recall_distortion" in proc.stdout
    assert "recall_distortion:\n    enabled: true" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_preset_runs_end_to_end_and_prune_report_draws_its_figure(tmp_path):
    """ntk_random (no training) as a real sweep, narrowed on the command line (command-line sweep values
    replace the preset's for the same key; model.rescale keeps the preset's true,false)."""
    results = tmp_path / "results"
    run_cli(
        ["-m", "+experiment=ntk_random", "model.widths=[16,16],[32,32]", "sparsity=0.5", "seed=0,1", "dataset.num_samples=200"],
        results,
    )
    run_dirs = [p.parent for p in results.glob("runs/*/COMPLETE")]
    assert len(run_dirs) == 2 * 2 * 2
    metrics = pd.concat([pd.read_csv(d / "metrics.csv") for d in run_dirs])
    assert set(metrics.name) == {"ntk_random"}
    assert {"ntk_rel_dist_dense", "ntk_mean_ratio"} <= set(metrics.metric)
    from prune_cli.report import main

    main([str(results)])  # prune-report's entry point
    png = results / "report" / "ntk_vs_width.png"
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    summary = pd.read_csv(results / "report" / "summary.csv")
    ntk = summary[(summary.metric == "ntk_rel_dist_dense") & (summary.phase == "finetuned")]
    assert len(ntk) == 4 and (ntk.n_seeds == 2).all()  # widths x rescale, two seeds each
