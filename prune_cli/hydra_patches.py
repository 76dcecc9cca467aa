"""Prune-run's changes to Hydra's own steps, installed once per process (`install`, called when
prune_cli.cli is imported). Each wraps one Hydra method, marks the wrapper so that a second call does
nothing, and is pinned by a test that fails if the wrapper stops applying (a Hydra upgrade):

- a config error is reported once, as prune-run's line, not also as Hydra's (`_report_composition_errors_once`);
- a single run and each job of a sweep are composed once, not twice (`_compose_a_run_once`,
  `_compose_each_sweep_job_once`; docs/performance.md "Start-up", "Sweeps");
- every job of a sweep is composed and validated before the first one runs, and a sweep over presets that
  sweep on their own is refused (`_validate_every_sweep_job_first`; it also tells each batch's jobs the
  batch's size and the user's OMP_NUM_THREADS, which their thread count reads: prune_cli/core/threads.py);
- a sweep that would have no job, or needs a sampling sweeper, is rejected (`_reject_sweeps_with_no_job`);
- a sweep over a config group's options may set an option they declare (`_compose_group_sweeps_with_their_options`);
- `--hydra-help` is composed with the overrides of Hydra's config only (`_hydra_help_with_hydra_s_overrides_only`);
- `--cfg job`, `--cfg all`, `--info config` and `--info all` show only a config the pre-run pass accepts
  (`_validate_the_config_cfg_shows`);
- a run directory's `.hydra` record is written atomically, and a single run whose directory Hydra could not
  write before the job started (a full disk) is reported as prune-run's one line (`_write_hydra_s_record_atomically`,
  `JobNotStarted`);
- `--help` lists prune-run's config groups only, and Hydra's copies of its config repository share the
  ConfigStore (`_list_only_prune_run_s_groups_in_help`, `_share_config_store_in_repository_copies`);
- sbatch's refusal of a SLURM sweep is reported once, in prune-run's line, not also echoed by submitit
  before it (`_report_a_refused_submission_once`: it wraps submitit's SLURM executor, not Hydra, and is
  made when a sweep chooses a submitit launcher; pinned by tests/test_launchers.py)."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import os
import sys
import traceback
from typing import Any, Callable

import yaml
from hydra.errors import SearchPathException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from .core import threads
from .core.accel import CHECKS_THIS_MACHINE
from .core.atomic_io import atomic_write_text
from .core.checks import usable_directory
from .core.errors import ConfigError, PruneCliError, cannot_use
from .run import composition_memo, sweep_stop
from .run.composition_errors import (
    COMPOSITION_ERRORS,
    NOT_PRUNE_RUN_GROUPS,
    as_config_error,
    config_dir_error,
    unresolvable_interpolation,
    yaml_error,
)
from .run.prevalidate import check_added_hydra_keys, check_launcher_overrides, check_text_sweep, validate
from .run.unused_options import jobs_unused, reject_unused_overrides, sweep_duplicates, sweep_unused
from .run_directories import (
    SWEEP_JOBS_KEPT,
    _check_a_run_directory_of_its_own,
    check_run_directory,
    check_shared_tables,
    check_sweep_directories,
    check_written_directories,
)
from .sweep_lifecycle import (
    _SWEEP_JOBS,
    _SWEEP_RUN_DIRS,
    _CompositionRejected,
    _launcher_failed,
    _LauncherFailed,
    _PastHydra,
    _runs_elsewhere,
    _undo_sweep_start,
    remove_stale_records,
)


def install() -> None:
    """Apply every change, in this order (several wrap the same Hydra method: each wraps the one before)."""
    _share_config_store_in_repository_copies()
    _list_only_prune_run_s_groups_in_help()
    composition_memo.install()
    _report_composition_errors_once()
    _compose_each_sweep_job_once()
    _validate_every_sweep_job_first()
    _reject_sweeps_with_no_job()
    _compose_a_run_once()
    _compose_group_sweeps_with_their_options()
    _hydra_help_with_hydra_s_overrides_only()
    _validate_the_config_cfg_shows()
    _version_names_prune_cli()
    _write_hydra_s_record_atomically()


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
    listing every rejected job (exit 2; nothing created, as for a composition error), as does a job whose
    preset's own sweep the sweep would drop (`_own_sweep_dropped`). Failures that only a running job can
    find (divergence, a file's content) are still recorded per job."""
    from hydra.plugins.sweeper import Sweeper

    check_batch = Sweeper.validate_batch_is_legal
    if getattr(check_batch, "validates_every_job_first", False):
        return

    def validate_batch_is_legal(self, batch) -> None:
        first = not getattr(self, "_prune_cli_jobs_validated", False)
        before = os.environ.get(threads.SWEEP_BATCH)
        threads.note_sweep_batch(os.environ, len(batch), first)  # what the batch's jobs read to share the CPUs
        _no_idle_workers(self, len(batch))
        if not first:
            if before != os.environ.get(threads.SWEEP_BATCH):  # reused loky workers keep the old batch's size
                sweep_stop.retire_idle_loky_workers()
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
        rejected, valid, dropped, settings = [], [], {}, {}
        machine = CHECKS_THIS_MACHINE.set(not _runs_elsewhere(self.config))
        try:
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
                own = _own_sweep_dropped(self.config, job)
                if own:
                    dropped.setdefault(_chosen_by_the_job(self.config, job, overrides) or swept, own)
                whole = _sweep_settings_dropped(self.config, job)
                if whole:
                    typed = " ".join(o for o in overrides if o.partition("=")[0].lstrip("+~") in whole)
                    settings.setdefault(typed or _chosen_by_the_job(self.config, job, overrides) or swept, whole)
                try:
                    validate(job)
                    check_written_directories(job)  # results_dir: tried when the sweep's directory was resolved
                    valid.append((overrides, job, swept))
                except PruneCliError as err:
                    rejected.append(f"job {number} of {len(jobs)} ({swept}): {err}")
        finally:
            CHECKS_THIS_MACHINE.reset(machine)
        if dropped:
            raise _CompositionRejected(SweepRejected(_own_sweeps_message(dropped, rejected, len(jobs))))
        if settings:
            raise _CompositionRejected(SweepRejected(_sweep_settings_message(settings, len(jobs))))
        if rejected:
            raise _jobs_rejected(rejected, len(jobs))
        pairs = [(overrides, job) for overrides, job, _ in valid]
        per_job, refused = [], []
        for number, (overrides, job, swept) in enumerate(valid, 1):  # every job valid here: numbered as above
            try:  # a value the pass refuses outright (a warm-up longer than fine-tuning) is named with its job
                per_job.append(jobs_unused([(overrides, job)])[0])
            except PruneCliError as err:
                refused.append(f"job {number} of {len(jobs)} ({swept}): {err}")
        if refused:
            raise _jobs_rejected(refused, len(jobs))
        unused = sweep_unused(pairs, per_job)  # an override no job reads; one that
        if unused:  # some jobs read is noted in the others' logs
            lines = [one.message().replace("in this run", f"in any of the sweep's {len(jobs)} jobs") for one in unused]
            raise _CompositionRejected(SweepRejected("no job ran:\n  " + "\n  ".join(lines)))
        twice = sweep_duplicates(pairs, per_job)
        if twice:
            raise _CompositionRejected(SweepRejected(f"no job ran: {twice}"))
        try:
            run_dirs = check_sweep_directories([(swept, job) for _, job, swept in valid])  # one run per directory
            checked: set[str] = set()  # the shared tables the jobs append to, once per results_dir
            for _, job, _ in valid:
                if str(job.results_dir) not in checked and check_shared_tables(job):
                    checked.add(str(job.results_dir))
        except PruneCliError as err:
            raise _CompositionRejected(err) from err
        _SWEEP_RUN_DIRS[:] = [d for d in run_dirs if not d.exists()]  # what the launcher makes: removed if no job ran
        remove_stale_records()  # the sweep runs: earlier killed local sweeps' records go (sweep_lifecycle.py)

    validate_batch_is_legal.validates_every_job_first = True  # type: ignore[attr-defined]
    Sweeper.validate_batch_is_legal = validate_batch_is_legal  # type: ignore[method-assign]


def _no_idle_workers(sweeper, jobs: int) -> None:
    """Hydra's joblib launcher passes `n_jobs` to joblib.Parallel as given, and joblib's loky backend starts
    that many worker processes at the batch's first job, even for fewer jobs (sweeps audit of 2026-12-03:
    n_jobs=40 started 40 Python processes for a 2-job sweep). A batch gets one worker per job, but at least two
    where two or more were asked for: at n_jobs=1 joblib runs the job in the sweep's own process, where a job
    that crashes hard would end the sweep too. `pre_dispatch` is evaluated once at the n_jobs asked for, as
    joblib would, so the queue is what it would have been. What runs, and each job's threads
    (prune_cli/core/threads.py reads the batch's size and the configured n_jobs), is unchanged."""
    from .run.launcher_values import dispatch_amount, joblib_workers

    settings = getattr(getattr(sweeper, "launcher", None), "joblib", None)
    if not isinstance(settings, dict):  # not the joblib launcher
        return
    asked = sweeper.__dict__.setdefault("_prune_cli_joblib", dict(settings))  # the user's, for every batch
    requested = asked.get("n_jobs")
    if not isinstance(requested, int) or requested == 0:
        return
    at_once = joblib_workers(requested)
    settings["n_jobs"] = max(min(at_once, jobs), min(at_once, 2))
    pre_dispatch = asked.get("pre_dispatch", "2*n_jobs")
    if str(pre_dispatch) != "all":
        amount = dispatch_amount(pre_dispatch, at_once)
        if amount is not None:  # checked before the sweep (check_joblib_values)
            settings["pre_dispatch"] = amount


def _listed(lines: list[str]) -> list[str]:
    """The first SWEEP_REJECTIONS_LISTED of `lines`, and how many more there are."""
    listed = lines[:SWEEP_REJECTIONS_LISTED]
    if len(lines) > len(listed):
        listed.append(f"... and {len(lines) - len(listed)} more")
    return listed


def _jobs_rejected(rejected: list[str], total: int) -> "_CompositionRejected":
    """The refusal of a sweep some of whose jobs were rejected: how many, and each job's line (the first
    SWEEP_REJECTIONS_LISTED of them)."""
    head = f"{len(rejected)} of {total} jobs of the sweep rejected; no job ran"
    return _CompositionRejected(SweepRejected(head + ":\n  " + "\n  ".join(_listed(rejected))))


def _own_sweep_dropped(master: DictConfig, job: DictConfig) -> dict[str, str]:
    """The sweep a job's own options define (`hydra.sweeper.params` of a preset chosen by the sweep,
    `-m +experiment=pa,pb`) that the sweep does not run: Hydra's sweeper expands only the params of the
    sweep's master config, which holds no swept option, so each job ran its preset's config once and its
    sweep was dropped without a word. Keys the command line gives are not dropped: a value there replaces a
    preset's for its key (docs/report.md, "Experiment presets"). The master's own params count as run only
    where they equal the job's (a master composed with one swept preset, `_compose_group_sweeps_with_their_options`,
    holds that preset's sweep, not the others'). {key: values}."""
    ran = OmegaConf.select(master, "hydra.sweeper.params", default=None) or {}
    own = OmegaConf.select(job, "hydra.sweeper.params", default=None) or {}
    if not own:
        return {}
    ran = OmegaConf.to_container(ran, resolve=False) if isinstance(ran, DictConfig) else dict(ran)
    typed = OmegaConf.select(master, "hydra.overrides.task", default=None) or []
    given = {str(o).partition("=")[0].lstrip("+~") for o in typed}
    return {
        str(k): str(v)
        for k, v in OmegaConf.to_container(own, resolve=False).items()
        if ran.get(k) != v and str(k).lstrip("+~") not in given
    }


# Settings of the whole sweep, read from its master config (composed without the swept values): the
# launcher that runs every job (hydra/launcher and its hydra.launcher node) and what the end of the sweep
# does about failures (allow_failures: its exit code; fail_fast: whether a failure stops the others).
SWEEP_SETTINGS = ("hydra.launcher", "allow_failures", "fail_fast")


def _sweep_settings_dropped(master: DictConfig, job: DictConfig) -> dict[str, str]:
    """The settings of the whole sweep (`SWEEP_SETTINGS`) a job would set otherwise than the sweep runs
    with: Hydra builds the launcher from the master config, so a swept preset choosing a launcher
    (`-m +experiment=on_slurm_a,on_slurm_b`) ran every job on the calling machine while each run's record
    said slurm, and `-m "allow_failures=choice(true)"` or `fail_fast=true,false` left the sweep's end to
    the master's value while jobs read their own (audit of 2026-12-03). {key: the job's value, the sweep's}."""
    found = {}
    choices = [OmegaConf.select(c, "hydra.runtime.choices", default=None) or {} for c in (master, job)]
    ours, theirs = (choice.get("hydra/launcher", "basic") for choice in choices)
    if ours != theirs:
        found["hydra/launcher"] = f"{theirs} where the sweep runs with {ours}"
    for key in SWEEP_SETTINGS:
        values = [OmegaConf.select(c, key, default=None) for c in (master, job)]
        ours, theirs = (OmegaConf.to_container(v, resolve=False) if isinstance(v, DictConfig) else v for v in values)
        if ours == theirs or (key == "hydra.launcher" and "hydra/launcher" in found):
            continue
        if isinstance(ours, dict) and isinstance(theirs, dict):
            keys = [k for k in {**ours, **theirs} if ours.get(k) != theirs.get(k)]
            job_s = ", ".join(f"{key}.{k}={theirs.get(k)}" for k in keys)
            found[key] = f"{job_s} where the sweep runs with " + ", ".join(f"{key}.{k}={ours.get(k)}" for k in keys)
        else:
            found[key] = f"{theirs} where the sweep runs with {ours}"
    return found


def _sweep_settings_message(found: dict[str, dict[str, str]], total: int) -> str:
    """One message for jobs that set a setting of the whole sweep (`_sweep_settings_dropped`)."""
    listed = _listed([f"{chosen}: {'; '.join(f'{k}: {v}' for k, v in one.items())}" for chosen, one in found.items()])
    return (
        f"no job ran: {len(found)} of the sweep's {total} jobs set what applies to the whole sweep (its launcher, "
        "allow_failures, fail_fast), which Hydra takes from the command line's config without the swept values, "
        "so the jobs would have run without it and their records would say otherwise:\n  "
        + "\n  ".join(listed)
        + "\nGive these once, outside the sweep (prune-run -m hydra/launcher=slurm allow_failures=true ...; a preset "
        "that chooses a launcher: one preset per -m command)."
    )


def _chosen_by_the_job(master: DictConfig, job: DictConfig, overrides: list[str]) -> str:
    """The job's overrides, as typed, that chose a config group option the sweep's master config did not
    (`+experiment=pa`)."""
    before = OmegaConf.select(master, "hydra.runtime.choices", default=None) or {}
    after = OmegaConf.select(job, "hydra.runtime.choices", default=None) or {}
    groups = {group for group, choice in after.items() if before.get(group) != choice}
    return " ".join(o for o in overrides if o.partition("=")[0].lstrip("+~") in groups)


def _own_sweeps_message(dropped: dict[str, dict[str, str]], rejected: list[str], total: int) -> str:
    """One message for a sweep over options that define sweeps of their own (`_own_sweep_dropped`), with the
    jobs the sweep rejected for another reason (a preset that does not compose with the command's other
    options: `-m dataset=synthetic +experiment=recall_distortion,pruning_limit` named only the first)."""
    listed = _listed([f"{chosen} ({', '.join(f'{k}: {v}' for k, v in own.items())})" for chosen, own in dropped.items()])
    also = f"\nThe sweep also rejects {len(rejected)} of its {total} jobs:\n  " + "\n  ".join(_listed(rejected))
    return (
        "no job ran: the sweep chooses presets (config options) that define sweeps of their own (hydra.sweeper.params), "
        "and Hydra expands only the sweep of the command line: each of these would run once, its own sweep dropped:\n  "
        + "\n  ".join(listed)
        + f"\nRun one preset per -m command (prune-run -m {next(iter(dropped))} ...): its own sweep then runs, and values "
        "given on the command line replace its values for the same key." + (also if rejected else "")
    )


def check_float_range(o, key: str, value: str) -> None:
    """A range() sweep with a float argument: Hydra adds the step to a float, so `range(0.2,0.4,0.1)`
    ran 0.2, 0.30000000000000004 and 0.4 (Python's range stops before 0.4), and the job recorded
    0.30000000000000004 under a run id no later `sparsity=0.3` run shares. Refused, with the values to
    list (start, start + step, ... below stop, in decimal). A range whose values are exactly those decimal
    ones (range(0.5,1.0,0.25): binary fractions) runs."""
    from decimal import Decimal

    from hydra.core.override_parser.types import RangeSweep

    sweep = o.value()
    if not isinstance(sweep, RangeSweep) or not any(isinstance(x, float) for x in (sweep.start, sweep.stop, sweep.step)):
        return
    start, stop, step = (Decimal(repr(x)) for x in (sweep.start, sweep.stop, sweep.step))
    listed, x = [], start
    while (x < stop if step > 0 else x > stop) and len(listed) < 50 and step != 0:
        listed.append(str(x.normalize()) if x != x.to_integral_value() else str(x.to_integral_value()))
        x += step
    floats = [str(v) for v in o.sweep_iterator()]
    if len(floats) == len(listed) and all(float(v) == float(d) for v, d in zip(floats, listed)):
        return  # every value is the decimal one (range(0.5,1.0,0.25): binary fractions), and none beyond stop
    raise ConfigError(
        key,
        value,
        "range() over integers, or a list of the values",
        f"range() with a float argument steps in binary floating point (here {', '.join(floats) or 'no value'}), "
        "so its values miss the ones typed and their runs never pool with them; list them instead"
        + (f": {key}={','.join(listed)}" if listed else f", e.g. {key}=0.2,0.3")
        + ".",
    )


def check_range_step(o, key: str, value: str) -> None:
    """range() with a step of 0 (`seed=range(0,1,0)`): Python's range raised a ValueError and Hydra's float
    range a HydraException, each a traceback (exit 1) after results_dir/runs was created."""
    from hydra.core.override_parser.types import RangeSweep

    sweep = o.value()
    if isinstance(sweep, RangeSweep) and sweep.step == 0:
        raise ConfigError(
            key,
            value,
            "range(start,stop[,step]) with a step other than 0 (range(0,3) is 0,1,2; range(0,6,2) is 0,2,4)",
            "A step of 0 never reaches stop, so the sweep has no list of jobs.",
        )


def check_glob_patterns(o, key: str, value: str, options: list[str]) -> None:
    """glob() over a config group's options (`method=glob([magnitude,random])`, `glob(*,exclude=[snip])`):
    Hydra keeps the options that match an included pattern and no excluded one, so a pattern that matches
    no option (a typo: `glob([magnitude,randon])` ran magnitude alone, `exclude=[magnitde]` ran magnitude
    too) changed the sweep without a word, where `-m method=magnitude,randon` is refused. Every pattern
    must match at least one option of the group (as Hydra matches: fnmatch; a name without a wildcard
    must be one). A glob that gives no value at all, or over a key that is no config group
    (`seed=glob(*)`), is refused as a sweep with no job."""
    import fnmatch

    from hydra.core.override_parser.types import Glob

    from .core import plugins

    glob = o.value()
    if not isinstance(glob, Glob) or not options:
        return
    # a plugin's option has no YAML file, so Hydra's glob never lists it: excluding it is harmless,
    # including it silently leaves it out
    unlisted = sorted(set(plugins.schema_names(o.key_or_group)) - set(options))
    for excluded, patterns in ((False, glob.include), (True, glob.exclude)):
        for pattern in patterns:
            if any(fnmatch.fnmatch(name, pattern) for name in options):
                continue
            plugin_options = [name for name in unlisted if fnmatch.fnmatch(name, pattern)]
            if plugin_options and excluded:
                continue
            if plugin_options:
                listed = [name for name in options if any(fnmatch.fnmatch(name, p) for p in glob.include)]
                raise ConfigError(
                    key,
                    value,
                    f"glob() over the options of config group '{o.key_or_group}' that have a YAML file: {', '.join(options)}",
                    f"{', '.join(repr(n) for n in plugin_options)} is the option of a plugin (served from its module, no YAML "
                    "file), which Hydra's glob() does not list, so the sweep would run without it. Type the options instead: "
                    f"-m {o.key_or_group}={','.join([*listed, *plugin_options])}",
                )
            raise ConfigError(
                key,
                value,
                f"glob() whose every pattern matches at least one option of config group '{o.key_or_group}': {', '.join(options)}",
                f"The {'excluded' if excluded else 'included'} pattern {pattern!r} matches none of them, so the sweep would "
                + ("still run the option meant to be left out." if excluded else "run without the option meant.")
                + " Patterns match with * and ? (magnitude, rand*).",
            )


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
            check_text_sweep(sweeper.config, o)
            check_range_step(o, key, value)
            check_float_range(o, key, value)
            options = loader.get_group_options(o.key_or_group) if "." not in o.key_or_group else []
            if any(True for _ in o.sweep_string_iterator()):
                check_glob_patterns(o, key, value, options)  # a glob with no value at all: refused below
                continue
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
        check_launcher_overrides(config)  # and options the launcher ignores
        if "hydra_submitit_launcher" in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
            _report_a_refused_submission_once()
        sweeper = instantiate(self, hydra_context=hydra_context, task_function=task_function, config=config)
        if type(sweeper).__name__ == "BasicSweeper":  # Hydra's plugin scan loads its module anew: matched by name
            sweep = sweeper.sweep

            def sweep_with_jobs(arguments):
                check(sweeper, arguments)
                try:
                    return sweep(arguments)
                except OSError as err:
                    unwritten = _multirun_yaml_unwritten(sweeper, err)
                    if unwritten is None:
                        raise
                    raise _CompositionRejected(unwritten) from err  # main puts back what the sweep's start made

            sweeper.sweep = sweep_with_jobs
        return sweeper

    instantiate_sweeper.rejects_sweeps_with_no_job = True  # type: ignore[attr-defined]
    Plugins.instantiate_sweeper = instantiate_sweeper  # type: ignore[method-assign]


def _multirun_yaml_unwritten(sweeper, err: OSError) -> PruneCliError | None:
    """The basic sweeper's write of its record, multirun.yaml (`OmegaConf.save`, in place, before any job),
    refused by the disk (full): its OSError names no file, and Hydra printed its traceback, exit 1, leaving
    a truncated multirun.yaml. prune-run's line for a full disk instead (docs/robustness.md, "a full disk");
    `_undo_sweep_start` puts the earlier multirun.yaml back, or removes the torn one. None for another error."""
    frames = [frame.f_code for frame, _ in traceback.walk_tb(err.__traceback__)]
    if not any(a is type(sweeper).sweep.__code__ and b is OmegaConf.save.__code__ for a, b in zip(frames, frames[1:])):
        return None
    record = os.path.abspath(os.path.join(str(sweeper.config.hydra.sweep.dir), "multirun.yaml"))
    return PruneCliError(cannot_use(err.filename or record, err))


def _report_a_refused_submission_once() -> None:
    """sbatch refusing a sweep's array job (a partition that does not exist, an account without access):
    submitit's `CommandFunction` printed sbatch's stderr, then raised `FailedJobError` with the same text,
    which prune-run reports as its one line with the launcher's reason (`sweep_lifecycle._report_launcher_failure`):
    the reason twice, the first time without prune-run's prefix. What the SLURM executor's submission
    prints is held back while sbatch runs and printed after it, unless it is the text of the error raised."""
    try:
        from submitit import SlurmExecutor
        from submitit.core.utils import FailedJobError
    except ImportError:
        return
    submit = SlurmExecutor._submit_command  # noqa: SLF001
    if getattr(submit, "reports_a_refusal_once", False):
        return

    def submit_command(self, command):
        held, raised = io.StringIO(), None
        try:
            with contextlib.redirect_stderr(held):
                return submit(self, command)
        except FailedJobError as err:
            raised = str(err).strip()
            raise
        finally:
            if held.getvalue().strip() not in ("", raised):
                sys.stderr.write(held.getvalue())

    submit_command.reports_a_refusal_once = True  # type: ignore[attr-defined]
    SlurmExecutor._submit_command = submit_command  # type: ignore[method-assign]  # noqa: SLF001


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


GROUP_SWEEP_TRIES = 64  # combinations of swept group options tried for a sweep's master config


def _compose_group_sweeps_with_their_options() -> None:
    """A sweep over a config group's options with an option they declare (`-m method=snip,grasp
    method.batches=2`): Hydra composes the sweep's master config (hydra settings, callbacks; each job
    is composed on its own later) with the group's *default* option, to which it also applies
    `method.batches=2`, and fails because magnitude has no `batches`. This wraps that one composition:
    when a multirun's master config fails to compose and the overrides sweep over config groups, it is
    composed again with the swept groups' options in turn (each group at one of its swept options, the
    first combination that composes; at most GROUP_SWEEP_TRIES), its recorded task overrides set
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
            options = [
                [f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()]
                if o.is_sweep_override() and self.repository.group_exists(o.key_or_group)
                else [o.input_line]
                for o in parsed
            ]
            if all(len(one) == 1 and one[0] == o for one, o in zip(options, overrides)):
                raise
            # the swept options in turn (at most GROUP_SWEEP_TRIES combinations), not only the first: with
            # `method=magnitude,snip method.batches=2` the first lacks the key, and the jobs' own check names it
            for chosen in itertools.islice(itertools.product(*options), GROUP_SWEEP_TRIES):
                try:
                    cfg = load(self, config_name, list(chosen), run_mode, from_shell, validate_sweep_overrides)
                except Exception:  # noqa: BLE001,S112 - this combination lacks it too: try the next
                    continue
                cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
                return cfg
            raise err  # noqa: B904 - no swept option declares it: its own cause (the OmegaConf error) names the key

    load_configuration.composes_group_sweeps = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]


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
                if full_error_wanted():
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
                run_dir = _job_not_started(err)
                if run_dir is not None:
                    raise JobNotStarted(err, run_dir) from err
                raise

        return report(composing)

    run_and_report.reports_composition_errors_once = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def full_error_wanted() -> bool:
    """Whether Hydra would show a whole traceback: HYDRA_FULL_ERROR=1, or under a debugger."""
    from hydra._internal import utils as hydra_utils

    return hydra_utils._is_env_set("HYDRA_FULL_ERROR") or hydra_utils.is_under_debugger()  # noqa: SLF001


# The task functions Hydra runs (prune_cli.cli's `hydra_main`, noted by that module): an error raised
# inside one is a run's, not Hydra's composition's.
TASK_FUNCTIONS: list[Callable[..., Any]] = []


def _raised_in_a_job(err: BaseException) -> bool:
    """Whether `err` came out of the task function (a run at work), not out of Hydra's composition."""
    jobs = [getattr(job, "__wrapped__", job).__code__ for job in TASK_FUNCTIONS]
    return any(frame.f_code is job for frame, _ in traceback.walk_tb(err.__traceback__) for job in jobs)


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


def _hydra_help_with_hydra_s_overrides_only() -> None:
    """`--hydra-help` composes Hydra's own config alone (no prune-run config), so an override of the
    experiment (`--hydra-help sparsity=0.5`) failed with a traceback and Hydra's wrong hint "To append to
    your config use +sparsity=0.5". Hydra's help describes Hydra's options: it is composed with the
    overrides of Hydra's config (`hydra.*`, `hydra/<group>=...`) only."""
    from hydra._internal.hydra import Hydra

    hydra_help = Hydra.hydra_help
    if getattr(hydra_help, "hydra_s_overrides_only", False):
        return

    def help_with_hydra_s_overrides(self, config_name, args_parser, args):
        kept = [o for o in args.overrides if o.lstrip("+~").startswith(("hydra.", "hydra/"))]
        return hydra_help(self, config_name, args_parser, _with(args, kept))

    help_with_hydra_s_overrides.hydra_s_overrides_only = True  # type: ignore[attr-defined]
    Hydra.hydra_help = help_with_hydra_s_overrides  # type: ignore[method-assign]


def _validate_the_config_cfg_shows() -> None:
    """`--cfg job` (and `all`) printed any config, exit 0, also one a run refuses (`sparsity=1.5`,
    `method.erk_power=2` with the global allocation): a researcher checking an experiment's config took
    it for valid. The shown config now passes the pre-run pass, the check of the launcher's values and of overrides that do
    nothing first (one error line and exit 2 otherwise, as the run would); `--cfg hydra` shows Hydra's
    own config and is not checked, except with `--resolve`, whose values name the run's own folders.
    `--info config` and `--info all`, which print the job's config after Hydra's search path and
    defaults, are checked the same way (they printed `sparsity=1.5`, exit 0);
    `--info defaults`, `defaults-tree`, `searchpath` and `plugins` show no config and are not checked."""
    from hydra._internal.hydra import Hydra

    show_cfg = Hydra.show_cfg
    if getattr(show_cfg, "validates_the_job", False):
        return

    def show_a_valid_cfg(self, config_name, overrides, cfg_type, package, resolve=False):
        if cfg_type in ("job", "all"):
            _validate_the_shown_config(self, config_name, overrides)  # a ConfigError: one line and exit 2
        if cfg_type == "hydra" and resolve and (package is None or package == "hydra" or package.startswith("hydra.")):
            _validate_the_shown_config(self, config_name, overrides)  # resolved, it names the run's own folders
            return _show_hydra_s_config_resolved(self, config_name, overrides, package)
        return show_cfg(self, config_name, overrides, cfg_type, package, resolve)  # (_report_composition_errors_once)

    def print_a_valid_config(self, config_name, overrides, run_mode=RunMode.RUN):
        try:  # Hydra's --info calls no run_and_report around this: the error goes to main here
            _validate_the_shown_config(self, config_name, overrides)
        except PruneCliError as err:
            raise _CompositionRejected(err) from err
        return print_config(self, config_name, overrides, run_mode)

    show_a_valid_cfg.validates_the_job = True  # type: ignore[attr-defined]
    Hydra.show_cfg = show_a_valid_cfg  # type: ignore[method-assign]
    print_config = Hydra._print_config_info  # noqa: SLF001
    Hydra._print_config_info = print_a_valid_config  # type: ignore[method-assign]  # noqa: SLF001


def _show_hydra_s_config_resolved(hydra_app, config_name, overrides, package: str | None) -> None:
    """`--cfg hydra --resolve` (and `--package hydra.<part>`): Hydra resolves its own config on its own, without
    the job's keys, so the slurm launcher's `submitit_folder: ${results_dir}/.submitit/%j` stopped it with a
    traceback (InterpolationKeyError, launchers audit of 2026-12-03). A run resolves Hydra's settings against
    the whole config: so does this (after the checks `--cfg job` makes, since the resolved settings name the
    run's folders), then prints only Hydra's part, or the package asked for, as `--cfg hydra` does."""
    from hydra.core.hydra_config import HydraConfig

    cfg = hydra_app.compose_config(config_name=config_name, overrides=overrides, run_mode=RunMode.RUN, with_log_configuration=False)
    HydraConfig.instance().set_config(cfg)
    OmegaConf.set_readonly(cfg.hydra, None)
    OmegaConf.resolve(cfg.hydra)  # against the whole config; what is still missing (the run's folder) stays ???
    if package is not None and package != "hydra":
        part = OmegaConf.select(cfg, package)
        if part is None:
            sys.stderr.write(f"package '{package}' not found in config\n")  # Hydra's own words and exit
            sys.exit(1)
        if isinstance(part, (DictConfig, ListConfig)):
            sys.stdout.write(f"# @package {package}\n" + OmegaConf.to_yaml(part))
        else:
            print(part)
        return
    shown = {k: v for k, v in cfg.hydra.items_ex(resolve=False) if k not in ("help", "hydra_help")}  # as Hydra leaves them out
    sys.stdout.write(OmegaConf.to_yaml({"hydra": shown}))


def _validate_the_shown_config(hydra_app, config_name, overrides) -> None:
    """The checks of `--cfg job` and `--info config`: the job's config as a single run composes it, through
    the pre-run pass, the check of the launcher's values and of overrides that do nothing."""
    from hydra.core.hydra_config import HydraConfig

    cfg = hydra_app.compose_config(config_name=config_name, overrides=overrides, run_mode=RunMode.RUN, with_log_configuration=False)
    HydraConfig.instance().set_config(cfg)
    # as for a sweep: a config for a launcher that runs its jobs elsewhere (SLURM) leaves the device
    # checks to the nodes
    machine = CHECKS_THIS_MACHINE.set(not _runs_elsewhere(cfg))
    try:
        validate(cfg)
        check_launcher_overrides(cfg)  # the launcher's values, as the sweep checks them
        reject_unused_overrides(cfg, single_run=False)  # an override that does nothing, as the run refuses it
        usable_directory(cfg, "results_dir", try_create=True)  # the folders the run would write, tried as it
        check_written_directories(cfg)  # tries them (os.access says yes to root everywhere, /proc included)
        check_run_directory(cfg)  # a hydra.run.dir given: tried, and not a folder of prune-run's own
    finally:
        CHECKS_THIS_MACHINE.reset(machine)


def _with(args: Any, overrides: list[str]) -> Any:
    """A copy of Hydra's parsed arguments with other overrides."""
    changed = copy.copy(args)
    changed.overrides = overrides
    return changed


def _list_only_prune_run_s_groups_in_help() -> None:
    """`prune-run --help` lists the config groups Hydra finds under configs/, which include prune-report's
    `expected` and the files a preset chooses itself (`experiment/lap_mlp_mnist_points`: alone they are
    not a preset); the list is filtered here (Hydra's help template has no other hook for it). A group
    that is not in the primary config's defaults list (`experiment`) is added, not chosen
    (`experiment=x` fails with "No match in the defaults list"): it is listed as `+experiment`, which
    the help's header explains (configs/config.yaml `hydra.help.template`). Hydra's own `hydra/launcher`, which
    a sweep chooses on prune-run's command line (README, "Sweeps"), is listed too (docs audit of 2026-12-03:
    only `--hydra-help` named its options)."""
    from hydra._internal.hydra import Hydra

    format_groups = Hydra.format_config_groups
    if getattr(format_groups, "prune_run_s_only", False):
        return

    def listed(group: str) -> bool:
        parts = group.split("/")
        return parts[0] not in NOT_PRUNE_RUN_GROUPS and not (parts[0] == "experiment" and len(parts) > 1)

    def format_config_groups(self, predicate, compact: bool = True) -> str:
        text = format_groups(self, lambda group: predicate(group) and listed(group), compact)
        chosen = _groups_of_the_defaults_list()
        lines = []
        for line in text.splitlines(keepends=True):
            group = line.split(":", 1)[0] if not line.startswith(" ") and ":" in line else None
            added = group is not None and not group.startswith("hydra/") and group not in chosen
            lines.append("+" + line if added else line)
        if not predicate("hydra/launcher"):  # prune-run's help (Hydra's lists it only under --hydra-help)
            options = ", ".join(self.config_loader.get_group_options("hydra/launcher"))
            lines.append(f"hydra/launcher: {options} (with -m: what runs the sweep's jobs)\n")
        return "".join(lines)

    format_config_groups.prune_run_s_only = True  # type: ignore[attr-defined]
    Hydra.format_config_groups = format_config_groups  # type: ignore[method-assign]


def _groups_of_the_defaults_list() -> set[str]:
    """The config groups prune-run's primary config (configs/config.yaml) chooses an option of: chosen
    with `group=option`; any other group is added with `+group=option`."""
    from .core.paths import configs_dir

    defaults = (yaml.safe_load((configs_dir() / "config.yaml").read_text()) or {}).get("defaults", [])
    return {str(key).split("@")[0].lstrip("/") for one in defaults if isinstance(one, dict) for key in one}


def _version_names_prune_cli() -> None:
    """`prune-run --version` printed Hydra's version alone (`Hydra 1.3.8`, the version string of the
    `--version` action of Hydra's argument parser): now `prune-cli 0.1.0 (Hydra 1.3.8)`. Hydra's
    `main` calls the parser's factory by the name it imported, so that name is replaced too."""
    import argparse

    import hydra
    from hydra._internal import utils

    hydra_main_module = sys.modules["hydra.main"]  # `hydra.main` the attribute is the decorator, not its module

    factory = utils.get_args_parser
    if getattr(factory, "prune_cli_version", False):
        return

    def get_args_parser() -> argparse.ArgumentParser:
        from . import __version__

        parser = factory()
        for action in parser._actions:  # noqa: SLF001 - argparse keeps the actions here
            if isinstance(action, argparse._VersionAction):  # noqa: SLF001
                action.version = f"prune-cli {__version__} (Hydra {hydra.__version__})"
        return parser

    get_args_parser.prune_cli_version = True  # type: ignore[attr-defined]
    utils.get_args_parser = get_args_parser
    hydra_main_module.get_args_parser = get_args_parser


def _write_hydra_s_record_atomically() -> None:
    """Hydra writes a run directory's record (`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) in
    place before the job starts: on a full disk a truncated `hydra.yaml` (0 or 4096 bytes) stayed, and
    the write's `OSError: [Errno 28]`, which names no file, came out as Hydra's traceback, exit 1. Each
    file is now written as prune-run writes its own (prune_cli/core/atomic_io.py): the old file or none
    stays whole, no temporary file is left, and the error names the file, which `JobNotStarted` turns
    into prune-run's one line for a single run (docs/robustness.md, "a full disk"). The bytes are Hydra's
    (`OmegaConf.to_yaml`, UTF-8). `tests/test_hydra_record_full_disk.py` fails if the wrapper stops applying."""
    from pathlib import Path

    from hydra.core import utils as hydra_utils

    if getattr(hydra_utils._save_config, "writes_atomically", False):  # noqa: SLF001
        return

    def save_config(cfg: DictConfig, filename: str, output_dir) -> None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(output_dir) / filename, OmegaConf.to_yaml(cfg))

    save_config.writes_atomically = True  # type: ignore[attr-defined]
    hydra_utils._save_config = save_config  # noqa: SLF001 - `run_job` calls it by this module's name


class JobNotStarted(_PastHydra):
    """An OSError naming its file, raised while Hydra made a single run's directory (the folder, its log
    file, its `.hydra` record) before the job function ran: the environment's refusal (a full disk),
    reported by `main` as prune-run's one line, not Hydra's traceback. `run_dir`: the job's directory."""

    def __init__(self, error: Exception, run_dir: str):
        super().__init__(error)
        self.run_dir = run_dir


def _job_not_started(err: Exception) -> str | None:
    """The directory of the job Hydra's `run_job` was making when `err` (an OSError naming its file) was
    raised, before the job function ran; None for any other error (a job's own errors are the job's:
    prune_cli/cli.py `_job`)."""
    from hydra.core import utils as hydra_utils

    if not (isinstance(err, OSError) and err.filename) or _raised_in_a_job(err):
        return None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if frame.f_code is hydra_utils.run_job.__code__ and frame.f_locals.get("output_dir"):
            return os.path.abspath(str(frame.f_locals["output_dir"]))  # run_job has changed back to this folder
    return None
