"""Small purpose-made test images: textures, JPEG with EXIF orientation, TIFF pyramids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 664, 488  # not multiples of the 128 px tiles or of 16 px JPEG MCUs


def textured(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: gradients, waves and blurred noise, asymmetric in every direction.

    Smooth enough that DCT-scaled and area-resized pixels agree closely, varied enough that a
    wrong window, scale or orientation shows as a large difference.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            40 + 170 * xx / width,
            40 + 170 * yy / height,
            128 + 50 * np.sin(xx / 19.0 + yy / 41.0) * np.cos(yy / 13.0),
        ],
        axis=-1,
    )
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)), (0, 0), 2.5)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, image: np.ndarray, orientation: int | None = None) -> Path:
    """JPEG (quality 95) through Pillow, with an EXIF orientation tag when given."""
    from PIL import Image

    kwargs = {"quality": 95}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    Image.fromarray(image).save(path, **kwargs)
    return path


def write_pyramid(path: Path, image: np.ndarray, *, levels: int = 3, tile: int = 128, **codec) -> Path:
    """Tiled TIFF with reduced levels (INTER_AREA halvings) as pages of the main IFD chain,
    the layout OpenSlide, libvips, GDAL and tifffile all read as a pyramid."""
    import tifffile

    with tifffile.TiffWriter(path) as tw:
        level = image
        for i in range(levels):
            tw.write(level, tile=(tile, tile), photometric="rgb", subfiletype=1 if i else 0, **codec)
            h, w = level.shape[:2]
            level = cv2.resize(level, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    return path


def reference(full: np.ndarray, window: tuple[int, int, int, int], out: tuple[int, int]) -> np.ndarray:
    """Full decode + crop + resize (INTER_AREA shrinking, INTER_LINEAR enlarging): what
    every reader must reproduce."""
    x, y, w, h = window
    interp = cv2.INTER_AREA if out[0] <= w and out[1] <= h else cv2.INTER_LINEAR
    return cv2.resize(full[y : y + h, x : x + w], out, interpolation=interp)


def cv2_rgb(path: Path) -> np.ndarray:
    """cv2.imread as the reference decoder (it applies EXIF orientation), as RGB."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
