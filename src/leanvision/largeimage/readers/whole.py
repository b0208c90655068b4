"""The one reading policy for whole images: what `data check`, training and `predict` accept.

`predict` reads images by window through `open_reader`; training, the torch-free
`read_image` and `data check` read them whole through this module, which opens the same
reader, so a file is readable everywhere or refused everywhere with the same one-line
DataError. Per kind of file:

| file                   | read as                                                        |
|------------------------|----------------------------------------------------------------|
| 16-bit                 | scaled to 8-bit (the high byte, as cv2.imread does)            |
| CMYK                   | RGB (libtiff's / libjpeg's conversion)                         |
| palette                | its colours                                                    |
| alpha                  | dropped (the colour channels as stored)                        |
| EXIF / TIFF orientation| applied: pixels and sizes as a viewer displays them            |
| any extension          | by content (a PNG named .jpg is a PNG)                         |
| empty                  | refused: "image file is empty"                                 |
| truncated              | refused: "the file is truncated (...)"                         |
| corrupt, not an image  | refused: "the file is corrupt" / "not an image file"           |
| over `max_decode_mb`   | refused before decoding: the declared size and the limit       |

Orientation is applied because a viewer, and the labelling tools that draw on what it shows,
display the oriented image: boxes refer to that layout, and `predict` reports in it.
"""

from __future__ import annotations

import os

import numpy as np

from leanvision.largeimage.readers.base import ReaderKind, ReaderOptions, check_decode_bytes
from leanvision.largeimage.readers.choose import open_reader

# `verify` decodes at 1/8 of the size where the codec can (JPEG DCT scaling, pyramids): it
# still reads every entropy-coded byte of a JPEG, at a fraction of a full decode's cost.
_VERIFY_FACTOR = 8
# Readers that decode a window without the rest of the image verify an image whose
# full-resolution pixels exceed this in bands of rows under it: a tiled TIFF without reduced
# levels is read at level 0, and a sparse 100000 x 100000 one (28 GB of pixels) that
# `predict` reads window by window must not exhaust memory in `data check` either.
_VERIFY_BAND_MB = 256
_WINDOWED = frozenset({ReaderKind.TIFFFILE, ReaderKind.OPENSLIDE, ReaderKind.PYVIPS, ReaderKind.RASTERIO})


def read_rgb(path: str | os.PathLike[str], *, options: ReaderOptions | None = None) -> np.ndarray:
    """The whole image, (H, W, 3) uint8 RGB as displayed.

    Raises:
        DataError: the file is missing, empty, truncated, corrupt, not an image, or its
            declared size is over `options.max_decode_mb`; one line naming the file.
    """
    options = options or ReaderOptions()
    with open_reader(path, options=options) as reader:
        width, height = reader.size
        check_decode_bytes(reader.path, (height, width, 3), options, reader.kind.value)
        return reader.read(0, 0, width, height, width, height)


def read_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as displayed (orientation applied), from the header; DataError if unreadable."""
    with open_reader(path) as reader:
        return reader.size


def verify(path: str | os.PathLike[str], *, options: ReaderOptions | None = None) -> None:
    """Decode the whole image as `predict` would read it, reduced where the codec allows; a
    large image of a windowed reader in bands of rows (`_VERIFY_BAND_MB`).

    Raises:
        DataError: as `read_rgb`, for the same files with the same message.
    """
    with open_reader(path, options=options or ReaderOptions()) as reader:
        width, height = reader.size
        rows = height
        if reader.kind in _WINDOWED and width * height * 3 > _VERIFY_BAND_MB << 20:
            rows = max(_VERIFY_FACTOR, (_VERIFY_BAND_MB << 20) // (width * 3) // _VERIFY_FACTOR * _VERIFY_FACTOR)
        for top in range(0, height, rows):
            band = min(rows, height - top)
            reader.read(0, top, width, band, max(1, width // _VERIFY_FACTOR), max(1, band // _VERIFY_FACTOR))
