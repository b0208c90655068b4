"""GDAL via rasterio: georeferenced rasters (GeoTIFF, JP2, VRT, NITF, ...), S0's reader.

Windows are read at a chosen overview level (GDAL's JPEG driver exposes DCT scales 1/2,
1/4, 1/8 as overviews; TIFF pyramids expose theirs) *without* `out_shape`: with it, GDAL
resamples on its own pixel grid and returns different pixels than crop + resize
(PITFALLS.md); the resize is done here, as in every reader. rasterio's wheel ships an old
libjpeg, so its JPEG decodes are slower than simplejpeg's.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.core.errors import DataError
from leanvision.largeimage.readers.base import (
    Reader,
    ReaderKind,
    ReaderOptions,
    check_file,
    choose_level,
    data_errors,
    resize_into,
)
from leanvision.largeimage.readers.headers import ImageFormat, file_orientation, jpeg_has_end, sniff


class RasterioReader(Reader):
    """Windowed reads through rasterio at the coarsest overview that gives the output size."""

    kind = ReaderKind.RASTERIO

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions) -> None:
        path = check_file(path)
        self._rio = require("rasterio", extra="io", purpose="the rasterio (GDAL) reader")
        if sniff(path) is ImageFormat.JPEG and not jpeg_has_end(path):
            raise DataError("the file is truncated (no JPEG end-of-image marker)", path=path)
        with self._quiet(), data_errors(path, "open raster with GDAL"):
            base = self._rio.open(path)
        self._datasets: dict[int, Any] = {0: base}
        try:
            self._check(base, path)
        except DataError:
            base.close()
            raise
        # Overview i is opened as its own dataset (overview_level=i), when first needed.
        self._factors = [1, *base.overviews(1)]
        super().__init__(path, options=options, orientation=file_orientation(path))

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Silence rasterio's NotGeoreferencedWarning: plain images are fine here."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._rio.errors.NotGeoreferencedWarning)
            yield

    @staticmethod
    def _check(ds: Any, path: os.PathLike[str]) -> None:
        if ds.dtypes[0] != "uint8" or ds.count not in (1, 3, 4):
            raise DataError(
                f"the rasterio reader reads 8-bit grey/RGB/RGBA rasters; this one has {ds.count} "
                f"bands of {ds.dtypes[0]}",
                path=path,
            )

    def _dataset(self, level: int) -> Any:
        if level not in self._datasets:
            with self._quiet(), data_errors(self.path, "open an overview with GDAL"):
                self._datasets[level] = self._rio.open(self.path, overview_level=level - 1)
        return self._datasets[level]

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._datasets[0].width, self._datasets[0].height

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        base_w, base_h = self.stored_size
        downs = [(base_w / math.ceil(base_w / f), base_h / math.ceil(base_h / f)) for f in self._factors]
        level = choose_level(downs, (w, h), (out.shape[1], out.shape[0])) if self.options.reduced else 0
        ds = self._dataset(level)
        dx, dy = base_w / ds.width, base_h / ds.height
        x0, y0 = min(round(x / dx), ds.width - 1), min(round(y / dy), ds.height - 1)
        x1, y1 = max(x0 + 1, min(round((x + w) / dx), ds.width)), max(y0 + 1, min(round((y + h) / dy), ds.height))
        window = self._rio.windows.Window(x0, y0, x1 - x0, y1 - y0)
        bands = [1, 1, 1] if ds.count == 1 else [1, 2, 3]
        with self._quiet(), data_errors(self.path, "read a window with GDAL"):
            chw = ds.read(bands, window=window)
        resize_into(np.ascontiguousarray(chw.transpose(1, 2, 0)), out)

    def _close(self) -> None:
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()
