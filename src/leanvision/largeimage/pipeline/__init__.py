"""The large-image pipeline: reader processes -> shared memory -> batched async inference -> merge.

    from leanvision.largeimage.pipeline import PipelineOptions, TilingOptions, run_pipeline
    summary = run_pipeline(predictor, ["slides/"], out_dir="out",
                           options=PipelineOptions(tiling=TilingOptions(window=1600, drop_border=400)))
    summary.images, summary.tiles_per_s, summary.stage_seconds

Modules: `options` (what can be set), `reading` (reader processes, tiles into slots),
`slots` (the shared-memory ring), `infer` (batching, requests in flight, post-processing
thread), `collect` (per-image bookkeeping, merge and write), `outputs` (file formats),
`local` and `distributed` (the two engines), `stats` (stage timers, peak memory), `run`.
"""

from leanvision.largeimage.pipeline.collect import Failure
from leanvision.largeimage.pipeline.options import (
    EngineKind,
    PipelineOptions,
    RayOptions,
    StartMethod,
    TilingOptions,
)
from leanvision.largeimage.pipeline.outputs import ImageResult
from leanvision.largeimage.pipeline.run import (
    SUMMARY_FILE,
    PipelineInterrupted,
    PipelineSummary,
    ProgressInfo,
    run_pipeline,
)

__all__ = [
    "SUMMARY_FILE",
    "EngineKind",
    "Failure",
    "ImageResult",
    "PipelineInterrupted",
    "PipelineOptions",
    "PipelineSummary",
    "ProgressInfo",
    "RayOptions",
    "StartMethod",
    "TilingOptions",
    "run_pipeline",
]
