"""Where a run's directory is, and what prune-run checks before Hydra creates it (docs/robustness.md):
the `${runs_dir:}` and `${run_id:}` resolvers of configs/config.yaml (resolving them validates a single
run, so a rejected run creates nothing), the checks of a run given a directory of its own
(`hydra.run.dir=...`), a finished run's `.hydra` record kept when a command finds the run complete, and
the removal of what a rejected run left (its scaffolding, and the folders this process made for it)."""

from __future__ import annotations

import copy
import os
import shutil
import sys
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from .core.atomic_io import atomic_write_bytes
from .core.checks import usable_directory
from .core.errors import ConfigError, PruneCliError
from .core.identity import run_id, safe_name
from .core.paths import user_path
from .core.tables import recorded_run_id
from .core.writable import directory_problem
from .run.prevalidate import schema_of, validate
from .run.unused_options import reject_unused_overrides

# Files a rejected run may have created in its directory; a directory holding only these is removed.
SCAFFOLDING = {".hydra", "prune-run.log", "config.yaml", "provenance.json", ".run.lock"}


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


def check_written_directories(root: DictConfig) -> None:
    """The folders a run writes besides results_dir, tried where a run or sweep is about to start:
    `dense_cache.dir` and the dataset's (`DatasetConfig.check_writes`: MNIST-1D's cache_dir, a vision
    dataset's root when it downloads). ConfigError naming the key."""
    check_dense_cache_dir(root)
    check_writes = getattr(schema_of(root, "dataset"), "check_writes", None)
    if check_writes is not None:
        check_writes(root, "dataset")


def check_shared_tables(root: DictConfig) -> bool:
    """The shared tables a run appends to (symlinks, headers: prune_cli/run/shared_tables.py
    `check_before_run`), tried before Hydra makes the run's directory: refused under the run's lock only,
    "nothing was written" left a run directory with failed.json, which the results rebuild then listed as
    a failed run (docs audit of 2026-12-03). The run's own check under its lock stays (another process may
    break a table in between). Not for a finished run, which appends nothing it has not appended. Whether
    the tables were checked."""
    if not root.get("shared_results") or not root.get("results_dir"):
        return False
    results_dir = user_path(root.results_dir)
    if not results_dir.is_dir() or (results_dir / "runs" / run_id(root) / "COMPLETE").is_file():
        return False
    from .run import shared_tables  # pandas: only where a results_dir exists

    shared_tables.check_before_run(results_dir)
    return True


def check_data_location(root: DictConfig, run_dir: Path | None = None) -> None:
    """A run found by its id (results_dir/runs/<run id>, the `hydra.run.dir` given, or a sweep job's directory)
    that read its data from another folder than this command's: refused before anything is written. The run
    id hashes a path option's spelling (README, "Every run gets its own directory"), and a relative
    `dataset.root` (the image datasets' default, `data`) names another folder from another working directory:
    the same command run there was "already complete" with the first folder's numbers, or resumed its checkpoint
    on other files. A run records the folders it read (provenance.json, prune_cli/core/paths.py
    `other_data_folder`); runs started before 2026-12-03 recorded none and are not checked. The run's own check
    under its lock (prune_cli/run/experiment.py) covers a run that was still starting in another process."""
    from .core.paths import other_data_folder, other_data_message, other_input_file, other_input_message
    from .core.tables import recorded_data_folders

    if not root.get("results_dir"):
        return
    rid = run_id(root)
    found = run_dir if run_dir is not None else user_path(root.results_dir) / "runs" / rid
    recorded = recorded_data_folders(found)
    changed = other_input_file(root, recorded)  # a file read by name (match_masks, match_method's YAML) changed under it
    if changed is not None:
        raise PruneCliError(other_input_message(root, changed, rid, found))
    other = other_data_folder(root.dataset, recorded)
    if other is not None:
        raise PruneCliError(other_data_message(root.dataset, rid, found, *other))


_CREATED: list[Path] = []  # results_dir and results_dir/runs when this process is the one creating them
_USERS_FOLDERS: set[Path] = set()  # folders given as hydra.run.dir that existed before this command


def _runs_dir(*, _root_: DictConfig) -> str:
    """`${runs_dir:}` = results_dir/runs. When Hydra resolves it for a job (before it creates any
    directory), a single run's config is validated first, so a rejected run creates nothing; then
    results_dir/runs is created here, so an unusable results_dir is one clean message."""
    if "results_dir" not in _root_:  # Hydra's node printed alone (`--cfg hydra --resolve`): no run to place
        return "<results_dir>/runs"
    runs = user_path(_root_.results_dir or ".") / "runs"
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
            check_written_directories(_root_)  # before anything is created
            check_data_location(_root_)
            check_shared_tables(_root_)
        except PruneCliError as err:
            _reject(str(err))
    if problem is None and not _CREATED:
        _CREATED.extend(d for d in (runs.parent, runs) if not d.exists())
        try:
            runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            problem = f"{err.filename} cannot be created ({err.strerror})"
    if problem:
        reject_results_dir(_root_.results_dir, problem)
    return str(runs)


def reject_results_dir(value, problem: str) -> None:
    """An unusable `results_dir`: one line naming it, exit 2."""
    _reject(f"Invalid value for config key 'results_dir': {str(value)!r}. {problem}; choose a directory prune-run can write.")


# A finished run's .hydra files, read before Hydra rewrites them for a command that finds the run
# complete: run directory -> {file name: bytes}. Put back by the job (`_keep_a_finished_run_s_record`).
_FINISHED_RECORDS: dict[Path, dict[str, bytes]] = {}
# Records kept of one sweep's jobs: finished runs' .hydra files (here) and the jobs the sweeper composed
# (hydra_patches.py, 0.23 MB each; the jobs of a larger batch beyond these are composed twice, as before)
SWEEP_JOBS_KEPT = 1024


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
        run_dir = user_path(_root_.results_dir) / "runs" / rid
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
    command with another config said 'already complete' after Hydra rewrote that run's record) nor
    another unfinished one (its checkpoint names its run id: the run stopped there only after Hydra had
    rewritten that run's .hydra record and the run its config.yaml). A directory holding this very run
    keeps its record, as for a run found by its id. The directory is tried as `hydra.sweep.dir` is (an
    empty value wrote the run's files into the current directory; one under a file said only "cannot use",
    and `--cfg job` accepted it), and must not be a folder prune-run keeps its own files in
    (`misplaced_run_directory`)."""
    node = cfg.hydra.run._get_node("dir")
    if "${runs_dir:}" in str(node._value()):  # prune-run's own directory: its resolver checks the run ...
        _refuse_misplaced_under_runs_dir(cfg)  # ... but not where a spelling such as ${runs_dir:}/.. puts it
        return
    validate(cfg)
    reject_unused_overrides(cfg)
    check_written_directories(cfg)
    check_run_directory(cfg)
    run_dir = Path(str(cfg.hydra.run.dir))
    if run_dir.exists():  # before Hydra writes into it: never removed as a rejected run's scaffolding
        _USERS_FOLDERS.add(run_dir.absolute())
    complete = run_dir / "COMPLETE"
    unfinished = _checkpoint_run_id(run_dir) if not complete.is_file() else None
    if unfinished is not None and unfinished != run_id(cfg):
        raise ConfigError(
            "hydra.run.dir",
            str(run_dir),
            f"a directory for this run ({run_id(cfg)}): it holds the unfinished run {unfinished} (its checkpoint state.pt), "
            "whose config.yaml and .hydra record this command would overwrite; leave hydra.run.dir out (each run gets "
            "results_dir/runs/<run id>), name another directory, or run that run's own command to finish it",
        )
    if not complete.is_file():
        check_data_location(cfg, run_dir)  # this run's own unfinished run, if any
        check_shared_tables(cfg)
        return
    rid, other = run_id(cfg), complete.read_text().strip()
    if other != rid:
        raise ConfigError(
            "hydra.run.dir",
            str(run_dir),
            f"a directory for this run ({rid}): it holds the finished run {other}, which this command would "
            "relabel; leave hydra.run.dir out (each run gets results_dir/runs/<run id>) or name another directory",
        )
    check_data_location(cfg, run_dir)  # this very run, finished
    _FINISHED_RECORDS[run_dir.absolute()] = _hydra_record(run_dir)


def check_run_directory(cfg: DictConfig) -> None:
    """A `hydra.run.dir` given on the command line (or in a config), tried as `hydra.sweep.dir` is, by the run
    and by `--cfg job` (README: it tries the folders a run would write): an empty value wrote the run's files
    into the current directory, one under a file said only "cannot use ..." without the key, and `--cfg job`
    accepted both. Nor may it be a folder prune-run keeps its own files in (`misplaced_run_directory`).
    prune-run's own `${runs_dir:}/${run_id:}` is results_dir's, tried where it resolves."""
    node = cfg.hydra.run._get_node("dir")
    if "${runs_dir:}" in str(node._value()):
        _refuse_misplaced_under_runs_dir(cfg)
        return
    given = str(cfg.hydra.run.dir)
    problem = "it is empty" if not given.strip() else directory_problem(given, try_create=True)
    if problem is None:
        problem = misplaced_run_directory(Path(given), cfg)
    if problem is not None:
        raise ConfigError(
            "hydra.run.dir",
            given,
            "a directory prune-run can write or create, of this run's own: not results_dir, results_dir/runs or "
            "dense_cache.dir (or a folder inside it)",
            f"Here {problem}; leave hydra.run.dir out (each run gets results_dir/runs/<run id>) or name another directory.",
        )


DEFAULT_RUN_DIR = "${runs_dir:}/${run_id:}"


def _refuse_misplaced_under_runs_dir(cfg: DictConfig) -> None:
    """A `hydra.run.dir` spelt with `${runs_dir:}` other than prune-run's own `${runs_dir:}/${run_id:}`
    (`${runs_dir:}/..` is results_dir, `${runs_dir:}` alone results_dir/runs): tried as any other value by
    `misplaced_run_directory` (review of 2026-12-04: such a spelling skipped the check and wrote the run's
    tables over the shared ones). Placed without resolving `${runs_dir:}`, whose resolver creates
    results_dir/runs: the value with it replaced by that path, resolved on a plain copy of the config."""
    raw = str(cfg.hydra.run._get_node("dir")._value())
    if raw == DEFAULT_RUN_DIR or not cfg.get("results_dir"):
        return
    probe = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # plain: no read-only Hydra nodes
    probe.hydra.run.dir = raw.replace("${runs_dir:}", str(user_path(cfg.results_dir) / "runs"))
    given = str(probe.hydra.run.dir)
    problem = misplaced_run_directory(Path(given), cfg)
    if problem is not None:
        raise ConfigError(
            "hydra.run.dir",
            raw,
            "a directory of this run's own: not results_dir, results_dir/runs or dense_cache.dir (or a folder inside it)",
            f"Here it is {given}: {problem}; leave hydra.run.dir out (each run gets results_dir/runs/<run id>) or name "
            "another directory.",
        )


def misplaced_run_directory(run_dir: Path, root: DictConfig) -> str | None:
    """Why `run_dir` cannot be a run's directory because prune-run keeps its own files there, or None. A run
    given `hydra.run.dir=<results_dir>` wrote its per-run tables (layers.csv, per_class.csv, regions.csv) over
    the shared tables of the same names, losing every earlier run's rows, and left COMPLETE, config.yaml and
    its models among them (audit of 2026-12-04); results_dir/runs (`hydra.sweep.subdir=''`) holds one folder
    per run, which the rebuild reads, not files; a dense cache entry is a folder with a COMPLETE of its own,
    moved aside when found damaged. Paths are compared resolved (symlinks, `..`, a relative spelling). A
    folder above these (the current directory with the default `results_dir=results`) or elsewhere under
    results_dir shares no file name with them and is accepted."""
    where = Path(os.path.realpath(run_dir))
    if root.get("results_dir"):
        results = Path(os.path.realpath(user_path(root.results_dir)))
        if where == results:
            return f"it is results_dir ({results}), whose shared tables have the names of the run's own tables"
        if where == results / "runs":
            return f"it is results_dir/runs ({where}), which holds one directory per run, not a run's files"
    cache = OmegaConf.select(root, "dense_cache.dir", default=None)
    if OmegaConf.select(root, "dense_cache.enabled", default=False) and cache:
        cache_dir = Path(os.path.realpath(user_path(cache)))
        if where == cache_dir or cache_dir in where.parents:
            return f"it is {'' if where == cache_dir else 'inside '}dense_cache.dir ({cache_dir}), whose entries are prune-run's"
    return None


def _checkpoint_run_id(run_dir: Path) -> str | None:
    """The run id of the unfinished run whose checkpoint (state.pt) `run_dir` holds (torch is imported
    only where there is one)."""
    if not (run_dir / "state.pt").is_file():
        return None
    from .run.checkpoint import saved_run_id

    return saved_run_id(run_dir)


def _sweep_directory_key(job: DictConfig) -> tuple[str, str]:
    """The key that places a sweep's runs elsewhere than results_dir/runs/<run id>, and its value as given."""
    subdir = str(job.hydra.sweep._get_node("subdir")._value())
    if subdir != "${run_id:}":
        return "hydra.sweep.subdir", subdir
    return "hydra.sweep.dir", str(job.hydra.sweep._get_node("dir")._value())


def _job_directory(job: DictConfig, num: int) -> Path | None:
    """Where the launcher will put job number `num` (hydra.sweep.dir/hydra.sweep.subdir, resolved as
    Hydra's `run_job` does, with the job's number, which the launcher sets again, and Hydra's config set
    for a `${hydra:...}` in them); None when it does not resolve here (the job itself reports that)."""
    from hydra.core.hydra_config import HydraConfig

    given = "".join(str(job.hydra.sweep._get_node(k)._value()) for k in ("dir", "subdir"))
    launcher = str(OmegaConf.select(job, "hydra.launcher._target_", default="") or "")
    if "submitit" in launcher and "job.id" in given:
        return None  # SLURM's job id, known when the job starts (and never shared by two jobs)
    with open_dict(job):
        # the id each launcher gives: Hydra's joblib launcher "<job name>_<number>", the basic one the number
        job.hydra.job.id = f"{job.hydra.job.name}_{num}" if "joblib" in launcher else num
        job.hydra.job.num = num
    placed = copy.deepcopy(job) if "hydra:" in given else job  # set_config makes its hydra node read-only
    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    try:
        if placed is not job:
            hydra_config.set_config(placed)
        return Path(os.path.abspath(os.path.join(str(placed.hydra.sweep.dir), str(placed.hydra.sweep.subdir))))
    except Exception:  # noqa: BLE001 - an interpolation only the job can resolve: its own error
        return None
    finally:
        hydra_config.cfg = before


def check_sweep_directories(jobs: list[tuple[str, DictConfig]]) -> list[Path]:
    """Each run of a sweep in a directory of its own, checked before any job (`jobs`: what tells each
    job apart, and its composed config, in launch order). A custom `hydra.sweep.subdir` (or
    `hydra.sweep.dir`) that puts two runs with different run ids in one directory made the second
    job find the first's COMPLETE, report "already complete" and never train, after Hydra rewrote the
    finished run's `.hydra` record with its own overrides; a directory whose COMPLETE or shared-tables
    marker names another run id is refused likewise (as `hydra.run.dir` is for a single run), and so is
    one whose checkpoint (state.pt) does: the job failed there at run time after Hydra had rewritten
    that unfinished run's `.hydra` record and the job its config.yaml. A directory holding this very run
    keeps its record (as for a run found by its id). A job directory where prune-run keeps its own files
    (results_dir, results_dir/runs with `hydra.sweep.subdir=''`, the dense cache: `misplaced_run_directory`)
    is refused as `hydra.run.dir` is. The directories, where they resolve here."""
    seen: dict[Path, tuple[int, str, str]] = {}
    for num, (swept, job) in enumerate(jobs):
        swept = "the sweep's only job" if len(jobs) == 1 else swept
        run_dir = _job_directory(job, num)
        if run_dir is None:
            continue
        rid = run_id(job)
        key, value = _sweep_directory_key(job)
        advice = f"leave {key} out (each run gets results_dir/runs/<run id>) or use a pattern that tells the runs apart"
        misplaced = misplaced_run_directory(run_dir, job)
        if misplaced is not None:
            raise ConfigError(
                key,
                value,
                "a directory per run, of that run's own: not results_dir, results_dir/runs or dense_cache.dir (or a folder inside it)",
                f"Job {num} ({swept or 'no override'}, run {rid}) would use {run_dir}: {misplaced}. No job ran; {advice}.",
            )
        first = seen.setdefault(run_dir, (num, swept, rid))
        if first[2] != rid:
            raise ConfigError(
                key,
                value,
                "a directory per run",
                f"Jobs {first[0]} ({first[1] or 'no override'}) and {num} ({swept or 'no override'}) are different runs "
                f"({first[2]}, {rid}) but both would use {run_dir}: the second would find the first complete and never "
                f"run. No job ran; {advice}.",
            )
        other = recorded_run_id(run_dir)
        if other is not None and other != rid:
            raise ConfigError(
                key,
                value,
                "a directory per run",
                f"Job {num} ({swept or 'no override'}, run {rid}) would use {run_dir}, which holds the finished run "
                f"{other}: the job would not run and would relabel that run's record. No job ran; {advice}.",
            )
        unfinished = _checkpoint_run_id(run_dir) if other is None else None
        if unfinished is not None and unfinished != rid:
            raise ConfigError(
                key,
                value,
                "a directory per run",
                f"Job {num} ({swept or 'no override'}, run {rid}) would use {run_dir}, which holds the unfinished run "
                f"{unfinished} (its checkpoint state.pt): the job would stop there after overwriting that run's config.yaml "
                f"and .hydra record. No job ran; {advice}, or run that run's own command to finish it.",
            )
        check_data_location(job, run_dir)  # this job's own run, found where the launcher puts it
        if other == rid and (run_dir / ".hydra").is_dir() and len(_FINISHED_RECORDS) < SWEEP_JOBS_KEPT:
            _FINISHED_RECORDS.setdefault(run_dir, _hydra_record(run_dir))
    return list(seen)


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


def _remove_if_scaffolding(run_dir: Path) -> bool:
    """A run rejected before it started leaves no directory behind (only its scaffolding was there),
    unless another process holds the run's lock (the same run, started by another command, is working
    in it: its first files come later), or the directory is a folder of the user's that existed before
    the command (`hydra.run.dir=...`; its own `.log` files would count as scaffolding). Whether it was
    removed."""
    from filelock import FileLock, Timeout

    if run_dir.absolute() in _USERS_FOLDERS:
        return False
    if not (run_dir.is_dir() and all(p.name in SCAFFOLDING or p.suffix == ".log" for p in run_dir.iterdir())):
        return False
    lock = FileLock(str(run_dir / ".run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        lock.release()
    for folder in reversed(_CREATED):  # and the folders Hydra made for it, if still empty
        try:
            folder.rmdir()
        except OSError:
            pass
    return True
