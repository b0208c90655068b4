"""Plumbing shared by the generators: seeds, split sizes, progress and image writes.

Every image draws from its own generator, seeded by (seed, task, split, index), so an image
does not depend on how many images are made, nor on the order they are made in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from leanvision.core.io import atomic_write_bytes

Progress = Callable[[str, int, int], None]

JPEG_QUALITY = 90

# Stable integer codes for the seed sequence: str hashes are salted per process.
_STREAMS = {
    "detect": 1, "count": 2, "classify": 3, "segment": 4,
    "train": 11, "val": 12, "slides": 13, "large": 14, "classes": 15, "blood": 16,
}


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one item, e.g. `rng_for(seed, "detect", "train", 7)`.

    Args:
        seed: the user's seed (>= 0).
        keys: stream names (task, split, ...) and integer indices identifying the item.
    """
    entropy = [seed, *(_STREAMS[k] if isinstance(k, str) else k for k in keys)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def val_count(train: int) -> int:
    """Validation images for `train` training images: about a quarter, at least one."""
    return max(1, round(train / 4))


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """Baseline JPEG bytes of an (H, W, 3) uint8 RGB image at a fixed quality."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return buf.tobytes()


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as JPEG, atomically."""
    atomic_write_bytes(path, encode_jpeg(rgb))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W) uint8 image (e.g. a class-index mask) as PNG, atomically."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    atomic_write_bytes(path, buf.tobytes())


def split_summary(images: int, objects: int) -> dict[str, int]:
    return {"images": images, "objects": objects}
