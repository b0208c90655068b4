"""The one reader interface, and what every reader shares: orientation, padding, resizing.

A reader is opened once per image (in a pipeline worker) and reads many windows:

    with open_reader(path) as reader:
        w, h = reader.size                       # after EXIF / TIFF orientation
        buf = np.empty((800, 800, 3), np.uint8)  # reused for every window
        for tile in plan_grid(w, h, window=1600, out_size=800):
            reader.read(*tile.window, tile.out_w, tile.out_h, out=buf)

Subclasses implement `stored_size` and `_read_stored`, which reads a window of the image
*as stored* (before orientation) lying wholly inside it; the base class maps windows
through the orientation, pads windows that extend past the image and checks buffers.
Readers are not thread-safe: use one per thread or process.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from leanvision.core.config import Config
from leanvision.core.errors import ConfigError, DataError, LeanVisionError, plain_reason

MAX_DECODE_MB = 2048
"""Default bound on one whole-image decode held in memory (`ReaderOptions.max_decode_mb`).

A fixed size, not a fraction of the RAM free now: the same file must get the same answer on
every run and machine (free RAM changes with whatever else runs), and a refusal must name a
limit the user can raise. 2048 MB holds a 26000 x 26000 RGB decode, beyond any photo or
scanner frame; slides and rasters larger than that are tiled and read by window, which
this bound does not touch. Checked against the size the header declares, before decoding:
a crafted 100000 x 100000 PNG header is refused instead of attempting a 28 GB allocation.
"""

# A level or DCT scale is used when it still gives >= 99% of the output pixels: the
# rounding of pyramid sizes (ceil(W / 2)) must not push reads to the next finer level.
SCALE_SLACK = 0.99


class ReaderKind(enum.StrEnum):
    SIMPLEJPEG = "simplejpeg"
    TIFFFILE = "tifffile"
    OPENSLIDE = "openslide"
    PYVIPS = "pyvips"
    RASTERIO = "rasterio"
    OPENCV = "opencv"
    PILLOW = "pillow"


@dataclass(frozen=True)
class ReaderOptions(Config):
    """Options shared by all readers.

    Attributes:
        reduced: decode at the coarsest pyramid level / DCT scale that still gives the
            output size (True), or always at full resolution (False; for benchmarks and
            pixel-exact work).
        max_decode_mb: bound on a whole-image decode held in memory by readers that cannot
            read windows (JPEG via simplejpeg/OpenCV/Pillow, libvips on non-tiled formats,
            other non-tiled formats), checked on the header's size before decoding
            (`MAX_DECODE_MB`).
        band_above_mb: the simplejpeg reader decodes a JPEG whose whole decode at the
            needed scale would be larger than this in bands of rows, top to bottom, holding
            only the rows under the current window (`bands`; 40000 px at 1/2: 1.2 GB whole,
            ~50 MB in bands). Whole decodes are faster for reads in any order.
        tile_cache_mb: LRU cache of decoded tiles in tiled readers (tifffile).
        fill: value of output pixels outside the image (windows past the border); the
            pipeline sets it to the model card's `pad_value`.
    """

    reduced: bool = True
    max_decode_mb: int = MAX_DECODE_MB
    band_above_mb: int = 512
    tile_cache_mb: int = 64
    fill: int = 0

    def __post_init__(self) -> None:
        if min(self.max_decode_mb, self.band_above_mb, self.tile_cache_mb) < 0:
            raise ConfigError(
                f"memory bounds must be >= 0 MB, got max_decode_mb={self.max_decode_mb}, "
                f"band_above_mb={self.band_above_mb}, tile_cache_mb={self.tile_cache_mb}"
            )
        if not 0 <= self.fill <= 255:
            raise ConfigError(f"fill must be a pixel value 0-255, got {self.fill}")


class Scratch:
    """A growable byte buffer a worker reuses for the whole-image decodes of successive images.

    A fresh 100-400 MB array per image costs page faults comparable to the decode itself
    (PITFALLS.md); passing one `Scratch` to every `open_reader` call of a worker avoids
    them. Only one open reader may use a given scratch at a time.
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0, np.uint8)

    def array(self, shape: Sequence[int]) -> np.ndarray:
        """A C-contiguous uint8 array of `shape` over the buffer (grown if too small)."""
        size = math.prod(shape)
        if self._buffer.size < size:
            self._buffer = np.empty(0, np.uint8)  # free the old buffer before the new one
            self._buffer = np.empty(size, np.uint8)
        return self._buffer[:size].reshape(shape)


# (flip_x, flip_y, transpose) per EXIF/TIFF orientation value, applied to the stored image
# in that order; checked against cv2.imread, which applies EXIF orientation.
_ORIENTATIONS = {
    1: (False, False, False),
    2: (True, False, False),
    3: (True, True, False),
    4: (False, True, False),
    5: (False, False, True),
    6: (False, True, True),
    7: (True, True, True),
    8: (True, False, True),
}


@dataclass(frozen=True)
class Orientation:
    """EXIF orientation (1-8) as flips of the stored image followed by a transpose."""

    value: int = 1

    @property
    def flips(self) -> tuple[bool, bool, bool]:
        return _ORIENTATIONS.get(self.value, _ORIENTATIONS[1])

    @property
    def transpose(self) -> bool:
        return self.flips[2]

    def size(self, stored: tuple[int, int]) -> tuple[int, int]:
        """Displayed (w, h) of a stored (w, h) image."""
        return (stored[1], stored[0]) if self.transpose else stored

    def to_stored(self, window: tuple[int, int, int, int], stored: tuple[int, int]) -> tuple[int, int, int, int]:
        """The stored-image window (x, y, w, h) that shows as displayed `window`."""
        flip_x, flip_y, transpose = self.flips
        x, y, w, h = (window[1], window[0], window[3], window[2]) if transpose else window
        if flip_x:
            x = stored[0] - x - w
        if flip_y:
            y = stored[1] - y - h
        return x, y, w, h

    def apply(self, array: np.ndarray) -> np.ndarray:
        """View of a stored-orientation HxWxC array as displayed."""
        flip_x, flip_y, transpose = self.flips
        if flip_x:
            array = array[:, ::-1]
        if flip_y:
            array = array[::-1]
        return array.transpose(1, 0, 2) if transpose else array


def resize_into(src: np.ndarray, out: np.ndarray) -> None:
    """Resize an HxWx3 uint8 image into `out` (any strides): copy if sizes match.

    INTER_AREA when shrinking (antialiased box average; equals a DCT-domain 1/2 decode to
    ~0.3 grey levels, PITFALLS.md), INTER_LINEAR otherwise.
    """
    import cv2

    oh, ow = out.shape[:2]
    if src.shape[:2] == (oh, ow):
        np.copyto(out, src)
        return
    shrink = ow <= src.shape[1] and oh <= src.shape[0]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    result = cv2.resize(src, (ow, oh), dst=out, interpolation=interp)
    if result is not out:  # cv2 may refuse an exotic dst layout and allocate
        np.copyto(out, result)


def to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    """8-bit pixels as they are; 16-bit ones scaled to 8 bits (the high byte, as cv2.imread
    does for IMREAD_COLOR), so a 16-bit file reads the same through every reader."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise DataError(f"images of {array.dtype} pixels are not supported (8- or 16-bit only)", path=path)


def vips_rgb(region: np.ndarray, path: Path) -> np.ndarray:
    """An 8- or 16-bit libvips region (`.numpy()`: HxW or HxWxB) as HxWx3 uint8: grey (with
    or without alpha) repeated, alpha or extra bands dropped."""
    region = to_uint8(region, path)
    if region.ndim == 2 or region.shape[2] < 3:
        grey = region if region.ndim == 2 else region[..., 0]
        return np.repeat(grey[..., None], 3, axis=2)
    return region[..., :3]


def choose_level(
    downsamples: Sequence[tuple[float, float]], window: tuple[int, int], out: tuple[int, int]
) -> int:
    """Index of the coarsest level that still gives the window at least the output size.

    Args:
        downsamples: per level (dx, dy), level-0 pixels per level pixel; level 0 is (1, 1).
        window: (w, h) of the window in level-0 pixels.
        out: (out_w, out_h) wanted.
    """
    best = 0
    for i, (dx, dy) in enumerate(downsamples):
        enough = window[0] / dx >= out[0] * SCALE_SLACK and window[1] / dy >= out[1] * SCALE_SLACK
        if enough and dx * dy > downsamples[best][0] * downsamples[best][1]:
            best = i
    return best


def dct_eighths(window: tuple[int, int], out: tuple[int, int]) -> int:
    """Smallest M in 1..8 with the JPEG scaled decode at M/8 still giving the output size."""
    need = max(out[0] / window[0], out[1] / window[1]) * SCALE_SLACK
    return next((m for m in range(1, 9) if m / 8 >= need), 8)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A library's (often multi-line: libvips, OpenCV) error message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def data_errors(path: Path, what: str) -> Iterator[None]:
    """Turn a library's failure on a file into a one-line DataError naming the file."""
    try:
        yield
    except LeanVisionError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        message = one_line(exc)
        raise DataError(plain_reason(message) or f"cannot {what}: {message}", path=path) from exc


def check_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError("image file is missing", path=path)
    if not path.is_file():
        raise DataError("image path is not a file", path=path)
    if path.stat().st_size == 0:
        raise DataError("image file is empty", path=path)
    return path


def check_decode_bytes(path: Path, shape: Sequence[int], options: ReaderOptions, how: str, *,
                       part: str = "image") -> None:
    """Refuse a whole-image decode larger than `options.max_decode_mb` (see `MAX_DECODE_MB`).

    Args:
        shape: (h, w, channels) of the decode, from the header.
        how: the library that would decode, named in the message.
        part: what is decoded whole: the image, or one "strip" / "tile" of a TIFF.
    """
    mb = math.prod(shape) / 2**20
    if mb > options.max_decode_mb:
        raise DataError(
            f"the header declares a {shape[1]}x{shape[0]} {part}, which {how} must decode whole "
            f"({mb:.0f} MB), over the limit of {options.max_decode_mb} MB (max_decode_mb); "
            "convert it to a tiled TIFF or raise the limit",
            path=path,
        )


class PixelLimitError(DataError):
    """A library refuses an image this large; `open_reader` without `kind` tries the next reader."""


class Reader(abc.ABC):
    """Reads windows of one image, resized, as HxWx3 uint8 RGB (see the module docstring)."""

    kind: ClassVar[ReaderKind]

    def __init__(self, path: str | os.PathLike[str], *, options: ReaderOptions, orientation: int = 1) -> None:
        self.path = check_file(path)
        self.options = options
        self.orientation = Orientation(orientation)
        self._buffers: dict[str, np.ndarray] = {}
        self.closed = False

    @property
    @abc.abstractmethod
    def stored_size(self) -> tuple[int, int]:
        """(w, h) of level 0 as stored, before orientation."""

    @abc.abstractmethod
    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        """Fill `out` (oh, ow, 3), any strides, with stored window (x, y, w, h) resized."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the library's handles and decoded data."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of level 0 as displayed (EXIF/TIFF orientation applied, like cv2)."""
        return self.orientation.size(self.stored_size)

    def read(
        self, x: int, y: int, w: int, h: int, out_w: int, out_h: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Window (x, y, w, h) of level 0, resized to (out_w, out_h), as (out_h, out_w, 3) uint8 RGB.

        Pixels of the window outside the image are `options.fill`; the image part is
        placed at output pixels rounded to the nearest integer (exact when the scale
        divides the image border position, else within half an output pixel).

        Args:
            x, y, w, h: window in displayed level-0 pixels (may extend past the image).
            out_w, out_h: output size in pixels.
            out: optional (out_h, out_w, 3) uint8 array to fill and return (no allocation).
        """
        if self.closed:
            raise ValueError(f"reader of {self.path} is closed")
        out = self._output(out_w, out_h, out)
        if min(w, h) <= 0:
            raise ValueError(f"window size must be positive, got {w}x{h}")
        width, height = self.size
        ix0, iy0, ix1, iy1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if (ix0, iy0, ix1, iy1) == (x, y, x + w, y + h):
            self._read_displayed(x, y, w, h, out)
            return out
        out[...] = self.options.fill
        ox0, ox1 = round((ix0 - x) * out_w / w), round((ix1 - x) * out_w / w)
        oy0, oy1 = round((iy0 - y) * out_h / h), round((iy1 - y) * out_h / h)
        if ix1 > ix0 and iy1 > iy0 and ox1 > ox0 and oy1 > oy0:
            self._read_displayed(ix0, iy0, ix1 - ix0, iy1 - iy0, out[oy0:oy1, ox0:ox1])
        return out

    @staticmethod
    def _output(out_w: int, out_h: int, out: np.ndarray | None) -> np.ndarray:
        if min(out_w, out_h) <= 0:
            raise ValueError(f"output size must be positive, got {out_w}x{out_h}")
        if out is None:
            return np.empty((out_h, out_w, 3), np.uint8)
        if out.shape != (out_h, out_w, 3) or out.dtype != np.uint8:
            raise ValueError(f"out must be ({out_h}, {out_w}, 3) uint8, got {out.shape} {out.dtype}")
        return out

    def _read_displayed(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        if self.orientation.value == 1:
            self._read_stored(x, y, w, h, out)
            return
        stored = self.orientation.to_stored((x, y, w, h), self.stored_size)
        oh, ow = out.shape[:2]
        shape = (ow, oh, 3) if self.orientation.transpose else (oh, ow, 3)
        buffer = self.buffer("orient", shape)
        self._read_stored(*stored, buffer)
        np.copyto(out, self.orientation.apply(buffer))

    def buffer(self, name: str, shape: Sequence[int]) -> np.ndarray:
        """A C-contiguous uint8 work array of `shape`, over storage this reader reuses."""
        size = math.prod(shape)
        flat = self._buffers.get(name)
        if flat is None or flat.size < size:
            flat = self._buffers[name] = np.empty(size, np.uint8)
        return flat[:size].reshape(shape)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._buffers.clear()
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, size={self.size})"
