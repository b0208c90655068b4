"""Torch-free large-image inference: readers, tile grids, the parallel pipeline and merging. Takes any Predictor; never imports torch or runtime.

    from leanvision.largeimage import PipelineOptions, TilingOptions, run_pipeline

`readers` (windowed, reduced-scale decoding), `grid` (tile planning, pure), `merge` (NMS /
NMM / WBF across tiles, dense stitching), `inputs` (files, folders, globs, list files) and
`pipeline` (reader processes -> shared memory -> batched async inference -> merge).
"""

from leanvision.largeimage.pipeline import (
    EngineKind,
    PipelineInterrupted,
    PipelineOptions,
    PipelineSummary,
    RayOptions,
    TilingOptions,
    run_pipeline,
)

__all__ = [
    "EngineKind",
    "PipelineInterrupted",
    "PipelineOptions",
    "PipelineSummary",
    "RayOptions",
    "TilingOptions",
    "run_pipeline",
]
