"""Cut-and-paste augmentations of S0: RandomShift and ReplaceBackground (+ StainNorm).

Both move targets as patches: the pixel rectangle covering a group of boxes (boxes that
overlap, or lie within the inpainting margin of each other, move together, so a patch
never carries part of an unlabelled neighbour). Patches are pasted only where they
overlap no other target, so boxes stay true to the pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leanvision.core import Config, DataError, Detections
from leanvision.data.augment.common import (
    NegativeSource,
    free_position,
    group_boxes,
    pixel_region,
    read_rgb,
)
from leanvision.data.augment.stain import StainNorm, estimate_white, stain_normalizer
from leanvision.data.formats import DetectionSet

logger = logging.getLogger(__name__)


def _check(p: float, max_tries: int) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be at least 1, got {max_tries}")


def _regions(groups: list[tuple[np.ndarray, np.ndarray]], width: int, height: int) -> np.ndarray:
    """(G, 4) int pixel rectangles covering each group's bounds."""
    return np.array([pixel_region(bounds, width, height) for _, bounds in groups], np.int64).reshape(-1, 4)


def inpaint_region(image: np.ndarray, region: tuple[int, int, int, int], radius: int) -> np.ndarray:
    """Fill the pixel `region` (x0, y0, x1, y1) of `image` in place from its surroundings
    (cv2.inpaint, Telea's method), working on a window around it only. Returns `image`."""
    import cv2

    x0, y0, x1, y1 = region
    h, w = image.shape[:2]
    pad = radius + 2
    wx0, wy0, wx1, wy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    window = np.ascontiguousarray(image[wy0:wy1, wx0:wx1])
    mask = np.zeros(window.shape[:2], np.uint8)
    mask[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = 255
    image[wy0:wy1, wx0:wx1] = cv2.inpaint(window, mask, radius, cv2.INPAINT_TELEA)
    return image


@dataclass(frozen=True)
class RandomShift(Config):
    """S0's RandomShift: with probability `p`, move one target to a free place.

    A random group of targets (see the module docstring; `inpaint_radius` is the margin)
    is cut out, its hole filled with cv2.inpaint, and pasted at a random position where it
    overlaps no other target; its boxes move with it. If no free place is found in
    `max_tries` draws the sample is returned unchanged.
    """

    p: float = 0.5
    max_tries: int = 20
    inpaint_radius: int = 3

    def __post_init__(self) -> None:
        _check(self.p, self.max_tries)
        if self.inpaint_radius < 1:
            raise ValueError(f"inpaint_radius must be at least 1, got {self.inpaint_radius}")

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        if not len(targets) or rng.random() >= self.p:
            return image, targets
        h, w = image.shape[:2]
        groups = group_boxes(targets.boxes, margin=self.inpaint_radius + 1)
        regions = _regions(groups, w, h)
        chosen = int(rng.integers(len(groups)))
        x0, y0, x1, y1 = (int(v) for v in regions[chosen])
        others = np.delete(regions, chosen, axis=0)
        position = free_position((x1 - x0, y1 - y0), (w, h), others, rng, tries=self.max_tries)
        if position is None:
            return image, targets
        patch = image[y0:y1, x0:x1].copy()
        out = inpaint_region(image.copy(), (x0, y0, x1, y1), self.inpaint_radius)
        nx, ny = position
        out[ny:ny + patch.shape[0], nx:nx + patch.shape[1]] = patch
        boxes = targets.boxes.copy()
        members = groups[chosen][0]
        boxes[members] += np.array([nx - x0, ny - y0, nx - x0, ny - y0], np.float32)
        return out, Detections(boxes, targets.scores, targets.labels).clip(w, h)


@dataclass(frozen=True)
class ReplaceBackgroundConfig(Config):
    """Recipe parameters of `ReplaceBackground` (its negatives come from the dataset)."""

    p: float = 0.5
    stain_norm: StainNorm | None = StainNorm.MACENKO
    max_tries: int = 20

    def __post_init__(self) -> None:
        _check(self.p, self.max_tries)


class ReplaceBackground:
    """S0's ReplaceBackground + StainNorm: paste an image's targets onto a negative image.

    With probability `p`, a negative image is drawn from `negatives`; each group of
    targets (overlapping boxes move together) is cut from the image, recoloured to the
    negative's stain style (`stain_norm`), and pasted at a random place of the negative
    where it overlaps no patch pasted before. The sample becomes the negative image (its
    size) with the pasted boxes. Groups that find no free place in `max_tries` draws are
    left out, with their boxes: their pixels are not in the new image. If none fits, the
    sample is returned unchanged.

    Macenko is the default: it maps stain colours and concentrations and keeps the cell's
    texture, where Reinhard gives the patch the whole negative image's contrast (a cell
    patch is far more contrasted than a mostly empty background, so it would be washed out).
    """

    def __init__(
        self,
        negatives: NegativeSource,
        *,
        p: float = 0.5,
        stain_norm: StainNorm | str | None = StainNorm.MACENKO,
        max_tries: int = 20,
    ) -> None:
        self.config = ReplaceBackgroundConfig(p=p, stain_norm=stain_norm, max_tries=max_tries)
        self.negatives = negatives

    @classmethod
    def from_config(cls, config: ReplaceBackgroundConfig, negatives: NegativeSource) -> ReplaceBackground:
        return cls(negatives, p=config.p, stain_norm=config.stain_norm, max_tries=config.max_tries)

    def __repr__(self) -> str:
        return f"ReplaceBackground({self.config.to_dict()})"

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        if not len(targets) or rng.random() >= self.config.p:
            return image, targets
        background = np.array(self.negatives(rng), dtype=np.uint8, copy=True)
        source_white = estimate_white(image) if self.config.stain_norm is StainNorm.MACENKO else None
        recolour = stain_normalizer(self.config.stain_norm, background, source_white=source_white)
        h, w = image.shape[:2]
        groups = group_boxes(targets.boxes)
        regions = _regions(groups, w, h)
        placed: list[np.ndarray] = []
        boxes, keep = [], []
        for g in rng.permutation(len(groups)):
            x0, y0, x1, y1 = (int(v) for v in regions[g])
            occupied = np.array(placed, np.float64).reshape(-1, 4)
            position = free_position((x1 - x0, y1 - y0), (background.shape[1], background.shape[0]),
                                     occupied, rng, tries=self.config.max_tries)
            if position is None:
                continue
            patch = image[y0:y1, x0:x1]
            nx, ny = position
            background[ny:ny + y1 - y0, nx:nx + x1 - x0] = recolour(patch) if recolour else patch
            placed.append(np.array([nx, ny, nx + x1 - x0, ny + y1 - y0], np.float64))
            members = groups[g][0]
            boxes.append(targets.boxes[members] + np.array([nx - x0, ny - y0] * 2, np.float32))
            keep.append(members)
        if not keep:
            return image, targets
        members = np.concatenate(keep)
        out = Detections(np.concatenate(boxes), targets.scores[members], targets.labels[members])
        return background, out.clip(background.shape[1], background.shape[0])


class ImagePool:
    """A `NegativeSource` over image files: each call decodes one, chosen by the rng.

    Unreadable files are logged, remembered and not drawn again; DataError if none is
    readable. Decoding happens per call (negatives of S0's kind are whole ROI images,
    too large to keep many in memory).
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        if not paths:
            raise DataError("the pool of negative images is empty")
        self.paths = [Path(p) for p in paths]
        self._bad: set[int] = set()

    @classmethod
    def from_folder(cls, folder: Path) -> ImagePool:
        """The images below `folder` (recursively); DataError if there are none."""
        from leanvision.data.images import list_images

        paths = list(list_images(Path(folder))) if Path(folder).is_dir() else []
        if not paths:
            raise DataError("no negative images in this folder", path=folder)
        return cls(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        start = int(rng.integers(len(self.paths)))
        for step in range(len(self.paths)):
            index = (start + step) % len(self.paths)
            if index in self._bad:
                continue
            try:
                return read_rgb(self.paths[index])
            except DataError as exc:
                logger.warning("skipping unreadable negative image: %s", exc)
                self._bad.add(index)
        raise DataError(f"none of the {len(self.paths)} negative images can be read",
                        path=self.paths[0].parent)


def negative_pool(dataset: DetectionSet) -> ImagePool | None:
    """An `ImagePool` of the dataset's negative images (no boxes), or None if it has none."""
    paths = [dataset.image_path(r) for r in dataset.images if not len(r.targets)]
    return ImagePool(paths) if paths else None
