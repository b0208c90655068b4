"""What every augmentation shares: the op protocol, image decoding, box helpers.

An augmentation is any callable `op(image, targets, rng) -> (image, targets)`:
`image` is an HxWx3 uint8 RGB array, `targets` a `core.Detections` (xyxy float32 pixels
of that image) and `rng` a `np.random.Generator`, the only source of randomness, so the
same generator state gives the same sample. Ops never modify their input arrays.

Pixel convention: pixel (col i, row j) covers [i, i+1) x [j, j+1), so a box [x1, y1, x2, y2]
with integer corners tightly bounds columns x1..x2-1 and rows y1..y2-1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np

from leanvision.core import Detections
from leanvision.data.images import read_rgb as _read_policy

NegativeSource = Callable[[np.random.Generator], np.ndarray]
"""A pool of negative (box-free) images: called with an rng, returns an HxWx3 uint8 RGB image."""


class Augmentation(Protocol):
    def __call__(
        self, image: np.ndarray, targets: Detections, rng: np.random.Generator
    ) -> tuple[np.ndarray, Detections]: ...


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample, from (seed, epoch, index) alone.

    Derived with numpy's SeedSequence, so a sample does not depend on which worker draws
    it, in which order, or whether training was resumed.
    """
    return np.random.default_rng([seed, epoch, index])


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB, or raise DataError naming the file.

    The project's one reading policy (`leanvision.data.images.read_rgb`): what `predict`
    and `data check` read, EXIF orientation applied as they apply it.
    """
    return _read_policy(path)


def clip_boxes(targets: Detections, width: float, height: float, *, min_visibility: float) -> Detections:
    """Clip boxes to [0, width] x [0, height]; drop those that lost too much.

    A box is kept when its clipped area is positive and at least `min_visibility` times its
    area before clipping (so 0.5 drops a cell cut to less than half of itself).
    """
    before = targets.areas
    clipped = targets.clip(width, height)
    after = clipped.areas
    keep = (after > 0) & (after >= np.float32(min_visibility) * before)
    return clipped[keep]


def pixel_region(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixel rectangle (x0, y0, x1, y1), end-exclusive, that covers `box`."""
    x0 = min(max(math.floor(float(box[0])), 0), width)
    y0 = min(max(math.floor(float(box[1])), 0), height)
    x1 = min(max(math.ceil(float(box[2])), x0), width)
    y1 = min(max(math.ceil(float(box[3])), y0), height)
    return x0, y0, x1, y1


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) bool: do (N, 4) and (M, 4) xyxy rectangles share interior area?"""
    return (
        (a[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < a[:, None, 2])
        & (a[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < a[:, None, 3])
    )


def group_boxes(boxes: np.ndarray, *, margin: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Merge boxes into groups whose bounding boxes, grown by `margin`, touch no other group.

    Cut-and-paste ops move a group as one patch: a patch cut around one cell then never
    carries part of an unlabelled neighbour, and (with `margin` = the inpainting radius)
    filling its hole never smears a neighbour into it.

    Returns:
        (member indices, (4,) float64 bounding box of the members) per group.
    """
    from scipy.sparse.csgraph import connected_components

    members = [np.array([i]) for i in range(len(boxes))]
    bounds = np.asarray(boxes, np.float64).reshape(-1, 4)
    while True:
        touch = overlaps(bounds + np.array([-margin, -margin, margin, margin]), bounds)
        np.fill_diagonal(touch, False)
        if not touch.any():
            return list(zip(members, bounds, strict=True))
        # A merged group's bounds can reach a further box: repeat until nothing touches.
        count, label = connected_components(touch | touch.T, directed=False)
        members = [np.concatenate([members[i] for i in np.flatnonzero(label == g)]) for g in range(count)]
        bounds = np.stack([_union(bounds[label == g]) for g in range(count)])


def _union(bounds: np.ndarray) -> np.ndarray:
    return np.concatenate([bounds[:, :2].min(axis=0), bounds[:, 2:].max(axis=0)])


def free_position(
    size: tuple[int, int],
    canvas: tuple[int, int],
    occupied: np.ndarray,
    rng: np.random.Generator,
    *,
    tries: int,
) -> tuple[int, int] | None:
    """A random top-left (x, y) where a `size` (w, h) patch fits in a `canvas` (w, h)
    without overlapping any of the `occupied` (K, 4) xyxy rectangles; None after `tries`."""
    w, h = size
    cw, ch = canvas
    if w > cw or h > ch or w <= 0 or h <= 0:
        return None
    for _ in range(tries):
        x = int(rng.integers(0, cw - w + 1))
        y = int(rng.integers(0, ch - h + 1))
        candidate = np.array([[x, y, x + w, y + h]], np.float64)
        if not len(occupied) or not overlaps(candidate, occupied).any():
            return x, y
    return None


def subsample(image: np.ndarray, max_pixels: int = 1 << 20) -> np.ndarray:
    """A strided view with at most about `max_pixels` pixels, for image statistics."""
    step = max(1, math.ceil(math.sqrt(image.shape[0] * image.shape[1] / max_pixels)))
    return image[::step, ::step]
