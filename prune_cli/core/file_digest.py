"""One digest of the files under a folder: their relative paths and bytes, in path order.

Used where "has anything here changed?" must not trust modification times (a quick rewrite can
leave one unchanged): the composition memo's key (config folders, prune_cli/run/composition_memo.py)
and the dense cache's key (the package's source, prune_cli/run/dense_cache.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
