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


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    A training step frees and reallocates the same large activations every step (the slim
    RetinaNet at batch 8, 400 px: up to 123 MB each). glibc serves a block over its mmap
    threshold (32 MB at most) with a fresh mapping, so every step page-faults ~40,000 new
    pages that the kernel zeroes. With mmap off and trimming at 1 GiB the blocks are reused:
    ~2,000 faults per step and 1.05x the images/s on an AVX2 EPYC (BENCHMARKS.md). PyTorch's
    CPU tuning guide preloads jemalloc or tcmalloc for the same reason; this needs neither.
    Called by the `train` and `demo` commands (a process-wide setting: the application's
    choice, not a library's). Returns False, changing nothing, where the C library is not glibc.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
