"""Whole-slide cytology images for the large-image pipeline, written in bounded memory.

A slide is one `Scene` (a global, seeded cell table) rendered tile by tile, so memory does
not grow with the slide: 512 px tiles go into a temporary uncompressed tiled TIFF
(tifffile), and libvips, which streams, turns that into the pyramidal JPEG TIFF and the
baseline JPEG; both come from the same pixels. Measured with benchmarks/synth_slide.py
(2 cores): 12000 px in 10 s (10 s CPU), peak RSS 167 MB; 40000 px peak RSS 427 MB.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from leanvision.core import Detections
from leanvision.core.deps import require
from leanvision.core.io import atomic_path
from leanvision.data.formats.coco import write_coco
from leanvision.data.formats.detection import DetectionSet, ImageRecord
from leanvision.data.synth.cells import (
    ABNORMAL_SPACING,
    Cells,
    abnormal_cells,
    cluster_points,
    inflammatory_cells,
    normal_cells,
    spaced,
)
from leanvision.data.synth.common import Progress, report, rng_for, split_summary
from leanvision.data.synth.cytology import Scene, Workspace, density_at, random_stain, render_region
from leanvision.data.synth.detect import CLASSES, TILE_SIZE

if TYPE_CHECKING:
    import pyvips

TILE = 512  # TIFF tile side, px
MIN_SIZE = 1000
MAX_SIZE = 65500  # the JPEG format's limit on a side
# Below 90, libvips stores JPEG tiles as YCbCr 4:2:0 like slide scanners do: 2.7x smaller
# TIFFs than at 90 (RGB), mean error 1.3 grey levels (measured on a 3000 px crop).
QUALITY = 85
MICRONS_PER_PIXEL = 0.5  # the scale the cell sizes in cells.py were chosen for
_DENSITY_SCALE = 1600.0  # px: size of the crowded and empty areas
_CELLS_PER_TILE = 150  # normal cells per 800 px tile where the density is 1
_ABNORMAL_PER_12K = 400  # drawn on a 12000 px slide (scales with area); spacing keeps ~3/4
_PURPOSE = "writing synthetic slides"


def _thinned(rng: np.random.Generator, points: np.ndarray, seed: int) -> np.ndarray:
    """Keep each (N, 2) point with probability equal to the density of scene `seed` there."""
    keep = rng.random(len(points)) < density_at(points[:, 0], points[:, 1], _DENSITY_SCALE, seed)
    return points[keep]


def _clusters(rng: np.random.Generator, size: int, count: int, seed: int, members: tuple[int, int],
              spread: float) -> np.ndarray:
    """Points in `count` groups whose centres lie in crowded areas, inside the slide."""
    centres = _thinned(rng, rng.uniform(TILE_SIZE / 8, size - TILE_SIZE / 8, (count * 4, 2)), seed)[:count]
    return cluster_points(rng, centres, rng.integers(*members, len(centres)), spread)


def slide_scene(rng: np.random.Generator, size: int) -> Scene:
    """A `size` x `size` px slide: crowded and empty areas, abnormal cells in groups."""
    stain, seed = random_stain(rng), int(rng.integers(1 << 31))
    tiles = size * size / TILE_SIZE**2
    scattered = _thinned(rng, rng.uniform(0, size, (int(tiles * _CELLS_PER_TILE * 0.6), 2)), seed)
    sheets = _clusters(rng, size, int(tiles * 1.5), seed, (10, 40), 80.0)
    normal = np.concatenate([scattered, sheets])
    inflammatory = _clusters(rng, size, int(tiles * 1.5), seed, (3, 25), 25.0)
    n_abnormal = max(12, round(_ABNORMAL_PER_12K * size * size / 12000**2))
    edge = TILE_SIZE / 8
    abnormal = np.clip(_clusters(rng, size, max(1, n_abnormal // 3), seed, (1, 6), 40.0), edge, size - edge)
    abnormal = spaced(abnormal, ABNORMAL_SPACING)
    cells = Cells.concat([
        normal_cells(rng, normal[:, 0], normal[:, 1]),
        inflammatory_cells(rng, inflammatory[:, 0], inflammatory[:, 1]),
        abnormal_cells(rng, abnormal[:, 0], abnormal[:, 1]),
    ])
    return Scene(size, size, stain, cells, seed=seed, density_scale=_DENSITY_SCALE)


def _tiles(scene: Scene, seed: int, index: int, progress: Progress | None) -> Iterator[np.ndarray]:
    """(TILE, TILE, 3) uint8 tiles in row-major order.

    Edge tiles are rendered whole (the scene simply goes on past the slide's edge), so every
    region has one size and the workspace is never reallocated.
    """
    rows, cols = -(-scene.height // TILE), -(-scene.width // TILE)
    workspace = Workspace()
    for row in range(rows):
        for col in range(cols):
            rng = rng_for(seed, "slides", index, row, col)
            yield render_region(scene, col * TILE, row * TILE, TILE, TILE, rng, workspace)
        report(progress, f"slide_{index:03d}", row + 1, rows + 2)


def _write_base(scene: Scene, path: Path, seed: int, index: int, progress: Progress | None) -> None:
    """The full-resolution pixels as an uncompressed tiled TIFF (a temporary, W * H * 3 bytes).

    Uncompressed because pyvips-binary's libtiff reads neither zstd nor lzma, and deflate
    made a 12000 px slide 2.7x slower to write (measured here).
    """
    tifffile = require("tifffile", extra="io", purpose=_PURPOSE)
    tifffile.imwrite(
        path, _tiles(scene, seed, index, progress), shape=(scene.height, scene.width, 3),
        dtype=np.uint8, tile=(TILE, TILE), photometric="rgb", metadata=None, bigtiff=True,
    )


def _open(base: Path) -> pyvips.Image:
    pyvips = require("pyvips", extra="io", purpose=_PURPOSE)
    # fail_on="error": without it libvips returns black tiles for a codec it lacks.
    return pyvips.Image.new_from_file(os.fspath(base), access="sequential", fail_on="error")


def _encode_tiff(base: Path, tif_path: Path) -> None:
    """Pyramidal JPEG TIFF from `base`: 512 px tiles, levels halving down to one tile."""
    pixels_per_mm = 1000 / MICRONS_PER_PIXEL
    image = _open(base).copy(xres=pixels_per_mm, yres=pixels_per_mm)
    # BigTIFF once the raw pixels pass 2 GiB: JPEG rarely compresses less than 2:1, so
    # smaller slides stay classic TIFF, which every reader opens.
    bigtiff = image.width * image.height * 3 > 2**31
    with atomic_path(tif_path) as tmp:
        # Levels as top-level IFDs, not SubIFDs: OpenSlide's generic-tiff reads only those.
        image.tiffsave(os.fspath(tmp), tile=True, tile_width=TILE, tile_height=TILE, pyramid=True,
                       depth="onetile", compression="jpeg", Q=QUALITY, bigtiff=bigtiff, resunit="cm")


def _encode_jpeg(base: Path, jpg_path: Path) -> None:
    """Baseline JPEG (4:2:0) from `base`."""
    with atomic_path(jpg_path) as tmp:
        _open(base).jpegsave(os.fspath(tmp), Q=QUALITY, subsample_mode="on")


def write_slide(scene: Scene, tif_path: Path, jpg_path: Path, *, seed: int, index: int,
                progress: Progress | None = None) -> None:
    """Render `scene` into a pyramidal tiled TIFF and a JPEG with the same pixels.

    Peak memory is a few tiles plus libvips' buffers, whatever the slide size.
    Progress is reported per row of tiles, then once per encoded file.
    """
    require("pyvips", extra="io", purpose=_PURPOSE)  # fail before rendering, not after
    fd, name = tempfile.mkstemp(prefix=f".{tif_path.stem}.", suffix=".base.tif", dir=tif_path.parent)
    os.close(fd)
    base, stage, rows = Path(name), f"slide_{index:03d}", -(-scene.height // TILE)
    try:
        _write_base(scene, base, seed, index, progress)
        _encode_tiff(base, tif_path)
        report(progress, stage, rows + 1, rows + 2)
        _encode_jpeg(base, jpg_path)
        report(progress, stage, rows + 2, rows + 2)
    finally:
        base.unlink(missing_ok=True)


def write_slides(out: Path, count: int, size: int, *, seed: int, progress: Progress | None) -> dict[str, int]:
    """Write `count` slides into `out/images/` and list each twice (TIFF, JPEG) in COCO.

    The returned summary counts images and boxes in the COCO file, so both files of a slide.
    """
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        scene = slide_scene(rng_for(seed, "detect", "slides", index), size)
        stem = f"slide_{index:03d}"
        write_slide(scene, out / "images" / f"{stem}.tif", out / "images" / f"{stem}.jpg",
                    seed=seed, index=index, progress=progress)
        boxes = scene.abnormal_boxes()
        targets = Detections.from_boxes(boxes, np.zeros(len(boxes), np.int64))
        for suffix in ("tif", "jpg"):
            records.append(ImageRecord(f"{stem}.{suffix}", size, size, targets, len(records) + 1))
    dataset = DetectionSet(CLASSES, records, out / "images")
    write_coco(dataset, out)
    return split_summary(len(records), dataset.num_objects)
