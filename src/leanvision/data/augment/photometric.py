"""Photometric augmentation: brightness, contrast, saturation and hue jitter.

Semantics follow torchvision's ColorJitter (factors drawn uniformly from
[max(0, 1 - x), 1 + x], hue shift from [-hue, hue] of a full turn, the four adjustments
in random order, values clipped after each), in numpy + cv2 so the torch-free preview and
the DataLoader workers share it. Boxes are untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from leanvision.core import Config, Detections

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def adjust_brightness(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Scale intensities; `rgb` is float32 in [0, 1]."""
    return np.clip(rgb * factor, 0.0, 1.0)


def adjust_contrast(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the image's mean grey level."""
    mean = float((rgb @ _LUMA).mean())
    return np.clip((rgb - mean) * factor + mean, 0.0, 1.0)


def adjust_saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the pixel's own grey level."""
    grey = (rgb @ _LUMA)[..., None]
    return np.clip((rgb - grey) * factor + grey, 0.0, 1.0)


def adjust_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Rotate hue by `shift` of a full turn (-0.5..0.5)."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # float input: H in degrees [0, 360)
    hsv[..., 0] = np.mod(hsv[..., 0] + shift * 360.0, 360.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


@dataclass(frozen=True)
class PhotometricJitter(Config):
    """Random brightness, contrast, saturation (each a relative amount, 0 = off) and hue
    (fraction of a full turn, at most 0.5) changes, in random order."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")

    def _adjustments(self, rng: np.random.Generator) -> list[Callable[[np.ndarray], np.ndarray]]:
        def factor(amount: float) -> float:
            return float(rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount))

        steps = [
            functools.partial(adjust_brightness, factor=factor(self.brightness)),
            functools.partial(adjust_contrast, factor=factor(self.contrast)),
            functools.partial(adjust_saturation, factor=factor(self.saturation)),
            functools.partial(adjust_hue, shift=float(rng.uniform(-self.hue, self.hue))),
        ]
        return [steps[i] for i in rng.permutation(len(steps))]

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        rgb = image.astype(np.float32) / 255.0
        for adjust in self._adjustments(rng):
            rgb = adjust(rgb)
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8), targets
