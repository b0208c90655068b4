"""How each task's tile results become one image's result and its files (the tile mergers
of `core.tasks.DEPLOY_TASKS`).

- detect: the tiles' detections are mapped to image pixels, the keep regions applied and
  merged across tiles (`merge_detections` with each box's tile, so boxes of one tile never
  fuse); `<stem>.json`, `<stem>.csv` and an optional preview are written.
- count: the tiles' density maps are stitched into one map of the image (`DenseStitcher`,
  DENSITY: each tile's count is kept, overlaps are averaged), whose sum is the count;
  `<stem>.json`, optional `<stem>.npy` and preview.
- classify: one tile per image (the task is `whole_image`); its class scores are the
  image's; `<stem>.json` with the top-5 classes.

A merger is `Class(options, card)` with `finish(image, out_dir) -> result`; `image` is the
book's record of one complete image (path, stem, size, tiles, per-tile results, preview).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import ModelCard
from leanvision.core.classes import ClassProbs
from leanvision.core.density import DensityMap
from leanvision.core.detections import Detections
from leanvision.largeimage.grid import Tile
from leanvision.largeimage.merge import (
    DenseKind,
    DenseStitcher,
    MergeOptions,
    merge_detections,
    tiles_to_image,
)
from leanvision.largeimage.pipeline.options import PipelineOptions
from leanvision.largeimage.pipeline.outputs import (
    ClassifyResult,
    CountResult,
    ImageResult,
    write_classify_json,
    write_count_outputs,
    write_image_outputs,
)


def merge_tiles(per_tile: Sequence[Detections], tiles: Sequence[Tile], size: tuple[int, int],
                options: MergeOptions) -> Detections:
    """One image's detections from its tiles' (tile-input pixels): map, keep, merge, then the
    highest-scoring `options.max_detections` kept (the model capped each tile alone)."""
    dets, tile_index = tiles_to_image(per_tile, tiles, size)
    merged = merge_detections(dets, options, tile_index=tile_index)
    if options.max_detections is None or len(merged) <= options.max_detections:
        return merged
    best = np.argsort(-merged.scores, kind="stable")[: options.max_detections]
    return merged[np.sort(best)]


def stitch_density(per_tile: Sequence[DensityMap], tiles: Sequence[Tile], size: tuple[int, int]) -> DensityMap:
    """One image's density map from its tiles' maps (in tile-input pixels).

    The canvas has one cell per model output cell at the grid's scale (stride = window /
    input x the tiles' map stride, in image pixels); each tile's map is placed over its window keeping its
    sum, cropped to the image, and overlaps are averaged (`merge.DenseStitcher`).
    """
    first, tile = per_tile[0], tiles[0]
    # Square canvas cells at the finer of the two axes' strides: a fit grid that stretches
    # the image has different x and y strides; the stitcher resamples keeping each sum.
    stride = min(tile.w / tile.out_w * first.stride[0], tile.h / tile.out_h * first.stride[1])
    stitcher = DenseStitcher(size[0], size[1], stride=stride, kind=DenseKind.DENSITY)
    for tile_map, tile in zip(per_tile, tiles, strict=True):
        stitcher.add(tile, tile_map.density)
    return DensityMap(stitcher.result()[0], stitcher.stride)


class DetectionMerger:
    """detect: merge the tiles' detections, write `<stem>.json` / `.csv` (and preview)."""

    def __init__(self, options: PipelineOptions, card: ModelCard) -> None:
        self.merge = options.merge
        self.class_names = tuple(card.class_names)

    def finish(self, image: Any, out_dir: Path | None) -> ImageResult:
        per_tile = [r if r is not None else Detections.empty() for r in image.results]
        merged = merge_tiles(per_tile, image.tiles, image.size, self.merge)
        result = ImageResult(image.path, image.size[0], image.size[1], merged, len(image.tiles))
        if out_dir is not None:
            write_image_outputs(out_dir, image.stem, result, self.class_names, image.preview)
        return result


class CountMerger:
    """count: stitch the tiles' density maps, write `<stem>.json` (and `.npy`, preview)."""

    def __init__(self, options: PipelineOptions, card: ModelCard) -> None:
        self.density = options.density

    def finish(self, image: Any, out_dir: Path | None) -> CountResult:
        density = stitch_density(image.results, image.tiles, image.size)
        result = CountResult(image.path, image.size[0], image.size[1], density, len(image.tiles))
        if out_dir is not None:
            write_count_outputs(out_dir, image.stem, result, image.preview, density=self.density)
        return result


class ClassifyMerger:
    """classify: the image's one tile is the image; write `<stem>.json` (top-5 with names)."""

    def __init__(self, options: PipelineOptions, card: ModelCard) -> None:
        self.class_names = tuple(card.class_names)

    def finish(self, image: Any, out_dir: Path | None) -> ClassifyResult:
        if len(image.results) != 1:
            raise ValueError(f"a classifier sees an image whole: expected 1 tile, got {len(image.results)}")
        probs = image.results[0]
        if probs.class_names is None:  # a predictor built without the card's names
            probs = ClassProbs(probs.logits, self.class_names)
        result = ClassifyResult(image.path, image.size[0], image.size[1], probs)
        if out_dir is not None:
            write_classify_json(out_dir / f"{image.stem}.json", result)
        return result
