"""Pillow fallback reader: whole-image decode, reduced through `draft` for JPEG.

Pillow refuses images over 2 x `PIL.Image.MAX_IMAGE_PIXELS` (179 MP by default) and warns
above MAX_IMAGE_PIXELS. This reader keeps Pillow's hard limit (raising `PixelLimitError`,
which `open_reader` without `kind` answers by trying the next reader) and silences only
the warning, since large images are what it is for. The global limit is never changed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from leanvision.core.errors import DataError
from leanvision.largeimage.readers.base import (
    PixelLimitError,
    ReaderKind,
    ReaderOptions,
    check_decode_bytes,
    check_file,
    data_errors,
    one_line,
)
from leanvision.largeimage.readers.decoded import WholeImageReader
from leanvision.largeimage.readers.headers import file_orientation


@contextmanager
def _opened(path: Path) -> Iterator:
    """Pillow's lazy open (header only) with its hard pixel limit as `PixelLimitError`."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise PixelLimitError(
                f"Pillow refuses images over {limit} pixels (2 x PIL.Image.MAX_IMAGE_PIXELS); "
                "use kind='simplejpeg', 'tifffile' or 'pyvips'",
                path=path,
            ) from None
        except Exception as exc:
            raise DataError(f"cannot open image with Pillow: {one_line(exc)}", path=path) from exc
        with im:
            yield im


class PillowReader(WholeImageReader):
    """Any format Pillow decodes; JPEG at DCT scales 1/8, 1/4, 1/2, 1."""

    kind = ReaderKind.PILLOW

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions) -> None:
        path = check_file(path)
        with _opened(path) as im:
            self._size, self._jpeg = im.size, im.format == "JPEG"
        super().__init__(path, options=options, orientation=file_orientation(path))

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._size

    @property
    def supported_eighths(self) -> Sequence[int]:
        return (1, 2, 4, 8) if self._jpeg else (8,)

    def _decode(self, eighths: int) -> np.ndarray:
        shape = self.decoded_shape(eighths)
        check_decode_bytes(self.path, shape, self.options, self.kind.value)
        with _opened(self.path) as im, data_errors(self.path, "decode image with Pillow"):
            if self._jpeg and eighths < 8:
                # Pillow picks the DCT scale 1/s with s <= W // requested width: ask for the
                # floor of the scaled size so that s is the one wanted.
                w, h = self.stored_size
                im.draft("RGB", (max(1, w * eighths // 8), max(1, h * eighths // 8)))
            image = np.asarray(im.convert("RGB"))
        if image.shape != shape:
            raise ValueError(f"Pillow decoded {image.shape}, expected {shape}")
        return image
