"""Peak memory of a process, measured the way that survives fork and exec.

`getrusage().ru_maxrss` is the wrong tool for a child process: Linux carries the parent's
RSS high-water mark across fork + exec into the child's figure (a child started by a 900 MB
pytest worker reports >= 900 MB whatever it does), and RUSAGE_CHILDREN is the maximum over
every child ever waited for. /proc/<pid>/status VmHWM belongs to the process's own address
space and starts afresh at exec.
"""

from __future__ import annotations

import resource
from pathlib import Path


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size of `pid` (default: this process) in MiB.

    VmHWM where /proc exists; elsewhere (this process only) getrusage's ru_maxrss.
    """
    kib = _status_kib(pid, "VmHWM")
    if kib is None:
        if pid != "self":
            return 0.0
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return kib / 1024


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size of `pid` in MiB (0 if unknown)."""
    kib = _status_kib(pid, "VmRSS")
    return 0.0 if kib is None else kib / 1024
