"""Which process a pid names: for files a process leaves behind for a later one to clean up.

A local sweep's record (prune_cli/run/sweep_record.py) and a report's staging folder
(prune_cli/report/build.py) carry their process's pid, so that a later process can tell that the one
that made them is gone (killed outright, SIGKILL) and remove them. A pid means that process only on
its host and in its pid namespace: containers that share the host's name (Docker's --network host,
Kubernetes' hostNetwork) have pid namespaces of their own, where another process's pid may be free.
Judged by pid and host alone, a live sweep's record was removed.
"""

from __future__ import annotations

import os
import socket


def here() -> str:
    """`<host>~<pid namespace>`: where a pid of this process's means the same process (the namespace
    is empty where there is no /proc, off Linux: the host alone)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}~{namespace}"


def alive(pid: int) -> bool:
    """Whether a process with this pid runs here (another user's process counts: it runs). A pid the
    system call cannot take (too large: OverflowError) is not judged: counted as running, so that what
    carries it is left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
