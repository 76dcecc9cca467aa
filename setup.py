"""Package list for setuptools: every prune_cli subpackage, plus the top-level configs/ shipped
as prune_cli.configs (pyproject.toml maps the directory)."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["prune_cli", "prune_cli.*"]) + ["prune_cli.configs"])
