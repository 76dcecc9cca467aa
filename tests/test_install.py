"""The wheel works without the source tree: a non-editable install into a fresh virtualenv, then
`prune-run` from an unrelated directory (configs are shipped inside the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pandas as pd

from conftest import FAST, REPO


def test_non_editable_install_runs_from_an_unrelated_directory(tmp_path):
    # Built from a copy of the sources: building in the checkout would reuse (and ship) whatever a
    # stale build/ directory there still holds, such as modules that have since moved.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("prune_cli", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # Without its own pip (installing pip into it is most of a venv's creation time): this
    # environment's pip installs into it with --python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The fresh venv sees this environment's dependencies through a .pth path entry (no network, no
    # 5 GB reinstall), but only its own, non-editable copy of prune_cli.
    new_site = next((venv / "lib").glob("python*/site-packages"))
    (new_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--ignore-installed", "-q"]
    # One pip call builds the wheel from the copy and installs it (a non-editable install; no second
    # pip start-up for a separate `pip wheel`).
    subprocess.run([*pip, "--no-build-isolation", str(src)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import prune_cli; print(prune_cli.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(new_site) in where.stdout, where.stdout
    # Every config file is shipped, byte for byte (read from the installed copy, no interpreter
    # start-up of its own); the run below composes from them in a directory without a checkout.
    shipped = new_site / "prune_cli" / "configs"
    repo_configs = sorted(p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*.yaml"))
    assert repo_configs == sorted(p.relative_to(shipped) for p in shipped.rglob("*.yaml"))
    assert all((shipped / rel).read_bytes() == (REPO / "configs" / rel).read_bytes() for rel in repo_configs)
    prune_run = str(venv / "bin" / "prune-run")
    done = subprocess.run([prune_run, *FAST, "results_dir=out"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert set(pd.read_csv(elsewhere / "out" / "runs.csv").phase) == {"dense", "pruned", "finetuned"}
