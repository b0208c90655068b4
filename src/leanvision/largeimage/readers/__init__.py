"""Windowed, reduced-scale image readers behind one interface (`open_reader`, `Reader`).

One module per library, each importing its library only when a reader is opened:
`jpeg` (simplejpeg), `tiff` (tifffile + imagecodecs), `slide` (OpenSlide), `vips` (pyvips),
`gdal` (rasterio), `opencv`, `pillow`. `choose` picks one by format.
"""

from leanvision.largeimage.readers.base import (
    Orientation,
    PixelLimitError,
    Reader,
    ReaderKind,
    ReaderOptions,
    Scratch,
)
from leanvision.largeimage.readers.choose import default_kinds, open_reader

__all__ = [
    "Orientation",
    "PixelLimitError",
    "Reader",
    "ReaderKind",
    "ReaderOptions",
    "Scratch",
    "default_kinds",
    "open_reader",
]
