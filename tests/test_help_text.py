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
