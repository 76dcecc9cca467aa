"""Where the YAML configs are: the top-level configs/ of a source checkout, else the copy shipped
inside the wheel as the package `prune_cli.configs` (pyproject.toml)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional


def user_path(value) -> Path:
    """A directory option as a path (`results_dir`, `dense_cache.dir`): a leading `~` is the home folder,
    as the validation that tried it (prune_cli/core/writable.py) and a shell read it. Hydra keeps a
    quoted `results_dir='~/x'` as typed; used unexpanded it was ./~/x."""
    return Path(os.path.expanduser(str(value)))


def normal_path(value):
    """One spelling of a folder option's path (`dataset.cache_dir`, `dataset.root`): a trailing '/', '.'
    segments and doubled '/' removed (`/tmp/r/mn1d/`, `/tmp/r/./mn1d` and `/tmp/r//mn1d` are `/tmp/r/mn1d`),
    so that the same folder written differently is one run id, one dense-cache entry and one experiment
    (README, "Every run gets its own directory"). A path already in that form is returned unchanged, so
    the run ids of existing results stay. Not `os.path.normpath`: it also drops `x/..`, which is another
    folder when x is a symbolic link; and not `~` expanded or made absolute, which would move the ids of
    existing results (the default `~/.cache/prune-cli/mnist1d` among them). POSIX's leading `//` is kept,
    as normpath keeps it. Anything but a non-empty string is returned as it is (validation names it)."""
    if not isinstance(value, str) or not value:
        return value
    lead = "//" if value.startswith("//") and not value.startswith("///") else "/" if value.startswith("/") else ""
    return lead + "/".join(part for part in value.split("/") if part not in ("", ".")) or lead or "."


def relative(value) -> bool:
    """Whether a path option's value is relative: neither absolute nor starting with `~` (the home folder)."""
    return isinstance(value, str) and bool(value) and not value.startswith(("/", "~"))


def data_locations(node) -> dict[str, str]:
    """{option: the folder it names from this working directory, symbolic links resolved} for each of a dataset
    node's `data_options` (DatasetConfig: the options whose folder's files are the data, a vision dataset's
    `root`). A relative `root` (the default `data`) names another folder from another working directory: a run
    records where it read its data (provenance.json `data_location`), and the dense-cache key and the data memo
    hold this folder. Resolved (`os.path.realpath`), so `b/../data` and `c/../data` are one folder."""
    from omegaconf import OmegaConf

    found = {}
    for option in getattr(OmegaConf.get_type(node), "data_options", ()):
        value = node.get(option)
        if isinstance(value, str) and value:
            found[option] = os.path.realpath(os.path.expanduser(value))
    return found


def data_folder_ids(locations: dict[str, str]) -> dict[str, list[int]]:
    """{option: [device, inode]} of each folder of `data_locations` that exists: the same folder after a move or a
    rename of the project that holds it (`mv` keeps a directory's inode on one file system), where its path
    changed."""
    found = {}
    for option, folder in locations.items():
        try:
            st = os.stat(folder)
        except OSError:
            continue
        found[option] = [st.st_dev, st.st_ino]
    return found


def data_folders_record(node) -> dict[str, dict]:
    """Where a dataset node's data is read from, as a run's provenance.json and a dense-cache entry record it:
    {"data_location": {"dataset.<option>": folder}, "data_folder_id": {"dataset.<option>": [device, inode]}}
    (`other_data_folder` compares a record with a node); {} for a dataset without data options."""
    located = data_locations(node)
    if not located:
        return {}
    return {
        "data_location": {f"dataset.{o}": folder for o, folder in located.items()},
        "data_folder_id": {f"dataset.{o}": ids for o, ids in data_folder_ids(located).items()},
    }


def other_data_folder(node, recorded: dict) -> Optional[tuple[str, str, str]]:
    """(option, the folder the run recorded, the folder named here) for the first data option whose folder is not
    the one a run recorded when it started (`recorded`: its provenance.json, keys "dataset.<option>"): neither
    the same path nor, where both are known, the same folder (device and inode) moved; None where all match or
    nothing was recorded (runs started before 2026-12-03)."""
    then_paths, then_ids = recorded.get("data_location") or {}, recorded.get("data_folder_id") or {}
    here = data_locations(node)
    ids = data_folder_ids(here)
    for option, folder in here.items():
        key = f"dataset.{option}"
        then = then_paths.get(key)
        if then is None or then == folder:
            continue
        if then_ids.get(key) is not None and list(then_ids[key]) == ids.get(option):
            continue
        if then_ids.get(key) is None and os.path.realpath(then) == folder:  # recorded unresolved (earlier on 2026-12-03)
            continue
        return option, then, folder
    return None


def other_data_message(node, rid: str, run_dir, option: str, then: str, here: str) -> str:
    """What a command is told when its run id names a run that read its data from another folder
    (`other_data_folder`): the option, both folders, and the absolute spelling that gives a run of its own."""
    key = f"dataset.{option}"
    if relative(node[option]):
        why = "a relative path names another folder from another working directory"
        fix = f"Give the folder as an absolute path ({key}={here}) for a run of its own, or run the command from the "
        fix += "directory the run was made in"
    else:
        why = "the path now leads to another folder: a symbolic link changed, or the folder was replaced"
        fix = f"Give another {key} or results_dir for a run of its own"
    return (
        f"Invalid value for config key '{key}': {node[option]!r}: run {rid} ({run_dir}) read its data from {then}, "
        f"and here {key}={node[option]} names {here} ({why}). {fix}"
    )


def with_located_data(node, plain: dict) -> dict:
    """`plain` (the dataset node as a dict) with each relative data option replaced by the folder it names
    from here (`data_locations`): the dense-cache key and the data memo of data read from one folder. Absolute
    and `~` spellings are kept as they are, so their keys stay those of existing entries."""
    located = {o: v for o, v in data_locations(node).items() if relative(plain.get(o))}
    return {**plain, **located} if located else plain


def normalise_path_options(node) -> None:
    """Replace, in place, each of a config node's declared path options (its schema's `path_options`,
    prune_cli/core/config_base.py) by its `normal_path`."""
    from omegaconf import OmegaConf

    for option in getattr(OmegaConf.get_type(node), "path_options", ()):
        if option in node and node[option] != normal_path(node[option]):
            node[option] = normal_path(node[option])


def with_normal_paths(node, plain: dict) -> dict:
    """`plain` (the node converted to a dict) with each of the node's declared path options' values
    replaced by its `normal_path`: what the run id and the dense-cache key hash, whichever spelling the
    node holds. A copy when anything changes; `plain` itself otherwise."""
    from omegaconf import OmegaConf

    changed = {o: normal_path(plain[o]) for o in getattr(OmegaConf.get_type(node), "path_options", ()) if o in plain}
    changed = {o: v for o, v in changed.items() if v != plain[o]}
    return {**plain, **changed} if changed else plain


PROJECT = "prune-cli"  # pyproject.toml's [project] name


def source_checkout() -> Optional[Path]:
    """The folder holding the package when it is a source checkout of prune-cli (its pyproject.toml names
    the project), else None: an installed package's parent is site-packages, where any other
    distribution's top-level folders lie beside it."""
    folder = Path(__file__).resolve().parents[2]
    return folder if is_source_checkout(folder) else None


def is_source_checkout(folder: Path) -> bool:
    """Whether `folder` holds a pyproject.toml whose [project] name is prune-cli (`source_checkout`), the name
    compared as PEP 503 normalises it (`prune_cli`, `Prune.CLI` are the same project). Parsed as TOML where
    Python has tomllib (3.11+): a line-exact match refused valid files with comments (`name = "prune-cli"  # dist
    name`), and the configs were then silently those of another checkout installed in editable mode."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        import tomllib
    except ImportError:  # Python 3.10 (requires-python >= 3.10)
        name = _project_name_by_pattern(text)
    else:
        try:
            project = tomllib.loads(text).get("project")
        except tomllib.TOMLDecodeError:
            return False
        name = project.get("name") if isinstance(project, dict) else None
    return isinstance(name, str) and _normal_name(name) == _normal_name(PROJECT)


def _normal_name(name: str) -> str:
    """A distribution name as PEP 503 normalises it: lower case, each run of `-`, `_` and `.` one `-`."""
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _project_name_by_pattern(text: str) -> Optional[str]:
    """[project]'s `name` without a TOML parser (Python 3.10): the table header and the key each on its own line,
    either allowing a trailing comment, the value in single or double quotes."""
    import re

    table = re.search(r"(?ms)^\s*\[\s*project\s*\]\s*(?:#[^\n]*)?$(.*?)(?=^\s*\[|\Z)", text)
    if table is None:
        return None
    found = re.search(r"""(?m)^\s*name\s*=\s*(?:"([^"\n]*)"|'([^'\n]*)')\s*(?:#.*)?$""", table.group(1))
    return None if found is None else (found.group(1) if found.group(1) is not None else found.group(2))


def checkout_configs() -> Optional[Path]:
    """configs/ next to the package in a source checkout (`source_checkout`), or None in an installed wheel,
    whose configs are the package `prune_cli.configs`: a foreign top-level `configs/config.yaml` in
    site-packages (another distribution's) was loaded instead of the wheel's."""
    checkout = source_checkout()
    configs = checkout / "configs" if checkout is not None else None
    return configs if configs is not None and (configs / "config.yaml").exists() else None


# Files a run reads by name that its run id hashes by name only (README, "Every run gets its own directory"):
# the masks file of method.match_masks, and the method config method.match_method names (configs/method/<name>.yaml).
INPUT_FILES = ("method.match_masks", "method.match_method")


def input_file_digests(cfg) -> dict[str, str]:
    """{key: sha256 of the file's bytes} of each file of INPUT_FILES the config names and that exists: a run
    records them (provenance.json `input_files`), and a later command for its run id whose file under that
    name holds other bytes is refused (`other_input_file`) instead of reporting the first file's numbers
    (run-id audit of 2026-12-03)."""
    import hashlib

    method = cfg.get("method") if hasattr(cfg, "get") else None
    if method is None:
        return {}
    paths = {}
    if method.get("match_masks"):
        paths["method.match_masks"] = Path(os.path.expanduser(str(method.match_masks)))
    if method.get("match_method"):
        paths["method.match_method"] = configs_dir() / "method" / f"{method.match_method}.yaml"
    return {key: hashlib.sha256(path.read_bytes()).hexdigest() for key, path in paths.items() if path.is_file()}


def other_input_file(cfg, recorded: dict) -> Optional[str]:
    """The first key of INPUT_FILES whose file holds other bytes than when the run recorded it (`recorded`: its
    provenance.json); None where all match or nothing was recorded (runs started before 2026-12-03)."""
    then = recorded.get("input_files") or {}
    if not then:
        return None
    now = input_file_digests(cfg)
    return next((key for key, digest in then.items() if key in now and now[key] != digest), None)


def other_input_message(cfg, key: str, rid: str, run_dir) -> str:
    value = cfg.method[key.split(".", 1)[1]]
    return (
        f"Invalid value for config key '{key}': {value!r}: run {rid} ({run_dir}) was made with another file under "
        "this name (its bytes differ; the run id hashes the name, not the content). Give the new file another "
        "name, or another results_dir, for a run of its own"
    )


def configs_dir() -> Path:
    """The configs directory as a path (checkout first, else the installed package data)."""
    return checkout_configs() or Path(str(resources.files("prune_cli.configs")))


def hydra_config_path() -> str:
    """The config path for `hydra.main`: the checkout's directory, else `pkg://prune_cli.configs`."""
    checkout = checkout_configs()
    return str(checkout) if checkout is not None else "pkg://prune_cli.configs"
