"""A JPEG decoded in bands of rows, top to bottom, for images too large to hold decoded.

A baseline JPEG has no random access, and the whole-image decode of `decoded` holds
W*H*3*(M/8)^2 bytes: 1.2 GB for a 40000 px slide at 1/2. A grid reads rows of windows
from the top down, so only the rows under the current row of windows are needed. libvips'
sequential JPEG loader decodes scanlines in order at a DCT scale 1/1, 1/2, 1/4 or 1/8
(shrink-on-load, the same libjpeg-turbo pixels as simplejpeg) and keeps only a small strip;
`JpegBands` holds the decoded rows [top, top + count) in one buffer, drops the rows above
a read and decodes the rows below it. No library offers this from Python (simplejpeg
decodes whole images only; libjpeg's `jpeg_skip_scanlines` is not exposed), hence this
class.

Reads going back above the rows held restart the decode from the first row (`restarts`
counts them): a grid's reads never do, a reader with an EXIF orientation that flips rows
would on every row of windows, so `SimpleJpegReader` uses bands only for orientations 1
and 2. libvips rounds reduced sizes down (libjpeg up): the last row and column of a
reduced decode are missing here, and `SimpleJpegReader` repeats the edge into them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.largeimage.readers.base import Scratch, data_errors, vips_rgb

SHRINKS = {8: 1, 4: 2, 2: 4, 1: 8}  # DCT scale M/8 -> libvips' shrink factor
# Rows are decoded in calls ending on multiples of STEP (or at the last row): libvips'
# loader decodes whole MCU rows (8-16 lines), so a call ending mid-strip leaves the loader
# past the next call's first row ("out of order read"). Also the fewest rows per call.
STEP = 64


class JpegBands:
    """Rows of a JPEG decoded at scale `eighths`/8, read in increasing order.

    Args:
        path: the JPEG file.
        eighths: DCT scale M/8, one of `SHRINKS`.
    """

    def __init__(self, path: Path, eighths: int) -> None:
        if eighths not in SHRINKS:
            raise ValueError(f"libvips decodes JPEG at 1/1, 1/2, 1/4 or 1/8, not {eighths}/8")
        self._vips = require("pyvips", extra="io", purpose="banded decoding of large JPEGs")
        self.path, self.eighths = path, eighths
        self._buffer = Scratch()  # its own: a whole-image decode may reuse the reader's scratch
        self._image: Any = None
        self._rows = np.empty((0, 0, 3), np.uint8)
        self.top = self.count = 0
        self.restarts = -1  # the first open is not a restart
        self._open()

    def _open(self) -> None:
        with data_errors(self.path, "open JPEG with libvips"):
            # fail_on="warning": libjpeg reports data ending before the frame its header
            # declares ("premature end of data segment": a cut file, or a header patched
            # larger) only as a warning, which "error" lets through as grey rows; simplejpeg's
            # strict whole decode refuses the same file, and both paths must agree.
            image = self._vips.Image.new_from_file(
                os.fspath(self.path), access="sequential", shrink=SHRINKS[self.eighths], fail_on="warning"
            )
            self._image = image.colourspace("srgb") if image.interpretation == "cmyk" else image
        self.size = (self._image.width, self._image.height)  # (w, h) of the reduced decode
        self.top = self.count = 0
        self.restarts += 1

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Decoded rows [y0, y1) as an (y1 - y0, w, 3) view, valid until the next call."""
        height = self.size[1]
        if not 0 <= y0 < y1 <= height:
            raise ValueError(f"rows [{y0}, {y1}) outside the decoded height {height}")
        if y0 < self.top:
            self._open()
        end = self.top + self.count
        if y0 >= end:  # nothing held is needed: the decoder skips to the step before y0
            self.top, self.count = max(end, y0 // STEP * STEP), 0
        elif y0 > self.top:  # drop the rows above y0 (overlapping move: numpy copies safely)
            keep = end - y0
            self._rows[:keep] = self._rows[y0 - self.top : self.count]
            self.top, self.count = y0, keep
        if y1 > self.top + self.count:
            self._decode(min(height, -(-y1 // STEP) * STEP))
        return self._rows[y0 - self.top : y1 - self.top]

    def _decode(self, stop: int) -> None:
        """Decode rows [top + count, stop) below the rows held."""
        start, width = self.top + self.count, self.size[0]
        need = stop - self.top
        if self._rows.shape[0] < need or self._rows.shape[1] != width:
            held = self._rows[: self.count].copy() if self.count else None
            capacity = max(need, self._rows.shape[0] * 5 // 4)  # grow in steps, not row by row
            self._rows = self._buffer.array((capacity, width, 3))
            if held is not None:
                self._rows[: self.count] = held
        with data_errors(self.path, "decode JPEG rows with libvips"):
            region = self._image.crop(0, start, width, stop - start).numpy()
        self._rows[self.count : need] = vips_rgb(region, self.path)
        self.count = need

    def close(self) -> None:
        self._image = None
        self._rows = np.empty((0, 0, 3), np.uint8)

