"""Whole-slide images via OpenSlide (.svs, .ndpi, .mrxs, .scn, .bif, generic tiled TIFF).

OpenSlide reads by region at a chosen pyramid level; this reader picks the level closest
above the needed scale and resizes. It is the reader for vendor formats tifffile cannot
open (MIRAX, VMS) and the reference for the others; for plain tiled TIFF the tifffile
reader is ~10x faster (PITFALLS.md: 465 ms vs 4.7 s for 64 windows of a 12000 px TIFF),
since OpenSlide decodes every tile at full scale and returns premultiplied RGBA.
"""

from __future__ import annotations

import os

import numpy as np

from leanvision.core.deps import require
from leanvision.largeimage.readers.base import (
    Reader,
    ReaderKind,
    ReaderOptions,
    check_file,
    choose_level,
    data_errors,
    resize_into,
)
from leanvision.largeimage.readers.headers import file_orientation


class OpenSlideReader(Reader):
    """Windowed, level-aware reads through OpenSlide's read_region."""

    kind = ReaderKind.OPENSLIDE

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions) -> None:
        path = check_file(path)
        openslide = require("openslide", extra="io", purpose="the OpenSlide reader")
        with data_errors(path, "open slide with OpenSlide"):
            self._slide = openslide.OpenSlide(str(path))
        super().__init__(path, options=options, orientation=file_orientation(path))

    @property
    def stored_size(self) -> tuple[int, int]:
        return tuple(self._slide.dimensions)

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        base_w, base_h = self.stored_size
        downs = [(base_w / lw, base_h / lh) for lw, lh in self._slide.level_dimensions]
        level = choose_level(downs, (w, h), (out.shape[1], out.shape[0])) if self.options.reduced else 0
        dx, dy = downs[level]
        size = (max(1, round(w / dx)), max(1, round(h / dy)))
        with data_errors(self.path, "read a slide region"):
            rgba = np.asarray(self._slide.read_region((x, y), level, size))
        resize_into(rgba[..., :3], out)

    def _close(self) -> None:
        self._slide.close()
