"""`run_pipeline`: images in, merged detections (or stitched density maps) out, with a summary
of what it cost."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanvision.core.errors import ConfigError
from leanvision.core.io import atomic_write_text
from leanvision.core.protocols import Predictor
from leanvision.largeimage.inputs import expand_inputs, output_stems
from leanvision.largeimage.pipeline.collect import INTERRUPTED, Failure, ImageBook, Merger
from leanvision.largeimage.pipeline.options import EngineKind, PipelineOptions
from leanvision.largeimage.pipeline.outputs import CountResult, ImageResult
from leanvision.largeimage.pipeline.stats import (
    STAGES,
    MemoryMonitor,
    StageClock,
    process_cpu_seconds,
)

SUMMARY_FILE = "summary.json"
PredictorFactory = Callable[[], Predictor]
_TICK_SECONDS = 0.1


@dataclass(frozen=True)
class ProgressInfo:
    """Where a run is, for progress bars: images done/failed of total, tiles done/planned
    (planned grows as readers open images), seconds since the start."""

    images_done: int
    images_failed: int
    images_total: int
    tiles_done: int
    tiles_planned: int
    seconds: float


@dataclass
class PipelineSummary:
    """What a run did and what it cost.

    Attributes:
        images: images completed (merged, and written when there is an output folder).
        failed: images not completed, with the reason (corrupt, unreadable, interrupted).
        tiles: tiles inferred.
        seconds: wall time of the whole run (start-up of readers or actors included).
        stage_seconds: wall seconds per stage (read, preprocess, infer, postprocess,
            merge), each summed over the workers doing it (`stats`): they overlap, so
            their sum exceeds `seconds` when the pipeline hides one stage behind another.
        stage_cpu_seconds: CPU seconds per stage; infer is the inference process's CPU
            minus its other measured stages (so it includes batching overhead).
        peak_rss_mb: peak memory of this process and its reader processes (PSS sum,
            sampled) or, for Ray, of the driver plus each actor's peak RSS.
        results: per completed image, in input order: merged detections (`ImageResult`),
            or for a counting model the stitched density map and count (`CountResult`).
        interrupted: the run was stopped by Ctrl-C.
    """

    images: int
    failed: list[Failure]
    tiles: int
    seconds: float
    stage_seconds: dict[str, float]
    stage_cpu_seconds: dict[str, float]
    peak_rss_mb: float
    results: dict[Path, ImageResult | CountResult] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The content of `summary.json`: exactly these fields."""
        return {
            "images": self.images,
            "failed": [{"path": os.fspath(f.path), "reason": f.reason} for f in self.failed],
            "tiles": self.tiles,
            "images_per_s": round(self.images_per_s, 4),
            "tiles_per_s": round(self.tiles_per_s, 3),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


class _Sink:
    """Connects the book to the merger, which exists once the model card is known."""

    def __init__(self, options: PipelineOptions, clock: StageClock, out_dir: Path | None) -> None:
        self.options, self.clock, self.out_dir = options, clock, out_dir
        self.merger: Merger | None = None
        self.tiles = 0

    def open(self, card: Any) -> None:
        self.merger = Merger(self.options, card, self.clock, self.out_dir)

    def complete(self, image_id: int, image: Any) -> None:
        assert self.merger is not None
        self.merger.submit(image_id, image)

    def close(self) -> None:
        if self.merger is not None:
            self.merger.close()


class _Ticker:
    """Reports progress at most every 0.1 s and surfaces merge failures in the driver."""

    def __init__(self, progress: Callable[[ProgressInfo], None] | None, book: ImageBook, sink: _Sink, start: float) -> None:
        self.progress, self.book, self.sink, self.start = progress, book, sink, start
        self.last = 0.0

    def __call__(self) -> None:
        if self.sink.merger is not None:
            self.sink.merger.check()
        self.report()

    def report(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is None or (not force and now - self.last < _TICK_SECONDS):
            return
        self.last = now
        done = len(self.sink.merger.results) if self.sink.merger is not None else 0
        self.progress(ProgressInfo(done, len(self.book.failures), self.book.total, self.book.tiles_done,
                                   self.book.tiles_planned, now - self.start))


def _check_engine_input(predictor: Predictor | PredictorFactory, engine: EngineKind) -> None:
    if engine is EngineKind.RAY and isinstance(predictor, Predictor):
        raise ConfigError("the ray engine needs a picklable predictor factory (e.g. functools.partial("
                          "load_predictor, model_dir)), not a predictor: each actor builds its own")


def _run_engine(predictor: Predictor | PredictorFactory, paths: Sequence[Path], options: PipelineOptions,
                book: ImageBook, sink: _Sink, clock: StageClock, monitor: MemoryMonitor, tick: _Ticker) -> float:
    """Run the chosen engine; returns extra peak memory outside this process tree (Ray actors)."""
    if options.engine is EngineKind.RAY:
        from leanvision.largeimage.pipeline.distributed import run_ray

        return run_ray(predictor, paths, options, book=book, clock=clock, tick=tick, on_card=sink.open)
    from leanvision.largeimage.pipeline.local import run_local

    owned = not isinstance(predictor, Predictor)
    model = predictor() if owned else predictor
    try:
        sink.open(model.card)
        run_local(model, paths, options, book=book, clock=clock, monitor=monitor, tick=tick)
    finally:
        if owned and hasattr(model, "close"):
            model.close()
    return 0.0


def _cpu_by_stage(clock: StageClock, driver_cpu: float, engine: EngineKind) -> dict[str, float]:
    cpu = dict(clock.cpu)
    if engine is EngineKind.LOCAL:  # inference threads are the main process's unmeasured CPU
        cpu["infer"] = max(0.0, driver_cpu - cpu["preprocess"] - cpu["postprocess"] - cpu["merge"])
    return cpu


def _summarize(paths: Sequence[Path], book: ImageBook, merger: Merger | None, clock: StageClock, *,
               interrupted: bool, seconds: float, cpu: dict[str, float], peak_mb: float) -> PipelineSummary:
    results = merger.results if merger is not None else {}
    return PipelineSummary(
        images=len(results),
        failed=[book.failures[i] for i in sorted(book.failures)],
        tiles=book.tiles_done,
        seconds=seconds,
        stage_seconds=dict(clock.wall),
        stage_cpu_seconds=cpu,
        peak_rss_mb=peak_mb,
        results={paths[i]: results[i] for i in sorted(results)},
        interrupted=interrupted,
    )


def run_pipeline(
    predictor: Predictor | PredictorFactory,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    options: PipelineOptions | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> PipelineSummary:
    """Detect (or count) objects in images of any size: read tiles in parallel, infer in
    batches with requests in flight, merge per image (stitch density maps), write results.

    Args:
        predictor: a `Predictor` (a `StagedPredictor` runs its stages on separate threads
            with several requests in flight; a plain one runs on a worker thread), or a
            picklable factory returning one (required by the Ray engine; the local engine
            calls it once and closes what it built).
        inputs: image files, folders, globs and `.txt` list files (`inputs.expand_inputs`).
        options: tiling, merge, readers, batch, requests, engine (`PipelineOptions`).
        out_dir: where `<stem>.json`, `<stem>.csv` (detection), optional `<stem>.npy`
            (counting), optional `<stem>.png` and `summary.json` go; None writes nothing
            (results are in the summary).
        progress: called with a `ProgressInfo` about every 0.1 s.

    Returns:
        the summary, with each completed image's merged detections (or count) in `results`.

    Raises:
        DataError: no input found. ConfigError: bad options.
        PipelineInterrupted: (a KeyboardInterrupt) on Ctrl-C, after a clean stop: finished
            images are written, `summary.json` lists the rest as failed, the exception's
            `summary` holds the same.
    """
    options = options or PipelineOptions()
    _check_engine_input(predictor, options.engine)
    paths = expand_inputs(inputs)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    sink = _Sink(options, clock, out)
    book = ImageBook(paths, output_stems(paths), sink.complete)
    start, cpu0 = time.perf_counter(), process_cpu_seconds()
    tick = _Ticker(progress, book, sink, start)
    interrupted, actors_mb = False, 0.0
    with MemoryMonitor() as monitor:
        try:
            actors_mb = _run_engine(predictor, paths, options, book, sink, clock, monitor, tick)
        except KeyboardInterrupt:  # the engine stopped cleanly (or a second Ctrl-C cut that short)
            interrupted = True
            book.fail_unfinished(INTERRUPTED)
        finally:
            sink.close()
    if sink.merger is not None and not interrupted:
        sink.merger.check()
    summary = _summarize(paths, book, sink.merger, clock, interrupted=interrupted,
                         seconds=time.perf_counter() - start,
                         cpu=_cpu_by_stage(clock, process_cpu_seconds() - cpu0, options.engine),
                         peak_mb=monitor.peak_mb + actors_mb)
    tick.report(force=True)
    if out is not None:
        atomic_write_text(out / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2) + "\n")
    if interrupted:
        raise PipelineInterrupted(summary)
    return summary


class PipelineInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run cleanly; `summary` says what completed (also in summary.json)."""

    def __init__(self, summary: PipelineSummary) -> None:
        super().__init__(f"interrupted after {summary.images} images")
        self.summary = summary


__all__ = ["STAGES", "PipelineInterrupted", "PipelineSummary", "ProgressInfo", "run_pipeline"]
