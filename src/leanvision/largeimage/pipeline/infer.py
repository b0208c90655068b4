"""Batched asynchronous inference over tiles: batch -> preprocess -> submit -> post-process.

`InferenceRunner` is fed tiles one by one (from shared-memory slots or in-process reads).
Every `batch` tiles, in the calling thread, it runs `predictor.preprocess` (the copy into
the model input, after which the tiles' slots are released so reading goes on) and
`predictor.submit`, keeping at most `requests` batches in flight. The engine's callback
only queues the raw outputs; a post-processing thread decodes them
(`predictor.postprocess`: decode + NMS) and hands each tile's detections, in tile-input
pixels, to `on_result`. Decode therefore never holds up the engine's threads (S0: the main
process infers, callbacks hand results on).

A partial batch goes out when the producer has nothing more for now and a request is idle
(`flush_if_idle`): waiting to fill it would leave the model idle.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from leanvision.core.protocols import Predictor, Prepared, RawOutputs, StagedPredictor
from leanvision.largeimage.pipeline.stats import StageClock

TileKey = tuple[int, int]  # (image id, tile index)
OnResult = Callable[[TileKey, Any], None]  # a tile's `Detections`, or its `DensityMap` (counting)
# Without a callback for this long, ask the predictor (wait_all) whether a request failed:
# engines report a failed request there, not through its callback.
_STALL_SECONDS = 30.0


class CallInThread:
    """A plain `Predictor` (no stages) as a `StagedPredictor`: one call at a time, on a
    worker thread, so reading and post-processing still overlap it."""

    max_in_flight = 1

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.card = predictor.card
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="leanvision-predict")
        self._futures: list[Future] = []

    def __call__(self, images: Sequence[np.ndarray]) -> list:
        return self.predictor(images)

    def preprocess(self, images: Sequence[np.ndarray], *, at_input_scale: bool = False) -> Prepared:
        batch = np.stack(images)  # a copy: the tiles' slots are released after this
        return Prepared(batch, tuple(im.shape[:2] for im in images), ())

    def submit(self, prepared: Prepared, on_done: Callable[[RawOutputs], None]) -> None:
        def run() -> None:
            on_done({"results": self.predictor(list(prepared.batch))})

        self._futures = [f for f in self._futures if not f.done() or f.exception() is not None]
        self._futures.append(self._pool.submit(run))

    def wait_all(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def postprocess(self, raw: Any, prepared: Prepared) -> list:
        return list(raw["results"])

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def as_staged(predictor: Predictor) -> StagedPredictor:
    return predictor if isinstance(predictor, StagedPredictor) else CallInThread(predictor)


class InferenceRunner:
    """Tiles in, per-tile detections out (see the module docstring).

    Args:
        predictor: any Predictor; a plain one runs through `CallInThread`.
        batch: tiles per inference call.
        requests: batches in flight; None: `predictor.max_in_flight`.
        clock: receives preprocess (this thread), infer (submit -> callback, per request)
            and postprocess (the post-processing thread) times.
        on_result: called from the post-processing thread with each tile's key and its
            result in tile-input pixels (detections, or a density map for a counting model).
    """

    def __init__(self, predictor: Predictor, *, batch: int, requests: int | None, clock: StageClock,
                 on_result: OnResult) -> None:
        self.predictor = as_staged(predictor)
        self.batch = batch
        self.requests = requests or max(1, int(self.predictor.max_in_flight))
        self.clock = clock
        self.on_result = on_result
        self.tiles_done = 0
        self.error: BaseException | None = None
        self._pending: list[tuple[TileKey, np.ndarray, Callable[[], None] | None]] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self._results: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._post_loop, name="leanvision-postprocess", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, key: TileKey, pixels: np.ndarray, release: Callable[[], None] | None = None) -> None:
        """Queue one tile (H x W x 3 uint8 at the model input size); `release()` is called
        once its pixels have been copied into a model input."""
        self._pending.append((key, pixels, release))
        if len(self._pending) >= self.batch:
            self.dispatch()

    def flush_if_idle(self) -> None:
        """Send a partial batch if a request is idle (the producer has nothing more now)."""
        with self._cond:
            idle = self._in_flight < self.requests
        if self._pending and idle:
            self.dispatch()

    def dispatch(self) -> None:
        """Preprocess the pending tiles, release their slots, submit them."""
        items, self._pending = self._pending, []
        if not items:
            return
        with self.clock.thread_stage("preprocess"):
            prepared = self.predictor.preprocess([pixels for _, pixels, _ in items], at_input_scale=True)
        for _, _, release in items:
            if release is not None:
                release()
        self._wait_in_flight(self.requests - 1)
        keys = [key for key, _, _ in items]
        with self._cond:
            self._in_flight += 1
        start = time.perf_counter()
        try:
            self.predictor.submit(prepared, lambda raw: self._on_done(keys, prepared, start, raw))
        except BaseException:
            with self._cond:
                self._in_flight -= 1
            raise

    def drop_pending(self) -> None:
        """Forget tiles not yet dispatched (Ctrl-C), releasing their slots."""
        items, self._pending = self._pending, []
        for _, _, release in items:
            if release is not None:
                release()

    def _on_done(self, keys: list[TileKey], prepared: Prepared, start: float, raw: RawOutputs) -> None:
        self.clock.add("infer", time.perf_counter() - start)
        self._results.put((keys, prepared, raw))
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _wait_in_flight(self, at_most: int) -> None:
        """Block until at most `at_most` batches are in flight; surface failed requests."""
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._in_flight <= at_most, timeout=_STALL_SECONDS):
                    return
            self.predictor.wait_all()  # raises the error of a request that failed
            with self._cond:
                if self._in_flight > at_most:
                    raise RuntimeError(f"the predictor finished {self._in_flight} requests without calling back")

    def _post_loop(self) -> None:
        while (item := self._results.get()) is not None:
            keys, prepared, raw = item
            try:
                with self.clock.thread_stage("postprocess"):
                    results = self.predictor.postprocess(raw, prepared)
                    for key, dets in zip(keys, results, strict=True):
                        self.on_result(key, dets)
                self.tiles_done += len(keys)
            except BaseException as exc:  # re-raised in the producer's thread by `check`
                self.error = self.error or exc
            finally:
                self._results.task_done()

    def check(self) -> None:
        """Re-raise a post-processing failure in the calling thread."""
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Send what is pending, wait for every request and its post-processing."""
        self.dispatch()
        self.wait()

    def wait(self) -> None:
        """Wait for the requests in flight and their post-processing (nothing new is sent)."""
        self._wait_in_flight(0)
        self.predictor.wait_all()
        self._results.join()
        self.check()

    def close(self) -> None:
        """Stop the post-processing thread (after `wait`); close a `CallInThread` adapter."""
        self._results.put(None)
        self._thread.join()
        if isinstance(self.predictor, CallInThread):
            self.predictor.close()
