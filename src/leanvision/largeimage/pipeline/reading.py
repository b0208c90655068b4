"""Reading images into tiles: the reader process of the local engine, and the in-process
reading the Ray actors and the reference loop share.

A reader process takes image jobs from a queue, opens each image (`open_reader`, one
reader at a time, its whole-image decode buffer reused through a `Scratch`), plans its
grid, and for each tile takes a free shared-memory slot, decodes the tile into it at the
model input size and sends `(TILE, image, tile, slot, hw)`. Messages, in order per image:

    (START, image_id, (w, h), tiles)     size after orientation, the planned tiles
    (TILE, image_id, tile_index, slot, hw)  one per tile, tile pixels in slot `slot`
                                         (`SlotRing.view(slot, hw)`: hw = (out_h, out_w))
    (END, image_id, preview or None)     every tile sent; the preview pixels if asked
    (FAIL, image_id, reason)             at any point: the image is dropped
    (EXIT, worker_id, wall, cpu)         the process is done; its read-stage totals

Readers ignore SIGINT: on Ctrl-C the main process stops them through `stop`, so a tile
is never left half-written in a slot that is later read.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import ModelCard
from leanvision.core.enums import ResizeMode
from leanvision.core.errors import ConfigError, LeanVisionError
from leanvision.core.tasks import deploy_task
from leanvision.largeimage.grid import Tile, plan_whole_image
from leanvision.largeimage.pipeline.options import PipelineOptions, TilingOptions
from leanvision.largeimage.pipeline.slots import SlotRing
from leanvision.largeimage.pipeline.stats import StageClock
from leanvision.largeimage.readers import Reader, Scratch, open_reader
from leanvision.largeimage.readers.base import one_line

START, TILE, END, FAIL, EXIT = "start", "tile", "end", "fail", "exit"
_POLL = 0.1  # s: how often a waiting reader checks the stop flag


@dataclass(frozen=True)
class ReadSpec:
    """What a reader needs to turn a path into tiles (picklable, sent to workers).

    Attributes:
        options: the pipeline options (tiling, reader kind and options, preview).
        input_wh: (w, h) of the model input: every tile is read at this size.
        window_wh: (w, h) of the image region one input covers when `options` name no
            window: the card's `input.window` (input / scale).
        whole_image: the model sees each image whole, fitted by `resize` (the task's
            `core.tasks.DeployTask.whole_image`): one tile per image, no tiling options.
        resize: the card's resize mode (used with `whole_image`).
    """

    options: PipelineOptions
    input_wh: tuple[int, int]
    window_wh: tuple[int, int] | None = None
    whole_image: bool = False
    resize: ResizeMode = ResizeMode.STRETCH

    @classmethod
    def for_card(cls, options: PipelineOptions, card: ModelCard) -> ReadSpec:
        """The spec for a model: windows past an image's border are padded with the card's
        `pad_value`, as the model's inputs were (not `reader_options.fill`)."""
        window_h, window_w = card.input.window
        reader = dataclasses.replace(options.reader_options, fill=card.input.pad_value)
        options = dataclasses.replace(options, reader_options=reader)
        whole = deploy_task(card.task).whole_image
        if whole and options.tiling != TilingOptions():
            raise ConfigError(f"a {card.task.value} model sees each image whole: --window, --overlap, "
                              "--drop-border and --fit-grid do not apply")
        return cls(options, (card.input.width, card.input.height), (window_w, window_h), whole, card.input.resize)

    def open(self, path: Path, scratch: Scratch | None = None) -> Reader:
        return open_reader(path, kind=self.options.reader, options=self.options.reader_options, scratch=scratch)

    def plan(self, reader: Reader) -> list[Tile]:
        if self.whole_image:
            return plan_whole_image(*reader.size, out_size=self.input_wh, mode=self.resize)
        return self.options.tiling.plan(reader.size, self.input_wh, self.window_wh)

    def preview(self, reader: Reader) -> np.ndarray | None:
        """The whole image downscaled for the preview PNG, or None if no preview is asked.

        Read after the tiles: a whole-image decoder reuses its decode at a coarser scale.
        """
        if not self.options.preview:
            return None
        width, height = reader.size
        return reader.read(0, 0, width, height, *self.options.preview_shape(reader.size))


def failure_reason(exc: BaseException) -> str:
    """One line for the `failed` list, without the path (the entry names it)."""
    return exc.message if isinstance(exc, LeanVisionError) else one_line(exc)


def configure_reader_process() -> None:
    """Per-process settings of a reader: one decode thread each (the readers and the
    inference engine share the cores), SIGINT left to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["VIPS_CONCURRENCY"] = "1"  # pyvips starts a thread pool per process otherwise
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


class _Stopped(Exception):
    """The main process asked the readers to stop."""


def _free_slot(free: Any, stop: Any) -> int:
    while True:
        try:
            return free.get(timeout=_POLL)
        except queue.Empty:
            if stop.is_set():
                raise _Stopped from None


def _read_tiles(reader: Reader, tiles: list[Tile], image_id: int, ring: SlotRing, channels: dict,
                clock: StageClock) -> None:
    for index, tile in enumerate(tiles):
        slot = _free_slot(channels["free"], channels["stop"])
        try:
            with clock.process_stage("read"):
                reader.read(*tile.window, tile.out_w, tile.out_h, out=ring.view(slot, (tile.out_h, tile.out_w)))
        except BaseException:
            channels["free"].put(slot)
            raise
        channels["out"].put((TILE, image_id, index, slot, (tile.out_h, tile.out_w)))


def _read_image(image_id: int, path: Path, spec: ReadSpec, ring: SlotRing, channels: dict,
                scratch: Scratch, clock: StageClock) -> None:
    out = channels["out"]
    try:
        with clock.process_stage("read"):
            reader = spec.open(path, scratch)
        with reader:
            tiles = spec.plan(reader)
            out.put((START, image_id, reader.size, tiles))
            _read_tiles(reader, tiles, image_id, ring, channels, clock)
            with clock.process_stage("read"):
                preview = spec.preview(reader)
        out.put((END, image_id, preview))
    except _Stopped:
        raise
    except Exception as exc:  # any failure on one image is that image's, reported and skipped
        out.put((FAIL, image_id, failure_reason(exc)))


def reader_process(worker_id: int, spec: ReadSpec, ring_name: str, channels: dict) -> None:
    """Entry point of a reader process.

    Args:
        worker_id: this reader's number, returned in its EXIT message.
        spec: how to read.
        ring_name: the shared-memory block of the tile slots.
        channels: multiprocessing queues `jobs` ((image_id, path) or None), `free` (slot
            indices), `out` (messages to the main process) and the `stop` event.
    """
    configure_reader_process()
    ring = SlotRing.attach(ring_name, (spec.input_wh[1], spec.input_wh[0], 3), spec.options.slot_count)
    clock, scratch = StageClock(), Scratch()
    try:
        while not channels["stop"].is_set():
            job = channels["jobs"].get()
            if job is None:
                break
            _read_image(*job, spec, ring, channels, scratch, clock)
    except _Stopped:
        pass
    finally:
        ring.close()
        wall, cpu = clock.snapshot()
        channels["out"].put((EXIT, worker_id, wall, cpu))


def iter_tiles(path: Path, spec: ReadSpec, clock: StageClock, *, start: int = 0, stop: int | None = None,
               scratch: Scratch | None = None) -> Iterator[tuple[str, Any]]:
    """In-process reading (Ray actors, reference loops): the same events as a reader
    process, with tile pixels in fresh arrays instead of slots.

    Yields:
        (START, (size, tiles)), then (TILE, (index, pixels)) for tiles[start:stop], then
        (END, preview or None); or (FAIL, reason) at the point of failure.
    """
    try:
        with clock.thread_stage("read"):
            reader = spec.open(path, scratch)
        with reader:
            tiles = spec.plan(reader)
            yield START, (reader.size, tiles)
            for index in range(start, len(tiles) if stop is None else min(stop, len(tiles))):
                with clock.thread_stage("read"):
                    pixels = reader.read(*tiles[index].window, tiles[index].out_w, tiles[index].out_h)
                yield TILE, (index, pixels)
            with clock.thread_stage("read"):
                preview = spec.preview(reader) if start == 0 else None
        yield END, preview
    except Exception as exc:
        yield FAIL, failure_reason(exc)
