"""Console entry point `prune-run`: compose the config (Hydra), validate it, run the experiment.

Where things can go wrong, and what the user sees (docs/robustness.md):
- a rejected single run (bad value, unknown key, unsafe `name`, unusable `results_dir`) is
  caught while Hydra resolves the run directory, before Hydra creates it: one message, exit 2,
  nothing created anywhere;
- a sweep with any job the pre-run pass rejects runs no job (one message listing them, exit 2);
- in a sweep a run that fails while it works writes `failed.json` in its run directory and the sweep goes on; at the
  end the sweep lists every failed run and exits 1 (`allow_failures=true`: 0);
- SIGTERM / SIGUSR2 / SIGINT stop at the next safe point with one line and exit 128 + signal;
- an unexpected exception (a bug) keeps its traceback and names the run directory.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import SearchPathException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from .core import interrupts, plugins, threads
from .core.checks import usable_directory
from .core.atomic_io import atomic_write_bytes, atomic_write_text
from .core.errors import ConfigError, PruneCliError
from .core.identity import run_id, safe_name
from .core.paths import hydra_config_path
from .core.writable import directory_problem
from .run import composition_memo, sweep_record, sweep_stop
from .run.composition_errors import (
    COMPOSITION_ERRORS,
    as_config_error,
    config_dir_error,
    unresolvable_interpolation,
    yaml_error,
)
from .run.override_checks import check_overrides
from .run.prevalidate import check_added_hydra_keys, checked_model, register_schemas, validate
from .run.unused_options import reject_unused_overrides, sweep_unused, unused_overrides

log = logging.getLogger("prune_cli")

FAILED_FILE = "failed.json"  # written into the run directory of a run that stopped with an error
# Files a rejected run may have created in its directory; a directory holding only these is removed.
SCAFFOLDING = {".hydra", "prune-run.log", "config.yaml", "provenance.json", ".run.lock"}


# --------------------------------------------------------------------------- run directories


def _reject(message: str) -> None:
    """Stop before Hydra creates anything (called while it resolves the run directory)."""
    print(f"prune-run: error: {message}", file=sys.stderr)
    sys.exit(2)  # SystemExit passes through OmegaConf's and Hydra's `except Exception`


def _mode(root: DictConfig):
    return OmegaConf.select(root, "hydra.mode", default=None)


def usable_results_dir(path: str) -> str | None:
    """Why `results_dir` cannot hold results, or None when it can (prune_cli/core/checks.py)."""
    return directory_problem(path, try_create=True)


def check_dense_cache_dir(root: DictConfig) -> None:
    """`dense_cache.dir`, tried where a run or sweep is about to start (validation only asks
    `os.access`, which says yes to root everywhere, /proc included): ConfigError naming the key.
    results_dir is tried once, by `_runs_dir`, before this (the cache's default lies inside it)."""
    if root.dense_cache.enabled:
        usable_directory(root, "dense_cache.dir", try_create=True)


_CREATED: list[Path] = []  # results_dir and results_dir/runs when this process is the one creating them
_SWEEP_CREATED: list[Path] = []  # results_dir and results_dir/.sweeps when the current sweep created them
# (runs/multirun.yaml, its bytes before the current sweep or None): a rejected sweep puts them back
_MULTIRUN_YAML: list[tuple[Path, bytes | None]] = []
# The current sweep's launcher: its choice (`hydra/launcher=slurm`), and its own folder (submitit's
# `submitit_folder` up to the job id) with the names in it before the sweep (None: the folder was not there)
_LAUNCHER: dict[str, Any] = {}


def _runs_dir(*, _root_: DictConfig) -> str:
    """`${runs_dir:}` = results_dir/runs. When Hydra resolves it for a job (before it creates any
    directory), a single run's config is validated first, so a rejected run creates nothing; then
    results_dir/runs is created here, so an unusable results_dir is one clean message."""
    if "results_dir" not in _root_:  # Hydra's node printed alone (`--cfg hydra --resolve`): no run to place
        return "<results_dir>/runs"
    runs = Path(str(_root_.results_dir or ".")) / "runs"
    mode = _mode(_root_)
    if mode is None:  # composed by a test or a tool, not run
        return str(runs)
    if mode == RunMode.RUN:
        try:
            validate(_root_)
            reject_unused_overrides(_root_)
        except PruneCliError as err:  # config values, and dataset files that are not there
            _reject(str(err))
    problem = usable_results_dir(str(_root_.results_dir)) if _root_.results_dir else "it is empty"
    if problem is None and mode == RunMode.RUN:
        try:
            check_dense_cache_dir(_root_)  # before anything is created
        except PruneCliError as err:
            _reject(str(err))
    if problem is None and not _CREATED:
        _CREATED.extend(d for d in (runs.parent, runs) if not d.exists())
        try:
            runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            problem = f"{err.filename} cannot be created ({err.strerror})"
    if problem:
        _reject(
            f"Invalid value for config key 'results_dir': {str(_root_.results_dir)!r}. {problem}; "
            "choose a directory prune-run can write."
        )
    return str(runs)


# A finished run's .hydra files, read before Hydra rewrites them for a command that finds the run
# complete: run directory -> {file name: bytes}. Put back by the job (`_keep_a_finished_run_s_record`).
_FINISHED_RECORDS: dict[Path, dict[str, bytes]] = {}


def _run_id(*, _root_: DictConfig) -> str:
    """`${run_id:}`: the run's directory name. An unsafe `name` (only possible in a sweep, where each
    job is validated in `main` and its failure recorded in its directory) is replaced in the
    directory name, so that nothing lands outside results_dir. Resolved by Hydra before it writes the
    run directory's `.hydra` files: an existing run's are read here, to be put back if this command
    finds the run complete (at once, or after waiting for the process running it)."""
    if "results_dir" not in _root_:  # Hydra's node printed alone (`--cfg hydra --resolve`): no run to name
        return "<run id>"
    if not safe_name(_root_.get("name")):
        return f"invalid-name-seed{_root_.seed}-" + run_id(_root_).rsplit("-", 1)[-1]
    rid = run_id(_root_)
    if _mode(_root_) is not None and _root_.results_dir:
        run_dir = Path(str(_root_.results_dir)) / "runs" / rid
        if (run_dir / ".hydra").is_dir() and len(_FINISHED_RECORDS) < SWEEP_JOBS_KEPT:  # complete, or running elsewhere
            _FINISHED_RECORDS[run_dir.absolute()] = _hydra_record(run_dir)
    return rid


def _hydra_record(run_dir: Path) -> dict[str, bytes]:
    """The run directory's `.hydra` files (config, hydra, overrides), by name."""
    return {p.name: p.read_bytes() for p in (run_dir / ".hydra").glob("*") if p.is_file()}


def _check_a_run_directory_of_its_own(cfg: DictConfig) -> None:
    """A single run given its own directory (`hydra.run.dir=...`): Hydra never resolves `${runs_dir:}`,
    whose resolver validates the run before anything is created, so the same checks run here, on the
    run's composition: the pre-run pass, overrides that do nothing (only a warning before), and the
    directory itself, which must not hold another finished run (its COMPLETE names its run id: a
    command with another config said 'already complete' after Hydra rewrote that run's record). A
    directory holding this very run keeps its record, as for a run found by its id."""
    node = cfg.hydra.run._get_node("dir")
    if "${runs_dir:}" in str(node._value()):  # prune-run's own directory: its resolver checks the run
        return
    validate(cfg)
    reject_unused_overrides(cfg)
    run_dir = Path(str(cfg.hydra.run.dir))
    complete = run_dir / "COMPLETE"
    if not complete.is_file():
        return
    rid, other = run_id(cfg), complete.read_text().strip()
    if other != rid:
        raise ConfigError(
            "hydra.run.dir",
            str(run_dir),
            f"a directory for this run ({rid}): it holds the finished run {other}, which this command would "
            "relabel; leave hydra.run.dir out (each run gets results_dir/runs/<run id>) or name another directory",
        )
    _FINISHED_RECORDS[run_dir.absolute()] = _hydra_record(run_dir)


def _keep_a_finished_run_s_record(run_dir: Path) -> None:
    """A command that finds its run complete changes nothing in it, but Hydra has already rewritten the
    run's `.hydra` files (config, hydra, overrides) with this command's: a rerun with `threads=1`, or
    the same overrides in another order, would make the finished run's record say what it did not run
    with. Put back the files read before Hydra wrote them. Called when the job starts and again when
    the run, found running in another process, turned out complete once this one got its lock."""
    if not (run_dir / "COMPLETE").is_file():
        return  # this process runs it (or resumes it): its command is the record
    kept = _FINISHED_RECORDS.pop(run_dir.absolute(), None)
    if not kept:
        return
    for name, data in kept.items():
        path = run_dir / ".hydra" / name
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)


def _share_config_store_in_repository_copies() -> None:
    """Hydra deep-copies its config repository for every composition and, in `--help`, once per config
    group it lists (94 times); each copy also deep-copies the ConfigStore singleton with every node
    stored in it (Hydra's own `hydra/config` most: 20-45 ms a copy), which made `prune-run --help`
    2.4x an `import torch` (docs/performance.md, "Start-up"). The copies never write to the store:
    stores happen on the singleton, and `ConfigStore.load` hands out deep copies of its nodes, so the
    repository copies can share it."""
    from hydra.core.config_store import ConfigStore

    if "__deepcopy__" not in vars(ConfigStore):
        ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[method-assign]


# Sweep jobs composed by the sweeper's check, for the launcher: (loader id, master config id, overrides)
# -> (master config, a copy of the job's config). Bounded; emptied at the end of every sweep.
_SWEEP_JOBS: dict[tuple, tuple[DictConfig, DictConfig]] = {}
SWEEP_JOBS_KEPT = 1024  # 0.23 MB each; the jobs of a larger batch beyond these are composed twice, as before


def _compose_each_sweep_job_once() -> None:
    """Hydra composes every job of a sweep twice: the sweeper's `validate_batch_is_legal` composes
    each job of a batch to reject a bad override before any job runs (and discards the result), then
    the launcher composes it again to run it, both through `ConfigLoaderImpl.load_sweep_config`. One
    composition merges about 30 YAML files and schema nodes (0.3-1.2 s; the largest per-job cost of a
    sweep of small runs, docs/performance.md "Sweeps"). This wraps that one method: the first call for
    a job's overrides composes as before and keeps a copy; the second call for the same loader, master
    config and overrides returns the copy (once; any further call composes again). The copy is what a
    fresh composition gives (the files are read once, at the check, so the sweep runs the configs it
    checked). Only for Hydra's basic launcher, which runs the jobs in this process (a joblib or
    submitit launcher composes each job in its worker). `tests/test_sweep_compose_once.py` fails if
    the wrapper stops applying."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    compose = ConfigLoaderImpl.load_sweep_config
    if getattr(compose, "composes_each_job_once", False):
        return

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(self), id(master_config), tuple(sweep_overrides))
        kept = _SWEEP_JOBS.pop(key, None)
        if kept is not None and kept[0] is master_config:
            return kept[1]
        job = compose(self, master_config, sweep_overrides)
        in_process = "BasicLauncher" in str(OmegaConf.select(master_config, "hydra.launcher._target_", default=""))
        if in_process and len(_SWEEP_JOBS) < SWEEP_JOBS_KEPT:
            _SWEEP_JOBS[key] = (master_config, copy.deepcopy(job))
        return job

    load_sweep_config.composes_each_job_once = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_sweep_config = load_sweep_config  # type: ignore[method-assign]


SWEEP_REJECTIONS_LISTED = 10  # rejected jobs named one by one; the rest are counted


class SweepRejected(PruneCliError):
    """Jobs of a sweep whose configs the pre-run pass rejects, found before any job ran."""


def _validate_every_sweep_job_first() -> None:
    """A sweep runs only when every one of its jobs passes the pre-run pass. Hydra's sweeper composes
    the jobs of a batch before launching it (`validate_batch_is_legal`), which rejects an override
    Hydra cannot compose; a value the pre-run pass rejects (`sparsity=0.5,1.5`, `+train.epoch=1,2`)
    used to be found only when its job ran, after the jobs before it had trained, and left a run
    directory with `failed.json`. This wraps that check: at its first call of a sweep it composes
    every job of every batch (the copies are what the launcher runs, `_compose_each_sweep_job_once`)
    and validates each; any rejected job stops the sweep before its first run with one message
    listing every rejected job (exit 2; nothing created, as for a composition error). Failures that
    only a running job can find (divergence, a file's content) are still recorded per job."""
    from hydra.plugins.sweeper import Sweeper

    check_batch = Sweeper.validate_batch_is_legal
    if getattr(check_batch, "validates_every_job_first", False):
        return

    def validate_batch_is_legal(self, batch) -> None:
        if getattr(self, "_prune_cli_jobs_validated", False):
            return
        self._prune_cli_jobs_validated = True
        try:
            validate_every_job(self, batch)  # a rejected job: _CompositionRejected, main puts the folder back
        except Exception:  # a bug (its traceback is Hydra's to report): no job ran, so nothing of the sweep stays
            _undo_sweep_start()
            raise

    def validate_every_job(self, batch) -> None:
        loader = self.hydra_context.config_loader if getattr(self, "hydra_context", None) else self.config_loader
        batches = getattr(self, "overrides", None) or [batch]  # the basic sweeper's batches, all of them
        jobs = [list(job) for one in batches for job in one]
        common = set.intersection(*(set(job) for job in jobs)) if len(jobs) > 1 else set()
        rejected, valid = [], []
        for number, overrides in enumerate(jobs, 1):
            swept = " ".join(o for o in overrides if o not in common)  # what tells the jobs apart
            try:
                job = loader.load_sweep_config(master_config=self.config, sweep_overrides=overrides)
            except COMPOSITION_ERRORS as err:  # a key this job's options lack (-m method=snip,magnitude method.batches=2)
                rejected.append(f"job {number} of {len(jobs)} ({swept}): {as_config_error(err, overrides)}")
                continue
            except yaml.YAMLError as err:  # an option's file that does not parse (-m model=mlp,broken)
                rejected.append(f"job {number} of {len(jobs)} ({swept}): {yaml_error(err)}")
                continue
            try:
                validate(job)
                check_dense_cache_dir(job)  # results_dir: tried when the sweep's directory was resolved
                valid.append((overrides, job))
            except PruneCliError as err:
                rejected.append(f"job {number} of {len(jobs)} ({swept}): {err}")
        if rejected:
            listed = rejected[:SWEEP_REJECTIONS_LISTED]
            if len(rejected) > len(listed):
                listed.append(f"... and {len(rejected) - len(listed)} more")
            head = f"{len(rejected)} of {len(jobs)} jobs of the sweep rejected; no job ran"
            raise _CompositionRejected(SweepRejected(head + ":\n  " + "\n  ".join(listed)))
        unused = sweep_unused(valid)  # an override no job reads; one that some jobs read is noted in the others' logs
        if unused:
            lines = [one.message().replace("in this run", f"in any of the sweep's {len(jobs)} jobs") for one in unused]
            raise _CompositionRejected(SweepRejected("no job ran:\n  " + "\n  ".join(lines)))

    validate_batch_is_legal.validates_every_job_first = True  # type: ignore[attr-defined]
    Sweeper.validate_batch_is_legal = validate_batch_is_legal  # type: ignore[method-assign]


def _reject_sweeps_with_no_job() -> None:
    """Hydra's basic sweeper enumerates its jobs: `interval(0,1)` (a range to sample from) made it raise
    a HydraException with its traceback, exit 1, after results_dir/runs was created; a sweep that
    expands to no value (`seed=glob(*)`: glob() lists the options of a config group, and seed is none;
    a glob no option matches; `range(0,0)`) launched 0 jobs and reported "all 0 runs of the sweep
    completed", exit 0, with a new runs/multirun.yaml. This checks the sweep's overrides as the
    sweeper parses them, before it writes anything: ConfigError naming the key (exit 2, and what the
    sweep's start had made is removed, `_reject_composition`). Keys added to Hydra's own config with `+`
    are checked (`check_added_hydra_keys`) before the sweeper and its launcher are made from them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.core.plugins import Plugins

    instantiate = Plugins.instantiate_sweeper
    if getattr(instantiate, "rejects_sweeps_with_no_job", False):
        return

    def check(sweeper, arguments) -> None:
        loader = sweeper.hydra_context.config_loader
        for o in OverridesParser.create(config_loader=loader).parse_overrides([*sweeper._parse_config(), *arguments]):  # noqa: SLF001
            if not o.is_sweep_override():
                continue
            key = o.get_key_element().lstrip("+~")
            value = o.input_line.partition("=")[2] if o.input_line else o.get_value_element_as_str()
            if not o.is_discrete_sweep():
                raise ConfigError(
                    key,
                    value,
                    "a list a,b,c, range(start,stop[,step]) or choice(a,b): Hydra's basic sweeper runs each value it lists",
                    f"{str(o.value_type.name).lower().removesuffix('_sweep')}() needs a sweeper that samples values, "
                    "e.g. Hydra's Optuna sweeper plugin.",
                )
            if any(True for _ in o.sweep_string_iterator()):
                continue
            options = loader.get_group_options(o.key_or_group) if "." not in o.key_or_group else []
            if o.value_type == ValueType.GLOB_CHOICE_SWEEP and options:
                allowed = f"a glob matching at least one option of config group '{o.key_or_group}': {', '.join(options)}"
            elif o.value_type == ValueType.GLOB_CHOICE_SWEEP:
                allowed = (
                    "glob() over the options of a config group (model=glob(resnet*)); glob() applies to config groups "
                    f"only: a sweep over {key} lists its values ({key}=a,b or range(0,3))"
                )
            else:
                allowed = "a sweep over at least one value"
            raise ConfigError(key, value, allowed, "It gives no value, so the sweep would have no job.")

    def instantiate_sweeper(self, *, hydra_context, task_function, config):
        check_added_hydra_keys(config)  # before Hydra hands the sweeper's and launcher's keys to their classes
        sweeper = instantiate(self, hydra_context=hydra_context, task_function=task_function, config=config)
        if type(sweeper).__name__ == "BasicSweeper":  # Hydra's plugin scan loads its module anew: matched by name
            sweep = sweeper.sweep

            def sweep_with_jobs(arguments):
                check(sweeper, arguments)
                return sweep(arguments)

            sweeper.sweep = sweep_with_jobs
        return sweeper

    instantiate_sweeper.rejects_sweeps_with_no_job = True  # type: ignore[attr-defined]
    Plugins.instantiate_sweeper = instantiate_sweeper  # type: ignore[method-assign]


# A single run's composition made while Hydra asked for the run mode, for Hydra's run: (loader id, config
# name, overrides) -> the config, or the exception the composition raised. At most one; emptied by the next
# composition of any kind.
_RUN_COMPOSITION: dict[tuple, Any] = {}


RUN_MODE_OVERRIDE = "hydra.mode=RUN"  # what Hydra's _run_app appends to a run's overrides when no config sets the mode


def _keep_for_the_run(hydra_app, config_name, overrides, mode, composed) -> None:
    """Keep `composed` (a config or an error) for the composition `Hydra.run` makes next: with the same
    overrides when a config sets `hydra.mode=RUN`, with `hydra.mode=RUN` appended when none sets the
    mode; nothing for a multirun."""
    if mode is None:
        overrides = [*overrides, RUN_MODE_OVERRIDE]
    elif mode != RunMode.RUN:
        return
    _RUN_COMPOSITION[(id(hydra_app.config_loader), config_name, tuple(overrides))] = composed


def _compose_a_run_once() -> None:
    """Hydra composes a single run's config twice: `Hydra.get_mode` composes it (as for a multirun,
    sweep overrides unchecked) only to read `hydra.mode`, then `Hydra.run` composes it again with the
    same overrides to run it (one composition: 0.3-0.4 s, about a sixth of a config error's start-up,
    docs/performance.md "Start-up"). This makes the first composition the run's own: without sweep
    overrides, `get_mode` composes for a run (`RunMode.RUN`, exactly `Hydra.run`'s call) and keeps
    the result, or the error it raised; the next composition, if it is `Hydra.run`'s of the same
    loader, config name and overrides, returns it instead of composing again. With sweep overrides,
    or when the run composition fails, `get_mode` is Hydra's own, so that `-m` sweeps and
    `hydra.mode=MULTIRUN` in a config choose their mode as before. `tests/test_run_compose_once.py`
    fails if the wrapper stops applying or a run gets another command's config."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra

    get_mode, load = Hydra.get_mode, ConfigLoaderImpl.load_configuration
    if getattr(get_mode, "composes_a_run_once", False):
        return

    def get_mode_from_the_run_composition(self, config_name, overrides):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            sweep = any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))
        except Exception:  # noqa: BLE001 - a bad override: Hydra's own path reports it
            sweep = True
        if sweep:  # a sweep (-m, or hydra.mode=MULTIRUN in a config): no run composition to keep
            return get_mode(self, config_name, overrides)
        try:
            cfg = self.config_loader.load_configuration(config_name=config_name, overrides=list(overrides), run_mode=RunMode.RUN)
        except Exception as err:  # noqa: BLE001 - kept and raised again by the run's composition
            mode = get_mode(self, config_name, overrides)
            _keep_for_the_run(self, config_name, overrides, mode, err)
            return mode
        mode = cfg.hydra.mode
        if mode is None:  # Hydra's _run_app then runs with `hydra.mode=RUN` appended: apply it as Hydra does
            appended = OverridesParser.create().parse_overrides([RUN_MODE_OVERRIDE])
            ConfigLoaderImpl._apply_overrides_to_config(appended, cfg)  # noqa: SLF001 - Hydra's own step
            cfg.hydra.overrides.hydra.append(RUN_MODE_OVERRIDE)
        if mode != RunMode.MULTIRUN:
            try:
                _check_a_run_directory_of_its_own(cfg)
            except PruneCliError as err:  # raised again by the run's composition, inside Hydra's error report
                _keep_for_the_run(self, config_name, overrides, mode, err)
                return mode
        _keep_for_the_run(self, config_name, overrides, mode, cfg)
        return mode

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        kept = _RUN_COMPOSITION.pop((id(self), config_name, tuple(overrides)), None)
        _RUN_COMPOSITION.clear()
        if kept is not None and run_mode == RunMode.RUN and from_shell and validate_sweep_overrides:
            if isinstance(kept, Exception):
                raise kept
            return kept
        return load(self, config_name, overrides, run_mode, from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides)

    get_mode_from_the_run_composition.composes_a_run_once = True  # type: ignore[attr-defined]
    Hydra.get_mode = get_mode_from_the_run_composition  # type: ignore[method-assign]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]


def _compose_group_sweeps_with_their_options() -> None:
    """A sweep over a config group's options with an option they declare (`-m method=snip,grasp
    method.batches=2`): Hydra composes the sweep's master config (hydra settings, callbacks; each job
    is composed on its own later) with the group's *default* option, to which it also applies
    `method.batches=2`, and fails because magnitude has no `batches`. This wraps that one composition:
    when a multirun's master config fails to compose and the overrides sweep over config groups, it is
    composed again with each such group at its first swept option, its recorded task overrides set
    back to the ones given (the sweeper expands those into the jobs). Every job is then composed and
    validated on its own before any runs (`_validate_every_sweep_job_first`), so a key that one swept
    option lacks still stops the sweep naming it, and a key no option declares fails as before
    (`tests/test_group_sweeps.py`)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    load = ConfigLoaderImpl.load_configuration
    if getattr(load, "composes_group_sweeps", False):
        return

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        try:
            return load(
                self, config_name, overrides, run_mode, from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides
            )
        except Exception as err:
            if run_mode != RunMode.MULTIRUN:
                raise
            try:
                parsed = OverridesParser.create().parse_overrides(list(overrides))
            except Exception:  # noqa: BLE001 - an override Hydra cannot parse: its own error stands
                raise err  # noqa: B904 - its own cause (the OmegaConf error) names the key
            first = []
            for o in parsed:
                is_group = o.is_sweep_override() and self.repository.group_exists(o.key_or_group)
                first.append(f"{o.key_or_group}={next(o.sweep_string_iterator())}" if is_group else o.input_line)
            if first == list(overrides):
                raise
            try:
                cfg = load(
                    self, config_name, first, run_mode, from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides
                )
            except Exception:  # noqa: BLE001 - not what the group's default lacked: the first error stands
                raise err  # noqa: B904 - its own cause (the OmegaConf error) names the key
            cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
            return cfg

    load_configuration.composes_group_sweeps = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]


class _PastHydra(BaseException):
    """An error on its way to `main` past Hydra's `except Exception` (which would print its traceback)."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


class _CompositionRejected(_PastHydra):
    """A config Hydra could not compose."""


def _report_composition_errors_once() -> None:
    """One message per config error. Hydra reports an error while composing itself (its message, the
    config search path and a hint about HYDRA_FULL_ERROR, then exit 1) before `main` could add
    prune-cli's line naming the key, the value and what is allowed: two reports of one typo. The
    errors `as_config_error` translates pass Hydra's `run_and_report` instead, so that `main`
    prints that one line (which holds Hydra's own text where it names no key); every other error,
    and every error with HYDRA_FULL_ERROR=1 or under a debugger, is Hydra's to report as before."""
    from hydra._internal import utils as hydra_utils

    report = hydra_utils.run_and_report
    if getattr(report, "reports_composition_errors_once", False):
        return

    def run_and_report(func):
        def composing():
            try:
                return func()
            except COMPOSITION_ERRORS as err:
                if hydra_utils._is_env_set("HYDRA_FULL_ERROR") or hydra_utils.is_under_debugger():  # noqa: SLF001
                    raise
                raise _CompositionRejected(err) from err
            except PruneCliError as err:  # raised inside Hydra's composition: a plugin module that does not import
                raise _CompositionRejected(err) from err
            except InterpolationResolutionError as err:
                shown = _unresolvable_in_shown_config(err)
                if shown is None:
                    raise
                raise _CompositionRejected(shown) from err
            except SearchPathException as err:  # --config-dir names no folder
                raise _CompositionRejected(config_dir_error(err)) from err
            except yaml.YAMLError as err:  # a config file Hydra loads does not parse (not one a run reads)
                if _raised_in_a_job(err):
                    raise
                raise _CompositionRejected(yaml_error(err)) from err
            except Exception as err:
                if _launcher_failed(err):
                    raise _LauncherFailed(err) from err
                raise

        return report(composing)

    run_and_report.reports_composition_errors_once = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def _raised_in_a_job(err: BaseException) -> bool:
    """Whether `err` came out of the task function (a run at work), not out of Hydra's composition."""
    job = getattr(hydra_main, "__wrapped__", hydra_main).__code__
    return any(frame.f_code is job for frame, _ in traceback.walk_tb(err.__traceback__))


def _unresolvable_in_shown_config(err: InterpolationResolutionError) -> ConfigError | None:
    """`--cfg job --resolve` with an interpolation that cannot resolve: Hydra's `show_cfg` resolves the
    config it prints before any validation, and OmegaConf's error names no key. The config it was
    printing is found in that call's frame, and the interpolation named (None: not raised there)."""
    from hydra._internal.hydra import Hydra

    for frame, _ in traceback.walk_tb(err.__traceback__):
        shown = frame.f_locals.get("ret") if frame.f_code is Hydra.show_cfg.__code__ else None
        if isinstance(shown, DictConfig):
            return unresolvable_interpolation(shown, skip=())
    return None


# Config groups in configs/ that are not prune-run's: `expected` holds prune-report's reference numbers
# (`prune-report --expect`, docs/report.md); prune-run rejects `+expected=...`.
NOT_PRUNE_RUN_GROUPS = ("expected",)


def _list_only_prune_run_s_groups_in_help() -> None:
    """`prune-run --help` lists the config groups Hydra finds under configs/, which include prune-report's
    `expected`; the list is filtered here (Hydra's help template has no other hook for it)."""
    from hydra._internal.hydra import Hydra

    format_groups = Hydra.format_config_groups
    if getattr(format_groups, "prune_run_s_only", False):
        return

    def format_config_groups(self, predicate, compact: bool = True) -> str:
        return format_groups(self, lambda group: predicate(group) and group.split("/")[0] not in NOT_PRUNE_RUN_GROUPS, compact)

    format_config_groups.prune_run_s_only = True  # type: ignore[attr-defined]
    Hydra.format_config_groups = format_config_groups  # type: ignore[method-assign]


_share_config_store_in_repository_copies()
_list_only_prune_run_s_groups_in_help()
composition_memo.install()
_report_composition_errors_once()
_compose_each_sweep_job_once()
_validate_every_sweep_job_first()
_reject_sweeps_with_no_job()
_compose_a_run_once()
_compose_group_sweeps_with_their_options()
register_schemas()
for _name, _fn in (("run_id", _run_id), ("runs_dir", _runs_dir)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn, use_cache=False)


# --------------------------------------------------------------------------- the job


def command_line_plugins(args: list[str]) -> list[str]:
    """The modules of a `plugins=[my_lab.scores, ...]` override among `args` (Hydra's own parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found: list[str] = []
    for arg in args:
        if not arg.lstrip("+").startswith("plugins="):
            continue
        override = OverridesParser.create().parse_override(arg)
        value = None if override.is_sweep_override() else override.value()
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError("plugins", arg.split("=", 1)[1], "a list of module names, e.g. plugins=[my_lab.scores]")
        found += value
    return found


def main() -> None:
    """`prune-run`: index the plugin modules named on the command line (their options must be known
    before Hydra composes the config), then compose, validate and run. OpenMP's wait policy is set
    first: it is read when torch loads (prune_cli/core/threads.py)."""
    threads.quiet_openmp_wait(os.environ)
    _MULTIRUN_YAML.clear()  # another command's sweep in this process (tests, tools) is not this one
    _LAUNCHER.clear()
    try:
        check_overrides(sys.argv[1:])
        named = command_line_plugins(sys.argv[1:])
        plugins.add_modules(named)
        plugins.pass_to_launched_processes(named)
    except PruneCliError as err:
        _reject(str(err))
    try:
        hydra_main()
    except _LauncherFailed as failed:
        _report_launcher_failure(failed.error)
    except _CompositionRejected as rejected:
        _reject_composition(rejected.error)
    except SystemExit as stop:
        # Where Hydra still reports an error while composing itself (`--info`, which calls its own
        # reference to `run_and_report`): printed, then exit 1 from inside its `except` clause, so
        # the error is the exit's implicit context (Python's exception chaining).
        if stop.code == 1 and isinstance(stop.__context__, COMPOSITION_ERRORS):
            _reject_composition(stop.__context__)
        raise
    except COMPOSITION_ERRORS as err:  # HYDRA_FULL_ERROR=1: Hydra re-raises it instead
        traceback.print_exc()
        _reject_composition(err)
    except ValueError as err:  # Hydra's refusal of two modes (`-m ... --cfg job`): a usage error, not a bug
        if not str(err).startswith("Only one of --run, --multirun"):
            raise
        _reject(f"{err} (e.g. -m and --cfg job together; --cfg job prints one job's config: give it without -m)")
    finally:  # a sweep stopped by a signal never reached its summary, the record's only reader
        sweep_stop.restore_signals()
        sweep_record.remove(os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None))


def _report_stopped_sweep(outcomes: list[dict], signum: int | None) -> None:
    """The end of a parallel sweep a signal stopped (prune_cli/run/sweep_stop.py): which runs stopped
    (each kept its last checkpoint), how many queued runs did not start, how to resume; exit 128 +
    signal like one run."""
    started = [x for x in outcomes if x["status"] not in ("skipped", "not-started")]
    unfinished = [x for x in started if x["status"] != "completed"]
    signum = signum or _signal_of(unfinished)
    name, done = signal.Signals(signum).name, len(started) - len(unfinished)
    print(f"prune-run: sweep stopped by {name}: {done} of the {len(started)} runs that started completed", file=sys.stderr)
    for x in unfinished:
        print(f"  {x['run_dir']}: {_how_it_stopped(x)}", file=sys.stderr)
    queued = len(outcomes) - len(started)
    if queued:
        print(f"prune-run: {queued} queued run{'s were' if queued > 1 else ' was'} not started", file=sys.stderr)
    print("prune-run: run the same command again to resume the sweep (completed runs are not repeated)", file=sys.stderr)
    sys.exit(128 + signum)


def _signal_of(outcomes: list[dict]) -> int:
    """The signal a worker's job was stopped by, from its record ("Interrupted: SIGTERM")."""
    for x in outcomes:
        if x["status"] == "stopped" and x["reason"].startswith("Interrupted: SIG"):
            return int(signal.Signals[x["reason"].split(": ", 1)[1]])
    return int(signal.SIGTERM)


def _how_it_stopped(outcome: dict) -> str:
    if outcome["status"] != "stopped":
        return outcome["reason"] or outcome["status"]
    if (Path(outcome["run_dir"]) / "state.pt").exists():
        return "stopped at a safe point; its checkpoint (state.pt) is kept"
    return "stopped before its first checkpoint"


def _reject_composition(err: Exception) -> None:
    """A config Hydra could not compose (prune_cli/run/composition_errors.py): exit 2 like every config
    error, and remove what a sweep had made before its sweeper composed the jobs, so a rejected config
    creates nothing."""
    _undo_sweep_start()
    _reject(str(err if isinstance(err, PruneCliError) else as_config_error(err, sys.argv[1:])))


def _undo_sweep_start() -> None:
    """Put the results folder back as a sweep that ran no job found it: the sweep's record,
    multirun.yaml, the files its launcher wrote (submitit's pickled jobs and sbatch script) and the
    folders this process created."""
    _SWEEP_JOBS.clear()
    path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    if path and Path(path).is_file():
        if Path(path).read_text().strip():  # a job started: its run and the sweep's multirun.yaml stay
            _MULTIRUN_YAML.clear()
            _LAUNCHER.clear()
        else:
            Path(path).unlink()
    for record, before in _MULTIRUN_YAML:  # the sweeper wrote it before it composed the jobs
        if before is None:
            record.unlink(missing_ok=True)
        elif not record.is_file() or record.read_bytes() != before:
            atomic_write_bytes(record, before)
    _MULTIRUN_YAML.clear()
    folder, before = _LAUNCHER.pop("folder", None), _LAUNCHER.pop("before", None)
    if folder is not None and folder.is_dir():
        for one in folder.iterdir():
            if one.is_file() and (before is None or one.name not in before):
                one.unlink()
    for made in sorted({*_CREATED, *_SWEEP_CREATED, *_LAUNCHER.pop("created", [])}, key=lambda p: -len(p.parts)):
        try:  # deepest first
            made.rmdir()
        except OSError:
            pass  # not empty: a run or another sweep's record is in it
    _SWEEP_CREATED.clear()


class _LauncherFailed(_PastHydra):
    """A sweep's launcher raised (no SLURM here, sbatch refused the array job, a parallel worker was
    killed)."""


def _launcher_failed(err: Exception) -> bool:
    """Whether `err` came out of the launcher of a sweep under way."""
    from hydra.plugins.launcher import Launcher

    if not _MULTIRUN_YAML:  # no sweep under way (its end clears the record)
        return False
    return any(isinstance(frame.f_locals.get("self"), Launcher) for frame, _ in traceback.walk_tb(err.__traceback__))


def _report_launcher_failure(err: Exception) -> None:
    """The launcher's own reason (sbatch's error is in it), exit 1. Before any job started, the results
    folder is put back as it was; after, the runs stay and each one that did not complete is named."""
    name = _LAUNCHER.pop("name", "the launcher")
    reason = f"{type(err).__name__}: {err}".strip()
    path = os.environ.get(sweep_record.SWEEP_RECORD_ENV)
    outcomes = sweep_record.outcomes(path) if path and Path(path).is_file() else []
    if not outcomes:
        _undo_sweep_start()
        print(f"prune-run: error: {name} could not start the sweep; no job ran and nothing was kept: {reason}", file=sys.stderr)
        sys.exit(1)
    os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
    sweep_record.remove(path)
    _MULTIRUN_YAML.clear()  # jobs ran: the sweep's multirun.yaml stays
    _LAUNCHER.clear()
    unfinished = [x for x in outcomes if x["status"] != "completed"]
    print(f"prune-run: error: {name} stopped the sweep: {reason}", file=sys.stderr)
    print(
        f"prune-run: {len(outcomes) - len(unfinished)} of the {len(outcomes)} runs that started completed; "
        f"these did not (run the same command again to resume them; completed runs are not repeated):",
        file=sys.stderr,
    )
    for x in unfinished:
        print(f"  {x['run_dir']}: {x['reason'] or x['status']}", file=sys.stderr)
    sys.exit(1)


@hydra.main(version_base="1.3", config_path=hydra_config_path(), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from .run.experiment import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    interrupts.install()
    _keep_a_finished_run_s_record(run_dir)
    if in_sweep and sweep_record.stopping() and not (run_dir / "COMPLETE").exists():
        _remove_if_scaffolding(run_dir)  # a queued job a parallel worker took up while a signal stops the sweep
        sweep_record.record_outcome(run_dir, "not-started")
        return
    if in_sweep and cfg.get("fail_fast", False) and not (run_dir / "COMPLETE").exists():
        failed = sweep_record.failed_in_this_sweep()
        if failed is not None:  # a parallel launcher started this job after another one failed
            _remove_if_scaffolding(run_dir)
            sweep_record.record_outcome(run_dir, "skipped")
            print(f"prune-run: {run_dir.name} not started: {Path(failed).name} failed and fail_fast=true", file=sys.stderr)
            return
    if in_sweep:  # a job killed from outside (OOM killer, a node) records nothing else: the summary names it
        sweep_record.record_outcome(run_dir, "started")
    try:
        interrupts.check()
        if in_sweep:  # a launcher's worker process: index the job's plugin modules again
            plugins.add_modules(cfg.plugins)
        validate(cfg)
        for one in unused_overrides(cfg, list(hydra_cfg.overrides.task)):  # a note, or a sweep job that ignores it
            log.warning(one.message())
        _limit_threads(cfg, hydra_cfg)
        run(cfg, run_dir, on_found_complete=lambda: _keep_a_finished_run_s_record(run_dir))
        interrupts.check()  # the signal came during the last step: the run is done, stop the sweep here
    except interrupts.Interrupted as stop:
        _stopped(stop, run_dir, in_loky_sweep=in_sweep and sweep_stop.runs_jobs_in_loky_workers(hydra_cfg.launcher))
    except Exception as err:  # noqa: BLE001 - every failure is recorded; the sweep decides whether to go on
        err = _as_expected(err)
        sweep_record.record_outcome(run_dir, "failed", err)
        if not in_sweep or cfg.get("fail_fast", False):
            _fail(err, run_dir, hydra_cfg, cfg, in_sweep)
            if not (in_sweep and isinstance(err, PruneCliError)):
                raise  # errors that are not PruneCliError: a bug, its traceback
            return  # a parallel fail-fast sweep: the jobs that start after this one see the failure and stop
        _record_failure(err, run_dir, hydra_cfg, cfg)
        log.error(
            "run %s failed (%s: %s); details in %s; the sweep goes on (fail_fast=true stops it)",
            run_dir.name,
            type(err).__name__,
            err,
            run_dir / FAILED_FILE,
        )
        print(f"prune-run: error in {run_dir.name}: {err}", file=sys.stderr)
    else:
        (run_dir / FAILED_FILE).unlink(missing_ok=True)  # an earlier attempt failed; this one completed
        sweep_record.record_outcome(run_dir, "completed")


def _as_expected(err: Exception) -> Exception:
    """An OS error on a named file (disk full, permission denied) is the environment, not a bug."""
    if isinstance(err, OSError) and not isinstance(err, PruneCliError) and err.filename:
        clean = PruneCliError(f"cannot use {err.filename}: {err.strerror or err}")
        clean.__cause__ = err
        return clean
    return err


def _stopped(stop: interrupts.Interrupted, run_dir: Path, in_loky_sweep: bool = False) -> None:
    """One line naming the run and how to resume, exit 128 + signal. A job of a parallel sweep instead
    marks the sweep as stopping and ends normally: the sweep's process says the rest at its end
    (prune_cli/run/sweep_stop.py)."""
    name = str(stop)
    if (run_dir / "COMPLETE").exists():
        line = f"prune-run: stopped by {name}; run {run_dir} is complete"
    elif not (run_dir / "state.pt").exists():  # stopped before the first checkpoint (an epoch's end)
        line = (
            f"prune-run: stopped by {name}; run {run_dir} has no checkpoint yet (stopped before the end "
            f"of its first epoch); run the same command again to start it"
        )
    else:
        line = (
            f"prune-run: stopped by {name}; run {run_dir} keeps its last checkpoint (state.pt); "
            f"run the same command again to resume it"
        )
    log.warning(line)
    print(line, file=sys.stderr)
    sweep_record.record_outcome(run_dir, "stopped", stop)
    if in_loky_sweep:
        sweep_record.mark_stopping(sweep_record.current())
        return
    sys.exit(stop.exit_code)


def _fail(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig, in_sweep: bool) -> None:
    """A single run stops as before: a rejected config leaves no directory, prune-cli errors exit 2."""
    if isinstance(err, ConfigError) and not in_sweep:
        _remove_if_scaffolding(run_dir)
    else:
        _record_failure(err, run_dir, hydra_cfg, cfg)
    if isinstance(err, PruneCliError) and not in_sweep:
        log.debug("stopping: %s", err)  # keeps the reason in the run's log file
        print(f"prune-run: error: {err}", file=sys.stderr)
        sys.exit(2)
    if in_sweep:
        log.error("run %s failed (%s: %s); fail_fast=true: stopping the sweep", run_dir.name, type(err).__name__, err)
        print(f"prune-run: error in {run_dir.name}: {err} (fail_fast: sweep stopped)", file=sys.stderr)
        if "BasicLauncher" in str(hydra_cfg.launcher.get("_target_", "")):
            sys.exit(1)  # jobs run one after another in this process: stop before the next one
        # parallel launchers: the jobs already running finish; those that start later find this failure
        # in the sweep's record and do not run (hydra_main, sweep_record.failed_in_this_sweep)
    else:
        print(
            f"prune-run: internal error in run {run_dir} ({type(err).__name__}); this is a bug in prune-cli, "
            f"please report it with {run_dir / FAILED_FILE} (traceback below)",
            file=sys.stderr,
        )


def _record_failure(err: Exception, run_dir: Path, hydra_cfg, cfg: DictConfig) -> None:
    """failed.json in the run directory: what failed and how, for the sweep summary and prune-report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "failed",
        "run_dir": str(run_dir),
        "error_type": type(err).__name__,
        "message": str(err),
        "config_error": isinstance(err, ConfigError),
        "overrides": list(hydra_cfg.overrides.task),
        "job_num": hydra_cfg.job.get("num"),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "traceback": traceback.format_exc(),
    }
    atomic_write_text(run_dir / FAILED_FILE, json.dumps(record, indent=2, default=str))


def _limit_threads(cfg: DictConfig, hydra_cfg) -> None:
    """Give torch the intra-op threads of `threads=auto|N` (prune_cli/core/threads.py): OMP_NUM_THREADS
    when set (also per job by a launcher, hydra.job.env_set: torch sized its pool before Hydra set it,
    so it is applied here), otherwise one thread for a small model and the usable CPUs for a large
    one; the choice and its reason go to the log."""
    import torch

    setting = cfg.get("threads", "auto")
    launcher = hydra_cfg.launcher if hydra_cfg.mode == RunMode.MULTIRUN else {}
    n_jobs = launcher.get("n_jobs") if "Joblib" in str(launcher.get("_target_", "")) else None
    usable = threads.usable_cpus(os.environ, n_jobs=n_jobs)
    needs_size = setting == "auto" and threads.explicit_omp_threads(os.environ) is None
    choice = threads.choose_threads(setting, os.environ, usable, _macs_per_batch(cfg) if needs_size else None)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    log.info("torch intra-op threads: %d (%s)", torch.get_num_threads(), choice.reason)


def _macs_per_batch(cfg: DictConfig) -> int | None:
    """Forward multiply-accumulates of one training batch, counted by the pre-run pass on the model it
    built for the dataset's declared input (`checked_model`: built once per model config and process);
    None when the dataset declares no input shape."""
    checked = checked_model(cfg)
    return None if checked is None else checked.macs_per_example * int(cfg.train.batch_size)


def _remove_if_scaffolding(run_dir: Path) -> None:
    """A run rejected before it started leaves no directory behind (only its scaffolding was there),
    unless another process holds the run's lock: the same run, started by another command, is working
    in it (its first files come later)."""
    from filelock import FileLock, Timeout

    if not (run_dir.is_dir() and all(p.name in SCAFFOLDING or p.suffix == ".log" for p in run_dir.iterdir())):
        return
    lock = FileLock(str(run_dir / ".run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return
    try:
        shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        lock.release()
    for folder in reversed(_CREATED):  # and the folders Hydra made for it, if still empty
        try:
            folder.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------- the sweep


def _note_the_launcher(config: DictConfig) -> None:
    """What `_undo_sweep_start` needs to put back if the launcher fails before any job ran: its name,
    and the files in its own folder (submitit's `submitit_folder`, up to the first `%` placeholder)."""
    choice = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/launcher")
    _LAUNCHER.clear()
    _LAUNCHER["name"] = f"hydra/launcher={choice}" if choice else "the launcher"
    own = OmegaConf.select(config, "hydra.launcher.submitit_folder", default=None)
    if own:
        parts = Path(str(own)).parts
        folder = Path(*parts[: next((i for i, p in enumerate(parts) if "%" in p), len(parts))])
        _LAUNCHER["folder"] = folder
        _LAUNCHER["before"] = {p.name for p in folder.iterdir()} if folder.is_dir() else None
        _LAUNCHER["created"] = [d for d in (folder, *folder.parents) if not d.exists()]


class SweepSummary(Callback):
    """At the end of a multirun: "N of M runs failed" with each failed run directory and reason,
    and a non-zero exit (cluster scripts check it) unless `allow_failures=true`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.results_dir)) / ".sweeps"
        if usable_results_dir(str(config.results_dir)) is not None:
            return  # the run directories' resolver reports it
        _SWEEP_CREATED[:] = [d for d in (folder.parent, folder) if not d.exists()]
        record = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"  # Hydra's sweeper rewrites it next
        _MULTIRUN_YAML[:] = [(record, record.read_bytes() if record.is_file() else None)]
        _note_the_launcher(config)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{stamp}-{os.getpid()}.jsonl"
        for attempt in range(3):  # another sweep's end removes the folder when it finds it empty
            folder.mkdir(parents=True, exist_ok=True)
            try:
                path.touch()
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        os.environ[sweep_record.SWEEP_RECORD_ENV] = str(path.resolve())
        if sweep_stop.runs_jobs_in_loky_workers(config.hydra.launcher):
            sweep_stop.forward_stop_signals(str(path.resolve()))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        signum = sweep_stop.stopped_by()
        sweep_stop.restore_signals()
        _SWEEP_JOBS.clear()  # copies no launcher asked for (a sweeper that does not check its batches)
        _MULTIRUN_YAML.clear()  # the sweep ran: its multirun.yaml stays
        _LAUNCHER.clear()
        path = os.environ.pop(sweep_record.SWEEP_RECORD_ENV, None)
        if not path or not Path(path).exists():
            return
        lines = sweep_record.outcomes(path)
        stopping = sweep_record.stopping(path)
        sweep_record.remove(path)
        if stopping or signum is not None:
            _report_stopped_sweep(lines, signum)
        failed = [x for x in lines if x["status"] not in ("completed", "skipped")]
        skipped = [x for x in lines if x["status"] == "skipped"]
        if not failed and not skipped:
            print(f"prune-run: all {len(lines)} runs of the sweep completed", file=sys.stderr)
            return
        print(f"prune-run: {len(failed)} of {len(lines)} runs failed:", file=sys.stderr)
        for x in failed:
            print(f"  {x['run_dir']}: {x['reason']}", file=sys.stderr)
        if skipped:
            print(f"prune-run: {len(skipped)} runs not started after the failure (fail_fast=true):", file=sys.stderr)
            for x in skipped:
                print(f"  {Path(x['run_dir']).name}", file=sys.stderr)
        if not config.get("allow_failures", False):
            sys.exit(1)


if __name__ == "__main__":
    # `python -m prune_cli.cli` runs this file as `__main__`, but Hydra imports the sweep callback by
    # its name, `prune_cli.cli.SweepSummary`: a second copy of the module, whose record of the
    # folders a sweep made (`_SWEEP_CREATED`) `main` would never see. One module under both names.
    sys.modules.setdefault("prune_cli.cli", sys.modules[__name__])
    main()
