"""JPEG via simplejpeg (libjpeg-turbo): the default JPEG reader.

Decodes at the DCT scale M/8 the output needs (1/2 for 1600 px windows -> 800 px inputs),
which is both faster and smaller than a full decode plus resize: 12000 px JPEG, 64 tiles,
one core: 412 ms / 264 MB vs cv2.imread + crop + resize 938 ms / 869 MB (PITFALLS.md).
simplejpeg ignores `min_factor` unless `min_height`/`min_width` are given, so the scale is
requested through the minimum size, for which it picks the smallest M/8 that reaches it.

A JPEG whose whole decode at the needed scale exceeds `ReaderOptions.band_above_mb` is read
in bands of rows instead (`bands`: libvips' sequential loader, same pixels), so a 40000 px
slide holds ~50 MB of rows rather than a 1.2 GB image. Bands need reads going down the
stored rows, which EXIF orientations 3-8 reverse or transpose: those images, and machines
without pyvips, decode whole.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Sequence

import numpy as np

from leanvision.core.deps import require
from leanvision.core.errors import DataError, MissingExtraError
from leanvision.largeimage.readers.bands import SHRINKS, JpegBands
from leanvision.largeimage.readers.base import (
    ReaderKind,
    ReaderOptions,
    Scratch,
    check_decode_bytes,
    check_file,
    data_errors,
    resize_into,
)
from leanvision.largeimage.readers.decoded import WholeImageReader, scaled_box
from leanvision.largeimage.readers.headers import jpeg_has_end, jpeg_info


class SimpleJpegReader(WholeImageReader):
    """JPEG reader decoding once at a reduced DCT scale (see `decoded` for memory)."""

    kind = ReaderKind.SIMPLEJPEG

    def __init__(
        self, path: str | os.PathLike[str], *, options: ReaderOptions, scratch: Scratch | None = None
    ) -> None:
        self._simplejpeg = require("simplejpeg", extra="io", purpose="the simplejpeg JPEG reader")
        info = jpeg_info(check_file(path))
        if not jpeg_has_end(check_file(path)):  # the message every reader gives a cut-off JPEG
            raise DataError("the file is truncated (no JPEG end-of-image marker)", path=path)
        super().__init__(path, options=options, orientation=info.orientation, scratch=scratch)
        self._size = (info.width, info.height)
        self._bands: JpegBands | None = None
        self._bands_possible = self.orientation.value in (1, 2)  # no row flip, no transpose

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._size

    @property
    def supported_eighths(self) -> Sequence[int]:
        return range(1, 9)

    def _decode(self, eighths: int) -> np.ndarray:
        shape = self.decoded_shape(eighths)
        check_decode_bytes(self.path, shape, self.options, self.kind.value)
        with (
            data_errors(self.path, "decode JPEG"),
            open(self.path, "rb") as f,
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            # strict: libjpeg's "premature end of data" warning becomes an error.
            image = self._simplejpeg.decode_jpeg(
                data, colorspace="RGB", min_height=shape[0], min_width=shape[1],
                buffer=self._array(shape), strict=True,
            )
        if image.shape != shape:  # libjpeg chose another scale: map windows by what it gave
            raise ValueError(f"simplejpeg decoded {image.shape}, expected {shape}")
        return image

    @property
    def bands(self) -> JpegBands | None:
        """The banded decoder in use, None while reads are cut from a whole-image decode."""
        return self._bands

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        bands = self._bands_for((w, h), (out.shape[1], out.shape[0]))
        if bands is None:
            super()._read_stored(x, y, w, h, out)
            return
        # Boxes on libjpeg's reduced size (rounded up); libvips' rounds down, so a box may
        # reach one row / column past the rows held: repeat the edge there.
        shape = self.decoded_shape(bands.eighths)
        x0, y0, x1, y1 = scaled_box((x, y, w, h), bands.eighths / 8, (shape[1], shape[0]))
        width, height = bands.size
        rows = bands.rows(min(y0, height - 1), min(y1, height))[:, min(x0, width - 1) : min(x1, width)]
        if rows.shape[:2] != (y1 - y0, x1 - x0):
            rows = np.pad(rows, ((0, y1 - y0 - rows.shape[0]), (0, x1 - x0 - rows.shape[1]), (0, 0)), mode="edge")
        resize_into(rows, out)

    def _bands_for(self, window: tuple[int, int], out: tuple[int, int]) -> JpegBands | None:
        """The banded decoder for this read, or None when a whole decode serves it."""
        whole = self.needed_eighths(window, out, self.supported_eighths)
        if not self._bands_possible or (self._image is not None and self._eighths >= whole):
            return None
        if self.options.band_above_mb * 2**20 >= np.prod(self.decoded_shape(whole)):
            return None
        eighths = self.needed_eighths(window, out, SHRINKS)
        if self._bands is None or self._bands.eighths != eighths:
            try:
                self._bands = JpegBands(self.path, eighths)
            except MissingExtraError:  # no pyvips: decode whole, within max_decode_mb
                self._bands_possible = False
                return None
        return self._bands

    def _close(self) -> None:
        super()._close()
        if self._bands is not None:
            self._bands.close()
            self._bands = None
