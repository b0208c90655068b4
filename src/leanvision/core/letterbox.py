"""Fitting an image to a model's input size, and mapping boxes between the two.

`fit` says how a (height, width) source is placed in a (height, width) model input:
scaled by (scale_x, scale_y) and then, in letterbox and scale modes, padded, or, in
centre-crop mode, cropped. Padding goes to the right and bottom only, so the image keeps its
top-left corner at the input's origin:

- model-input pixels = source pixels * scale (no offset to add or remove), the same
  placement torchvision's `GeneralizedRCNNTransform` gives when it pads a batch, so a model
  trained that way sees its padding where it was trained to;
- anchors at the top-left cells cover image content rather than padding.

`pad_x` and `pad_y` are therefore the numbers of padding columns (right) and rows (bottom);
the image occupies input pixels [0, width - pad_x) x [0, height - pad_y).

Centre crop (a classifier's resize + centre crop) scales the image to cover the input and
cuts `crop_x` columns from the left and `crop_y` rows from the top of the resized image
(the odd pixel, if any, from the right and bottom): model-input pixels = source pixels *
scale - crop. It has no padding.

Box coordinates are continuous pixel edges (xyxy, x2 exclusive), the convention of
torchvision and of OpenCV's resize (half-pixel centres map linearly), so a pure scale maps
them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leanvision.core.enums import ResizeMode


@dataclass(frozen=True)
class FitTransform:
    """How a source image was placed in the model input.

    Attributes:
        scale_x, scale_y: model-input pixels per source pixel along x and y.
        pad_x, pad_y: padding columns on the right and rows at the bottom, in input pixels.
        resized_hw: (height, width) of the whole resized image, in input pixels: inside the
            input, or larger than it when cropped.
        crop_x, crop_y: columns cut from the left and rows from the top of the resized
            image (centre crop), in input pixels; the input shows resized pixels from
            (crop_x, crop_y) on.
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_hw: tuple[int, int]
    crop_x: int = 0
    crop_y: int = 0

    @property
    def cropped(self) -> bool:
        """True when part of the image is cut off (centre crop)."""
        return bool(self.crop_x or self.crop_y)

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy source pixels -> (N, 4) xyxy model-input pixels (float32)."""
        return np.asarray(boxes, np.float32).reshape(-1, 4) * self._factor() - self._offset()

    def invert_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy model-input pixels -> (N, 4) xyxy source pixels (float32)."""
        return (np.asarray(boxes, np.float32).reshape(-1, 4) + self._offset()) / self._factor()

    def _factor(self) -> np.ndarray:
        return np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], np.float32)

    def _offset(self) -> np.ndarray:
        return np.array([self.crop_x, self.crop_y, self.crop_x, self.crop_y], np.float32)


def _check_size(name: str, hw: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in hw)
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be a positive (height, width), got {tuple(hw)}")
    return height, width


def fit(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], mode: ResizeMode, scale: float | None = None
) -> FitTransform:
    """Place a `src_hw` (height, width) image in a `dst_hw` model input.

    STRETCH scales each axis to fill the input (aspect ratio not kept, no padding).
    LETTERBOX scales both axes by the same factor, the largest that fits, and pads the
    right and bottom; the resized size is rounded to whole pixels and the scales are the
    exact ratios of the rounded size, so `invert_boxes` maps the resized image's edges to
    the source's edges.
    SCALE scales both axes by `scale` (the scale the model was trained at) and pads the
    right and bottom; an image that would not fit at that scale is letterboxed instead
    (large images are meant to be tiled at the card's scale before they get here).
    CENTER_CROP scales both axes by the same factor, the smallest that covers the input,
    rounds as LETTERBOX does, and crops the centre (the odd pixel from the right / bottom).
    """
    src_h, src_w = _check_size("src_hw", src_hw)
    dst_h, dst_w = _check_size("dst_hw", dst_hw)
    if mode is ResizeMode.STRETCH:
        return FitTransform(dst_w / src_w, dst_h / src_h, 0, 0, (dst_h, dst_w))
    if mode is ResizeMode.CENTER_CROP:
        return _center_crop(src_h, src_w, dst_h, dst_w)
    if mode not in (ResizeMode.LETTERBOX, ResizeMode.SCALE):
        raise ValueError(f"unknown resize mode {mode!r}")
    factor = min(dst_h / src_h, dst_w / src_w)
    if mode is ResizeMode.SCALE:
        if scale is None or scale <= 0:
            raise ValueError("resize mode 'scale' needs a positive scale")
        factor = min(scale, factor)
    new_h = min(dst_h, max(1, round(src_h * factor)))
    new_w = min(dst_w, max(1, round(src_w * factor)))
    return FitTransform(new_w / src_w, new_h / src_h, dst_w - new_w, dst_h - new_h, (new_h, new_w))


def _center_crop(src_h: int, src_w: int, dst_h: int, dst_w: int) -> FitTransform:
    factor = max(dst_h / src_h, dst_w / src_w)
    new_h = max(dst_h, round(src_h * factor))
    new_w = max(dst_w, round(src_w * factor))
    return FitTransform(new_w / src_w, new_h / src_h, 0, 0, (new_h, new_w),
                        crop_x=(new_w - dst_w) // 2, crop_y=(new_h - dst_h) // 2)
