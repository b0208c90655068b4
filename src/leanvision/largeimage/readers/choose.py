"""`open_reader`: the reader for a file, chosen by its format (magic bytes, then suffix).

Defaults, each falling back to the next when its library is not installed (or, for
OpenCV and Pillow, when the image is over the library's pixel limit):

| file                                   | readers, in order             |
|----------------------------------------|-------------------------------|
| JPEG                                   | simplejpeg, opencv, pillow    |
| .svs .ndpi .mrxs .scn .bif .vms .vmu   | openslide, tifffile (TIFF-based ones), pyvips |
| other TIFF (GeoTIFF included)          | tifffile, pyvips, opencv      |
| .vrt .jp2 .j2k .ntf .nitf .img .ecw    | rasterio, pyvips              |
| anything else (PNG, BMP, WebP, ...)    | opencv, pyvips, pillow        |

An explicit `kind` is used as given, with no fallback: a missing library raises
`MissingExtraError`, an over-limit image `DataError`.
"""

from __future__ import annotations

import os

from leanvision.core.errors import ConfigError, MissingExtraError
from leanvision.largeimage.readers.base import (
    PixelLimitError,
    Reader,
    ReaderKind,
    ReaderOptions,
    Scratch,
    check_file,
)
from leanvision.largeimage.readers.headers import ImageFormat, sniff

SLIDE_SUFFIXES = frozenset({".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide"})
GEO_SUFFIXES = frozenset({".vrt", ".jp2", ".j2k", ".ntf", ".nitf", ".img", ".ecw"})
K = ReaderKind


def default_kinds(path: str | os.PathLike[str]) -> list[ReaderKind]:
    """Readers `open_reader` tries for this file, best first."""
    path = check_file(path)
    fmt, suffix = sniff(path), path.suffix.lower()
    if fmt is ImageFormat.JPEG:
        return [K.SIMPLEJPEG, K.OPENCV, K.PILLOW]
    if suffix in SLIDE_SUFFIXES:
        return [K.OPENSLIDE, K.TIFFFILE, K.PYVIPS] if fmt is ImageFormat.TIFF else [K.OPENSLIDE, K.PYVIPS]
    if fmt is ImageFormat.TIFF:
        return [K.TIFFFILE, K.PYVIPS, K.OPENCV]
    if suffix in GEO_SUFFIXES:
        return [K.RASTERIO, K.PYVIPS]
    return [K.OPENCV, K.PYVIPS, K.PILLOW]


def _construct(kind: ReaderKind, path: os.PathLike[str], options: ReaderOptions, scratch: Scratch | None) -> Reader:
    """Import the reader module of `kind` and open `path` with it."""
    if kind is K.SIMPLEJPEG:
        from leanvision.largeimage.readers.jpeg import SimpleJpegReader

        return SimpleJpegReader(path, options=options, scratch=scratch)
    if kind is K.OPENCV:
        from leanvision.largeimage.readers.opencv import OpenCVReader

        return OpenCVReader(path, options=options, scratch=scratch)
    if kind is K.TIFFFILE:
        from leanvision.largeimage.readers.tiff import TiffReader

        return TiffReader(path, options=options)
    if kind is K.OPENSLIDE:
        from leanvision.largeimage.readers.slide import OpenSlideReader

        return OpenSlideReader(path, options=options)
    if kind is K.PYVIPS:
        from leanvision.largeimage.readers.vips import VipsReader

        return VipsReader(path, options=options)
    if kind is K.RASTERIO:
        from leanvision.largeimage.readers.gdal import RasterioReader

        return RasterioReader(path, options=options)
    from leanvision.largeimage.readers.pillow import PillowReader

    return PillowReader(path, options=options)


def open_reader(
    path: str | os.PathLike[str],
    *,
    kind: ReaderKind | str | None = None,
    options: ReaderOptions | None = None,
    scratch: Scratch | None = None,
) -> Reader:
    """Open `path` for windowed reads (see `Reader.read`); use as a context manager.

    Args:
        path: the image file.
        kind: force a reader (simplejpeg, tifffile, openslide, pyvips, rasterio, opencv,
            pillow); default: chosen by format (module docstring).
        options: shared reader options (reduced decode, memory bounds, fill value).
        scratch: a buffer the calling worker reuses across images for whole-image decodes
            (simplejpeg, opencv); one open reader per scratch at a time.

    Raises:
        DataError: missing, empty, corrupt or unsupported file, or one over every
            candidate library's limits; the message names the file.
        MissingExtraError: the forced reader's library (or every candidate's) is absent.
    """
    options = options or ReaderOptions()
    path = check_file(path)
    if kind is not None:
        try:
            kind = ReaderKind(kind)
        except ValueError:
            raise ConfigError(f"unknown reader kind {kind!r}; one of {[k.value for k in ReaderKind]}") from None
        return _construct(kind, path, options, scratch)
    error: Exception | None = None
    for candidate in default_kinds(path):
        try:
            return _construct(candidate, path, options, scratch)
        except (MissingExtraError, PixelLimitError) as exc:
            error = exc
    assert error is not None
    raise error
