"""Stage timers and peak memory of a pipeline run.

Stage wall times are summed over the workers doing that stage (two readers reading for
10 s each make read = 20 s), so a stage can exceed the run's wall time; inference counts
each request from submit to its callback, so R requests in flight count R times. CPU
times come from `time.thread_time` (one thread's CPU) or `time.process_time` (a reader
process), where a stage owns a thread or a process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from leanvision.core.resources import peak_rss_mb

STAGES = ("read", "preprocess", "infer", "postprocess", "merge")


class StageClock:
    """Wall and CPU seconds per stage, added from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)

    def add(self, stage: str, wall: float, cpu: float = 0.0) -> None:
        with self._lock:
            self.wall[stage] += wall
            self.cpu[stage] += cpu

    def merge(self, wall: dict[str, float], cpu: dict[str, float]) -> None:
        """Add another clock's totals (a reader process's, a Ray actor's)."""
        for stage in STAGES:
            self.add(stage, wall.get(stage, 0.0), cpu.get(stage, 0.0))

    @contextlib.contextmanager
    def thread_stage(self, stage: str) -> Iterator[None]:
        """Time a block run by the calling thread: its wall time and its thread's CPU time."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu)

    @contextlib.contextmanager
    def process_stage(self, stage: str) -> Iterator[None]:
        """Time a block in a single-purpose process (a reader): wall and process CPU time."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.process_time() - cpu)

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        with self._lock:
            return dict(self.wall), dict(self.cpu)


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pss_mb(pid: int) -> float | None:
    """Proportional set size of a process, MB: shared pages (the tile slots) are split
    between the processes mapping them, so the sum over processes counts them once."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


def own_peak_rss_mb() -> float:
    """This process's peak resident set, MB (VmHWM; see `core.resources`)."""
    return peak_rss_mb()


class MemoryMonitor:
    """Peak memory of this process plus its workers, sampled on a background thread.

    `peak_mb` is the largest sampled sum of PSS over this process and the live worker
    processes, and at least the peak RSS of this process and of any waited-for child
    (`getrusage`), which the sampling could miss between two samples.
    """

    # Reading smaps_rollup costs ~2.6 ms for the main process (OpenVINO's large address
    # space) and ~0.8 ms per reader: ~1 % of 2 cores at 5 samples/s, 0.4 % at 2.
    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._pids: list[int] = []
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leanvision-memory", daemon=True)

    def watch(self, pids: Iterable[int | None]) -> None:
        self._pids = [p for p in pids if p is not None]

    def __enter__(self) -> MemoryMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        values = [pss_mb(pid) for pid in (os.getpid(), *self._pids)]
        self._peak = max(self._peak, sum(v for v in values if v is not None))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @property
    def peak_mb(self) -> float:
        children = max((peak_rss_mb(pid) for pid in self._pids), default=0.0)
        return max(self._peak, own_peak_rss_mb(), children)
