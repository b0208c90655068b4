"""Geometric augmentations: S0's OnlineCropResize, flips, and fitting to the input size.

Each op is a frozen `Config` dataclass (its fields are its recipe parameters, checked on
construction) with a `__call__(image, targets, rng)`; the pixel work is in plain functions
(`crop_resize`, `flip`, `fit_to_size`) that take the drawn parameters, so tests and other
ops can apply exactly the same geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leanvision.core import Config, ConfigError, Detections, ResizeMode
from leanvision.core.letterbox import fit
from leanvision.data.augment.common import clip_boxes


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2 resize with area averaging when shrinking (no aliasing) and bilinear otherwise."""
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_padded(image: np.ndarray, x0: int, y0: int, width: int, height: int, fill: int) -> np.ndarray:
    """The window [x0, x0+width) x [y0, y0+height) of `image`; parts outside it are `fill`."""
    h, w = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + width <= w and y0 + height <= h:
        return image[y0:y0 + height, x0:x0 + width]
    out = np.full((height, width, image.shape[2]), fill, image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + width, w), min(y0 + height, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def crop_resize(
    image: np.ndarray,
    targets: Detections,
    window: tuple[int, int],
    *,
    crop: int,
    size: int,
    min_visibility: float = 0.5,
    fill: int = 0,
) -> tuple[np.ndarray, Detections]:
    """Cut the `crop` x `crop` window at top-left `window` (x, y) and resize it to `size`.

    The window may extend past the image; the outside is `fill`, so the scale is always
    `size / crop`. Boxes are clipped to the window; those keeping less than
    `min_visibility` of their area are dropped.

    Returns:
        (size, size, 3) uint8 image and its boxes in its pixels.
    """
    x0, y0 = window
    patch = crop_padded(image, x0, y0, crop, crop, fill)
    boxes = clip_boxes(targets.shift(-x0, -y0), crop, crop, min_visibility=min_visibility)
    return np.ascontiguousarray(_resize(patch, size, size)), boxes.scale(size / crop)


def _axis_range(lo_box: float, hi_box: float, extent: int, crop: int) -> tuple[int, int]:
    """Window starts along one axis that hold [lo_box, hi_box] and stay in the image where
    the image is large enough (else cover all of it); inside the box if it exceeds `crop`."""
    lo = max(math.ceil(hi_box) - crop, min(0, extent - crop))
    hi = min(math.floor(lo_box), max(0, extent - crop))
    return (lo, hi) if lo <= hi else (hi, lo)


@dataclass(frozen=True)
class OnlineCropResize(Config):
    """S0's OnlineCropResize: a `crop` px window around a random target, resized to `size`.

    With probability `p_target` (and if the image has targets) the window holds one
    randomly chosen target entirely, at a random position around it (a target larger than
    the window gets a window inside it); otherwise the window is placed at random. Windows
    stay inside the image when it is at least `crop` px; a smaller image lies entirely in
    the window and the rest is padded with `fill`, so the scale is always `size / crop`:
    the scale of inference, where 1600 px windows of huge slides become 800 px inputs.
    Boxes keeping less than `min_visibility` of their area are dropped.
    """

    crop: int = 1600
    size: int = 800
    p_target: float = 1.0
    min_visibility: float = 0.5
    fill: int = 0

    def __post_init__(self) -> None:
        if self.crop <= 0 or self.size <= 0:
            raise ValueError(f"crop and size must be positive, got {self.crop} and {self.size}")
        _check_probability("p_target", self.p_target)
        _check_probability("min_visibility", self.min_visibility)
        if not 0 <= self.fill <= 255:
            raise ValueError(f"fill must be a grey level in [0, 255], got {self.fill}")

    @property
    def scale(self) -> float:
        """Output pixels per source pixel (`size / crop`): the scale this step already applied."""
        return self.size / self.crop

    def sample_window(self, height: int, width: int, targets: Detections, rng: np.random.Generator) -> tuple[int, int]:
        """Top-left (x, y) of the window, in image pixels (may be negative)."""
        if len(targets) and rng.random() < self.p_target:
            box = targets.boxes[int(rng.integers(len(targets)))]
            xs = _axis_range(float(box[0]), float(box[2]), width, self.crop)
            ys = _axis_range(float(box[1]), float(box[3]), height, self.crop)
        else:
            xs = (min(0, width - self.crop), max(0, width - self.crop))
            ys = (min(0, height - self.crop), max(0, height - self.crop))
        return int(rng.integers(xs[0], xs[1] + 1)), int(rng.integers(ys[0], ys[1] + 1))

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        window = self.sample_window(image.shape[0], image.shape[1], targets, rng)
        return crop_resize(image, targets, window, crop=self.crop, size=self.size,
                           min_visibility=self.min_visibility, fill=self.fill)


def flip(image: np.ndarray, targets: Detections, *, horizontal: bool, vertical: bool) -> tuple[np.ndarray, Detections]:
    """Mirror left-right and/or top-bottom; box x -> width - x, y -> height - y."""
    import cv2

    if not (horizontal or vertical):
        return image, targets
    h, w = image.shape[:2]
    code = -1 if horizontal and vertical else (1 if horizontal else 0)
    boxes = targets.boxes.copy()
    if horizontal:
        boxes[:, [0, 2]] = w - targets.boxes[:, [2, 0]]
    if vertical:
        boxes[:, [1, 3]] = h - targets.boxes[:, [3, 1]]
    return cv2.flip(image, code), Detections(boxes, targets.scores, targets.labels)


@dataclass(frozen=True)
class RandomFlip(Config):
    """Mirror left-right with probability `horizontal`, top-bottom with `vertical`."""

    horizontal: float = 0.5
    vertical: float = 0.5

    def __post_init__(self) -> None:
        _check_probability("horizontal", self.horizontal)
        _check_probability("vertical", self.vertical)

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        draws = rng.random(2)
        return flip(image, targets, horizontal=bool(draws[0] < self.horizontal), vertical=bool(draws[1] < self.vertical))


def fit_to_size(
    image: np.ndarray,
    targets: Detections,
    height: int,
    width: int,
    *,
    mode: ResizeMode = ResizeMode.LETTERBOX,
    pad_value: int = 0,
    scale: float | None = None,
) -> tuple[np.ndarray, Detections]:
    """Resize to exactly `height` x `width` as `core.letterbox.fit` places an image in a
    model input (stretch; letterbox; or a fixed `scale`), the image at the top-left and
    padding right/bottom with `pad_value`.

    Boxes are scaled by the exact per-axis factors of the resized content.
    """
    if ResizeMode(mode) is ResizeMode.CENTER_CROP:
        raise ConfigError("resize 'center_crop' cuts the image's borders, and boxes with them: it is for "
                          "classifiers; use letterbox or stretch")
    h, w = image.shape[:2]
    if (h, w) == (height, width) and ResizeMode(mode) is not ResizeMode.SCALE:
        return image, targets
    transform = fit((h, w), (height, width), ResizeMode(mode), scale)
    new_h, new_w = transform.resized_hw
    resized = image if (new_h, new_w) == (h, w) else _resize(image, new_w, new_h)
    if (new_h, new_w) != (height, width):
        canvas = np.full((height, width, image.shape[2]), pad_value, image.dtype)
        canvas[:new_h, :new_w] = resized
        resized = canvas
    return np.ascontiguousarray(resized), targets.scale(transform.scale_x, transform.scale_y)


@dataclass(frozen=True)
class Resize(Config):
    """Fit the image to `height` x `width` (see `fit_to_size`); no randomness."""

    height: int
    width: int
    mode: ResizeMode = ResizeMode.LETTERBOX
    pad_value: int = 0

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}")
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"pad_value must be a grey level in [0, 255], got {self.pad_value}")

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        return fit_to_size(image, targets, self.height, self.width, mode=self.mode, pad_value=self.pad_value)
