"""Tiled / pyramidal TIFF via tifffile + imagecodecs: decode only the tiles a window needs.

For each read the reader picks the pyramid level closest above the needed scale, finds the
tiles (or strips) the window covers from `page.dataoffsets` / `page.databytecounts`, reads
and decodes just those, keeps them in a small LRU cache (neighbouring windows share edge
tiles), assembles the window and resizes it into the caller's buffer.

JPEG tiles are decoded at a reduced DCT scale M/8 when the level is still finer than the
output needs (S0's 1600 -> 800 px: 1/2), by simplejpeg on the tile stream with the page's
shared JPEG tables spliced in: imagecodecs' jpeg8_decode has no scaled decode (its `shape`
argument does not scale). Other compressions go through the page's own `decode`.
Pixels read as every reader reads them (the one policy, `whole`): 16-bit scaled to 8-bit,
CMYK converted to RGB as libtiff converts it, palette colours looked up, alpha dropped.
Measured on a faster machine (PITFALLS.md): 465 ms / 198 MB for 64 windows of a 12000 px
JPEG TIFF, vs 4.7 s for OpenSlide.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.core.errors import DataError
from leanvision.largeimage.readers.base import (
    Reader,
    ReaderKind,
    ReaderOptions,
    check_decode_bytes,
    check_file,
    choose_level,
    data_errors,
    dct_eighths,
    resize_into,
    to_uint8,
)

_JPEG = 7
_PALETTE, _CMYK = 3, 5  # TIFF photometric interpretations converted to RGB here
_PHOTOMETRIC_JPEG_COLOR = {1: "Gray", 2: "RGB", 6: "YCbCr"}  # photometric -> libjpeg colour space


@dataclass(frozen=True)
class _Level:
    """One pyramid level: its keyframe page and its segment (tile or strip) grid."""

    page: Any
    width: int
    height: int
    seg_w: int  # segment width, pixels (image width for strips)
    seg_h: int
    cols: int  # segments per row
    tiled: bool  # tiles are all full size; the last strip may be shorter
    jpeg: bool  # JPEG tiles that can be decoded at a reduced DCT scale

    def eighths(self, need: int) -> int:
        """Smallest usable M >= need: scaled segment sizes must stay whole pixels."""
        for m in range(need, 9):
            if (self.seg_h * m) % 8 == 0 and (self.cols == 1 or (self.seg_w * m) % 8 == 0):
                return m
        return 8


class TiffReader(Reader):
    """Windowed reads of (tiled, pyramidal) 8-bit grey/RGB/RGBA TIFF with a tile cache."""

    kind = ReaderKind.TIFFFILE

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions) -> None:
        path = check_file(path)
        tifffile = require("tifffile", extra="io", purpose="the tifffile TIFF reader")
        self._simplejpeg = _optional("simplejpeg")
        with data_errors(path, "open TIFF"):
            self._tif = tifffile.TiffFile(path)
        try:
            with data_errors(path, "read the TIFF structure"):
                series = self._tif.series[0]
                self._levels = [self._level(lv.keyframe) for lv in (series.levels or [series])]
            orientation = self._orientation()
            self._check_segments(path)
            self._check_decode_sizes(path, options)
        except Exception:
            self._tif.close()
            raise
        super().__init__(path, options=options, orientation=orientation)
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._fast: dict[int, bool] = {}
        self.segments_decoded = 0  # tile/strip decodes done, for tests and benchmarks

    def _level(self, page: Any) -> _Level:
        samples = (4, 5) if int(page.photometric) == _CMYK else (1, 3, 4)
        if page.dtype not in (np.uint8, np.uint16) or page.samplesperpixel not in samples:
            raise DataError(
                f"the tifffile reader reads 8- or 16-bit grey/RGB/RGBA/CMYK/palette TIFF; this page is "
                f"{page.dtype} with {page.samplesperpixel} samples",
                path=self._tif.filehandle.path,
            )
        if page.samplesperpixel > 1 and int(page.planarconfig) != 1:
            raise DataError("planar (separate) TIFF layout is not supported; use kind='pyvips'", path=self._tif.filehandle.path)
        seg_h, seg_w = page.chunks[0], page.chunks[1]
        jpeg = (
            int(page.compression) == _JPEG
            and self._simplejpeg is not None
            and int(page.photometric) in _PHOTOMETRIC_JPEG_COLOR
        )
        width, height = int(page.imagewidth), int(page.imagelength)
        return _Level(page, width, height, int(seg_w), int(seg_h), int(page.chunked[1]), bool(page.is_tiled), jpeg)

    def _orientation(self) -> int:
        tag = self._levels[0].page.tags.get(274)
        value = int(tag.value) if tag is not None else 1
        return value if 1 <= value <= 8 else 1

    def _check_segments(self, path: os.PathLike[str]) -> None:
        size = os.path.getsize(path)
        for level in self._levels:
            ends = [o + n for o, n in zip(level.page.dataoffsets, level.page.databytecounts, strict=True)]
            if ends and max(ends) > size:
                raise DataError(f"truncated TIFF: level {level.width}x{level.height} tile data ends past the end of the file", path=path)

    def _check_decode_sizes(self, path: os.PathLike[str], options: ReaderOptions) -> None:
        """Refuse, from the header, a strip or tile too large to decode (`max_decode_mb`): a
        segment is decoded whole, and one strip can declare a 100000 x 100000 image."""
        for level in self._levels:
            rows = min(level.seg_h, level.height)
            whole = rows >= level.height and level.seg_w >= level.width
            part = "image" if whole else "tile" if level.tiled else "strip"
            check_decode_bytes(Path(path), (rows, level.seg_w, 3), options, self.kind.value, part=part)

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._levels[0].width, self._levels[0].height

    @property
    def level_sizes(self) -> list[tuple[int, int]]:
        """(w, h) of each pyramid level, finest first."""
        return [(lv.width, lv.height) for lv in self._levels]

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        out_size = (out.shape[1], out.shape[0])
        base_w, base_h = self.stored_size
        downs = [(base_w / lv.width, base_h / lv.height) for lv in self._levels]
        index = choose_level(downs, (w, h), out_size) if self.options.reduced else 0
        level, (dx, dy) = self._levels[index], downs[index]
        eighths = 8
        if self.options.reduced and self._fast_jpeg(index):
            eighths = level.eighths(dct_eighths((round(w / dx), round(h / dy)), out_size))
        r = eighths / 8
        x0, x1 = _span(x / dx * r, (x + w) / dx * r, math.ceil(level.width * r))
        y0, y1 = _span(y / dy * r, (y + h) / dy * r, math.ceil(level.height * r))
        region = self.buffer("region", (y1 - y0, x1 - x0, 3))
        self._assemble(index, eighths, (x0, y0, x1, y1), region)
        resize_into(region, out)

    def _assemble(self, index: int, eighths: int, box: tuple[int, int, int, int], region: np.ndarray) -> None:
        """Copy the part of each covering segment (decoded at eighths/8) into `region`."""
        level = self._levels[index]
        x0, y0, x1, y1 = box
        sh = level.seg_h * eighths // 8  # whole: see _Level.eighths
        sw = level.seg_w * eighths // 8 if level.cols > 1 else x1  # strips: one column
        for row in range(y0 // sh, (y1 - 1) // sh + 1):
            for col in range(x0 // sw, (x1 - 1) // sw + 1):
                seg = self._segment(index, row * level.cols + col, eighths)
                a0, a1 = max(x0, col * sw), min(x1, col * sw + sw)
                b0, b1 = max(y0, row * sh), min(y1, row * sh + sh)
                part = seg[b0 - row * sh : b1 - row * sh, a0 - col * sw : a1 - col * sw]
                target = region[b0 - y0 : b1 - y0, a0 - x0 : a1 - x0]
                target[: part.shape[0], : part.shape[1]] = part
                if part.shape[:2] != target.shape[:2]:  # a short last strip: pad
                    target[part.shape[0] :] = self.options.fill
                    target[:, part.shape[1] :] = self.options.fill

    def _segment(self, index: int, seg: int, eighths: int) -> np.ndarray:
        """Decoded segment (seg_h*e/8, seg_w*e/8, 3) RGB from the LRU cache or the file."""
        key = (index, seg, eighths)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        array = self._decode_segment(index, seg, eighths)
        self.segments_decoded += 1
        self._cache[key] = array
        self._cache_bytes += array.nbytes
        while self._cache_bytes > self.options.tile_cache_mb * 2**20 and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes
        return array

    def _decode_segment(self, index: int, seg: int, eighths: int) -> np.ndarray:
        level = self._levels[index]
        page = level.page
        offset, count = page.dataoffsets[seg], page.databytecounts[seg]
        rows = level.seg_h if level.tiled else min(level.seg_h, level.height - seg * level.seg_h)
        shape = (math.ceil(rows * eighths / 8), math.ceil(level.seg_w * eighths / 8), 3)
        if count == 0:  # sparse TIFF: a missing tile is empty
            return np.full(shape, self.options.fill, np.uint8)
        data = self._bytes(offset, count)
        with data_errors(self.path, f"decode TIFF tile {seg} of level {level.width}x{level.height}"):
            if self._fast_jpeg(index):
                return self._decode_jpeg(page.jpegtables, data, shape)
            if eighths != 8:
                raise ValueError("reduced decode asked of a non-JPEG tile")
            decoded = page.decode(data, seg, jpegtables=page.jpegtables)[0]
            return _rgb(decoded.reshape(decoded.shape[-3:]), page, self.path)

    def _bytes(self, offset: int, count: int) -> bytes:
        fh = self._tif.filehandle
        fh.seek(offset)
        return fh.read(count)

    def _fast_jpeg(self, index: int) -> bool:
        """JPEG tiles of this level can go through simplejpeg (reduced DCT decode).

        Only if libjpeg's own reading of the stream gives the colour space the TIFF says: a
        TIFF can say RGB while its JPEG streams carry no marker telling libjpeg so; tifffile
        then forces the colour space, which simplejpeg cannot, and its decode is used.
        """
        if index not in self._fast:
            level, ok = self._levels[index], False
            if level.jpeg:
                first = next((i for i, n in enumerate(level.page.databytecounts) if n), None)
                if first is not None:
                    data = self._bytes(level.page.dataoffsets[first], level.page.databytecounts[first])
                    with data_errors(self.path, "read a JPEG tile header"):
                        header = self._simplejpeg.decode_jpeg_header(_splice(level.page.jpegtables, data))
                    ok = header[2] == _PHOTOMETRIC_JPEG_COLOR[int(level.page.photometric)]
            self._fast[index] = ok
        return self._fast[index]

    def _decode_jpeg(self, tables: bytes | None, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        stream = _splice(tables, data)
        image = self._simplejpeg.decode_jpeg(
            stream, colorspace="RGB", min_height=shape[0], min_width=shape[1], strict=True
        )
        if image.shape != shape:
            raise ValueError(f"tile decoded to {image.shape}, expected {shape}")
        return image

    def _close(self) -> None:
        self._cache.clear()
        self._tif.close()


def _span(start: float, stop: float, limit: int) -> tuple[int, int]:
    """Whole-pixel [a, b) nearest to [start, stop), at least one pixel, inside [0, limit)."""
    a = min(max(round(start), 0), limit - 1)
    return a, max(a + 1, min(round(stop), limit))


def _splice(tables: bytes | None, data: bytes) -> bytes:
    """A complete JPEG stream from an abbreviated tile stream and the page's JPEGTables."""
    if not tables:
        return data
    return data[:2] + tables[2:-2] + data[2:]  # SOI + tables (no SOI/EOI) + tile after SOI


def _rgb(array: np.ndarray, page: Any, path: os.PathLike[str]) -> np.ndarray:
    """(h, w, samples) grey/RGB/RGBA, CMYK or palette indices, 8- or 16-bit, as (h, w, 3)
    uint8 RGB."""
    photometric = int(page.photometric)
    if photometric == _PALETTE and page.colormap is not None:
        colours = to_uint8(np.asarray(page.colormap).T, path)  # (entries, 3); 16-bit in TIFF
        return np.ascontiguousarray(colours[array[..., 0]])
    array = to_uint8(array, path)
    if photometric == _CMYK:
        # libtiff's (and so cv2's) conversion: R = (255 - C) * (255 - K) / 255.
        cmy, k = 255 - array[..., :3].astype(np.uint16), 255 - array[..., 3:4].astype(np.uint16)
        return (cmy * k // 255).astype(np.uint8)
    if array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _optional(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        return None
