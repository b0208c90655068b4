"""The local engine: reader processes -> shared-memory slots -> batched async inference.

    reader processes (N)        main process
    ------------------------    ------------------------------------------------------------
    open, plan grid, decode  -> (image, tile, slot) -> batcher -> preprocess (slots released)
    tiles into free slots       messages only          -> submit (R requests in flight)
                                                        -> callback -> post-process thread
                                                        -> image book -> merge/write thread

Back-pressure: readers wait for free slots (`PipelineOptions.slot_count` tiles), the
batcher waits for an idle request, so memory stays bounded whatever the input size.
Ctrl-C: readers are stopped, requests in flight finish, images whose tiles were all done
are merged and written, the rest are reported as failed ("interrupted"), the shared memory
is unlinked, and KeyboardInterrupt is re-raised.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leanvision.core.protocols import Predictor
from leanvision.largeimage.pipeline.collect import INTERRUPTED, ImageBook
from leanvision.largeimage.pipeline.infer import InferenceRunner
from leanvision.largeimage.pipeline.options import PipelineOptions
from leanvision.largeimage.pipeline.reading import (
    END,
    EXIT,
    FAIL,
    START,
    TILE,
    ReadSpec,
    reader_process,
)
from leanvision.largeimage.pipeline.slots import SlotRing
from leanvision.largeimage.pipeline.stats import MemoryMonitor, StageClock

_FLUSH_WAIT = 0.005  # s without a message before a partial batch goes to an idle request
_JOIN_SECONDS = 5.0  # s a stopped reader gets to finish its tile before it is terminated


@dataclass
class _Workers:
    """The reader processes and the queues between them and this process."""

    processes: list[Any]
    channels: dict[str, Any]
    exited: set[int]

    def crashed(self, suspects: set[int]) -> set[int]:
        """Readers dead without an EXIT message on two checks in a row (the first check may
        race with the message still in flight), added to `exited` and returned."""
        dead = {k for k, p in enumerate(self.processes) if k not in self.exited and p.exitcode is not None}
        confirmed = dead & suspects
        suspects.clear()
        suspects.update(dead - confirmed)
        self.exited |= confirmed
        return confirmed


def _start_workers(paths: Sequence[Path], spec: ReadSpec, ring: SlotRing, options: PipelineOptions) -> _Workers:
    ctx = mp.get_context(options.start_method.value)
    channels = {"jobs": ctx.Queue(), "free": ctx.Queue(), "out": ctx.Queue(), "stop": ctx.Event()}
    for slot in range(ring.count):
        channels["free"].put(slot)
    count = max(1, min(options.readers, len(paths)))
    for job in [*enumerate(paths), *[None] * count]:
        channels["jobs"].put(job)
    processes = [
        ctx.Process(target=reader_process, args=(k, spec, ring.name, channels), name=f"leanvision-reader-{k}", daemon=True)
        for k in range(count)
    ]
    for process in processes:
        process.start()
    return _Workers(processes, channels, set())


def _stop_workers(workers: _Workers) -> None:
    """Stop the readers (politely, then by signal) and close this side of the queues."""
    workers.channels["stop"].set()
    deadline = time.monotonic() + _JOIN_SECONDS
    for process in workers.processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers.processes:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()
    for name in ("jobs", "free", "out"):
        workers.channels[name].cancel_join_thread()  # never block exit on unread queue data
        workers.channels[name].close()


class _Driver:
    """The main process's loop: messages from readers -> image book and inference runner."""

    def __init__(self, workers: _Workers, ring: SlotRing, runner: InferenceRunner, book: ImageBook,
                 clock: StageClock, tick: Callable[[], None]) -> None:
        self.workers, self.ring, self.runner, self.book = workers, ring, runner, book
        self.clock, self.tick = clock, tick
        self.crashes: dict[int, int] = {}

    def run(self) -> None:
        """Handle messages until every reader has exited."""
        suspects: set[int] = set()
        while len(self.workers.exited) < len(self.workers.processes):
            try:
                message = self.workers.channels["out"].get(timeout=_FLUSH_WAIT)
            except queue.Empty:
                self.runner.flush_if_idle()
                for k in self.workers.crashed(suspects):
                    self.crashes[k] = self.workers.processes[k].exitcode
                self.tick()
                continue
            self.handle(message, infer=True)
            self.runner.check()

    def handle(self, message: tuple, *, infer: bool) -> None:
        kind, key, *rest = message
        if kind == TILE:
            index, slot, hw = rest
            release = functools.partial(self.workers.channels["free"].put, slot)
            if infer:
                self.runner.add((key, index), self.ring.view(slot, hw), release)
            else:
                release()
        elif kind == START:
            self.book.start(key, *rest)
        elif kind == END:
            self.book.end(key, *rest)
        elif kind == FAIL:
            self.book.fail(key, *rest)
        elif kind == EXIT:
            self.workers.exited.add(key)
            self.clock.merge(*rest)

    def drain(self) -> None:
        """After a stop: take the readers' last messages (ends, failures, exits) without
        inferring the tiles still arriving."""
        deadline = time.monotonic() + _JOIN_SECONDS
        suspects: set[int] = set()
        while len(self.workers.exited) < len(self.workers.processes) and time.monotonic() < deadline:
            try:
                self.handle(self.workers.channels["out"].get(timeout=0.05), infer=False)
            except queue.Empty:
                self.workers.crashed(suspects)


def crash_reason(crashes: dict[int, int]) -> str:
    codes = ", ".join(str(code) for code in sorted(set(crashes.values())))
    return f"its reader process died (exit code {codes}), e.g. a decoder crash on this file"


def run_local(predictor: Predictor, paths: Sequence[Path], options: PipelineOptions, *, book: ImageBook,
              clock: StageClock, monitor: MemoryMonitor, tick: Callable[[], None]) -> None:
    """Run every image of `paths` through the local engine, feeding `book`.

    Raises:
        KeyboardInterrupt: after a clean stop (module docstring); `book` then holds what
            completed and reports the rest as failed.
    """
    spec = ReadSpec.for_card(options, predictor.card)
    input_wh = spec.input_wh
    ring = SlotRing.create((input_wh[1], input_wh[0], 3), options.slot_count)
    runner: InferenceRunner | None = None
    workers: _Workers | None = None
    try:
        runner = InferenceRunner(predictor, batch=options.batch, requests=options.requests, clock=clock,
                                 on_result=lambda key, dets: book.tile(*key, dets))
        workers = _start_workers(paths, spec, ring, options)
        monitor.watch(p.pid for p in workers.processes)
        driver = _Driver(workers, ring, runner, book, clock, tick)
        try:
            driver.run()
            runner.finish()
        except KeyboardInterrupt:
            workers.channels["stop"].set()
            runner.drop_pending()
            driver.drain()
            runner.wait()
            book.fail_unfinished(INTERRUPTED)
            raise
        if driver.crashes:
            book.fail_unfinished(crash_reason(driver.crashes))
    finally:
        if workers is not None:
            _stop_workers(workers)
        if runner is not None:
            runner.close()
        ring.close()
        ring.unlink()
