"""Image files: extensions, header-only size reads, full-decode verification and decoding.

Every read goes through the one reading policy of `leanvision.largeimage.readers.whole`
(the readers `predict` uses), so `data check`, training and `predict` accept and refuse the
same files with the same one-line message: 16-bit scaled to 8-bit, CMYK and palette as RGB,
alpha dropped, EXIF orientation applied, formats told by content rather than extension.
Sizes come from file headers without decoding pixels, so checking a set of 12000 px slides
costs milliseconds per image for sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from leanvision.core.errors import DataError
from leanvision.largeimage.readers import whole

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(root: Path) -> Iterator[Path]:
    """Image files below `root`, recursively, in sorted order (hidden files skipped)."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and is_image(path) and not path.name.startswith("."):
            yield path


def escape_problem(path: Path, roots: Iterable[Path]) -> str | None:
    """Why the image file at `path` is not a file of the dataset in `roots`, or None.

    A symlink (the file itself, or a folder on its way) resolving outside every root would
    make `data convert` place a file from elsewhere, and is refused like a `..` name. A
    symlinked image folder (`images -> /data/store`) is one of the roots, so its files pass.
    A missing target is not reported here: it is a missing image.
    """
    if not path.exists():
        return None
    real = path.resolve()
    if any(real.is_relative_to(root.resolve()) for root in roots):
        return None
    return f"image file leads outside the dataset folder through a symlink (to {str(real)!r})"


def read_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF / TIFF orientation applied), from the header.

    Raises:
        DataError: the file is missing, empty or not a readable image.
    """
    return whole.read_size(path)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """The whole image as (H, W, 3) uint8 RGB, displayed orientation; DataError naming the
    file if it is unreadable or declares a size over the decode limit."""
    return whole.read_rgb(path)


def verify_image(path: Path) -> str | None:
    """Decode the whole image (at reduced scale where the codec allows) to find damage.

    Returns None if the image decodes as `predict` would read it, else the one-line reason
    (missing, empty, truncated, corrupt, not an image, too large) `predict` and training
    give for it. Reduced-scale JPEG decoding still reads every entropy-coded byte, so a
    truncated file is caught at a fraction of a full decode's cost.
    """
    try:
        whole.verify(path)
    except DataError as exc:
        return exc.message
    return None
