"""Image files: extensions, header-only size reads and full-decode verification.

Sizes come from file headers without decoding pixels (simplejpeg for JPEG and tifffile for
TIFF when the `io` extra is installed, Pillow otherwise), so checking a set of 12000 px
slides costs milliseconds per image for sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


def _try_import(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def read_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header. Raises OSError or ValueError if unreadable."""
    suffix = path.suffix.lower()
    if suffix in JPEG_SUFFIXES and (simplejpeg := _try_import("simplejpeg")) is not None:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            try:
                height, width, _, _ = simplejpeg.decode_jpeg_header(head)
            except ValueError:
                # EXIF thumbnails or ICC profiles can push the frame header past 64 KiB.
                height, width, _, _ = simplejpeg.decode_jpeg_header(head + f.read())
        return int(width), int(height)
    if suffix in TIFF_SUFFIXES and (tifffile := _try_import("tifffile")) is not None:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Image.DecompressionBombError:
        raise ValueError(
            "image is larger than Pillow opens (~179 MP); install leanvision[io] for "
            "header reads of large JPEG and TIFF files"
        ) from None


def verify_image(path: Path) -> str | None:
    """Decode the whole file (at reduced scale where the codec allows) to find damage.

    Returns None if the image decodes cleanly, else a one-line reason (missing, corrupt,
    truncated). Reduced-scale JPEG decoding still reads every entropy-coded byte, so a
    truncated file is caught at a fraction of a full decode's cost.
    """
    if not path.exists():
        return "image file is missing"
    if path.stat().st_size == 0:
        return "image file is empty"
    suffix = path.suffix.lower()
    try:
        if suffix in JPEG_SUFFIXES and (simplejpeg := _try_import("simplejpeg")) is not None:
            return _verify_jpeg(path, simplejpeg)
        if suffix in TIFF_SUFFIXES and (tifffile := _try_import("tifffile")) is not None:
            return _verify_tiff(path, tifffile)
        return _verify_pillow(path)
    except Exception as exc:  # any decoder failure is a finding, not a crash
        return f"cannot decode image: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _verify_jpeg(path: Path, simplejpeg) -> str | None:
    data = path.read_bytes()
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    try:
        # strict=True turns libjpeg warnings (premature end of data) into errors.
        simplejpeg.decode_jpeg(
            data, colorspace="RGB", strict=True, min_height=max(1, height // 8),
            min_width=max(1, width // 8), min_factor=8,
        )
    except ValueError as exc:
        reason = _one_line(exc)
        if "premature end" in reason.lower() or "truncat" in reason.lower():
            return f"truncated JPEG: {reason}"
        return f"corrupt JPEG: {reason}"
    return None


def _verify_tiff(path: Path, tifffile) -> str | None:
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        for page in series.pages:
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
            if ends and max(ends) > size:
                return f"truncated TIFF: data of page {page.index} ends past the end of the file"
            if page.databytecounts and min(page.databytecounts) == 0 and page.compression != 1:
                return f"corrupt TIFF: page {page.index} has empty tiles"
        # Decode the smallest level fully: exercises the codec without a gigapixel decode.
        level = series.levels[-1] if series.levels else series
        level.asarray()
    return None


def _verify_pillow(path: Path) -> str | None:
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
    return None
