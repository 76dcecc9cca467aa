"""`prune-run --help`: how each listed group is chosen on the command line."""

from __future__ import annotations

from conftest import run_cli


def test_help_shows_experiment_as_an_added_group_and_hides_a_preset_s_own_files(tmp_path):
    """`experiment` is not in the primary config's defaults list, so `experiment=x` fails ("No match in
    the defaults list"): the help showed it as `experiment: ...` like the other groups. And
    `experiment/lap_mlp_mnist_points` (the operating points lap_mlp_mnist chooses itself; alone they
    fail) was listed as a group of its own. Now the help shows `+experiment` and hides the subgroup."""
    proc = run_cli(["--help"], tmp_path / "r")
    lines = proc.stdout.splitlines()
    assert any(line.startswith("+experiment: expect_mnist1d, lap_mlp, lap_mlp_mnist,") for line in lines), proc.stdout
    assert not any(line.startswith("experiment") for line in lines), proc.stdout
    assert "lap_mlp_mnist_points" not in proc.stdout
    assert "+group=option" in proc.stdout  # the header says what the + means
    assert any(line.startswith("method: gp, ") for line in lines)  # a group of the defaults list: no +


def test_version_names_prune_cli_s_version_and_hydra_s(tmp_path):
    """`--version` printed Hydra's version alone (`Hydra 1.3.8`)."""
    import hydra
    from cli_runner import run_in_process

    import prune_cli

    proc = run_in_process(["--version"], cwd=tmp_path, env={})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"prune-cli {prune_cli.__version__} (Hydra {hydra.__version__})", proc.stdout


def test_help_lists_the_launchers_a_sweep_can_choose(tmp_path):
    """The README's sweeps choose `hydra/launcher=parallel` or `slurm`, and the error for a misspelt one lists
    six; `prune-run --help` named none (docs audit of 2026-12-03: only `--hydra-help` did)."""
    from conftest import REPO

    proc = run_cli(["--help"], tmp_path / "r")
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("hydra/launcher: ")]
    ours = {p.stem for p in (REPO / "configs" / "hydra" / "launcher").glob("*.yaml")}  # parallel, slurm
    plugins = {"joblib", "submitit_local", "submitit_slurm"}  # the installed plugins' own configs, and Hydra's basic
    assert line.split(": ", 1)[1].split(" (")[0].split(", ") == sorted({"basic", *ours, *plugins})


def test_prune_report_help_names_every_expect_strict_failure(capsys):
    """`--expect-strict`'s help said "or lacks a failed seed" (backwards) and left out a point of another
    configuration, which the command refuses (docs/report.md, "Expected values")."""
    import pytest

    from prune_cli.report import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "of another configuration" in text and "leaves out a seed that failed, did not finish or has no value" in text
