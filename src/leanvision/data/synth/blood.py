"""A 3-class blood-smear detection set shaped like the public blood-cell sets (BCCD-like).

640 x 480 images; red cells (`rbc`, 64-92 px, about 85 % of the boxes, overlapping each
other), one white cell (`wbc`, 110-160 px; two in one image of ten) and 0-4 platelets
(`platelet`, 16-28 px) per image: about 13 boxes an image. It checks what the one-class S0
tiles cannot: a dominant class beside a rare large one and a tiny one, the three ends where
a detector's anchors, assignment and class balance can make a whole class collapse (issue 16:
platelets scored 0.00 AP@0.5 in one run on the real set, white cells 0.14 in another).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from leanvision.core import Detections
from leanvision.data.formats.coco import write_coco
from leanvision.data.formats.detection import DetectionSet, ImageRecord
from leanvision.data.synth.cells import CellKind, Cells, blood_cells
from leanvision.data.synth.common import Progress, report, rng_for, split_summary, write_jpeg
from leanvision.data.synth.cytology import Scene, Workspace, random_stain, render_region

CLASSES = ("rbc", "wbc", "platelet")
WIDTH, HEIGHT = 640, 480
_KIND_LABEL = {CellKind.RBC: 0, CellKind.WBC: 1, CellKind.PLATELET: 2}
_TRIES = 60  # rejection-sampling draws per cell


def _place(rng: np.random.Generator, kind: CellKind, count: int, taken: list[tuple[float, float, float]],
           overlap: float, inside: bool) -> Cells:
    """Up to `count` cells of `kind` whose centres keep `overlap` x (r1 + r2) from every
    cell in `taken` (x, y, radius; appended to). `inside`: the whole cell lies in the image."""
    cells = blood_cells(rng, kind, np.zeros(count), np.zeros(count))
    keep, xs, ys = [], [], []
    for i, radius in enumerate(cells.rx):
        margin = float(radius) + 4 if inside else 0.0
        for _ in range(_TRIES):
            x, y = rng.uniform(margin, WIDTH - margin), rng.uniform(margin, HEIGHT - margin)
            if all(np.hypot(x - tx, y - ty) >= overlap * (radius + tr) for tx, ty, tr in taken):
                taken.append((x, y, float(radius)))
                keep.append(i)
                xs.append(x)
                ys.append(y)
                break
    placed = cells.take(np.asarray(keep, np.int64))
    shift_x = np.asarray(xs, np.float32) - placed.cx
    shift_y = np.asarray(ys, np.float32) - placed.cy
    return dataclasses.replace(placed, cx=placed.cx + shift_x, cy=placed.cy + shift_y,
                               nx=placed.nx + shift_x, ny=placed.ny + shift_y)


def smear_scene(rng: np.random.Generator) -> Scene:
    """A random smear: white cells first (whole, apart), platelets, then red cells around them."""
    taken: list[tuple[float, float, float]] = []
    layers = [
        _place(rng, CellKind.WBC, 2 if rng.random() < 0.1 else 1, taken, 1.0, inside=True),
        _place(rng, CellKind.PLATELET, int(rng.integers(0, 5)), taken, 1.0, inside=True),
        # Red cells overlap each other (not the others) by up to a quarter of their radii,
        # so two boxes stay below IoU 0.25; a red cell may be cut by the border.
        _place(rng, CellKind.RBC, int(rng.integers(9, 18)), taken, 0.75, inside=False),
    ]
    return Scene(WIDTH, HEIGHT, random_stain(rng), Cells.concat(layers), seed=int(rng.integers(1 << 31)))


def labelled_boxes(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """((M, 4) float32 xyxy boxes clipped to the image, (M,) int64 labels) of every cell."""
    cells = scene.cells
    labels = np.array([_KIND_LABEL[CellKind(k)] for k in cells.kind], np.int64)
    limit = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float32)
    return np.clip(cells.boxes(), 0, limit), labels


def make_smear(seed: int, split: str, index: int,
               workspace: Workspace | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image `index` of `split`: ((480, 640, 3) uint8 RGB, (M, 4) xyxy boxes, (M,) labels)."""
    rng = rng_for(seed, "blood", split, index)
    scene = smear_scene(rng)
    rgb = render_region(scene, 0, 0, WIDTH, HEIGHT, rng, workspace)
    boxes, labels = labelled_boxes(scene)
    return rgb, boxes, labels


def write_smears(out: Path, split: str, count: int, *, seed: int, progress: Progress | None) -> dict[str, int]:
    """Write `count` smear images as a COCO set in `out` (annotations.json + images/)."""
    records, workspace = [], Workspace()
    for index in range(count):
        rgb, boxes, labels = make_smear(seed, split, index, workspace)
        name = f"blood_{index:05d}.jpg"
        write_jpeg(out / "images" / name, rgb)
        records.append(ImageRecord(name, WIDTH, HEIGHT, Detections.from_boxes(boxes, labels), index + 1))
        report(progress, split, index + 1, count)
    dataset = DetectionSet(CLASSES, records, out / "images")
    write_coco(dataset, out)
    return split_summary(count, dataset.num_objects)
