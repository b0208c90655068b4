"""S0 detection tiles: 800 px cervical-cytology-like images, one class ("abnormal").

Every fourth tile (index 1, 5, 9, ...) is a negative (no abnormal cell); negatives stay in
the COCO file with no annotations, as hard negatives do in S0's training sets. A fixed
pattern rather than a coin flip, so that any set of four or more tiles has one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leanvision.core import Detections
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
from leanvision.data.synth.common import Progress, report, rng_for, split_summary, write_jpeg
from leanvision.data.synth.cytology import Scene, Workspace, random_stain, render_region

CLASSES = ("abnormal",)
TILE_SIZE = 800
_EDGE = 60  # px: abnormal cells are centred this far inside, so their boxes are whole


def _normal_layer(rng: np.random.Generator, size: int) -> Cells:
    """Normal squamous cells: a scattered part plus one to three denser sheets."""
    spread = rng.uniform(-30, size + 30, (int(rng.integers(30, 90)), 2))
    sheets = rng.uniform(0, size, (int(rng.integers(1, 4)), 2))
    sheet_sizes = rng.integers(10, 40, len(sheets))
    points = np.concatenate([spread, cluster_points(rng, sheets, sheet_sizes, rng.uniform(50, 120, len(sheets)))])
    return normal_cells(rng, points[:, 0], points[:, 1])


def _inflammatory_layer(rng: np.random.Generator, size: int) -> Cells:
    centres = rng.uniform(0, size, (int(rng.integers(0, 4)), 2))
    points = cluster_points(rng, centres, rng.integers(3, 25, len(centres)), 25.0)
    return inflammatory_cells(rng, points[:, 0], points[:, 1])


def _abnormal_layer(rng: np.random.Generator, size: int) -> Cells:
    """One to three groups of one to four abnormal cells, whole inside the tile."""
    centres = rng.uniform(_EDGE, size - _EDGE, (int(rng.integers(1, 4)), 2))
    sizes = np.minimum(rng.geometric(0.55, len(centres)), 4)
    points = np.clip(cluster_points(rng, centres, sizes, 35.0), _EDGE, size - _EDGE)
    points = spaced(points, ABNORMAL_SPACING)
    return abnormal_cells(rng, points[:, 0], points[:, 1])


def tile_scene(rng: np.random.Generator, *, negative: bool, size: int = TILE_SIZE) -> Scene:
    """A random tile: stain, normal and inflammatory cells, abnormal ones unless `negative`."""
    stain = random_stain(rng)
    layers = [_normal_layer(rng, size), _inflammatory_layer(rng, size)]
    if not negative:
        layers.append(_abnormal_layer(rng, size))
    return Scene(size, size, stain, Cells.concat(layers), seed=int(rng.integers(1 << 31)))


def is_negative(index: int) -> bool:
    return index % 4 == 1


def make_tile(seed: int, split: str, index: int,
              workspace: Workspace | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tile `index` of `split`: ((800, 800, 3) uint8 RGB, (M, 4) float32 xyxy boxes)."""
    rng = rng_for(seed, "detect", split, index)
    scene = tile_scene(rng, negative=is_negative(index))
    rgb = render_region(scene, 0, 0, scene.width, scene.height, rng, workspace)
    return rgb, scene.abnormal_boxes()


def write_tiles(out: Path, split: str, count: int, *, seed: int, progress: Progress | None) -> dict[str, int]:
    """Write `count` tiles as a COCO set in `out` (annotations.json + images/)."""
    records, workspace = [], Workspace()
    for index in range(count):
        rgb, boxes = make_tile(seed, split, index, workspace)
        name = f"cyto_{index:05d}.jpg"
        write_jpeg(out / "images" / name, rgb)
        targets = Detections.from_boxes(boxes, np.zeros(len(boxes), np.int64))
        records.append(ImageRecord(name, rgb.shape[1], rgb.shape[0], targets, index + 1))
        report(progress, split, index + 1, count)
    dataset = DetectionSet(CLASSES, records, out / "images")
    write_coco(dataset, out)
    return split_summary(count, dataset.num_objects)
