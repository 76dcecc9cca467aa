"""One digest of the files under a folder: their relative paths and bytes, in path order.

`tree_digest` is used where "has anything here changed?" must not trust modification times (a quick rewrite
can leave one unchanged): the composition memo's key (config folders, prune_cli/run/composition_memo.py) and the
dense cache's key (the package's source, prune_cli/run/dense_cache.py). `files_record` and `changed_file`: what a
cache entry records of the data files a dataset reads, and whether they still hold those bytes. These do trust
size and modification time together (reading gigabytes of data at every run was not wanted): a file with the
recorded size and time is taken as unchanged unread, so other bytes of the same size under the same time (a
file system with coarse times, `touch -r`, `cp -p` / `rsync -a` of another version) are not noticed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional


def tree_digest(root: Path | str, suffix: str = "") -> str:
    """sha256 over `relative path NUL bytes NUL` of every file under `root` whose name ends in
    `suffix`, sorted by relative path; a file that vanishes while the folder is read is skipped."""
    files = []  # (relative path with "/", full path)
    for folder, _, names in os.walk(root):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        files += [(prefix + n, os.path.join(folder, n)) for n in names if n.endswith(suffix)]
    digest = hashlib.sha256()
    for rel, full in sorted(files):
        try:
            with open(full, "rb") as f:
                data = f.read()
        except OSError:
            continue
        digest.update(rel.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_record(files: dict[str, str]) -> dict[str, dict]:
    """{name: {"size", "mtime_ns", "sha256"}} of each of `files` ({name: path}, a dataset's `source_files`):
    what a dense-cache entry or a score file records of the data it was computed from. The digest is what
    `changed_file` trusts; size and modification time only spare reading the files again when both agree."""
    record = {}
    for name, path in sorted(files.items()):
        st = os.stat(path)
        record[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}
    return record


def changed_file(record: dict, files: dict[str, str]) -> tuple[Optional[str], dict]:
    """(what changed, the record refreshed): the first of `files` ({name: path}) whose bytes are not those
    `record` (`files_record`) holds, as "<name> holds other bytes" / "<name> is new" / "<name> is gone" (None:
    every file as recorded). A file whose size and modification time are the recorded ones is taken as
    unchanged without reading it; one where either differs is read and its sha256 compared, so a copy without
    `cp -p` of the same bytes is unchanged. The refreshed record holds the size and time seen now for such a
    file, so that the next check need not read it again."""
    refreshed = {}
    for name in sorted(set(record) | set(files)):
        if name not in files:
            return f"{name} is gone", record
        if name not in record:
            return f"{name} is new", record
        then = record[name]
        try:
            st = os.stat(files[name])
        except OSError:
            return f"{name} is gone", record
        if not isinstance(then, dict):
            return f"{name} holds other bytes", record
        if then.get("size") == st.st_size and then.get("mtime_ns") == st.st_mtime_ns:
            refreshed[name] = then
            continue
        if then.get("size") != st.st_size or then.get("sha256") != file_sha256(files[name]):
            return f"{name} holds other bytes", record
        refreshed[name] = {**then, "mtime_ns": st.st_mtime_ns}
    return None, refreshed
