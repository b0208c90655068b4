"""Per-image bookkeeping and the merge/write step.

`ImageBook` gathers the results of each image's tiles as they come back (in any order,
from the post-processing thread) and, once the image's reader has finished and every tile
has its result, hands the image to the `Merger`. The merger runs on its own thread and
hands each image to the merger of the card's task (`core.tasks.DEPLOY_TASKS`, the classes in
`pipeline.tasks`), which merges the tiles' results and writes the outputs. Both engines
(local, Ray) feed the same book, so they merge identically.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leanvision.core.card import ModelCard
from leanvision.core.density import DensityMap
from leanvision.core.detections import Detections
from leanvision.core.tasks import deploy_task, load_object
from leanvision.largeimage.grid import Tile
from leanvision.largeimage.pipeline.options import PipelineOptions
from leanvision.largeimage.pipeline.outputs import CountResult, ImageResult
from leanvision.largeimage.pipeline.stats import StageClock

TileResult = Detections | DensityMap  # what a predictor returns for one tile (tile-input pixels)

INTERRUPTED = "interrupted before it finished (Ctrl-C)"


@dataclass(frozen=True)
class Failure:
    """An image the pipeline could not finish: its path and why, on one line."""

    path: Path
    reason: str


@dataclass
class _Image:
    path: Path
    stem: str
    size: tuple[int, int] | None = None
    tiles: list[Tile] = field(default_factory=list)
    results: list[TileResult | None] = field(default_factory=list)
    received: int = 0
    read_done: bool = False
    preview: np.ndarray | None = None


class ImageBook:
    """Which tiles of which image are done; complete images go to `on_complete`.

    Every method may be called from any thread. Images are identified by their index in
    `paths`.
    """

    def __init__(self, paths: Sequence[Path], stems: Sequence[str], on_complete: Callable[[int, _Image], None]) -> None:
        self._images = {i: _Image(p, s) for i, (p, s) in enumerate(zip(paths, stems, strict=True))}
        self.total = len(self._images)
        self._on_complete = on_complete
        self._lock = threading.Lock()
        self.failures: dict[int, Failure] = {}
        self.completed = 0
        self.tiles_planned = 0
        self.tiles_done = 0

    def start(self, image_id: int, size: tuple[int, int], tiles: list[Tile]) -> None:
        with self._lock:
            image = self._images.get(image_id)
            if image is not None and image.size is None:
                image.size, image.tiles = (int(size[0]), int(size[1])), list(tiles)
                image.results = [None] * len(tiles)
                self.tiles_planned += len(tiles)

    def tile(self, image_id: int, index: int, dets: TileResult) -> None:
        with self._lock:
            self.tiles_done += 1
            image = self._images.get(image_id)
            if image is None:  # the image failed after this tile was read
                return
            if image.results[index] is None:
                image.received += 1
            image.results[index] = dets
        self._complete_if_done(image_id)

    def end(self, image_id: int, preview: np.ndarray | None = None) -> None:
        with self._lock:
            image = self._images.get(image_id)
            if image is None:
                return
            image.read_done, image.preview = True, preview
        self._complete_if_done(image_id)

    def fail(self, image_id: int, reason: str) -> None:
        with self._lock:
            image = self._images.pop(image_id, None)
            if image is not None:
                self.failures[image_id] = Failure(image.path, reason)

    def _complete_if_done(self, image_id: int) -> None:
        with self._lock:
            image = self._images.get(image_id)
            if image is None or not image.read_done or image.received < len(image.tiles):
                return
            del self._images[image_id]
            self.completed += 1
        self._on_complete(image_id, image)

    def fail_unfinished(self, reason: str) -> None:
        """Report every image not completed (on Ctrl-C): it is in `failures` with `reason`."""
        with self._lock:
            for image_id, image in self._images.items():
                self.failures[image_id] = Failure(image.path, reason)
            self._images.clear()

    def tile_counts(self, image_id: int) -> tuple[int, int] | None:
        """(tiles with results, tiles planned) of an image still open, else None."""
        with self._lock:
            image = self._images.get(image_id)
            return None if image is None or image.size is None else (image.received, len(image.tiles))


class Merger:
    """Merges and writes complete images on a background thread (`merge` stage).

    Args:
        options: the pipeline options (how detections are merged, which files to write).
        card: the model's card: its task picks how tiles are merged and written.
        clock: receives the merge stage's wall and CPU time (merge + writing).
        out_dir: where outputs go; None: results are only kept in memory.
    """

    def __init__(self, options: PipelineOptions, card: ModelCard, clock: StageClock, out_dir: Path | None) -> None:
        self.options = options
        self.task = load_object(deploy_task(card.task).tile_merger)(options, card)
        self.clock = clock
        self.out_dir = out_dir
        self.results: dict[int, ImageResult | CountResult] = {}
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="leanvision-merge", daemon=True)
        self._thread.start()

    def submit(self, image_id: int, image: _Image) -> None:
        self._queue.put((image_id, image))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            image_id, image = item
            try:
                with self.clock.thread_stage("merge"):
                    self._finish(image_id, image)
            except BaseException as exc:  # re-raised by `check` in the driving thread
                self.error = self.error or exc
            finally:
                self._queue.task_done()

    def _finish(self, image_id: int, image: _Image) -> None:
        assert image.size is not None
        self.results[image_id] = self.task.finish(image, self.out_dir)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Finish every submitted image, then stop the thread."""
        self._queue.put(None)
        self._thread.join()
