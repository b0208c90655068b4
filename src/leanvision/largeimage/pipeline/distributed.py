"""The Ray engine: the same job on a Ray cluster, actors holding the compiled model.

Each actor builds its predictor once from the caller's picklable `predictor_factory`
(e.g. `functools.partial(load_predictor, model_dir, backend="openvino")`: largeimage never
imports the runtime) and runs work units: an image, or a band of an image's tiles when
there are fewer images than actors (a single huge slide). Inside an actor a reader thread
feeds the same `InferenceRunner` as the local engine; the actor returns each tile's
detections in tile-input pixels, and the driver merges them with the same `ImageBook` and
`Merger`, so the results equal the local engine's.

Files are opened by path on whichever node runs the unit: on a cluster, inputs must be on
a file system every node mounts at the same path. A band of a JPEG decodes the whole
image (JPEG has no random access); a tiled TIFF band reads only its own tiles.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.core.errors import LeanVisionError
from leanvision.core.protocols import Predictor
from leanvision.largeimage.grid import Tile
from leanvision.largeimage.pipeline.collect import INTERRUPTED, ImageBook
from leanvision.largeimage.pipeline.infer import InferenceRunner
from leanvision.largeimage.pipeline.options import PipelineOptions
from leanvision.largeimage.pipeline.reading import (
    END,
    FAIL,
    START,
    TILE,
    ReadSpec,
    failure_reason,
    iter_tiles,
)
from leanvision.largeimage.pipeline.stats import StageClock, own_peak_rss_mb, process_cpu_seconds
from leanvision.largeimage.readers import Scratch

PredictorFactory = Callable[[], Predictor]


@dataclass(frozen=True)
class WorkUnit:
    """Tiles [start, stop) of image `image_id` (stop None: to the end), one of `parts`."""

    image_id: int
    path: Path
    start: int = 0
    stop: int | None = None
    parts: int = 1


@dataclass
class UnitResult:
    """What an actor sends back for a unit: the image's size and tiles, each tile's
    detections (tile-input pixels), the preview, or why the image failed; stage totals."""

    unit: WorkUnit
    size: tuple[int, int] | None = None
    tiles: list[Tile] | None = None
    detections: dict[int, Any] | None = None  # per tile: Detections, or a DensityMap (counting)
    preview: np.ndarray | None = None
    failure: str | None = None
    wall: dict[str, float] | None = None
    cpu: dict[str, float] | None = None
    peak_rss_mb: float = 0.0


def _produce(events: Iterator[tuple[str, Any]], out: queue.Queue) -> None:
    try:
        for event in events:
            out.put(event)
    finally:
        out.put(None)


class TileWorker:
    """A Ray actor's body (wrapped by `ray.remote` at run time): one predictor, many units."""

    def __init__(self, predictor_factory: PredictorFactory, options: PipelineOptions) -> None:
        os.environ["VIPS_CONCURRENCY"] = "1"  # one decode thread: the actor's CPUs infer
        self.options = options
        self.scratch = Scratch()
        # A user error (bad model directory) is kept and raised by `card`: raised here, Ray
        # would report a dead actor and lose the error's type and message.
        self.error: LeanVisionError | None = None
        try:
            self.predictor = predictor_factory()
        except LeanVisionError as exc:
            self.error = exc
            return
        card = self.predictor.card
        self.spec = ReadSpec.for_card(options, card)

    def card(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.predictor.card

    def run(self, unit: WorkUnit) -> UnitResult:
        clock, result = StageClock(), UnitResult(unit, detections={})
        cpu0 = process_cpu_seconds()
        runner = InferenceRunner(self.predictor, batch=self.options.batch, requests=self.options.requests,
                                 clock=clock, on_result=lambda key, dets: result.detections.__setitem__(key[1], dets))
        events: queue.Queue = queue.Queue(maxsize=2 * self.options.batch + 2)  # bounds tiles held
        reader = threading.Thread(target=_produce, daemon=True, args=(
            iter_tiles(unit.path, self.spec, clock, start=unit.start, stop=unit.stop, scratch=self.scratch), events))
        reader.start()
        try:
            self._consume(events, runner, result)
            runner.finish()
        except Exception as exc:
            result.failure = result.failure or failure_reason(exc)
        finally:
            runner.close()
            reader.join()
        result.wall, result.cpu = clock.snapshot()
        result.cpu["infer"] = max(0.0, process_cpu_seconds() - cpu0 - sum(result.cpu.values()))
        result.peak_rss_mb = own_peak_rss_mb()
        return result

    @staticmethod
    def _consume(events: queue.Queue, runner: InferenceRunner, result: UnitResult) -> None:
        while (event := events.get()) is not None:
            kind, payload = event
            if kind == TILE:
                runner.add((result.unit.image_id, payload[0]), payload[1])
            elif kind == START:
                result.size, result.tiles = payload
            elif kind == END:
                result.preview = payload
            elif kind == FAIL:
                result.failure = payload
            runner.check()


def _bands(count: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous, near-equal index ranges over `count` tiles (row-major: bands)."""
    edges = np.linspace(0, count, min(parts, count) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def plan_units(paths: Sequence[Path], actors: int, spec: ReadSpec, book: ImageBook) -> list[WorkUnit]:
    """One unit per image; with fewer images than actors, each image split into bands
    (its size read here from the header; an image that cannot be opened fails here)."""
    if len(paths) >= actors:
        return [WorkUnit(i, path) for i, path in enumerate(paths)]
    per_image = -(-actors // len(paths))
    units = []
    for i, path in enumerate(paths):
        try:
            with spec.open(path) as reader:
                count = len(spec.plan(reader))
        except Exception as exc:
            book.fail(i, failure_reason(exc))
            continue
        bands = _bands(count, per_image)
        units += [WorkUnit(i, path, a, b, len(bands)) for a, b in bands]
    return units


class _Collector:
    """Feeds unit results into the book; an image ends when all its units are back."""

    def __init__(self, book: ImageBook, clock: StageClock) -> None:
        self.book, self.clock = book, clock
        self.parts_done: dict[int, int] = {}
        self.previews: dict[int, np.ndarray | None] = {}
        self.actor_peaks: dict[int, float] = {}

    def add(self, actor: int, result: UnitResult) -> None:
        unit = result.unit
        self.clock.merge(result.wall or {}, result.cpu or {})
        self.actor_peaks[actor] = max(self.actor_peaks.get(actor, 0.0), result.peak_rss_mb)
        if result.failure is not None:
            self.book.fail(unit.image_id, result.failure)
            return
        self.book.start(unit.image_id, result.size, result.tiles)
        for index, dets in (result.detections or {}).items():
            self.book.tile(unit.image_id, index, dets)
        if unit.start == 0:
            self.previews[unit.image_id] = result.preview
        self.parts_done[unit.image_id] = self.parts_done.get(unit.image_id, 0) + 1
        if self.parts_done[unit.image_id] == unit.parts:
            self.book.end(unit.image_id, self.previews.pop(unit.image_id, None))


def _init_ray(ray: Any, options: PipelineOptions) -> bool:
    """Connect to (or start) Ray unless this process already did; True if we did."""
    if ray.is_initialized():
        return False
    ray.init(address=options.ray.address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    return True


def _user_error(exc: BaseException) -> LeanVisionError | None:
    """The leanvision error (bad model directory, ...) behind a Ray task or actor error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, LeanVisionError):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def ray_card(predictor_factory: PredictorFactory, options: PipelineOptions) -> tuple[Any, list]:
    """Start the actors; return the model card (from an actor) and the actors.

    Raises:
        LeanVisionError: the factory failed in the actor with one (e.g. ModelError).
    """
    ray = require("ray", extra="dist", purpose="the Ray engine")
    cpus = options.ray.cpus_per_actor
    count = options.ray.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    actor_class = ray.remote(num_cpus=cpus)(TileWorker)
    actors = [actor_class.remote(predictor_factory, options) for _ in range(count)]
    try:
        return ray.get(actors[0].card.remote()), actors
    except ray.exceptions.RayError as exc:
        for actor in actors:
            ray.kill(actor)
        user = _user_error(exc)
        if user is not None:
            raise user from None
        raise


def run_ray(predictor_factory: PredictorFactory, paths: Sequence[Path], options: PipelineOptions, *,
            book: ImageBook, clock: StageClock, tick: Callable[[], None],
            on_card: Callable[[Any], None]) -> float:
    """Run every image of `paths` on Ray actors, feeding `book`.

    Args:
        on_card: called with the model card (read from an actor) before any result arrives.

    Returns:
        the sum of the actors' peak RSS, MB (an upper bound of their joint peak).
    """
    ray = require("ray", extra="dist", purpose="the Ray engine")
    started = _init_ray(ray, options)
    actors: list = []
    try:
        card, actors = ray_card(predictor_factory, options)
        on_card(card)
        spec = ReadSpec.for_card(options, card)
        collector = _Collector(book, clock)
        _schedule(ray, actors, plan_units(paths, len(actors), spec, book), collector, tick)
        return sum(collector.actor_peaks.values())
    except KeyboardInterrupt:
        book.fail_unfinished(INTERRUPTED)
        raise
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _schedule(ray: Any, actors: list, units: list[WorkUnit], collector: _Collector, tick: Callable[[], None]) -> None:
    """Keep every actor busy with one unit (two queued: no idle gap between units)."""
    todo = list(reversed(units))
    running: dict[Any, int] = {}
    for k in [k for k in range(len(actors)) for _ in range(2)]:
        if todo:
            running[actors[k].run.remote(todo.pop())] = k
    while running:
        done, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
        tick()
        for ref in done:
            k = running.pop(ref)
            collector.add(k, ray.get(ref))
            if todo:
                running[actors[k].run.remote(todo.pop())] = k
