"""libvips via pyvips: the widest format coverage (JPEG, TIFF pyramids, PNG, WebP, JP2, ...).

Images are opened with random access: `access="sequential"` fails on out-of-order reads
(PITFALLS.md), and a grid reads rows of windows. For JPEG, libvips' shrink-on-load (DCT
scaling 1/2, 1/4, 1/8) gives reduced levels; for TIFF, pyramid pages or SubIFDs do. A
random-access JPEG is decoded whole on first access (`memory=True` keeps it in RAM rather
than in a temporary file), as is any other non-TIFF image (PNG, WebP, BMP): the size its
header declares is checked against `ReaderOptions.max_decode_mb` before that decode, so a
crafted 100000 x 100000 PNG header is refused rather than a 28 GB allocation attempted.
TIFF is read by tile or strip. libvips starts its own thread pool in each process.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.largeimage.readers.base import (
    Reader,
    ReaderKind,
    ReaderOptions,
    check_decode_bytes,
    check_file,
    choose_level,
    data_errors,
    resize_into,
    vips_rgb,
)
from leanvision.largeimage.readers.headers import ImageFormat, file_orientation, sniff

_ASPECT_TOLERANCE = 0.02  # pyramid pages keep the base aspect ratio; labels and macros do not


class VipsReader(Reader):
    """Windowed reads through pyvips, at the coarsest level that gives the output size."""

    kind = ReaderKind.PYVIPS

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions) -> None:
        path = check_file(path)
        self._vips = require("pyvips", extra="io", purpose="the pyvips reader")
        self._format = sniff(path)
        with data_errors(path, "open image with libvips"):
            base = self._load(path, {})
            self._levels = [({}, base), *self._pyramid(path, base)]
        if self._format is not ImageFormat.TIFF:  # refused before any tile is planned
            smallest = min((im for _, im in self._levels), key=lambda im: im.width * im.height)
            check_decode_bytes(path, (smallest.height, smallest.width, 3), options, self.kind.value)
        super().__init__(path, options=options, orientation=file_orientation(path))

    def _load(self, path: os.PathLike[str], extra: dict[str, Any]) -> Any:
        # fail_on="error": a truncated file is an error, not a grey band with a warning. JPEG:
        # "warning", as libjpeg only warns of scan data ending early (`bands`); simplejpeg,
        # strict, refuses those files too.
        fail_on = "warning" if self._format is ImageFormat.JPEG else "error"
        return self._vips.Image.new_from_file(str(path), access="random", memory=True, fail_on=fail_on, **extra)

    def _pyramid(self, path: os.PathLike[str], base: Any) -> list[tuple[dict[str, Any], Any]]:
        """Reduced levels (loader options, image), any order; headers only are read here."""
        if self._format is ImageFormat.JPEG:
            return [({"shrink": f}, self._load(path, {"shrink": f})) for f in (2, 4, 8)]
        if self._format is not ImageFormat.TIFF:
            return []
        fields = set(base.get_fields())
        pages = base.get("n-pages") if "n-pages" in fields else 1
        subifds = base.get("n-subifds") if "n-subifds" in fields else 0
        options = [{"page": p} for p in range(1, pages)] + [{"subifd": i} for i in range(subifds)]
        levels = [(o, self._load(path, o)) for o in options]
        aspect = base.width / base.height
        return [(o, im) for o, im in levels if im.width < base.width and abs(im.width / im.height / aspect - 1) < _ASPECT_TOLERANCE]

    @property
    def stored_size(self) -> tuple[int, int]:
        base = self._levels[0][1]
        return base.width, base.height

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        base_w, base_h = self.stored_size
        downs = [(base_w / im.width, base_h / im.height) for _, im in self._levels]
        index = choose_level(downs, (w, h), (out.shape[1], out.shape[0])) if self.options.reduced else 0
        image, (dx, dy) = self._levels[index][1], downs[index]
        if self._format is not ImageFormat.TIFF:  # decoded whole, in memory, on first access
            check_decode_bytes(self.path, (image.height, image.width, 3), self.options, self.kind.value)
        x0, y0 = min(round(x / dx), image.width - 1), min(round(y / dy), image.height - 1)
        x1, y1 = max(x0 + 1, min(round((x + w) / dx), image.width)), max(y0 + 1, min(round((y + h) / dy), image.height))
        with data_errors(self.path, "read a region with libvips"):
            region = image.crop(x0, y0, x1 - x0, y1 - y0).numpy()
        resize_into(vips_rgb(region, self.path), out)

    def _close(self) -> None:
        self._levels = []
